//! The site pipeline of spec section 8 through the binary: migrate, rename,
//! migrate+rename, clone, delete, enable/disable/verify, stale plans and
//! parallel tasks, each checked row by row and file by file.

mod common;
use common::{assert_same, last_task, rows, settings_of, site, snapshot, tasks, Fixture};
use std::path::{Path, PathBuf};

fn db(f: &Fixture, platform: &str, domain: &str) -> rusqlite::Connection {
    let (name, _) = settings_of(f, platform, domain);
    rusqlite::Connection::open(f.host().join(format!("databases/{name}.sqlite"))).unwrap()
}

fn var(c: &rusqlite::Connection, name: &str) -> Option<String> {
    c.query_row("SELECT value FROM variables WHERE name=?1", [name], |r| {
        r.get(0)
    })
    .ok()
}

fn schema_of(c: &rusqlite::Connection, pkg: &str) -> (i64, String, i64) {
    c.query_row(
        "SELECT schema_version, version, enabled FROM system WHERE name=?1",
        [pkg],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// Puts content into a site: a file with a row in `files`, and blog posts.
fn add_content(f: &Fixture, platform: &str, domain: &str) {
    let dir = f
        .host()
        .join(format!("platforms/{platform}/sites/{domain}/files"));
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::write(dir.join("img/logo.png"), b"\x89PNG fake image").unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let c = db(f, platform, domain);
    c.execute_batch(&format!(
        "INSERT INTO files (path) VALUES ('sites/{domain}/files/img/logo.png'), ('sites/{domain}/files/notes.txt');
         INSERT INTO cache (cid, data) VALUES ('k', 'v');"
    ))
    .unwrap();
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

#[test]
fn migrate_moves_data_files_and_applies_updates() {
    let f = Fixture::example();
    f.apply();
    add_content(&f, "shop-1-1", "acme.example.com");
    let before = rows(&db(&f, "shop-1-1", "acme.example.com"));
    let (old_db, _) = settings_of(&f, "shop-1-1", "acme.example.com");
    f.set_site("acme", "platform", "shop-2-0");
    let r = f.apply();
    assert!(r.stdout.contains("success  migrate acme"), "{}", r.all());

    let c = db(&f, "shop-2-0", "acme.example.com");
    assert_eq!(
        schema_of(&c, "core"),
        (5, "2.0.0".into(), 1),
        "core updates 4 and 5 applied"
    );
    assert_eq!(schema_of(&c, "node"), (2, "2.0.0".into(), 1));
    assert_eq!(
        schema_of(&c, "blog"),
        (2, "1.2.0".into(), 1),
        "same schema, the target's version recorded"
    );
    let after = rows(&c);
    assert_eq!(
        before["files"], after["files"],
        "same domain: paths unchanged"
    );
    assert!(after["cache"].is_empty(), "caches cleared");
    assert_eq!(var(&c, "maintenance_mode").as_deref(), Some("0"), "online");
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
    assert!(!f.host().join(format!("databases/{old_db}.sqlite")).exists());
    let vhost = std::fs::read_to_string(f.host().join("vhosts/acme.example.com.conf")).unwrap();
    assert!(vhost.contains("root platforms/shop-2-0;"), "{vhost}");
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
    let steps: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
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

#[test]
fn missing_packages_are_disabled_and_the_task_warns() {
    let f = Fixture::example();
    f.apply();
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
    let c = db(&f, "shop-2-0", "chess.example.org");
    assert_eq!(schema_of(&c, "legacy_polls").2, 0, "disabled");
    assert_eq!(last_task(&f)["result"], "warning");
}

#[test]
fn rename_moves_the_directory_without_copying_and_fixes_paths() {
    let f = Fixture::example();
    f.apply();
    add_content(&f, "shop-1-1", "acme.example.com");
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(
        f.host()
            .join("platforms/shop-1-1/sites/acme.example.com/files/img/logo.png"),
    )
    .unwrap()
    .ino();
    let (old_db, old_password) = settings_of(&f, "shop-1-1", "acme.example.com");
    let dbs = f.host().join("databases");
    let rows_before = rows(&db(&f, "shop-1-1", "acme.example.com"));
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
    // The database is copied and the copy edited (so an undo never has
    // to load a dump): a new database and user (spec step 3), and nothing
    // of the old one is left once the rename is done.
    let (new_db, new_password) = settings_of(&f, "shop-1-1", "acme.example.org");
    assert_ne!(new_db, old_db);
    assert_ne!(new_password, old_password);
    assert!(std::fs::read_to_string(dbs.join(format!("{new_db}.user")))
        .unwrap()
        .starts_with(&format!("{new_db}:")));
    for gone in [format!("{old_db}.sqlite"), format!("{old_db}.user")] {
        assert!(!dbs.join(&gone).exists(), "{gone} is left");
    }
    let rows_after = rows(&db(&f, "shop-1-1", "acme.example.org"));
    assert_eq!(
        rows_before["system"], rows_after["system"],
        "the packages are untouched"
    );
    assert!(!f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.com")
        .exists());
    assert!(!f.host().join("vhosts/acme.example.com.conf").exists());
    assert!(f.host().join("vhosts/acme.example.org.conf").exists());
    let c = db(&f, "shop-1-1", "acme.example.org");
    let paths = &rows(&c)["files"];
    assert!(
        paths
            .iter()
            .all(|p| p.contains("sites/acme.example.org/files/")),
        "{paths:?}"
    );
    assert_eq!(
        var(&c, "file_directory_path").as_deref(),
        Some("sites/acme.example.org/files")
    );
    assert_eq!(
        var(&c, "base_url").as_deref(),
        Some("http://acme.example.org")
    );
    assert!(!new.join(".hoist-old-settings.yaml").exists());
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn migrate_and_rename_at_once() {
    let f = Fixture::example();
    f.apply();
    add_content(&f, "shop-1-0", "bakery.example.com");
    f.set_site("bakery", "platform", "shop-2-1");
    f.set_site("bakery", "domain", "bakery.example.org");
    assert_eq!(
        site(&f.plan_json(&[], 0), "bakery")["action"],
        "migrate+rename"
    );
    f.apply();
    let c = db(&f, "shop-2-1", "bakery.example.org");
    assert_eq!(schema_of(&c, "core").0, 6);
    assert_eq!(schema_of(&c, "blog").0, 3);
    assert!(rows(&c)["files"]
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
    assert!(!f.host().join("vhosts/bakery.example.com.conf").exists());
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn clone_copies_and_leaves_the_source_untouched() {
    let f = Fixture::example();
    f.apply();
    add_content(&f, "shop-1-1", "acme.example.com");
    let src_files = snapshot(&f.host().join("platforms/shop-1-1/sites/acme.example.com"));
    let src_rows = rows(&db(&f, "shop-1-1", "acme.example.com"));
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
    assert_eq!(
        src_rows,
        rows(&db(&f, "shop-1-1", "acme.example.com")),
        "the source's rows changed"
    );
    let c = db(&f, "shop-2-1", "staging.acme.example.com");
    assert_eq!(
        schema_of(&c, "core").0,
        6,
        "updated to the clone's platform"
    );
    assert!(rows(&c)["files"]
        .iter()
        .all(|p| p.contains("sites/staging.acme.example.com/")));
    assert_eq!(var(&c, "site_name").as_deref(), Some("acme-staging"));
    assert!(f
        .host()
        .join("platforms/shop-2-1/sites/staging.acme.example.com/files/img/logo.png")
        .exists());
    let (_, pw_src) = settings_of(&f, "shop-1-1", "acme.example.com");
    let (_, pw_clone) = settings_of(&f, "shop-2-1", "staging.acme.example.com");
    assert_ne!(pw_src, pw_clone, "each site has its own database password");
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn prune_deletes_with_a_final_backup_and_then_the_platform() {
    let f = Fixture::example();
    f.apply();
    f.write(
        "hoist.yaml",
        &f.read("hoist.yaml").replace("prune: false", "prune: true"),
    );
    std::fs::remove_file(f.inv().join("sites/bakery.yaml")).unwrap();
    std::fs::remove_file(f.inv().join("platforms/shop-1-0.yaml")).unwrap();
    let (db_name, _) = settings_of(&f, "shop-1-0", "bakery.example.com");
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
    assert!(!f
        .host()
        .join(format!("databases/{db_name}.sqlite"))
        .exists());
    assert!(!f.host().join("vhosts/bakery.example.com.conf").exists());
    let b = backups(&f, "bakery");
    assert_eq!(b.len(), 1, "the final backup is kept");
    assert!(tar_lists(&b[0]).contains("database.sql"));
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn disable_enable_and_verify_rerender_the_vhost() {
    let f = Fixture::example();
    f.apply();
    let vhost = f.host().join("vhosts/eatery.example.com.conf");
    f.set_site("eatery", "enabled", "false");
    assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "disable");
    f.apply();
    assert!(std::fs::read_to_string(&vhost)
        .unwrap()
        .contains("site disabled"));
    f.set_site("eatery", "enabled", "true");
    assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "enable");
    f.apply();
    assert!(!std::fs::read_to_string(&vhost)
        .unwrap()
        .contains("site disabled"));
    f.set_site("eatery", "aliases", "[www.eatery.example.com]");
    assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "verify");
    f.apply();
    assert!(std::fs::read_to_string(&vhost)
        .unwrap()
        .contains("server_name eatery.example.com www.eatery.example.com;"));
    // drift: a vhost edited by hand is put back by verify
    std::fs::write(&vhost, "hacked").unwrap();
    assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "verify");
    f.apply();
    assert!(std::fs::read_to_string(&vhost)
        .unwrap()
        .contains("server_name eatery.example.com"));
    f.plan_json(&["--detailed-exitcode"], 0);
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
