//! `hoist validate` on the example inventory and on broken inventories of
//! every kind: each problem named with its file (and line and column where it
//! has one), exit 1, no panic, nothing written on the server.

mod common;
use common::Fixture;

/// Runs validate on a broken fixture and checks the shared promises: exit 1,
/// no panic, no server root created. Returns stderr.
fn broken(f: &Fixture) -> String {
    let r = f.run(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(!r.stderr.contains("panicked"), "{}", r.all());
    assert!(!f.host().exists(), "validate must not touch the server");
    // plan and apply refuse the same inventory before touching a server
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        let r2 = f.run(args);
        assert_eq!(r2.code, 1, "{args:?}: {}", r2.all());
        assert!(!f.host().exists(), "{args:?} touched the server");
    }
    r.stderr
}

fn has(stderr: &str, needle: &str) {
    assert!(
        stderr.lines().any(|l| l.contains(needle)),
        "no line with {needle:?} in:\n{stderr}"
    );
}

#[test]
fn example_inventory_is_valid() {
    let f = Fixture::example();
    let r = f.ok(&["validate"], 0);
    assert!(r.stdout.contains("4 platform(s), 5 site(s)"), "{}", r.all());
    assert!(!f.host().exists());
}

#[test]
fn empty_hoist_yaml_is_valid() {
    let f = Fixture::example();
    f.write("hoist.yaml", "");
    f.ok(&["validate"], 0);
}

#[test]
fn missing_hoist_yaml_is_not_an_inventory() {
    let f = Fixture::example();
    std::fs::remove_file(f.inv().join("hoist.yaml")).unwrap();
    let e = broken(&f);
    has(&e, "not an inventory");
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let f = Fixture::example();
    f.write(
        "sites/acme.yaml",
        "domain: acme.example.com\nplatform: [shop-1-1\n",
    );
    has(&broken(&f), "sites/acme.yaml:3:1: YAML syntax");
}

#[test]
fn wrong_types_and_unknown_keys_are_placed() {
    let f = Fixture::example();
    f.write(
        "sites/acme.yaml",
        "domain: acme.example.com\nplatform: shop-1-1\nenabled: \"yes\"\n",
    );
    f.write(
        "sites/bakery.yaml",
        "domain: bakery.example.com\nplatform: shop-1-0\nbogus: 1\n",
    );
    f.write("hoist.yaml", "policy:\n  parallel: many\n");
    let e = broken(&f);
    has(
        &e,
        "sites/acme.yaml:3:10: \"yes\" is not of type \"boolean\"",
    );
    has(
        &e,
        "sites/bakery.yaml:3:1: Additional properties are not allowed ('bogus' was unexpected)",
    );
    has(&e, "hoist.yaml:2:13:");
}

#[test]
fn duplicate_keys_are_an_error() {
    let f = Fixture::example();
    f.write(
        "sites/acme.yaml",
        "domain: acme.example.com\ndomain: other.example.com\nplatform: shop-1-1\n",
    );
    has(
        &broken(&f),
        "sites/acme.yaml:2:1: YAML syntax: duplicate entry with key \"domain\"",
    );
}

#[test]
fn unknown_platform_profile_server_and_database() {
    let f = Fixture::example();
    f.write(
        "sites/acme.yaml",
        "domain: acme.example.com\nplatform: shop-9-9\n",
    );
    f.write(
        "sites/bakery.yaml",
        "domain: bakery.example.com\nplatform: shop-1-0\nprofile: nosuch\ndatabase: mysql\n",
    );
    f.write(
        "platforms/shop-2-1.yaml",
        "source: { path: codebases/shop-2.1 }\nserver: mars\n",
    );
    let e = broken(&f);
    has(&e, "sites/acme.yaml:2:11: unknown platform shop-9-9");
    has(
        &e,
        "sites/bakery.yaml:3:10: unknown profile nosuch on platform shop-1-0",
    );
    has(&e, "sites/bakery.yaml:4:11: unknown database server mysql");
    has(&e, "platforms/shop-2-1.yaml:2:9: unknown server mars");
}

#[test]
fn a_domain_or_alias_claimed_twice() {
    let f = Fixture::example();
    f.write(
        "sites/bakery.yaml",
        "domain: acme.example.com\nplatform: shop-1-0\n",
    );
    f.write(
        "sites/dental.yaml",
        "domain: dental.example.net\nplatform: shop-2-0\naliases: [www.chess.example.org]\n",
    );
    let e = broken(&f);
    has(
        &e,
        "sites/bakery.yaml:1:9: acme.example.com is already claimed by site acme",
    );
    has(
        &e,
        "sites/dental.yaml:3:11: www.chess.example.org is already claimed by site chess-club",
    );
}

#[test]
fn bad_names_and_domains() {
    let f = Fixture::example();
    f.write(
        "sites/Shop_1.yaml",
        "domain: shop.example.com\nplatform: shop-1-0\n",
    );
    f.write(
        "sites/dots..yaml",
        "domain: shop2.example.com\nplatform: shop-1-0\n",
    );
    f.write(
        "sites/bakery.yaml",
        "domain: Bakery.example.com\nplatform: shop-1-0\naliases: [\"a..b\", \"exаmple.com\"]\n",
    );
    f.write(
        "sites/acme.yaml",
        "domain: acme.example.com\nplatform: ../shop\n",
    );
    let e = broken(&f);
    has(
        &e,
        "sites/Shop_1.yaml: bad file name: invalid name \"Shop_1\"",
    );
    has(&e, "sites/dots..yaml: bad file name");
    has(
        &e,
        "sites/bakery.yaml:1:9: invalid domain \"Bakery.example.com\"",
    );
    has(&e, "sites/bakery.yaml:3:11: invalid domain \"a..b\"");
    has(&e, "sites/bakery.yaml:3:19: invalid domain \"exаmple.com\"");
    has(&e, "sites/acme.yaml:2:11: invalid name \"../shop\"");
}

#[test]
fn clone_from_nowhere_or_in_a_loop() {
    let f = Fixture::example();
    f.write(
        "sites/x.yaml",
        "domain: x.example.com\nplatform: shop-2-1\nclone_from: y\n",
    );
    f.write(
        "sites/y.yaml",
        "domain: y.example.com\nplatform: shop-2-1\nclone_from: x\n",
    );
    f.write(
        "sites/z.yaml",
        "domain: z.example.com\nplatform: shop-2-1\nclone_from: ghost\n",
    );
    f.write(
        "sites/w.yaml",
        "domain: w.example.com\nplatform: shop-2-1\nclone_from: w\n",
    );
    let e = broken(&f);
    has(
        &e,
        "sites/x.yaml:3:13: clone_from forms a cycle: x -> y -> x",
    );
    has(
        &e,
        "sites/y.yaml:3:13: clone_from forms a cycle: y -> x -> y",
    );
    has(
        &e,
        "sites/z.yaml:3:13: clone_from names ghost, which is not a declared site",
    );
    has(&e, "sites/w.yaml:3:13: a site cannot be cloned from itself");
}

#[test]
fn sources_that_leave_the_inventory_or_are_not_supported() {
    let f = Fixture::example();
    f.write("platforms/a.yaml", "source: { path: ../../etc }\n");
    f.write("platforms/b.yaml", "source: { path: /etc }\n");
    f.write(
        "platforms/c.yaml",
        "source: { git: https://example.org/shop.git, ref: v1 }\n",
    );
    f.write(
        "platforms/d.yaml",
        "source: { archive: codebases/shop.tar.gz }\n",
    );
    f.write("platforms/e.yaml", "source: { path: codebases/nowhere }\n");
    std::os::unix::fs::symlink("/etc", f.inv().join("codebases/link")).unwrap();
    f.write("platforms/g.yaml", "source: { path: codebases/link }\n");
    let e = broken(&f);
    has(
        &e,
        "platforms/a.yaml:1:17: ../../etc must be a relative path inside the inventory",
    );
    has(
        &e,
        // Spec 2 allows an absolute source for a drupal platform only.
        "platforms/b.yaml:1:17: /etc is outside the inventory: only a drupal platform's source may be an absolute path",
    );
    has(
        &e,
        "platforms/c.yaml:1:16: git sources are not supported yet",
    );
    has(
        &e,
        "platforms/d.yaml:1:20: archive sources are not supported yet",
    );
    has(
        &e,
        "platforms/e.yaml:1:17: source directory codebases/nowhere does not exist",
    );
    has(
        &e,
        "platforms/g.yaml:1:17: codebases/link leads outside the inventory",
    );
}

#[test]
fn broken_codebases_are_reported_per_file() {
    let f = Fixture::example();
    f.write(
        "codebases/shop-2.1/packages/blog/package.yaml",
        "name: blog\nkind: module\nversion: not-semver\n",
    );
    f.write(
        "codebases/shop-2.1/packages/node/updates/first.sql",
        "SELECT 1;",
    );
    f.write(
        "codebases/shop-2.1/packages/forum/package.yaml",
        "name: forum\nkind: module\nversion: 1.0.0\ndepends: [nothere]\n",
    );
    // one update under two names would run twice
    f.write(
        "codebases/shop-2.1/packages/core/updates/01.sql",
        "SELECT 1;",
    );
    f.write(
        "codebases/shop-2.1/packages/core/updates/+2.sql",
        "SELECT 1;",
    );
    let e = broken(&f);
    has(&e, "codebases/shop-2.1/packages/core/updates/01.sql: an update must be a file named <N>.sql, N a positive integer written without leading zeros or sign");
    has(
        &e,
        "codebases/shop-2.1/packages/core/updates/+2.sql: an update must be",
    );
    has(&e, "codebases/shop-2.1/packages/blog/package.yaml:");
    has(&e, "codebases/shop-2.1/packages/node/updates/first.sql: an update must be a file named <N>.sql");
    has(
        &e,
        "package forum needs nothere, which this codebase does not have",
    );
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let f = Fixture::example();
    f.write(
        "sites/acme.yaml",
        "domain: acme.example.com\nplatform: nope\n",
    );
    f.write(
        "sites/bakery.yaml",
        "domain: bakery.example.com\nplatform: nope2\n",
    );
    f.write("sites/dental.yaml", "domain: [\n");
    let e = broken(&f);
    has(&e, "sites/acme.yaml:2:11");
    has(&e, "sites/bakery.yaml:2:11");
    has(&e, "sites/dental.yaml:");
    has(&e, "the inventory has 3 problem(s)");
}

#[test]
fn hostile_yaml_does_not_panic() {
    let f = Fixture::example();
    let deep = format!(
        "domain: {}1{}\nplatform: shop-1-0\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    f.write("sites/acme.yaml", &deep);
    f.write(
        "sites/bakery.yaml",
        &format!(
            "domain: {}\nplatform: shop-1-0\n",
            "a".repeat(2 * 1024 * 1024)
        ),
    );
    f.write(
        "sites/dental.yaml",
        "domain: \"a\\0b.com\"\nplatform: shop-2-0\n",
    );
    f.write("sites/eatery.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n");
    std::fs::write(f.inv().join("sites/chess-club.yaml"), [0xff, 0xfe, b'x']).unwrap();
    let e = broken(&f);
    has(&e, "sites/acme.yaml");
    has(
        &e,
        "sites/bakery.yaml: file is 2097180 bytes; the limit is 1048576",
    );
    has(&e, "sites/dental.yaml:1:9: invalid domain");
    has(&e, "sites/eatery.yaml");
    has(&e, "sites/chess-club.yaml: not UTF-8 text");
}

#[test]
fn domains_are_as_long_as_the_files_named_after_them_allow() {
    let labels = |last: usize| {
        format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(last)
        )
    };
    let f = Fixture::example();
    let too_long = labels(9);
    assert_eq!(too_long.len(), 201);
    f.set_site("acme", "domain", &too_long);
    let e = broken(&f);
    has(
        &e,
        "sites/acme.yaml:3:9: invalid domain \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"...: \
         201 bytes; the limit is 200",
    );

    // the longest allowed domain installs, backs up and restores: every file
    // named after it (vhost, site directory, archive) fits
    let longest = labels(8);
    assert_eq!(longest.len(), 200);
    f.set_site("acme", "domain", &longest);
    f.apply();
    assert!(f.host().join(format!("vhosts/{longest}.conf")).exists());
    let r = f.ok(&["backup", "acme"], 0);
    assert!(r.stdout.contains("success  backup acme"), "{}", r.all());
    let archives: Vec<String> = common::backup_archives(&f, "acme")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    assert!(
        archives[0].starts_with(&format!("{longest}-")),
        "{archives:?}"
    );
    f.ok(&["restore", "acme"], 0);
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn a_database_password_written_inline_is_an_error() {
    let f = Fixture::example();
    f.write(
        "hoist.yaml",
        "databases:\n  default: { kind: sqlite }\n  main:\n    kind: mysql\n    admin_password: hunter2\n",
    );
    let e = broken(&f);
    has(&e, "hoist.yaml:5:5: a secret written inline");
    assert!(!e.contains("hunter2"), "the secret was echoed: {e}");
}

#[test]
fn servers_web_servers_health_and_rollouts_are_read() {
    let f = Fixture::example();
    f.write(
        "hoist.yaml",
        r#"servers:
  local: { kind: local, root: .hoist-host }
  web2:
    kind: ssh
    host: 127.0.0.1
    port: 2222
    root: /srv/hoist
    known_hosts: ssh/known_hosts
    web: { kind: nginx, conf_dir: /etc/nginx/hoist.d, php_fpm: "unix:/run/php.sock" }
databases:
  default: { kind: sqlite }
  main: { kind: mysql, admin_password_env: DB_ADMIN }
health: { path: /health, expect_text: ok }
rollout:
  waves:
    - { name: canary, select: { sites: [acme] } }
    - { name: rest }
  bake_s: 0
  failure_budget: { max_failed: 1 }
  on_failure: rollback-wave
"#,
    );
    f.ok(&["validate"], 0);
    // Each kind's required keys are checked where they are missing.
    f.write(
        "hoist.yaml",
        "servers:\n  local: { kind: local, root: .hoist-host }\n  web2: { kind: ssh, root: /srv }\n",
    );
    has(&broken(&f), "hoist.yaml:3:");
    f.write(
        "hoist.yaml",
        "servers:\n  local:\n    kind: local\n    root: .hoist-host\n    web: { kind: nginx, php_fpm: x }\n",
    );
    has(&broken(&f), "hoist.yaml:5:");
}
