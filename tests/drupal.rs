//! The `drupal` application kind's pure half on real files and real
//! SQLite databases: small Drupal 7 and Drupal 8+ shaped codebases written
//! here, scanned as Drupal would find their extensions; site databases of
//! both shapes read back into site states; and the compatibility verdicts
//! between them. The `#[ignore]`d tests at the end scan real Drupal trees.

mod drupal_trees;
use std::path::{Path, PathBuf};

use hoist::compat::Severity;
use hoist::drupal::scan::{Generation, Origin};
use hoist::drupal::state::read_sqlite;
use hoist::drupal::{
    compare, detect, version_order, DrupalCodebase, DrupalVerdict, ExtensionKind, ScanOptions,
    SiteState,
};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A Drupal 7 module: `.module`, `.info` and, with updates, `.install`.
fn d7_module(root: &Path, dir: &str, name: &str, info: &str, updates: &[u32]) {
    write(root, &format!("{dir}/{name}.module"), "<?php\n");
    write(root, &format!("{dir}/{name}.info"), info);
    if !updates.is_empty() {
        let mut php = String::from("<?php\n/**\n * @file\n */\n");
        for n in updates {
            php.push_str(&format!(
                "\n/**\n * Update {n}.\n */\nfunction {name}_update_{n}() {{\n}}\n"
            ));
        }
        write(root, &format!("{dir}/{name}.install"), &php);
    }
}

/// A Drupal 7 codebase at core `version` with core system updates
/// `system_updates`, `views` contrib at `views_version` with updates
/// `views_updates`, and the odd cases Drupal's discovery meets.
fn d7_tree(
    version: &str,
    system_updates: &[u32],
    views_version: &str,
    views_updates: &[u32],
) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "includes/bootstrap.inc",
        &format!(
            "<?php\n/**\n * The current system version.\n */\ndefine('VERSION', '{version}');\n"
        ),
    );
    let core = "package = Core\nversion = VERSION\ncore = 7.x\n";
    d7_module(
        r,
        "modules/system",
        "system",
        &format!("name = System\n{core}required = TRUE\n"),
        system_updates,
    );
    // A commented-out update is not an update.
    let install = std::fs::read_to_string(r.join("modules/system/system.install"))
        .unwrap_or_else(|_| "<?php\n".into());
    write(
        r,
        "modules/system/system.install",
        &format!("{install}\n/*\nfunction system_update_7999() {{}}\n*/\n// function system_update_7998() {{}}\nfunction system_update_last_removed() {{\n  return 6055;\n}}\n"),
    );
    d7_module(
        r,
        "modules/node",
        "node",
        &format!("name = Node\n{core}dependencies[] = system\n"),
        &[7000, 7001],
    );
    d7_module(
        r,
        "modules/block",
        "block",
        &format!("name = Block\n{core}"),
        &[],
    );
    // Test modules are found in Drupal 7 (no `tests` skipping), hidden.
    d7_module(
        r,
        "modules/simpletest/tests",
        "hidden_test",
        &format!("name = Hidden test\n{core}hidden = TRUE\n"),
        &[],
    );
    // An info file without a module file is not a module in Drupal 7.
    write(
        r,
        "modules/block/lonely/lonely.info",
        "name = Lonely\ncore = 7.x\n",
    );
    // Skipped directories.
    d7_module(
        r,
        "modules/.git/gitmod",
        "gitmod",
        "name = Git\ncore = 7.x\n",
        &[],
    );
    d7_module(
        r,
        "modules/CVS/cvsmod",
        "cvsmod",
        "name = CVS\ncore = 7.x\n",
        &[],
    );
    write(
        r,
        "themes/bartik/bartik.info",
        &format!("name = Bartik\n{core}"),
    );
    // A theme's info file directly in `themes/` is below min_depth.
    write(r, "themes/flat.info", "name = Flat\ncore = 7.x\n");
    write(
        r,
        "themes/engines/phptemplate/phptemplate.engine",
        "<?php\n",
    );
    // Profiles: standard (hidden by default), and one with its own module.
    write(r, "profiles/standard/standard.profile", "<?php\n");
    write(
        r,
        "profiles/standard/standard.info",
        &format!("name = Standard\n{core}dependencies[] = block\ndependencies[] = node\n"),
    );
    write(
        r,
        "profiles/standard/standard.install",
        "<?php\nfunction standard_install() {\n}\n",
    );
    write(r, "profiles/shop/shop.profile", "<?php\n");
    write(
        r,
        "profiles/shop/shop.info",
        &format!("name = Shop\n{core}hidden = FALSE\n"),
    );
    d7_module(
        r,
        "profiles/shop/modules/cart",
        "cart",
        "name = Cart\ncore = 7.x\nversion = 7.x-1.0\n",
        &[7100],
    );
    // Contrib under sites/all, including one that overrides a core module
    // and one for another core that must not.
    d7_module(
        r,
        "sites/all/modules/contrib/views",
        "views",
        &format!("name = Views\ncore = 7.x\nversion = \"{views_version}\"\ndependencies[] = ctools (>=7.x-1.2)\n\n; Information added by Drupal.org packaging script\nproject = \"views\"\n"),
        views_updates,
    );
    d7_module(
        r,
        "sites/all/modules/contrib/ctools",
        "ctools",
        "name = Chaos tools\ncore = 7.x\nversion = 7.x-1.20\n",
        &[7001],
    );
    d7_module(
        r,
        "sites/all/modules/patched/block",
        "block",
        "name = Block (patched)\ncore = 7.x\nversion = 7.x-1.0\n",
        &[7005],
    );
    d7_module(
        r,
        "sites/all/modules/d6/node",
        "node",
        "name = Node for 6\ncore = 6.x\n",
        &[6001],
    );
    // Two copies in one search directory: the first (by name) wins in 7.
    d7_module(
        r,
        "sites/all/modules/a/dup",
        "dup",
        "name = Dup A\ncore = 7.x\nversion = 7.x-1.0\n",
        &[],
    );
    d7_module(
        r,
        "sites/all/modules/b/dup",
        "dup",
        "name = Dup B\ncore = 7.x\nversion = 7.x-2.0\n",
        &[],
    );
    t
}

fn scan(root: &Path) -> DrupalCodebase {
    DrupalCodebase::scan(root, Path::new("platform"), &ScanOptions::default())
        .unwrap_or_else(|d| panic!("{d:?}"))
}

#[test]
fn drupal_7_scan_finds_extensions_as_drupal_does() {
    let t = d7_tree("7.98", &[7000, 7001, 7084], "7.x-3.24", &[7301]);
    let core = detect(t.path(), Path::new("p")).unwrap().unwrap();
    assert_eq!(core.generation, Generation::Drupal7);
    assert_eq!((core.major, core.version.as_str()), (7, "7.98"));

    let cb = scan(t.path());
    let r = cb.resolve(Some("standard"));
    let names: Vec<&str> = r.extensions.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "bartik",
            "block",
            "ctools",
            "dup",
            "hidden_test",
            "node",
            "shop",
            "standard",
            "system",
            "views"
        ],
        "cart belongs to the shop profile; lonely, gitmod, cvsmod and flat are not extensions"
    );
    let e = |n: &str| r.extensions[n];
    assert_eq!(e("system").kind, ExtensionKind::Module);
    assert_eq!(e("bartik").kind, ExtensionKind::Theme);
    assert_eq!(e("standard").kind, ExtensionKind::Profile);
    assert!(
        e("standard").hidden,
        "a Drupal 7 profile is hidden by default"
    );
    assert!(!e("shop").hidden, "unless its info file says otherwise");
    assert!(e("hidden_test").hidden);
    assert_eq!(e("system").version.as_ref().unwrap().as_str(), "7.98");
    assert_eq!(e("system").updates, [7000, 7001, 7084]);
    assert_eq!(e("system").last_removed, Some(6055));
    assert_eq!(e("system").schema(Generation::Drupal7), Some(7084));
    assert_eq!(e("bartik").schema(Generation::Drupal7), None);
    assert_eq!(e("standard").schema(Generation::Drupal7), Some(0));
    assert_eq!(e("views").dependencies, ["ctools"]);
    assert_eq!(e("views").version.as_ref().unwrap().as_str(), "7.x-3.24");
    assert_eq!(e("standard").dependencies, ["block", "node"]);
    // sites/all overrides core; a copy for Drupal 6 does not.
    assert_eq!(e("block").path, "sites/all/modules/patched/block");
    assert_eq!(e("block").origin, Origin::SitesAll);
    assert_eq!(e("block").updates, [7005]);
    assert_eq!(e("node").path, "modules/node");
    assert_eq!(e("dup").path, "sites/all/modules/a/dup");
    let lost: Vec<(&str, &str)> = r
        .overridden
        .iter()
        .map(|o| (o.name.as_str(), o.lost.as_str()))
        .collect();
    assert!(lost.contains(&("block", "modules/block")), "{lost:?}");
    assert!(
        lost.contains(&("node", "sites/all/modules/d6/node")),
        "{lost:?}"
    );
    assert!(r.conflicts.is_empty());

    // The shop profile's site sees cart.
    let shop = cb.resolve(Some("shop"));
    assert_eq!(
        shop.extensions["cart"].origin,
        Origin::Profile("shop".into())
    );
    assert_eq!(
        shop.extensions["cart"].schema(Generation::Drupal7),
        Some(7100)
    );
}

#[test]
fn a_bad_info_file_is_an_error_naming_its_line() {
    let t = d7_tree("7.98", &[7000], "7.x-3.24", &[]);
    write(
        t.path(),
        "sites/all/modules/contrib/views/views.info",
        "name = Views\ncore = 7.x\n[broken\n",
    );
    let d =
        DrupalCodebase::scan(t.path(), Path::new("platform"), &ScanOptions::default()).unwrap_err();
    let all: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        all,
        ["platform/sites/all/modules/contrib/views/views.info:3:1: an unbalanced `[` in a key"]
    );
}

#[test]
fn an_unreadable_last_removed_blocks_only_sites_using_it() {
    let t = tempfile::tempdir().unwrap();
    let site = d7_state(t.path(), 7301);
    let current = scan(d7_tree("7.98", &[7000, 7001, 7084], "7.x-3.24", &[7301]).path());
    let target = d7_tree("7.98", &[7000, 7001, 7084], "7.x-3.24", &[7301]);
    write(
        target.path(),
        "sites/all/modules/contrib/ctools/ctools.install",
        "<?php\nfunction ctools_update_last_removed() { return FOO; }\nfunction ctools_update_7001() {}\n",
    );
    let target = scan(target.path());
    let c = compare(&site, Some(&current), &target);
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    assert!(
        c.errors[0].contains("ctools: cannot tell which updates the target removed: platform/sites/all/modules/contrib/ctools/ctools.install:2:10: cannot read what ctools_update_last_removed() returns"),
        "{:?}",
        c.errors
    );
    // Disabled, it blocks nothing.
    let mut off = site.clone();
    off.extensions.get_mut("ctools").unwrap().enabled = false;
    assert!(compare(&off, Some(&current), &target).errors.is_empty());
}

#[test]
fn detection_tells_drupal_from_other_trees() {
    let t = tempfile::tempdir().unwrap();
    assert_eq!(detect(t.path(), Path::new("x")).unwrap(), None);
    write(
        t.path(),
        "includes/bootstrap.inc",
        "<?php\ndefine('VERSION', '6.38');\n",
    );
    let e = detect(t.path(), Path::new("x")).unwrap_err();
    assert!(
        e.to_string().contains("Drupal 6.38 is not supported"),
        "{e}"
    );
    write(t.path(), "includes/bootstrap.inc", "<?php\n// no version\n");
    assert!(detect(t.path(), Path::new("x")).is_err());
    let d = DrupalCodebase::scan(
        &t.path().join("nothing"),
        Path::new("x"),
        &ScanOptions::default(),
    )
    .unwrap_err();
    assert!(d[0].to_string().contains("not a Drupal codebase"), "{d:?}");
}

/// A Drupal 8+ module: its `.info.yml` and optional `.install` and
/// `.post_update.php` text.
fn d8_ext(root: &Path, dir: &str, name: &str, info: &str, install: &str, post: &str) {
    write(root, &format!("{dir}/{name}.info.yml"), info);
    if !install.is_empty() {
        write(
            root,
            &format!("{dir}/{name}.install"),
            &format!("<?php\n{install}"),
        );
    }
    if !post.is_empty() {
        write(
            root,
            &format!("{dir}/{name}.post_update.php"),
            &format!("<?php\n{post}"),
        );
    }
}

/// A Drupal 8+ codebase at core `version`, with system updates `updates`,
/// system post-updates `posts` and removed post-updates `removed`.
fn d8_tree(
    version: &str,
    updates: &[u32],
    posts: &[&str],
    removed: &[&str],
    last_removed: u32,
) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "core/lib/Drupal.php",
        &format!("<?php\nnamespace Drupal;\nclass Drupal {{\n  const VERSION = '{version}';\n  const CORE_MINIMUM_SCHEMA_VERSION = 8000;\n}}\n"),
    );
    let mut install = String::new();
    for n in updates {
        install.push_str(&format!("function system_update_{n}(&$sandbox) {{\n}}\n"));
    }
    install.push_str(&format!(
        "function system_update_last_removed(): int {{\n  return {last_removed};\n}}\n"
    ));
    let mut post = String::new();
    for p in posts {
        post.push_str(&format!("function system_post_update_{p}() {{\n}}\n"));
    }
    post.push_str("function system_removed_post_updates(): array {\n  return [\n");
    for p in removed {
        post.push_str(&format!("    'system_post_update_{p}' => '10.0.0',\n"));
    }
    post.push_str("  ];\n}\n");
    let core = "package: Core\nversion: VERSION\n";
    d8_ext(
        r,
        "core/modules/system",
        "system",
        &format!("name: System\ntype: module\n{core}"),
        &install,
        &post,
    );
    d8_ext(
        r,
        "core/modules/node",
        "node",
        &format!("name: Node\ntype: module\n{core}dependencies:\n  - drupal:text\n"),
        "",
        "",
    );
    d8_ext(
        r,
        "core/modules/text",
        "text",
        &format!("name: Text\ntype: module\n{core}"),
        "",
        "",
    );
    // The core config module is found; other config directories are skipped.
    d8_ext(
        r,
        "core/modules/config",
        "config",
        &format!("name: Config\ntype: module\n{core}"),
        "",
        "",
    );
    d8_ext(
        r,
        "core/modules/text/config/inner",
        "inner",
        "name: Inner\ntype: module\n",
        "",
        "",
    );
    // Test extensions are skipped at run time.
    d8_ext(
        r,
        "core/modules/system/tests/modules/system_test",
        "system_test",
        "name: T\ntype: module\npackage: Testing\nhidden: true\n",
        "",
        "",
    );
    d8_ext(
        r,
        "core/modules/system/src/Plugin",
        "in_src",
        "name: In src\ntype: module\n",
        "",
        "",
    );
    d8_ext(
        r,
        "core/themes/olivero",
        "olivero",
        &format!("name: Olivero\ntype: theme\n{core}"),
        "",
        "",
    );
    d8_ext(
        r,
        "core/themes/engines/twig",
        "twig",
        "name: Twig\ntype: theme_engine\n",
        "",
        "",
    );
    d8_ext(
        r,
        "core/profiles/standard",
        "standard",
        &format!("name: Standard\ntype: profile\n{core}dependencies:\n  - node\n"),
        "function standard_install() {\n}\n",
        "",
    );
    d8_ext(
        r,
        "core/profiles/minimal",
        "minimal",
        &format!("name: Minimal\ntype: profile\n{core}hidden: false\n"),
        "",
        "",
    );
    d8_ext(
        r,
        "core/profiles/standard/modules/std_helper",
        "std_helper",
        "name: Helper\ntype: module\nhidden: true\n",
        "",
        "",
    );
    // Contrib in the root, overriding a core module, and in sites/all.
    d8_ext(r, "modules/contrib/token", "token", "name: Token\ntype: module\ncore_version_requirement: ^10 || ^11\nversion: '8.x-1.11'\nproject: token\n", "function token_update_8001() {}\n", "");
    d8_ext(
        r,
        "modules/custom/node",
        "node",
        "name: My node\ntype: module\nversion: 2.0.0\n",
        "",
        "",
    );
    d8_ext(
        r,
        "sites/all/modules/legacy",
        "legacy",
        "name: Legacy\ntype: module\nversion: 2.1.3\n",
        "",
        "",
    );
    // Not entered at the root: only profiles, modules and themes are.
    d8_ext(
        r,
        "vendor/pkg",
        "vendored",
        "name: V\ntype: module\n",
        "",
        "",
    );
    t
}

#[test]
fn drupal_8_scan_finds_extensions_as_drupal_does() {
    let t = d8_tree(
        "10.1.0",
        &[10100, 10101],
        &["a_thing", "b_thing"],
        &["old_thing"],
        8805,
    );
    let cb = scan(t.path());
    assert_eq!(cb.core.generation, Generation::Drupal8Plus);
    assert_eq!(cb.core.major, 10);
    let r = cb.resolve(Some("standard"));
    let names: Vec<&str> = r.extensions.keys().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "config",
            "legacy",
            "minimal",
            "node",
            "olivero",
            "standard",
            "std_helper",
            "system",
            "text",
            "token"
        ]
    );
    let e = |n: &str| r.extensions[n];
    assert_eq!(e("system").updates, [10100, 10101]);
    assert_eq!(e("system").last_removed, Some(8805));
    assert_eq!(e("system").schema(Generation::Drupal8Plus), Some(10101));
    assert_eq!(e("text").schema(Generation::Drupal8Plus), Some(8000));
    assert_eq!(e("token").schema(Generation::Drupal8Plus), Some(8001));
    assert_eq!(
        e("system").post_updates,
        ["system_post_update_a_thing", "system_post_update_b_thing"]
    );
    assert_eq!(
        e("system").removed_post_updates,
        ["system_post_update_old_thing"]
    );
    assert_eq!(e("system").version.as_ref().unwrap().as_str(), "10.1.0");
    assert_eq!(e("token").version.as_ref().unwrap().as_str(), "8.x-1.11");
    assert_eq!(e("token").core.as_deref(), Some("^10 || ^11"));
    assert_eq!(e("olivero").kind, ExtensionKind::Theme);
    assert_eq!(e("minimal").kind, ExtensionKind::Profile);
    assert_eq!(e("std_helper").origin, Origin::Profile("standard".into()));
    assert!(e("std_helper").hidden);
    // The root overrides core.
    assert_eq!(e("node").path, "modules/custom/node");
    assert_eq!(e("node").origin, Origin::Root);
    assert_eq!(e("legacy").origin, Origin::SitesAll);
    // A site on minimal does not see standard's module.
    assert!(!cb
        .resolve(Some("minimal"))
        .extensions
        .contains_key("std_helper"));

    // Tests are found only when asked for.
    let with_tests = DrupalCodebase::scan(
        t.path(),
        Path::new("p"),
        &ScanOptions {
            include_tests: true,
            ..ScanOptions::default()
        },
    )
    .unwrap();
    assert!(with_tests
        .resolve(None)
        .extensions
        .contains_key("system_test"));
}

#[test]
fn versions_order_as_drupal_orders_them() {
    use std::cmp::Ordering::Less;
    for (a, b) in [
        ("7.x-1.9", "7.x-1.10"),
        ("8.x-2.0-beta1", "8.x-2.0"),
        ("7.x-1.10", "7.x-1.x-dev"),
        ("2.1.3", "2.1.10"),
        ("7.98", "7.103"),
        ("7.103", "10.1.0"),
        ("11.0.0-rc1", "11.0.0"),
    ] {
        assert_eq!(version_order(a, b), Less, "{a} < {b}");
    }
}

// ---- site databases -------------------------------------------------------

fn ser(s: &str) -> String {
    format!("s:{}:\"{s}\";", s.len())
}

/// A Drupal 7 site database: `system` and `variable` as Drupal 7 makes
/// them (serialized values in BLOBs).
fn d7_site(dir: &Path, profile: &str, rows: &[(&str, &str, i64, i64, &str)]) -> PathBuf {
    let path = dir.join("d7.sqlite");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE system (filename TEXT NOT NULL DEFAULT '', name TEXT NOT NULL DEFAULT '', type TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT '', status INTEGER NOT NULL DEFAULT 0, bootstrap INTEGER NOT NULL DEFAULT 0, schema_version INTEGER NOT NULL DEFAULT -1, weight INTEGER NOT NULL DEFAULT 0, info BLOB, PRIMARY KEY (filename));
         CREATE TABLE variable (name TEXT NOT NULL DEFAULT '', value BLOB NOT NULL, PRIMARY KEY (name));",
    )
    .unwrap();
    for (name, kind, status, schema, version) in rows {
        let info = format!(
            "a:2:{{s:4:\"name\";{}s:7:\"version\";{}}}",
            ser(name),
            ser(version)
        );
        c.execute(
            "INSERT INTO system (filename, name, type, status, schema_version, info) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![format!("{name}.x"), name, kind, status, schema, info.into_bytes()],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO variable (name, value) VALUES ('install_profile', ?1)",
        [ser(profile).into_bytes()],
    )
    .unwrap();
    path
}

fn open(p: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(p).unwrap()
}

/// The state of a Drupal 7 site on the 7.98 fixture, `standard` profile.
fn d7_state(dir: &Path, views_schema: i64) -> SiteState {
    let db = d7_site(
        dir,
        "standard",
        &[
            ("system", "module", 1, 7084, "7.98"),
            ("node", "module", 1, 7001, "7.98"),
            ("block", "module", 1, 7005, "7.x-1.0"),
            ("standard", "module", 1, 0, "7.98"),
            ("views", "module", 1, views_schema, "7.x-3.24"),
            ("ctools", "module", 1, 7001, "7.x-1.20"),
            ("dup", "module", 1, 0, "7.x-1.0"),
            ("hidden_test", "module", 1, 0, "7.98"),
            ("poll", "module", 0, 7004, "7.98"),
            ("never", "module", 0, -1, "7.98"),
            ("bartik", "theme", 1, -1, "7.98"),
            ("garland", "theme", 0, -1, "7.98"),
        ],
    );
    read_sqlite(&open(&db), Generation::Drupal7, "").unwrap()
}

#[test]
fn a_drupal_7_site_database_reads_back() {
    let t = tempfile::tempdir().unwrap();
    let s = d7_state(t.path(), 7301);
    assert_eq!(s.profile.as_deref(), Some("standard"));
    assert_eq!(s.core_version.as_ref().unwrap().as_str(), "7.98");
    assert!(!s.extensions.contains_key("never"), "not installed");
    assert!(!s.extensions.contains_key("garland"), "a theme not enabled");
    assert!(!s.extensions["poll"].enabled);
    assert_eq!(s.extensions["views"].schema, Some(7301));
    assert_eq!(s.extensions["standard"].kind, ExtensionKind::Profile);
    assert_eq!(s.extensions["bartik"].kind, ExtensionKind::Theme);
}

fn d8_site(
    dir: &Path,
    modules: &[(&str, u32)],
    themes: &[&str],
    profile: &str,
    posts: &[&str],
) -> PathBuf {
    let path = dir.join("d8.sqlite");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE config (collection TEXT NOT NULL DEFAULT '', name TEXT NOT NULL DEFAULT '', data BLOB, PRIMARY KEY (collection, name));
         CREATE TABLE key_value (collection TEXT NOT NULL DEFAULT '', name TEXT NOT NULL DEFAULT '', value BLOB NOT NULL, PRIMARY KEY (collection, name));",
    )
    .unwrap();
    let list = |items: &[&str]| {
        let inner: String = items.iter().map(|m| format!("{}i:0;", ser(m))).collect();
        format!("a:{}:{{{inner}}}", items.len())
    };
    let names: Vec<&str> = modules.iter().map(|(n, _)| *n).collect();
    let ce = format!(
        "a:3:{{s:6:\"module\";{}s:5:\"theme\";{}s:7:\"profile\";{}}}",
        list(&names),
        list(themes),
        ser(profile)
    );
    c.execute(
        "INSERT INTO config (collection, name, data) VALUES ('', 'core.extension', ?1)",
        [ce.into_bytes()],
    )
    .unwrap();
    // Another collection's copy must not be read.
    c.execute(
        "INSERT INTO config (collection, name, data) VALUES ('language.fr', 'core.extension', 'garbage')",
        [],
    )
    .unwrap();
    for (m, n) in modules {
        c.execute(
            "INSERT INTO key_value (collection, name, value) VALUES ('system.schema', ?1, ?2)",
            rusqlite::params![m, format!("i:{n};").into_bytes()],
        )
        .unwrap();
    }
    let inner: String = posts
        .iter()
        .enumerate()
        .map(|(i, p)| format!("i:{i};{}", ser(p)))
        .collect();
    c.execute(
        "INSERT INTO key_value (collection, name, value) VALUES ('post_update', 'existing_updates', ?1)",
        [format!("a:{}:{{{inner}}}", posts.len()).into_bytes()],
    )
    .unwrap();
    path
}

#[test]
fn a_drupal_8_site_database_reads_back() {
    let t = tempfile::tempdir().unwrap();
    let db = d8_site(
        t.path(),
        &[("system", 10100), ("node", 8000), ("standard", 8000)],
        &["olivero"],
        "standard",
        &["system_post_update_a_thing"],
    );
    let s = read_sqlite(&open(&db), Generation::Drupal8Plus, "").unwrap();
    assert_eq!(s.profile.as_deref(), Some("standard"));
    assert_eq!(s.extensions["system"].schema, Some(10100));
    assert_eq!(s.extensions["standard"].kind, ExtensionKind::Profile);
    assert_eq!(s.extensions["olivero"].kind, ExtensionKind::Theme);
    assert!(s.post_updates.contains("system_post_update_a_thing"));
    // A missing table is a clear error, not a panic.
    let e = read_sqlite(&open(&db), Generation::Drupal7, "").unwrap_err();
    assert!(e.to_string().contains("no such table: system"), "{e}");
}

// ---- compatibility ----------------------------------------------------------

fn verdict(c: &hoist::drupal::DrupalComparison, name: &str) -> DrupalVerdict {
    c.extensions
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no verdict for {name}"))
        .verdict
}

#[test]
fn drupal_7_site_onto_newer_and_older_platforms() {
    let t = tempfile::tempdir().unwrap();
    let site = d7_state(t.path(), 7301);
    let current = d7_tree("7.98", &[7000, 7001, 7084], "7.x-3.24", &[7301]);
    let newer = d7_tree(
        "7.103",
        &[7000, 7001, 7084, 7087, 7088],
        "7.x-3.29",
        &[7301, 7302],
    );
    let current = scan(current.path());
    let newer = scan(newer.path());

    // Onto itself: all the same.
    let same = compare(&site, Some(&current), &current);
    assert!(
        same.errors.is_empty() && same.warnings.is_empty(),
        "{same:#?}"
    );
    assert_eq!(verdict(&same, "system"), DrupalVerdict::Same);
    assert_eq!(verdict(&same, "poll"), DrupalVerdict::Disabled);

    // Onto 7.103: upgrades with the pending numbers.
    let up = compare(&site, Some(&current), &newer);
    assert!(!up.blocked(false), "{up:#?}");
    let sys = up.extensions.iter().find(|v| v.name == "system").unwrap();
    assert_eq!(sys.verdict, DrupalVerdict::Upgrade);
    assert_eq!(sys.pending, [7087, 7088]);
    assert!(
        sys.describe().contains("7.98 -> 7.103, updates 7087, 7088"),
        "{}",
        sys.describe()
    );
    assert_eq!(verdict(&up, "views"), DrupalVerdict::Upgrade);

    // Back from 7.103's schema onto 7.98: a schema downgrade.
    let t2 = tempfile::tempdir().unwrap();
    let upgraded = d7_state(t2.path(), 7302);
    let down = compare(&upgraded, Some(&newer), &current);
    assert_eq!(verdict(&down, "views"), DrupalVerdict::SchemaDowngrade);
    assert!(down.blocked(false));
}

#[test]
fn drupal_7_missing_removed_and_hidden() {
    let t = tempfile::tempdir().unwrap();
    let site = d7_state(t.path(), 7301);
    let current_dir = d7_tree("7.98", &[7000, 7001, 7084], "7.x-3.24", &[7301]);
    let current = scan(current_dir.path());
    // A target without views, without the hidden test module, whose ctools
    // removed updates up to 7002 and whose dup is an older version.
    let target_dir = d7_tree("7.98", &[7000, 7001, 7084], "7.x-3.24", &[7301]);
    let r = target_dir.path();
    std::fs::remove_dir_all(r.join("sites/all/modules/contrib/views")).unwrap();
    std::fs::remove_dir_all(r.join("modules/simpletest")).unwrap();
    write(r, "sites/all/modules/contrib/ctools/ctools.install", "<?php\nfunction ctools_update_7003() {}\nfunction ctools_update_last_removed() { return 7002; }\n");
    write(
        r,
        "sites/all/modules/a/dup/dup.info",
        "name = Dup\ncore = 7.x\nversion = 7.x-0.9\n",
    );
    let target = scan(r);
    let c = compare(&site, Some(&current), &target);
    assert_eq!(verdict(&c, "views"), DrupalVerdict::Missing);
    let hidden = c
        .extensions
        .iter()
        .find(|v| v.name == "hidden_test")
        .unwrap();
    assert_eq!(
        (hidden.verdict, hidden.severity),
        (DrupalVerdict::Missing, Severity::Ok)
    );
    assert_eq!(verdict(&c, "ctools"), DrupalVerdict::UpdatesRemoved);
    assert_eq!(verdict(&c, "dup"), DrupalVerdict::VersionDowngrade);
    assert_eq!(
        c.warnings.len(),
        2,
        "views missing, dup older: {:?}",
        c.warnings
    );
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    assert!(
        c.errors[0].contains("ctools: updates removed"),
        "{:?}",
        c.errors
    );

    // Without the site's profile: an error.
    std::fs::remove_dir_all(r.join("profiles/standard")).unwrap();
    let c = compare(&site, Some(&current), &scan(r));
    assert!(
        c.errors
            .iter()
            .any(|e| e == "the site's profile standard is missing on the target"),
        "{:?}",
        c.errors
    );
}

#[test]
fn a_change_of_core_major_is_not_a_migration() {
    let t = tempfile::tempdir().unwrap();
    let site = d7_state(t.path(), 7301);
    let d8 = d8_tree("10.1.0", &[10100], &[], &[], 8805);
    let c = compare(&site, None, &scan(d8.path()));
    assert!(c.extensions.is_empty());
    assert_eq!(c.errors.len(), 1);
    assert!(
        c.errors[0]
            .starts_with("not a migration: the site runs Drupal 7 and the target is Drupal 10.1.0"),
        "{:?}",
        c.errors
    );

    let d10 = scan(d8_tree("10.3.0", &[10100], &[], &[], 8805).path());
    let d11 = scan(d8_tree("11.0.0", &[10100], &[], &[], 8805).path());
    let db = d8_site(
        t.path(),
        &[("system", 10100), ("standard", 8000)],
        &[],
        "standard",
        &[],
    );
    let s = read_sqlite(&open(&db), Generation::Drupal8Plus, "").unwrap();
    assert!(compare(&s, Some(&d10), &d11).errors[0]
        .starts_with("not a migration: the site runs Drupal 10"));
    assert!(compare(&s, Some(&d10), &d10).errors.is_empty());
}

#[test]
fn drupal_8_post_updates_pending_and_unknown() {
    let t = tempfile::tempdir().unwrap();
    let db = d8_site(
        t.path(),
        &[
            ("system", 10100),
            ("node", 8000),
            ("text", 8000),
            ("standard", 8000),
            ("std_helper", 8000),
        ],
        &["olivero"],
        "standard",
        &["system_post_update_a_thing", "system_post_update_old_thing"],
    );
    let site = read_sqlite(&open(&db), Generation::Drupal8Plus, "").unwrap();
    let current = scan(d8_tree("10.1.0", &[10100], &["a_thing"], &[], 8805).path());
    // The target knows a_thing, removed old_thing, and adds b_thing and an update.
    let target = scan(
        d8_tree(
            "10.2.0",
            &[10100, 10101],
            &["a_thing", "b_thing"],
            &["old_thing"],
            8805,
        )
        .path(),
    );
    let c = compare(&site, Some(&current), &target);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let sys = c.extensions.iter().find(|v| v.name == "system").unwrap();
    assert_eq!(sys.verdict, DrupalVerdict::Upgrade);
    assert_eq!(sys.pending, [10101]);
    assert_eq!(sys.pending_post_updates, ["system_post_update_b_thing"]);

    // Only a post-update pending is an upgrade too.
    let target2 = scan(
        d8_tree(
            "10.1.1",
            &[10100],
            &["a_thing", "b_thing"],
            &["old_thing"],
            8805,
        )
        .path(),
    );
    let sys2 = compare(&site, Some(&current), &target2);
    let sys2 = sys2.extensions.iter().find(|v| v.name == "system").unwrap();
    assert_eq!(
        (sys2.verdict, sys2.pending.len()),
        (DrupalVerdict::Upgrade, 0)
    );

    // A target that knows neither a_thing nor old_thing: schema-downgrade.
    let older = scan(d8_tree("10.1.0", &[10100], &[], &[], 8805).path());
    let c = compare(&site, Some(&current), &older);
    let sys = c.extensions.iter().find(|v| v.name == "system").unwrap();
    assert_eq!(sys.verdict, DrupalVerdict::SchemaDowngrade);
    assert_eq!(
        sys.unknown_post_updates,
        ["system_post_update_a_thing", "system_post_update_old_thing"]
    );
    assert!(c.blocked(false));

    // Removed updates above the site's schema.
    let removed = scan(d8_tree("10.3.0", &[10300], &["a_thing"], &["old_thing"], 10201).path());
    assert_eq!(
        verdict(&compare(&site, Some(&current), &removed), "system"),
        DrupalVerdict::UpdatesRemoved
    );

    // The profile's own module, on a target whose standard lacks it.
    let no_helper = d8_tree("10.1.0", &[10100], &["a_thing"], &["old_thing"], 8805);
    std::fs::remove_dir_all(no_helper.path().join("core/profiles/standard/modules")).unwrap();
    assert_eq!(
        verdict(
            &compare(&site, Some(&current), &scan(no_helper.path())),
            "std_helper"
        ),
        DrupalVerdict::Missing
    );
}

// ---- real Drupal trees --------------------------------------------------------

/// A directory the Drupal tree variables name ([`drupal_trees`], the one
/// place that reads them).
fn env_dir(var: &str) -> PathBuf {
    match var {
        "HOIST_DRUPAL_CORE" => drupal_trees::drupal_core(),
        _ => drupal_trees::drupal7_roots(),
    }
}

/// The Drupal 7 release trees under `HOIST_DRUPAL7_ROOTS`, by version.
fn d7_releases() -> Vec<(String, DrupalCodebase)> {
    let dir = env_dir("HOIST_DRUPAL7_ROOTS");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if let Ok(Some(core)) = detect(&p, &p) {
            out.push((core.version.to_string(), scan(&p)));
        }
    }
    out.sort_by(|a, b| version_order(&a.0, &b.0));
    out
}

#[test]
#[ignore = "needs real Drupal trees: set HOIST_DRUPAL7_ROOTS and HOIST_DRUPAL_CORE"]
fn real_drupal_7_releases() {
    let releases = d7_releases();
    assert!(
        releases.len() >= 2,
        "need two releases under HOIST_DRUPAL7_ROOTS"
    );
    let (old_v, old) = &releases[0];
    let (new_v, new) = &releases[releases.len() - 1];
    let g = Generation::Drupal7;
    let o = old.resolve(Some("standard"));
    let n = new.resolve(Some("standard"));
    for name in [
        "system", "node", "user", "field", "standard", "bartik", "seven",
    ] {
        assert!(n.extensions.contains_key(name), "{new_v} lacks {name}");
    }
    assert!(n.extensions.len() > 40, "{}", n.extensions.len());
    assert!(n.extensions["simpletest"].kind == ExtensionKind::Module);
    assert!(n
        .extensions
        .values()
        .any(|e| e.hidden && e.path.contains("/tests")));
    assert_eq!(n.extensions["standard"].kind, ExtensionKind::Profile);
    assert_eq!(
        n.extensions["node"].version.as_ref().unwrap().as_str(),
        new_v
    );
    assert_eq!(n.extensions["system"].last_removed, Some(6055));
    let (so, sn) = (
        o.extensions["system"].schema(g).unwrap(),
        n.extensions["system"].schema(g).unwrap(),
    );
    eprintln!("system schema: {old_v} {so}, {new_v} {sn}");
    if new_v == "7.103" {
        assert!(sn >= 7088, "{sn}");
    }
    assert!(so < sn, "{old_v} {so} !< {new_v} {sn}");
    // The site as a fresh install of the old release, moved to the new one.
    let site = SiteState {
        generation: g,
        profile: Some("standard".into()),
        extensions: o
            .extensions
            .values()
            .filter(|e| !e.hidden || e.kind == ExtensionKind::Profile)
            .map(|e| {
                (
                    e.name.clone(),
                    hoist::drupal::SiteExtension {
                        kind: e.kind,
                        enabled: true,
                        schema: e.schema(g),
                        version: e.version.clone(),
                        hidden: e.hidden,
                    },
                )
            })
            .collect(),
        post_updates: Default::default(),
        core_version: Some(old.core.version.clone()),
    };
    let c = compare(&site, Some(old), new);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    let sys = c.extensions.iter().find(|v| v.name == "system").unwrap();
    assert_eq!(sys.verdict, DrupalVerdict::Upgrade);
    let expected: Vec<u32> = n.extensions["system"]
        .updates
        .iter()
        .copied()
        .filter(|u| *u > so)
        .collect();
    assert_eq!(sys.pending, expected);
    eprintln!(
        "pending system updates {old_v} -> {new_v}: {:?}",
        sys.pending
    );
    if (old_v.as_str(), new_v.as_str()) == ("7.98", "7.103") {
        for u in [7087, 7088] {
            assert!(sys.pending.contains(&u), "{:?}", sys.pending);
        }
    }
    // And back: a schema downgrade.
    let mut upgraded = site.clone();
    for (name, e) in upgraded.extensions.iter_mut() {
        if let Some(t) = n.extensions.get(name) {
            e.schema = t.schema(g);
        }
    }
    let back = compare(&upgraded, Some(new), old);
    assert_eq!(verdict(&back, "system"), DrupalVerdict::SchemaDowngrade);
}

#[test]
#[ignore = "needs real Drupal trees: set HOIST_DRUPAL7_ROOTS and HOIST_DRUPAL_CORE"]
fn real_drupal_core() {
    // `HOIST_DRUPAL_CORE` is a `core/` directory: the tree around it is
    // scanned (symlinks are never followed, so it must be the real one).
    let core = env_dir("HOIST_DRUPAL_CORE");
    assert!(
        core.file_name().is_some_and(|n| n == "core"),
        "HOIST_DRUPAL_CORE must name a directory called core"
    );
    let root = core.parent().unwrap().to_path_buf();
    let started = std::time::Instant::now();
    let cb = scan(&root);
    let took = started.elapsed();
    eprintln!("scanned Drupal {} core in {took:?}", cb.core.version);
    assert!(took.as_secs_f64() < 1.0, "{took:?}");
    assert!(cb.core.major >= 8);
    let r = cb.resolve(Some("standard"));
    let modules = r
        .extensions
        .values()
        .filter(|e| e.kind == ExtensionKind::Module)
        .count();
    eprintln!("{modules} modules, {} extensions", r.extensions.len());
    assert!(modules > 70, "{modules}");
    for name in ["node", "system", "user", "field", "standard", "minimal"] {
        assert!(r.extensions.contains_key(name), "{name}");
    }
    if cb.core.major >= 10 {
        assert!(r.extensions.contains_key("olivero") && r.extensions.contains_key("claro"));
    }
    assert!(
        !r.extensions.contains_key("twig"),
        "theme engines are not packages"
    );
    assert!(r.extensions.values().all(|e| !e.path.contains("/tests/")));
    let g = Generation::Drupal8Plus;
    let system = r.extensions["system"];
    // Drupal 10 numbers its updates 10xxx and removed those before 8805.
    if cb.core.major >= 10 {
        assert!(system.schema(g).unwrap() > 10000, "{:?}", system.schema(g));
        assert!(system.last_removed.is_some_and(|n| n >= 8805));
        assert!(!system.removed_post_updates.is_empty());
    }
    assert!(system.schema(g).unwrap() > 8000, "{:?}", system.schema(g));
    assert!(!system.post_updates.is_empty() || !system.removed_post_updates.is_empty());
    assert!(r.extensions["node"]
        .version
        .as_ref()
        .is_some_and(|v| v == &cb.core.version));
    assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
    // The test extensions are many more when asked for.
    let with_tests = DrupalCodebase::scan(
        &root,
        &root,
        &ScanOptions {
            include_tests: true,
            ..ScanOptions::default()
        },
    )
    .unwrap();
    assert!(
        with_tests.found.len() > 3 * cb.found.len(),
        "{} vs {}",
        with_tests.found.len(),
        cb.found.len()
    );
}
