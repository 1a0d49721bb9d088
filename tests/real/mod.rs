//! A real stack for the MariaDB suites: MariaDB, php-fpm and nginx started
//! on loopback ([`super::services`]), and the example inventory pointed at
//! them, cut down to the sites a test names (fewer installs, faster runs).
#![allow(dead_code)] // not every suite uses every helper

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{self, Fixture};
use super::services::{http_get, MariaDb, Nginx, PhpFpm};

/// The services of one test.
pub struct Stack {
    pub db: MariaDb,
    pub fpm: PhpFpm,
    pub nginx: Nginx,
}

impl Stack {
    /// Starts the three services; `None`: skipped (the services module
    /// says why, and fails instead under `HOIST_REQUIRE_SERVICES`).
    pub fn start() -> Option<Stack> {
        let db = MariaDb::start()?;
        let fpm = PhpFpm::start()?;
        let nginx = Nginx::start()?;
        Some(Stack { db, fpm, nginx })
    }

    /// What `host` answers on nginx: status and body.
    pub fn get(&self, host: &str) -> (u16, String) {
        let r = http_get(self.nginx.port, host, "/").expect("GET");
        (r.status, r.text())
    }
}

/// The example inventory with only `sites`, its `hoist.yaml` pointing at
/// the stack.
pub fn fixture(s: &Stack, sites: &[&str]) -> Fixture {
    let f = Fixture::example();
    for e in std::fs::read_dir(f.inv().join("sites")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !sites.iter().any(|s| name == format!("{s}.yaml")) {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    f.write(
        "hoist.yaml",
        &super::services::mysql_nginx_hoist_yaml(&s.db, &s.fpm, &s.nginx),
    );
    f
}

/// The server root of a [`fixture`] (`--host-root`, as [`Fixture::cmd`]
/// passes it).
pub fn root(f: &Fixture) -> PathBuf {
    f.host()
}

/// The outcome of one `hoist` run: exit code and both streams.
pub struct Out {
    pub code: i32,
    pub text: String,
}

/// A `hoist` command on a [`fixture`], no failpoint armed.
pub fn cmd(f: &Fixture, args: &[&str]) -> Command {
    let mut c = f.cmd(args);
    c.env_remove("HOIST_FAILPOINT");
    c
}

/// Runs `hoist` with `args` and the environment `env`.
pub fn hoist(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = cmd(f, args);
    c.envs(env.iter().copied());
    let out = c.output().expect("hoist runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Runs `hoist apply --yes` and asserts it succeeded.
pub fn apply(s: &Stack, f: &Fixture) {
    let out = hoist(f, &["apply", "--yes"], &[]);
    assert_eq!(out.code, 0, "{}\nnginx: {}", out.text, s.nginx.error_log());
}

/// The database settings (name, user) of a site on the server.
pub fn db_of(f: &Fixture, platform: &str, domain: &str) -> (String, String) {
    let path = root(f)
        .join("platforms")
        .join(platform)
        .join("sites")
        .join(domain)
        .join("settings.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let field = |k: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{k}: ")))
            .unwrap_or_else(|| panic!("no {k} in {text}"));
        serde_json::from_str(line.trim_start().trim_start_matches(&format!("{k}: ")))
            .expect("a JSON string")
    };
    (field("name"), field("user"))
}

/// Every byte of every row of every table of database `name`, in hex
/// (so binary columns compare exactly), table by table in a fixed order.
pub fn rows(db: &MariaDb, name: &str) -> String {
    let tables = db.sql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{name}' ORDER BY table_name"
    ));
    let mut out = String::new();
    for t in tables.lines().filter(|l| !l.is_empty()) {
        let cols = db.sql(&format!(
            "SELECT GROUP_CONCAT(CONCAT('HEX(`', column_name, '`)') ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_schema = '{name}' AND table_name = '{t}'"
        ));
        out.push_str(&format!("== {t}\n"));
        out.push_str(&db.sql(&format!(
            "SELECT {} FROM `{name}`.`{t}` ORDER BY 1",
            cols.trim()
        )));
    }
    out
}

/// The tables of `name`, one per line, sorted (empty: none, or no such
/// database).
pub fn tables(db: &MariaDb, name: &str) -> String {
    db.sql(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{name}' ORDER BY 1"
    ))
}

/// Whether database `name` exists.
pub fn has_db(db: &MariaDb, name: &str) -> bool {
    !db.sql(&format!(
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = '{name}'"
    ))
    .trim()
    .is_empty()
}

/// Whether user `name` exists (any host).
pub fn has_user(db: &MariaDb, name: &str) -> bool {
    !db.sql(&format!("SELECT 1 FROM mysql.user WHERE user = '{name}'"))
        .trim()
        .is_empty()
}

/// Files and their contents under `dir` (for "nothing changed").
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, String> {
    common::snapshot(dir)
}
