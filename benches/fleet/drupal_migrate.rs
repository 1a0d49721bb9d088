//! Scenario `drupal-migrate` (issue 13, item 7): a real Drupal 7 migrate
//! from the oldest to the newest release under `HOIST_DRUPAL7_ROOTS` of a
//! site with 10,000 nodes on MariaDB: how long it answers 503 (its
//! maintenance span, from the task record), against copying its database
//! and files by hand. Needs `HOIST_DRUPAL7_ROOTS` and MariaDB; skipped
//! with a message without them.
//!
//! The site is installed by `hoist apply` (Drupal's installer); its nodes
//! are made server-side in SQL, as Drupal's `node_save()` leaves them
//! (node, revision, body field data and revision), so that making them
//! takes seconds rather than minutes on a busy machine.

use std::path::{Path, PathBuf};

use super::{hoist_ok, logs_dir, say, secs, sh, Row};

const NODES: usize = 10_000;
const DOMAIN: &str = "big.example.com";

/// The oldest and newest Drupal 7 releases under `HOIST_DRUPAL7_ROOTS`.
fn oldest_and_newest() -> Option<(PathBuf, PathBuf)> {
    let mut trees = super::drupal_live::d7_trees();
    if trees.len() < 2 {
        return None;
    }
    let newest = trees.pop()?;
    Some((trees.swap_remove(0), newest))
}

/// SQL making `NODES` articles with bodies, as `node_save()` leaves them,
/// from MariaDB's sequence engine.
fn nodes_sql() -> String {
    format!(
        "INSERT INTO node (nid, vid, type, language, title, uid, status, created, changed, comment, promote, sticky, tnid, translate) \
           SELECT seq, seq, 'article', 'und', CONCAT('Article ', seq), 1, 1, 1700000000 + seq, 1700000000 + seq, 2, 1, 0, 0, 0 FROM seq_1_to_{NODES};\n\
         INSERT INTO node_revision (nid, vid, uid, title, log, timestamp, status, comment, promote, sticky) \
           SELECT seq, seq, 1, CONCAT('Article ', seq), '', 1700000000 + seq, 1, 2, 1, 0 FROM seq_1_to_{NODES};\n\
         INSERT INTO node_comment_statistics (nid, cid, last_comment_timestamp, last_comment_name, last_comment_uid, comment_count) \
           SELECT seq, 0, 1700000000 + seq, NULL, 1, 0 FROM seq_1_to_{NODES};\n\
         INSERT INTO field_data_body (entity_type, bundle, deleted, entity_id, revision_id, language, delta, body_value, body_summary, body_format) \
           SELECT 'node', 'article', 0, seq, seq, 'und', 0, REPEAT(CONCAT('Body of article ', seq, '. '), 40), '', 'filtered_html' FROM seq_1_to_{NODES};\n\
         INSERT INTO field_revision_body (entity_type, bundle, deleted, entity_id, revision_id, language, delta, body_value, body_summary, body_format) \
           SELECT entity_type, bundle, deleted, entity_id, revision_id, language, delta, body_value, body_summary, body_format FROM field_data_body;\n\
         SELECT COUNT(*) FROM node;\n"
    )
}

/// The scenario's row, or none (with a message).
pub fn run(dir: &Path) -> Vec<Row> {
    let Some((old, new)) = oldest_and_newest() else {
        say("drupal-migrate: HOIST_DRUPAL7_ROOTS names fewer than two Drupal 7 trees; skipped");
        return vec![];
    };
    let Some(db) = super::mysql::MariaDb::start() else {
        say("drupal-migrate: MariaDB is not installed; skipped");
        return vec![];
    };
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    let host = dir.join("host");
    let work = dir.join("work");
    for d in [inv.join("platforms"), inv.join("sites"), work.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        inv.join("hoist.yaml"),
        format!(
            "servers:\n  local: {{ kind: local, root: {host} }}\n\
             databases:\n  maria:\n    kind: mysql\n    host: 127.0.0.1\n    port: {port}\n    \
             admin_user: {admin}\n    admin_password_file: {pw}\n\
             defaults: {{ server: local, database: maria }}\n\
             status: {{ commit: false }}\n",
            host = host.display(),
            port = db.port,
            admin = db.admin_user,
            pw = db.admin_password_file.display(),
        ),
    )
    .unwrap();
    for (name, tree) in [("old", &old), ("new", &new)] {
        std::fs::write(
            inv.join(format!("platforms/{name}.yaml")),
            format!("source: {{ path: {} }}\nkind: drupal\n", tree.display()),
        )
        .unwrap();
    }
    let site =
        |platform: &str| format!("domain: {DOMAIN}\nplatform: {platform}\nprofile: standard\n");
    std::fs::write(inv.join("sites/big.yaml"), site("old")).unwrap();
    let m = hoist_ok(
        &inv,
        &["apply", "--yes"],
        &logs,
        "drupal-migrate-install",
        0,
    );
    say(format!(
        "drupal-migrate: the site installed by `hoist apply` in {:.1} s",
        secs(m.wall)
    ));

    let site_dir = host.join("platforms/old/sites").join(DOMAIN);
    let settings = hoist::yaml::from_str::<hoist::render::SettingsFile>(
        &std::fs::read_to_string(site_dir.join("settings.yaml")).unwrap(),
    )
    .unwrap();
    let name = settings.database.name.clone();
    let (client, dump, cnf) = (
        db.client.display().to_string(),
        db.dump.display().to_string(),
        db.admin_defaults_file.display().to_string(),
    );
    let sql = work.join("nodes.sql");
    std::fs::write(&sql, nodes_sql()).unwrap();
    let made = sh(
        &format!(
            "{client} --defaults-extra-file={cnf} --batch --skip-column-names {name} < {}",
            sql.display()
        ),
        &logs,
        "drupal-migrate-nodes",
    );
    let count = std::fs::read_to_string(logs.join("drupal-migrate-nodes.out")).unwrap();
    assert_eq!(count.trim(), NODES.to_string(), "{NODES} nodes made");
    // A few files too, as a site has (1 MB).
    for i in 0..16 {
        std::fs::write(site_dir.join(format!("files/f{i}.bin")), vec![b'x'; 65536]).unwrap();
    }
    say(format!(
        "drupal-migrate: {NODES} nodes made in {:.1} s",
        secs(made.wall)
    ));

    // By hand: the database dumped into a new one, the directory copied.
    let floor = sh(
        &format!(
            "echo 'CREATE DATABASE by_hand' | {client} --defaults-extra-file={cnf} \
             && {dump} --defaults-extra-file={cnf} --single-transaction {name} | {client} --defaults-extra-file={cnf} by_hand \
             && cp -a {s} {w}/copy",
            s = site_dir.display(),
            w = work.display()
        ),
        &logs,
        "drupal-migrate-by-hand",
    );

    std::fs::write(inv.join("sites/big.yaml"), site("new")).unwrap();
    let m = hoist_ok(&inv, &["apply", "--yes"], &logs, "drupal-migrate", 0);
    let rec = hoist::task::list(&hoist::task::TasksDir::local(&host.join("tasks")))
        .into_iter()
        .rfind(|t| t.kind == hoist::task::TaskKind::Migrate)
        .expect("the migrate's record");
    assert!(
        rec.log
            .iter()
            .any(|l| l.contains("applied update system_update_")),
        "the migrate ran Drupal's pending updates: {:?}",
        rec.log
    );
    let names: Vec<&str> = rec.steps.iter().map(|s| s.name.as_str()).collect();
    let span = |from: &str, to: &str| -> f64 {
        let (Some(a), Some(b)) = (
            names.iter().position(|n| *n == from),
            names.iter().rposition(|n| *n == to),
        ) else {
            return 0.0;
        };
        rec.steps[a..=b]
            .iter()
            .filter_map(|s| s.millis)
            .sum::<u64>() as f64
            / 1000.0
    };
    let down = span("maintenance-on", "maintenance-off");
    let (whole, by_hand) = (secs(m.wall), secs(floor.wall));
    let steps: Vec<String> = rec
        .steps
        .iter()
        .map(|s| format!("{} {:.2}", s.name, s.millis.unwrap_or(0) as f64 / 1000.0))
        .collect();
    say(format!(
        "drupal-migrate: 503 for {down:.2} s (whole task {whole:.2} s; steps {}); by hand {by_hand:.2} s",
        steps.join(", ")
    ));
    vec![Row {
        scenario: format!(
            "migrate of a Drupal 7 site with {NODES} nodes, 7.98 -> 7.103 on MariaDB: time it answers 503 (whole command {whole:.2} s)"
        ),
        hoist: format!("{down:.2} s"),
        baseline: format!("`mariadb-dump \\| mariadb` into a new database + `cp -a` of its directory: {by_hand:.2} s"),
        ratio: format!("{:.2}", down / by_hand),
        target: "report".into(),
        met: true,
    }]
}
