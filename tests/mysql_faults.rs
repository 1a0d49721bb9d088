//! Faults on a real MariaDB + nginx + php-fpm stack, each ending with a
//! clear error, the site as it was (serving) and nothing lost: a database
//! or user that exists already (never adopted, never dropped); php-fpm
//! down during a migrate; MariaDB killed in the middle of a dump and of a
//! load (at a failpoint that holds there until the test has killed it);
//! a full disk during a dump; the database server unreachable or its admin
//! password wrong.

mod common;
mod real;
mod services;

use std::path::Path;
use std::time::Duration;

use real::{apply, db_of, fixture, has_db, has_user, hoist, Stack};
use services::{wait_until, MariaDb};

const DOMAIN: &str = "eatery.example.com";
const PLATFORM: &str = "shop-2-1";

/// Fixes the random part of the next new database's name.
const SUFFIX: (&str, &str) = ("HOIST_FAILPOINT", "db-suffix=0000beef");
const TAKEN: &str = "eatery_0000beef";

/// `hoist apply --yes` (with `env`), which must fail saying each of `said`.
fn apply_fails_saying(f: &common::Fixture, env: &[(&str, &str)], said: &[&str]) -> real::Out {
    let out = hoist(f, &["apply", "--yes"], env);
    assert_ne!(out.code, 0, "{}", out.text);
    assert!(
        said.iter().all(|w| out.text.contains(w)),
        "not saying {said:?}: {}",
        out.text
    );
    out
}

/// eatery as it was: served with its name, every row of `db` as `before`.
fn eatery_as_it_was(s: &Stack, db: &str, before: &str) {
    assert_eq!(s.get(DOMAIN), (200, "site: eatery\n".into()));
    assert_eq!(real::rows(&s.db, db), before, "every row as it was");
}

#[test]
fn a_database_or_user_that_exists_is_refused_and_kept() {
    let Some(s) = Stack::start() else { return };
    let f = fixture(&s, &["eatery"]);

    // Someone else's database under the name the install would take.
    s.db.sql(&format!(
        "CREATE DATABASE {TAKEN};\nCREATE TABLE {TAKEN}.theirs (v TEXT);\nINSERT INTO {TAKEN}.theirs VALUES ('keep me');"
    ));
    apply_fails_saying(
        &f,
        &[SUFFIX],
        &[&format!("database {TAKEN} exists already")],
    );
    assert_eq!(
        s.db.sql(&format!("SELECT v FROM {TAKEN}.theirs")),
        "keep me\n"
    );
    assert!(!has_user(&s.db, TAKEN), "no user was made");
    assert!(
        !std::fs::read_dir(&s.nginx.conf_dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("eatery")),
        "no vhost"
    );

    // Someone else's user under the name the install would give its own.
    s.db.sql(&format!(
        "DROP DATABASE {TAKEN};\nCREATE USER '{TAKEN}'@'localhost' IDENTIFIED BY 'theirs';"
    ));
    apply_fails_saying(
        &f,
        &[SUFFIX],
        &[&format!("database user {TAKEN} exists already")],
    );
    assert!(has_user(&s.db, TAKEN), "their user is kept");
    assert!(!has_db(&s.db, TAKEN), "no database was made");

    // A rename whose new name is taken: refused before anything changes,
    // the site serving as it was.
    s.db.sql(&format!("DROP USER '{TAKEN}'@'localhost';"));
    apply(&s, &f);
    let (old, _) = db_of(&f, PLATFORM, DOMAIN);
    let before = real::rows(&s.db, &old);
    s.db.sql(&format!("CREATE DATABASE {TAKEN};"));
    f.set_site("eatery", "domain", "eatery.example.org");
    apply_fails_saying(
        &f,
        &[SUFFIX],
        &[&format!("database {TAKEN} exists already")],
    );
    let task = common::last_task(&f);
    assert_eq!(
        task["steps"].as_array().unwrap().last().unwrap()["name"],
        "check-target",
        "refused before anything was recorded: {task}"
    );
    assert!(has_db(&s.db, TAKEN), "their database is kept");
    eatery_as_it_was(&s, &old, &before);
}

/// About 8 MB of rows in a table `big` of `db_name`: a dump of it outruns
/// every pipe and socket buffer, so the dump is still running when the
/// test kills the server.
fn seed_big(db: &MariaDb, db_name: &str) {
    db.sql(&format!(
        "USE `{db_name}`;\n\
         CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB;\n\
         INSERT INTO big SELECT seq, REPEAT(UNHEX(MD5(seq)), 4096) FROM seq_1_to_128;"
    ));
}

/// The databases whose name starts with `prefix`, one per line.
fn dbs_like(db: &MariaDb, prefix: &str) -> String {
    db.sql(&format!("SHOW DATABASES LIKE '{prefix}%'"))
}

#[test]
fn php_fpm_down_fails_the_preview_check_and_the_migrate_rolls_back() {
    let Some(mut s) = Stack::start() else { return };
    let f = fixture(&s, &["dental"]);
    apply(&s, &f);
    let (old, _) = db_of(&f, "shop-2-0", "dental.example.net");
    let before = real::rows(&s.db, &old);
    s.fpm.stop();
    f.set_site("dental", "platform", "shop-2-1");
    // the preview's check failed
    apply_fails_saying(&f, &[], &["preview", "502"]);
    s.fpm.restart();
    assert_eq!(s.get("dental.example.net"), (200, "site: dental\n".into()));
    assert_eq!(db_of(&f, "shop-2-0", "dental.example.net").0, old);
    assert_eq!(real::rows(&s.db, &old), before, "every row as it was");
    assert_eq!(
        dbs_like(&s.db, "dental"),
        format!("{old}\n"),
        "the copy is gone"
    );
    assert!(!real::root(&f)
        .join("platforms/shop-2-1/sites/dental.example.net")
        .exists());
}

/// Runs `hoist args` with the hold failpoint `point` armed; when hoist
/// holds there, kills MariaDB, lets hoist go on, and returns its outcome.
fn kill_mariadb_at(s: &mut Stack, f: &common::Fixture, args: &[&str], point: &str) -> real::Out {
    let dir = tempfile::tempdir().unwrap();
    let mut child = real::cmd(f, args)
        .env("HOIST_FAILPOINT", format!("{point}:hold"))
        .env("HOIST_FAILPOINT_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hoist runs");
    let held = dir.path().join(format!("{point}.held"));
    wait_until(
        &format!("hoist holding at {point}"),
        Duration::from_secs(120),
        || {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("hoist ended ({st}) before holding at {point}"));
            }
            Ok(held.exists())
        },
    )
    .unwrap();
    s.db.kill();
    std::fs::write(dir.path().join(format!("{point}.go")), b"").unwrap();
    let out = child.wait_with_output().unwrap();
    real::Out {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// No spooled dump or unfinished archive left in the site's backups.
fn no_leftovers(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.starts_with(".hoist-tmp"), "left behind: {n}");
    }
}

#[test]
fn mariadb_killed_in_the_middle_of_a_dump_fails_clearly_and_the_site_comes_back() {
    let Some(mut s) = Stack::start() else { return };
    let f = fixture(&s, &["eatery"]);
    apply(&s, &f);
    let (old, _) = db_of(&f, PLATFORM, DOMAIN);
    seed_big(&s.db, &old);
    let before = real::rows(&s.db, &old);
    f.set_site("eatery", "domain", "eatery.example.org");

    let out = kill_mariadb_at(&mut s, &f, &["apply", "--yes"], "mysql-dump");
    assert_ne!(out.code, 0, "{}", out.text);
    assert!(
        out.text.contains("dumping database") && out.text.contains("the undo waits"),
        "a clear error: {}",
        out.text
    );

    // Once the server is back, the next hoist undoes the task first. The
    // inventory is put back too, so nothing else happens.
    s.db.restart();
    f.set_site("eatery", "domain", DOMAIN);
    let out = hoist(&f, &["apply", "--yes"], &[]);
    assert_eq!(out.code, 0, "{}", out.text);
    eatery_as_it_was(&s, &old, &before);
    assert_eq!(dbs_like(&s.db, "eatery"), format!("{old}\n"));
    let task = &common::tasks(&f)
        .into_iter()
        .find(|t| t["kind"] == "rename")
        .expect("the rename's record");
    assert_eq!(task["result"], "failed", "{task}");
    assert!(
        task["recovered"].as_str().unwrap().contains("rolled back"),
        "{task}"
    );
    no_leftovers(&real::root(&f).join("backups/eatery"));
}

#[test]
fn mariadb_killed_in_the_middle_of_a_load_fails_clearly_and_the_site_comes_back() {
    let Some(mut s) = Stack::start() else { return };
    let f = fixture(&s, &["eatery"]);
    apply(&s, &f);
    let (old, _) = db_of(&f, PLATFORM, DOMAIN);
    seed_big(&s.db, &old);
    let out = hoist(&f, &["backup", "eatery"], &[]);
    assert_eq!(out.code, 0, "{}", out.text);
    let before = real::rows(&s.db, &old);

    let out = kill_mariadb_at(&mut s, &f, &["restore", "eatery"], "mysql-load");
    assert_ne!(out.code, 0, "{}", out.text);
    assert!(
        out.text.contains("loading into database") && out.text.contains("the undo waits"),
        "a clear error: {}",
        out.text
    );

    s.db.restart();
    let out = hoist(&f, &["apply", "--yes"], &[]);
    assert_eq!(out.code, 0, "{}", out.text);
    eatery_as_it_was(&s, &old, &before);
    assert_eq!(
        dbs_like(&s.db, "eatery"),
        format!("{old}\n"),
        "the half-loaded copy is gone"
    );
    assert_eq!(
        common::backup_archives(&f, "eatery").len(),
        2,
        "the backup restored from and the one taken before are kept"
    );
    no_leftovers(&real::root(&f).join("backups/eatery"));
}

#[test]
fn a_full_disk_during_a_dump_fails_clearly_and_keeps_the_site() {
    let Some(s) = Stack::start() else { return };
    let f = fixture(&s, &["eatery"]);
    apply(&s, &f);
    let (old, _) = db_of(&f, PLATFORM, DOMAIN);
    seed_big(&s.db, &old);
    let before = real::rows(&s.db, &old);
    let backups = real::root(&f).join("backups/eatery");
    let Some(_disk) = services::Tmpfs::mount_or_skip(&backups) else {
        return;
    };
    f.set_site("eatery", "domain", "eatery.example.org");
    apply_fails_saying(&f, &[], &["step backup", "No space left on device"]);
    eatery_as_it_was(&s, &old, &before);
    assert_eq!(dbs_like(&s.db, "eatery"), format!("{old}\n"));
    no_leftovers(&backups);
}

#[test]
fn an_unreachable_server_or_a_wrong_admin_password_stops_before_anything_changes() {
    let Some(mut s) = Stack::start() else { return };
    let f = fixture(&s, &["eatery"]);
    apply(&s, &f);
    f.set_site("eatery", "domain", "eatery.example.org");
    // hoist's own marker that its recovery has looked, not a change.
    let root_now = || {
        let mut m = real::snapshot(&real::root(&f));
        m.remove("tasks/.running-names");
        m
    };
    let root = root_now();
    let conf_dir = s.nginx.conf_dir.clone();
    let vhosts = real::snapshot(&conf_dir);
    // An apply stopped before anything changed: exit 1, the database
    // server and `why` named, the server root and the vhosts as they were.
    let refused = |why: &str| {
        let out = apply_fails_saying(
            &f,
            &[],
            &["database server maria", why, "Nothing was changed"],
        );
        assert_eq!(out.code, 1, "{}", out.text);
        common::assert_same(&root, &root_now(), "the server root changed");
        common::assert_same(&vhosts, &real::snapshot(&conf_dir), "a vhost changed");
    };

    // A wrong admin password.
    let good = std::fs::read(&s.db.admin_password_file).unwrap();
    std::fs::write(&s.db.admin_password_file, b"not-the-password\n").unwrap();
    refused("access denied");
    std::fs::write(&s.db.admin_password_file, &good).unwrap();

    // The server down.
    s.db.kill();
    refused("cannot connect");
    s.db.restart();
    assert_eq!(s.get(DOMAIN), (200, "site: eatery\n".into()));
}
