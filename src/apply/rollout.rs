//! Rollouts (spec section 9): site tasks in waves, each gated on the health
//! of its sites after `bake_s`, failures counted against the budget; over
//! budget the rollout halts, and with `rollback-wave` the failing wave's
//! succeeded sites are put back (`apply/rollback.rs`).
//!
//! The health checks after a wave go through [`HealthGate`], so that the
//! gate is one narrow seam: the web server's check in the product, any
//! answer a test wants in a test.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::site::server_for;
use super::TaskOutcome;
use crate::driver::health::Health;
use crate::driver::Which;
use crate::inventory::rollout::{FailureBudget, Rollout};
use crate::inventory::Inventory;
use crate::names::SiteName;
use crate::plan::{Plan, SiteAction, SitePlan};
use crate::server::Servers;
use crate::task::TaskResult;

/// Asks whether a site that a wave changed is healthy after the bake.
pub trait HealthGate: Sync {
    /// The site's health now, where its task put it.
    fn check(&self, site: &SitePlan) -> Health;
}

/// The product's gate: the site's health check through its web server
/// (skipped, which passes, with web kind `file`).
pub struct WebGate<'a> {
    /// For each site's health check and server.
    pub inv: &'a Inventory,
    /// Where the sites are.
    pub servers: &'a Servers,
}

impl HealthGate for WebGate<'_> {
    fn check(&self, s: &SitePlan) -> Health {
        let Some(to) = &s.to else {
            return Health::Skipped {
                reason: "the site was deleted".into(),
            };
        };
        // A fleet test fails chosen sites' checks (`rollout-check@SITE`).
        if let Err(e) = crate::failpoint::hit_at(
            "rollout-check",
            Some(s.name.as_str()),
            crate::failpoint::When::Before,
        ) {
            return Health::Failed { reason: e };
        }
        match server_for(self.inv, self.servers, &to.platform) {
            Ok(srv) => srv.web().check(
                &to.domain,
                Which::Site,
                &super::cutover::health_of(self.inv, &s.name),
            ),
            Err(e) => Health::Failed {
                reason: e.to_string(),
            },
        }
    }
}

/// One wave of one apply: its name (none without `rollout:`) and its site
/// tasks in plan order.
#[derive(Debug)]
pub struct WaveTasks<'a> {
    /// The wave's name.
    pub name: Option<String>,
    /// Its sites.
    pub sites: Vec<&'a SitePlan>,
}

/// The waves of `plan`'s runnable site tasks, in `rollout:` order; one
/// unnamed wave without it. Empty waves are kept: progress and the report
/// show them.
pub fn group<'a>(plan: &'a Plan, rollout: Option<&Rollout>) -> Vec<WaveTasks<'a>> {
    let runnable = || {
        plan.sites
            .iter()
            .filter(|s| s.action != SiteAction::Noop && !s.blocked)
    };
    match rollout {
        None => vec![WaveTasks {
            name: None,
            sites: runnable().collect(),
        }],
        Some(r) => r
            .waves
            .iter()
            .map(|w| WaveTasks {
                name: Some(w.name.clone()),
                sites: runnable()
                    .filter(|s| s.wave.as_deref() == Some(w.name.as_str()))
                    .collect(),
            })
            .collect(),
    }
}

/// The failure budget as it is spent.
#[derive(Debug, Clone)]
pub struct Budget {
    bound: FailureBudget,
    total: usize,
    /// Failures so far.
    pub failed: usize,
}

impl Budget {
    /// The budget of a rollout of `total` site tasks.
    pub fn new(bound: &FailureBudget, total: usize) -> Budget {
        Budget {
            bound: bound.clone(),
            total,
            failed: 0,
        }
    }

    /// The failures allowed in all: the smaller of the bounds given (a bound
    /// not given does not constrain); none, as the spec's default budget
    /// has it, when neither is given.
    pub fn allowed(&self) -> usize {
        let pct = self
            .bound
            .max_failed_percent
            .map(|p| usize::from(p) * self.total / 100);
        match (self.bound.max_failed, pct) {
            (Some(n), Some(p)) => n.min(p),
            (Some(n), None) => n,
            (None, Some(p)) => p,
            (None, None) => 0,
        }
    }

    /// Whether the failures exceed the budget.
    pub fn exceeded(&self) -> bool {
        self.failed > self.allowed()
    }

    /// Failures still allowed.
    pub fn left(&self) -> usize {
        self.allowed().saturating_sub(self.failed)
    }

    /// The budget in words, e.g. `2 failures of 1 allowed`.
    pub fn describe(&self) -> String {
        format!("{} failure(s), {} allowed", self.failed, self.allowed())
    }
}

/// One failure of a wave: a failed task or a failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The site.
    pub site: SiteName,
    /// What failed and why.
    pub why: String,
}

/// The health checks after a wave: every site whose task succeeded is
/// checked (a deleted or disabled site serves nothing to check); with the
/// failed tasks they make the wave's failures.
pub fn failures(
    outcomes: &[(&SitePlan, TaskOutcome)],
    gate: &dyn HealthGate,
) -> (Vec<Failure>, Vec<(SiteName, Health)>) {
    let mut failed = Vec::new();
    let mut checks = Vec::new();
    for (s, o) in outcomes {
        if o.result == TaskResult::Failed {
            failed.push(Failure {
                site: s.name.clone(),
                why: format!(
                    "{} failed: {}",
                    o.what,
                    o.message.as_deref().unwrap_or("no reason given")
                ),
            });
            continue;
        }
        if matches!(s.action, SiteAction::Delete | SiteAction::Disable) {
            continue;
        }
        let h = gate.check(s);
        if let Health::Failed { reason } = &h {
            failed.push(Failure {
                site: s.name.clone(),
                why: format!("health check after the bake failed: {reason}"),
            });
        }
        checks.push((s.name.clone(), h));
    }
    (failed, checks)
}

/// Waits `secs` (the bake), or less once `cancelled()` holds.
pub fn bake(secs: u64, cancelled: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cancelled() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// Why and where a rollout halted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Halt {
    /// The wave that spent the budget.
    pub wave: String,
    /// The budget, in words.
    pub budget: String,
    /// Its failures.
    pub failures: Vec<Failure>,
    /// Sites put back (`rollback-wave`), each with how its rollback ended.
    pub rolled_back: Vec<(SiteName, String)>,
    /// Succeeded sites of the wave that could not be put back (their task
    /// kind has no rollback, or its rollback failed).
    pub left: Vec<SiteName>,
    /// Sites of later waves, not started.
    pub not_started: Vec<SiteName>,
}

impl Halt {
    /// One line: which wave, how many failures.
    pub fn describe(&self) -> String {
        let mut s = format!("the rollout halted in wave {}: {}", self.wave, self.budget);
        if !self.rolled_back.is_empty() {
            s.push_str(&format!(
                "; {} site(s) of the wave put back",
                self.rolled_back.len()
            ));
        }
        if !self.not_started.is_empty() {
            s.push_str(&format!(
                "; {} site(s) of later waves not started",
                self.not_started.len()
            ));
        }
        s
    }
}

/// What a rollout did, wave by wave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutReport {
    /// The waves run, in order, with their failures.
    pub waves: Vec<(String, usize, usize)>,
    /// Set when it halted.
    pub halted: Option<Halt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_failed: Option<usize>, max_failed_percent: Option<u8>, total: usize) -> Budget {
        Budget::new(
            &FailureBudget {
                max_failed,
                max_failed_percent,
            },
            total,
        )
    }

    #[test]
    fn a_bound_not_given_does_not_constrain() {
        assert_eq!(budget(Some(3), None, 20).allowed(), 3, "only max_failed");
        assert_eq!(
            budget(None, Some(10), 50).allowed(),
            5,
            "only max_failed_percent: 10% of 50, not capped by an unset max_failed"
        );
        assert_eq!(
            budget(Some(3), Some(10), 50).allowed(),
            3,
            "both: the smaller"
        );
        assert_eq!(
            budget(Some(9), Some(10), 50).allowed(),
            5,
            "both: the smaller"
        );
        assert_eq!(
            budget(None, None, 50).allowed(),
            0,
            "neither: any failure halts"
        );
    }

    #[test]
    fn the_budget_is_the_smaller_bound_and_halts_past_it() {
        let mut b = budget(Some(3), Some(10), 20);
        assert_eq!(b.allowed(), 2, "10% of 20 is below max_failed 3");
        b.failed = 2;
        assert!(!b.exceeded());
        assert_eq!(b.left(), 0);
        b.failed = 3;
        assert!(b.exceeded());
        let zero = Budget::new(&FailureBudget::default(), 5);
        assert_eq!(zero.allowed(), 0, "by default any failure halts");
    }

    #[test]
    fn bake_returns_at_once_when_cancelled() {
        let t = Instant::now();
        bake(30, || true);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
