//! Faults on a real MariaDB + nginx + php-fpm stack, each ending with a
//! clear error, the site as it was (serving) and nothing lost: a database
//! or user that exists already (never adopted, never dropped).

mod common;
mod real;
mod services;

use real::{apply, db_of, fixture, has_db, has_user, hoist, Stack};

const DOMAIN: &str = "eatery.example.com";
const PLATFORM: &str = "shop-2-1";

/// Fixes the random part of the next new database's name.
const SUFFIX: (&str, &str) = ("HOIST_FAILPOINT", "db-suffix=0000beef");
const TAKEN: &str = "eatery_0000beef";

#[test]
fn a_database_or_user_that_exists_is_refused_and_kept() {
    let Some(s) = Stack::start() else { return };
    let f = fixture(&s, &["eatery"]);

    // Someone else's database under the name the install would take.
    s.db.sql(&format!(
        "CREATE DATABASE {TAKEN};\nCREATE TABLE {TAKEN}.theirs (v TEXT);\nINSERT INTO {TAKEN}.theirs VALUES ('keep me');"
    ));
    let out = hoist(&f, &["apply", "--yes"], &[SUFFIX]);
    assert_ne!(out.code, 0, "{}", out.text);
    assert!(
        out.text
            .contains(&format!("database {TAKEN} exists already")),
        "{}",
        out.text
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
    let out = hoist(&f, &["apply", "--yes"], &[SUFFIX]);
    assert_ne!(out.code, 0, "{}", out.text);
    assert!(
        out.text
            .contains(&format!("database user {TAKEN} exists already")),
        "{}",
        out.text
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
    let out = hoist(&f, &["apply", "--yes"], &[SUFFIX]);
    assert_ne!(out.code, 0, "{}", out.text);
    assert!(
        out.text
            .contains(&format!("database {TAKEN} exists already")),
        "{}",
        out.text
    );
    let task = common::last_task(&f);
    assert_eq!(
        task["steps"].as_array().unwrap().last().unwrap()["name"],
        "check-target",
        "refused before anything was recorded: {task}"
    );
    assert!(has_db(&s.db, TAKEN), "their database is kept");
    assert_eq!(s.get(DOMAIN), (200, "site: eatery\n".into()));
    assert_eq!(real::rows(&s.db, &old), before);
}
