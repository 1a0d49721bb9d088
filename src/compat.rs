//! The package-compatibility rules of spec section 5, as pure functions:
//! may a site, with the packages it has applied, move onto a platform?

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::codebase::{Codebase, Package, PackageKind};
use crate::names::{PackageName, PlatformName};
use crate::version::Version;

/// A package as a site has it: its row of the site's `system` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SitePackage {
    /// Module, theme, profile or library.
    pub kind: PackageKind,
    /// Whether it is enabled on the site.
    pub enabled: bool,
    /// The version the site last ran.
    pub version: Version,
    /// The highest update the site has applied.
    pub schema: u32,
}

/// What a Drupal site records beyond its packages' rows; empty for an
/// embedded site.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteExtras {
    /// Drupal 8+: the post-updates the site has run, by the extension
    /// whose `NAME_post_update_` prefix they carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub post_updates: BTreeMap<PackageName, Vec<String>>,
    /// Drupal 7: extensions the site's record says are hidden.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub hidden: BTreeSet<PackageName>,
}

impl SiteExtras {
    /// Whether there is nothing beyond the rows.
    pub fn is_empty(&self) -> bool {
        self.post_updates.is_empty() && self.hidden.is_empty()
    }
}

/// What moving onto the target means for one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Same schema: nothing to run.
    Same,
    /// The target has a higher schema: these updates will run.
    Upgrade,
    /// The target lacks it: it will be disabled.
    Missing,
    /// The target's schema is lower than what the site applied.
    SchemaDowngrade,
    /// Same schema, but an older version than the current platform's.
    VersionDowngrade,
    /// The target removed updates the site has not applied yet
    /// (`hook_update_last_removed()` above the site's schema).
    UpdatesRemoved,
    /// Disabled on the site: listed, never blocking, not updated.
    Disabled,
    /// A new site gets it installed at its newest schema.
    Install,
}

impl Verdict {
    /// The verdict's fixed name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Upgrade => "upgrade",
            Verdict::Missing => "missing",
            Verdict::SchemaDowngrade => "schema-downgrade",
            Verdict::VersionDowngrade => "version-downgrade",
            Verdict::UpdatesRemoved => "updates-removed",
            Verdict::Disabled => "disabled",
            Verdict::Install => "install",
        }
    }

    /// How serious the verdict is.
    pub fn severity(&self) -> Severity {
        match self {
            Verdict::Same | Verdict::Upgrade | Verdict::Disabled | Verdict::Install => Severity::Ok,
            Verdict::Missing | Verdict::VersionDowngrade => Severity::Warning,
            Verdict::SchemaDowngrade | Verdict::UpdatesRemoved => Severity::Error,
        }
    }
}

/// Ok, warning (blocks only when strict) or error (always blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to worry about.
    Ok,
    /// Worth a look; blocks with `--strict`.
    Warning,
    /// Blocks the move.
    Error,
}

/// One package's verdict against a target platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVerdict {
    /// The package.
    pub name: PackageName,
    /// Its kind.
    pub kind: PackageKind,
    /// The verdict.
    pub verdict: Verdict,
    /// The verdict's severity.
    pub severity: Severity,
    /// The schema the site has applied (none for a new install).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_schema: Option<u32>,
    /// The target's schema (none when the target lacks the package).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_schema: Option<u32>,
    /// The version on the site's current platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<Version>,
    /// The version on the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_version: Option<Version>,
    /// For `upgrade`: the update numbers that will run, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<u32>,
    /// Drupal: the target's `hook_update_last_removed()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_removed: Option<u32>,
    /// Drupal 8+, for `upgrade`: the post-updates that will run, in
    /// Drupal's (alphabetical) order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_post_updates: Vec<String>,
    /// Drupal 8+, for `schema-downgrade`: post-updates the site has run
    /// that the target does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_post_updates: Vec<String>,
}

impl PackageVerdict {
    /// A sentence for reports.
    pub fn describe(&self) -> String {
        let v = |o: &Option<Version>| {
            o.as_ref()
                .filter(|v| v.is_known())
                .map(|v| v.to_string())
                .unwrap_or_else(|| "?".into())
        };
        let n = &self.name;
        match self.verdict {
            Verdict::Same => format!("{n}: same (schema {})", self.site_schema.unwrap_or(0)),
            Verdict::Upgrade => {
                let mut parts = Vec::new();
                if !self.pending.is_empty() {
                    let u: Vec<String> = self.pending.iter().map(|n| n.to_string()).collect();
                    parts.push(format!("updates {}", u.join(", ")));
                }
                if !self.pending_post_updates.is_empty() {
                    parts.push(format!(
                        "post-updates {}",
                        self.pending_post_updates.join(", ")
                    ));
                }
                format!(
                    "{n}: upgrade {} -> {}, {}",
                    v(&self.current_version),
                    v(&self.target_version),
                    parts.join("; ")
                )
            }
            Verdict::Missing => {
                format!("{n}: missing on the target; it will be disabled")
            }
            Verdict::SchemaDowngrade if !self.unknown_post_updates.is_empty() => format!(
                "{n}: schema downgrade: the site has run post-updates the target does not know: {}",
                self.unknown_post_updates.join(", ")
            ),
            Verdict::SchemaDowngrade => format!(
                "{n}: schema downgrade {} -> {}: the site has applied update {}, the target has only {}",
                v(&self.current_version),
                v(&self.target_version),
                self.site_schema.unwrap_or(0),
                self.target_schema.unwrap_or(0)
            ),
            Verdict::VersionDowngrade => format!(
                "{n}: version downgrade {} -> {} at the same schema",
                v(&self.current_version),
                v(&self.target_version)
            ),
            Verdict::UpdatesRemoved => format!(
                "{n}: updates removed: the site is at schema {}, and {} ({}) removed the updates up to {}; update it on a platform that still has them first",
                self.site_schema.unwrap_or(0),
                "the target",
                v(&self.target_version),
                self.last_removed.unwrap_or(0)
            ),
            Verdict::Disabled => format!("{n}: disabled on the site; left as it is"),
            Verdict::Install => format!(
                "{n}: install {} (schema {})",
                v(&self.target_version),
                self.target_schema.unwrap_or(0)
            ),
        }
    }
}

/// A site's packages compared with one target platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// The target platform.
    pub target: PlatformName,
    /// A verdict per package of the site, by name.
    pub packages: Vec<PackageVerdict>,
    /// Problems that block the move whatever the policy.
    pub errors: Vec<String>,
    /// Problems that block only under `strict`.
    pub warnings: Vec<String>,
}

impl Comparison {
    /// How many packages will be upgraded.
    pub fn upgrades(&self) -> usize {
        self.packages
            .iter()
            .filter(|p| p.verdict == Verdict::Upgrade)
            .count()
    }

    /// Whether the move is blocked, under the given strictness.
    pub fn blocked(&self, strict: bool) -> bool {
        !self.errors.is_empty() || (strict && !self.warnings.is_empty())
    }
}

/// Why `site`, living on `current`, cannot move onto `target` at all: a
/// change of application kind, or of Drupal core major version (spec 5:
/// "not a migration"). For a site whose current codebase is unknown, the
/// core version its own `system` row recorded (Drupal 7) is used.
pub fn not_a_migration(
    site: &BTreeMap<PackageName, SitePackage>,
    current: Option<&Codebase>,
    target: &Codebase,
) -> Option<String> {
    let recorded = || {
        site.values()
            .zip(site.keys())
            .find(|(_, n)| n.as_str() == "system")
            .and_then(|(p, _)| match &p.version {
                Version::Drupal(d) => d.core_major().map(|m| (m, d.to_string())),
                Version::Semver(_) => None,
            })
    };
    let from: Option<(Option<u64>, String)> = match current {
        Some(c) => Some(match &c.drupal {
            Some(d) => (Some(d.major), format!("Drupal {}", d.version)),
            None => (None, c.describe_kind()),
        }),
        None => recorded().map(|(m, v)| (Some(m), format!("Drupal {v}"))),
    };
    let (from_major, from_text) = from?;
    let to_major = target.drupal.as_ref().map(|d| d.major);
    if from_major == to_major {
        return None;
    }
    let what = match (from_major, to_major) {
        (Some(_), Some(_)) => "a change of core major version is an upgrade of its own",
        _ => "a site cannot change its application kind",
    };
    Some(format!(
        "not a migration: the site runs {from_text} and the target is {}; {what}",
        target.describe_kind()
    ))
}

/// Compares a site's packages with `target`, the spec's section 5.
/// `current` is the codebase the site lives on now, used for the versions
/// that a `version-downgrade` is measured against (the site's own record is
/// used for packages it lacks), and for the core the site runs.
pub fn compare(
    site: &BTreeMap<PackageName, SitePackage>,
    profile: &PackageName,
    current: Option<&Codebase>,
    target_name: &PlatformName,
    target: &Codebase,
) -> Comparison {
    compare_with(
        site,
        &SiteExtras::default(),
        profile,
        current,
        target_name,
        target,
    )
}

/// [`compare`] for a site with [`SiteExtras`] (a Drupal site).
pub fn compare_with(
    site: &BTreeMap<PackageName, SitePackage>,
    extras: &SiteExtras,
    profile: &PackageName,
    current: Option<&Codebase>,
    target_name: &PlatformName,
    target: &Codebase,
) -> Comparison {
    let mut packages = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if let Some(why) = not_a_migration(site, current, target) {
        // Nothing else can be said: the packages are of another world.
        return Comparison {
            target: target_name.clone(),
            packages,
            errors: vec![why],
            warnings,
        };
    }
    for (name, sp) in site {
        let tp = target.packages.get(name);
        let cp = current.and_then(|c| c.packages.get(name));
        let ran = extras
            .post_updates
            .get(name)
            .map_or(&[][..], |v| v.as_slice());
        let hidden = extras.hidden.contains(name) || cp.is_some_and(|c| c.hidden);
        let pv = verdict(name, sp, ran, hidden, tp, cp);
        if sp.enabled {
            // Whether updates were removed cannot be told: block.
            if let Some(why) = tp.and_then(|t| t.last_removed_unreadable.as_ref()) {
                errors.push(format!(
                    "{name}: cannot tell which updates the target removed: {why}"
                ));
            }
        }
        match pv.severity {
            Severity::Error => errors.push(pv.describe()),
            Severity::Warning => warnings.push(pv.describe()),
            Severity::Ok => {}
        }
        packages.push(pv);
    }
    let has_profile = target
        .packages
        .get(profile)
        .is_some_and(|p| p.kind == PackageKind::Profile);
    if !has_profile {
        errors.push(format!(
            "the site's profile {profile} is missing on {target_name}"
        ));
    }
    Comparison {
        target: target_name.clone(),
        packages,
        errors,
        warnings,
    }
}

/// One package's verdict: `sp` as the site has it, `tp` on the target, `cp`
/// on the site's current codebase.
fn verdict(
    name: &PackageName,
    sp: &SitePackage,
    ran: &[String],
    hidden: bool,
    tp: Option<&Package>,
    cp: Option<&Package>,
) -> PackageVerdict {
    let current_version = cp
        .map(|p| p.version.clone())
        .unwrap_or_else(|| sp.version.clone());
    // Post-updates the site ran that the target neither has nor removed.
    let unknown_post_updates: Vec<String> = match tp {
        Some(t) if sp.enabled => ran
            .iter()
            .filter(|u| {
                t.post_updates.binary_search(u).is_err()
                    && t.removed_post_updates.binary_search(u).is_err()
            })
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let verdict = match tp {
        _ if !sp.enabled => Verdict::Disabled,
        None => Verdict::Missing,
        Some(t) if t.schema() < sp.schema || !unknown_post_updates.is_empty() => {
            Verdict::SchemaDowngrade
        }
        Some(t) if t.last_removed.is_some_and(|lr| lr > sp.schema) => Verdict::UpdatesRemoved,
        Some(t) if t.schema() > sp.schema || t.post_updates.iter().any(|p| !ran.contains(p)) => {
            Verdict::Upgrade
        }
        Some(t) if t.version.is_older_than(&current_version) => Verdict::VersionDowngrade,
        Some(_) => Verdict::Same,
    };
    let (pending, pending_post_updates) = match (&verdict, tp) {
        (Verdict::Upgrade, Some(t)) => (
            t.updates
                .iter()
                .copied()
                .filter(|n| *n > sp.schema)
                .collect(),
            t.post_updates
                .iter()
                .filter(|p| !ran.contains(p))
                .cloned()
                .collect(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    let severity = match verdict {
        // A hidden extension is listed, never reported missing.
        Verdict::Missing if hidden => Severity::Ok,
        v => v.severity(),
    };
    PackageVerdict {
        name: name.clone(),
        kind: sp.kind,
        severity,
        verdict,
        site_schema: Some(sp.schema),
        target_schema: tp.map(|t| t.schema()),
        current_version: Some(current_version),
        target_version: tp.map(|t| t.version.clone()),
        pending,
        last_removed: tp.and_then(|t| t.last_removed),
        pending_post_updates,
        unknown_post_updates,
    }
}

/// The packages a fresh install of `profile` on `codebase` would record, as
/// if observed on the site: used to compare a clone of a site that is not
/// installed yet, and to list what a `create` installs.
pub fn fresh_install(
    codebase: &Codebase,
    profile: &PackageName,
) -> Result<BTreeMap<PackageName, SitePackage>, String> {
    let order = codebase.install_set(profile)?;
    Ok(order
        .into_iter()
        .filter_map(|n| {
            codebase.packages.get(&n).map(|p| {
                let sp = SitePackage {
                    kind: p.kind,
                    enabled: true,
                    version: p.version.clone(),
                    schema: p.schema(),
                };
                (n.clone(), sp)
            })
        })
        .collect())
}

/// The verdicts that list what a new install will get.
pub fn install_verdicts(
    codebase: &Codebase,
    profile: &PackageName,
) -> Result<Vec<PackageVerdict>, String> {
    let order = codebase.install_set(profile)?;
    Ok(order
        .iter()
        .filter_map(|n| codebase.packages.get(n))
        .map(|p| PackageVerdict {
            name: p.name.clone(),
            kind: p.kind,
            verdict: Verdict::Install,
            severity: Severity::Ok,
            site_schema: None,
            target_schema: Some(p.schema()),
            current_version: None,
            target_version: Some(p.version.clone()),
            pending: Vec::new(),
            last_removed: p.last_removed,
            pending_post_updates: Vec::new(),
            unknown_post_updates: Vec::new(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    //! The seed's worked example: a site on platform X with core at schema 3,
    //! a `views` module, a disabled `old` module and the `standard` profile,
    //! compared with four targets. A: error, B: warning, C: same, D: upgrade.
    use super::*;

    fn n(s: &str) -> PackageName {
        PackageName::new(s).unwrap()
    }
    fn ver(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }
    fn pkg(name: &str, kind: PackageKind, version: &str, schema: u32) -> Package {
        Package::embedded(n(name), kind, ver(version), (1..=schema).collect())
    }
    fn codebase(pkgs: Vec<Package>) -> Codebase {
        Codebase {
            packages: pkgs.into_iter().map(|p| (p.name.clone(), p)).collect(),
            drupal: None,
        }
    }
    fn site() -> BTreeMap<PackageName, SitePackage> {
        let sp = |kind, v: &str, schema, enabled| SitePackage {
            kind,
            enabled,
            version: Version::Semver(ver(v)),
            schema,
        };
        BTreeMap::from([
            (n("core"), sp(PackageKind::Library, "1.1.0", 3, true)),
            (n("views"), sp(PackageKind::Module, "2.0.0", 1, true)),
            (n("old"), sp(PackageKind::Module, "0.9.0", 7, false)),
            (n("standard"), sp(PackageKind::Profile, "1.0.0", 0, true)),
        ])
    }
    fn current() -> Codebase {
        codebase(vec![
            pkg("core", PackageKind::Library, "1.1.0", 3),
            pkg("views", PackageKind::Module, "2.0.0", 1),
            pkg("standard", PackageKind::Profile, "1.0.0", 0),
        ])
    }
    fn run(target: Codebase) -> Comparison {
        compare(
            &site(),
            &n("standard"),
            Some(&current()),
            &PlatformName::new("t").unwrap(),
            &target,
        )
    }
    fn verdict(c: &Comparison, name: &str) -> Verdict {
        c.packages
            .iter()
            .find(|p| p.name.as_str() == name)
            .unwrap()
            .verdict
    }

    #[test]
    fn seed_platform_a_is_an_error() {
        // A: core at schema 2 is older than the site's applied 3.
        let a = run(codebase(vec![
            pkg("core", PackageKind::Library, "1.0.0", 2),
            pkg("views", PackageKind::Module, "2.0.0", 1),
            pkg("standard", PackageKind::Profile, "1.0.0", 0),
        ]));
        assert_eq!(verdict(&a, "core"), Verdict::SchemaDowngrade);
        assert_eq!(a.errors.len(), 1, "{:?}", a.errors);
        assert!(a.blocked(false));
    }

    #[test]
    fn seed_platform_b_is_a_warning() {
        // B: views is missing; it would be disabled.
        let b = run(codebase(vec![
            pkg("core", PackageKind::Library, "1.1.0", 3),
            pkg("standard", PackageKind::Profile, "1.0.0", 0),
        ]));
        assert_eq!(verdict(&b, "views"), Verdict::Missing);
        assert!(b.errors.is_empty());
        assert_eq!(b.warnings.len(), 1);
        assert!(!b.blocked(false));
        assert!(b.blocked(true), "strict makes warnings block");
    }

    #[test]
    fn seed_platform_c_is_the_same() {
        let c = run(current());
        for p in ["core", "views", "standard"] {
            assert_eq!(verdict(&c, p), Verdict::Same, "{p}");
        }
        assert!(c.errors.is_empty() && c.warnings.is_empty());
        assert_eq!(c.upgrades(), 0);
    }

    #[test]
    fn seed_platform_d_upgrades_with_pending_numbers() {
        let d = run(codebase(vec![
            pkg("core", PackageKind::Library, "2.0.0", 5),
            pkg("views", PackageKind::Module, "2.0.0", 1),
            pkg("standard", PackageKind::Profile, "1.0.0", 0),
        ]));
        let core = d
            .packages
            .iter()
            .find(|p| p.name.as_str() == "core")
            .unwrap();
        assert_eq!(core.verdict, Verdict::Upgrade);
        assert_eq!(core.pending, vec![4, 5]);
        assert_eq!(d.upgrades(), 1);
        assert!(!d.blocked(true));
    }

    #[test]
    fn version_downgrade_at_same_schema_is_a_warning() {
        let t = run(codebase(vec![
            pkg("core", PackageKind::Library, "1.0.9", 3),
            pkg("views", PackageKind::Module, "2.0.0", 1),
            pkg("standard", PackageKind::Profile, "1.0.0", 0),
        ]));
        assert_eq!(verdict(&t, "core"), Verdict::VersionDowngrade);
        assert_eq!(t.warnings.len(), 1);
        assert!(!t.blocked(false));
    }

    #[test]
    fn missing_profile_is_an_error() {
        let t = run(codebase(vec![
            pkg("core", PackageKind::Library, "1.1.0", 3),
            pkg("views", PackageKind::Module, "2.0.0", 1),
        ]));
        assert!(
            t.errors
                .iter()
                .any(|e| e.contains("profile standard is missing")),
            "{:?}",
            t.errors
        );
        assert!(t.blocked(false));
    }

    #[test]
    fn disabled_packages_are_listed_never_blocking() {
        // `old` is at schema 7 but disabled, and missing everywhere.
        let c = run(current());
        assert_eq!(verdict(&c, "old"), Verdict::Disabled);
        assert!(!c.blocked(true));
    }

    #[test]
    fn fresh_install_records_newest_schemas() {
        let mut prof = pkg("standard", PackageKind::Profile, "1.0.0", 0);
        prof.install = vec![n("core")];
        let cb = codebase(vec![prof, pkg("core", PackageKind::Library, "2.0.0", 5)]);
        let f = fresh_install(&cb, &n("standard")).unwrap();
        assert_eq!(f[&n("core")].schema, 5);
        assert_eq!(f.len(), 2);
    }
}
