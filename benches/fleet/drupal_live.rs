//! Scenario `drupal-live` (issue 13, item 7): a live `hoist plan` over 300
//! Drupal 7 sites whose databases are on one MariaDB (started under the
//! bench directory by `tests/services`). Needs `HOIST_DRUPAL7_ROOTS` (the
//! newest release there is the platform) and MariaDB; skipped with a
//! message without them.
//!
//! One site is installed for real by `hoist apply` (Drupal's installer);
//! the other 299 get a server-side copy of its database and their own
//! settings and vhost, as an install would leave them, so that the plan
//! reads 300 real Drupal 7 databases and finds nothing to do.
//!
//! The baseline is the same reads done by hand in one `mariadb` client:
//! each site's `system` rows and its two variables, 300 databases in one
//! process.

use std::path::{Path, PathBuf};

use hoist::driver::{DbServer, FileWeb, MysqlServer, WebServer, Which};
use hoist::names::{Domain, Name, PackageName};
use hoist::render::{DbDriver, SiteConfig};

use super::{fmt_runs, hoist_ok, logs_dir, median, say, secs, sh, Row};

const SITES: usize = 300;

fn domain(i: usize) -> String {
    format!("d7-{i:03}.example.com")
}

/// The Drupal 7 release trees under `HOIST_DRUPAL7_ROOTS`, oldest first
/// (none when it is unset).
pub fn d7_trees() -> Vec<PathBuf> {
    let Some(roots) = std::env::var_os("HOIST_DRUPAL7_ROOTS") else {
        return vec![];
    };
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(roots)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| match hoist::drupal::detect(&p, &p) {
            Ok(Some(core)) if core.major == 7 => Some((core.version.to_string(), p)),
            _ => None,
        })
        .collect();
    found.sort_by(|a, b| hoist::drupal::version_order(&a.0, &b.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The newest Drupal 7 release under `HOIST_DRUPAL7_ROOTS`.
fn newest_d7() -> Option<PathBuf> {
    d7_trees().pop()
}

/// The scenario's row, or none (with a message).
pub fn run(dir: &Path, runs: usize) -> Vec<Row> {
    let Some(tree) = newest_d7() else {
        say("drupal-live: HOIST_DRUPAL7_ROOTS names no Drupal 7 tree; skipped");
        return vec![];
    };
    let Some(db) = super::mysql::MariaDb::start() else {
        say("drupal-live: MariaDB is not installed; skipped");
        return vec![];
    };
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    let host = dir.join("host");
    std::fs::create_dir_all(inv.join("platforms")).unwrap();
    std::fs::create_dir_all(inv.join("sites")).unwrap();
    let addr = format!("127.0.0.1:{}", db.port);
    std::fs::write(
        inv.join("hoist.yaml"),
        format!(
            "servers:\n  local: {{ kind: local, root: {host} }}\n\
             databases:\n  maria:\n    kind: mysql\n    host: 127.0.0.1\n    port: {port}\n    \
             admin_user: {admin}\n    admin_password_file: {pw}\n\
             defaults: {{ server: local, database: maria }}\n\
             policy: {{ parallel: 2 }}\n\
             status: {{ commit: false }}\n",
            host = host.display(),
            port = db.port,
            admin = db.admin_user,
            pw = db.admin_password_file.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        inv.join("platforms/d7.yaml"),
        format!("source: {{ path: {} }}\nkind: drupal\n", tree.display()),
    )
    .unwrap();
    let site_yaml = |i: usize| format!("domain: {}\nplatform: d7\nprofile: standard\n", domain(i));
    std::fs::write(inv.join("sites/d7-000.yaml"), site_yaml(0)).unwrap();
    let m = hoist_ok(&inv, &["apply", "--yes"], &logs, "drupal-live-install", 0);
    say(format!(
        "drupal-live: one Drupal 7 site installed by `hoist apply` in {:.1} s",
        secs(m.wall)
    ));

    // The other sites: a copy of the first one's database each, settings
    // and vhost as an install writes them.
    let mysql = hoist::mysql::Mysql::new(hoist::mysql::MysqlConfig {
        name: "maria".into(),
        endpoint: hoist::mysql::Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: db.port,
        },
        admin_user: db.admin_user.clone(),
        admin_password: hoist::mysql::AdminPassword::File(db.admin_password_file.clone()),
        grant_hosts: vec!["localhost".into(), "127.0.0.1".into()],
        tools: None,
    })
    .unwrap();
    let maria = MysqlServer::new(Name::new("maria").unwrap(), mysql);
    let pdir = host.join("platforms/d7");
    let first = hoist::yaml::from_str::<hoist::render::SettingsFile>(
        &std::fs::read_to_string(pdir.join("sites").join(domain(0)).join("settings.yaml")).unwrap(),
    )
    .unwrap();
    let from = hoist::driver::Login::from(&first);
    let web = FileWeb::new(std::sync::Arc::new(hoist::driver::host::LocalHost::new(
        host.clone(),
    )));
    let started = std::time::Instant::now();
    let mut dbs = vec![first.database.name.clone()];
    for i in 1..SITES {
        let name = format!("d7_site_{i:03}");
        let login = maria.copy(&from, &name).unwrap();
        let cfg = SiteConfig {
            site: Name::new(&format!("d7-{i:03}")).unwrap(),
            domain: Domain::new(&domain(i)).unwrap(),
            aliases: vec![],
            platform: Name::new("d7").unwrap(),
            profile: PackageName::new("standard").unwrap(),
            enabled: true,
            db_server: Name::new("maria").unwrap(),
            db_driver: DbDriver::Mysql,
            db_address: Some(addr.clone()),
            db_name: Some(name.clone()),
        };
        let sdir = pdir.join("sites").join(domain(i));
        std::fs::create_dir_all(sdir.join("files")).unwrap();
        std::fs::write(
            sdir.join("settings.yaml"),
            hoist::render::settings_file(&cfg, &login.password),
        )
        .unwrap();
        let text = web.render(&cfg, Which::Site).unwrap();
        web.write(&cfg.domain, Which::Site, Some(&text)).unwrap();
        std::fs::write(inv.join(format!("sites/d7-{i:03}.yaml")), site_yaml(i)).unwrap();
        dbs.push(name);
    }
    say(format!(
        "drupal-live: {} more sites made (database copies) in {:.1} s",
        SITES - 1,
        started.elapsed().as_secs_f64()
    ));

    let out = hoist_ok(&inv, &["plan"], &logs, "drupal-live-warm", 0);
    let text = std::fs::read_to_string(logs.join("drupal-live-warm.out")).unwrap();
    assert!(
        text.contains("nothing to do"),
        "the 300 sites plan as nothing to do: {text}"
    );
    let _ = out;
    let mut h = vec![];
    for r in 0..runs {
        h.push(secs(
            hoist_ok(&inv, &["plan"], &logs, &format!("drupal-live-{r}"), 0).wall,
        ));
    }
    // The baseline: the same reads in one client process.
    let sql: String = dbs
        .iter()
        .map(|d| {
            format!(
                "SELECT name, type, status, schema_version, info FROM `{d}`.system ORDER BY name;\n\
                 SELECT value FROM `{d}`.variable WHERE name IN ('install_profile', 'maintenance_mode');\n"
            )
        })
        .collect();
    let sql_file = dir.join("baseline.sql");
    std::fs::write(&sql_file, sql).unwrap();
    let mut b = vec![];
    for r in 0..runs {
        b.push(secs(
            sh(
                &format!(
                    "'{}' --defaults-extra-file='{}' --batch < '{}' > /dev/null",
                    db.client.display(),
                    db.admin_defaults_file.display(),
                    sql_file.display()
                ),
                &logs,
                &format!("drupal-live-baseline-{r}"),
            )
            .wall,
        ));
    }
    say(format!(
        "drupal-live: plan {} s; baseline {} s",
        fmt_runs(&h),
        fmt_runs(&b)
    ));
    let (h, b) = (median(&mut h), median(&mut b));
    vec![Row {
        scenario: format!(
            "live `plan`, {SITES} installed Drupal 7 sites on one MariaDB (nothing to do)"
        ),
        hoist: format!("{h:.2} s"),
        baseline: format!("`mariadb` reading the same rows, one process: {b:.2} s"),
        ratio: format!("{:.1}x", h / b),
        target: "<= 2 s".into(),
        met: h <= 2.0,
    }]
}
