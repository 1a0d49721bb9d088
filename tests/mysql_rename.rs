//! A rename on the same MariaDB server moves the site's tables into its
//! new database with one atomic `RENAME TABLE` (no row is copied), under a
//! new user granted that database only; the old database and user go once
//! the site has switched. A failure after the move puts the tables back,
//! and so does the recovery of a hoist killed just after it. A database
//! `RENAME TABLE` cannot move (a trigger) is refused clearly, the site
//! kept as it was.

mod common;
mod real;
mod services;

use real::{apply, db_of, fixture, has_db, has_user, hoist, tables, Stack};
use services::MariaDb;

const OLD: &str = "eatery.example.com";
const NEW: &str = "eatery.example.org";
const PLATFORM: &str = "shop-2-1";

/// Every byte of table `t` of `db_name`, in hex.
fn table(db: &MariaDb, db_name: &str, t: &str) -> String {
    let cols = db.sql(&format!(
        "SELECT GROUP_CONCAT(CONCAT('HEX(`', column_name, '`)') ORDER BY ordinal_position) \
         FROM information_schema.columns WHERE table_schema = '{db_name}' AND table_name = '{t}'"
    ));
    db.sql(&format!(
        "SELECT {} FROM `{db_name}`.`{t}` ORDER BY 1",
        cols.trim()
    ))
}

/// InnoDB's id of each table of `schema`: a table moved by `RENAME TABLE`
/// keeps its id, a copied one gets a new one.
fn innodb_ids(db: &MariaDb, schema: &str) -> Vec<(String, String)> {
    db.sql(&format!(
        "SELECT SUBSTRING_INDEX(NAME, '/', -1), TABLE_ID \
         FROM information_schema.INNODB_SYS_TABLES WHERE NAME LIKE '{schema}/%' ORDER BY NAME;"
    ))
    .lines()
    .map(|l| {
        let (a, b) = l.split_once('\t').unwrap();
        (a.to_owned(), b.to_owned())
    })
    .collect()
}

/// The site's data beyond what the example installs: every byte value in
/// a blob, and a file path under its domain (which a rename rewrites).
fn seed(db: &MariaDb, name: &str) {
    let bytes: String = (0..=255u8).map(|b| format!("{b:02x}")).collect();
    db.sql(&format!(
        "CREATE TABLE `{name}`.blobs (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB;\n\
         INSERT INTO `{name}`.blobs VALUES (1, UNHEX('{bytes}')), (2, ''), (3, NULL);\n\
         INSERT INTO `{name}`.files (fid, path) VALUES (7, 'sites/{OLD}/files/a.png');\n\
         INSERT INTO `{name}`.cache (cid, data) VALUES ('page', 'x');"
    ));
}

/// The tables a rename leaves byte for byte as they were.
const KEPT: [&str; 2] = ["blobs", "system"];

/// A stack with eatery installed and seeded: its database's name.
fn installed(s: &Stack) -> (common::Fixture, String) {
    let f = fixture(s, &["eatery"]);
    apply(s, &f);
    let (name, _) = db_of(&f, PLATFORM, OLD);
    seed(&s.db, &name);
    (f, name)
}

#[test]
fn a_rename_moves_the_tables_at_once_to_a_new_database_and_user() {
    let Some(s) = Stack::start() else { return };
    let (f, old) = installed(&s);
    let (_, old_user) = db_of(&f, PLATFORM, OLD);
    let before: Vec<String> = KEPT.iter().map(|t| table(&s.db, &old, t)).collect();
    let ids = innodb_ids(&s.db, &old);

    f.set_site("eatery", "domain", NEW);
    apply(&s, &f);

    assert_eq!(s.get(NEW), (200, "site: eatery\n".into()));
    let (new, new_user) = db_of(&f, PLATFORM, NEW);
    assert_ne!(new, old);
    let after: Vec<String> = KEPT.iter().map(|t| table(&s.db, &new, t)).collect();
    assert_eq!(after, before, "every byte of the rows moved");
    assert_eq!(innodb_ids(&s.db, &new), ids, "moved, not copied");
    assert_eq!(
        s.db.sql(&format!("SELECT path FROM `{new}`.files WHERE fid = 7")),
        format!("sites/{NEW}/files/a.png\n"),
        "paths follow the domain"
    );
    assert!(!has_db(&s.db, &old), "the old database is gone");
    assert!(!has_user(&s.db, &old_user), "the old user is gone");
    // The new user may use its own database, and nothing else.
    let grants =
        s.db.sql(&format!("SHOW GRANTS FOR '{new_user}'@'localhost'"))
            + &s.db.sql(&format!(
                "SELECT CONCAT(Db, ':', User) FROM mysql.db WHERE User = '{new_user}'"
            ));
    assert!(grants.contains(&format!("`{new}`")), "{grants}");
    assert_eq!(
        s.db.sql(&format!(
            "SELECT DISTINCT Db FROM mysql.db WHERE User = '{new_user}'"
        )),
        format!("{new}\n"),
        "{grants}"
    );
    let log = common::last_task(&f).to_string();
    assert!(log.contains("RENAME TABLE, no row copied"), "{log}");
}

#[test]
fn a_rename_that_fails_after_the_move_puts_the_tables_back() {
    let Some(s) = Stack::start() else { return };
    let (f, old) = installed(&s);
    let all_before = real::rows(&s.db, &old);
    f.set_site("eatery", "domain", NEW);
    // Past the move and the edits of the moved tables, before the cutover.
    let out = hoist(
        &f,
        &["apply", "--yes"],
        &[("HOIST_FAILPOINT", "maintenance-off:after")],
    );
    assert_ne!(out.code, 0, "{}", out.text);
    let log = common::last_task(&f).to_string();
    assert!(log.contains("rolled back"), "{log}");
    assert_eq!(s.get(OLD), (200, "site: eatery\n".into()));
    assert_eq!(db_of(&f, PLATFORM, OLD).0, old);
    // Every row back where it was, the paths and variables the rename
    // edited set back; only the cache the rename cleared stays empty.
    let without_cache = |t: &str| {
        t.split("== ")
            .filter(|p| !p.starts_with("cache"))
            .collect::<Vec<_>>()
            .join("== ")
    };
    assert_eq!(
        without_cache(&real::rows(&s.db, &old)),
        without_cache(&all_before)
    );
    let dbs = s.db.sql("SHOW DATABASES LIKE 'eatery%'");
    assert_eq!(dbs, format!("{old}\n"), "the new database is gone");
}

#[test]
fn a_hoist_killed_after_the_move_is_recovered_with_the_tables_back() {
    let Some(s) = Stack::start() else { return };
    let (f, old) = installed(&s);
    let before: Vec<String> = KEPT.iter().map(|t| table(&s.db, &old, t)).collect();
    let old_tables = tables(&s.db, &old);
    f.set_site("eatery", "domain", NEW);
    // Killed between the RENAME TABLE and the move of the directory.
    let out = hoist(
        &f,
        &["apply", "--yes"],
        &[("HOIST_FAILPOINT", "deploy-inside:abort")],
    );
    assert_ne!(out.code, 0, "{}", out.text);
    assert_eq!(
        tables(&s.db, &old),
        "",
        "the tables had moved: {}",
        out.text
    );

    // The next hoist recovers the task first: the tables move back. The
    // inventory is put back too, so nothing else happens after that.
    f.set_site("eatery", "domain", OLD);
    let out = hoist(&f, &["apply", "--yes"], &[]);
    assert_eq!(out.code, 0, "{}", out.text);
    assert_eq!(tables(&s.db, &old), old_tables);
    let after: Vec<String> = KEPT.iter().map(|t| table(&s.db, &old, t)).collect();
    assert_eq!(after, before);
    assert_eq!(s.get(OLD), (200, "site: eatery\n".into()));
    let dbs = s.db.sql("SHOW DATABASES LIKE 'eatery%'");
    assert_eq!(dbs, format!("{old}\n"), "the new database is gone");
}

#[test]
fn a_database_with_a_trigger_is_refused_clearly_and_kept() {
    let Some(s) = Stack::start() else { return };
    let (f, old) = installed(&s);
    s.db.sql(&format!(
        "CREATE TRIGGER `{old}`.blobs_touch BEFORE UPDATE ON `{old}`.blobs \
         FOR EACH ROW SET NEW.id = NEW.id"
    ));
    let before = real::rows(&s.db, &old);
    f.set_site("eatery", "domain", NEW);
    let out = hoist(&f, &["apply", "--yes"], &[]);
    assert_ne!(out.code, 0, "{}", out.text);
    assert!(out.text.contains("trigger blobs_touch"), "{}", out.text);
    assert_eq!(s.get(OLD), (200, "site: eatery\n".into()));
    assert_eq!(real::rows(&s.db, &old), before, "nothing changed");
    let dbs = s.db.sql("SHOW DATABASES LIKE 'eatery%'");
    assert_eq!(dbs, format!("{old}\n"));
}
