//! Which rollout wave each site task runs in (spec section 9). Pure: the
//! same sites and `rollout:` always give the same waves, so a plan
//! reviewed in a pull request is the rollout that runs.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::inventory::rollout::{Rollout, Select};
use crate::names::SiteName;

/// A site with changes, as wave assignment sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The site.
    pub name: &'a SiteName,
    /// Its labels (empty for a site no longer declared).
    pub labels: &'a BTreeMap<String, String>,
}

/// Gives each candidate the index of its wave in `rollout.waves`: the first
/// wave that selects it wins; a wave without `select` takes every site
/// left. A candidate no wave selects is missing from the result.
pub fn assign<'a>(
    rollout: &Rollout,
    candidates: &[Candidate<'a>],
) -> BTreeMap<&'a SiteName, usize> {
    let mut out = BTreeMap::new();
    for (i, wave) in rollout.waves.iter().enumerate() {
        let left: Vec<&Candidate<'a>> = candidates
            .iter()
            .filter(|c| !out.contains_key(c.name))
            .collect();
        let chosen: Vec<&'a SiteName> = match &wave.select {
            None => left.iter().map(|c| c.name).collect(),
            Some(sel) => select(sel, &left),
        };
        for n in chosen {
            out.insert(n, i);
        }
    }
    out
}

/// The sites of `left` that `sel` takes: those named (else those with
/// every label), then, with `percent`, that share of them rounded up,
/// picked in the order of [`rank`].
fn select<'a>(sel: &Select, left: &[&Candidate<'a>]) -> Vec<&'a SiteName> {
    let named: BTreeSet<&SiteName> = sel.sites.iter().collect();
    let mut matching: Vec<&'a SiteName> = left
        .iter()
        .filter(|c| {
            if !sel.sites.is_empty() {
                named.contains(c.name)
            } else {
                sel.labels.iter().all(|(k, v)| c.labels.get(k) == Some(v))
            }
        })
        .map(|c| c.name)
        .collect();
    if let Some(p) = sel.percent {
        let keep = (matching.len() * usize::from(p.min(100))).div_ceil(100);
        matching.sort_by_cached_key(|n| rank(n));
        matching.truncate(keep);
        matching.sort();
    }
    matching
}

/// Where a site stands when a percentage is picked: a hash of its name,
/// so the pick is spread over the fleet (not the first names in the
/// alphabet) yet the same on every run, and a site keeps its place when
/// others join or leave. The name breaks the (unlikely) ties.
pub fn rank(name: &SiteName) -> ([u8; 8], String) {
    let d = Sha256::digest(name.as_str().as_bytes());
    let mut k = [0u8; 8];
    k.copy_from_slice(&d[..8]);
    (k, name.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::rollout::{FailureBudget, OnFailure, Wave};

    fn n(s: &str) -> SiteName {
        SiteName::new(s).unwrap()
    }

    fn wave(name: &str, select: Option<Select>) -> Wave {
        Wave {
            name: name.into(),
            select,
        }
    }

    fn rollout(waves: Vec<Wave>) -> Rollout {
        Rollout {
            waves,
            bake_s: 0,
            failure_budget: FailureBudget::default(),
            on_failure: OnFailure::Halt,
        }
    }

    fn fleet(names: &[SiteName], gold: &[&str]) -> Vec<BTreeMap<String, String>> {
        names
            .iter()
            .map(|s| {
                let tier = if gold.contains(&s.as_str()) {
                    "gold"
                } else {
                    "basic"
                };
                BTreeMap::from([("tier".to_string(), tier.to_string())])
            })
            .collect()
    }

    fn cands<'a>(
        names: &'a [SiteName],
        labels: &'a [BTreeMap<String, String>],
    ) -> Vec<Candidate<'a>> {
        names
            .iter()
            .zip(labels)
            .map(|(name, labels)| Candidate { name, labels })
            .collect()
    }

    #[test]
    fn first_matching_wave_wins_and_a_wave_without_select_takes_the_rest() {
        let names: Vec<SiteName> = ["a", "b", "c", "d"].iter().map(|s| n(s)).collect();
        let labels = fleet(&names, &["a", "c"]);
        let r = rollout(vec![
            wave(
                "canary",
                Some(Select {
                    sites: vec![n("a")],
                    ..Select::default()
                }),
            ),
            wave(
                "gold",
                Some(Select {
                    labels: BTreeMap::from([("tier".into(), "gold".into())]),
                    ..Select::default()
                }),
            ),
            wave("rest", None),
        ]);
        let got = assign(&r, &cands(&names, &labels));
        assert_eq!(got[&n("a")], 0, "a is named by the canary, before gold");
        assert_eq!(got[&n("c")], 1);
        assert_eq!(got[&n("b")], 2);
        assert_eq!(got[&n("d")], 2);
    }

    #[test]
    fn percent_rounds_up_and_is_the_same_whatever_the_input_order() {
        let names: Vec<SiteName> = (0..10).map(|i| n(&format!("site-{i}"))).collect();
        let labels = fleet(&names, &[]);
        let r = rollout(vec![wave(
            "early",
            Some(Select {
                percent: Some(25),
                ..Select::default()
            }),
        )]);
        let got = assign(&r, &cands(&names, &labels));
        assert_eq!(got.len(), 3, "25% of 10 is 2.5, rounded up");
        let mut rev = names.clone();
        rev.reverse();
        let labels_rev = fleet(&rev, &[]);
        let again = assign(&r, &cands(&rev, &labels_rev));
        assert_eq!(got, again);
        // One site is always at least one.
        let one = [n("solo")];
        let l1 = fleet(&one, &[]);
        assert_eq!(assign(&r, &cands(&one, &l1)).len(), 1);
    }

    #[test]
    fn percent_is_of_the_matching_sites_not_yet_in_a_wave() {
        let names: Vec<SiteName> = (0..8).map(|i| n(&format!("s{i}"))).collect();
        let labels = fleet(&names, &["s0", "s1", "s2", "s3"]);
        let r = rollout(vec![
            wave(
                "canary",
                Some(Select {
                    sites: vec![n("s0")],
                    ..Select::default()
                }),
            ),
            wave(
                "half-gold",
                Some(Select {
                    labels: BTreeMap::from([("tier".into(), "gold".into())]),
                    percent: Some(50),
                    ..Select::default()
                }),
            ),
        ]);
        let got = assign(&r, &cands(&names, &labels));
        let second: Vec<_> = got.iter().filter(|(_, w)| **w == 1).collect();
        // Three gold sites left after the canary: half of them, rounded up.
        assert_eq!(second.len(), 2);
        assert!(second
            .iter()
            .all(|(s, _)| ["s1", "s2", "s3"].contains(&s.as_str())));
        // No wave takes the basic sites.
        assert!(!got.contains_key(&n("s5")));
    }
}
