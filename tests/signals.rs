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

#[cfg(feature = "failpoints")]
#[test]
fn sigint_during_apply_undoes_the_running_task_and_exits_1() {
    use common::{last_task, server_state, state_diff};
    use std::time::{Duration, Instant};

    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let before = server_state(&f);
    let backups = || {
        std::fs::read_dir(f.host().join("backups/acme"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let backups_before = backups();

    // The migrate pauses in its deploy step (after maintenance-on and the
    // backup) until hoist is interrupted.
    let err = f.tmp.path().join("apply.err");
    let mut child = f
        .cmd(&["apply", "--yes"])
        .env("HOIST_FAILPOINT", "deploy:pause")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&err).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(60);
    while !stderr().contains("failpoint deploy:pause") {
        if Instant::now() > end || child.try_wait().unwrap().is_some() {
            panic!("the apply never reached its deploy step:\n{}", stderr());
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
            panic!("the apply did not stop after SIGINT:\n{}", stderr());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let said = stderr();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("hoist: interrupted"), "{said}");
    assert!(said.contains("no new task was started"), "{said}");

    // The site is exactly as it was, online; the backup is kept.
    let d = state_diff(&before, &server_state(&f));
    assert!(d.is_empty(), "not as before: {d:?}");
    assert_eq!(backups(), backups_before + 1);
    let t = last_task(&f);
    assert_eq!(t["kind"], "migrate", "{t}");
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
    // The deploy it was in finished; the next step never ran.
    assert!(steps.contains(&("deploy", "done")), "{steps:?}");
    assert_eq!(steps.last().unwrap().1, "failed", "{steps:?}");
    assert!(steps.iter().all(|s| s.1 != "running"), "{steps:?}");
    // A later apply carries out the migrate.
    let r = f.apply();
    assert!(r.stdout.contains("migrate acme"), "{}", r.all());
}
