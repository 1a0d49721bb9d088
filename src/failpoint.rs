//! Failpoints: make a named task step fail on demand, for the rollback and
//! crash tests. Compiled in only with the `failpoints` feature; in a normal
//! build [`hit`] is a constant `Ok(())` the optimizer removes.
//!
//! With the feature, `HOIST_FAILPOINT=<step>` makes that step fail with an
//! error before it runs, and `HOIST_FAILPOINT=<step>:abort` kills the process
//! there (a crash, not a polite error).

/// Checks the failpoint of step `name`.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) -> Result<(), String> {
    let Ok(spec) = std::env::var("HOIST_FAILPOINT") else {
        return Ok(());
    };
    for one in spec.split(',') {
        let (step, how) = one.split_once(':').unwrap_or((one, "error"));
        if step == name {
            if how == "abort" {
                std::process::abort();
            }
            return Err(format!("failpoint {name} triggered"));
        }
    }
    Ok(())
}

/// Checks the failpoint of step `name` (disabled build: never fails).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) -> Result<(), String> {
    Ok(())
}
