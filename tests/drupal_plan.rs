//! Drupal platforms and sites planned through the real binary: small
//! Drupal 7 and Drupal 8+ shaped codebases written here (info files,
//! `.install` files with update functions, post-update files, a profile),
//! declared with absolute sources outside the inventory, built on a local
//! server by hand (apply refuses Drupal), with site databases in Drupal's
//! own shapes on SQLite. Each verdict of spec section 5 is read back from
//! `hoist plan` as text and as JSON. The `#[ignore]`d tests at the end do
//! the same on real Drupal releases.

mod drupal_trees;
mod services;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist::db::SqliteServer;
use hoist::names::{Domain, Name, PackageName};
use hoist::render::{self, SiteConfig};
use serde_json::Value;
use services::MariaDb;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// `NAME.install` text with `NAME_update_N()` for each N, and
/// `NAME_update_last_removed()` when given.
fn install(name: &str, updates: &[u32], last_removed: Option<u32>) -> String {
    let mut php = String::from("<?php\n");
    for n in updates {
        php.push_str(&format!("function {name}_update_{n}(&$sandbox) {{\n}}\n"));
    }
    if let Some(n) = last_removed {
        php.push_str(&format!(
            "function {name}_update_last_removed() {{\n  return {n};\n}}\n"
        ));
    }
    php
}

/// A contrib module of a Drupal 7 tree.
struct D7Contrib<'a> {
    name: &'a str,
    version: &'a str,
    updates: &'a [u32],
    last_removed: Option<u32>,
}

/// A Drupal 7 codebase at `core` with system updates `system`, the
/// `standard` profile, `node`, and `contrib` under `sites/all/modules`.
fn d7_tree(dir: &Path, core: &str, system: &[u32], contrib: &[D7Contrib]) {
    write(
        dir,
        "includes/bootstrap.inc",
        &format!("<?php\ndefine('VERSION', '{core}');\n"),
    );
    let info = "version = VERSION\ncore = 7.x\n";
    for (m, ups) in [("system", system), ("node", &[7000u32, 7001][..])] {
        write(
            dir,
            &format!("modules/{m}/{m}.info"),
            &format!("name = {m}\n{info}"),
        );
        write(dir, &format!("modules/{m}/{m}.module"), "<?php\n");
        write(
            dir,
            &format!("modules/{m}/{m}.install"),
            &install(m, ups, None),
        );
    }
    write(
        dir,
        "profiles/standard/standard.info",
        &format!("name = Standard\n{info}dependencies[] = node\n"),
    );
    write(dir, "profiles/standard/standard.profile", "<?php\n");
    for c in contrib {
        let d = format!("sites/all/modules/{}", c.name);
        write(
            dir,
            &format!("{d}/{}.info", c.name),
            &format!(
                "name = {}\nversion = \"{}\"\ncore = 7.x\n",
                c.name, c.version
            ),
        );
        write(dir, &format!("{d}/{}.module", c.name), "<?php\n");
        write(
            dir,
            &format!("{d}/{}.install", c.name),
            &install(c.name, c.updates, c.last_removed),
        );
    }
}

/// A Drupal 8+ codebase at `core` with system updates `updates` and
/// system post-updates `posts`, `node`, and the `standard` profile.
fn d8_tree(dir: &Path, core: &str, updates: &[u32], posts: &[&str]) {
    write(
        dir,
        "core/lib/Drupal.php",
        &format!("<?php\nnamespace Drupal;\nclass Drupal {{\n  const VERSION = '{core}';\n}}\n"),
    );
    let info = "package: Core\nversion: VERSION\n";
    write(
        dir,
        "core/modules/system/system.info.yml",
        &format!("name: System\ntype: module\n{info}"),
    );
    write(
        dir,
        "core/modules/system/system.install",
        &install("system", updates, None),
    );
    let mut post = String::from("<?php\n");
    for p in posts {
        post.push_str(&format!("function system_post_update_{p}() {{\n}}\n"));
    }
    write(dir, "core/modules/system/system.post_update.php", &post);
    write(
        dir,
        "core/modules/node/node.info.yml",
        &format!("name: Node\ntype: module\n{info}"),
    );
    write(
        dir,
        "core/profiles/standard/standard.info.yml",
        &format!("name: Standard\ntype: profile\n{info}dependencies:\n  - node\n"),
    );
}

fn ser(s: &str) -> String {
    format!("s:{}:\"{s}\";", s.len())
}

/// A byte string as an SQL blob literal, which SQLite and MariaDB both read.
fn blob(bytes: &str) -> String {
    let hex: String = bytes.bytes().map(|b| format!("{b:02X}")).collect();
    format!("X'{hex}'")
}

/// SQL that fills an empty database with Drupal 7's `system` and
/// `variable` tables, with the column types Drupal 7 gives them on MySQL
/// (which SQLite reads by affinity): `rows` are (name, type, status,
/// schema_version, version).
fn d7_db(rows: &[(&str, &str, i64, i64, &str)]) -> String {
    let mut sql = String::from(
        "CREATE TABLE system (filename VARCHAR(255) NOT NULL DEFAULT '', name VARCHAR(255) NOT NULL DEFAULT '', type VARCHAR(12) NOT NULL DEFAULT '', owner VARCHAR(255) NOT NULL DEFAULT '', status INT NOT NULL DEFAULT 0, bootstrap INT NOT NULL DEFAULT 0, schema_version SMALLINT NOT NULL DEFAULT -1, weight INT NOT NULL DEFAULT 0, info BLOB, PRIMARY KEY (filename));
         CREATE TABLE variable (name VARCHAR(128) NOT NULL DEFAULT '', value LONGBLOB NOT NULL, PRIMARY KEY (name));\n",
    );
    for (name, kind, status, schema, version) in rows {
        let info = format!("a:1:{{s:7:\"version\";{}}}", ser(version));
        sql.push_str(&format!(
            "INSERT INTO system (filename, name, type, status, schema_version, info) VALUES ('{name}.x', '{name}', '{kind}', {status}, {schema}, {});\n",
            blob(&info)
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO variable (name, value) VALUES ('install_profile', {});\n",
        blob(&ser("standard"))
    ));
    sql
}

/// SQL that fills an empty database as Drupal 8+ keeps its extensions
/// (`config` and `key_value`, with Drupal's MySQL column types): `modules`
/// with their schemas, and the post-updates run.
fn d8_db(modules: &[(&str, u32)], posts: &[&str]) -> String {
    let mut sql = String::from(
        "CREATE TABLE config (collection VARCHAR(255) NOT NULL DEFAULT '', name VARCHAR(255) NOT NULL DEFAULT '', data LONGBLOB, PRIMARY KEY (collection, name));
         CREATE TABLE key_value (collection VARCHAR(128) NOT NULL DEFAULT '', name VARCHAR(128) NOT NULL DEFAULT '', value LONGBLOB NOT NULL, PRIMARY KEY (collection, name));\n",
    );
    let inner: String = modules
        .iter()
        .map(|(m, _)| format!("{}i:0;", ser(m)))
        .collect();
    let ce = format!(
        "a:2:{{s:6:\"module\";a:{}:{{{inner}}}s:7:\"profile\";{}}}",
        modules.len(),
        ser("standard")
    );
    sql.push_str(&format!(
        "INSERT INTO config (collection, name, data) VALUES ('', 'core.extension', {});\n",
        blob(&ce)
    ));
    for (m, n) in modules {
        sql.push_str(&format!(
            "INSERT INTO key_value (collection, name, value) VALUES ('system.schema', '{m}', {});\n",
            blob(&format!("i:{n};"))
        ));
    }
    let inner: String = posts
        .iter()
        .enumerate()
        .map(|(i, p)| format!("i:{i};{}", ser(p)))
        .collect();
    sql.push_str(&format!(
        "INSERT INTO key_value (collection, name, value) VALUES ('post_update', 'existing_updates', {});\n",
        blob(&format!("a:{}:{{{inner}}}", posts.len()))
    ));
    sql
}

/// An inventory, the codebases it names (outside it), and a local server
/// whose site databases are on SQLite, or on `maria` when given.
struct World<'a> {
    _tmp: tempfile::TempDir,
    inv: PathBuf,
    trees: PathBuf,
    host: PathBuf,
    maria: Option<&'a MariaDb>,
}

impl World<'static> {
    fn new() -> World<'static> {
        World::with_db(None)
    }
}

impl<'a> World<'a> {
    /// A world whose database server `default` is `maria` (else SQLite).
    fn with_db(maria: Option<&'a MariaDb>) -> World<'a> {
        let tmp = tempfile::tempdir().unwrap();
        let inv = tmp.path().join("inventory");
        let trees = tmp.path().join("trees");
        let host = tmp.path().join("host");
        for d in [&inv, &trees, &host] {
            std::fs::create_dir_all(d).unwrap();
        }
        let databases = match maria {
            None => String::new(),
            Some(m) => format!(
                "databases:\n  default:\n    kind: mysql\n    host: 127.0.0.1\n    port: {}\n    admin_user: {}\n    admin_password_file: {}\n",
                m.port,
                m.admin_user,
                m.admin_password_file.display()
            ),
        };
        write(
            &inv,
            "hoist.yaml",
            &format!(
                "servers:\n  local: {{ kind: local, root: {} }}\n{databases}",
                host.display()
            ),
        );
        World {
            _tmp: tmp,
            inv,
            trees,
            host,
            maria,
        }
    }

    /// A codebase directory outside the inventory, written by `make`.
    fn tree(&self, name: &str, make: impl FnOnce(&Path)) -> PathBuf {
        let d = self.trees.join(name);
        std::fs::create_dir_all(&d).unwrap();
        make(&d);
        d
    }

    /// Declares platform `name` with `tree` as its absolute source.
    fn platform(&self, name: &str, tree: &Path) {
        write(
            &self.inv,
            &format!("platforms/{name}.yaml"),
            &format!("source: {{ path: {} }}\nkind: drupal\n", tree.display()),
        );
    }

    /// Builds platform `name` from `tree` on the server, as a build would.
    fn build(&self, name: &str, tree: &Path) {
        let dir = self.host.join("platforms").join(name);
        std::fs::create_dir_all(self.host.join("platforms")).unwrap();
        hoist::fsutil::copy_tree(tree, &dir, false).unwrap();
        let hash = hoist::codebase::tree_hash(tree).unwrap();
        write(
            &dir,
            ".hoist-platform.yaml",
            &format!(
                "name: {name}\nsource: path {}\nsource_hash: {hash}\n",
                tree.display()
            ),
        );
    }

    /// Declares site `name` on `platform`.
    fn declare(&self, name: &str, platform: &str) {
        write(
            &self.inv,
            &format!("sites/{name}.yaml"),
            &format!("domain: {name}.example.com\nplatform: {platform}\n"),
        );
    }

    /// Installs site `name` on `platform` on the server by hand: settings,
    /// vhost and a database that `sql` gives Drupal's tables, made as hoist
    /// makes a site's database (one database and user of the same name).
    fn install(&self, name: &str, platform: &str, sql: &str) {
        let db = format!("{}_db", name.replace('-', "_"));
        let (password, driver, address) = match self.maria {
            None => {
                std::fs::create_dir_all(self.host.join("databases")).unwrap();
                let dbs = SqliteServer::new(self.host.join("databases"));
                let creds = dbs.create(&db).unwrap();
                let conn = rusqlite::Connection::open(
                    self.host.join("databases").join(format!("{db}.sqlite")),
                )
                .unwrap();
                conn.execute_batch(sql).unwrap();
                (creds.password, render::DbDriver::Sqlite, None)
            }
            Some(m) => {
                let password = format!("pw-{db}-{}", std::process::id());
                m.sql(&format!(
                    "CREATE DATABASE `{db}`; CREATE USER '{db}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
                     GRANT ALL ON `{db}`.* TO '{db}'@'127.0.0.1'; USE `{db}`; {sql}"
                ));
                (
                    render::Secret::new(password),
                    render::DbDriver::Mysql,
                    Some(format!("127.0.0.1:{}", m.port)),
                )
            }
        };
        let n = |s: &str| Name::new(s).unwrap();
        let domain = Domain::new(&format!("{name}.example.com")).unwrap();
        let cfg = SiteConfig {
            site: n(name),
            domain: domain.clone(),
            aliases: vec![],
            platform: n(platform),
            profile: PackageName::new("standard").unwrap(),
            enabled: true,
            db_server: n("default"),
            db_name: Some(db),
            db_driver: driver,
            db_address: address,
        };
        let sdir = self
            .host
            .join("platforms")
            .join(platform)
            .join("sites")
            .join(domain.as_str());
        write(
            &sdir,
            "settings.yaml",
            &render::settings_file(&cfg, &password),
        );
        write(
            &self.host,
            &format!("vhosts/{domain}.conf"),
            &render::vhost(&cfg),
        );
    }

    fn hoist(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .arg("-C")
            .arg(&self.inv)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `hoist plan` as text and as JSON, with its exit code.
    fn plan(&self, extra: &[&str]) -> (i32, String, Value) {
        let (code, text, err) = self.hoist(&[&["plan"], extra].concat());
        let mut json_args = vec!["plan", "--format", "json"];
        json_args.extend_from_slice(extra);
        let (jcode, json, jerr) = self.hoist(&json_args);
        assert_eq!(code, jcode, "{err}\n{jerr}");
        let v: Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}\n{jerr}"));
        (code, text, v)
    }
}

fn site<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no site {name} in {plan}"))
}

fn verdict<'a>(site: &'a Value, package: &str) -> &'a Value {
    site["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("no package {package} in {site}"))
}

fn errors(site: &Value) -> Vec<String> {
    site["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

/// Checks a plan against `schema/plan.schema.json`.
fn valid(plan: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/plan.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errs: Vec<String> = v.iter_errors(plan).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:?}");
}

const VIEWS_OLD: D7Contrib = D7Contrib {
    name: "views",
    version: "7.x-3.9",
    updates: &[7301],
    last_removed: None,
};

/// A Drupal 7 site on 7.98 (system at 7086, views 7.x-3.9 at 7301), and
/// the world it lives in.
fn d7_world() -> (World<'static>, PathBuf) {
    d7_world_on(None)
}

/// [`d7_world`] with its site database on `maria` when given.
fn d7_world_on(maria: Option<&MariaDb>) -> (World<'_>, PathBuf) {
    let w = World::with_db(maria);
    let old = w.tree("d7-old", |d| {
        d7_tree(d, "7.98", &[7085, 7086], &[VIEWS_OLD])
    });
    w.platform("d7-old", &old);
    w.build("d7-old", &old);
    w.install(
        "shop",
        "d7-old",
        &d7_db(&[
            ("system", "module", 1, 7086, "7.98"),
            ("node", "module", 1, 7001, "7.98"),
            ("standard", "module", 1, 0, "7.98"),
            ("views", "module", 1, 7301, "7.x-3.9"),
        ]),
    );
    (w, old)
}

#[test]
fn a_drupal_7_migrate_lists_pending_updates_and_is_not_blocked() {
    d7_migrate_plan(None);
}

/// The same Drupal 7 site read from a real MariaDB (tables made with
/// Drupal's MySQL column types): the same verdicts as on SQLite.
#[test]
fn a_drupal_7_site_on_mariadb_is_read_as_on_sqlite() {
    let Some(m) = MariaDb::start() else { return };
    d7_migrate_plan(Some(&m));
}

/// A Drupal 7 site on 7.98 planned onto 7.103: pending updates listed,
/// nothing blocked; its database on SQLite or `maria`.
fn d7_migrate_plan(maria: Option<&MariaDb>) {
    let (w, _) = d7_world_on(maria);
    let new = w.tree("d7-new", |d| {
        d7_tree(
            d,
            "7.103",
            &[7085, 7086, 7087, 7088],
            &[D7Contrib {
                version: "7.x-3.10",
                updates: &[7301, 7302],
                ..VIEWS_OLD
            }],
        )
    });
    w.platform("d7-new", &new);
    w.build("d7-new", &new);
    w.declare("shop", "d7-new");
    let (code, text, plan) = w.plan(&[]);
    valid(&plan);
    let s = site(&plan, "shop");
    assert_eq!(s["action"], "migrate");
    let sys = verdict(s, "system");
    assert_eq!(sys["verdict"], "upgrade");
    assert_eq!(sys["pending"], serde_json::json!([7087, 7088]));
    assert_eq!(sys["current_version"], "7.98");
    assert_eq!(sys["target_version"], "7.103");
    let views = verdict(s, "views");
    assert_eq!(views["pending"], serde_json::json!([7302]));
    assert_eq!(views["target_version"], "7.x-3.10");
    assert_eq!(verdict(s, "node")["verdict"], "same");
    // Nothing blocks the move: apply carries out Drupal 7 tasks.
    assert_eq!(s["blocked"], false);
    assert!(errors(s).is_empty(), "{:?}", errors(s));
    assert_eq!(code, 0, "a plan with changes and nothing blocked exits 0");
    assert!(
        text.contains("system: upgrade 7.98 -> 7.103, updates 7087, 7088"),
        "{text}"
    );
    assert!(!text.contains("needs drush"), "{text}");

    // The status table reads the site from its Drupal database too.
    let (scode, status, err) = w.hoist(&["status", "--live"]);
    assert!(
        status.contains("shop.example.com") && status.contains("d7-old"),
        "{scode} {status} {err}"
    );
}

#[test]
fn a_schema_downgrade_names_the_module_and_versions() {
    let (w, _) = d7_world();
    let older = w.tree("d7-older", |d| {
        d7_tree(
            d,
            "7.97",
            &[7085, 7086],
            &[D7Contrib {
                version: "7.x-3.8",
                updates: &[7300],
                ..VIEWS_OLD
            }],
        )
    });
    w.platform("d7-older", &older);
    w.declare("shop", "d7-older");
    let (code, text, plan) = w.plan(&[]);
    valid(&plan);
    let s = site(&plan, "shop");
    let views = verdict(s, "views");
    assert_eq!(views["verdict"], "schema-downgrade");
    assert_eq!(views["severity"], "error");
    let why = "views: schema downgrade 7.x-3.9 -> 7.x-3.8: the site has applied update 7301, the target has only 7300";
    assert!(errors(s).iter().any(|e| e == why), "{:?}", errors(s));
    assert!(text.contains(why), "{text}");
    assert_eq!(code, 1);
}

#[test]
fn updates_removed_and_a_missing_module() {
    let (w, _) = d7_world();
    // views 4.x removed every 7.x-3.x update up to 7399; node is kept, and
    // a module the site has is gone.
    let next = w.tree("d7-next", |d| {
        d7_tree(
            d,
            "7.98",
            &[7085, 7086],
            &[D7Contrib {
                version: "7.x-4.0",
                updates: &[7400],
                last_removed: Some(7399),
                ..VIEWS_OLD
            }],
        )
    });
    w.platform("d7-next", &next);
    w.build("d7-next", &next);
    w.install(
        "blog",
        "d7-old",
        &d7_db(&[
            ("system", "module", 1, 7086, "7.98"),
            ("standard", "module", 1, 0, "7.98"),
            ("forum", "module", 1, 7012, "7.98"),
        ]),
    );
    w.declare("shop", "d7-next");
    w.declare("blog", "d7-next");
    let (_, text, plan) = w.plan(&[]);
    valid(&plan);
    let shop = site(&plan, "shop");
    let views = verdict(shop, "views");
    assert_eq!(views["verdict"], "updates-removed");
    assert_eq!(views["last_removed"], 7399);
    assert!(
        text.contains("views: updates removed: the site is at schema 7301"),
        "{text}"
    );
    let blog = site(&plan, "blog");
    let forum = verdict(blog, "forum");
    assert_eq!(forum["verdict"], "missing");
    assert_eq!(forum["severity"], "warning");
    assert!(blog["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w == "forum: missing on the target; it will be disabled"));
    // A missing module is a warning, not an error (under --strict, one).
    assert!(errors(blog).is_empty(), "{:?}", errors(blog));
}

#[test]
fn drupal_7_onto_drupal_10_is_not_a_migration() {
    let (w, _) = d7_world();
    let d10 = w.tree("d10", |d| d8_tree(d, "10.3.0", &[10100], &[]));
    w.platform("d10", &d10);
    w.declare("shop", "d10");
    let (code, text, plan) = w.plan(&[]);
    valid(&plan);
    let s = site(&plan, "shop");
    let why = "not a migration: the site runs Drupal 7.98 and the target is Drupal 10.3.0; a change of core major version is an upgrade of its own";
    assert!(errors(s).iter().any(|e| e == why), "{:?}", errors(s));
    assert!(s["packages"].as_array().unwrap().is_empty());
    assert!(text.contains(why), "{text}");
    // Building a Drupal 10 platform is refused with its own reason.
    let p = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "d10")
        .unwrap();
    assert_eq!(p["action"], "build");
    assert_eq!(p["errors"], serde_json::json!([hoist::plan::DRUPAL8_APPLY]));
    assert_eq!(code, 1);
}

#[test]
fn drupal_10_post_updates_pending_and_unknown() {
    d10_post_updates(None);
}

/// The same Drupal 10 sites read from a real MariaDB: `core.extension`,
/// the schemas and the post-updates run, as on SQLite.
#[test]
fn drupal_10_sites_on_mariadb_are_read_as_on_sqlite() {
    let Some(m) = MariaDb::start() else { return };
    d10_post_updates(Some(&m));
}

/// Drupal 10 sites with pending and unknown post-updates; their databases
/// on SQLite or `maria`.
fn d10_post_updates(maria: Option<&MariaDb>) {
    let w = World::with_db(maria);
    let a = w.tree("d10a", |d| d8_tree(d, "10.2.0", &[10100], &["one"]));
    let b = w.tree("d10b", |d| {
        d8_tree(d, "10.3.0", &[10100, 10101], &["one", "two"])
    });
    w.platform("d10a", &a);
    w.build("d10a", &a);
    w.platform("d10b", &b);
    w.build("d10b", &b);
    let site_db = |posts: &[&str]| {
        d8_db(
            &[("system", 10100), ("node", 8000), ("standard", 8000)],
            posts,
        )
    };
    w.install("news", "d10a", &site_db(&["system_post_update_one"]));
    // A site that ran a post-update neither platform knows.
    w.install(
        "odd",
        "d10a",
        &site_db(&["system_post_update_one", "system_post_update_future"]),
    );
    w.declare("news", "d10b");
    w.declare("odd", "d10b");
    let (_, text, plan) = w.plan(&[]);
    valid(&plan);
    let news = site(&plan, "news");
    let sys = verdict(news, "system");
    assert_eq!(sys["verdict"], "upgrade");
    assert_eq!(sys["pending"], serde_json::json!([10101]));
    assert_eq!(
        sys["pending_post_updates"],
        serde_json::json!(["system_post_update_two"])
    );
    assert_eq!(verdict(news, "node")["verdict"], "same");
    assert_eq!(errors(news), vec![hoist::plan::DRUPAL8_APPLY.to_string()]);
    assert!(
        text.contains(
            "system: upgrade 10.2.0 -> 10.3.0, updates 10101; post-updates system_post_update_two"
        ),
        "{text}"
    );
    let odd = site(&plan, "odd");
    let sys = verdict(odd, "system");
    assert_eq!(sys["verdict"], "schema-downgrade");
    assert_eq!(
        sys["unknown_post_updates"],
        serde_json::json!(["system_post_update_future"])
    );
}

#[test]
fn absolute_sources_are_for_drupal_and_never_read_offline() {
    let (w, old) = d7_world();
    w.declare("shop", "d7-old");
    let (code, _, err) = w.hoist(&["validate"]);
    assert_eq!(code, 0, "{err}");
    // An offline plan reads only the inventory: the platform is unknown
    // there (no status files yet), and says why.
    let (_, _, plan) = w.plan(&["--offline"]);
    let p = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "d7-old")
        .unwrap();
    let all = p["errors"].to_string() + &p["warnings"].to_string();
    assert!(
        all.contains("an offline plan reads only sources inside the inventory"),
        "{p}"
    );
    // An embedded codebase outside the inventory is refused, where written.
    let emb = w.tree("emb", |d| {
        write(
            d,
            "packages/standard/package.yaml",
            "name: standard\nkind: profile\nversion: 1.0.0\n",
        )
    });
    write(
        &w.inv,
        "platforms/emb.yaml",
        &format!("source: {{ path: {} }}\n", emb.display()),
    );
    let (code, _, err) = w.hoist(&["validate"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("platforms/emb.yaml:1:")
            && err.contains("only a drupal platform's source may be an absolute path"),
        "{err}"
    );
    // A symlink as the source is refused too.
    std::fs::remove_file(w.inv.join("platforms/emb.yaml")).unwrap();
    let link = w.trees.join("link");
    std::os::unix::fs::symlink(&old, &link).unwrap();
    w.platform("linked", &link);
    let (code, _, err) = w.hoist(&["validate"]);
    assert_eq!(code, 1);
    assert!(err.contains("is a symlink"), "{err}");
}

#[test]
fn a_status_round_trip_keeps_drupal_facts_for_offline_plans() {
    let w = World::new();
    let a = w.tree("d10a", |d| d8_tree(d, "10.2.0", &[10100], &["one"]));
    let b = w.tree("d10b", |d| {
        d8_tree(d, "10.3.0", &[10100, 10101], &["one", "two"])
    });
    w.platform("d10a", &a);
    w.build("d10a", &a);
    w.platform("d10b", &b);
    w.build("d10b", &b);
    w.install(
        "news",
        "d10a",
        &d8_db(
            &[("system", 10100), ("node", 8000), ("standard", 8000)],
            &["system_post_update_one"],
        ),
    );
    w.declare("news", "d10b");
    let (live_code, _, live) = w.plan(&[]);
    // `hoist status --write` is not a command: status files come from an
    // apply or watch. Write them through the library, as watch does.
    let inv = hoist::inventory::load(&w.inv).unwrap();
    let servers = hoist::server::Servers::from_inventory(&inv, None);
    hoist::status::record(&inv, &servers, &hoist::scope::Scope::All).unwrap();
    let (off_code, _, off) = w.plan(&["--offline"]);
    assert_eq!(live_code, off_code);
    assert_eq!(
        site(&live, "news")["packages"],
        site(&off, "news")["packages"]
    );
    assert_eq!(
        verdict(site(&off, "news"), "system")["pending_post_updates"],
        serde_json::json!(["system_post_update_two"])
    );
}

// ---- real Drupal ------------------------------------------------------------

/// A directory the Drupal tree variables name ([`drupal_trees`], the one
/// place that reads them).
fn env_dir(var: &str) -> PathBuf {
    match var {
        "HOIST_DRUPAL_CORE" => drupal_trees::drupal_core(),
        _ => drupal_trees::drupal7_roots(),
    }
}

/// The schema Drupal 7 `tree` installs `module` at, as hoist scans it.
fn d7_schema(tree: &Path, module: &str) -> u32 {
    let d = hoist::drupal::DrupalCodebase::scan(tree, tree, &Default::default()).unwrap();
    let r = d.resolve(Some("standard"));
    r.extensions[module]
        .schema(hoist::drupal::Generation::Drupal7)
        .unwrap()
}

#[test]
#[ignore = "needs real Drupal trees: set HOIST_DRUPAL7_ROOTS and HOIST_DRUPAL_CORE"]
fn real_drupal_7_migrate_plan() {
    // HOIST_DRUPAL7_ROOTS holds two Drupal 7 release trees, named by
    // version: the site lives on the older and moves to the newer.
    let roots = env_dir("HOIST_DRUPAL7_ROOTS");
    let mut rel: Vec<(hoist::drupal::DrupalVersion, PathBuf)> = std::fs::read_dir(&roots)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                hoist::drupal::DrupalVersion::parse(&e.file_name().to_string_lossy()),
                e.path(),
            )
        })
        .collect();
    rel.sort();
    assert!(
        rel.len() >= 2,
        "need two releases under {}",
        roots.display()
    );
    let (ov, old) = rel[0].clone();
    let (nv, new) = rel[rel.len() - 1].clone();
    let w = World::new();
    w.platform("old", &old);
    w.build("old", &old);
    w.platform("new", &new);
    w.build("new", &new);
    let (s_old, s_new) = (d7_schema(&old, "system"), d7_schema(&new, "system"));
    let (ov, nv) = (ov.to_string(), nv.to_string());
    w.install(
        "shop",
        "old",
        &d7_db(&[
            ("system", "module", 1, s_old as i64, &ov),
            ("node", "module", 1, d7_schema(&old, "node") as i64, &ov),
            ("user", "module", 1, d7_schema(&old, "user") as i64, &ov),
            ("standard", "module", 1, 0, &ov),
            ("bartik", "theme", 1, -1, &ov),
        ]),
    );
    w.declare("shop", "new");
    let started = std::time::Instant::now();
    let (_, text, plan) = w.plan(&[]);
    eprintln!("{text}\nplanned in {:?}", started.elapsed());
    valid(&plan);
    let s = site(&plan, "shop");
    assert_eq!(s["action"], "migrate");
    let sys = verdict(s, "system");
    if s_new > s_old {
        assert_eq!(sys["verdict"], "upgrade");
        let pending: Vec<u64> = sys["pending"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect();
        assert!(pending
            .iter()
            .all(|n| *n > s_old as u64 && *n <= s_new as u64));
        assert_eq!(*pending.last().unwrap(), s_new as u64);
    }
    assert_eq!(sys["current_version"], ov.as_str());
    assert_eq!(sys["target_version"], nv.as_str());
    assert_eq!(verdict(s, "bartik")["verdict"], "same");
    assert!(errors(s).is_empty(), "{:?}", errors(s));
}

#[test]
#[ignore = "needs real Drupal trees: set HOIST_DRUPAL7_ROOTS and HOIST_DRUPAL_CORE"]
fn real_drupal_core_plan() {
    // HOIST_DRUPAL_CORE is a `core/` directory; the tree around it is the
    // platform. A Drupal 8+ site at the oldest schemas the core still
    // accepts sees every update pending; a Drupal 7 site is refused.
    let core = env_dir("HOIST_DRUPAL_CORE");
    let root = core.parent().unwrap().to_path_buf();
    let d = hoist::drupal::DrupalCodebase::scan(&root, &root, &Default::default()).unwrap();
    let major = d.core.major;
    let r = d.resolve(Some("standard"));
    let system = r.extensions["system"];
    let floor = system.last_removed.unwrap_or(8000);
    let w = World::new();
    w.platform("core", &root);
    w.build("core", &root);
    w.install(
        "news",
        "core",
        &d8_db(
            &[("system", floor), ("node", 8000), ("standard", 8000)],
            &[],
        ),
    );
    w.declare("news", "core");
    let d7 = w.tree("d7", |d| d7_tree(d, "7.103", &[7088], &[]));
    w.platform("d7", &d7);
    w.build("d7", &d7);
    w.install(
        "old",
        "d7",
        &d7_db(&[
            ("system", "module", 1, 7088, "7.103"),
            ("standard", "module", 1, 0, "7.103"),
        ]),
    );
    w.declare("old", "core");
    let started = std::time::Instant::now();
    let (_, text, plan) = w.plan(&[]);
    eprintln!("planned in {:?}", started.elapsed());
    valid(&plan);
    let news = site(&plan, "news");
    assert_eq!(news["action"], "update");
    let sys = verdict(news, "system");
    assert_eq!(sys["verdict"], "upgrade", "{text}");
    assert_eq!(
        sys["pending"].as_array().unwrap().len(),
        system.updates.iter().filter(|n| **n > floor).count()
    );
    assert_eq!(
        sys["pending_post_updates"].as_array().unwrap().len(),
        system.post_updates.len()
    );
    assert!(errors(news).contains(&hoist::plan::DRUPAL8_APPLY.to_string()));
    let old = site(&plan, "old");
    assert!(
        errors(old).iter().any(
            |e| e.starts_with("not a migration: the site runs Drupal 7.103")
                && e.contains(&format!("Drupal {major}."))
        ),
        "{:?}",
        errors(old)
    );
}
