//! A fleet on several servers (issue 14 item 4): site tasks run
//! `policy.parallel` at once on each server, servers side by side; and one
//! watcher per server (`hoist watch --server NAME`) reconciles its server's
//! share of one inventory and pushes its status to the same remote, neither
//! overwriting the other's files.

mod gitops_common;

use gitops_common::*;
use std::path::{Path, PathBuf};

/// Two local servers: shop-1-* on web-a, shop-2-* on web-b. Prune is on,
/// so a watcher that took the other server's sites for undeclared ones
/// would delete them.
const HOIST_YAML: &str =
    "servers:\n  web-a: { kind: local, root: .host-a }\n  web-b: { kind: local, root: .host-b }\n\
databases:\n  default: { kind: sqlite }\n\
defaults: { server: web-a, database: default }\n\
policy: { parallel: 1, prune: true }\n\
status:\n  commit: true\n  push: origin\n  author: { name: Hoist Bot, email: bot@hoist.test }\n";

/// A bare remote holding the example inventory split over two servers.
fn fleet_remote(tmp: &Path) -> PathBuf {
    remote_with_seed(tmp, |seed| {
        std::fs::write(seed.join("hoist.yaml"), HOIST_YAML).unwrap();
        std::fs::write(seed.join(".gitignore"), ".host-a/\n.host-b/\n").unwrap();
        for p in ["shop-2-0", "shop-2-1"] {
            let f = seed.join(format!("platforms/{p}.yaml"));
            let text = std::fs::read_to_string(&f).unwrap();
            std::fs::write(&f, format!("{text}server: web-b\n")).unwrap();
        }
    })
}

/// The status file `rel` (under `status/`) at the remote's tip.
fn remote_status(remote: &Path, rel: &str) -> String {
    git(remote, &["show", &format!("main:status/{rel}")])
}

fn watch_once(dir: &Path, server: &str) -> std::process::Child {
    spawn(hoist_cmd(dir, &["watch", "--once", "--server", server]))
}

/// Starts `cmd` with its output kept for [`finished`].
fn spawn(mut cmd: std::process::Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{log}");
    log
}

#[test]
fn two_server_watchers_pushing_to_one_remote_keep_each_others_status() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = fleet_remote(tmp.path());
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    clone(&remote, &a);
    clone(&remote, &b);

    // web-a's watcher pushes first; web-b's clone has not seen that push,
    // so its push is refused and rebuilt on the new tip.
    finished(watch_once(&a, "web-a"));
    let log = finished(watch_once(&b, "web-b"));
    assert!(log.contains("status rebuilt on"), "{log}");

    // Each watcher built only its server's platforms and sites.
    assert!(a
        .join(".host-a/platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
    assert!(!a.join(".host-b").exists());
    assert!(b
        .join(".host-b/platforms/shop-2-0/sites/dental.example.net")
        .is_dir());
    assert!(!b.join(".host-a").exists());

    // The remote's status holds both servers' sites, each as observed by
    // its own watcher.
    for (site, server) in [
        ("acme", "web-a"),
        ("bakery", "web-a"),
        ("chess-club", "web-a"),
        ("dental", "web-b"),
        ("eatery", "web-b"),
    ] {
        let st = remote_status(&remote, &format!("sites/{site}.yaml"));
        assert!(st.contains(&format!("server: {server}")), "{site}: {st}");
        assert!(st.contains("sync: synced"), "{site}: {st}");
    }
    for p in ["shop-1-0", "shop-1-1", "shop-2-0", "shop-2-1"] {
        let st = remote_status(&remote, &format!("platforms/{p}.yaml"));
        assert!(st.contains("sync: synced"), "{p}: {st}");
    }
    assert_status_commits_sound(&remote, "main");

    // A new commit moves a site up on each server; both watchers pull it and
    // run at once. Whichever pushes second rebuilds on the other's status.
    let seed = tmp.path().join("seed");
    git(&seed, &["pull", "-q", "origin", "main"]);
    for (site, from, to) in [
        ("bakery", "shop-1-0", "shop-1-1"),
        ("dental", "shop-2-0", "shop-2-1"),
    ] {
        let f = seed.join(format!("sites/{site}.yaml"));
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, text.replace(from, to)).unwrap();
    }
    git(&seed, &["commit", "-q", "-am", "bakery and dental move up"]);
    git(&seed, &["push", "-q", "origin", "main"]);
    for dir in [&a, &b] {
        git(dir, &["pull", "-q", "--rebase", "origin", "main"]);
    }
    let (wa, wb) = (watch_once(&a, "web-a"), watch_once(&b, "web-b"));
    finished(wa);
    finished(wb);
    let bakery = remote_status(&remote, "sites/bakery.yaml");
    assert!(
        bakery.contains("platform: shop-1-1") && bakery.contains("sync: synced"),
        "{bakery}"
    );
    let dental = remote_status(&remote, "sites/dental.yaml");
    assert!(
        dental.contains("platform: shop-2-1") && dental.contains("sync: synced"),
        "{dental}"
    );
    for site in ["acme", "chess-club", "eatery"] {
        let st = remote_status(&remote, &format!("sites/{site}.yaml"));
        assert!(st.contains("sync: synced"), "{site}: {st}");
    }
    assert_status_commits_sound(&remote, "main");

    // acme is declared onto web-b's platform: a move between servers,
    // which a watcher per server sees only half of. Neither moves it: not
    // web-a's (with prune on, it must not delete it), not web-b's (it must
    // not install a second copy); its status is kept as it was.
    git(&seed, &["pull", "-q", "origin", "main"]);
    let f = seed.join("sites/acme.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replace("shop-1-1", "shop-2-1")).unwrap();
    git(&seed, &["commit", "-q", "-am", "acme to web-b"]);
    git(&seed, &["push", "-q", "origin", "main"]);
    let before = remote_status(&remote, "sites/acme.yaml");
    for (dir, server) in [(&a, "web-a"), (&b, "web-b")] {
        git(dir, &["pull", "-q", "--rebase", "origin", "main"]);
        let log = finished(watch_once(dir, server));
        assert!(
            log.contains(
                "left alone (a move between servers is carried out by a hoist that holds both"
            ),
            "{server}: {log}"
        );
    }
    assert!(a
        .join(".host-a/platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
    assert!(!b
        .join(".host-b/platforms/shop-2-1/sites/acme.example.com")
        .exists());
    assert_eq!(remote_status(&remote, "sites/acme.yaml"), before);
    assert_status_commits_sound(&remote, "main");
}

#[test]
fn a_watcher_for_an_unknown_server_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = fleet_remote(tmp.path());
    let a = tmp.path().join("a");
    clone(&remote, &a);
    let out = hoist(&a, &["watch", "--once", "--server", "web-c"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--server web-c: no such server in hoist.yaml (declared: web-a, web-b)"),
        "{err}"
    );
    assert!(!a.join(".host-a").exists());
}

/// Waits (for an event, with a generous bound) until `n` of the hold
/// files `names` exist in `dir`; returns those that do.
#[cfg(feature = "failpoints")]
fn held(dir: &Path, names: &[&str], n: usize) -> Vec<String> {
    let now = || -> Vec<String> {
        names
            .iter()
            .filter(|s| dir.join(format!("task-{s}.held")).exists())
            .map(|s| s.to_string())
            .collect()
    };
    wait_until(std::time::Duration::from_secs(60), || now().len() >= n);
    now()
}

#[cfg(feature = "failpoints")]
#[test]
fn site_tasks_run_parallel_at_once_on_each_server_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = fleet_remote(tmp.path());
    let a = tmp.path().join("a");
    clone(&remote, &a);
    hoist_ok(&a, &["apply", "--yes"], 0);
    // Two moves on web-a, one on web-b; `policy.parallel` is 1.
    for (site, from, to) in [
        ("bakery", "shop-1-0", "shop-1-1"),
        ("acme", "acme.example.com", "acme.example.org"),
        ("dental", "shop-2-0", "shop-2-1"),
    ] {
        let f = a.join(format!("sites/{site}.yaml"));
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, text.replacen(from, to, 1)).unwrap();
    }
    git(
        &a,
        &["commit", "-q", "-am", "two moves on web-a, one on web-b"],
    );
    let holds = tmp.path().join("holds");
    std::fs::create_dir(&holds).unwrap();
    let mut apply = hoist_cmd(&a, &["apply", "--yes"]);
    apply
        .env(
            "HOIST_FAILPOINT",
            "task-acme:hold,task-bakery:hold,task-dental:hold",
        )
        .env("HOIST_FAILPOINT_DIR", &holds);
    let apply = spawn(apply);
    // web-b's task starts while web-a's first one is held: the servers run
    // side by side. web-a's second waits for its first: one at a time there.
    let now = held(&holds, &["acme", "bakery", "dental"], 2);
    assert!(now.contains(&"dental".to_string()), "{now:?}");
    assert_eq!(now.len(), 2, "{now:?}");
    for s in ["acme", "bakery", "dental"] {
        std::fs::write(holds.join(format!("task-{s}.go")), b"").unwrap();
    }
    finished(apply);
    assert!(a
        .join(".host-a/platforms/shop-1-1/sites/bakery.example.com")
        .is_dir());
    assert!(a
        .join(".host-a/platforms/shop-1-1/sites/acme.example.org")
        .is_dir());
    assert!(a
        .join(".host-b/platforms/shop-2-1/sites/dental.example.net")
        .is_dir());
}
