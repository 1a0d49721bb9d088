//! Where the real Drupal trees of the `#[ignore]`d tests are: the one
//! place that reads `HOIST_DRUPAL7_ROOTS` and `HOIST_DRUPAL_CORE`.
//!
//! - `HOIST_DRUPAL7_ROOTS`: a directory holding two (or more) Drupal 7
//!   release trees, each named by its version (such as `7.98` and
//!   `7.103`): extract tags of `pantheon-systems/drops-7` there.
//! - `HOIST_DRUPAL_CORE`: a Drupal 8+ `core/` tree (a tag of
//!   `drupal/core`).
//!
//! Drupal's code is never part of this repository (see the README).
#![allow(dead_code)]

use std::path::PathBuf;

/// The directory a variable names; panics saying how to set it.
fn env_dir(var: &str, what: &str) -> PathBuf {
    let v = std::env::var_os(var).unwrap_or_else(|| panic!("set {var} to {what}"));
    let p = PathBuf::from(v);
    assert!(p.is_dir(), "{var}={} is not a directory", p.display());
    p
}

/// The directory `HOIST_DRUPAL7_ROOTS` names.
pub fn drupal7_roots() -> PathBuf {
    env_dir(
        "HOIST_DRUPAL7_ROOTS",
        "a directory holding Drupal 7 release trees named by version (7.98, 7.103)",
    )
}

/// The Drupal 7 release trees under `HOIST_DRUPAL7_ROOTS`, oldest first,
/// with their versions.
pub fn drupal7_releases() -> Vec<(String, PathBuf)> {
    let roots = drupal7_roots();
    let mut rel: Vec<(hoist::drupal::DrupalVersion, String, PathBuf)> = std::fs::read_dir(&roots)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("includes/bootstrap.inc").is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (hoist::drupal::DrupalVersion::parse(&name), name, e.path())
        })
        .collect();
    rel.sort();
    assert!(
        rel.len() >= 2,
        "{} must hold two Drupal 7 release trees",
        roots.display()
    );
    rel.into_iter().map(|(_, n, p)| (n, p)).collect()
}

/// The oldest and the newest Drupal 7 release under `HOIST_DRUPAL7_ROOTS`.
pub fn drupal7_pair() -> ((String, PathBuf), (String, PathBuf)) {
    let mut rel = drupal7_releases();
    let new = rel.pop().unwrap();
    (rel.swap_remove(0), new)
}

/// The Drupal 8+ `core/` tree `HOIST_DRUPAL_CORE` names.
pub fn drupal_core() -> PathBuf {
    env_dir("HOIST_DRUPAL_CORE", "a Drupal 8+ core/ tree")
}
