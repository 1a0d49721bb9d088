//! Drupal in the engine's terms: a scanned [`DrupalCodebase`] as the
//! [`Codebase`] every plan compares with, and a [`SiteState`] read from a
//! site's database as the package rows and [`SiteExtras`] of an observed
//! site. Pure functions; the engine (plan, compatibility, status files)
//! then treats every kind alike (spec section 3).

use std::collections::BTreeMap;
use std::path::Path;

use super::scan::{DrupalCodebase, Extension, ExtensionKind, Generation};
use super::state::SiteState;
use crate::codebase::{Codebase, DrupalCore, Package, PackageKind};
use crate::compat::{SiteExtras, SitePackage};
use crate::diag::Diagnostic;
use crate::names::PackageName;
use crate::version::Version;

fn kind(k: ExtensionKind) -> PackageKind {
    match k {
        ExtensionKind::Module => PackageKind::Module,
        ExtensionKind::Theme => PackageKind::Theme,
        ExtensionKind::Profile => PackageKind::Profile,
    }
}

/// The extension's name as a package name, or why it cannot be one.
fn name(n: &str) -> Result<PackageName, String> {
    PackageName::new(n).map_err(|e| format!("extension {n:?} cannot be planned: {e}"))
}

/// The codebase of a scanned Drupal tree: every extension a site of any
/// profile may see (the copy Drupal uses, see [`DrupalCodebase::resolve`]).
/// A profile's dependencies are what it installs. Problems (a name hoist
/// cannot hold, one name used by two kinds) are diagnostics at `shown`.
pub fn codebase(d: &DrupalCodebase, shown: &Path) -> Result<Codebase, Vec<Diagnostic>> {
    let generation = d.core.generation;
    let resolved = d.resolve(None);
    let mut diags: Vec<Diagnostic> = resolved
        .conflicts
        .iter()
        .map(|c| {
            Diagnostic::at(
                shown,
                None,
                format!("{c}: one name used by extensions of two kinds"),
            )
        })
        .collect();
    let mut packages = BTreeMap::new();
    for e in resolved.extensions.values() {
        match package(e, generation) {
            Ok(p) => {
                packages.insert(p.name.clone(), p);
            }
            Err(m) => diags.push(Diagnostic::at(&shown.join(&e.path), None, m)),
        }
    }
    if !diags.is_empty() {
        diags.sort();
        diags.dedup();
        return Err(diags);
    }
    Ok(Codebase {
        packages,
        drupal: Some(DrupalCore {
            version: d.core.version.clone(),
            major: d.core.major,
        }),
    })
}

fn package(e: &Extension, generation: Generation) -> Result<Package, String> {
    let deps: Vec<PackageName> = e
        .dependencies
        .iter()
        .filter_map(|d| PackageName::new(d).ok())
        .collect();
    let (depends, install) = match e.kind {
        ExtensionKind::Profile => (Vec::new(), deps),
        _ => (deps, Vec::new()),
    };
    Ok(Package {
        name: name(&e.name)?,
        kind: kind(e.kind),
        version: e
            .version
            .clone()
            .map_or_else(Version::unknown, Version::Drupal),
        depends,
        install,
        updates: e.updates.clone(),
        min_schema: e.schema(generation).unwrap_or(0),
        hidden: e.hidden,
        last_removed: e.last_removed,
        last_removed_unreadable: e.last_removed_unreadable.clone(),
        post_updates: e.post_updates.clone(),
        removed_post_updates: e.removed_post_updates.clone(),
    })
}

/// A site's state as package rows and extras. Post-updates are given to
/// the installed extension whose `NAME_post_update_` prefix they carry (the
/// longest such name); one that belongs to none is not compared.
pub fn site_packages(
    st: &SiteState,
) -> Result<(BTreeMap<PackageName, SitePackage>, SiteExtras), String> {
    let base = st.generation.base_schema();
    let mut rows = BTreeMap::new();
    let mut extras = SiteExtras::default();
    for (n, se) in &st.extensions {
        let pn = name(n)?;
        let schema = match se.kind {
            ExtensionKind::Theme => 0,
            _ => se.schema.unwrap_or(base),
        };
        if se.hidden {
            extras.hidden.insert(pn.clone());
        }
        rows.insert(
            pn,
            SitePackage {
                kind: kind(se.kind),
                enabled: se.enabled,
                version: se
                    .version
                    .clone()
                    .map_or_else(Version::unknown, Version::Drupal),
                schema,
            },
        );
    }
    const MARK: &str = "_post_update_";
    for u in &st.post_updates {
        let owner = u
            .match_indices(MARK)
            .map(|(i, _)| &u[..i])
            .filter(|n| u.len() > n.len() + MARK.len())
            .filter(|n| st.extensions.contains_key(*n))
            .last();
        if let Some(o) = owner.and_then(|o| PackageName::new(o).ok()) {
            extras.post_updates.entry(o).or_default().push(u.clone());
        }
    }
    Ok((rows, extras))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drupal::scan::{Core, Origin};
    use crate::drupal::state::SiteExtension;
    use crate::drupal::DrupalVersion;
    use std::collections::BTreeSet;

    fn ext(name: &str, k: ExtensionKind, updates: &[u32]) -> Extension {
        Extension {
            name: name.into(),
            kind: k,
            path: format!("core/modules/{name}"),
            origin: Origin::Core,
            hidden: false,
            version: Some(DrupalVersion::parse("10.3.0")),
            core: None,
            dependencies: vec!["system".into()],
            updates: updates.to_vec(),
            last_removed: None,
            last_removed_unreadable: None,
            post_updates: vec![],
            removed_post_updates: vec![],
        }
    }

    #[test]
    fn a_drupal_8_codebase_keeps_schemas_and_profiles() {
        let d = DrupalCodebase {
            core: Core {
                version: DrupalVersion::parse("10.3.0"),
                generation: Generation::Drupal8Plus,
                major: 10,
            },
            found: vec![
                ext("system", ExtensionKind::Module, &[]),
                ext("node", ExtensionKind::Module, &[10101]),
                ext("standard", ExtensionKind::Profile, &[]),
            ],
        };
        let cb = codebase(&d, Path::new("core")).unwrap();
        let p = |n: &str| &cb.packages[&PackageName::new(n).unwrap()];
        assert_eq!(p("system").schema(), 8000, "no updates: 8000 on 8+");
        assert_eq!(p("node").schema(), 10101);
        assert_eq!(
            p("standard").install,
            vec![PackageName::new("system").unwrap()]
        );
        assert_eq!(cb.drupal.as_ref().unwrap().major, 10);
    }

    #[test]
    fn post_updates_go_to_the_longest_owner() {
        let se = |k| SiteExtension {
            kind: k,
            enabled: true,
            schema: Some(8000),
            version: None,
            hidden: false,
        };
        let st = SiteState {
            generation: Generation::Drupal8Plus,
            profile: Some("standard".into()),
            extensions: BTreeMap::from([
                ("views".to_string(), se(ExtensionKind::Module)),
                ("views_ui".to_string(), se(ExtensionKind::Module)),
                ("olivero".to_string(), se(ExtensionKind::Theme)),
            ]),
            post_updates: BTreeSet::from([
                "views_post_update_a".to_string(),
                "views_ui_post_update_b".to_string(),
                "gone_post_update_c".to_string(),
            ]),
            core_version: None,
        };
        let (rows, extras) = site_packages(&st).unwrap();
        assert_eq!(rows[&PackageName::new("olivero").unwrap()].schema, 0);
        let pu = |n: &str| extras.post_updates[&PackageName::new(n).unwrap()].clone();
        assert_eq!(pu("views"), vec!["views_post_update_a"]);
        assert_eq!(pu("views_ui"), vec!["views_ui_post_update_b"]);
        assert_eq!(extras.post_updates.len(), 2);
    }
}
