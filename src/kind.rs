//! Application kinds (spec section 3): which one a platform's codebase is,
//! and reading its packages as that kind finds them.

use std::path::Path;

use crate::codebase::{Codebase, Walk};
use crate::diag::Diagnostic;
use crate::drupal::{self, DrupalCodebase, ScanOptions};
use crate::inventory::AppKindName;

/// The kind of the codebase at `dir`: the declared one, else `drupal` when
/// Drupal's version file is there, else `embedded`. A tree that looks like
/// Drupal but whose version cannot be read is an error.
pub fn detect(
    dir: &Path,
    shown: &Path,
    declared: Option<AppKindName>,
) -> Result<AppKindName, Diagnostic> {
    if let Some(k) = declared {
        return Ok(k);
    }
    Ok(match drupal::detect(dir, shown)? {
        Some(_) => AppKindName::Drupal,
        None => AppKindName::Embedded,
    })
}

/// Reads the packages of the codebase at `dir` (`shown` in messages) as
/// `kind` finds them. For an embedded codebase, `walk` (one walk of `dir`
/// made for its hash) saves reading the tree twice.
pub fn scan(
    dir: &Path,
    shown: &Path,
    kind: AppKindName,
    walk: Option<&Walk>,
) -> Result<Codebase, Vec<Diagnostic>> {
    match kind {
        AppKindName::Drupal => {
            let d = DrupalCodebase::scan(dir, shown, &ScanOptions::default())?;
            drupal::model::codebase(&d, shown)
        }
        AppKindName::Embedded => match walk {
            Some(w) => Codebase::scan_walked(w, shown),
            None => Codebase::scan(dir, shown),
        },
    }
}

/// [`detect`], then [`scan`].
pub fn detect_and_scan(
    dir: &Path,
    shown: &Path,
    declared: Option<AppKindName>,
) -> Result<Codebase, Vec<Diagnostic>> {
    let kind = detect(dir, shown, declared).map_err(|d| vec![d])?;
    scan(dir, shown, kind, None)
}
