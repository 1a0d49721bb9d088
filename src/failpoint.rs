//! Failpoints: make a named task step fail on demand, for the rollback and
//! crash tests. Compiled in only with the `failpoints` feature; in a normal
//! build the checks are constant `Ok(())` the optimizer removes.
//!
//! With the feature, `HOIST_FAILPOINT` holds comma-separated `<step>[:<how>]`:
//! - `<step>` or `<step>:error`: the step fails before it does anything;
//! - `<step>:after`: the step does its work, then fails (an undo must then
//!   remove what it made);
//! - `<step>:abort` / `<step>:abort-after`: the process is killed there (a
//!   crash, not a polite error);
//! - `<step>:pause`: the step says so on stderr, then waits until hoist is
//!   interrupted (SIGINT, SIGTERM) before it does its work;
//! - `<step>:hold`: at [`hold`] points, creates `<step>.held` in the
//!   directory `HOIST_FAILPOINT_DIR` names, then waits until the test
//!   creates `<step>.go` there: the test does its deed (kills a database
//!   server in the middle of a dump) on that event, not after a delay;
//! - `<name>=<value>`: [`value`] gives `<value>` (a test fixes what is
//!   otherwise random, such as a new database's name).
//!
//! `<step>@<site>` fires only in a task of that site (a fleet test fails
//! chosen sites of a rollout); `<step>` alone fires for every site.

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
    hit_at(name, None, when)
}

/// Checks the failpoint of step `name` at `when` in a task of `site`.
#[cfg(feature = "failpoints")]
pub fn hit_at(name: &str, site: Option<&str>, when: When) -> Result<(), String> {
    let Ok(spec) = std::env::var("HOIST_FAILPOINT") else {
        return Ok(());
    };
    for one in spec.split(',') {
        let (step, how) = one.split_once(':').unwrap_or((one, "error"));
        let (step, only) = match step.split_once('@') {
            Some((s, only)) => (s, Some(only)),
            None => (step, None),
        };
        if step != name || only.is_some_and(|o| Some(o) != site) {
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

/// Checks the failpoint of step `name` for `site` (disabled build: never
/// fails).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit_at(_name: &str, _site: Option<&str>, _when: When) -> Result<(), String> {
    Ok(())
}

/// Checks the pause failpoint of step `name`: when set, says so on stderr
/// and waits until `interrupted()` holds (at most two minutes, so that a
/// test gone wrong does not hang forever).
#[cfg(feature = "failpoints")]
pub fn pause(name: &str, interrupted: impl Fn() -> bool) {
    let Ok(spec) = std::env::var("HOIST_FAILPOINT") else {
        return;
    };
    if !spec
        .split(',')
        .any(|one| one.strip_suffix(":pause") == Some(name))
    {
        return;
    }
    eprintln!("failpoint {name}:pause: waiting until hoist is interrupted");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !interrupted() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Checks the pause failpoint of step `name` (disabled build: never waits).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn pause(_name: &str, _interrupted: impl Fn() -> bool) {}

/// The value `HOIST_FAILPOINT` sets for `name` (`<name>=<value>`).
#[cfg(feature = "failpoints")]
pub fn value(name: &str) -> Option<String> {
    let spec = std::env::var("HOIST_FAILPOINT").ok()?;
    spec.split(',').find_map(|one| {
        let (n, v) = one.split_once('=')?;
        (n == name).then(|| v.to_owned())
    })
}

/// The value `HOIST_FAILPOINT` sets for `name` (disabled build: none).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn value(_name: &str) -> Option<String> {
    None
}

/// Checks the hold failpoint `name`: when set, announces `<name>.held` in
/// `HOIST_FAILPOINT_DIR` and waits for `<name>.go` there (at most two
/// minutes, so that a test gone wrong does not hang forever).
#[cfg(feature = "failpoints")]
pub fn hold(name: &str) {
    let Ok(spec) = std::env::var("HOIST_FAILPOINT") else {
        return;
    };
    if !spec
        .split(',')
        .any(|one| one.strip_suffix(":hold") == Some(name))
    {
        return;
    }
    let Some(dir) = std::env::var_os("HOIST_FAILPOINT_DIR").map(std::path::PathBuf::from) else {
        eprintln!("failpoint {name}:hold: HOIST_FAILPOINT_DIR is not set, not holding");
        return;
    };
    let go = dir.join(format!("{name}.go"));
    if let Err(e) = std::fs::write(dir.join(format!("{name}.held")), b"") {
        eprintln!("failpoint {name}:hold: cannot announce the hold: {e}");
        return;
    }
    eprintln!("failpoint {name}:hold: waiting for {}", go.display());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !go.exists() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Checks the hold failpoint `name` (disabled build: never waits).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hold(_name: &str) {}
