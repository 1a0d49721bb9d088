//! Drupal 7 sites applied for real, through the `hoist` binary, as an
//! operator would: a site is installed on the older release of
//! `HOIST_DRUPAL7_ROOTS`, given content with Drupal's own API, migrated to
//! the newer release (its pending `system_update_N` run, a log line each),
//! renamed, cloned, backed up and restored, with its nodes, files and
//! rows compared and its pages and files fetched through nginx with the
//! site's Host header. Kills at several steps are recovered by the next
//! run, and a throwing update rolls the migrate back with the site online.
//!
//! Ignored: Drupal's code is not part of this repository (see the README,
//! "Real Drupal in tests").

mod common;
mod drupal_trees;
mod services;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Fixture, Run};
use serde_json::Value;
use services::{http_get, MariaDb, Nginx, PhpFpm, Sshd};

/// The site's database, as `hoist.yaml` declares it.
enum Db<'a> {
    Sqlite,
    Maria(&'a MariaDb),
    /// MariaDB reached through its unix socket (Drupal's `unix_socket`).
    MariaSocket(&'a MariaDb),
}

/// An inventory with the two Drupal 7 releases as platforms `old` and
/// `new`, nginx and php-fpm serving the server's sites.
struct World<'a> {
    f: Fixture,
    nginx: &'a Nginx,
    old: (String, PathBuf),
    new: (String, PathBuf),
}

impl<'a> World<'a> {
    fn new(db: Db<'_>, fpm: &PhpFpm, nginx: &'a Nginx) -> World<'a> {
        let (old, new) = drupal_trees::drupal7_pair();
        let tmp = tempfile::tempdir().unwrap();
        let f = Fixture { tmp };
        let database = match db {
            Db::Sqlite => "  default: { kind: sqlite }\n".to_string(),
            Db::Maria(m) => services::mysql_database_yaml("default", m),
            Db::MariaSocket(m) => format!(
                "  default:\n    kind: mysql\n    socket: {}\n    admin_user: {}\n    admin_password_file: {}\n",
                m.socket.display(),
                m.admin_user,
                m.admin_password_file.display()
            ),
        };
        f.write(
            "hoist.yaml",
            &format!(
                "servers:\n{server}\
                 databases:\n{database}\
                 defaults: {{ server: local, database: default }}\n\
                 health: {{ path: /, expect_status: 200, expect_text: \"Drupal 7\", timeout_s: 60 }}\n\
                 status: {{ commit: false }}\n",
                server = services::local_nginx_server_yaml(
                    &f.host().display().to_string(),
                    nginx,
                    fpm,
                    &nginx.conf_dir,
                    nginx.port,
                ),
            ),
        );
        for (name, (_, tree)) in [("old", &old), ("new", &new)] {
            f.write(
                &format!("platforms/{name}.yaml"),
                &format!("source: {{ path: {} }}\nkind: drupal\n", tree.display()),
            );
        }
        World { f, nginx, old, new }
    }

    fn site(&self, name: &str, domain: &str, platform: &str, extra: &str) {
        self.f.write(
            &format!("sites/{name}.yaml"),
            &format!("domain: {domain}\nplatform: {platform}\nprofile: standard\n{extra}"),
        );
    }

    fn apply(&self) -> Run {
        self.f.run(&["apply", "--yes"])
    }

    fn applied(&self) -> Run {
        let r = self.apply();
        assert_eq!(r.code, 0, "{}", r.all());
        r
    }

    fn site_dir(&self, platform: &str, domain: &str) -> PathBuf {
        self.f
            .host()
            .join("platforms")
            .join(platform)
            .join("sites")
            .join(domain)
    }

    /// Runs `op` of [`DRUPAL_SCRIPT`] with Drupal bootstrapped on the site
    /// `domain` of `platform`, and returns its JSON answer.
    fn drupal(&self, platform: &str, domain: &str, op: &str) -> Value {
        self.drupal_in(&self.f.host(), platform, domain, op)
    }

    /// [`World::drupal`] on the server whose root is `server_root`.
    fn drupal_in(&self, server_root: &Path, platform: &str, domain: &str, op: &str) -> Value {
        let script = self.f.tmp.path().join("drupal-script.php");
        std::fs::write(&script, DRUPAL_SCRIPT).unwrap();
        let root = server_root.join("platforms").join(platform);
        let out = Command::new("php")
            .args(["-d", "display_errors=stderr"])
            .arg(&script)
            .arg(&root)
            .arg(domain)
            .arg(op)
            .output()
            .expect("php runs");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "{op} on {domain}: {e}: {text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// GET `path` with Host `host` through nginx.
    fn get(&self, host: &str, path: &str) -> (u16, String) {
        let r = http_get(self.nginx.port, host, path).expect("GET");
        (r.status, r.text())
    }

    fn last_task_log(&self) -> String {
        let t = common::last_task(&self.f);
        t["log"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_else(|| t.to_string())
    }
}

/// Drupal's own API, from the command line: `add` makes a file and an
/// article whose body links to it; `dump` reads back nodes, files, users,
/// schemas and the maintenance variable.
const DRUPAL_SCRIPT: &str = r#"<?php
list(, $root, $host, $op) = $argv;
chdir($root);
define('DRUPAL_ROOT', getcwd());
require_once DRUPAL_ROOT . '/includes/bootstrap.inc';
drupal_override_server_variables(array('url' => "http://$host/index.php"));
drupal_bootstrap(DRUPAL_BOOTSTRAP_FULL);
ob_start();
if ($op === 'add') {
  $file = file_save_data('hello from hoist', 'public://hello.txt', FILE_EXISTS_REPLACE);
  $node = new stdClass();
  $node->type = 'article';
  node_object_prepare($node);
  $node->title = 'First article';
  $node->language = LANGUAGE_NONE;
  $node->uid = 1;
  $link = '/' . variable_get('file_public_path', conf_path() . '/files') . '/hello.txt';
  $node->body[LANGUAGE_NONE][0] = array('value' => "<a href=\"$link\">hello</a>", 'summary' => "see $link", 'format' => 'filtered_html');
  node_save($node);
  $out = array('nid' => (int) $node->nid, 'fid' => (int) $file->fid, 'link' => $link);
}
elseif ($op === 'add-more') {
  $node = new stdClass();
  $node->type = 'page';
  node_object_prepare($node);
  $node->title = 'Made after the backup';
  $node->language = LANGUAGE_NONE;
  $node->uid = 1;
  node_save($node);
  $out = array('nid' => (int) $node->nid);
}
else {
  $out = array(
    'nodes' => db_query('SELECT n.nid, n.type, n.title, b.body_value, b.body_summary FROM {node} n LEFT JOIN {field_data_body} b ON b.entity_id = n.nid ORDER BY n.nid')->fetchAll(),
    'files' => db_query('SELECT fid, uri, filesize FROM {file_managed} ORDER BY fid')->fetchAll(),
    'users' => db_query('SELECT uid, name, pass, mail FROM {users} ORDER BY uid')->fetchAll(),
    'schema' => db_query("SELECT name, schema_version FROM {system} WHERE type = 'module' AND status = 1 ORDER BY name")->fetchAllKeyed(),
    'maintenance' => (int) variable_get('maintenance_mode', 0),
    'site_name' => variable_get('site_name', ''),
  );
}
ob_end_clean();
echo json_encode($out), "\n";
"#;

/// The salt of a site's settings.php.
fn salt(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("settings.php")).unwrap();
    hoist::drupal::settings::existing_salt(&text)
        .unwrap()
        .expect("a salt")
}

/// Install, content, migrate with pending updates, rename, clone,
/// backup and restore, each checked through Drupal and nginx.
fn lifecycle(db: Db<'_>, fpm: &PhpFpm, nginx: &Nginx) {
    let w = World::new(db, fpm, nginx);
    let (old_v, new_v) = (w.old.0.clone(), w.new.0.clone());

    // Install on the older release.
    w.site("shop", "shop.example.com", "old", "");
    let plan = w.f.ok(&["plan"], 0);
    assert!(plan.stdout.contains("shop"), "{}", plan.all());
    let r = w.applied();
    // Drupal's own sites/all and sites/default are no sites of hoist's.
    assert!(!r.stderr.contains("sites/all"), "{}", r.all());
    let again = w.f.ok(&["plan"], 0);
    assert!(!again.all().contains("sites/default"), "{}", again.all());
    let dir = w.site_dir("old", "shop.example.com");
    let (code, page) = w.get("shop.example.com", "/");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("shop"), "{page}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("settings.php")), 0o600);
        assert_ne!(mode(&dir) & 0o200, 0, "the site directory stays writable");
    }
    let salt0 = salt(&dir);

    // Content through Drupal's API; its file served by nginx.
    let added = w.drupal("old", "shop.example.com", "add");
    let link = added["link"].as_str().unwrap().to_string();
    assert_eq!(link, "/sites/shop.example.com/files/hello.txt");
    assert_eq!(w.get("shop.example.com", &link).1, "hello from hoist");
    let before = w.drupal("old", "shop.example.com", "dump");
    assert_eq!(before["nodes"].as_array().unwrap().len(), 1);

    // Migrate to the newer release: the plan lists system's pending
    // updates, the task runs them, a log line each.
    w.site("shop", "shop.example.com", "new", "");
    let plan = w.f.ok(&["plan"], 0);
    assert!(
        plan.stdout
            .contains(&format!("system: upgrade {old_v} -> {new_v}")),
        "{}",
        plan.all()
    );
    let r = w.applied();
    let log = w.last_task_log();
    eprintln!("the migrate's task log:\n{log}");
    assert!(
        log.contains("applied update system_update_"),
        "{log}\n{}",
        r.all()
    );
    let ndir = w.site_dir("new", "shop.example.com");
    assert!(!dir.exists(), "the old copy is removed");
    let after = w.drupal("new", "shop.example.com", "dump");
    for k in ["nodes", "files", "users"] {
        assert_eq!(before[k], after[k], "{k} survive the migrate");
    }
    let new_schema = |v: &Value| {
        v["schema"]["system"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
    };
    assert!(new_schema(&after) > new_schema(&before), "{after}");
    assert_eq!(after["maintenance"], 0);
    assert_eq!(salt(&ndir), salt0, "the salt is kept: sessions survive");
    assert_eq!(w.get("shop.example.com", &link).1, "hello from hoist");
    let (code, page) = w.get("shop.example.com", "/node/1");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("First article"), "{page}");

    // Rename: paths under sites/<old domain>/ follow the site.
    w.site("shop", "shop2.example.com", "new", "");
    w.applied();
    let rdir = w.site_dir("new", "shop2.example.com");
    assert!(rdir.join("files/hello.txt").is_file());
    assert!(!ndir.exists());
    let renamed = w.drupal("new", "shop2.example.com", "dump");
    let body = renamed["nodes"][0]["body_value"].as_str().unwrap();
    assert!(
        body.contains("/sites/shop2.example.com/files/hello.txt"),
        "{body}"
    );
    assert!(!body.contains("shop.example.com/"), "{body}");
    assert_eq!(renamed["files"], before["files"]);
    assert_eq!(renamed["users"], before["users"]);
    assert_eq!(
        w.get(
            "shop2.example.com",
            "/sites/shop2.example.com/files/hello.txt"
        )
        .1,
        "hello from hoist"
    );
    let (code, page) = w.get("shop2.example.com", "/node/1");
    assert_eq!(code, 200, "{page}");

    // Clone: a copy under its own domain; the source only read.
    w.site("shop-copy", "copy.example.com", "new", "clone_from: shop\n");
    w.applied();
    let copy = w.drupal("new", "copy.example.com", "dump");
    assert_eq!(copy["users"], before["users"]);
    assert!(copy["nodes"][0]["body_value"]
        .as_str()
        .unwrap()
        .contains("/sites/copy.example.com/files/hello.txt"));
    assert_eq!(w.get("copy.example.com", "/").0, 200);
    assert_eq!(w.drupal("new", "shop2.example.com", "dump"), renamed);
    // Drupal's site name is the owners': the copy keeps it.
    assert_eq!(copy["site_name"], before["site_name"]);
    assert_eq!(copy["site_name"], "shop");

    // Backup, a change, restore: the change is gone, the rest is back.
    w.f.ok(&["backup", "shop"], 0);
    let archives = common::backup_archives(&w.f, "shop");
    let newest = archives.last().unwrap();
    // Every byte of the archive (settings.php included) is free of the
    // database password; settings.php in it keeps its salt.
    let (_, password) = common::settings_of(&w.f, "new", "shop2.example.com");
    let content = Command::new("tar")
        .arg("-xOzf")
        .arg(newest)
        .output()
        .unwrap();
    assert!(content.status.success());
    let content = String::from_utf8_lossy(&content.stdout);
    assert!(
        !content.contains(&password),
        "the backup holds the password"
    );
    assert!(content.contains(&format!("$drupal_hash_salt = '{salt0}'")));
    w.drupal("new", "shop2.example.com", "add-more");
    assert_eq!(
        w.drupal("new", "shop2.example.com", "dump")["nodes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    w.f.ok(&["restore", "shop"], 0);
    let restored = w.drupal("new", "shop2.example.com", "dump");
    assert_eq!(restored["nodes"], renamed["nodes"]);
    assert_eq!(restored["users"], renamed["users"]);
    assert_eq!(restored["maintenance"], 0);
    let (code, page) = w.get("shop2.example.com", "/node/1");
    assert_eq!(code, 200, "{page}\n{}", w.nginx.error_log());
}

/// The file name of the one archive in `after` that is not in `before`.
fn new_archive(before: &[PathBuf], after: &[PathBuf]) -> PathBuf {
    let made: Vec<&PathBuf> = after.iter().filter(|a| !before.contains(a)).collect();
    assert_eq!(made.len(), 1, "one backup made: {made:?}");
    made[0].clone()
}

/// The `update` task on a real site, and both kinds of restore. A full
/// backup taken on the older release, restored after the site moved to
/// the newer one, puts every row back as it was then, and its files: the
/// site is then behind its platform (system_update_7087 and 7088 pending),
/// which `plan` shows as `update` and `apply` runs in place, a log line
/// each. A rename on its own platform takes a database-only backup;
/// restoring it puts the rows back with their paths under the site's
/// present domain, and keeps the files the site has now.
fn update_and_restores(db: Db<'_>, fpm: &PhpFpm, nginx: &Nginx) {
    let socket = matches!(db, Db::MariaSocket(_));
    let w = World::new(db, fpm, nginx);
    let new_v = w.new.0.clone();
    w.site("shop", "shop.example.com", "old", "");
    w.applied();
    let php = std::fs::read_to_string(w.site_dir("old", "shop.example.com").join("settings.php"))
        .unwrap();
    assert_eq!(php.contains("'unix_socket' => "), socket, "{php}");
    let added = w.drupal("old", "shop.example.com", "add");
    let link = added["link"].as_str().unwrap().to_string();
    let on_old = w.drupal("old", "shop.example.com", "dump");

    // A full backup on 7.98, then the migrate to the newer release.
    w.f.ok(&["backup", "shop"], 0);
    let old_backup = common::backup_archives(&w.f, "shop").pop().unwrap();
    w.site("shop", "shop.example.com", "new", "");
    w.applied();
    let dir = w.site_dir("new", "shop.example.com");
    let migrated = w.drupal("new", "shop.example.com", "dump");
    assert_ne!(migrated["schema"], on_old["schema"], "the migrate updated");

    // Changes after the backup: a node made, the file deleted.
    w.drupal("new", "shop.example.com", "add-more");
    std::fs::remove_file(dir.join("files/hello.txt")).unwrap();
    assert_eq!(w.get("shop.example.com", &link).0, 404);

    // Full restore of the 7.98 backup onto the 7.103 code, by name.
    let name = old_backup.file_name().unwrap().to_str().unwrap();
    let r = w.f.ok(&["restore", "shop", name], 0);
    assert!(r.stdout.contains("restored from:"), "{}", r.all());
    let restored = w.drupal("new", "shop.example.com", "dump");
    for k in ["nodes", "files", "users", "schema", "site_name"] {
        assert_eq!(restored[k], on_old[k], "{k} as in the backup");
    }
    assert_eq!(restored["maintenance"], 0);
    assert_eq!(w.get("shop.example.com", &link).1, "hello from hoist");
    let (code, page) = w.get("shop.example.com", "/node/1");
    assert_eq!(code, 200, "{page}");

    // Behind its platform: an `update`, listing system's pending updates.
    let plan = w.f.ok(&["plan", "--format", "json"], 0);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    let shop = common::site(&plan, "shop");
    assert_eq!(shop["action"], "update", "{shop}");
    assert_eq!(shop["blocked"], false, "{shop}");
    let system = common::verdict(shop, "system");
    assert_eq!(system["verdict"], "upgrade", "{system}");
    let pending: Vec<u64> = system["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert!(
        pending.contains(&7087) && pending.contains(&7088),
        "{pending:?}"
    );
    let text = w.f.ok(&["plan"], 0).stdout;
    assert!(
        text.contains(&format!("-> {new_v}, updates 7087, 7088")),
        "{text}"
    );

    // The update failing after each of its steps is rolled back: the
    // database kept before the updates is put back, the site online.
    for point in [
        "keep-copy:after",
        "update:after",
        "clear-caches:after",
        "maintenance-off:after",
    ] {
        let r = w.f.with_failpoint(&["apply", "--yes"], point);
        assert_eq!(r.status.code(), Some(1), "{point}");
        let log = w.last_task_log();
        assert!(log.contains("rolled back"), "{point}: {log}");
        let now = w.drupal("new", "shop.example.com", "dump");
        assert_eq!(now, restored, "{point}: as before the update");
        assert_eq!(w.get("shop.example.com", "/node/1").0, 200, "{point}");
    }
    // Killed with its updates run: the next run puts the kept database
    // back first, then updates again.
    let out =
        w.f.with_failpoint(&["apply", "--yes"], "update:abort-after");
    assert!(!out.status.success(), "the kill happened");

    let r = w.applied();
    assert!(r.stdout.contains("success  update shop"), "{}", r.all());
    assert!(
        r.all().contains("recovered"),
        "the killed update was recovered first: {}",
        r.all()
    );
    let log = w.last_task_log();
    eprintln!("the update's task log:\n{log}");
    for n in &pending {
        assert!(
            log.contains(&format!("applied update system_update_{n}")),
            "{log}"
        );
    }
    let updated = w.drupal("new", "shop.example.com", "dump");
    for k in ["nodes", "files", "users", "site_name"] {
        assert_eq!(updated[k], on_old[k], "{k} survive the update");
    }
    assert_eq!(updated["schema"]["system"], migrated["schema"]["system"]);
    assert!(
        updated["schema"].get("announcements_feed").is_some(),
        "system_update_7087 enabled announcements_feed: {}",
        updated["schema"]
    );
    assert_eq!(updated["maintenance"], 0);
    assert_eq!(w.get("shop.example.com", "/node/1").0, 200);
    let plan = w.f.ok(&["plan", "--format", "json"], 0);
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(common::site(&plan, "shop")["action"], "noop", "{plan}");

    // A rename on its own platform takes a database-only backup.
    let before = common::backup_archives(&w.f, "shop");
    w.site("shop", "shop2.example.com", "new", "");
    w.applied();
    let db_backup = new_archive(&before, &common::backup_archives(&w.f, "shop"));
    let m = hoist::backup::read_manifest(&hoist::driver::host::OnHost::local(&db_backup)).unwrap();
    assert_eq!(m.scope, hoist::backup::Scope::Database);
    assert_eq!(m.domain.as_str(), "shop.example.com");
    let renamed = w.drupal("new", "shop2.example.com", "dump");
    let rdir = w.site_dir("new", "shop2.example.com");

    // After it: a node made, a file added by hand.
    w.drupal("new", "shop2.example.com", "add-more");
    std::fs::write(rdir.join("files/later.txt"), "made after the rename").unwrap();
    let name = db_backup.file_name().unwrap().to_str().unwrap();
    w.f.ok(&["restore", "shop", name], 0);
    let back = w.drupal("new", "shop2.example.com", "dump");
    for k in ["nodes", "files", "users", "schema", "site_name"] {
        assert_eq!(back[k], renamed[k], "{k}: the database as at the rename");
    }
    let body = back["nodes"][0]["body_value"].as_str().unwrap();
    assert!(
        body.contains("/sites/shop2.example.com/files/hello.txt"),
        "paths under the present domain: {body}"
    );
    assert_eq!(back["maintenance"], 0);
    assert_eq!(
        std::fs::read_to_string(rdir.join("files/later.txt")).unwrap(),
        "made after the rename",
        "a database-only restore keeps the present files"
    );
    assert_eq!(
        w.get(
            "shop2.example.com",
            "/sites/shop2.example.com/files/hello.txt"
        )
        .1,
        "hello from hoist"
    );
    assert_eq!(w.get("shop2.example.com", "/node/1").0, 200);
}

/// Everything a site is, as far as a failed or killed migrate may touch
/// it: Drupal's rows, where it lives, what nginx serves.
fn snapshot(w: &World<'_>, platform: &str) -> (Value, u16, Vec<String>) {
    let dump = w.drupal(platform, "shop.example.com", "dump");
    let status = w.get("shop.example.com", "/node/1").0;
    let mut sites: Vec<String> = ["old", "new", "bad"]
        .iter()
        .flat_map(|p| {
            std::fs::read_dir(w.f.host().join("platforms").join(p).join("sites"))
                .into_iter()
                .flatten()
                .flatten()
                .map(move |e| format!("{p}/{}", e.file_name().to_string_lossy()))
        })
        .filter(|n| n.ends_with(".example.com"))
        .collect();
    sites.sort();
    (dump, status, sites)
}

/// A copy of the newer release whose `system_update_7088` throws, as a
/// broken update would.
fn throwing_release(w: &World<'_>) -> PathBuf {
    let tree = w.f.tmp.path().join("trees/bad");
    std::fs::create_dir_all(tree.parent().unwrap()).unwrap();
    hoist::fsutil::copy_tree(&w.new.1, &tree, false).unwrap();
    let install = tree.join("modules/system/system.install");
    let text = std::fs::read_to_string(&install).unwrap();
    let patched = text.replacen(
        "function system_update_7088() {",
        "function system_update_7088() {\n  throw new DrupalUpdateException('hoist test: this update fails');",
        1,
    );
    assert_ne!(
        text,
        patched,
        "system_update_7088 is in {}",
        install.display()
    );
    std::fs::write(&install, patched).unwrap();
    tree
}

/// A migrate killed at each of several steps is recovered by the next run
/// (undone before it committed, finished after), and a migrate whose
/// update throws is rolled back with Drupal's message: each time the site
/// is as it was, online, with every row.
fn kills_and_a_throwing_update(db: Db<'_>, fpm: &PhpFpm, nginx: &Nginx) {
    let maria = !matches!(db, Db::Sqlite);
    let w = World::new(db, fpm, nginx);
    w.site("shop", "shop.example.com", "old", "");
    w.applied();
    w.drupal("old", "shop.example.com", "add");
    let before = snapshot(&w, "old");
    assert_eq!(before.1, 200);
    assert_eq!(before.2, vec!["old/shop.example.com".to_string()]);

    for point in [
        "deploy:abort-after",
        "update:abort-after",
        "fix-paths:abort",
        "maintenance-off:abort-after",
        "preview:abort-after",
        "switch:abort-after",
    ] {
        w.site("shop", "shop.example.com", "new", "");
        let out = w.f.with_failpoint(&["apply", "--yes"], point);
        assert!(!out.status.success(), "{point}: the kill happened");
        // The next run, with the site declared where it was, recovers.
        w.site("shop", "shop.example.com", "old", "");
        let r = w.applied();
        let now = snapshot(&w, "old");
        assert_eq!(now.0["nodes"], before.0["nodes"], "{point}: {}", r.all());
        assert_eq!(now.0["files"], before.0["files"], "{point}");
        assert_eq!(now.0["schema"], before.0["schema"], "{point}");
        assert_eq!(now.0["maintenance"], 0, "{point}: back online");
        assert_eq!(now.1, 200, "{point}: served");
        assert_eq!(now.2, before.2, "{point}: nothing left behind");
    }

    // A throwing update: the migrate fails with Drupal's message, the
    // update before it is in the log, and the site is back as it was.
    let bad = throwing_release(&w);
    w.f.write(
        "platforms/bad.yaml",
        &format!("source: {{ path: {} }}\nkind: drupal\n", bad.display()),
    );
    w.site("shop", "shop.example.com", "bad", "");
    let r = w.apply();
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.all().contains("system_update_7088") && r.all().contains("hoist test: this update fails"),
        "{}",
        r.all()
    );
    let log = w.last_task_log();
    assert!(log.contains("applied update system_update_7087"), "{log}");
    assert!(log.contains("rolled back"), "{log}");
    let now = snapshot(&w, "old");
    assert_eq!(now.0, before.0);
    assert_eq!((now.1, &now.2), (200, &before.2));

    // Killed after its commit point: the next run finishes it forward.
    w.site("shop", "shop.example.com", "new", "");
    let out = w.f.with_failpoint(&["apply", "--yes"], "remove-old:abort");
    assert!(!out.status.success());
    let r = w.applied();
    let now = snapshot(&w, "new");
    assert_eq!(now.0["nodes"], before.0["nodes"], "{}", r.all());
    assert_eq!(now.0["maintenance"], 0);
    assert_eq!(now.1, 200);
    assert_eq!(now.2, vec!["new/shop.example.com".to_string()]);

    // A rename failing or killed at each step after its deploy (on MariaDB
    // its tables moved into the new database: the site's only copy) is
    // put back by its undo: tables, paths under sites/<domain>/ and all.
    let before = snapshot(&w, "new");
    let link = "/sites/shop.example.com/files/hello.txt";
    assert_eq!(w.get("shop.example.com", link).1, "hello from hoist");
    for point in [
        "deploy:error",
        "deploy-inside:abort",
        "fix-paths:abort-after",
        "clear-caches:error",
        "verify:abort-after",
        "preview:error",
        "switch:abort-after",
    ] {
        w.site("shop", "shop2.example.com", "new", "");
        let out = w.f.with_failpoint(&["apply", "--yes"], point);
        assert!(!out.status.success(), "{point}: it failed");
        if point.ends_with(":error") && point != "deploy:error" {
            let log = w.last_task_log();
            assert_eq!(
                log.contains("RENAME TABLE, no row copied"),
                maria,
                "{point}: tables moved on MariaDB only: {log}"
            );
            assert!(log.contains("rolled back"), "{point}: {log}");
        }
        w.site("shop", "shop.example.com", "new", "");
        let r = w.applied();
        let now = snapshot(&w, "new");
        assert_eq!(now.0, before.0, "{point}: {}", r.all());
        assert_eq!((now.1, &now.2), (200, &before.2), "{point}");
        assert_eq!(
            w.get("shop.example.com", link).1,
            "hello from hoist",
            "{point}"
        );
    }
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_kills_and_a_throwing_update_on_sqlite() {
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    kills_and_a_throwing_update(Db::Sqlite, &fpm, &nginx);
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_kills_and_a_throwing_update_on_mariadb() {
    let db = MariaDb::start().expect("mariadb");
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    kills_and_a_throwing_update(Db::Maria(&db), &fpm, &nginx);
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_lifecycle_on_sqlite() {
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    lifecycle(Db::Sqlite, &fpm, &nginx);
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_lifecycle_on_mariadb() {
    let db = MariaDb::start().expect("mariadb");
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    lifecycle(Db::Maria(&db), &fpm, &nginx);
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_update_and_restores_on_sqlite() {
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    update_and_restores(Db::Sqlite, &fpm, &nginx);
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_update_and_restores_on_mariadb() {
    let db = MariaDb::start().expect("mariadb");
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    update_and_restores(Db::Maria(&db), &fpm, &nginx);
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_update_and_restores_on_mariadb_through_its_socket() {
    let db = MariaDb::start().expect("mariadb");
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    update_and_restores(Db::MariaSocket(&db), &fpm, &nginx);
}

/// Drupal 7 on a server reached over ssh (issue 14): a site moved there
/// from this machine (its files and dump streamed there, its updates run
/// by php on that server, its health checked through that server's
/// nginx), then a site installed there by Drupal's installer run over ssh
/// and migrated between that server's platforms. The "remote" server is
/// this machine, so the test reads its sites' databases with Drupal's API
/// directly.
fn over_ssh(db: &MariaDb, fpm: &PhpFpm, nginx: &Nginx) {
    let sshd = Sshd::start().expect("sshd");
    let nginx2 = Nginx::start().expect("a second nginx");
    let w = World::new(Db::Maria(db), fpm, nginx);
    let (old_v, new_v) = (w.old.0.clone(), w.new.0.clone());
    let root2 = w.f.tmp.path().join("web2 root");
    let web2 = format!(
        "  web2:\n    kind: ssh\n    host: {host}\n    port: {port}\n    user: {user}\n    \
         root: {root}\n    known_hosts: {kh}\n    identity_file: {id}\n    web:\n      \
         kind: nginx\n      conf_dir: {conf}\n      listen: 127.0.0.1:{web}\n      \
         php_fpm: unix:{sock}\n      test: {test}\n      reload: {reload}\n      \
         check_url: http://127.0.0.1:{web}\n",
        host = sshd.host,
        port = sshd.port,
        user = sshd.user,
        root = root2.display(),
        kh = sshd.known_hosts.display(),
        id = sshd.identity_file.display(),
        conf = nginx2.conf_dir.display(),
        web = nginx2.port,
        sock = fpm.socket.display(),
        test = nginx2.command_line(false),
        reload = nginx2.command_line(true),
    );
    let yaml = w.f.read("hoist.yaml");
    w.f.write(
        "hoist.yaml",
        &yaml.replacen("databases:\n", &format!("{web2}databases:\n"), 1),
    );
    for (name, (_, tree)) in [("old2", &w.old), ("new2", &w.new)] {
        w.f.write(
            &format!("platforms/{name}.yaml"),
            &format!(
                "source: {{ path: {} }}\nkind: drupal\nserver: web2\n",
                tree.display()
            ),
        );
    }
    let get2 = |host: &str, path: &str| {
        let r = http_get(nginx2.port, host, path).expect("GET");
        (r.status, r.text())
    };

    // A site installed here, given content, then moved onto web2's newer
    // release.
    w.site("shop", "shop.example.com", "old", "");
    w.applied();
    let dir = w.site_dir("old", "shop.example.com");
    let salt0 = salt(&dir);
    let added = w.drupal("old", "shop.example.com", "add");
    let link = added["link"].as_str().unwrap().to_string();
    let before = w.drupal("old", "shop.example.com", "dump");
    w.site("shop", "shop.example.com", "new2", "");
    let plan = w.f.ok(&["plan"], 0);
    assert!(
        plan.stdout
            .contains("(server local) -> shop.example.com on new2 (server web2)")
            && plan
                .stdout
                .contains(&format!("system: upgrade {old_v} -> {new_v}")),
        "{}",
        plan.all()
    );
    let r = w.applied();
    let log = w.last_task_log();
    assert!(
        log.contains("applied update system_update_") && log.contains("to server web2"),
        "{log}\n{}",
        r.all()
    );
    assert!(!dir.exists(), "the old copy is removed");
    let ndir = root2.join("platforms/new2/sites/shop.example.com");
    let after = w.drupal_in(&root2, "new2", "shop.example.com", "dump");
    for k in ["nodes", "files", "users"] {
        assert_eq!(before[k], after[k], "{k} survive the move");
    }
    assert_ne!(before["schema"], after["schema"], "the updates ran on web2");
    assert_eq!(after["maintenance"], 0);
    assert_eq!(salt(&ndir), salt0, "the salt is kept: sessions survive");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ndir.join("settings.php"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(get2("shop.example.com", &link).1, "hello from hoist");
    let (code, page) = get2("shop.example.com", "/node/1");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("First article"), "{page}");

    // A site installed on web2 by Drupal's installer run there, then
    // migrated between web2's platforms.
    w.site("blog", "blog.example.com", "old2", "");
    w.applied();
    let bdir = root2.join("platforms/old2/sites/blog.example.com");
    assert!(bdir.join("settings.php").is_file());
    let installed = w.drupal_in(&root2, "old2", "blog.example.com", "dump");
    assert_eq!(
        installed["users"].as_array().unwrap().len(),
        2,
        "{installed}"
    );
    let (code, page) = get2("blog.example.com", "/");
    assert_eq!(code, 200, "{page}");
    w.site("blog", "blog.example.com", "new2", "");
    w.applied();
    let log = w.last_task_log();
    assert!(log.contains("applied update system_update_"), "{log}");
    let migrated = w.drupal_in(&root2, "new2", "blog.example.com", "dump");
    assert_eq!(installed["users"], migrated["users"]);
    assert!(!bdir.exists());
    w.f.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
#[ignore = "needs real Drupal 7 trees: set HOIST_DRUPAL7_ROOTS"]
fn real_drupal7_over_ssh_on_mariadb() {
    let db = MariaDb::start().expect("mariadb");
    let fpm = PhpFpm::start().expect("php-fpm");
    let nginx = Nginx::start().expect("nginx");
    over_ssh(&db, &fpm, &nginx);
}
