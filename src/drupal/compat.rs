//! The compatibility rules of spec section 5 for Drupal: may a site, as its
//! database records it, move onto a target codebase?
//!
//! The verdicts are those of [`crate::compat::Verdict`] plus
//! `updates-removed`; severities are [`crate::compat::Severity`]. Besides
//! the per-extension verdicts, two checks block the whole move: a change of
//! the core's major version (not a migration), and the site's profile
//! missing on the target.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::scan::{DrupalCodebase, Extension, ExtensionKind, Generation, Resolved};
use super::state::{SiteExtension, SiteState};
use super::version::DrupalVersion;
use crate::compat::Severity;

/// What moving onto the target means for one extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrupalVerdict {
    /// Nothing to run.
    Same,
    /// Updates or post-updates will run.
    Upgrade,
    /// The target lacks it: it will be disabled.
    Missing,
    /// The site applied an update, or ran a post-update, the target lacks.
    SchemaDowngrade,
    /// Same schema, older version than the current platform's.
    VersionDowngrade,
    /// The target removed updates the site has not applied yet
    /// (`hook_update_last_removed()` above the site's schema).
    UpdatesRemoved,
    /// Disabled on the site: listed, never blocking.
    Disabled,
}

impl DrupalVerdict {
    /// The verdict's fixed name.
    pub fn as_str(self) -> &'static str {
        match self {
            DrupalVerdict::Same => "same",
            DrupalVerdict::Upgrade => "upgrade",
            DrupalVerdict::Missing => "missing",
            DrupalVerdict::SchemaDowngrade => "schema-downgrade",
            DrupalVerdict::VersionDowngrade => "version-downgrade",
            DrupalVerdict::UpdatesRemoved => "updates-removed",
            DrupalVerdict::Disabled => "disabled",
        }
    }

    /// How serious the verdict is.
    pub fn severity(self) -> Severity {
        match self {
            DrupalVerdict::Same | DrupalVerdict::Upgrade | DrupalVerdict::Disabled => Severity::Ok,
            DrupalVerdict::Missing | DrupalVerdict::VersionDowngrade => Severity::Warning,
            DrupalVerdict::SchemaDowngrade | DrupalVerdict::UpdatesRemoved => Severity::Error,
        }
    }
}

/// One extension's verdict against the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionVerdict {
    /// The extension.
    pub name: String,
    /// Its kind on the site.
    pub kind: ExtensionKind,
    /// The verdict.
    pub verdict: DrupalVerdict,
    /// Its severity: the verdict's, except that a hidden extension missing
    /// on the target is listed, never reported (ok).
    pub severity: Severity,
    /// Hidden, on the current codebase or by the site's record.
    pub hidden: bool,
    /// The schema the site has applied.
    pub site_schema: Option<u32>,
    /// The schema the target installs.
    pub target_schema: Option<u32>,
    /// The target's `hook_update_last_removed()`.
    pub last_removed: Option<u32>,
    /// The version on the current platform (or as the site recorded it).
    pub current_version: Option<DrupalVersion>,
    /// The version on the target.
    pub target_version: Option<DrupalVersion>,
    /// Updates that will run, ascending.
    pub pending: Vec<u32>,
    /// Post-updates that will run, in Drupal's (alphabetical) order.
    pub pending_post_updates: Vec<String>,
    /// Post-updates the site ran that the target does not know.
    pub unknown_post_updates: Vec<String>,
}

impl ExtensionVerdict {
    /// A sentence for reports.
    pub fn describe(&self) -> String {
        let v = |o: &Option<DrupalVersion>| o.as_ref().map_or("?".into(), |v| v.to_string());
        let n = self.name.as_str();
        match self.verdict {
            DrupalVerdict::Same => format!("{n}: same (schema {})", self.site_schema.unwrap_or(0)),
            DrupalVerdict::Upgrade => {
                let mut parts: Vec<String> = Vec::new();
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
            DrupalVerdict::Missing if self.hidden => {
                format!("{n}: hidden, missing on the target; it will be disabled")
            }
            DrupalVerdict::Missing => format!("{n}: missing on the target; it will be disabled"),
            DrupalVerdict::SchemaDowngrade if !self.unknown_post_updates.is_empty() => format!(
                "{n}: schema downgrade: the site has run post-updates the target does not know: {}",
                self.unknown_post_updates.join(", ")
            ),
            DrupalVerdict::SchemaDowngrade => format!(
                "{n}: schema downgrade: the site has applied update {}, the target has only {}",
                self.site_schema.unwrap_or(0),
                self.target_schema.unwrap_or(0)
            ),
            DrupalVerdict::VersionDowngrade => format!(
                "{n}: version downgrade {} -> {} at the same schema",
                v(&self.current_version),
                v(&self.target_version)
            ),
            DrupalVerdict::UpdatesRemoved => format!(
                "{n}: updates removed: the site is at schema {}, the target removed updates up to {}; update on a platform that still has them first",
                self.site_schema.unwrap_or(0),
                self.last_removed.unwrap_or(0)
            ),
            DrupalVerdict::Disabled => format!("{n}: disabled on the site; left as it is"),
        }
    }
}

/// A Drupal site compared with a target codebase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrupalComparison {
    /// A verdict per installed extension of the site, by name (empty when
    /// the core's major version changes: nothing else can be said).
    pub extensions: Vec<ExtensionVerdict>,
    /// Problems that block the move whatever the policy.
    pub errors: Vec<String>,
    /// Problems that block only under `strict`.
    pub warnings: Vec<String>,
}

impl DrupalComparison {
    /// Whether the move is blocked, under the given strictness.
    pub fn blocked(&self, strict: bool) -> bool {
        !self.errors.is_empty() || (strict && !self.warnings.is_empty())
    }
}

/// The site's core major version: its current codebase's, else what its
/// database recorded (Drupal 7).
fn site_major(site: &SiteState, current: Option<&DrupalCodebase>) -> Option<u64> {
    current
        .map(|c| c.core.major)
        .or_else(|| site.core_version.as_ref().and_then(|v| v.core_major()))
}

/// Compares `site` (living on `current`, when known) with `target`.
pub fn compare(
    site: &SiteState,
    current: Option<&DrupalCodebase>,
    target: &DrupalCodebase,
) -> DrupalComparison {
    let mut out = DrupalComparison {
        extensions: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let tcore = &target.core;
    let major = site_major(site, current);
    if site.generation != tcore.generation || major.is_some_and(|m| m != tcore.major) {
        let from = match (major, site.generation) {
            (Some(m), _) => format!("Drupal {m}"),
            (None, Generation::Drupal7) => "Drupal 7".into(),
            (None, Generation::Drupal8Plus) => "Drupal 8 or later".into(),
        };
        out.errors.push(format!(
            "not a migration: the site runs {from} and the target is Drupal {}; a change of core major version is an upgrade of its own",
            tcore.version
        ));
        return out;
    }
    let profile = site.profile.as_deref();
    let t = target.resolve(profile);
    let cur = current.map(|c| c.resolve(profile));
    let ran = post_updates_by_extension(site);
    for (name, se) in &site.extensions {
        let v = verdict(
            name,
            se,
            lookup(&t, name, se.kind),
            cur.as_ref().and_then(|c| lookup(c, name, se.kind)),
            ran.get(name.as_str()).map_or(&[][..], |v| v.as_slice()),
            tcore.generation,
        );
        if se.enabled {
            // Whether updates were removed cannot be told: block.
            if let Some(why) =
                lookup(&t, name, se.kind).and_then(|e| e.last_removed_unreadable.as_ref())
            {
                out.errors.push(format!(
                    "{name}: cannot tell which updates the target removed: {why}"
                ));
            }
        }
        match v.severity {
            Severity::Error => out.errors.push(v.describe()),
            Severity::Warning => out.warnings.push(v.describe()),
            Severity::Ok => {}
        }
        out.extensions.push(v);
    }
    if let Some(p) = profile {
        if !target.profiles().contains_key(p) {
            out.errors
                .push(format!("the site's profile {p} is missing on the target"));
        }
    }
    out
}

/// The target's copy of an extension, if it is of the same kind.
fn lookup<'a>(r: &Resolved<'a>, name: &str, kind: ExtensionKind) -> Option<&'a Extension> {
    r.extensions.get(name).copied().filter(|e| e.kind == kind)
}

/// The site's post-updates, by the enabled extension whose
/// `NAME_post_update_` prefix they carry (the longest such name).
fn post_updates_by_extension(site: &SiteState) -> BTreeMap<&str, Vec<&str>> {
    const MARK: &str = "_post_update_";
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for u in &site.post_updates {
        // Each place the mark occurs splits off a possible owner.
        let owner = u
            .match_indices(MARK)
            .map(|(i, _)| &u[..i])
            .filter(|n| u.len() > n.len() + MARK.len())
            .filter(|n| site.extensions.get(*n).is_some_and(|e| e.enabled))
            .last();
        if let Some(o) = owner {
            out.entry(o).or_default().push(u);
        }
    }
    out
}

fn verdict(
    name: &str,
    se: &SiteExtension,
    target: Option<&Extension>,
    current: Option<&Extension>,
    ran: &[&str],
    generation: Generation,
) -> ExtensionVerdict {
    let ran_set: HashSet<&str> = ran.iter().copied().collect();
    let hidden = se.hidden || current.is_some_and(|c| c.hidden);
    let current_version = current
        .and_then(|c| c.version.clone())
        .or_else(|| se.version.clone());
    let mut v = ExtensionVerdict {
        name: name.to_string(),
        kind: se.kind,
        verdict: DrupalVerdict::Same,
        severity: Severity::Ok,
        hidden,
        site_schema: se.schema,
        target_schema: target.and_then(|t| t.schema(generation)),
        last_removed: target.and_then(|t| t.last_removed),
        current_version,
        target_version: target.and_then(|t| t.version.clone()),
        pending: Vec::new(),
        pending_post_updates: Vec::new(),
        unknown_post_updates: Vec::new(),
    };
    v.verdict = match target {
        _ if !se.enabled => DrupalVerdict::Disabled,
        None => DrupalVerdict::Missing,
        Some(t) => {
            v.unknown_post_updates = ran
                .iter()
                .filter(|u| {
                    t.post_updates
                        .binary_search_by(|p| p.as_str().cmp(u))
                        .is_err()
                        && t.removed_post_updates
                            .binary_search_by(|p| p.as_str().cmp(u))
                            .is_err()
                })
                .map(|u| u.to_string())
                .collect();
            let schema = se.schema;
            if schema.zip(v.target_schema).is_some_and(|(s, ts)| ts < s)
                || !v.unknown_post_updates.is_empty()
            {
                DrupalVerdict::SchemaDowngrade
            } else if schema.zip(t.last_removed).is_some_and(|(s, lr)| lr > s) {
                DrupalVerdict::UpdatesRemoved
            } else {
                if let Some(s) = schema {
                    v.pending = t.updates.iter().copied().filter(|n| *n > s).collect();
                }
                v.pending_post_updates = t
                    .post_updates
                    .iter()
                    .filter(|p| !ran_set.contains(p.as_str()))
                    .cloned()
                    .collect();
                let older = match (&v.target_version, &v.current_version) {
                    (Some(tv), Some(cv)) => tv < cv,
                    _ => false,
                };
                if !v.pending.is_empty() || !v.pending_post_updates.is_empty() {
                    DrupalVerdict::Upgrade
                } else if older {
                    DrupalVerdict::VersionDowngrade
                } else {
                    DrupalVerdict::Same
                }
            }
        }
    };
    v.severity = match v.verdict {
        DrupalVerdict::Missing if hidden => Severity::Ok,
        other => other.severity(),
    };
    v
}
