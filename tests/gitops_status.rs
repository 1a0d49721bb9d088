//! Status files and status commits after `hoist apply` (spec section 7).

mod gitops_common;

use gitops_common::*;

fn inventory_repo(tmp: &std::path::Path) -> std::path::PathBuf {
    gitops_common::inventory_repo(tmp, &settings(None, true, 60, 100))
}

#[test]
fn apply_commits_status_only_with_the_configured_author_and_never_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    let applied = git(&inv, &["rev-parse", "HEAD"]).trim().to_string();
    // A user's work in progress: an edit staged, one not, a new file.
    std::fs::write(inv.join("NOTES.md"), "staged\n").unwrap();
    git(&inv, &["add", "NOTES.md"]);
    let acme = std::fs::read_to_string(inv.join("sites/acme.yaml")).unwrap();
    std::fs::write(inv.join("sites/acme.yaml"), format!("{acme}# wip\n")).unwrap();
    std::fs::write(inv.join("untracked.txt"), "mine\n").unwrap();

    let out = hoist_ok(&inv, &["apply", "--yes"], 0);
    assert!(out.contains("Status committed"), "{out}");

    let log = commits(&inv, "HEAD");
    assert_eq!(log.len(), 2);
    let (sha, name, email, subject) = &log[0];
    assert_eq!(
        (name.as_str(), email.as_str()),
        ("Hoist Bot", "bot@hoist.test")
    );
    assert_eq!(
        subject,
        &format!("hoist: status after applying {}", &applied[..12])
    );
    let body = git(&inv, &["log", "-1", "--format=%B", sha]);
    assert!(body.contains(&applied), "{body}");
    let paths = changed_paths(&inv, sha);
    assert!(paths.contains(&"status/sites/acme.yaml".to_string()));
    assert!(paths.contains(&"status/platforms/shop-1-0.yaml".to_string()));
    assert!(paths.iter().all(|p| p.starts_with("status/")), "{paths:?}");

    // The user's changes are where they were: staged, modified, untracked.
    let st = git(&inv, &["status", "--porcelain"]);
    assert!(st.contains("A  NOTES.md"), "{st}");
    assert!(st.contains(" M sites/acme.yaml"), "{st}");
    assert!(st.contains("?? untracked.txt"), "{st}");
    assert!(!st.contains("status/"), "status files are committed: {st}");

    // Nothing changed: no second, empty commit.
    hoist_ok(&inv, &["apply", "--yes"], 0);
    assert_eq!(commits(&inv, "HEAD").len(), 2);
    assert_eq!(assert_status_commits_sound(&inv, "HEAD"), 1);

    // The table comes from the status files.
    let table = hoist_ok(&inv, &["status"], 0);
    assert!(table.contains("acme"), "{table}");
    assert!(table.contains("synced"), "{table}");
    assert!(table.contains("install"), "{table}");
    let status = std::fs::read_to_string(inv.join("status/sites/acme.yaml")).unwrap();
    assert!(
        status.contains(&format!("inventory_commit: {applied}")),
        "{status}"
    );
    assert!(status.contains("sync: synced"));
}

#[test]
fn no_password_ever_reaches_status_files_or_history() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    hoist_ok(&inv, &["apply", "--yes"], 0);
    // A second commit and apply, so history has several status commits.
    write_fresh_site(&inv);
    git(&inv, &["add", "-A"]);
    git(&inv, &["commit", "-q", "-m", "a new site"]);
    hoist_ok(&inv, &["apply", "--yes"], 0);

    let pw = passwords(&inv.join(".hoist-host"));
    assert_eq!(pw.len(), 6, "every site has a password: {pw:?}");
    let history = git(&inv, &["log", "-p", "--all"]);
    assert!(history.contains("fresh.example.com"));
    let mut status_text = String::new();
    for sub in ["sites", "platforms"] {
        for e in std::fs::read_dir(inv.join("status").join(sub)).unwrap() {
            status_text.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
    }
    for p in &pw {
        assert!(p.len() >= 12, "a real password: {p}");
        assert!(
            !history.contains(p.as_str()),
            "a password is in the history"
        );
        assert!(
            !status_text.contains(p.as_str()),
            "a password is in status/"
        );
    }
}

#[test]
fn a_failed_site_shows_failed_and_its_status_file_goes_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    hoist_ok(&inv, &["apply", "--yes"], 0);
    // Something on the server stands where the new site's vhost goes.
    std::fs::write(
        inv.join(".hoist-host/vhosts/fresh.example.com.conf"),
        "# hand-made\n",
    )
    .unwrap();
    write_fresh_site(&inv);
    git(&inv, &["add", "-A"]);
    git(&inv, &["commit", "-q", "-m", "fresh"]);
    hoist_ok(&inv, &["apply", "--yes"], 1);
    let st = std::fs::read_to_string(inv.join("status/sites/fresh.yaml")).unwrap();
    assert!(st.contains("sync: failed"), "{st}");
    assert!(st.contains("observed: null"), "{st}");
    assert!(st.contains("result: failed"), "{st}");
    let table = hoist_ok(&inv, &["status"], 0);
    let row = table.lines().find(|l| l.starts_with("fresh")).unwrap();
    assert!(
        row.contains("failed") && row.contains("fresh.example.com"),
        "{row}"
    );

    // The site is dropped from the inventory: its status file goes too.
    git(&inv, &["rm", "-q", "sites/fresh.yaml"]);
    git(&inv, &["commit", "-q", "-m", "no fresh"]);
    hoist_ok(&inv, &["apply", "--yes"], 0);
    assert!(!inv.join("status/sites/fresh.yaml").exists());
    let head = commits(&inv, "HEAD");
    assert_eq!(
        changed_paths(&inv, &head[0].0),
        vec!["status/sites/fresh.yaml"]
    );
    assert_status_commits_sound(&inv, "HEAD");
}

#[test]
fn status_is_written_but_not_committed_outside_a_repository_or_when_off() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    hoist_ok(&inv, &["apply", "--yes"], 0);
    assert!(inv.join("status/sites/acme.yaml").is_file());
    assert!(!inv.join(".git").exists());

    let repo = tmp.path().join("repo");
    example(&repo);
    let off = settings(None, true, 60, 100).replace("commit: true", "commit: false");
    std::fs::write(repo.join("hoist.yaml"), off).unwrap();
    init_repo(&repo);
    hoist_ok(&repo, &["apply", "--yes"], 0);
    assert_eq!(commits(&repo, "HEAD").len(), 1);
    assert!(repo.join("status/sites/acme.yaml").is_file());
}

#[test]
fn ref_reads_the_inventory_of_a_commit_without_touching_the_working_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    let first = git(&inv, &["rev-parse", "HEAD"]).trim().to_string();
    write_fresh_site(&inv);
    git(&inv, &["add", "-A"]);
    git(&inv, &["commit", "-q", "-m", "fresh"]);
    let second = git(&inv, &["rev-parse", "HEAD"]).trim().to_string();
    // An uncommitted edit that --ref must not see.
    std::fs::write(inv.join("sites/bad.yaml"), "domain: [\n").unwrap();
    hoist_ok(&inv, &["validate"], 1);
    hoist_ok(&inv, &["validate", "--ref", "HEAD"], 0);

    let json = hoist_ok(&inv, &["plan", "--ref", "HEAD~1", "--format", "json"], 0);
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["inventory"]["commit"], first.as_str());
    let names: Vec<&str> = plan["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"fresh"), "{names:?}");

    hoist_ok(&inv, &["apply", "--yes", "--ref", "main"], 0);
    assert!(inv
        .join(".hoist-host/platforms/shop-2-1/sites/fresh.example.com")
        .is_dir());
    let head = commits(&inv, "HEAD");
    assert_eq!(
        head[0].3,
        format!("hoist: status after applying {}", &second[..12])
    );
    let st = git(&inv, &["status", "--porcelain"]);
    assert_eq!(st.trim(), "?? sites/bad.yaml");
    assert!(hoist(&inv, &["plan", "--ref", "no-such-ref"]).status.code() == Some(1));
}

/// Every file under `dir` but `.git/`, with its modification time and
/// size: what "writes nothing" means.
fn file_times(dir: &std::path::Path) -> Vec<(String, std::time::SystemTime, u64)> {
    fn walk(
        base: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<(String, std::time::SystemTime, u64)>,
    ) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel == ".git" {
                continue;
            }
            let m = e.metadata().unwrap();
            out.push((rel, m.modified().unwrap(), m.len()));
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

fn row<'a>(table: &'a str, site: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(&format!("{site} ")))
        .unwrap_or_else(|| panic!("no row for {site}:\n{table}"))
}

#[test]
fn status_tells_the_truth_about_the_inventory_as_pulled_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    hoist_ok(&inv, &["apply", "--yes"], 0);
    let table = hoist_ok(&inv, &["status"], 0);
    assert!(row(&table, "acme").contains("synced"), "{table}");

    // What a `git pull` brings: a new site, a site moved to another
    // platform, a site no longer declared; nothing applied yet.
    std::fs::write(
        inv.join("sites/fresh.yaml"),
        "domain: fresh.example.com\nplatform: shop-2-1\n",
    )
    .unwrap();
    let acme = std::fs::read_to_string(inv.join("sites/acme.yaml")).unwrap();
    std::fs::write(
        inv.join("sites/acme.yaml"),
        acme.replace("platform: shop-1-1", "platform: shop-2-0"),
    )
    .unwrap();
    git(&inv, &["rm", "-q", "sites/eatery.yaml"]);
    git(&inv, &["add", "-A"]);
    git(&inv, &["commit", "-q", "-m", "pulled"]);
    let before = file_times(&inv);

    let table = hoist_ok(&inv, &["status"], 0);
    let fresh = row(&table, "fresh");
    assert!(
        fresh.contains("out-of-sync")
            && fresh.contains("(absent)")
            && fresh.contains("create")
            && fresh.contains("fresh.example.com"),
        "{table}"
    );
    let acme = row(&table, "acme");
    assert!(
        acme.contains("out-of-sync") && acme.contains("shop-1-1") && acme.contains("migrate"),
        "{table}"
    );
    assert!(row(&table, "eatery").contains("unmanaged"), "{table}");
    let bakery = row(&table, "bakery");
    assert!(
        bakery.contains("synced") && bakery.contains("install") && bakery.contains("success"),
        "{table}"
    );

    assert_eq!(git(&inv, &["status", "--porcelain"]).trim(), "");
    assert_eq!(file_times(&inv), before, "hoist status wrote something");

    // The same from the servers.
    let live = hoist_ok(&inv, &["status", "--live"], 0);
    assert!(row(&live, "fresh").contains("out-of-sync"), "{live}");
    assert!(row(&live, "acme").contains("migrate"), "{live}");
}

#[test]
fn a_task_that_never_finished_is_not_shown_as_a_success() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    hoist_ok(&inv, &["apply", "--yes"], 0);
    // A status file recorded while bakery's task was running, and the
    // hoist running it killed: a result that claims success with no end
    // time is no better.
    let path = inv.join("status/sites/bakery.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("result: success"), "{text}");
    let finished = text
        .lines()
        .find(|l| l.trim_start().starts_with("finished:"))
        .unwrap();
    let indent = &finished[..finished.len() - finished.trim_start().len()];
    let unfinished = text.replace(finished, &format!("{indent}finished: null"));
    for result in ["running", "success"] {
        std::fs::write(
            &path,
            unfinished.replace("result: success", &format!("result: {result}")),
        )
        .unwrap();
        let table = hoist_ok(&inv, &["status"], 0);
        let bakery = row(&table, "bakery");
        assert!(
            bakery.contains("unfinished") && bakery.contains("out-of-sync"),
            "{result}: {table}"
        );
        assert!(!bakery.contains("success"), "{result}: {table}");
    }
}

#[test]
fn apply_with_uncommitted_edits_applies_the_committed_inventory_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    let head = git(&inv, &["rev-parse", "HEAD"]).trim().to_string();
    write_fresh_site(&inv);
    let out = hoist(&inv, &["apply", "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("uncommitted changes are not applied (sites/fresh.yaml)"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("fresh"), "{stdout}");
    let host = inv.join(".hoist-host");
    assert!(!host
        .join("platforms/shop-2-1/sites/fresh.example.com")
        .exists());
    // The status commit names HEAD and describes exactly its inventory.
    assert_eq!(
        commits(&inv, "HEAD")[0].3,
        format!("hoist: status after applying {}", &head[..12])
    );
    let paths = git(
        &inv,
        &["ls-tree", "-r", "--name-only", "HEAD", "status/sites"],
    );
    assert!(!paths.contains("fresh"), "{paths}");
    assert!(paths.contains("status/sites/acme.yaml"), "{paths}");
    assert_eq!(
        git(&inv, &["status", "--porcelain"]).trim(),
        "?? sites/fresh.yaml"
    );

    // A plan (which commits nothing) shows the working tree as it is.
    let plan = hoist_ok(&inv, &["plan"], 0);
    assert!(plan.contains("fresh"), "{plan}");

    // Committed, it is applied.
    git(&inv, &["add", "sites/fresh.yaml"]);
    git(&inv, &["commit", "-q", "-m", "fresh"]);
    let out = hoist_ok(&inv, &["apply", "--yes"], 0);
    assert!(out.contains("create fresh"), "{out}");
    assert!(host
        .join("platforms/shop-2-1/sites/fresh.example.com")
        .is_dir());
    assert_status_commits_sound(&inv, "HEAD");
}

#[test]
fn a_broken_committed_inventory_is_not_applied_even_when_the_working_tree_is_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path());
    std::fs::write(inv.join("sites/bad.yaml"), "domain: [\n").unwrap();
    git(&inv, &["add", "-A"]);
    git(&inv, &["commit", "-q", "-m", "broken"]);
    // Fixed in the working tree only.
    std::fs::remove_file(inv.join("sites/bad.yaml")).unwrap();
    let out = hoist(&inv, &["apply", "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("sites/bad.yaml"), "{err}");
    assert!(
        err.contains("problems of the committed inventory (HEAD)"),
        "{err}"
    );
    assert!(!inv.join(".hoist-host").exists(), "a server was touched");
    assert_eq!(commits(&inv, "HEAD").len(), 2);
}
