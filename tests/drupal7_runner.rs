//! The Drupal 7 runner and settings.php, through the real php-cli.
//!
//! Without Drupal: rendered settings are linted by `php -l` and included by
//! php, whose `$databases` must equal what was rendered, hostile values and
//! all; requests and answers are checked as built and parsed; the runner's
//! envelope (its answer on stdout, Drupal's noise on stderr, exit() and
//! timeouts, no secret on a command line) runs against small fake trees.
//!
//! With real Drupal 7 (`#[ignore]`d, see the README): a site is installed on
//! the older release with SQLite and with MariaDB, put in maintenance,
//! moved to the newer release, updated, and checked.

mod drupal_trees;
mod services;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hoist::drupal::runner::{
    parse_answer, request_json, Install, LocalPhp, Operation, PhpOutput, Runner, RunnerError, Site,
    Status,
};
use hoist::drupal::settings::{self, Database, HashSalt, MysqlAt, SaltOrigin, Settings};
use hoist::render::Secret;

/// php-cli, or `None` (with a note) when it is missing and not required.
fn php() -> Option<PathBuf> {
    let found = services::find_program(&["php"]);
    if found.is_none() {
        assert!(
            !services::services_required(),
            "php-cli is required (HOIST_REQUIRE_SERVICES)"
        );
        eprintln!("skipped: php-cli not found");
    }
    found
}

fn run_php(php: &Path, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(php)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run php");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Values meant to break out of a PHP single-quoted string.
const HOSTILE: &str = "it's a \\' trap \\\\ ?> <?php exit(7); ' . phpinfo() . '\n$x";

fn render(dir: &str, db: &Database, salt: &HashSalt) -> String {
    settings::render(&Settings {
        site_dir: dir,
        database: db,
        hash_salt: salt,
        private_files: true,
    })
    .expect("render settings")
}

/// Includes `settings.php` in php and checks `$databases` (by var_export,
/// against the expected array given as JSON), the salt, and the file paths.
fn check_in_php(php: &Path, file: &Path, db: &Database, salt: &HashSalt, dir: &str) {
    let (ok, out, err) = run_php(php, &["-l", file.to_str().unwrap()], b"");
    assert!(ok, "php -l: {out}{err}");
    let script = format!(
        "$want = json_decode(stream_get_contents(STDIN), TRUE);\n\
         include {file:?};\n\
         $a = var_export($databases['default']['default'], TRUE);\n\
         $b = var_export($want['db'], TRUE);\n\
         if ($a !== $b) {{ echo \"databases differ:\\n$a\\n$b\\n\"; exit(1); }}\n\
         if ($drupal_hash_salt !== $want['salt']) {{ echo 'salt differs'; exit(1); }}\n\
         if (isset($base_url)) {{ echo 'base_url set'; exit(1); }}\n\
         if ($conf['file_public_path'] !== $want['files']) {{ echo 'files differ'; exit(1); }}\n\
         if ($conf['skip_permissions_hardening'] !== TRUE) {{ echo 'hardening'; exit(1); }}\n\
         echo 'same';",
        file = file.to_str().unwrap()
    );
    let want = serde_json::json!({
        "db": db.to_json(),
        "salt": salt.expose(),
        "files": format!("sites/{dir}/files"),
    });
    let (ok, out, err) = run_php(php, &["-r", &script], want.to_string().as_bytes());
    assert!(ok && out == "same", "php include: {out}{err}");
}

#[test]
fn rendered_settings_lint_and_include_with_hostile_values() {
    let Some(php) = php() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let salt = HashSalt::new(format!("salt {HOSTILE}")).unwrap();
    let mysql = Database::Mysql {
        at: MysqlAt::Tcp {
            host: "127.0.0.1".into(),
            port: 3306,
        },
        database: format!("db {HOSTILE}"),
        username: format!("user {HOSTILE}"),
        password: Secret::new(format!("pw {HOSTILE}")),
    };
    let sqlite = Database::Sqlite {
        path: tmp.path().join(format!("data {HOSTILE}.sqlite")),
    };
    let socket = Database::Mysql {
        at: MysqlAt::Socket(tmp.path().join(format!("sock {HOSTILE}"))),
        database: "db".into(),
        username: "user".into(),
        password: Secret::new("pw".into()),
    };
    for (name, db) in [("mysql", &mysql), ("socket", &socket), ("sqlite", &sqlite)] {
        let file = tmp.path().join(format!("{name}.settings.php"));
        fs::write(&file, render("example.org", db, &salt)).unwrap();
        check_in_php(&php, &file, db, &salt, "example.org");
    }
    // A salt read back from a rendered file is the same salt.
    let text = render("example.org", &mysql, &salt);
    let (kept, origin) = settings::keep_or_generate(Some(&text)).unwrap();
    assert_eq!((kept.expose(), origin), (salt.expose(), SaltOrigin::Kept));
}

fn site(root: &Path) -> Site {
    Site::new(root, "example.org")
}

fn install_op(db: Database, pass: &str) -> Operation {
    Operation::Install(Box::new(Install {
        profile: "standard".into(),
        site_name: "Example".into(),
        site_mail: "admin@example.org".into(),
        account_name: "admin".into(),
        account_mail: "admin@example.org".into(),
        account_pass: Secret::new(pass.into()),
        database: db,
    }))
}

#[test]
fn requests_carry_the_operation_and_refuse_bad_sites() {
    let root = Path::new("/srv/drupal-7.103");
    let req: serde_json::Value =
        serde_json::from_slice(&request_json(&site(root), &Operation::Maintenance(true)).unwrap())
            .unwrap();
    assert_eq!(req["op"], "maintenance");
    assert_eq!(req["on"], true);
    assert_eq!(req["site"], "example.org");
    assert_eq!(req["url"], "http://example.org/index.php");
    let db = Database::Mysql {
        at: MysqlAt::Tcp {
            host: "db".into(),
            port: 3306,
        },
        database: "d".into(),
        username: "u".into(),
        password: Secret::new("s3cret".into()),
    };
    let req: serde_json::Value = serde_json::from_slice(
        &request_json(&site(root), &install_op(db.clone(), "adminpw")).unwrap(),
    )
    .unwrap();
    assert_eq!(req["install"]["database"]["password"], "s3cret");
    assert_eq!(req["install"]["account_pass"], "adminpw");
    for bad in ["", "../etc", "a/b", ".x", "a b"] {
        let err = request_json(&Site::new(root, bad), &Operation::Status).unwrap_err();
        assert!(
            matches!(err, RunnerError::Request { op: "status", .. }),
            "{err}"
        );
    }
    let err = request_json(&Site::new("relative", "example.org"), &Operation::Status).unwrap_err();
    assert!(err.to_string().contains("not absolute"), "{err}");
}

fn output(code: i32, stdout: &str, stderr: &str) -> PhpOutput {
    use std::os::unix::process::ExitStatusExt;
    PhpOutput {
        status: std::process::ExitStatus::from_raw(code << 8),
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

#[test]
fn answers_are_parsed_into_typed_errors_without_secrets() {
    let s = site(Path::new("/srv/d7"));
    let ok = parse_answer(
        &s,
        &Operation::Status,
        &output(0, "{\"ok\":true,\"core\":\"7.103\"}\n", ""),
    )
    .unwrap();
    assert_eq!(ok["core"], "7.103");

    let db = Database::Sqlite {
        path: "/x.sqlite".into(),
    };
    let err = parse_answer(
        &s,
        &install_op(db, "hunter2hunter2"),
        &output(
            0,
            r#"{"ok":false,"error":"bad password hunter2hunter2"}"#,
            "",
        ),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("drupal install on example.org in /srv/d7:"),
        "{text}"
    );
    assert!(!text.contains("hunter2hunter2"), "{text}");

    let failed = r#"{"ok":false,"error":"x","failed":{"module":"system","number":7088,"message":"Table gone"},
        "updates":[{"module":"system","number":7087,"description":"d","passes":3,"message":""}]}"#;
    match parse_answer(&s, &Operation::Updatedb, &output(0, failed, "")).unwrap_err() {
        RunnerError::UpdateFailed {
            module,
            number,
            message,
            done,
            ..
        } => {
            assert_eq!(
                (module.as_str(), number, message.as_str()),
                ("system", 7088, "Table gone")
            );
            assert_eq!(done.len(), 1);
            assert_eq!((done[0].number, done[0].passes), (7087, 3));
        }
        other => panic!("{other}"),
    }

    for (stdout, stderr) in [("", "PHP Fatal error: boom"), ("not json", ""), ("[1]", "")] {
        let err =
            parse_answer(&s, &Operation::CacheClear, &output(255, stdout, stderr)).unwrap_err();
        assert!(
            matches!(
                err,
                RunnerError::NoAnswer {
                    op: "cache-clear",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(if stdout.is_empty() { "boom" } else { stdout }),
            "{err}"
        );
    }
}

/// A tree whose `includes/bootstrap.inc` is `bootstrap`, with a site
/// directory holding an empty settings.php.
fn fake_tree(bootstrap: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("includes")).unwrap();
    fs::create_dir_all(tmp.path().join("sites/example.org")).unwrap();
    fs::write(tmp.path().join("sites/example.org/settings.php"), "<?php\n").unwrap();
    fs::write(tmp.path().join("includes/bootstrap.inc"), bootstrap).unwrap();
    tmp
}

/// Just enough of Drupal 7's bootstrap for the maintenance operation, with
/// variables kept in a JSON file and noise printed on the way.
const FAKE_D7: &str = r#"<?php
define('VERSION', '7.999');
define('DRUPAL_BOOTSTRAP_VARIABLES', 3);
echo "noise from drupal\n";
function drupal_override_server_variables($v) { $_SERVER['HTTP_HOST'] = parse_url($v['url'], PHP_URL_HOST); }
function conf_path($require = TRUE, $reset = FALSE) { return 'sites/' . $_SERVER['HTTP_HOST']; }
function drupal_bootstrap($phase) { print "bootstrapping\n"; }
function hoist_fake_vars() { return is_file('vars.json') ? json_decode(file_get_contents('vars.json'), TRUE) : array(); }
function variable_get($name, $default = NULL) { $v = hoist_fake_vars(); return isset($v[$name]) ? $v[$name] : $default; }
function variable_set($name, $value) { $v = hoist_fake_vars(); $v[$name] = $value; file_put_contents('vars.json', json_encode($v)); }
"#;

#[test]
fn the_runner_answers_on_stdout_while_drupal_prints_to_stderr() {
    let Some(php) = php() else { return };
    let tree = fake_tree(FAKE_D7);
    let runner = Runner::new(LocalPhp {
        program: php.clone(),
    });
    let s = site(tree.path());
    let change = runner.maintenance(&s, true).unwrap();
    assert!(!change.was && change.now, "{change:?}");
    let vars = fs::read_to_string(tree.path().join("vars.json")).unwrap();
    assert_eq!(vars, r#"{"maintenance_mode":1}"#);
    let change = runner.maintenance(&s, false).unwrap();
    assert!(change.was && !change.now, "{change:?}");

    // Another site directory than Drupal resolves is refused.
    let other = Site::new(tree.path(), "other.example.org");
    let err = runner.maintenance(&other, true).unwrap_err();
    assert!(
        err.to_string()
            .contains("sites/other.example.org/settings.php does not exist"),
        "{err}"
    );
}

#[test]
fn the_runner_refuses_trees_that_are_not_drupal_7() {
    let Some(php) = php() else { return };
    let runner = Runner::new(LocalPhp { program: php });
    let empty = tempfile::tempdir().unwrap();
    let err = runner.status(&site(empty.path())).unwrap_err();
    assert!(
        matches!(&err, RunnerError::Failed { op: "status", message, .. } if message.contains("has no includes/bootstrap.inc")),
        "{err}"
    );
    let d8 = fake_tree("<?php\ndefine('VERSION', '8.9.0');\n");
    let err = runner.status(&site(d8.path())).unwrap_err();
    assert!(err.to_string().contains("is not Drupal 7"), "{err}");
}

#[test]
fn an_exit_inside_drupal_is_reported_not_silent() {
    let Some(php) = php() else { return };
    let runner = Runner::new(LocalPhp { program: php });
    let tree = fake_tree("<?php\necho 'dying';\nexit(0);\n");
    let err = runner.cache_clear(&site(tree.path())).unwrap_err();
    assert!(
        err.to_string()
            .contains("PHP stopped before the operation finished"),
        "{err}"
    );
}

#[test]
fn a_hanging_php_is_killed_at_the_timeout() {
    let Some(php) = php() else { return };
    let tree = fake_tree("<?php\nfile_put_contents('started', getmypid());\nwhile (TRUE) {}\n");
    let runner = Runner::new(LocalPhp { program: php }).with_timeout(Duration::from_secs(2));
    let err = runner.status(&site(tree.path())).unwrap_err();
    assert!(
        matches!(err, RunnerError::Timeout { op: "status", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("was killed"), "{err}");
    // It did start, and it is gone.
    let pid: i32 = fs::read_to_string(tree.path().join("started"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "php {pid} still runs"
    );
}

#[test]
fn no_secret_reaches_php_arguments_or_environment() {
    let Some(php) = php() else { return };
    let tree = fake_tree(FAKE_D7);
    // A php that records its arguments and environment, then runs php.
    let wrapper = tree.path().join("php-wrapper");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"{0}/argv\"\nenv > \"{0}/env\"\nexec \"{1}\" \"$@\"\n",
            tree.path().display(),
            php.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let runner = Runner::new(LocalPhp { program: wrapper });
    let db = Database::Mysql {
        at: MysqlAt::Tcp {
            host: "127.0.0.1".into(),
            port: 1,
        },
        database: "d".into(),
        username: "u".into(),
        password: Secret::new("db-Secret-4711".into()),
    };
    let Operation::Install(install) = install_op(db, "admin-Secret-4711") else {
        unreachable!()
    };
    // The fake tree has no installer: the run fails, after php got the request.
    let err = runner.install(&site(tree.path()), *install).unwrap_err();
    let seen = fs::read_to_string(tree.path().join("argv")).unwrap()
        + &fs::read_to_string(tree.path().join("env")).unwrap()
        + &err.to_string();
    assert!(seen.contains("stream_get_contents(STDIN"), "{seen}");
    assert!(!seen.contains("Secret-4711"), "{seen}");
}

// ------------------------------------------------------------ real Drupal 7

/// The oldest and newest Drupal 7 release trees under
/// `HOIST_DRUPAL7_ROOTS` ([`drupal_trees`]).
fn drupal7_trees() -> (PathBuf, PathBuf) {
    let ((_, old), (_, new)) = drupal_trees::drupal7_pair();
    (old, new)
}

/// A copy of `tree` in `into` (release trees are left untouched).
fn copy_tree(tree: &Path, into: &Path) -> PathBuf {
    let out = Command::new("cp")
        .arg("-a")
        .arg(tree)
        .arg(into)
        .output()
        .unwrap();
    assert!(out.status.success(), "cp: {out:?}");
    into.to_path_buf()
}

/// Writes the site's settings.php into `root` (0600 in a 0755 directory).
fn write_settings(root: &Path, text: &str) {
    let dir = root.join("sites/example.org");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("settings.php");
    if file.exists() {
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::write(&file, text).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Install on the older release, maintenance on, move to the newer release,
/// updatedb, maintenance off; checked at every step.
fn install_and_migrate(db: Database) {
    let (older, newer) = drupal7_trees();
    let php = php().expect("php-cli");
    let work = tempfile::tempdir().unwrap();
    let old_root = copy_tree(&older, &work.path().join("old"));
    let new_root = copy_tree(&newer, &work.path().join("new"));
    let runner = Runner::new(LocalPhp { program: php });

    let (salt, origin) = settings::keep_or_generate(None).unwrap();
    assert_eq!(origin, SaltOrigin::Generated);
    write_settings(&old_root, &render("example.org", &db, &salt));
    let old = Site::new(&old_root, "example.org");
    let Operation::Install(install) = install_op(db.clone(), "Admin-pass-1") else {
        unreachable!()
    };
    let installed: Status = runner.install(&old, *install).unwrap();
    let old_version = installed.core.clone();
    assert_eq!(installed.profile.as_deref(), Some("standard"));
    assert_eq!(installed.site_name.as_deref(), Some("Example"));
    assert!(!installed.maintenance);
    assert!(installed.modules.contains_key("node"), "{installed:?}");
    assert!(installed.pending().is_empty(), "{:?}", installed.pending());
    let system = installed.modules["system"];
    assert!(
        system.schema >= 7000 && system.schema == system.code_schema,
        "{system:?}"
    );
    // Drupal's installer did not harden what hoist owns.
    let site_dir = old_root.join("sites/example.org");
    assert_eq!(mode(&site_dir.join("settings.php")), 0o600);
    assert_eq!(mode(&site_dir), 0o755);
    // A second install is refused by Drupal.
    let Operation::Install(again) = install_op(db.clone(), "Admin-pass-1") else {
        unreachable!()
    };
    let err = runner.install(&old, *again).unwrap_err();
    assert!(err.to_string().contains("already installed"), "{err}");

    let change = runner.maintenance(&old, true).unwrap();
    assert!(!change.was && change.now);
    assert!(runner.status(&old).unwrap().maintenance);

    // The migrate: the site directory moves to the newer tree, with its
    // settings re-rendered and its salt kept.
    let moved = new_root.join("sites/example.org");
    let out = Command::new("cp")
        .arg("-a")
        .arg(&site_dir)
        .arg(&moved)
        .output()
        .unwrap();
    assert!(out.status.success(), "cp site: {out:?}");
    let old_settings = fs::read_to_string(site_dir.join("settings.php")).unwrap();
    let (kept, origin) = settings::keep_or_generate(Some(&old_settings)).unwrap();
    assert_eq!((kept.expose(), origin), (salt.expose(), SaltOrigin::Kept));
    write_settings(&new_root, &render("example.org", &db, &kept));
    let new = Site::new(&new_root, "example.org");

    let before = runner.status(&new).unwrap();
    assert_ne!(before.core, old_version);
    assert!(before.maintenance);
    let pending = before.pending();
    assert!(
        pending.iter().any(|(m, _, _)| *m == "system"),
        "no system updates pending between {old_version} and {}: {before:?}",
        before.core
    );

    let report = runner.updatedb(&new).unwrap();
    let ran: Vec<String> = report
        .updates
        .iter()
        .map(|u| format!("{}_update_{}", u.module, u.number))
        .collect();
    eprintln!("updates {old_version} -> {}: {ran:?}", before.core);
    for (module, from, to) in &pending {
        let mine: Vec<u32> = report
            .updates
            .iter()
            .filter(|u| u.module == *module)
            .map(|u| u.number)
            .collect();
        assert!(!mine.is_empty(), "{module} {from}..{to} not run: {ran:?}");
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "{module} out of order: {mine:?}"
        );
        assert_eq!(i64::from(*mine.last().unwrap()), *to);
        assert!(i64::from(mine[0]) > *from);
    }
    assert!(report.status.pending().is_empty(), "{:?}", report.status);
    for (module, _, to) in &pending {
        assert_eq!(report.status.modules[*module].schema, *to);
    }
    // Nothing left to do: a second run runs nothing.
    assert!(runner.updatedb(&new).unwrap().updates.is_empty());

    let change = runner.maintenance(&new, false).unwrap();
    assert!(change.was && !change.now);
    runner.cache_clear(&new).unwrap();
    let after = runner.status(&new).unwrap();
    assert!(!after.maintenance);
    assert_eq!(after.core, before.core);
    assert!(after.pending().is_empty());
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_on_sqlite_installs_and_migrates() {
    let data = tempfile::tempdir().unwrap();
    install_and_migrate(Database::Sqlite {
        path: data.path().join("example.org.sqlite"),
    });
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_on_mariadb_installs_and_migrates() {
    let db = services::MariaDb::start().expect("MariaDB");
    let password = services::random_password();
    db.sql(&format!(
        "CREATE DATABASE d7_site;\n\
         CREATE USER 'd7_user'@'127.0.0.1' IDENTIFIED BY '{password}';\n\
         GRANT ALL PRIVILEGES ON d7_site.* TO 'd7_user'@'127.0.0.1';\n"
    ));
    install_and_migrate(Database::Mysql {
        at: MysqlAt::Tcp {
            host: "127.0.0.1".into(),
            port: db.port,
        },
        database: "d7_site".into(),
        username: "d7_user".into(),
        password: Secret::new(password),
    });
}

/// Writes module `hoistcheck` into `root`'s sites/all/modules, with the
/// given `.install` body.
fn write_check_module(root: &Path, install: &str) {
    let dir = root.join("sites/all/modules/hoistcheck");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("hoistcheck.info"),
        "name = hoist check\ncore = 7.x\npackage = Testing\n",
    )
    .unwrap();
    fs::write(dir.join("hoistcheck.module"), "<?php\n").unwrap();
    fs::write(dir.join("hoistcheck.install"), install).unwrap();
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_runs_multi_pass_updates_and_names_a_failing_one() {
    let (older, newer) = drupal7_trees();
    let php = php().expect("php-cli");
    let work = tempfile::tempdir().unwrap();
    let old_root = copy_tree(&older, &work.path().join("old"));
    let new_root = copy_tree(&newer, &work.path().join("new"));
    write_check_module(&old_root, "<?php\n");
    // 7001 takes three passes of its sandbox; 7002 fails; 7003 must not run.
    write_check_module(
        &new_root,
        r#"<?php
/** Counts to three. */
function hoistcheck_update_7001(&$sandbox) {
  $sandbox['n'] = isset($sandbox['n']) ? $sandbox['n'] + 1 : 1;
  variable_set('hoistcheck_passes', $sandbox['n']);
  $sandbox['#finished'] = $sandbox['n'] / 3;
  return 'counted to ' . $sandbox['n'];
}
/** Fails. */
function hoistcheck_update_7002() {
  throw new DrupalUpdateException('the widgets table is <em>gone</em>');
}
/** Never reached. */
function hoistcheck_update_7003() {
  variable_set('hoistcheck_7003', TRUE);
}
"#,
    );
    let data = tempfile::tempdir().unwrap();
    let sqlite = data.path().join("example.org.sqlite");
    let db = Database::Sqlite {
        path: sqlite.clone(),
    };
    let salt = HashSalt::generate();
    write_settings(&old_root, &render("example.org", &db, &salt));
    let runner = Runner::new(LocalPhp { program: php });
    let Operation::Install(install) = install_op(db.clone(), "Admin-pass-1") else {
        unreachable!()
    };
    runner
        .install(&Site::new(&old_root, "example.org"), *install)
        .unwrap();
    // Enable the module as a module without updates is enabled.
    let conn = rusqlite::Connection::open(&sqlite).unwrap();
    let changed = conn
        .execute(
            "UPDATE system SET status = 1, schema_version = 0 WHERE name = 'hoistcheck'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1, "Drupal registered the module at install");
    drop(conn);

    write_settings(&new_root, &render("example.org", &db, &salt));
    let new = Site::new(&new_root, "example.org");
    let before = runner.status(&new).unwrap();
    assert_eq!(
        before.modules["hoistcheck"],
        hoist::drupal::runner::ModuleSchema {
            schema: 0,
            code_schema: 7003
        }
    );
    match runner.updatedb(&new).unwrap_err() {
        RunnerError::UpdateFailed {
            module,
            number,
            message,
            done,
            ..
        } => {
            assert_eq!((module.as_str(), number), ("hoistcheck", 7002));
            assert_eq!(message, "the widgets table is gone");
            let mine = done
                .iter()
                .find(|u| u.module == "hoistcheck")
                .expect("7001 done");
            assert_eq!((mine.number, mine.passes), (7001, 3));
            assert_eq!(mine.message, "counted to 3");
            assert_eq!(mine.description, "Counts to three.");
        }
        other => panic!("{other}"),
    }
    let after = runner.status(&new).unwrap();
    assert_eq!(after.modules["hoistcheck"].schema, 7001);
}

/// A copy of `settings.php` compiled before hoist rewrote the file (as
/// php-fpm's opcache keeps one for up to `opcache.revalidate_freq`
/// seconds) runs the file on disk: its database, not the replaced one.
#[test]
fn a_stale_compiled_settings_file_runs_the_file_on_disk() {
    let Some(php) = php() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let salt = HashSalt::new("kept".to_string()).unwrap();
    let db = |name: &str| Database::Sqlite {
        path: tmp.path().join(format!("{name}.sqlite")),
    };
    let (old, new) = (db("replaced"), db("restored"));
    let file = tmp.path().join("settings.php");
    fs::write(&file, render("example.org", &new, &salt)).unwrap();
    let quoted = format!("{:?}", file.to_str().unwrap());
    // The stale copy: the old text, run as if it were that file.
    let stale = render("example.org", &old, &salt).replace("__FILE__", &quoted);
    assert_ne!(
        stale,
        render("example.org", &old, &salt),
        "it names __FILE__"
    );
    let stale_file = tmp.path().join("stale.php");
    fs::write(&stale_file, stale).unwrap();
    // Included from a function, as Drupal includes it.
    let script = format!(
        "function init() {{ global $databases; include {:?}; return $databases; }}\n\
         echo init()['default']['default']['database'];",
        stale_file.to_str().unwrap()
    );
    let (ok, out, err) = run_php(&php, &["-r", &script], b"");
    assert!(ok, "{out}{err}");
    assert_eq!(out, tmp.path().join("restored.sqlite").to_str().unwrap());
    // The file on disk, run itself, is no stale copy: it runs once.
    let script = format!(
        "function init() {{ global $databases; include {:?}; \
         return $databases['default']['default']['database'] . (isset($hoist_settings_reread) ? ' again' : ''); }}\n\
         echo init();",
        file.to_str().unwrap()
    );
    let (ok, out, err) = run_php(&php, &["-r", &script], b"");
    assert!(ok, "{out}{err}");
    assert_eq!(out, tmp.path().join("restored.sqlite").to_str().unwrap());
}
