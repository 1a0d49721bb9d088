//! Scenarios on a real MariaDB server, started for the run on loopback by
//! the tests' own service harness (`tests/services`): `live-mysql`, a live
//! `plan` over 1,000 sites of one server, and `mysql-big`; the ssh
//! scenarios (`ssh.rs`) use its helpers and harness too.

use std::path::Path;

use super::{fmt_runs, gen, hoist_ok, logs_dir, median, say, secs, sh, Row};
use gen::Shape;

#[path = "../../tests/services/mod.rs"]
pub(crate) mod services;

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

// ---------------------------------------------------------------------------
// backup, restore, migrate and rename of a site with a big MariaDB database

/// One site, two platforms (the second an upgrade of the first).
const BIG: Shape = Shape {
    sites: 1,
    platforms: 2,
    packages: 2,
    site_modules: 0,
};

const SITE: &str = "site-00000";

/// Fills database `name` with about `mb` MB of rows of prose-like text
/// (about 1 KB each, 1 MB per INSERT), through the admin's client.
pub(crate) fn fill_db(db: &MariaDb, name: &str, mb: usize, work: &Path, logs: &Path) {
    use std::io::Write;
    let sql = work.join("fill.sql");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&sql).unwrap());
    writeln!(
        f,
        "CREATE TABLE big (id INT PRIMARY KEY, body MEDIUMTEXT NOT NULL) ENGINE=InnoDB;"
    )
    .unwrap();
    let mut rng = gen::Rng::new(12);
    let mut id = 0;
    for _ in 0..mb {
        let rows: Vec<String> = (0..1024)
            .map(|_| {
                id += 1;
                let t = String::from_utf8_lossy(&rng.text(1000))
                    .replace('\\', "\\\\")
                    .replace('\'', "\\'");
                format!("({id}, '{t}')")
            })
            .collect();
        writeln!(f, "INSERT INTO big VALUES {};", rows.join(",")).unwrap();
    }
    drop(f);
    sh(
        &format!(
            "{} --defaults-extra-file={} {name} < {}",
            db.client.display(),
            db.admin_defaults_file.display(),
            sql.display()
        ),
        logs,
        "mysql-big-fill",
    );
    std::fs::remove_file(&sql).unwrap();
}

/// Writes about `mb` MB of files into `dir`: 1 MB each, half prose, half
/// incompressible bytes.
fn fill_files(dir: &Path, mb: usize) {
    let mut rng = gen::Rng::new(7);
    for i in 0..mb {
        let sub = dir.join(format!("d{:02}", i % 16));
        std::fs::create_dir_all(&sub).unwrap();
        let body = if i % 2 == 0 {
            rng.text(1 << 20)
        } else {
            rng.bytes(1 << 20)
        };
        std::fs::write(sub.join(format!("f{i:05}.bin")), body).unwrap();
    }
}

/// Where the site lives now: its directory and database.
fn locate(host: &Path) -> (std::path::PathBuf, String) {
    find_site(host).unwrap_or_else(|| panic!("no site under {}", host.display()))
}

/// The first site under server root `host`, if any: its directory and
/// the database its settings name.
pub(crate) fn find_site(host: &Path) -> Option<(std::path::PathBuf, String)> {
    for p in std::fs::read_dir(host.join("platforms"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some(s) = std::fs::read_dir(p.path().join("sites"))
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
        {
            let text = std::fs::read_to_string(s.path().join("settings.yaml")).unwrap();
            let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            return Some((
                s.path(),
                v["database"]["name"].as_str().unwrap().to_string(),
            ));
        }
    }
    None
}

/// The newest task record of `kind`, and the milliseconds of its steps.
pub(crate) fn last_task(host: &Path, kind: hoist::task::TaskKind) -> hoist::task::TaskRecord {
    hoist::task::list(&hoist::task::TasksDir::local(&host.join("tasks")))
        .into_iter()
        .rfind(|t| t.kind == kind)
        .expect("the task's record")
}

pub(crate) fn step_ms(rec: &hoist::task::TaskRecord, name: &str) -> u64 {
    rec.steps
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| s.millis)
        .sum()
}

/// Milliseconds from the start of step `from` to the end of step `to`
/// (both included): the time the site answers 503 during a move.
pub(crate) fn span_ms(rec: &hoist::task::TaskRecord, from: &str, to: &str) -> u64 {
    let names: Vec<&str> = rec.steps.iter().map(|s| s.name.as_str()).collect();
    let (Some(a), Some(b)) = (
        names.iter().position(|n| *n == from),
        names.iter().rposition(|n| *n == to),
    ) else {
        return 0;
    };
    rec.steps[a..=b].iter().filter_map(|s| s.millis).sum()
}

pub(crate) fn commit_site(inv: &Path, yaml: &str, msg: &str) {
    std::fs::write(inv.join("sites").join(format!("{SITE}.yaml")), yaml).unwrap();
    gen::git(inv, &["commit", "-q", "-am", msg]);
}

/// Backup, restore, migrate and rename of one site with a `db_mb` MB
/// MariaDB database and `db_mb / 2` MB of files, each against the shell
/// commands an operator would run, in the same run on the same data.
pub fn big(dir: &Path, runs: usize, db_mb: usize) -> Vec<Row> {
    let Some(db) = start() else {
        return vec![];
    };
    let files_mb = (db_mb / 2).max(1);
    let logs = logs_dir(dir);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let inv = dir.join("inv");
    let host = inv.join(".hoist-host");
    write_inventory(&inv, &BIG, &db, 2);
    hoist_ok(&inv, &["apply", "--yes"], &logs, "mysql-big-install", 0);
    let (site_dir, name) = locate(&host);
    fill_db(&db, &name, db_mb, &work, &logs);
    fill_files(&site_dir.join("files"), files_mb);
    say(format!(
        "mysql-big: {SITE} with {db_mb} MB of rows in {name} and {files_mb} MB of files"
    ));
    let cnf = db.admin_defaults_file.display().to_string();
    let (client, dump) = (
        db.client.display().to_string(),
        db.dump.display().to_string(),
    );
    let mut rows = Vec::new();

    // Backup.
    let (mut h, mut b) = (vec![], vec![]);
    for r in 0..runs {
        let (site_dir, name) = locate(&host);
        h.push(secs(
            hoist_ok(
                &inv,
                &["backup", SITE],
                &logs,
                &format!("mysql-backup-{r}"),
                0,
            )
            .wall,
        ));
        b.push(secs(
            sh(
                &format!(
                    "{dump} --defaults-extra-file={cnf} --single-transaction {name} | gzip > {w}/db.sql.gz \
                     && tar -czf {w}/files.tgz -C {s} .",
                    w = work.display(),
                    s = site_dir.display()
                ),
                &logs,
                &format!("mysql-backup-shell-{r}"),
            )
            .wall,
        ));
    }
    let archive = std::fs::read_dir(host.join("backups").join(SITE))
        .unwrap()
        .flatten()
        .map(|e| std::fs::metadata(e.path()).unwrap().len())
        .max()
        .unwrap_or(0);
    say(format!(
        "mysql backup: hoist {} s; shell {} s",
        fmt_runs(&h),
        fmt_runs(&b)
    ));
    let (hm, bm) = (median(&mut h), median(&mut b));
    rows.push(Row {
        scenario: format!(
            "backup of a site with a {db_mb} MB MariaDB database and {files_mb} MB of files (archive {:.0} MB)",
            archive as f64 / 1e6
        ),
        hoist: format!("{hm:.2} s"),
        baseline: format!("`mariadb-dump --single-transaction \\| gzip` + `tar -czf`: {bm:.2} s"),
        ratio: format!("{:.2}", hm / bm),
        target: "<= 0.5".into(),
        met: hm / bm <= 0.5,
    });

    // Restore (hoist's `extract` step: the dump loaded and the files
    // extracted; the whole task also backs up the present state first).
    let (mut h, mut whole, mut b) = (vec![], vec![], vec![]);
    for r in 0..runs {
        let m = hoist_ok(
            &inv,
            &["restore", SITE],
            &logs,
            &format!("mysql-restore-{r}"),
            0,
        );
        let rec = last_task(&host, hoist::task::TaskKind::Restore);
        h.push(step_ms(&rec, "extract") as f64 / 1000.0);
        whole.push(secs(m.wall));
        b.push(secs(
            sh(
                &format!(
                    "echo 'DROP DATABASE IF EXISTS restored; CREATE DATABASE restored' | {client} --defaults-extra-file={cnf} \
                     && gunzip < {w}/db.sql.gz | {client} --defaults-extra-file={cnf} restored \
                     && rm -rf {w}/x && mkdir {w}/x && tar -xzf {w}/files.tgz -C {w}/x",
                    w = work.display()
                ),
                &logs,
                &format!("mysql-restore-shell-{r}"),
            )
            .wall,
        ));
    }
    say(format!(
        "mysql restore: hoist extract {} s (whole task {} s); shell {} s",
        fmt_runs(&h),
        fmt_runs(&whole),
        fmt_runs(&b)
    ));
    let (hm, wm, bm) = (median(&mut h), median(&mut whole), median(&mut b));
    rows.push(Row {
        scenario: format!(
            "restore of that backup (step `extract`; whole task with its backup first {wm:.2} s)"
        ),
        hoist: format!("{hm:.2} s"),
        baseline: format!("`gunzip \\| mariadb` + `tar -xzf`: {bm:.2} s"),
        ratio: format!("{:.2}", hm / bm),
        target: "<= 1.0".into(),
        met: hm / bm <= 1.0,
    });

    // Migrate: once (a site moves up a platform, never back), against
    // its floor: the backup, `tar -xzf`, loading the dump.
    let (site_dir, name) = locate(&host);
    let floor = sh(
        &format!(
            "{dump} --defaults-extra-file={cnf} --single-transaction {name} | gzip > {w}/db.sql.gz \
             && tar -czf {w}/files.tgz -C {s} . \
             && echo 'DROP DATABASE IF EXISTS restored; CREATE DATABASE restored' | {client} --defaults-extra-file={cnf} \
             && gunzip < {w}/db.sql.gz | {client} --defaults-extra-file={cnf} restored \
             && rm -rf {w}/x && mkdir {w}/x && tar -xzf {w}/files.tgz -C {w}/x",
            w = work.display(),
            s = site_dir.display()
        ),
        &logs,
        "mysql-migrate-floor",
    );
    commit_site(&inv, &gen::site_yaml(0, 1), "migrate");
    let m = hoist_ok(&inv, &["apply", "--yes"], &logs, "mysql-migrate", 0);
    let rec = last_task(&host, hoist::task::TaskKind::Migrate);
    let down = span_ms(&rec, "maintenance-on", "maintenance-off") as f64 / 1000.0;
    let (hm, bm) = (secs(m.wall), secs(floor.wall));
    say(format!(
        "mysql migrate: hoist {hm:.2} s (503 for {down:.2} s); floor {bm:.2} s"
    ));
    rows.push(Row {
        scenario: format!("migrate of that site (1 run; it answers 503 for {down:.2} s)"),
        hoist: format!("{hm:.2} s"),
        baseline: format!("the floor (backup, `tar -xzf`, loading the dump): {bm:.2} s"),
        ratio: format!("{:.2}", hm / bm),
        target: "<= 1.2".into(),
        met: hm / bm <= 1.2,
    });

    // Rename on the same server, back and forth: the tables move with one
    // RENAME TABLE (step `deploy`, with the directory's move).
    let (mut h, mut d) = (vec![], vec![]);
    for r in 0..runs {
        let domain = if r % 2 == 0 {
            "renamed.example.com".to_string()
        } else {
            gen::domain(0)
        };
        let yaml = format!(
            "domain: {domain}\nplatform: {}\nprofile: standard\n",
            gen::platform_name(1)
        );
        commit_site(&inv, &yaml, "rename");
        let m = hoist_ok(
            &inv,
            &["apply", "--yes"],
            &logs,
            &format!("mysql-rename-{r}"),
            0,
        );
        let rec = last_task(&host, hoist::task::TaskKind::Rename);
        h.push(secs(m.wall));
        d.push(step_ms(&rec, "deploy") as f64 / 1000.0);
    }
    say(format!(
        "mysql rename: whole apply {} s; deploy step {} s",
        fmt_runs(&h),
        fmt_runs(&d)
    ));
    let (hm, dm) = (median(&mut h), median(&mut d));
    rows.push(Row {
        scenario: format!(
            "rename of that site, same database server (step `deploy`: RENAME TABLE and the directory's move; whole `hoist apply` {hm:.2} s, with its backup of the database)"
        ),
        hoist: format!("{dm:.2} s"),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "< 1 s".into(),
        met: dm < 1.0,
    });
    rows
}
