//! `hoist watch`: the daemon, against real repositories and a bare remote.

mod gitops_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gitops_common::*;

/// A running `hoist watch`, killed if a test fails before stopping it.
struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn start(dir: &Path, extra: &[&str]) -> Watch {
        let log = dir.with_extension(format!("watch-{}.log", rand_suffix()));
        let child = Command::new(HOIST)
            .arg("-C")
            .arg(dir)
            .arg("watch")
            .args(extra)
            .env_remove("HOIST_HOST_ROOT")
            .env("RUST_LOG", "hoist=debug")
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Watch { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many passes the daemon has reported done (`pass N done`).
    fn passes(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(" done pass="))
            .count()
    }

    /// Waits until the daemon reports `n` more passes than `since`: what
    /// did not happen by then did not happen in those passes.
    fn wait_passes(&self, since: usize, n: usize) {
        assert!(
            wait_until(Duration::from_secs(60), || self.passes() >= since + n),
            "the daemon did not report {n} more passes after {since}:\n{}",
            self.log()
        );
    }

    /// Waits until the log has `needle` after its first `after` bytes;
    /// returns where it ends.
    fn wait_log(&self, after: usize, needle: &str) -> usize {
        let mut at = 0;
        let found = wait_until(Duration::from_secs(60), || {
            let log = self.log();
            match log.get(after..).and_then(|l| l.find(needle)) {
                Some(i) => {
                    at = after + i + needle.len();
                    true
                }
                None => false,
            }
        });
        assert!(found, "no {needle:?} in the log:\n{}", self.log());
        at
    }

    /// Sends SIGTERM and waits (bounded) for the exit code.
    fn terminate(mut self, timeout: Duration) -> (Option<i32>, String) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut code = None;
        let done = wait_until(timeout, || match self.child.try_wait().unwrap() {
            Some(s) => {
                code = s.code();
                true
            }
            None => false,
        });
        assert!(done, "watch did not stop after SIGTERM:\n{}", self.log());
        (code, self.log())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

fn hoist_commits(repo: &Path, rev: &str) -> usize {
    commits(repo, rev)
        .iter()
        .filter(|c| c.1 == "Hoist Bot")
        .count()
}

fn tasks_of(host: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(host.join("tasks"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n.contains(needle) && n.ends_with(".json"))
        .collect()
}

#[test]
fn watch_follows_the_remote_commits_status_and_does_not_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let remote = remote_with_inventory(tmp.path(), &settings(Some("origin"), true, 1, 100));
    let watched = tmp.path().join("watched");
    clone(&remote, &watched);
    let w = Watch::start(&watched, &[]);

    // The first pass installs everything and pushes its status.
    assert!(
        wait_until(Duration::from_secs(40), || hoist_commits(&remote, "main")
            == 1),
        "no status commit on the remote:\n{}",
        w.log()
    );

    // Someone pushes a new site from another clone.
    let other = tmp.path().join("other");
    clone(&remote, &other);
    write_fresh_site(&other);
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-q", "-m", "a new site"]);
    git(&other, &["push", "-q", "origin", "main"]);
    let pushed = git(&other, &["rev-parse", "HEAD"]).trim().to_string();

    let host = watched.join(".hoist-host");
    let arrived = wait_until(Duration::from_secs(40), || {
        commits(&remote, "main")[0].3 == format!("hoist: status after applying {}", &pushed[..12])
    });
    assert!(arrived, "no status commit for {pushed}:\n{}", w.log());
    assert!(host
        .join("platforms/shop-2-1/sites/fresh.example.com/settings.yaml")
        .is_file());
    let fresh = git(&remote, &["show", "main:status/sites/fresh.yaml"]);
    assert!(fresh.contains("sync: synced"), "{fresh}");
    assert!(
        fresh.contains(&format!("inventory_commit: {pushed}")),
        "{fresh}"
    );

    // Nothing loops: three more passes (each a timer interval, with
    // fetches between them), no commit.
    let remote_n = commits(&remote, "main").len();
    let local_n = commits(&watched, "HEAD").len();
    let installs = tasks_of(&host, "install").len();
    w.wait_passes(w.passes(), 3);
    assert_eq!(commits(&remote, "main").len(), remote_n, "{}", w.log());
    assert_eq!(commits(&watched, "HEAD").len(), local_n);
    assert_eq!(tasks_of(&host, "install").len(), installs);
    assert_eq!(hoist_commits(&remote, "main"), 2);
    assert_status_commits_sound(&remote, "main");
    assert_eq!(git(&watched, &["status", "--porcelain"]).trim(), "");

    let (code, log) = w.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}

#[test]
fn an_uncommitted_edit_is_reported_not_applied_and_its_commit_is() {
    let tmp = tempfile::tempdir().unwrap();
    // A long timer: only the watcher (files, refs) can trigger a pass.
    let inv = inventory_repo(tmp.path(), &settings(None, true, 600, 200));
    let w = Watch::start(&inv, &[]);
    assert!(
        wait_until(Duration::from_secs(40), || hoist_commits(&inv, "HEAD") == 1),
        "{}",
        w.log()
    );
    w.wait_passes(0, 1);

    // An edit in the working tree is reported, not applied: no pass runs.
    write_fresh_site(&inv);
    let at = w.wait_log(0, "uncommitted changes (sites/fresh.yaml)");
    assert_eq!(w.passes(), 1, "{}", w.log());
    let site = inv.join(".hoist-host/platforms/shop-2-1/sites/fresh.example.com");
    assert!(!site.exists(), "an uncommitted site was installed");
    assert!(!inv.join("status/sites/fresh.yaml").exists());

    // Once committed, the branch moving triggers the pass that applies it.
    git(&inv, &["add", "sites/fresh.yaml"]);
    git(&inv, &["commit", "-q", "-m", "a new site"]);
    let user = git(&inv, &["rev-parse", "HEAD"]).trim().to_string();
    assert!(
        wait_until(Duration::from_secs(30), || hoist_commits(&inv, "HEAD") == 2),
        "the commit was not applied:\n{}",
        w.log()
    );
    assert!(site.is_dir());
    assert_eq!(
        commits(&inv, "HEAD")[0].3,
        format!("hoist: status after applying {}", &user[..12])
    );
    let at = w.wait_log(at, "the working tree is clean again");
    let at = w.wait_log(at, "pass 2 done");
    // hoist's own status commit moves the branch too, but to no new
    // inventory commit: seen, and no pass.
    w.wait_log(at, "moved, but not to a new inventory commit: no pass");
    assert_eq!(w.passes(), 2, "{}", w.log());
    assert_eq!(git(&inv, &["status", "--porcelain"]).trim(), "");
    assert_status_commits_sound(&inv, "HEAD");
    let (code, _) = w.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
}

#[test]
fn watch_once_applies_the_committed_inventory_only() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path(), &settings(None, true, 600, 100));
    let head = git(&inv, &["rev-parse", "HEAD"]).trim().to_string();
    // Uncommitted: a new site, and eatery disabled.
    write_fresh_site(&inv);
    let eatery = inv.join("sites/eatery.yaml");
    let declared = std::fs::read_to_string(&eatery).unwrap();
    std::fs::write(&eatery, declared.replace("enabled: true", "enabled: false")).unwrap();

    let out = hoist(&inv, &["watch", "--once"]);
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("uncommitted changes (sites/eatery.yaml, sites/fresh.yaml)"),
        "{log}"
    );
    let host = inv.join(".hoist-host");
    assert!(!host
        .join("platforms/shop-2-1/sites/fresh.example.com")
        .exists());
    let vhost = || std::fs::read_to_string(host.join("vhosts/eatery.example.com.conf")).unwrap();
    assert!(!vhost().contains("site disabled"), "{}", vhost());
    // The status commit names HEAD and describes HEAD's inventory.
    let log = commits(&inv, "HEAD");
    assert_eq!(
        log[0].3,
        format!("hoist: status after applying {}", &head[..12])
    );
    assert_eq!(log[1].0, head);
    let paths = git(
        &inv,
        &["ls-tree", "-r", "--name-only", "HEAD", "status/sites"],
    );
    assert!(!paths.contains("fresh"), "{paths}");
    let st = git(&inv, &["show", "HEAD:status/sites/eatery.yaml"]);
    assert!(st.contains("sync: synced"), "{st}");
    assert!(st.contains(&format!("inventory_commit: {head}")), "{st}");
    // The edits are still the user's, uncommitted.
    let porcelain = git(&inv, &["status", "--porcelain"]);
    assert!(porcelain.contains(" M sites/eatery.yaml"), "{porcelain}");
    assert!(porcelain.contains("?? sites/fresh.yaml"), "{porcelain}");

    // Committed, they are applied.
    git(&inv, &["add", "sites"]);
    git(&inv, &["commit", "-q", "-m", "fresh, eatery off"]);
    let next = git(&inv, &["rev-parse", "HEAD"]).trim().to_string();
    let out = hoist(&inv, &["watch", "--once"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("uncommitted"));
    assert!(host
        .join("platforms/shop-2-1/sites/fresh.example.com")
        .is_dir());
    assert!(vhost().contains("site disabled"), "{}", vhost());
    assert_eq!(
        commits(&inv, "HEAD")[0].3,
        format!("hoist: status after applying {}", &next[..12])
    );
    let st = git(&inv, &["show", "HEAD:status/sites/fresh.yaml"]);
    assert!(st.contains(&format!("inventory_commit: {next}")), "{st}");
    assert_status_commits_sound(&inv, "HEAD");
}

#[test]
fn watch_once_exits_1_and_warns_of_each_blocked_site() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path(), &settings(None, true, 600, 100));
    hoist_ok(&inv, &["watch", "--once"], 0);
    // acme onto an older platform: a schema downgrade blocks the move.
    let acme = inv.join("sites/acme.yaml");
    let text = std::fs::read_to_string(&acme).unwrap();
    std::fs::write(
        &acme,
        text.replace("platform: shop-1-1", "platform: shop-1-0"),
    )
    .unwrap();
    git(&inv, &["commit", "-q", "-am", "acme back to 1.0"]);
    let out = hoist(&inv, &["--log-format", "json", "watch", "--once"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    let warned = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "WARN" && v["fields"]["site"] == "acme")
        .unwrap_or_else(|| panic!("no warning with site=acme:\n{log}"));
    let msg = warned["fields"]["message"].as_str().unwrap();
    assert!(
        msg.contains("blocked") && msg.contains("schema downgrade"),
        "{msg}"
    );
    // The site stays where it is; the status says blocked.
    assert!(inv
        .join(".hoist-host/platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
    let st = std::fs::read_to_string(inv.join("status/sites/acme.yaml")).unwrap();
    assert!(st.contains("sync: blocked"), "{st}");
}

#[test]
fn drift_is_only_reported_without_self_heal_and_put_back_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path(), &settings(None, false, 1, 100));
    let w = Watch::start(&inv, &[]);
    assert!(
        wait_until(Duration::from_secs(40), || hoist_commits(&inv, "HEAD") == 1),
        "{}",
        w.log()
    );
    // Behind hoist's back: the bakery site and its vhost are removed.
    let host = inv.join(".hoist-host");
    let site = host.join("platforms/shop-1-0/sites/bakery.example.com");
    std::fs::remove_dir_all(&site).unwrap();
    std::fs::remove_file(host.join("vhosts/bakery.example.com.conf")).unwrap();
    let status = inv.join("status/sites/bakery.yaml");
    assert!(
        wait_until(Duration::from_secs(15), || std::fs::read_to_string(&status)
            .unwrap()
            .contains("sync: out-of-sync")),
        "{}",
        w.log()
    );
    // Two more passes, each of which could have put it back.
    w.wait_passes(w.passes(), 2);
    assert!(
        !site.exists(),
        "self-heal is off, yet the site was put back"
    );
    assert!(w.log().contains("self-heal is off"), "{}", w.log());
    let committed = git(&inv, &["show", "HEAD:status/sites/bakery.yaml"]);
    assert!(committed.contains("sync: out-of-sync"), "{committed}");

    // Self-heal turned on: the next pass puts the site back.
    std::fs::write(inv.join("hoist.yaml"), settings(None, true, 1, 100)).unwrap();
    git(&inv, &["commit", "-q", "-am", "self-heal on"]);
    assert!(
        wait_until(Duration::from_secs(20), || site
            .join("settings.yaml")
            .is_file()),
        "{}",
        w.log()
    );
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&status)
            .unwrap()
            .contains("sync: synced")
    }));
    let (code, _) = w.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
}

#[test]
fn a_failing_task_is_retried_with_backoff_and_then_given_up() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    std::fs::write(inv.join("hoist.yaml"), settings(None, true, 1, 100)).unwrap();
    write_fresh_site(&inv);
    init_repo(&inv);
    // Something on the server stands where the new site's vhost goes.
    let host = inv.join(".hoist-host");
    std::fs::create_dir_all(host.join("vhosts")).unwrap();
    std::fs::write(host.join("vhosts/fresh.example.com.conf"), "# hand-made\n").unwrap();
    let w = Watch::start(&inv, &[]);
    assert!(
        wait_until(Duration::from_secs(40), || tasks_of(&host, "install-fresh")
            .len()
            == 3),
        "{}",
        w.log()
    );
    // Given up after three attempts: no fourth in the passes that follow.
    w.wait_log(0, "not retried until the inventory changes");
    w.wait_passes(w.passes(), 3);
    assert_eq!(tasks_of(&host, "install-fresh").len(), 3, "{}", w.log());
    let st = std::fs::read_to_string(inv.join("status/sites/fresh.yaml")).unwrap();
    assert!(st.contains("sync: failed"), "{st}");
    // The other sites were installed all the same.
    assert!(host
        .join("platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
    let (code, _) = w.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
}

#[test]
fn one_reconciler_per_server_and_sigterm_undoes_the_running_task_after_its_step() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    let mut yaml = settings(None, true, 60, 100);
    yaml = yaml.replace("parallel: 2", "parallel: 1");
    std::fs::write(inv.join("hoist.yaml"), yaml).unwrap();
    // acme (the first site) installs slowly.
    let sql = inv.join("codebases/shop-1.1/packages/core/install.sql");
    let mut text = std::fs::read_to_string(&sql).unwrap();
    text.push_str("\nCREATE TABLE slow_probe AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 6000000) SELECT count(*) AS n FROM c;\n");
    std::fs::write(&sql, text).unwrap();
    init_repo(&inv);
    let host = inv.join(".hoist-host");
    let w = Watch::start(&inv, &[]);
    let running = wait_until(Duration::from_secs(40), || {
        tasks_of(&host, "install-acme").iter().any(|t| {
            std::fs::read(host.join("tasks").join(t))
                .ok()
                .and_then(|b| hoist::task::parse(&b))
                .is_some_and(|r| r.result == hoist::task::TaskResult::Running)
        })
    });
    assert!(running, "{}", w.log());

    // A second reconciler on the same server is refused, clearly.
    let second = hoist(&inv, &["watch"]);
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another hoist is working on server root"),
        "{err}"
    );
    assert!(err.contains(&format!("pid {}", w.pid())), "{err}");
    let apply = hoist(&inv, &["apply", "--yes"]);
    assert_eq!(apply.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&apply.stderr).contains("another hoist"));

    // SIGTERM mid-task: acme's running step finishes, no further one
    // starts, the install is undone; no other task starts.
    let (code, log) = w.terminate(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{log}");
    let acme = tasks_of(&host, "install-acme");
    assert_eq!(acme.len(), 1);
    let rec = hoist::task::parse(&std::fs::read(host.join("tasks").join(&acme[0])).unwrap())
        .expect("a task record");
    assert_eq!(rec.result, hoist::task::TaskResult::Failed, "{rec:?}");
    let rec_log = rec.log.join("\n");
    assert!(rec_log.contains("interrupted"), "{rec_log}");
    assert!(rec_log.contains("rolled back"), "{rec_log}");
    assert!(!host
        .join("platforms/shop-1-1/sites/acme.example.com")
        .exists());
    for other in ["bakery", "chess-club", "dental", "eatery"] {
        assert!(
            tasks_of(&host, &format!("install-{other}")).is_empty(),
            "{other} started:\n{log}"
        );
    }
    // What happened is in the status, committed; the lock is released.
    let st = std::fs::read_to_string(inv.join("status/sites/acme.yaml")).unwrap();
    assert!(st.contains("sync: failed"), "{st}");
    let st = std::fs::read_to_string(inv.join("status/sites/bakery.yaml")).unwrap();
    assert!(st.contains("sync: out-of-sync"), "{st}");
    assert_eq!(hoist_commits(&inv, "HEAD"), 1);
    let out = hoist_ok(&inv, &["apply", "--yes"], 0);
    assert!(out.contains("create acme"), "{out}");
    assert!(out.contains("create bakery"), "{out}");
}

#[test]
fn watch_once_reconciles_a_single_time() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path(), &settings(None, true, 600, 100));
    let out = hoist(&inv, &["--log-format", "json", "watch", "--once"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap();
    let v: serde_json::Value =
        serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(v["level"], "INFO");
    assert!(inv
        .join(".hoist-host/platforms/shop-2-1/sites/eatery.example.com")
        .is_dir());
    assert_eq!(hoist_commits(&inv, "HEAD"), 1);
    assert_eq!(commits(&inv, "HEAD")[0].1, "Hoist Bot");
}

#[test]
fn a_restarted_daemon_still_only_reports_drift_without_self_heal() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory_repo(tmp.path(), &settings(None, false, 1, 100));
    // A first daemon run installs everything and records it synced.
    hoist_ok(&inv, &["watch", "--once"], 0);
    assert!(
        std::fs::read_to_string(inv.join("status/sites/bakery.yaml"))
            .unwrap()
            .contains("sync: synced")
    );
    // Behind hoist's back, then a new daemon: what it never applied itself
    // is still known from the status files, so this is drift, not a change.
    let vhost = inv.join(".hoist-host/vhosts/bakery.example.com.conf");
    std::fs::write(&vhost, "edited by hand").unwrap();
    let out = hoist(&inv, &["watch", "--once"]);
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("self-heal is off"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&vhost).unwrap(),
        "edited by hand",
        "self-heal is off, yet the drift was put back"
    );
    // A real change of the declaration is still applied by a new daemon.
    let site = inv.join("sites/eatery.yaml");
    std::fs::write(
        &site,
        std::fs::read_to_string(&site)
            .unwrap()
            .replace("enabled: true", "enabled: false"),
    )
    .unwrap();
    git(&inv, &["commit", "-q", "-am", "disable eatery"]);
    hoist_ok(&inv, &["watch", "--once"], 0);
    let eatery =
        std::fs::read_to_string(inv.join(".hoist-host/vhosts/eatery.example.com.conf")).unwrap();
    assert!(eatery.contains("site disabled"), "{eatery}");
    assert_eq!(std::fs::read_to_string(&vhost).unwrap(), "edited by hand");
}
