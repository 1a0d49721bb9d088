//! Observing the sites of a MariaDB server reads all their databases over
//! one admin connection; what it reads is what each site's own login
//! reads, and a database that cannot be read that way is still read (and
//! reported) on its own.

mod common;
mod real;
mod services;

use real::{apply, db_of, fixture, Stack};

/// `hoist plan --format json`: the plan, and what was said on stderr.
fn plan(f: &common::Fixture) -> (serde_json::Value, String) {
    let out = real::cmd(f, &["plan", "--format", "json"])
        .output()
        .expect("hoist runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let plan =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {err}"));
    (plan, err)
}

#[test]
fn a_fleet_is_observed_at_once_and_a_broken_database_is_still_named() {
    let Some(s) = Stack::start() else { return };
    let f = fixture(&s, &["eatery", "dental"]);
    apply(&s, &f);

    // As installed: nothing to do for either site, so every package row
    // and the maintenance flag were read as they are.
    let connections = || -> u64 {
        s.db.sql("SHOW GLOBAL STATUS LIKE 'Connections'")
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("a count")
    };
    let before = connections();
    let (p, _) = plan(&f);
    // Minus the count's own connection. Read site by site, each site
    // would take two more.
    let used = connections() - before - 1;
    assert!(used <= 3, "{used} connections for a plan of two sites");
    for site in ["eatery", "dental"] {
        assert_eq!(common::site(&p, site)["action"], "noop", "{p}");
    }

    // A package row changed behind hoist's back is seen through the
    // batched read: dental's core now looks older than its platform's.
    let (dental, _) = db_of(&f, "shop-2-0", "dental.example.net");
    s.db.sql(&format!(
        "UPDATE `{dental}`.`system` SET schema_version = schema_version - 1 WHERE name = 'core'"
    ));
    // Eatery's database loses a table: it is read on its own, which says
    // what is wrong, and dental is still observed.
    let (eatery, _) = db_of(&f, "shop-2-1", "eatery.example.com");
    s.db.sql(&format!("DROP TABLE `{eatery}`.variables"));
    let (p, err) = plan(&f);
    assert!(
        err.contains("eatery.example.com") && err.contains("variables"),
        "eatery's problem is named: {err}"
    );
    assert_eq!(
        common::site(&p, "dental")["action"],
        "update",
        "dental's changed row was read: {p}"
    );
}
