//! Crash safety: the hoist process is killed (abort, not an error) at every
//! step boundary and inside the long steps, then hoist is started again.
//! The site must be online on exactly one platform, every row and file as
//! before the task or as the finished task leaves it, no orphan database,
//! directory or vhost, and the backup kept. A seeded random run kills real
//! processes with SIGKILL at random moments over many tasks.

mod common;
mod services;
#[macro_use]
#[path = "common/stack.rs"]
mod stack;

#[cfg(feature = "failpoints")]
use common::{put_acme_behind, settings_of, MOVE_STEPS};
use common::{tasks, Fixture};
use stack::{Env, Stack};
use std::collections::{BTreeMap, BTreeSet};

/// What must hold after any recovery: each declared site once, online
/// (on nginx: answering 200 with its own name), and nothing left over: no
/// orphan database, database user, directory or vhost.
fn invariants(env: &Env) -> Vec<String> {
    let mut bad = Vec::new();
    let mut domains = BTreeSet::new();
    let mut names = BTreeMap::<String, usize>::new();
    for p in std::fs::read_dir(env.host().join("platforms"))
        .unwrap()
        .flatten()
    {
        let pname = p.file_name().to_string_lossy().into_owned();
        if pname.starts_with('.') {
            bad.push(format!("leftover platforms/{pname}"));
            continue;
        }
        let Ok(rd) = std::fs::read_dir(p.path().join("sites")) else {
            continue;
        };
        for sdir in rd.flatten() {
            let d = sdir.file_name().to_string_lossy().into_owned();
            if d.starts_with('.') {
                bad.push(format!("leftover platforms/{pname}/sites/{d}"));
                continue;
            }
            if sdir.path().join(".hoist-old-settings.yaml").exists() {
                bad.push(format!("leftover saved settings in {d}"));
            }
            let text =
                std::fs::read_to_string(sdir.path().join("settings.yaml")).unwrap_or_default();
            let get = |k: &str| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(k))
                    .map(|v| v.trim().trim_matches('"').to_string())
            };
            let (Some(site), Some(db)) = (get("site:"), get("name:")) else {
                bad.push(format!("site dir {pname}/{d} without settings"));
                continue;
            };
            *names.entry(site).or_default() += 1;
            if env.maintenance(&db).as_deref() != Some("0") {
                bad.push(format!("{d} is in maintenance mode"));
            }
            domains.insert(d);
        }
    }
    for (n, c) in &names {
        if *c != 1 {
            bad.push(format!("site {n} is found {c} times"));
        }
    }
    let dbs_in_use: BTreeSet<String> = env.databases_in_use().into_keys().collect();
    let dbs = env.databases();
    // A task's copies and staging files start with a dot; recovery
    // removes them.
    for e in std::fs::read_dir(env.host().join("databases"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') {
            bad.push(format!("leftover databases/{n}"));
        }
    }
    if dbs != dbs_in_use {
        bad.push(format!(
            "orphan or missing databases: on the server {dbs:?}, in use {dbs_in_use:?}"
        ));
    }
    if env.stack == Stack::MysqlNginx {
        let users: BTreeSet<String> = dbs_in_use.iter().map(|d| stack::user_for(d)).collect();
        if env.users() != users {
            bad.push(format!(
                "orphan or missing users: on the server {:?}, in use {users:?}",
                env.users()
            ));
        }
    }
    let vhosts = env.vhosts();
    if vhosts != domains {
        bad.push(format!(
            "orphan or missing vhosts: {vhosts:?} vs sites {domains:?}"
        ));
    }
    if std::fs::read_dir(env.host().join("trash"))
        .map(|d| d.count() > 0)
        .unwrap_or(false)
    {
        bad.push("the trash is not empty".into());
    }
    bad.extend(env.serving_problems());
    bad
}

/// The example applied on the embedded stack, with content.
fn base() -> Env {
    Env::example_with_content(Stack::Embedded).expect("the embedded stack needs no service")
}

#[cfg(feature = "failpoints")]
fn crash_at_every_point(
    stack: Stack,
    name: &str,
    args: &[&str],
    points: &[&str],
    change: impl Fn(&Fixture),
) {
    let Some((f, start)) = Env::prepared(stack, change) else {
        return;
    };
    let before = &start.state;
    let mut problems = Vec::new();
    let mut outcomes = BTreeMap::<String, usize>::new();
    f.try_each(&start, points, |point| {
        let r = f.with_failpoint(args, point);
        if r.status.code().is_some() {
            problems.push(format!(
                "{point}: not killed (exit {:?}): {}",
                r.status.code(),
                String::from_utf8_lossy(&r.stdout)
            ));
            return;
        }
        // hoist starts again: any command that touches the server recovers
        let again = f.run(&["plan"]);
        if !again.stderr.contains("recovered interrupted task") {
            problems.push(format!("{point}: no recovery reported: {}", again.all()));
        }
        let t = tasks(&f)
            .into_iter()
            .rev()
            .find(|t| {
                t["kind"] != "build" && t["kind"] != "install"
                    || args[0] != "apply"
                    || name == "install"
            })
            .unwrap();
        let result = t["result"].as_str().unwrap().to_string();
        *outcomes.entry(result.clone()).or_default() += 1;
        if !t["log"]
            .to_string()
            .contains("recovered after an interruption")
        {
            problems.push(format!("{point}: task log does not tell the recovery"));
        }
        match result.as_str() {
            "failed" => {
                let now = f.state();
                if now != *before {
                    let files: Vec<&String> = now
                        .0
                        .keys()
                        .chain(before.0.keys())
                        .filter(|k| now.0.get(*k) != before.0.get(*k))
                        .collect();
                    let tables: Vec<&String> = now
                        .1
                        .keys()
                        .chain(before.1.keys())
                        .filter(|k| now.1.get(*k) != before.1.get(*k))
                        .collect();
                    problems.push(format!(
                        "{point}: undone but not as before: files {files:?} tables {tables:?}"
                    ));
                }
            }
            "success" | "warning" => {}
            other => problems.push(format!("{point}: task left {other}")),
        }
        problems.extend(invariants(&f).into_iter().map(|b| format!("{point}: {b}")));
        let took_backup = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "backup" && s["state"] == "done");
        if took_backup {
            let rel = t["backup"].as_str().unwrap_or_default();
            if !f.host().join(rel).is_file() {
                problems.push(format!("{point}: the backup {rel} was not kept"));
            }
        }
        // and the lock a killed process held does not block the next run
        let r = f.run(&["apply", "--yes"]);
        if r.stderr.contains("another hoist") {
            problems.push(format!("{point}: a stale lock blocked the next run"));
        }
        problems.extend(
            invariants(&f)
                .into_iter()
                .map(|b| format!("{point} (after re-apply): {b}")),
        );
    });
    assert!(
        problems.is_empty(),
        "{name} on {stack:?} ({outcomes:?}):\n{}",
        problems.join("\n")
    );
}

#[cfg(feature = "failpoints")]
fn points(steps: &[&str], inside: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = steps
        .iter()
        .flat_map(|s| [format!("{s}:abort"), format!("{s}:abort-after")])
        .collect();
    v.extend(inside.iter().map(|s| format!("{s}:abort")));
    v
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn migrate_survives_a_kill_anywhere(stack) {
        let p = points(
            &move_steps(),
            &["backup-archive", "deploy-inside", "update-inside"],
        );
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "migrate", &["apply", "--yes"], &p, |f| {
            f.set_site("acme", "platform", "shop-2-0")
        });
    }
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn rename_survives_a_kill_anywhere(stack) {
        let p = points(&stack.rename_steps(&move_steps()), &["backup-archive", "deploy-inside"]);
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "rename", &["apply", "--yes"], &p, |f| {
            f.set_site("acme", "domain", "acme.example.org")
        });
    }
}

on_both_stacks! {
    /// Issue 11 item 4: a rename's undo never depends on a dump it may not
    /// load. Killed after its paths were rewritten (or its settings written),
    /// with its backup then destroyed, the rename is undone: the site is back
    /// under its old domain on its old database, every row byte for byte as
    /// before, online, and the (damaged) backup is kept.
    #[cfg(feature = "failpoints")]
    fn a_rename_whose_backup_is_damaged_still_gives_the_site_back_its_database(stack) {
        let Some(f) = Env::example_with_content(stack) else {
            return;
        };
        let base = &f;
        let (old_db, old_password) = settings_of(base, "shop-1-1", "acme.example.com");
        let rows_of = |f: &Env| f.db_rows(&old_db);
        let before = rows_of(base);
        assert!(
            before["files"].iter().any(|r| r.contains(
                &"sites/acme.example.com/"
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )),
            "the fixture has a path for the rename to rewrite"
        );
        base.set_site("acme", "domain", "acme.example.org");
        let start = base.checkpoint();
        for point in [
            "clear-caches:abort",
            "verify:abort-after",
            "maintenance-off:abort-after",
        ] {
            f.restore(&start);
            let r = f.with_failpoint(&["apply", "--yes"], point);
            assert_eq!(r.status.code(), None, "{point}: killed");
            let t = tasks(&f).pop().unwrap();
            assert_eq!(t["kind"], "rename");
            let backup = f.host().join(t["backup"].as_str().unwrap());
            std::fs::write(&backup, b"not a backup any more").unwrap();

            let again = f.run(&["plan"]);
            assert!(
                again.stderr.contains("recovered interrupted task"),
                "{point}: {}",
                again.all()
            );
            let t = tasks(&f).pop().unwrap();
            assert_eq!(t["result"], "failed", "{point}");
            let said = t["recovered"].as_str().unwrap();
            assert!(said.starts_with("rolled back"), "{point}: {said}");
            assert!(backup.is_file(), "{point}: the backup is kept");
            assert_eq!(
                settings_of(&f, "shop-1-1", "acme.example.com"),
                (old_db.clone(), old_password.clone()),
                "{point}"
            );
            assert!(
                !f.host()
                    .join("platforms/shop-1-1/sites/acme.example.org")
                    .exists(),
                "{point}"
            );
            assert_eq!(rows_of(&f), before, "{point}: rows changed");
            let bad = invariants(&f);
            assert!(bad.is_empty(), "{point}: {bad:?}");
        }
    }
}

/// An undo that cannot put everything back says so, loudly, and leaves the
/// site in maintenance rather than online half-changed: here the moved
/// directory cannot go back, because something took its old name.
#[cfg(feature = "failpoints")]
#[test]
fn an_undo_that_cannot_finish_says_so_and_leaves_the_site_in_maintenance() {
    let f = base();
    let (old_db, _) = settings_of(&f, "shop-1-1", "acme.example.com");
    f.set_site("acme", "domain", "acme.example.org");
    let r = f.with_failpoint(&["apply", "--yes"], "update:abort");
    assert_eq!(r.status.code(), None, "killed");
    let old_dir = f.host().join("platforms/shop-1-1/sites/acme.example.com");
    let new_dir = f.host().join("platforms/shop-1-1/sites/acme.example.org");
    assert!(!old_dir.exists() && new_dir.is_dir());
    std::fs::create_dir(&old_dir).unwrap();
    std::fs::write(old_dir.join("squatter.txt"), "not hoist's").unwrap();

    let again = f.run(&["plan"]);
    assert!(
        again.stderr.contains("ROLLING BACK FAILED"),
        "{}",
        again.all()
    );
    let t = tasks(&f).pop().unwrap();
    assert_eq!(t["result"], "failed");
    let said = t["recovered"].as_str().unwrap();
    assert!(
        said.contains("ROLLING BACK FAILED") && said.contains("moving the site directory back"),
        "{said}"
    );
    assert!(
        t["log"].to_string().contains("ROLLING BACK FAILED"),
        "{}",
        t["log"]
    );
    // Nothing of the site is lost: its files where the move left them, its
    // database as it was, still in maintenance.
    assert_eq!(
        std::fs::read_to_string(new_dir.join("files/a.txt")).unwrap(),
        "content of acme.example.com"
    );
    assert_eq!(
        std::fs::read_to_string(old_dir.join("squatter.txt")).unwrap(),
        "not hoist's"
    );
    assert_eq!(
        common::maintenance_of(&f, &old_db),
        "1",
        "left in maintenance"
    );
}

/// Issue 11 item 6: what a killed backup left (its spooled dump and its
/// unfinished archive) is removed by the next hoist's recovery; so is a
/// task record a full disk left empty.
#[cfg(feature = "failpoints")]
#[test]
fn recovery_removes_what_a_killed_backup_and_a_full_disk_left() {
    let f = base();
    let r = f.with_failpoint(&["backup", "acme"], "backup-archive:abort");
    assert_eq!(r.status.code(), None, "killed");
    let dir = f.host().join("backups/acme");
    let temporary = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".hoist-tmp-"))
            .collect()
    };
    let left = temporary(&dir);
    assert!(left.iter().any(|n| n.ends_with(".tar.gz")), "{left:?}");
    // And the dump a backup killed while dumping a large database leaves.
    std::fs::write(dir.join(".hoist-tmp-1-20260101.000000.sql"), b"INSERT").unwrap();
    // A task record created on a full disk: its file and second name, empty.
    let tasks_dir = f.host().join("tasks");
    let id = "20260101T000000.000-backup-acme-0000";
    std::fs::write(tasks_dir.join(format!("{id}.json")), b"").unwrap();
    std::fs::hard_link(
        tasks_dir.join(format!("{id}.json")),
        tasks_dir.join(format!("{id}.running")),
    )
    .unwrap();

    let again = f.run(&["plan"]);
    assert!(
        again.stderr.contains("recovered interrupted task"),
        "{}",
        again.all()
    );
    assert!(temporary(&dir).is_empty(), "{:?}", temporary(&dir));
    assert!(!tasks_dir.join(format!("{id}.json")).exists());
    assert!(!tasks_dir.join(format!("{id}.running")).exists());
    f.ok(&["tasks"], 0);
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn migrate_rename_survives_a_kill_anywhere(stack) {
        let p = points(
            &move_steps(),
            &["backup-archive", "deploy-inside", "update-inside"],
        );
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "migrate+rename", &["apply", "--yes"], &p, |f| {
            f.set_site("bakery", "platform", "shop-2-1");
            f.set_site("bakery", "domain", "bakery.example.org");
        });
    }
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn clone_survives_a_kill_anywhere(stack) {
        let p = points(
            common::CLONE_STEPS,
            &["backup-archive", "deploy-inside", "update-inside"],
        );
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "clone", &["apply", "--yes"], &p, common::add_clone_of_acme);
    }
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn install_survives_a_kill_anywhere(stack) {
        let p = points(common::INSTALL_STEPS, &[]);
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "install", &["apply", "--yes"], &p, common::add_newbie);
    }
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn delete_survives_a_kill_anywhere(stack) {
        let mut steps = common::DELETE_STEPS.to_vec();
        steps.extend(["drop-database", "empty-trash"]);
        let p = points(&steps, &["backup-archive"]);
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "delete", &["apply", "--yes"], &p, common::prune_eatery);
    }
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn update_survives_a_kill_anywhere(stack) {
        let p = points(
            &[
                "observe",
                "maintenance-on",
                "backup",
                "keep-copy",
                "update",
                "clear-caches",
                "health-check",
                "maintenance-off",
                "remove-copy",
            ],
            &["backup-archive", "update-inside"],
        );
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "update", &["apply", "--yes"], &p, put_acme_behind);
    }
}

on_both_stacks! {
    #[cfg(feature = "failpoints")]
    fn restore_survives_a_kill_anywhere(stack) {
        let mut steps = common::RESTORE_STEPS.to_vec();
        steps.push("remove-old");
        let p = points(
            &steps,
            &["backup-archive", "restore-extract"],
        );
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        crash_at_every_point(stack, "restore", &["restore", "acme"], &p, |f| {
            f.ok(&["backup", "acme"], 0);
            std::fs::write(
                f.host()
                    .join("platforms/shop-1-1/sites/acme.example.com/files/a.txt"),
                "changed after the backup",
            )
            .unwrap();
        });
    }
}

/// A tiny deterministic generator: the seed is printed on failure so a run
/// can be repeated exactly.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn random_kills_over_many_tasks_never_lose_a_site() {
    let seed: u64 = std::env::var("HOIST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125);
    let rounds: usize = std::env::var("HOIST_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rng = Lcg(seed);
    let f = base();
    // The user content each site must keep, whatever happens.
    let content = |f: &Fixture| -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for p in std::fs::read_dir(f.host().join("platforms"))
            .unwrap()
            .flatten()
        {
            for s in std::fs::read_dir(p.path().join("sites"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(t) = std::fs::read_to_string(s.path().join("files/a.txt")) {
                    let site = std::fs::read_to_string(s.path().join("settings.yaml")).unwrap();
                    let name = site
                        .lines()
                        .find_map(|l| l.strip_prefix("site: "))
                        .unwrap()
                        .to_string();
                    m.insert(name, t);
                }
            }
        }
        m
    };
    let expected = content(&f);
    // Edits that are always allowed: platforms only move forward (a step
    // back would be a schema downgrade, rightly blocked), domains toggle.
    let ladders: [(&str, &[&str]); 2] = [
        ("acme", &["shop-1-1", "shop-2-0", "shop-2-1"]),
        ("bakery", &["shop-1-0", "shop-1-1", "shop-2-0", "shop-2-1"]),
    ];
    let mut rung = [0usize; 2];
    let toggles: [(&str, &str, &str); 2] = [
        ("acme", "acme.example.com", "acme.example.org"),
        ("eatery", "eatery.example.com", "eatery.example.org"),
    ];
    let mut toggled = [false; 2];
    for round in 0..rounds {
        for _ in 0..2 {
            let pick = (rng.next() % 4) as usize;
            if pick < 2 {
                let (site, ladder) = ladders[pick];
                if rung[pick] + 1 < ladder.len() {
                    rung[pick] += 1;
                    f.set_site(site, "platform", ladder[rung[pick]]);
                }
            } else {
                let (site, a, b) = toggles[pick - 2];
                toggled[pick - 2] = !toggled[pick - 2];
                f.set_site(site, "domain", if toggled[pick - 2] { b } else { a });
            }
        }
        let delay = std::time::Duration::from_millis(rng.next() % 900);
        let mut child = f
            .cmd(&["apply", "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let r = f.run(&["apply", "--yes"]);
        let ctx = format!(
            "seed {seed} round {round} (delay {delay:?}); repeat with HOIST_CRASH_SEED={seed}"
        );
        assert!(!r.stdout.contains("failed "), "{ctx}: {}", r.all());
        let bad = invariants(&f);
        assert!(bad.is_empty(), "{ctx}: {bad:?}");
        assert_eq!(content(&f), expected, "{ctx}: a site's files changed");
        assert!(
            tasks(&f).iter().all(|t| t["result"] != "running"),
            "{ctx}: a task was left running"
        );
        f.plan_json(&["--detailed-exitcode"], 0);
    }
}

#[cfg(feature = "failpoints")]
#[test]
fn the_watch_daemon_recovers_what_a_killed_hoist_left() {
    let f = base();
    f.set_site("acme", "platform", "shop-2-0");
    let r = f.with_failpoint(&["apply", "--yes"], "update-inside:abort");
    assert!(r.status.code().is_none(), "killed");
    let w = f.run(&["watch", "--once"]);
    assert_eq!(w.code, 0, "{}", w.all());
    assert!(
        w.stderr.contains("recovered an interrupted task"),
        "{}",
        w.all()
    );
    let migrate = tasks(&f)
        .into_iter()
        .find(|t| t["kind"] == "migrate")
        .unwrap();
    assert_eq!(migrate["result"], "failed");
    assert!(
        migrate["recovered"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{migrate}"
    );
    // and the same pass then carried out the migration
    assert!(f
        .host()
        .join("platforms/shop-2-0/sites/acme.example.com")
        .is_dir());
    assert!(invariants(&f).is_empty(), "{:?}", invariants(&f));
}

/// The move steps with the one after the point of no return.
#[cfg(feature = "failpoints")]
fn move_steps() -> Vec<&'static str> {
    let mut v = MOVE_STEPS.to_vec();
    v.push("remove-old");
    v
}
