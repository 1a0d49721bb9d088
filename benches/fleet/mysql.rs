//! Scenarios on a real MariaDB server, started for the run on loopback by
//! the tests' own service harness (`tests/services`): `live-mysql`, a live
//! `plan` over 1,000 sites of one server.

use std::path::Path;

use super::{fmt_runs, gen, hoist_ok, logs_dir, median, say, secs, sh, Row};
use gen::Shape;

#[path = "../../tests/services/mod.rs"]
mod services;

pub use services::MariaDb;

/// 1,000 sites on one platform whose profile installs only `core`: the
/// observation reads each site's `system` table and maintenance flag.
const LIVE: Shape = Shape {
    sites: 1_000,
    platforms: 1,
    packages: 2,
    site_modules: 0,
};

/// Starts MariaDB, or says why the scenario is skipped.
pub fn start() -> Option<MariaDb> {
    let db = MariaDb::start();
    if db.is_none() {
        say("MariaDB is not installed: the MariaDB scenarios are skipped");
    }
    db
}

/// `hoist.yaml` for a fleet whose databases are on `db`, web kind `file`.
pub fn settings(db: &MariaDb, parallel: usize) -> String {
    format!(
        "servers:\n  local: {{ kind: local, root: .hoist-host }}\n\
         databases:\n  maria:\n    kind: mysql\n    host: 127.0.0.1\n    port: {}\n    \
         admin_user: {}\n    admin_password_file: {}\n\
         defaults: {{ server: local, database: maria }}\n\
         policy: {{ parallel: {parallel}, keep_backups: 2 }}\n\
         status: {{ commit: false }}\n",
        db.port,
        db.admin_user,
        db.admin_password_file.display()
    )
}

/// Writes an inventory of `shape` for MariaDB: the generator's package SQL
/// is SQLite's (an INTEGER PRIMARY KEY numbers itself; a TEXT column is
/// indexed, which MySQL refuses without a length).
pub fn write_inventory(inv: &Path, shape: &Shape, db: &MariaDb, parallel: usize) {
    gen::write_inventory(inv, shape, parallel);
    std::fs::write(inv.join("hoist.yaml"), settings(db, parallel)).unwrap();
    for f in gen::all_files(&inv.join("codebases"), &[]) {
        if f.file_name().is_some_and(|n| n == "install.sql") {
            let sql = std::fs::read_to_string(&f).unwrap();
            let sql = sql
                .replace("name TEXT NOT NULL", "name VARCHAR(191) NOT NULL")
                .replace(
                    "id INTEGER PRIMARY KEY",
                    "id INTEGER PRIMARY KEY AUTO_INCREMENT",
                );
            std::fs::write(&f, sql).unwrap();
        }
    }
    gen::git_init(inv);
}

/// Live `plan` over 1,000 installed sites on one MariaDB, against reading
/// each site's database with a client of its own, one after the other
/// (what observing site by site costs at the least).
pub fn live(dir: &Path, runs: usize) -> Vec<Row> {
    let Some(db) = start() else {
        return vec![];
    };
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    write_inventory(&inv, &LIVE, &db, 2);
    let m = hoist_ok(&inv, &["apply", "--yes"], &logs, "live-mysql-install", 0);
    say(format!(
        "live-mysql fleet: {} sites installed on one MariaDB by `hoist apply` in {:.1} s",
        LIVE.sites,
        secs(m.wall)
    ));
    let names = db.sql(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'site%' ORDER BY 1",
    );
    let list = dir.join("databases.txt");
    std::fs::write(&list, &names).unwrap();
    assert_eq!(names.lines().count(), LIVE.sites, "one database per site");
    // The floor of a site-by-site read: one client per site, in sequence.
    let one_by_one = format!(
        "while read d; do {client} --defaults-extra-file={cnf} --batch --skip-column-names \
         -e \"SELECT name, kind, enabled, version, schema_version FROM \\`$d\\`.\\`system\\`; \
         SELECT value FROM \\`$d\\`.variables WHERE name = 'maintenance_mode'\" >/dev/null || exit 1; \
         done < {list}",
        client = db.client.display(),
        cnf = db.admin_defaults_file.display(),
        list = list.display()
    );
    hoist_ok(&inv, &["plan"], &logs, "live-mysql-warm", 0);
    let (mut h, mut b) = (vec![], vec![]);
    for r in 0..runs {
        h.push(secs(
            hoist_ok(&inv, &["plan"], &logs, &format!("live-mysql-{r}"), 0).wall,
        ));
        b.push(secs(
            sh(&one_by_one, &logs, &format!("live-mysql-one-by-one-{r}")).wall,
        ));
    }
    let out = std::fs::read_to_string(logs.join("live-mysql-0.out")).unwrap();
    say(format!(
        "live-mysql plan: {} s; one client per site: {} s; {}",
        fmt_runs(&h),
        fmt_runs(&b),
        out.lines().last().unwrap_or("")
    ));
    let (h, b) = (median(&mut h), median(&mut b));
    vec![Row {
        scenario: "live `plan`, 1,000 installed sites on one MariaDB (web kind `file`)".into(),
        hoist: format!("{h:.2} s"),
        baseline: format!("{b:.2} s (a `mariadb` client per site, in sequence)"),
        ratio: format!("{:.2}x", h / b),
        target: "<= 3 s".into(),
        met: h <= 3.0,
    }]
}
