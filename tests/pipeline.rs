//! The site pipeline of spec section 8 through the binary: migrate, rename,
//! migrate+rename, clone, delete, enable/disable/verify, stale plans and
//! parallel tasks, each checked row by row and file by file.
//!
//! The site tasks run on both stacks (`tests/common/stack.rs`): on
//! mysql+nginx rows are read from the site's MariaDB database, and after
//! every apply each site answers 200 with its own name through nginx
//! ([`Env::apply`]). Saved plans, parallelism and log format are about the
//! plan and the scheduler, whatever the servers: those stay embedded.

mod common;
mod services;
#[macro_use]
#[path = "common/stack.rs"]
mod stack;

use common::{assert_same, last_task, settings_of, site, snapshot, tasks, Fixture};
use stack::{Env, Stack};
use std::path::{Path, PathBuf};

fn db(f: &Fixture, platform: &str, domain: &str) -> rusqlite::Connection {
    let (name, _) = settings_of(f, platform, domain);
    rusqlite::Connection::open(f.host().join(format!("databases/{name}.sqlite"))).unwrap()
}

/// The database name of the site at `platform`/`domain`.
fn db_of(env: &Env, platform: &str, domain: &str) -> String {
    settings_of(env, platform, domain).0
}

/// `(schema_version, version, enabled)` of package `pkg` in database `db`.
fn schema_of(env: &Env, db: &str, pkg: &str) -> (i64, String, i64) {
    let row = env
        .query(
            db,
            &format!("SELECT schema_version, version, enabled FROM system WHERE name='{pkg}'"),
        )
        .pop()
        .unwrap_or_else(|| panic!("no package {pkg} in {db}"));
    let v: Vec<&str> = row.split('\t').collect();
    (
        v[0].parse().unwrap(),
        v[1].to_string(),
        v[2].parse().unwrap(),
    )
}

/// The `files` table's paths in database `db`, by fid.
fn paths(env: &Env, db: &str) -> Vec<String> {
    env.query(db, "SELECT path FROM files ORDER BY fid")
}

/// Puts content into a site: a file with a row in `files`, and a cache row.
fn add_content(env: &Env, platform: &str, domain: &str) {
    let dir = env
        .host()
        .join(format!("platforms/{platform}/sites/{domain}/files"));
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::write(dir.join("img/logo.png"), b"\x89PNG fake image").unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    env.exec(
        &db_of(env, platform, domain),
        &format!(
            "INSERT INTO files (fid, path) VALUES (2001, 'sites/{domain}/files/img/logo.png'), (2002, 'sites/{domain}/files/notes.txt');
             INSERT INTO cache (cid, data) VALUES ('k', 'v');"
        ),
    );
}

fn tar_lists(archive: &Path) -> String {
    let o = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "GNU tar cannot list {}: {}",
        archive.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn backups(f: &Fixture, site: &str) -> Vec<PathBuf> {
    common::backup_archives(f, site)
}

/// The example applied on `stack`; `None`: the stack's services are not
/// installed (the test is skipped).
fn applied(stack: Stack) -> Option<Env> {
    let env = Env::example(stack)?;
    env.apply();
    Some(env)
}

on_both_stacks! {
    fn migrate_moves_data_files_and_applies_updates(stack) {
        let Some(f) = applied(stack) else { return };
        add_content(&f, "shop-1-1", "acme.example.com");
        let old_db = db_of(&f, "shop-1-1", "acme.example.com");
        let before = paths(&f, &old_db);
        f.set_site("acme", "platform", "shop-2-0");
        let r = f.apply();
        assert!(r.stdout.contains("success  migrate acme"), "{}", r.all());

        let new_db = db_of(&f, "shop-2-0", "acme.example.com");
        assert_eq!(
            schema_of(&f, &new_db, "core"),
            (5, "2.0.0".into(), 1),
            "core updates 4 and 5 applied"
        );
        assert_eq!(schema_of(&f, &new_db, "node"), (2, "2.0.0".into(), 1));
        assert_eq!(
            schema_of(&f, &new_db, "blog"),
            (2, "1.2.0".into(), 1),
            "same schema, the target's version recorded"
        );
        assert_eq!(before, paths(&f, &new_db), "same domain: paths unchanged");
        assert!(
            f.query(&new_db, "SELECT cid FROM cache").is_empty(),
            "caches cleared"
        );
        assert_eq!(f.var(&new_db, "maintenance_mode").as_deref(), Some("0"), "online");
        let files = f
            .host()
            .join("platforms/shop-2-0/sites/acme.example.com/files");
        assert_eq!(
            std::fs::read(files.join("img/logo.png")).unwrap(),
            b"\x89PNG fake image"
        );
        // the old copy is gone: directory, database, and the vhost now points at the target
        assert!(!f
            .host()
            .join("platforms/shop-1-1/sites/acme.example.com")
            .exists());
        assert!(!f.databases().contains(&old_db), "{old_db} is left");
        let vhost = f.vhost("acme.example.com").unwrap();
        assert!(vhost.contains("platforms/shop-2-0"), "{vhost}");
        // the backup is kept and GNU tar reads it
        let b = backups(&f, "acme");
        assert_eq!(b.len(), 1);
        let listing = tar_lists(&b[0]);
        assert!(
            listing.contains("site/files/img/logo.png") && listing.contains("database.sql"),
            "{listing}"
        );
        let t = last_task(&f);
        assert_eq!(t["kind"], "migrate");
        assert_eq!(t["result"], "success");
        let steps: Vec<&str> = common::names(&t["steps"]);
        for want in common::MOVE_STEPS.iter().skip(2).chain(&["remove-old"]) {
            assert!(steps.contains(want), "step {want} missing: {steps:?}");
        }
        // the task is listed, and its log tells every step with its timing
        let id = t["id"].as_str().unwrap();
        let listed = f.ok(&["tasks", "acme"], 0).stdout;
        assert!(
            listed
                .lines()
                .any(|l| l.starts_with(id) && l.contains("migrate") && l.contains("success")),
            "{listed}"
        );
        assert!(!listed.contains("bakery"), "only acme's tasks: {listed}");
        let log = f.ok(&["log", &id[..20]], 0).stdout;
        assert!(
            log.contains(&format!("task {id}")) && log.contains("result: success"),
            "{log}"
        );
        assert!(
            log.contains("backup: backups/acme/acme.example.com-"),
            "{log}"
        );
        for want in ["maintenance-on", "deploy", "update", "remove-old"] {
            assert!(
                log.lines()
                    .any(|l| l.trim_start().starts_with(want) && l.contains(" ms")),
                "{want}: {log}"
            );
        }
        assert!(
            log.contains("applied update 4 of core") && log.contains("applied update 5 of core"),
            "{log}"
        );
        f.ok(&["log", "no-such-task"], 1);
        f.plan_json(&["--detailed-exitcode"], 0);
    }
}

on_both_stacks! {
    fn missing_packages_are_disabled_and_the_task_warns(stack) {
        let Some(f) = applied(stack) else { return };
        f.set_site("chess-club", "platform", "shop-2-0");
        let r = f.apply();
        assert!(
            r.stdout.contains("warning  migrate chess-club"),
            "{}",
            r.all()
        );
        assert!(
            r.stdout.contains("legacy_polls was disabled"),
            "{}",
            r.all()
        );
        let db = db_of(&f, "shop-2-0", "chess.example.org");
        assert_eq!(schema_of(&f, &db, "legacy_polls").2, 0, "disabled");
        assert_eq!(last_task(&f)["result"], "warning");
    }
}

on_both_stacks! {
    fn rename_moves_the_directory_without_copying_and_fixes_paths(stack) {
        let Some(f) = applied(stack) else { return };
        add_content(&f, "shop-1-1", "acme.example.com");
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(
            f.host()
                .join("platforms/shop-1-1/sites/acme.example.com/files/img/logo.png"),
        )
        .unwrap()
        .ino();
        let (old_db, old_password) = settings_of(&f, "shop-1-1", "acme.example.com");
        let system_before = f.db_rows(&old_db)["system"].clone();
        f.set_site("acme", "domain", "acme.example.org");
        let plan = f.plan_json(&[], 0);
        assert_eq!(site(&plan, "acme")["action"], "rename");
        f.apply();
        let new = f.host().join("platforms/shop-1-1/sites/acme.example.org");
        assert_eq!(
            std::fs::metadata(new.join("files/img/logo.png"))
                .unwrap()
                .ino(),
            ino,
            "the file was moved, not copied"
        );
        // A new database and user (spec step 3; on SQLite a copy edited, so
        // an undo never has to load a dump; on MariaDB the tables moved),
        // and nothing of the old one is left once the rename is done.
        let (new_db, new_password) = settings_of(&f, "shop-1-1", "acme.example.org");
        assert_ne!(new_db, old_db);
        assert_ne!(new_password, old_password);
        assert_eq!(f.databases(), f.databases_in_use().into_keys().collect());
        assert!(!f.databases().contains(&old_db), "{old_db} is left");
        match stack {
            Stack::Embedded => {
                let dbs = f.host().join("databases");
                assert!(std::fs::read_to_string(dbs.join(format!("{new_db}.user")))
                    .unwrap()
                    .starts_with(&format!("{new_db}:")));
                assert!(!dbs.join(format!("{old_db}.user")).exists());
            }
            Stack::MysqlNginx => {
                let users = f.users();
                assert!(users.contains(&stack::user_for(&new_db)), "{users:?}");
                assert!(!users.contains(&stack::user_for(&old_db)), "{users:?}");
            }
        }
        assert_eq!(
            system_before,
            f.db_rows(&new_db)["system"],
            "the packages are untouched"
        );
        assert!(!f
            .host()
            .join("platforms/shop-1-1/sites/acme.example.com")
            .exists());
        assert_eq!(f.vhost("acme.example.com"), None);
        assert!(f.vhost("acme.example.org").is_some());
        let paths = paths(&f, &new_db);
        assert!(
            paths
                .iter()
                .all(|p| p.contains("sites/acme.example.org/files/")),
            "{paths:?}"
        );
        assert_eq!(
            f.var(&new_db, "file_directory_path").as_deref(),
            Some("sites/acme.example.org/files")
        );
        assert_eq!(
            f.var(&new_db, "base_url").as_deref(),
            Some("http://acme.example.org")
        );
        assert!(!new.join(".hoist-old-settings.yaml").exists());
        f.plan_json(&["--detailed-exitcode"], 0);
    }
}

on_both_stacks! {
    fn migrate_and_rename_at_once(stack) {
        let Some(f) = applied(stack) else { return };
        add_content(&f, "shop-1-0", "bakery.example.com");
        f.set_site("bakery", "platform", "shop-2-1");
        f.set_site("bakery", "domain", "bakery.example.org");
        assert_eq!(
            site(&f.plan_json(&[], 0), "bakery")["action"],
            "migrate+rename"
        );
        f.apply();
        let db = db_of(&f, "shop-2-1", "bakery.example.org");
        assert_eq!(schema_of(&f, &db, "core").0, 6);
        assert_eq!(schema_of(&f, &db, "blog").0, 3);
        assert!(paths(&f, &db)
            .iter()
            .all(|p| p.contains("sites/bakery.example.org/")));
        assert!(f
            .host()
            .join("platforms/shop-2-1/sites/bakery.example.org/files/notes.txt")
            .exists());
        assert!(!f
            .host()
            .join("platforms/shop-1-0/sites/bakery.example.com")
            .exists());
        assert_eq!(f.vhost("bakery.example.com"), None);
        f.plan_json(&["--detailed-exitcode"], 0);
    }
}

on_both_stacks! {
    fn clone_copies_and_leaves_the_source_untouched(stack) {
        let Some(f) = applied(stack) else { return };
        add_content(&f, "shop-1-1", "acme.example.com");
        let src_files = snapshot(&f.host().join("platforms/shop-1-1/sites/acme.example.com"));
        let src_db = db_of(&f, "shop-1-1", "acme.example.com");
        let src_rows = f.db_rows(&src_db);
        f.write(
            "sites/acme-staging.yaml",
            "domain: staging.acme.example.com\nplatform: shop-2-1\nclone_from: acme\n",
        );
        let plan = f.plan_json(&[], 0);
        assert_eq!(site(&plan, "acme-staging")["action"], "clone");
        f.apply();
        assert_same(
            &src_files,
            &snapshot(&f.host().join("platforms/shop-1-1/sites/acme.example.com")),
            "the source's files changed",
        );
        assert_eq!(src_rows, f.db_rows(&src_db), "the source's rows changed");
        let db = db_of(&f, "shop-2-1", "staging.acme.example.com");
        assert_eq!(
            schema_of(&f, &db, "core").0,
            6,
            "updated to the clone's platform"
        );
        assert!(paths(&f, &db)
            .iter()
            .all(|p| p.contains("sites/staging.acme.example.com/")));
        assert_eq!(f.var(&db, "site_name").as_deref(), Some("acme-staging"));
        assert!(f
            .host()
            .join("platforms/shop-2-1/sites/staging.acme.example.com/files/img/logo.png")
            .exists());
        let (_, pw_src) = settings_of(&f, "shop-1-1", "acme.example.com");
        let (_, pw_clone) = settings_of(&f, "shop-2-1", "staging.acme.example.com");
        assert_ne!(pw_src, pw_clone, "each site has its own database password");
        if stack == Stack::MysqlNginx {
            let users = f.users();
            assert!(
                users.contains(&stack::user_for(&db)) && users.contains(&stack::user_for(&src_db)),
                "each site has its own database user: {users:?}"
            );
        }
        f.plan_json(&["--detailed-exitcode"], 0);
    }
}

on_both_stacks! {
    fn prune_deletes_with_a_final_backup_and_then_the_platform(stack) {
        let Some(f) = applied(stack) else { return };
        f.write(
            "hoist.yaml",
            &f.read("hoist.yaml").replace("prune: false", "prune: true"),
        );
        std::fs::remove_file(f.inv().join("sites/bakery.yaml")).unwrap();
        std::fs::remove_file(f.inv().join("platforms/shop-1-0.yaml")).unwrap();
        let db_name = db_of(&f, "shop-1-0", "bakery.example.com");
        let plan = f.plan_json(&[], 0);
        assert_eq!(site(&plan, "bakery")["action"], "delete");
        let p = plan["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "shop-1-0")
            .unwrap();
        assert_eq!(p["action"], "delete");
        f.apply();
        assert!(
            !f.host().join("platforms/shop-1-0").exists(),
            "the emptied platform is deleted after its site"
        );
        assert!(!f.databases().contains(&db_name), "{db_name} is left");
        assert!(
            !f.users().contains(&stack::user_for(&db_name)),
            "its database user is left"
        );
        assert_eq!(f.vhost("bakery.example.com"), None);
        if stack == Stack::MysqlNginx {
            // nginx answers an unknown name with its default server: any
            // site but bakery.
            let (_, body) = f.get("bakery.example.com");
            assert!(!body.contains("site: bakery"), "the deleted site is still served");
        }
        let b = backups(&f, "bakery");
        assert_eq!(b.len(), 1, "the final backup is kept");
        assert!(tar_lists(&b[0]).contains("database.sql"));
        f.plan_json(&["--detailed-exitcode"], 0);
    }
}

on_both_stacks! {
    fn disable_enable_and_verify_rerender_the_vhost(stack) {
        let Some(f) = applied(stack) else { return };
        let vhost = || f.vhost("eatery.example.com").unwrap();
        // "site disabled" in the embedded vhost, "Site disabled" on nginx
        let disabled = || vhost().to_lowercase().contains("site disabled");
        f.set_site("eatery", "enabled", "false");
        assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "disable");
        f.apply();
        assert!(disabled());
        if stack == Stack::MysqlNginx {
            let (status, body) = f.get("eatery.example.com");
            assert_eq!(status, 403, "a disabled site is served: {body}");
        }
        f.set_site("eatery", "enabled", "true");
        assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "enable");
        f.apply();
        assert!(!disabled());
        f.set_site("eatery", "aliases", "[www.eatery.example.com]");
        assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "verify");
        f.apply();
        assert!(vhost().contains("server_name eatery.example.com www.eatery.example.com;"));
        // drift: a vhost edited by hand is put back by verify
        std::fs::write(f.vhost_path("eatery.example.com"), "# hacked\n").unwrap();
        assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "verify");
        f.apply();
        assert!(vhost().contains("server_name eatery.example.com"));
        f.plan_json(&["--detailed-exitcode"], 0);
    }
}

#[test]
fn a_saved_plan_is_carried_out_only_while_a_fresh_plan_agrees() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let out = f.tmp.path().join("plan.json");
    f.ok(&["plan", "--out", out.to_str().unwrap()], 0);
    // the inventory changes again after planning: the saved plan says
    // shop-2-0, a fresh plan shop-2-1, so neither is carried out
    f.set_site("acme", "platform", "shop-2-1");
    let r = f.ok(&["apply", "--yes", out.to_str().unwrap()], 1);
    assert!(
        r.stderr.contains("does not match a fresh plan")
            && r.stderr.contains(
                "site acme: the saved plan says migrate (from acme.example.com on shop-1-1, to acme.example.com on shop-2-0), a fresh plan says migrate (from acme.example.com on shop-1-1, to acme.example.com on shop-2-1)"
            ),
        "{}",
        r.all()
    );
    assert!(f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
    // back to what was reviewed: carried out
    f.set_site("acme", "platform", "shop-2-0");
    f.ok(&["apply", "--yes", out.to_str().unwrap()], 0);
    assert!(
        f.host()
            .join("platforms/shop-2-0/sites/acme.example.com")
            .is_dir(),
        "the reviewed plan"
    );

    // stale: a package of the site is updated behind the plan's back
    f.set_site("dental", "platform", "shop-2-1");
    f.ok(&["plan", "--out", out.to_str().unwrap()], 0);
    let c = db(&f, "shop-2-0", "dental.example.net");
    c.execute("UPDATE system SET version='2.0.1' WHERE name='node'", [])
        .unwrap();
    let r = f.ok(&["apply", "--yes", out.to_str().unwrap()], 1);
    assert!(
        r.stderr.contains("is stale") && r.stderr.contains("dental"),
        "{}",
        r.all()
    );
    assert!(
        f.host()
            .join("platforms/shop-2-0/sites/dental.example.net")
            .is_dir(),
        "nothing was done"
    );
}

fn intervals(f: &Fixture, kind: &str) -> Vec<(String, String)> {
    tasks(f)
        .into_iter()
        .filter(|t| t["kind"] == kind)
        .map(|t| {
            (
                t["started"].as_str().unwrap().to_string(),
                t["finished"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn overlaps(v: &[(String, String)]) -> bool {
    v.iter()
        .enumerate()
        .any(|(i, a)| v.iter().skip(i + 1).any(|b| a.0 < b.1 && b.0 < a.1))
}

#[test]
fn site_tasks_run_in_parallel_up_to_the_policy() {
    for (parallel, expect_overlap) in [(1, false), (2, true)] {
        let f = Fixture::example();
        f.write(
            "hoist.yaml",
            &f.read("hoist.yaml")
                .replace("parallel: 2", &format!("parallel: {parallel}")),
        );
        f.apply();
        for s in ["acme", "chess-club", "bakery"] {
            f.set_site(s, "platform", "shop-2-0");
        }
        f.apply();
        let iv = intervals(&f, "migrate");
        assert_eq!(iv.len(), 3);
        assert_eq!(overlaps(&iv), expect_overlap, "parallel {parallel}: {iv:?}");
    }
}

/// Issue 15 item 5: `--log-format json` carries the site, the task and the
/// step as fields of each event, not as words of its message.
#[test]
fn json_logs_carry_site_task_and_step_as_fields() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let out = f
        .cmd(&["--log-format", "json", "apply", "--yes"])
        .env("RUST_LOG", "info")
        .output()
        .expect("hoist runs");
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let steps: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["fields"]["site"] == "acme" && e["fields"]["step"].is_string())
        .collect();
    let named: Vec<&str> = steps
        .iter()
        .map(|e| e["fields"]["step"].as_str().unwrap())
        .collect();
    for step in ["maintenance-on", "backup", "deploy", "verify", "remove-old"] {
        assert!(named.contains(&step), "no event of step {step}: {named:?}");
    }
    for e in &steps {
        assert!(
            e["fields"]["task"]
                .as_str()
                .is_some_and(|t| t.contains("acme")),
            "{e}"
        );
        let message = e["fields"]["message"].as_str().unwrap();
        assert!(!message.contains("acme"), "the site is in the message: {e}");
    }
}

on_both_stacks! {
    fn a_site_moves_to_another_database_server_and_back(stack) {
        let Some(f) = applied(stack) else { return };
        add_content(&f, "shop-1-1", "acme.example.com");
        let site_dir = f.host().join("platforms/shop-1-1/sites/acme.example.com");
        let files_before = snapshot(&site_dir.join("files"));
        let first_db = db_of(&f, "shop-1-1", "acme.example.com");
        let rows_before = f.db_rows(&first_db);
        let other = f.add_other_database_server();
        f.set_site("acme", "database", "other");

        let plan = f.plan_json(&[], 0);
        assert_eq!(site(&plan, "acme")["action"], "migrate");
        let shown = f.run(&["plan"]);
        assert!(
            shown.stdout.contains("acme.example.com on shop-1-1 (database to server other)"),
            "{}",
            shown.all()
        );
        let r = f.apply();
        assert!(r.stdout.contains("success  migrate acme"), "{}", r.all());
        let settings = std::fs::read_to_string(site_dir.join("settings.yaml")).unwrap();
        assert!(settings.contains("server: other"), "{settings}");
        let moved_db = db_of(&f, "shop-1-1", "acme.example.com");
        assert_ne!(moved_db, first_db, "a new database on the other server");
        assert_eq!(
            f.other_query(other.as_ref(), &moved_db, "SELECT path FROM files WHERE fid=2001"),
            vec!["sites/acme.example.com/files/img/logo.png".to_string()],
            "the rows moved"
        );
        assert!(
            !f.databases().contains(&first_db),
            "the old database is dropped once the new one serves"
        );
        assert_eq!(snapshot(&site_dir.join("files")), files_before, "files untouched");
        assert_eq!(f.plan_json(&[], 0)["summary"]["changes"], 0, "in sync");

        // And back: every row byte for byte as it was (the cache cleared).
        f.set_site("acme", "database", "default");
        f.apply();
        let back_db = db_of(&f, "shop-1-1", "acme.example.com");
        let mut rows_after = f.db_rows(&back_db);
        let mut rows_before = rows_before;
        for rows in [&mut rows_before, &mut rows_after] {
            rows.remove("cache");
        }
        assert_eq!(rows_after, rows_before);
        assert_eq!(snapshot(&site_dir.join("files")), files_before);
        let back_settings = std::fs::read_to_string(site_dir.join("settings.yaml")).unwrap();
        assert!(back_settings.contains("server: default"), "{back_settings}");
    }
}
