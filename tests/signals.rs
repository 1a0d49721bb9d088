//! Exit codes of usage errors, and SIGINT during `hoist apply` (spec
//! section 6): the running step finishes, the running task is undone, no
//! new one starts, exit 1.

mod common;
use common::Fixture;

#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    let f = Fixture::example();
    for args in [
        &["plan", "--detailed-exitcod"][..],
        &["apply", "--yse"],
        &["watch", "--onse"],
        &["status", "--lvie"],
        &["plan", "--format", "xml"],
        &["validate", "extra"],
        &["frobnicate"],
        &[],
    ] {
        let r = f.run(args);
        assert_eq!(r.code, 1, "hoist {args:?}: {}", r.all());
        assert!(!r.stderr.is_empty(), "hoist {args:?} said nothing");
    }
    // No server was touched by any of them.
    assert!(!f.host().exists());
    for args in [&["--help"][..], &["plan", "--help"], &["--version"]] {
        let r = f.run(args);
        assert_eq!(r.code, 0, "hoist {args:?}: {}", r.all());
        assert!(!r.stdout.is_empty(), "hoist {args:?} printed nothing");
    }
}

/// Runs hoist with `args`, paused in step `step` by a failpoint, sends it
/// SIGINT once it is there, and returns its exit code and stderr.
#[cfg(feature = "failpoints")]
fn interrupt_in_step(f: &Fixture, args: &[&str], step: &str) -> (Option<i32>, String) {
    use std::time::{Duration, Instant};
    let err = f.tmp.path().join(format!("{step}.err"));
    let mut child = f
        .cmd(args)
        .env("HOIST_FAILPOINT", format!("{step}:pause"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(60);
    while !stderr().contains(&format!("failpoint {step}:pause")) {
        if Instant::now() > end || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("hoist {args:?} never reached step {step}:\n{}", stderr());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("hoist {args:?} did not stop after SIGINT:\n{}", stderr());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), stderr())
}

/// The number of backup archives of `site` (not its sequence counter).
#[cfg(feature = "failpoints")]
fn backups(f: &Fixture, site: &str) -> usize {
    common::backup_archives(f, site).len()
}

/// Asserts that the newest task is a `kind` that failed and was rolled
/// back after SIGINT: `step` done, the next one never run, none running.
#[cfg(feature = "failpoints")]
fn assert_undone_after(f: &Fixture, kind: &str, step: &str) {
    let t = common::last_task(f);
    assert_eq!(t["kind"], kind, "{t}");
    assert_eq!(t["result"], "failed", "{t}");
    let log = t["log"].to_string();
    assert!(log.contains("interrupted"), "{log}");
    assert!(log.contains("rolled back"), "{log}");
    let steps: Vec<(&str, &str)> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert!(steps.contains(&(step, "done")), "{steps:?}");
    assert_eq!(steps.last().unwrap().1, "failed", "{steps:?}");
    assert!(steps.iter().all(|s| s.1 != "running"), "{steps:?}");
}

#[cfg(feature = "failpoints")]
#[test]
fn sigint_during_apply_undoes_the_running_task_and_exits_1() {
    use common::{server_state, state_diff};
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let before = server_state(&f);
    let backups_before = backups(&f, "acme");

    // The migrate is in its deploy step (after maintenance-on and the
    // backup) when SIGINT comes.
    let (code, said) = interrupt_in_step(&f, &["apply", "--yes"], "deploy");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("hoist: interrupted"), "{said}");
    assert!(said.contains("no new task was started"), "{said}");

    // The site is exactly as it was, online; the backup is kept.
    let d = state_diff(&before, &server_state(&f));
    assert!(d.is_empty(), "not as before: {d:?}");
    assert_eq!(backups(&f, "acme"), backups_before + 1);
    assert_undone_after(&f, "migrate", "deploy");
    // A later apply carries out the migrate.
    let r = f.apply();
    assert!(r.stdout.contains("migrate acme"), "{}", r.all());
}

#[cfg(feature = "failpoints")]
#[test]
fn sigint_during_restore_undoes_it_and_exits_1() {
    use common::{server_state, state_diff};
    let f = Fixture::example();
    f.apply();
    f.ok(&["backup", "acme"], 0);
    let file = f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.com/files/later.txt");
    std::fs::write(&file, "written after the backup").unwrap();
    let before = server_state(&f);
    let backups_before = backups(&f, "acme");

    let (code, said) = interrupt_in_step(&f, &["restore", "acme"], "deploy");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("hoist: interrupted"), "{said}");
    let d = state_diff(&before, &server_state(&f));
    assert!(d.is_empty(), "not as before: {d:?}");
    assert!(file.is_file());
    // The backup of the present state, taken first, is kept.
    assert_eq!(backups(&f, "acme"), backups_before + 1);
    assert_undone_after(&f, "restore", "deploy");
}
