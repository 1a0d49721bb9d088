//! `hoist plan --offline`: planning a pull request from the status files,
//! with no server.

mod gitops_common;

use gitops_common::*;
use serde_json::Value;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn an_offline_plan_in_a_fresh_clone_equals_the_live_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = remote_with_inventory(tmp.path(), &settings(Some("origin"), true, 60, 100));
    let ops = tmp.path().join("ops");
    clone(&remote, &ops);
    hoist_ok(&ops, &["apply", "--yes"], 0);
    let host = ops.join(".hoist-host");

    // A pull request, made in a fresh clone on a machine with no server.
    let pr = tmp.path().join("pr");
    clone(&remote, &pr);
    let edit = |f: &str, from: &str, to: &str| {
        let p = pr.join(f);
        let t = std::fs::read_to_string(&p).unwrap();
        assert!(t.contains(from), "{f}");
        std::fs::write(&p, t.replace(from, to)).unwrap();
    };
    edit(
        "sites/acme.yaml",
        "platform: shop-1-1",
        "platform: shop-2-0",
    ); // warning
    edit(
        "sites/chess-club.yaml",
        "platform: shop-1-1",
        "platform: shop-2-0",
    ); // missing
    edit(
        "sites/eatery.yaml",
        "platform: shop-2-1",
        "platform: shop-2-0",
    ); // blocked
    edit(
        "sites/dental.yaml",
        "domain: dental.example.net",
        "domain: dental.example.org",
    ); // rename
    std::fs::write(
        pr.join("sites/bakery.yaml"),
        "domain: bakery.example.com\nplatform: shop-1-0\nenabled: false\n",
    )
    .unwrap(); // disable
    std::fs::write(
        pr.join("sites/fresh.yaml"),
        "domain: fresh.example.com\nplatform: shop-2-2\naliases: [www.fresh.example.com]\n",
    )
    .unwrap();
    std::fs::write(
        pr.join("platforms/shop-2-2.yaml"),
        "source: { path: codebases/shop-2.1 }\n",
    )
    .unwrap();
    git(&pr, &["add", "-A"]);
    git(&pr, &["commit", "-q", "-m", "the change"]);
    let head = git(&pr, &["rev-parse", "HEAD"]).trim().to_string();

    let nowhere = tmp.path().join("no-server");
    let offline = hoist(
        &pr,
        &[
            "plan",
            "--offline",
            "--format",
            "json",
            "--host-root",
            nowhere.to_str().unwrap(),
        ],
    );
    assert_eq!(
        offline.status.code(),
        Some(1),
        "a plan with a blocked site exits 1"
    );
    assert!(!nowhere.exists(), "offline planning touched a server root");
    assert!(
        !pr.join(".hoist-host").exists(),
        "offline planning created a server root"
    );
    let offline = json(&String::from_utf8_lossy(&offline.stdout));
    assert_eq!(offline["mode"], "offline");
    assert_eq!(offline["inventory"]["commit"], head.as_str());

    let live = hoist(
        &pr,
        &[
            "plan",
            "--format",
            "json",
            "--host-root",
            host.to_str().unwrap(),
        ],
    );
    assert_eq!(live.status.code(), Some(1));
    let live = json(&String::from_utf8_lossy(&live.stdout));
    assert_eq!(live["mode"], "live");

    // Same actions, verdicts, errors, diffs: everything but the mode.
    assert_eq!(offline["sites"], live["sites"]);
    assert_eq!(offline["platforms"], live["platforms"]);
    assert_eq!(offline["summary"], live["summary"]);
    assert_eq!(offline["observed"], live["observed"]);
    let action = |name: &str| -> (String, bool) {
        let s = offline["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        (
            s["action"].as_str().unwrap().to_string(),
            s["blocked"].as_bool().unwrap(),
        )
    };
    assert_eq!(action("acme"), ("migrate".into(), false));
    assert_eq!(action("chess-club"), ("migrate".into(), false));
    assert_eq!(action("eatery"), ("migrate".into(), true));
    assert_eq!(action("dental"), ("rename".into(), false));
    assert_eq!(action("bakery"), ("disable".into(), false));
    assert_eq!(action("fresh"), ("create".into(), false));
    let acme = offline["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "acme")
        .unwrap();
    assert!(acme["packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["verdict"] == "version-downgrade"));

    // The pull-request comment.
    let md = hoist(&pr, &["plan", "--offline", "--format", "markdown"]);
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(md.contains("|"), "{md}");
    assert!(md.contains("eatery"), "{md}");
    assert!(!pr.join(".hoist-host").exists());

    // The CI gate: --detailed-exitcode without the blocked site says 2.
    edit(
        "sites/eatery.yaml",
        "platform: shop-2-0",
        "platform: shop-2-1",
    );
    let code = hoist(&pr, &["plan", "--offline", "--detailed-exitcode"])
        .status
        .code();
    assert_eq!(code, Some(2));
}

#[test]
fn an_offline_plan_without_status_files_plans_everything_new() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    let out = hoist_ok(&inv, &["plan", "--offline", "--format", "json"], 0);
    let plan = json(&out);
    assert!(plan["sites"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["action"] == "create"));
    assert!(!inv.join(".hoist-host").exists());
}

#[test]
fn broken_status_files_are_reported_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    std::fs::create_dir_all(inv.join("status/sites")).unwrap();
    std::fs::write(
        inv.join("status/sites/acme.yaml"),
        "site: acme\nsync: bogus\n",
    )
    .unwrap();
    let out = hoist(&inv, &["plan", "--offline"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("status/sites/acme.yaml"), "{err}");
    assert!(!inv.join(".hoist-host").exists());
}
