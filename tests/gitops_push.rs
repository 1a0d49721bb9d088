//! Pushing status commits: a remote that moved on, and a remote that
//! refuses.

mod gitops_common;

use gitops_common::*;

#[test]
fn a_push_racing_another_clone_is_rebuilt_on_the_new_tip() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = remote_with_inventory(tmp.path(), &settings(Some("origin"), true, 60, 100));
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    clone(&remote, &ours);
    clone(&remote, &theirs);
    let applied = git(&ours, &["rev-parse", "HEAD"]).trim().to_string();

    // Someone else pushes first: a document and a new site.
    std::fs::write(theirs.join("README.md"), "our fleet\n").unwrap();
    std::fs::write(
        theirs.join("sites/fresh.yaml"),
        "domain: fresh.example.com\nplatform: shop-2-1\n",
    )
    .unwrap();
    git(&theirs, &["add", "-A"]);
    git(&theirs, &["commit", "-q", "-m", "theirs"]);
    git(&theirs, &["push", "-q", "origin", "main"]);
    let their_tip = git(&theirs, &["rev-parse", "HEAD"]).trim().to_string();

    let out = hoist_ok(&ours, &["apply", "--yes"], 0);
    assert!(out.contains("rebuilt on the remote's new tip"), "{out}");

    let log = commits(&remote, "main");
    // Both histories are kept: the status commit sits on their commit.
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0].1, "Hoist Bot");
    assert_eq!(log[1].0, their_tip);
    assert_eq!(
        log[0].3,
        format!("hoist: status after applying {}", &applied[..12])
    );
    let parent = git(&remote, &["rev-parse", "main^"]).trim().to_string();
    assert_eq!(parent, their_tip);
    let files = git(&remote, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.contains("README.md"));
    assert!(files.contains("sites/fresh.yaml"));
    assert!(files.contains("status/sites/acme.yaml"));
    // Their site was not applied by us yet: its status does not claim it.
    assert!(!files.contains("status/sites/fresh.yaml"));
    assert_eq!(
        changed_paths(&remote, "main")
            .iter()
            .filter(|p| !p.starts_with("status/"))
            .count(),
        0
    );
    assert_status_commits_sound(&remote, "main");

    // Our clone followed the remote: their work is here, nothing is dirty.
    assert_eq!(
        git(&ours, &["rev-parse", "HEAD"]).trim(),
        git(&remote, &["rev-parse", "main"]).trim()
    );
    assert!(ours.join("README.md").is_file());
    assert_eq!(git(&ours, &["status", "--porcelain"]).trim(), "");

    // Applying again installs their site and pushes on top, plainly.
    hoist_ok(&ours, &["apply", "--yes"], 0);
    let log = commits(&remote, "main");
    assert_eq!(log.len(), 4);
    assert_eq!(
        log[0].3,
        format!("hoist: status after applying {}", &their_tip[..12])
    );
    assert_eq!(
        changed_paths(&remote, "main"),
        vec!["status/sites/fresh.yaml"]
    );
    assert_status_commits_sound(&remote, "main");
}

#[test]
fn a_push_refused_by_a_hook_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = remote_with_inventory(tmp.path(), &settings(Some("origin"), true, 60, 100));
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'main is protected: open a pull request' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ours = tmp.path().join("ours");
    clone(&remote, &ours);
    let before = commits(&remote, "main");

    let out = hoist(&ours, &["apply", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rejected"), "{stderr}");
    assert!(stderr.contains("main is protected"), "{stderr}");
    assert!(stderr.contains("pre-receive hook declined"), "{stderr}");
    assert_eq!(commits(&remote, "main"), before);
    // The sites were installed all the same, and the status is committed
    // locally, to be pushed by the next apply.
    assert!(ours
        .join(".hoist-host/platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
    assert_eq!(commits(&ours, "HEAD")[0].1, "Hoist Bot");

    // Once the hook lets it through, the next apply pushes the status.
    std::fs::remove_file(&hook).unwrap();
    hoist_ok(&ours, &["apply", "--yes"], 0);
    assert_eq!(commits(&remote, "main")[0].1, "Hoist Bot");
}
