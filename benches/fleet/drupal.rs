//! Scenario `drupal-scan` (issue 13, item 7): scanning real Drupal trees
//! with the `drupal` application kind, in process. It needs real trees and
//! is skipped with a message without them:
//! - `HOIST_DRUPAL_CORE`: a Drupal 8+ `core/` directory; its parent is
//!   scanned (Drupal 11's core: ~80 modules, tests skipped as at run time);
//! - `HOIST_DRUPAL7_ROOTS`: a directory of Drupal 7 release trees; the
//!   newest is copied under the bench directory and 100 contrib-shaped
//!   modules (info, module, install with 30 updates, an `includes/` and a
//!   `tests/` directory) are generated into its `sites/all/modules`.
//!
//! The baseline is GNU `find` listing the same tree's info files: a bare
//! walk, no parsing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hoist::drupal::{detect, version_order, DrupalCodebase, ScanOptions};

use super::{fmt_runs, logs_dir, median, say, sh, Row};

/// The scan rows, or none (with a message) when no real tree is given.
pub fn run(dir: &Path, runs: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    match std::env::var_os("HOIST_DRUPAL_CORE").map(PathBuf::from) {
        Some(core) if core.file_name().is_some_and(|n| n == "core") => {
            let root = core.parent().unwrap().to_path_buf();
            rows.push(scan_row(&root, dir, runs, "core, tests skipped", 1.0));
        }
        Some(_) => say("drupal-scan: HOIST_DRUPAL_CORE must name a `core` directory; skipped"),
        None => say("drupal-scan: HOIST_DRUPAL_CORE is not set; Drupal 8+ core scan skipped"),
    }
    match std::env::var_os("HOIST_DRUPAL7_ROOTS").map(PathBuf::from) {
        Some(roots) => match newest_d7(&roots) {
            Some(src) => {
                let tree = dir.join("d7");
                std::fs::create_dir_all(dir).unwrap();
                let logs = logs_dir(dir);
                sh(
                    &format!("cp -a '{}' '{}'", src.display(), tree.display()),
                    &logs,
                    "d7-copy",
                );
                contrib(&tree, 100);
                rows.push(scan_row(
                    &tree,
                    dir,
                    runs,
                    "core and 100 contrib modules",
                    1.0,
                ));
            }
            None => say("drupal-scan: no Drupal 7 tree under HOIST_DRUPAL7_ROOTS; skipped"),
        },
        None => say("drupal-scan: HOIST_DRUPAL7_ROOTS is not set; Drupal 7 scan skipped"),
    }
    rows
}

/// The newest Drupal 7 release tree in `roots`.
fn newest_d7(roots: &Path) -> Option<PathBuf> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(roots)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| match detect(&p, &p) {
            Ok(Some(core)) if core.major == 7 => Some((core.version.to_string(), p)),
            _ => None,
        })
        .collect();
    found.sort_by(|a, b| version_order(&a.0, &b.0));
    found.pop().map(|(_, p)| p)
}

/// Writes `n` contrib-shaped Drupal 7 modules under `sites/all/modules`.
fn contrib(root: &Path, n: usize) {
    for i in 0..n {
        let name = format!("contrib_{i}");
        let d = root.join("sites/all/modules/contrib").join(&name);
        std::fs::create_dir_all(d.join("includes")).unwrap();
        std::fs::create_dir_all(d.join("tests")).unwrap();
        let w = |rel: &str, text: String| std::fs::write(d.join(rel), text).unwrap();
        w(
            &format!("{name}.info"),
            format!(
                "name = Contrib {i}\ndescription = A generated module.\ncore = 7.x\npackage = Bench\ndependencies[] = ctools (>=7.x-1.2)\nfiles[] = includes/{name}.inc\n\n; Information added by Drupal.org packaging script\nversion = \"7.x-2.{i}\"\ncore = \"7.x\"\nproject = \"{name}\"\ndatestamp = \"1700000000\"\n"
            ),
        );
        w(
            &format!("{name}.module"),
            format!(
                "<?php\n/**\n * @file\n */\n\nfunction {name}_menu() {{\n  return array();\n}}\n"
            ),
        );
        let mut install = format!(
            "<?php\n/**\n * @file\n */\n\nfunction {name}_schema() {{\n  return array();\n}}\n"
        );
        for u in 7001..=7030 {
            install.push_str(&format!(
                "\n/**\n * Update {u}: an example with a body.\n */\nfunction {name}_update_{u}(&$sandbox) {{\n  db_query(\"UPDATE {{variable}} SET value = '{{}}' WHERE name = :n\", array(':n' => 'x'));\n}}\n"
            ));
        }
        w(&format!("{name}.install"), install);
        w(&format!("includes/{name}.inc"), "<?php\n".into());
        w(&format!("tests/{name}.test"), "<?php\n".into());
    }
}

/// Scans `root` `runs` times (after one warm-up) against `find`.
fn scan_row(root: &Path, dir: &Path, runs: usize, what: &str, target_s: f64) -> Row {
    std::fs::create_dir_all(dir).unwrap();
    let logs = logs_dir(dir);
    let opts = ScanOptions::default();
    let scan = || DrupalCodebase::scan(root, root, &opts).expect("the tree scans");
    let first = scan();
    let found = first.found.len();
    let (mut h, mut b) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let t = Instant::now();
        std::hint::black_box(scan());
        h.push(t.elapsed().as_secs_f64());
        let m = sh(
            &format!(
                "find '{}' -name '*.info' -o -name '*.info.yml' | wc -l",
                root.display()
            ),
            &logs,
            &format!("find-{i}"),
        );
        b.push(m.wall.as_secs_f64());
    }
    say(format!(
        "drupal-scan {what}: {found} extensions; hoist {} s, find {} s",
        fmt_runs(&h),
        fmt_runs(&b)
    ));
    let (h, b) = (median(&mut h), median(&mut b));
    Row {
        scenario: format!(
            "scan of Drupal {} ({what}): {found} extensions",
            first.core.version
        ),
        hoist: format!("{:.0} ms", h * 1000.0),
        baseline: format!("`find` of info files {:.0} ms", b * 1000.0),
        ratio: format!("{:.1}x", h / b),
        target: format!("< {target_s} s"),
        met: h < target_s,
    }
}
