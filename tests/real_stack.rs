//! The example inventory on a real stack: MariaDB for the site databases,
//! nginx with php-fpm serving the example platforms' `index.php`, all
//! started by the test on loopback. Sites are installed and served, a
//! migrate cuts over only after its health checks, a target platform whose
//! code answers 500 is rolled back with the site still serving and its rows
//! untouched, and someone else's broken file in nginx's `conf_dir` stops a
//! task before anything changes.

mod common;
mod services;

use common::Fixture;
use services::{http_get, MariaDb, Nginx, PhpFpm};

/// The example inventory, its `hoist.yaml` pointing at the services.
fn real_fixture(db: &MariaDb, fpm: &PhpFpm, nginx: &Nginx) -> Fixture {
    let f = Fixture::example();
    f.write(
        "hoist.yaml",
        &services::mysql_nginx_hoist_yaml(db, fpm, nginx),
    );
    f
}

/// What the site answers under `host`: status and body.
fn get(nginx: &Nginx, host: &str) -> (u16, String) {
    let r = http_get(nginx.port, host, "/").expect("GET");
    (r.status, r.text())
}

/// Every row of every table of database `db`, as the server prints them.
fn rows(db: &MariaDb, name: &str) -> String {
    let tables = db.sql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{name}' ORDER BY table_name"
    ));
    let mut out = String::new();
    for t in tables.lines().filter(|l| !l.is_empty()) {
        out.push_str(&format!("== {t}\n"));
        out.push_str(&db.sql(&format!("SELECT * FROM `{name}`.`{t}` ORDER BY 1")));
    }
    out
}

/// The database name in a site's settings file on the server.
fn db_name(f: &Fixture, platform: &str, domain: &str) -> String {
    let path = f
        .inv()
        .join(".hoist-host/platforms")
        .join(platform)
        .join("sites")
        .join(domain)
        .join("settings.yaml");
    let text = std::fs::read_to_string(&path).expect("settings");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("name: "))
        .expect("a database name");
    serde_json::from_str(line.trim_start().trim_start_matches("name: ")).expect("json string")
}

#[test]
fn the_example_is_served_migrated_and_rolled_back_on_a_real_stack() {
    let Some(db) = MariaDb::start() else { return };
    let Some(fpm) = PhpFpm::start() else { return };
    let Some(nginx) = Nginx::start() else { return };
    let f = real_fixture(&db, &fpm, &nginx);
    // `Fixture::cmd` passes --host-root; this inventory's server root is
    // its own `.hoist-host`, as the README's example has it.
    let hoist = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("-C")
            .arg(f.inv())
            .args(args)
            .env_remove("HOIST_HOST_ROOT")
            .env("NO_COLOR", "1")
            .output()
            .expect("hoist runs");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    // A wrong admin password: refused before anything changes.
    let good = std::fs::read(&db.admin_password_file).unwrap();
    std::fs::write(&db.admin_password_file, b"not-the-password\n").unwrap();
    let (code, out) = hoist(&["apply", "--yes"]);
    std::fs::write(&db.admin_password_file, &good).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("database server maria") && out.contains("Nothing was changed"),
        "{out}"
    );
    assert!(
        !f.inv().join(".hoist-host/platforms").exists(),
        "nothing built"
    );
    assert_eq!(
        std::fs::read_dir(&nginx.conf_dir).unwrap().count(),
        0,
        "no vhost"
    );

    // Install: every site is served by its platform's code, reading its
    // own MariaDB database.
    let (code, out) = hoist(&["apply", "--yes"]);
    assert_eq!(code, 0, "{out}\nnginx: {}", nginx.error_log());
    for (site, domain) in [
        ("acme", "acme.example.com"),
        ("eatery", "eatery.example.com"),
    ] {
        assert_eq!(get(&nginx, domain), (200, format!("site: {site}\n")));
    }
    assert_eq!(
        get(&nginx, "www.acme.example.com").0,
        200,
        "aliases are served"
    );
    let dental_db = db_name(&f, "shop-2-0", "dental.example.net");
    assert!(
        db.sql("SELECT user FROM mysql.user")
            .contains(&dental_db[..dental_db.len().min(32)]),
        "each site has its own user"
    );

    // Migrate dental 2.0 -> 2.1: checked on its preview, switched, checked
    // again; served from the new platform with its rows updated.
    f.set_site("dental", "platform", "shop-2-1");
    let (code, out) = hoist(&["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        get(&nginx, "dental.example.net"),
        (200, "site: dental\n".into())
    );
    let vhost = std::fs::read_to_string(nginx.conf_dir.join("dental.example.net.conf")).unwrap();
    assert!(vhost.contains("platforms/shop-2-1"), "{vhost}");
    assert!(
        !nginx
            .conf_dir
            .join("dental.example.net.hoist-preview.conf")
            .exists(),
        "the preview is gone"
    );

    // A platform whose code answers 500: the migrate of eatery onto it is
    // rolled back after the preview check fails, and eatery keeps serving
    // from its old platform with every row as it was.
    let broken = f.inv().join("codebases/shop-2.1-broken");
    common::copy_dir(&f.inv().join("codebases/shop-2.1"), &broken);
    std::fs::write(
        broken.join("index.php"),
        "<?php http_response_code(500); echo \"broken\\n\";\n",
    )
    .unwrap();
    f.write(
        "platforms/shop-2-1-broken.yaml",
        "source: { path: codebases/shop-2.1-broken }\n",
    );
    let eatery_db = db_name(&f, "shop-2-1", "eatery.example.com");
    let before = rows(&db, &eatery_db);
    f.set_site("eatery", "platform", "shop-2-1-broken");
    let (code, out) = hoist(&["apply", "--yes"]);
    assert_ne!(code, 0, "the failed health check fails the apply: {out}");
    assert!(out.contains("answered 500"), "{out}");
    assert_eq!(
        get(&nginx, "eatery.example.com"),
        (200, "site: eatery\n".into())
    );
    assert_eq!(rows(&db, &eatery_db), before, "eatery's rows are untouched");
    assert_eq!(db_name(&f, "shop-2-1", "eatery.example.com"), eatery_db);
    assert!(
        !f.inv()
            .join(".hoist-host/platforms/shop-2-1-broken/sites/eatery.example.com")
            .exists(),
        "the new copy is dropped"
    );

    // Someone else's broken file in conf_dir: the test fails before any
    // reload, the task is undone, and the site is served as before.
    f.set_site("eatery", "platform", "shop-2-1");
    std::fs::write(
        nginx.conf_dir.join("zz-not-ours.conf"),
        "server { this is not nginx",
    )
    .unwrap();
    f.set_site("acme", "enabled", "false");
    let (code, out) = hoist(&["apply", "--yes"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("nginx was not reloaded"), "{out}");
    assert_eq!(get(&nginx, "acme.example.com").0, 200, "acme still served");
    std::fs::remove_file(nginx.conf_dir.join("zz-not-ours.conf")).unwrap();
    let (code, out) = hoist(&["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(get(&nginx, "acme.example.com").0, 403, "acme disabled");

    // No password reached a task record.
    let admin_pw = std::fs::read_to_string(&db.admin_password_file).unwrap();
    for e in std::fs::read_dir(f.inv().join(".hoist-host/tasks"))
        .unwrap()
        .flatten()
    {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        assert!(!text.contains(admin_pw.trim()), "{}", e.path().display());
    }
}
