//! Failpoints: make a named task step fail on demand, for the rollback and
//! crash tests. Compiled in only with the `failpoints` feature; in a normal
//! build the checks are constant `Ok(())` the optimizer removes.
//!
//! With the feature, `HOIST_FAILPOINT` holds comma-separated `<step>[:<how>]`:
//! - `<step>` or `<step>:error`: the step fails before it does anything;
//! - `<step>:after`: the step does its work, then fails (an undo must then
//!   remove what it made);
//! - `<step>:abort` / `<step>:abort-after`: the process is killed there (a
//!   crash, not a polite error).

/// Where in a step a failpoint fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before the step's work.
    Before,
    /// After the step's work, before it is recorded as done.
    After,
}

/// Checks the failpoint of step `name` at `when`.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str, when: When) -> Result<(), String> {
    let Ok(spec) = std::env::var("HOIST_FAILPOINT") else {
        return Ok(());
    };
    for one in spec.split(',') {
        let (step, how) = one.split_once(':').unwrap_or((one, "error"));
        if step != name {
            continue;
        }
        match (how, when) {
            ("error", When::Before) | ("after", When::After) => {
                return Err(format!("failpoint {one} triggered"));
            }
            ("abort", When::Before) | ("abort-after", When::After) => std::process::abort(),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the failpoint of step `name` (disabled build: never fails).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str, _when: When) -> Result<(), String> {
    Ok(())
}
