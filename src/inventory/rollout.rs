//! `rollout:` of `hoist.yaml` (spec section 9): the waves one apply's site
//! tasks run in, the wait and health check after each, and what happens
//! when failures exceed the budget.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::names::SiteName;

/// `rollout:`. Without one every site task is in one wave.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// The waves, in order.
    pub waves: Vec<Wave>,
    /// Seconds to wait after a wave before checking its sites again.
    #[serde(default)]
    pub bake_s: u64,
    /// How many failures halt the rollout.
    #[serde(default)]
    pub failure_budget: FailureBudget,
    /// What a halt does.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// One wave.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    /// Its name, shown in plans, progress and status.
    pub name: String,
    /// Which sites it takes; none: every site not in an earlier wave.
    #[serde(default)]
    pub select: Option<Select>,
}

/// `select:` of a wave. Sites are those named, or else those whose labels
/// match; `percent` then keeps that share of them (rounded up).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// Sites by name.
    #[serde(default)]
    pub sites: Vec<SiteName>,
    /// Labels every selected site has.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The share (1 to 100) of the matching sites with changes.
    #[serde(default)]
    pub percent: Option<u8>,
}

/// `failure_budget:`. The rollout halts when failures exceed either bound
/// given; a bound not given does not constrain, and with neither given any
/// failure halts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBudget {
    /// Failures allowed in all.
    #[serde(default)]
    pub max_failed: Option<usize>,
    /// Failures allowed, as a percentage of the rollout's site tasks.
    #[serde(default)]
    pub max_failed_percent: Option<u8>,
}

/// `on_failure:`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Start no further task.
    #[default]
    Halt,
    /// Halt, and put the failing wave's succeeded sites back.
    RollbackWave,
}
