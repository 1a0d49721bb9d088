//! The two stacks every site-task suite runs on (issue 12 item 5): the
//! embedded default (SQLite databases, vhosts as files nothing serves) and
//! a real one (MariaDB databases, nginx with php-fpm serving the example
//! platforms' `index.php`).
//!
//! A test binary that uses it declares `mod common; mod services;` and
//! `#[macro_use] #[path = "common/stack.rs"] mod stack;`, then writes its test once with
//! [`on_both_stacks!`]. The real services are started once per test binary
//! (on first use) and shared by its tests; each test has its own database
//! names (hoist's random suffixes), its own nginx `conf_dir` and its own
//! listen port, so tests running at once stay independent. They are stopped
//! when the test binary exits.
//!
//! A test cannot copy a fixture whose sites live in MariaDB and are served
//! by nginx from absolute paths, so where the embedded suites used
//! `Fixture::duplicate`, a test here takes a [`Checkpoint`] and puts the
//! same fixture back to it ([`Env::restore`]) before each try.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::common::{self, Fixture, State};
use crate::services::{self, MariaDb, Nginx, PhpFpm};

/// Which database and web servers an inventory's sites live on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// `sqlite` databases and `file` vhosts under the server root.
    Embedded,
    /// `mysql` databases on a real MariaDB, `nginx` vhosts served for real
    /// through php-fpm, with health checks.
    MysqlNginx,
}

impl Stack {
    /// The steps of a rename task on this stack. On MariaDB a rename moves
    /// the tables (`RENAME TABLE`) and runs no update step: the moved
    /// tables are the site's only copy.
    pub fn rename_steps(self, steps: &[&'static str]) -> Vec<&'static str> {
        steps
            .iter()
            .copied()
            .filter(|s| self == Stack::Embedded || *s != "update")
            .collect()
    }
}

/// Generates, from one body, a test per stack: `NAME::embedded` and
/// `NAME::mysql_nginx` (so `cargo test -- mysql_nginx` runs one stack).
/// The body sees the stack as the named variable.
macro_rules! on_both_stacks {
    ($(#[$meta:meta])* fn $name:ident($stack:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn embedded() {
                let $stack = $crate::stack::Stack::Embedded;
                $body
            }

            #[test]
            fn mysql_nginx() {
                let $stack = $crate::stack::Stack::MysqlNginx;
                $body
            }
        }
    };
}

/// The services a test binary shares.
struct Shared {
    db: MariaDb,
    fpm: PhpFpm,
    nginx: Nginx,
}

/// The shared services once started; taken and stopped at exit.
static SHARED: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

/// Stops the shared services as the test binary exits (`atexit`): statics
/// are never dropped, and the kernel's SIGKILL would leave their temporary
/// directories behind.
extern "C" fn stop_shared() {
    let taken = SHARED.lock().ok().and_then(|mut s| s.take());
    if let Some(s) = taken.and_then(|a| Arc::try_unwrap(a).ok()) {
        // Nothing may unwind out of an atexit handler.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(s)));
    }
}

/// The shared services, started on first use; `None` when they are not
/// installed (skipped), a panic under `HOIST_REQUIRE_SERVICES`.
fn shared() -> Option<Arc<Shared>> {
    static STARTED: OnceLock<bool> = OnceLock::new();
    let available = *STARTED.get_or_init(|| {
        // The services are children of a thread that lives as long as the
        // process: they die with the thread that started them (see
        // `services`), and a test's thread ends with its test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("shared-services".into())
            .spawn(move || {
                let started = std::panic::catch_unwind(|| {
                    let db = MariaDb::start_unsynced()?;
                    let fpm = PhpFpm::start()?;
                    let nginx = Nginx::start_nested()?;
                    Some(Shared { db, fpm, nginx })
                });
                let _ = tx.send(started.map_err(|p| panic_text(&*p)));
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the services thread");
        match rx.recv().expect("the services thread answers") {
            Ok(Some(s)) => {
                *SHARED.lock().unwrap() = Some(Arc::new(s));
                // SAFETY: registers a plain function with no arguments.
                unsafe { libc::atexit(stop_shared) };
                true
            }
            Ok(None) => false,
            Err(why) => panic!("starting the shared services: {why}"),
        }
    });
    if !available {
        return None;
    }
    SHARED.lock().unwrap().clone()
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".into())
}

/// What a test's own nginx vhosts are: its `conf_dir` and listen port.
struct Web {
    conf_dir: PathBuf,
    port: u16,
}

/// A copy of the example inventory applied on one stack: a [`Fixture`]
/// (which it dereferences to) with the stack's servers in its `hoist.yaml`.
pub struct Env {
    /// The stack the inventory's sites live on.
    pub stack: Stack,
    /// The inventory and the local server's root.
    pub f: Fixture,
    services: Option<Arc<Shared>>,
    web: Option<Web>,
}

impl std::ops::Deref for Env {
    type Target = Fixture;
    fn deref(&self) -> &Fixture {
        &self.f
    }
}

/// The name of hoist's generation vhost in a `conf_dir` (not a site's).
const GENERATION_FILE: &str = "hoist-generation.conf";

impl Env {
    /// A copy of the example inventory on `stack`, not yet applied.
    /// `None` (after printing why): the real services are not installed.
    pub fn example(stack: Stack) -> Option<Env> {
        let f = Fixture::example();
        let Stack::MysqlNginx = stack else {
            return Some(Env {
                stack,
                f,
                services: None,
                web: None,
            });
        };
        let services = shared()?;
        let conf_dir = services
            .nginx
            .conf_dir
            // Not hidden: nginx's `*/*.conf` skips directories named `.*`.
            .join(format!(
                "t{}",
                f.tmp
                    .path()
                    .file_name()
                    .expect("a temp dir name")
                    .to_string_lossy()
            ));
        std::fs::create_dir(&conf_dir).expect("the test's conf_dir");
        let web = Web {
            conf_dir,
            port: services::free_port(),
        };
        let original = f.read("hoist.yaml");
        let server = services::local_nginx_server_yaml(
            ".hoist-host",
            &services.nginx,
            &services.fpm,
            &web.conf_dir,
            web.port,
        );
        let database = services::mysql_database_yaml("default", &services.db);
        let mut text = String::new();
        for line in original.lines() {
            if line.starts_with("  local: { kind: local") {
                text.push_str(&server);
            } else if line.starts_with("  default: { kind: sqlite }") {
                text.push_str(&database);
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
        assert!(
            text.contains("kind: nginx") && text.contains("kind: mysql"),
            "the example's hoist.yaml changed: {original}"
        );
        text.push_str(services::EXAMPLE_HEALTH);
        f.write("hoist.yaml", &text);
        Some(Env {
            stack,
            f,
            services: Some(services),
            web: Some(web),
        })
    }

    /// The example applied, with a file and a `files` row for it in acme,
    /// bakery and eatery: the content every site task must keep.
    pub fn example_with_content(stack: Stack) -> Option<Env> {
        let env = Env::example(stack)?;
        env.apply();
        for (p, d) in [
            ("shop-1-1", "acme.example.com"),
            ("shop-1-0", "bakery.example.com"),
            ("shop-2-1", "eatery.example.com"),
        ] {
            let dir = env.host().join(format!("platforms/{p}/sites/{d}/files"));
            std::fs::write(dir.join("a.txt"), format!("content of {d}")).unwrap();
            let (db, _) = common::settings_of(&env.f, p, d);
            env.exec(
                &db,
                &format!("INSERT INTO files (fid, path) VALUES (1000, 'sites/{d}/files/a.txt');"),
            );
        }
        Some(env)
    }

    /// [`Env::example_with_content`] edited by `change`, and the checkpoint
    /// every try of a task starts from ([`Env::try_each`]).
    pub fn prepared(stack: Stack, change: impl FnOnce(&Fixture)) -> Option<(Env, Checkpoint)> {
        let env = Env::example_with_content(stack)?;
        change(&env);
        let start = env.checkpoint();
        Some((env, start))
    }

    /// Runs `each` on every one of `tries`, the servers put back to
    /// `start` before each try but the first (which starts there).
    pub fn try_each<T>(
        &self,
        start: &Checkpoint,
        tries: impl IntoIterator<Item = T>,
        mut each: impl FnMut(T),
    ) {
        for (i, t) in tries.into_iter().enumerate() {
            if i > 0 {
                self.restore(start);
            }
            each(t);
        }
    }

    /// Declares a second database server `other` of the stack's kind in
    /// `hoist.yaml` ([`declare_other_database_server`]); on mysql+nginx a
    /// second MariaDB is started for it (returned: it runs while the test
    /// holds it). [`Env::other_query`] reads from it.
    pub fn add_other_database_server(&self) -> Option<MariaDb> {
        let db = match self.stack {
            Stack::Embedded => None,
            Stack::MysqlNginx => Some(MariaDb::start().expect("a second MariaDB")),
        };
        declare_other_database_server(&self.f, db.as_ref());
        db
    }

    /// The rows `sql` selects in database `db` on the server
    /// [`Env::add_other_database_server`] declared (`other`), as
    /// [`Env::query`] gives them.
    pub fn other_query(&self, other: Option<&MariaDb>, db: &str, sql: &str) -> Vec<String> {
        match other {
            None => self.query(db, sql),
            Some(m) => mariadb_query(m, db, sql),
        }
    }

    /// Applies and asserts success; on failure, with nginx's error log.
    pub fn apply(&self) -> common::Run {
        let r = self.run(&["apply", "--yes"]);
        if r.code != 0 {
            let nginx = self
                .services
                .as_ref()
                .map(|s| s.nginx.error_log())
                .unwrap_or_default();
            panic!("hoist apply: {}\n--- nginx error log\n{nginx}", r.all());
        }
        self.assert_served();
        r
    }

    /// Asserts that every site answers as it should ([`Env::serving_problems`]):
    /// what each test checks after every task.
    pub fn assert_served(&self) {
        let bad = self.serving_problems();
        assert!(bad.is_empty(), "not served as it should be: {bad:?}");
    }

    fn mariadb(&self) -> &MariaDb {
        &self.services.as_ref().expect("the mysql stack").db
    }

    /// Runs `sql` in the site database `db`, as the admin; panics on failure.
    pub fn exec(&self, db: &str, sql: &str) {
        match self.stack {
            Stack::Embedded => {
                let c = rusqlite::Connection::open(self.sqlite_file(db)).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Stack::MysqlNginx => {
                self.mariadb().sql(&format!("USE `{db}`;\n{sql}"));
            }
        }
    }

    /// The rows `sql` selects in the site database `db` (as the admin),
    /// each as its values joined by tabs, NULL as `NULL`: the same text on
    /// either stack for the portable SQL the example's sites use.
    pub fn query(&self, db: &str, sql: &str) -> Vec<String> {
        match self.stack {
            Stack::Embedded => {
                let c = rusqlite::Connection::open(self.sqlite_file(db)).unwrap();
                let mut st = c.prepare(sql).unwrap();
                let n = st.column_count();
                st.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t) => {
                                    String::from_utf8_lossy(t).into_owned()
                                }
                            })
                        })
                        .collect::<rusqlite::Result<Vec<String>>>()
                        .map(|v| v.join("\t"))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
            }
            Stack::MysqlNginx => mariadb_query(self.mariadb(), db, sql),
        }
    }

    /// The value of variable `name` in the site database `db`.
    pub fn var(&self, db: &str, name: &str) -> Option<String> {
        self.query(
            db,
            &format!("SELECT value FROM variables WHERE name='{name}'"),
        )
        .pop()
    }

    /// The text of the vhost hoist wrote for `domain` (`None`: there is none).
    pub fn vhost(&self, domain: &str) -> Option<String> {
        std::fs::read_to_string(self.vhost_path(domain)).ok()
    }

    /// Where hoist writes the vhost of `domain`.
    pub fn vhost_path(&self, domain: &str) -> PathBuf {
        self.vhost_dir().join(format!("{domain}.conf"))
    }

    fn sqlite_file(&self, db: &str) -> PathBuf {
        self.host().join(format!("databases/{db}.sqlite"))
    }

    /// The `maintenance_mode` variable of database `db` (`None`: unreadable).
    pub fn maintenance(&self, db: &str) -> Option<String> {
        match self.stack {
            Stack::Embedded => rusqlite::Connection::open(self.sqlite_file(db))
                .ok()?
                .query_row(
                    "SELECT value FROM variables WHERE name='maintenance_mode'",
                    [],
                    |r| r.get(0),
                )
                .ok(),
            Stack::MysqlNginx => {
                let out = self.mariadb().sql_as(
                    &self.mariadb().admin_defaults_file,
                    Some(db),
                    "SELECT value FROM variables WHERE name='maintenance_mode';\n",
                );
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            }
        }
    }

    /// Every row of every table of database `db`, each value as its exact
    /// bytes in hex, sorted: what "byte-identical rows" means on either
    /// stack (SQLite also says each value's type; MariaDB's table
    /// definitions are compared by [`Env::state`]).
    pub fn db_rows(&self, db: &str) -> BTreeMap<String, Vec<String>> {
        match self.stack {
            Stack::Embedded => {
                common::rows_hex(&rusqlite::Connection::open(self.sqlite_file(db)).unwrap())
            }
            Stack::MysqlNginx => {
                let mut all = self.mysql_contents(&[db.to_string()].into());
                let prefix = format!("{db}.");
                all.retain(|k, _| k.starts_with(&prefix) && !k.ends_with("#schema"));
                all.into_iter()
                    .map(|(k, v)| (k[prefix.len()..].to_string(), v))
                    .collect()
            }
        }
    }

    /// The site databases of this test that exist: on SQLite the files in
    /// `databases/`, on MariaDB those named in this test's server root
    /// (settings and task records; other tests share the server).
    pub fn databases(&self) -> BTreeSet<String> {
        match self.stack {
            Stack::Embedded => std::fs::read_dir(self.host().join("databases"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".sqlite")
                        .map(String::from)
                })
                .collect(),
            Stack::MysqlNginx => {
                let names = self.named_databases();
                let existing = self
                    .mariadb()
                    .sql("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA;\n");
                existing
                    .lines()
                    .filter(|n| names.contains(*n))
                    .map(String::from)
                    .collect()
            }
        }
    }

    /// The MariaDB users of this test that exist, by name (empty on SQLite).
    pub fn users(&self) -> BTreeSet<String> {
        if self.stack == Stack::Embedded {
            return BTreeSet::new();
        }
        let wanted: BTreeSet<String> = self.named_databases().iter().map(|d| user_for(d)).collect();
        self.mariadb()
            .sql("SELECT DISTINCT User FROM mysql.user;\n")
            .lines()
            .filter(|u| wanted.contains(*u))
            .map(String::from)
            .collect()
    }

    /// Every name of hoist's making (`<site>_<8 hex digits>`, maybe with
    /// `_kept`) in the files of this test's server root (not its backup
    /// archives): the databases this test's hoist made or planned to.
    fn named_databases(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut files = Vec::new();
        collect_files(&self.host(), &mut files);
        for p in files {
            if p.starts_with(self.host().join("backups")) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if is_db_name(token) {
                    out.insert(token.to_string());
                }
            }
        }
        out
    }

    /// The databases the sites on the server root use (their settings),
    /// with each site's domain directory.
    pub fn databases_in_use(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (domain, settings) in self.site_settings() {
            if let Some(db) = settings_value(&settings, "name:") {
                out.insert(db, domain);
            }
        }
        out
    }

    /// `(domain directory, settings.yaml text)` of every site directory
    /// under `platforms/*/sites/` (hidden ones, a task's copies, aside).
    fn site_settings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in std::fs::read_dir(self.host().join("platforms"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for s in std::fs::read_dir(p.path().join("sites"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let d = s.file_name().to_string_lossy().into_owned();
                if d.starts_with('.') {
                    continue;
                }
                let text =
                    std::fs::read_to_string(s.path().join("settings.yaml")).unwrap_or_default();
                out.push((d, text));
            }
        }
        out
    }

    /// The vhosts hoist wrote, by name without `.conf` (hoist's generation
    /// vhost aside): `vhosts/` on the embedded stack, `conf_dir` on nginx.
    pub fn vhosts(&self) -> BTreeSet<String> {
        let dir = self.vhost_dir();
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != GENERATION_FILE)
            .filter_map(|n| n.strip_suffix(".conf").map(String::from))
            .collect()
    }

    fn vhost_dir(&self) -> PathBuf {
        match &self.web {
            Some(w) => w.conf_dir.clone(),
            None => self.host().join("vhosts"),
        }
    }

    /// What nginx answers for `host` at `/` (status and body); only on the
    /// mysql+nginx stack.
    pub fn get(&self, host: &str) -> (u16, String) {
        let web = self.web.as_ref().expect("only nginx serves sites");
        let r = services::http_get(web.port, host, "/")
            .unwrap_or_else(|e| panic!("GET http://{host}/: {e}"));
        (r.status, r.text())
    }

    /// What every site on the server root answers under its domain, by
    /// domain (empty on the embedded stack, where nothing serves).
    pub fn served(&self) -> BTreeMap<String, (u16, String)> {
        if self.web.is_none() {
            return BTreeMap::new();
        }
        self.site_settings()
            .into_iter()
            .map(|(d, _)| {
                let got = self.get(&d);
                (d, got)
            })
            .collect()
    }

    /// Problems with what the sites answer: on nginx each site on the
    /// server root must answer 200 with its own name (its index.php read
    /// its own database). Nothing on the embedded stack.
    pub fn serving_problems(&self) -> Vec<String> {
        if self.web.is_none() {
            return Vec::new();
        }
        let mut bad = Vec::new();
        for (domain, settings) in self.site_settings() {
            let Some(site) = settings_value(&settings, "site:") else {
                continue;
            };
            if settings_value(&settings, "enabled:").as_deref() == Some("false") {
                continue; // its vhost serves the 'site disabled' page
            }
            let want = (200, format!("site: {site}\n"));
            let got = self.get(&domain);
            if got != want {
                bad.push(format!("{domain} answers {got:?}, not {want:?}"));
            }
        }
        bad
    }

    /// Everything on the servers that an undone task must leave as it was:
    /// every file of the server root (task records, backups, the trash, the
    /// lock and SQLite files aside), every vhost in nginx's `conf_dir`, and
    /// every row, byte for byte, of every database of this test (and on
    /// MariaDB every table's definition and its users' grants).
    pub fn state(&self) -> State {
        let (mut files, _) = common::server_state(&self.f);
        if let Some(web) = &self.web {
            for (k, v) in common::snapshot(&web.conf_dir) {
                if k != GENERATION_FILE {
                    files.insert(format!("nginx:{k}"), v);
                }
            }
        }
        let dbs = self.databases();
        let rows = match self.stack {
            Stack::Embedded => {
                let mut out = BTreeMap::new();
                for db in &dbs {
                    for (t, r) in self.db_rows(db) {
                        out.insert(format!("{db}.{t}"), r);
                    }
                }
                out
            }
            Stack::MysqlNginx => {
                let mut out = self.mysql_contents(&dbs);
                out.insert("grants".into(), self.grants());
                out
            }
        };
        (files, rows)
    }

    /// The grants (with password hashes) of this test's users, sorted.
    fn grants(&self) -> Vec<String> {
        let script = self
            .user_hosts()
            .iter()
            .fold(String::new(), |mut s, (u, h)| {
                s.push_str(&format!("SHOW GRANTS FOR '{u}'@'{h}';\n"));
                s
            });
        if script.is_empty() {
            return Vec::new();
        }
        let mut v: Vec<String> = self
            .mariadb()
            .sql(&script)
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    }

    fn user_hosts(&self) -> Vec<(String, String)> {
        let users = self.users();
        if users.is_empty() {
            return Vec::new();
        }
        let list: Vec<String> = users.iter().map(|u| format!("'{u}'")).collect();
        self.mariadb()
            .sql(&format!(
                "SELECT User, Host FROM mysql.user WHERE User IN ({}) ORDER BY 1, 2;\n",
                list.join(", ")
            ))
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(u, h)| (u.to_string(), h.to_string()))
            .collect()
    }

    /// Rows (hex, sorted) of every table of `dbs` as `db.table`, and each
    /// table's columns and indexes as `db.table#schema`: three queries
    /// whatever the number of tables.
    fn mysql_contents(&self, dbs: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        if dbs.is_empty() {
            return out;
        }
        let db = self.mariadb();
        let list: Vec<String> = dbs.iter().map(|d| format!("'{d}'")).collect();
        let list = list.join(", ");
        let columns = db.sql(&format!(
            "SELECT table_schema, table_name, GROUP_CONCAT(column_name ORDER BY ordinal_position SEPARATOR ','), \
             GROUP_CONCAT(CONCAT_WS(' ', column_name, column_type, is_nullable, IFNULL(column_default, 'NULL')) \
             ORDER BY ordinal_position SEPARATOR ', ') \
             FROM information_schema.columns WHERE table_schema IN ({list}) GROUP BY 1, 2;\n\
             SELECT table_schema, table_name, '', GROUP_CONCAT(CONCAT(index_name, ':', column_name, ':', non_unique) \
             ORDER BY index_name, seq_in_index SEPARATOR ', ') \
             FROM information_schema.statistics WHERE table_schema IN ({list}) GROUP BY 1, 2;\n"
        ));
        let mut selects = String::new();
        for line in columns.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            let [schema, table, cols, def] = f[..] else {
                panic!("unexpected column listing {line:?}");
            };
            let key = format!("{schema}.{table}");
            out.entry(format!("{key}#schema"))
                .or_insert_with(Vec::new)
                .push(def.to_string());
            if cols.is_empty() {
                continue; // the index line
            }
            out.entry(key.clone()).or_insert_with(Vec::new);
            let values: Vec<String> = cols
                .split(',')
                .map(|c| format!("IFNULL(LOWER(HEX(`{c}`)), 'N')"))
                .collect();
            selects.push_str(&format!(
                "SELECT '{key}', CONCAT_WS('|', {}) FROM `{schema}`.`{table}`;\n",
                values.join(", ")
            ));
        }
        for line in db.sql(&selects).lines() {
            let (key, row) = line.split_once('\t').expect("key and row");
            out.get_mut(key)
                .expect("a listed table")
                .push(row.to_string());
        }
        for v in out.values_mut() {
            v.sort();
        }
        out
    }

    /// Saves what [`Env::restore`] puts back: the inventory and server root,
    /// nginx's `conf_dir`, the test's databases and users, what the sites
    /// answer, and the state they are compared by.
    pub fn checkpoint(&self) -> Checkpoint {
        let files = tempfile::tempdir().unwrap();
        common::copy_dir(self.f.tmp.path(), files.path());
        let conf = self.web.as_ref().map(|w| {
            let d = tempfile::tempdir().unwrap();
            common::copy_dir(&w.conf_dir, d.path());
            d
        });
        let sql = match self.stack {
            Stack::Embedded => Vec::new(),
            Stack::MysqlNginx => self.dump(),
        };
        let served = self.served();
        let state = self.state();
        Checkpoint {
            files,
            conf,
            sql,
            served,
            state,
        }
    }

    /// SQL that recreates this test's databases and users as they are.
    fn dump(&self) -> Vec<u8> {
        let db = self.mariadb();
        let dbs = self.databases();
        let mut sql = Vec::new();
        if !dbs.is_empty() {
            let out = std::process::Command::new(&db.dump)
                .arg(format!(
                    "--defaults-extra-file={}",
                    db.admin_defaults_file.display()
                ))
                .args(["--skip-dump-date", "--hex-blob", "--databases"])
                .args(&dbs)
                .output()
                .expect("run mariadb-dump");
            assert!(out.status.success(), "dump: {}", services::text(&out));
            sql = out.stdout;
        }
        for (u, h) in self.user_hosts() {
            let create = db.sql(&format!("SHOW CREATE USER '{u}'@'{h}';\n"));
            let grants = db.sql(&format!("SHOW GRANTS FOR '{u}'@'{h}';\n"));
            for stmt in create
                .lines()
                .chain(grants.lines().filter(|g| !g.starts_with("GRANT USAGE ")))
            {
                sql.extend_from_slice(stmt.as_bytes());
                sql.extend_from_slice(b";\n");
            }
        }
        sql
    }

    /// Puts the fixture back as it was at `cp`: its files, nginx's
    /// `conf_dir` (reloaded, and waited for until every site answers as it
    /// did), and its databases and users (reloaded only when they differ:
    /// a task rolled back as it should left them as they were).
    pub fn restore(&self, cp: &Checkpoint) {
        if self.stack == Stack::MysqlNginx && self.state().1 != cp.state.1 {
            let mut sql = Vec::new();
            let now = self.databases();
            for d in now.iter().map(String::as_str).chain(cp.state_databases()) {
                sql.extend_from_slice(format!("DROP DATABASE IF EXISTS `{d}`;\n").as_bytes());
            }
            for (u, h) in self.user_hosts() {
                sql.extend_from_slice(format!("DROP USER IF EXISTS '{u}'@'{h}';\n").as_bytes());
            }
            sql.extend_from_slice(&cp.sql);
            let db = self.mariadb();
            let out = db.sql_as(
                &db.admin_defaults_file,
                None,
                std::str::from_utf8(&sql).expect("a dump in UTF-8"),
            );
            assert!(out.status.success(), "restore: {}", services::text(&out));
        }
        for part in ["inv", "host"] {
            let p = self.f.tmp.path().join(part);
            if p.exists() {
                std::fs::remove_dir_all(&p).unwrap();
            }
        }
        common::copy_dir(cp.files.path(), self.f.tmp.path());
        if let (Some(web), Some(conf)) = (&self.web, &cp.conf) {
            let same = strip_generation(common::snapshot(&web.conf_dir))
                == strip_generation(common::snapshot(conf.path()));
            if !same {
                std::fs::remove_dir_all(&web.conf_dir).unwrap();
                common::copy_dir(conf.path(), &web.conf_dir);
                self.services.as_ref().unwrap().nginx.reload();
                for (domain, want) in &cp.served {
                    services::wait_for_http(web.port, domain, "/", |r| {
                        (r.status, r.text()) == *want
                    });
                }
            }
        }
        assert_eq!(self.state(), cp.state, "restored as at the checkpoint");
    }
}

impl Drop for Env {
    /// Drops this test's databases and users and its `conf_dir`: the
    /// services outlive the test.
    fn drop(&mut self) {
        if let Some(web) = &self.web {
            if let Err(e) = std::fs::remove_dir_all(&web.conf_dir) {
                eprintln!("removing {}: {e}", web.conf_dir.display());
            }
        }
        if self.stack != Stack::MysqlNginx || std::thread::panicking() {
            return; // a failed test's databases are left to look at
        }
        let mut sql = String::new();
        for d in self.databases() {
            sql.push_str(&format!("DROP DATABASE IF EXISTS `{d}`;\n"));
        }
        for (u, h) in self.user_hosts() {
            sql.push_str(&format!("DROP USER IF EXISTS '{u}'@'{h}';\n"));
        }
        if !sql.is_empty() {
            let db = self.mariadb();
            let out = db.sql_as(&db.admin_defaults_file, None, &sql);
            if !out.status.success() {
                eprintln!("dropping the test's databases: {}", services::text(&out));
            }
        }
    }
}

/// What [`Env::restore`] puts back.
pub struct Checkpoint {
    files: tempfile::TempDir,
    conf: Option<tempfile::TempDir>,
    sql: Vec<u8>,
    /// What each site answered (nginx only).
    pub served: BTreeMap<String, (u16, String)>,
    /// The servers' state ([`Env::state`]).
    pub state: State,
}

impl Checkpoint {
    fn state_databases(&self) -> impl Iterator<Item = &str> {
        self.state
            .1
            .keys()
            .filter_map(|k| k.split_once('.').map(|(d, _)| d))
    }
}

fn strip_generation(mut m: BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.remove(GENERATION_FILE);
    m
}

/// Whether `s` is a database name of hoist's making:
/// `<site>_<8 hex digits>`, maybe followed by `_kept`.
fn is_db_name(s: &str) -> bool {
    let s = s.strip_suffix("_kept").unwrap_or(s);
    s.len() > 9
        && s.len() <= 64
        && s.as_bytes()[s.len() - 9] == b'_'
        && s[s.len() - 8..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Declares a second database server `other` in `f`'s `hoist.yaml`: `db`
/// (a MariaDB) when given, else another SQLite server.
pub fn declare_other_database_server(f: &Fixture, db: Option<&MariaDb>) {
    let yaml = match db {
        None => "  other: { kind: sqlite }\n".to_string(),
        Some(db) => services::mysql_database_yaml("other", db),
    };
    let text = f.read("hoist.yaml");
    assert!(text.contains("\ndatabases:\n"), "{text}");
    f.write(
        "hoist.yaml",
        &text.replacen("\ndatabases:\n", &format!("\ndatabases:\n{yaml}"), 1),
    );
}

/// The rows `sql` selects in database `db` of `m` (as its admin), each as
/// its values joined by tabs.
fn mariadb_query(m: &MariaDb, db: &str, sql: &str) -> Vec<String> {
    let out = m.sql_as(&m.admin_defaults_file, Some(db), &format!("{sql};\n"));
    assert!(out.status.success(), "{sql}: {}", services::text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// The MariaDB user of database `db`, as hoist names it.
pub fn user_for(db: &str) -> String {
    hoist::render::DbDriver::Mysql.user_for(db)
}

/// The value of `key` (e.g. `name:`) in a settings file's text.
fn settings_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().trim_matches('"').to_string())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_files(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}
