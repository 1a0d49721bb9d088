//! A saved plan (`hoist plan --out FILE`) is a review token, not an
//! instruction: `hoist apply FILE` plans afresh from the inventory and a
//! fresh observation, carries out that fresh plan, and only when it does
//! what the saved one said. The file may have been edited, or come from
//! anywhere: nothing in it is ever carried out. Pure: reading the file is
//! the caller's.

use std::collections::BTreeMap;
use std::fmt;

use super::{Endpoint, Mode, Plan, PlatformAction, PlatformPlan, SitePlan};
use crate::names::{Name, SiteName};

/// The largest saved plan read, in bytes: a 10,000-site plan is tens of
/// megabytes; a bigger file is no plan of hoist's.
pub const MAX_BYTES: u64 = 256 << 20;

/// A saved plan that cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    /// Bigger than [`MAX_BYTES`].
    #[error("it is {size} bytes; a hoist plan is at most {MAX_BYTES}")]
    TooBig {
        /// Its size (at least).
        size: u64,
    },
    /// Not JSON, or not a plan: what the parser said, with line and column.
    #[error("it is not a hoist plan: {0}")]
    NotAPlan(String),
    /// Another format version.
    #[error(
        "it has plan format {found}, this hoist reads {}",
        super::FORMAT_VERSION
    )]
    Format {
        /// The version it has.
        found: u32,
    },
    /// Made from the status files.
    #[error("it is an offline plan; apply needs a plan made against the servers")]
    Offline,
}

/// Parses a saved plan's bytes.
pub fn parse(bytes: &[u8]) -> Result<Plan, SavedPlanError> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(SavedPlanError::TooBig {
            size: bytes.len() as u64,
        });
    }
    // Only the version first: a plan of another format may not parse.
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    // The parser's words may quote the file: one clean line.
    let not_a_plan =
        |e: serde_json::Error| SavedPlanError::NotAPlan(crate::text::line(&e.to_string()).into());
    let v: Version = serde_json::from_slice(bytes).map_err(not_a_plan)?;
    if v.format_version != super::FORMAT_VERSION {
        return Err(SavedPlanError::Format {
            found: v.format_version,
        });
    }
    let plan: Plan = serde_json::from_slice(bytes).map_err(not_a_plan)?;
    if plan.mode != Mode::Live {
        return Err(SavedPlanError::Offline);
    }
    Ok(plan)
}

/// One way a saved plan differs from the fresh one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What differs: `site acme`, `platform shop-2-0`, `inventory commit`.
    pub what: String,
    /// What the saved plan says.
    pub saved: String,
    /// What the fresh plan says.
    pub fresh: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the saved plan says {}, a fresh plan says {}",
            self.what, self.saved, self.fresh
        )
    }
}

/// Why a saved plan is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The servers changed since it was made: the sites whose observed
    /// state changed (empty when only something else did).
    pub stale: Option<Vec<SiteName>>,
    /// What it says that a fresh plan does not.
    pub differences: Vec<Difference>,
}

/// The differences listed in a refusal; the rest are counted.
const LISTED: usize = 20;

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stale {
            Some(changed) => {
                write!(
                    f,
                    "it is stale: what is on the servers changed since it was made"
                )?;
                if !changed.is_empty() {
                    let names: Vec<&str> = changed.iter().map(|n| n.as_str()).collect();
                    write!(f, " (changed: {})", names.join(", "))?;
                }
            }
            None => write!(
                f,
                "it does not match a fresh plan (it was edited, or the inventory changed since)"
            )?,
        }
        for d in self.differences.iter().take(LISTED) {
            // The saved side comes from the file: one clean line.
            write!(f, "\n  {}", crate::text::line(&d.to_string()))?;
        }
        if self.differences.len() > LISTED {
            write!(f, "\n  and {} more", self.differences.len() - LISTED)?;
        }
        Ok(())
    }
}

fn endpoint(e: &Option<Endpoint>) -> String {
    e.as_ref()
        .map(|e| format!("{} on {}", e.domain, e.platform))
        .unwrap_or_else(|| "-".into())
}

/// What a site's entry commits to: its action, where from and to, the
/// clone source, and whether it is blocked.
fn site_gist(s: &SitePlan) -> String {
    let mut g = format!(
        "{} (from {}, to {}",
        s.action.as_str(),
        endpoint(&s.from),
        endpoint(&s.to)
    );
    if let Some(src) = &s.clone_from {
        g.push_str(&format!(", copy of {src}"));
    }
    g.push(')');
    if let Some(w) = &s.wave {
        g.push_str(&format!(" in wave {w}"));
    }
    if s.blocked {
        g.push_str(", blocked");
    }
    g
}

/// What a platform's entry commits to: its action, server, the source it is
/// built from, and whether it is blocked.
fn platform_gist(p: &PlatformPlan) -> String {
    let mut g = format!("{} on {}", p.action.as_str(), p.server);
    if p.action == PlatformAction::Build {
        g.push_str(&format!(
            " from source {}",
            p.source_hash.as_deref().unwrap_or("-")
        ));
    }
    if p.blocked {
        g.push_str(", blocked");
    }
    g
}

/// Pairs the entries of the saved and fresh lists by name and records every
/// pair whose gists differ (an entry on one side only, or twice in the
/// saved plan, differs too).
fn compare<T>(
    kind: &str,
    saved: &[T],
    fresh: &[T],
    name: impl Fn(&T) -> &Name,
    gist: impl Fn(&T) -> String,
    out: &mut Vec<Difference>,
) {
    let mut pairs: BTreeMap<&Name, (Option<String>, Option<String>)> = BTreeMap::new();
    for s in saved {
        let slot = &mut pairs.entry(name(s)).or_default().0;
        if slot.is_some() {
            out.push(Difference {
                what: format!("{kind} {}", name(s)),
                saved: "it twice".into(),
                fresh: "it once".into(),
            });
        }
        *slot = Some(gist(s));
    }
    for f in fresh {
        pairs.entry(name(f)).or_default().1 = Some(gist(f));
    }
    let none = || "nothing".to_string();
    for (n, (s, f)) in pairs {
        if s != f {
            out.push(Difference {
                what: format!("{kind} {n}"),
                saved: s.unwrap_or_else(none),
                fresh: f.unwrap_or_else(none),
            });
        }
    }
}

/// Checks a saved plan against the fresh plan made for the same sites:
/// it may be carried out (as the fresh plan) only when every site and
/// platform has the same action, endpoints, clone source and blocked flag,
/// the inventory commit it names is the one planned from, and the servers
/// have not changed since.
pub fn check(saved: &Plan, fresh: &Plan) -> Result<(), Refusal> {
    let mut differences = Vec::new();
    if let Some(c) = &saved.inventory.commit {
        if fresh.inventory.commit.as_ref() != Some(c) {
            differences.push(Difference {
                what: "inventory commit".into(),
                saved: crate::text::clip(c, 40).into_owned(),
                fresh: fresh
                    .inventory
                    .commit
                    .clone()
                    .unwrap_or_else(|| "none".into()),
            });
        }
    }
    compare(
        "platform",
        &saved.platforms,
        &fresh.platforms,
        |p| &p.name,
        platform_gist,
        &mut differences,
    );
    compare(
        "site",
        &saved.sites,
        &fresh.sites,
        |s| &s.name,
        site_gist,
        &mut differences,
    );
    let stale = (saved.observed != fresh.observed).then(|| {
        let before: BTreeMap<&SiteName, &Option<String>> =
            saved.sites.iter().map(|s| (&s.name, &s.observed)).collect();
        fresh
            .sites
            .iter()
            .filter(|f| before.get(&f.name).is_some_and(|o| **o != f.observed))
            .map(|f| f.name.clone())
            .collect()
    });
    if stale.is_none() && differences.is_empty() {
        Ok(())
    } else {
        Err(Refusal { stale, differences })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{InventoryRef, SiteAction, Summary};

    fn ep(platform: &str, domain: &str) -> Option<Endpoint> {
        Some(Endpoint {
            platform: Name::new(platform).unwrap(),
            domain: crate::names::Domain::new(domain).unwrap(),
            server: None,
        })
    }

    fn site(name: &str, action: SiteAction, to: &str) -> SitePlan {
        SitePlan {
            name: Name::new(name).unwrap(),
            action,
            blocked: false,
            from: ep("shop-1", &format!("{name}.example.com")),
            to: ep(to, &format!("{name}.example.com")),
            clone_from: None,
            unmanaged: false,
            packages: vec![],
            errors: vec![],
            warnings: vec![],
            diff: String::new(),
            config: None,
            observed: Some(format!("obs-{name}")),
            suspended: None,
            wave: None,
        }
    }

    fn plan(sites: Vec<SitePlan>) -> Plan {
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            inventory: InventoryRef {
                path: "inv".into(),
                commit: Some("a".repeat(40)),
            },
            mode: Mode::Live,
            strict: false,
            selected: vec![],
            observed: "obs".into(),
            summary: Summary::default(),
            platforms: vec![PlatformPlan {
                name: Name::new("shop-2").unwrap(),
                action: PlatformAction::Build,
                blocked: false,
                server: Name::new("local").unwrap(),
                source: None,
                source_hash: Some("h1".into()),
                unmanaged: false,
                errors: vec![],
                warnings: vec![],
                suspended: None,
            }],
            sites,
        }
    }

    fn base() -> Plan {
        plan(vec![
            site("acme", SiteAction::Migrate, "shop-2"),
            site("bakery", SiteAction::Noop, "shop-1"),
        ])
    }

    fn refused(saved: &Plan, fresh: &Plan) -> Refusal {
        check(saved, fresh).expect_err("refused")
    }

    #[test]
    fn the_same_plan_passes_even_with_other_words() {
        let fresh = base();
        let mut saved = base();
        // messages, diffs and verdicts are for people; they do not count
        saved.sites[0].warnings.push("edited".into());
        saved.sites[0].diff = "+anything".into();
        saved.summary.changes = 99;
        assert_eq!(check(&saved, &fresh), Ok(()));
    }

    #[test]
    fn an_edited_action_is_named_with_both_sides() {
        let fresh = base();
        let mut saved = base();
        saved.sites[1].action = SiteAction::Delete;
        let r = refused(&saved, &fresh);
        assert_eq!(r.stale, None);
        assert_eq!(r.differences.len(), 1);
        let d = &r.differences[0];
        assert_eq!(d.what, "site bakery");
        assert!(
            d.saved.starts_with("delete") && d.fresh.starts_with("noop"),
            "{d}"
        );
        let text = r.to_string();
        assert!(text.contains("does not match a fresh plan"), "{text}");
        assert!(
            text.contains("site bakery: the saved plan says delete"),
            "{text}"
        );
    }

    #[test]
    fn targets_blocked_flags_added_sites_and_platforms_count() {
        let fresh = base();
        let mut target = base();
        target.sites[0].to = ep("shop-3", "acme.example.com");
        let d = &refused(&target, &fresh).differences[0];
        assert!(d.saved.contains("to acme.example.com on shop-3"), "{d}");
        assert!(d.fresh.contains("to acme.example.com on shop-2"), "{d}");

        let mut blocked = base();
        blocked.sites[0].blocked = true;
        let mut fresh_blocked = base();
        fresh_blocked.sites[0].blocked = true;
        assert!(check(&blocked, &fresh_blocked).is_ok());
        let d = &refused(&fresh_blocked, &fresh).differences[0];
        assert!(
            d.saved.ends_with(", blocked") && !d.fresh.contains("blocked"),
            "{d}"
        );

        let mut added = base();
        added
            .sites
            .push(site("ghost", SiteAction::Delete, "shop-1"));
        let d = &refused(&added, &fresh).differences[0];
        assert_eq!(
            (d.what.as_str(), d.fresh.as_str()),
            ("site ghost", "nothing")
        );

        let mut removed = base();
        removed.sites.remove(0);
        let d = &refused(&removed, &fresh).differences[0];
        assert_eq!(
            (d.what.as_str(), d.saved.as_str()),
            ("site acme", "nothing")
        );

        let mut twice = base();
        twice.sites.push(twice.sites[0].clone());
        let d = &refused(&twice, &fresh).differences[0];
        assert_eq!(
            (d.what.as_str(), d.saved.as_str()),
            ("site acme", "it twice")
        );

        let mut source = base();
        source.platforms[0].source_hash = Some("h2".into());
        let d = &refused(&source, &fresh).differences[0];
        assert_eq!(d.what, "platform shop-2");
    }

    #[test]
    fn another_commit_or_a_changed_server_is_refused() {
        let fresh = base();
        let mut commit = base();
        commit.inventory.commit = Some("b".repeat(40));
        let d = &refused(&commit, &fresh).differences[0];
        assert_eq!(d.what, "inventory commit");
        // a saved plan naming no commit is not held to one
        let mut none = base();
        none.inventory.commit = None;
        assert!(check(&none, &fresh).is_ok());

        let mut stale = base();
        stale.observed = "older".into();
        stale.sites[0].observed = Some("older-acme".into());
        let r = refused(&stale, &fresh);
        assert_eq!(r.stale, Some(vec![Name::new("acme").unwrap()]));
        assert!(r.differences.is_empty());
        assert!(r.to_string().contains("stale") && r.to_string().contains("acme"));
    }

    #[test]
    fn bad_files_are_errors_not_panics() {
        let good = serde_json::to_vec(&base()).unwrap();
        assert!(parse(&good).is_ok());
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"{\"format_version\": 1}",
            b"{\"format_version\": \"1\"}",
            &[0xff, 0xfe, 0x00],
        ] {
            assert!(
                matches!(parse(bad), Err(SavedPlanError::NotAPlan(_))),
                "{bad:?}"
            );
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(SavedPlanError::NotAPlan(_))
        ));
        let v2 = String::from_utf8(good.clone())
            .unwrap()
            .replace("\"format_version\":1", "\"format_version\":2");
        assert!(matches!(
            parse(v2.as_bytes()),
            Err(SavedPlanError::Format { found: 2 })
        ));
        let bad_name = String::from_utf8(good.clone())
            .unwrap()
            .replace("\"bakery\"", "\"../etc\"");
        let e = parse(bad_name.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("not a hoist plan") && e.contains("line"), "{e}");
        let mut offline = base();
        offline.mode = Mode::Offline;
        assert!(matches!(
            parse(&serde_json::to_vec(&offline).unwrap()),
            Err(SavedPlanError::Offline)
        ));
    }
}
