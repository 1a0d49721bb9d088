//! Finding a Drupal codebase's extensions as Drupal finds them, without
//! running PHP.
//!
//! **Drupal 7** (`drupal_system_listing()`, `_system_rebuild_module_data()`,
//! `_system_rebuild_theme_data()`): modules are `NAME.module` files with a
//! `NAME.info` beside them (a module without an info file is skipped, as
//! Drupal skips it) under `modules/`, `profiles/<profile>/modules/` and
//! `sites/all/modules/`; themes are `NAME.info` files at least one directory
//! down `themes/`, `profiles/<profile>/themes/` and `sites/all/themes/`;
//! profiles are `profiles/NAME/NAME.profile` with `NAME.info`, hidden unless
//! their info file says otherwise. `file_scan_directory()` skips names
//! starting with `.` or ending with `CVS`, and does not skip `tests`
//! directories: their extensions are found (core's are `hidden`). In one
//! search directory a directory's own files win over its subdirectories',
//! and the first subdirectory (in name order here) wins over later ones; a
//! later search directory wins unless its copy declares a `core` other than
//! `7.x`.
//!
//! **Drupal 8+** (`ExtensionDiscovery`, `RecursiveExtensionFilterCallback`):
//! `NAME.info.yml` files under `core/`, `sites/all/` and the root, entering
//! only `profiles`, `modules` and `themes` at the top of each, skipping
//! hidden directories, `src`, `lib`, `vendor`, `assets`, `css`, `files`,
//! `images`, `js`, `misc`, `templates`, `includes`, `fixtures`, `Drupal`,
//! every `config` but `modules/config`, and `tests` unless
//! [`ScanOptions::include_tests`] (Drupal's
//! `$settings['extension_discovery_scan_tests']`; off by default, as at
//! Drupal's run time). The kind is the info file's `type`; theme engines are
//! left out. Precedence: core, then the site's profile, then `sites/all`,
//! then the root; later wins. Extensions inside another profile's directory
//! are not visible to a site.
//!
//! Both: names must be PHP function names; `sites/<domain>/` directories
//! belong to one site and are not part of a platform's scan; symlinks are
//! not followed (Drupal follows them; hoist reads a codebase only inside its
//! own tree). Directories named in [`ScanOptions::ignore_directories`]
//! (`file_scan_ignore_directories`) are skipped.
//!
//! The walk lists directories once; the info, `.install` and
//! `.post_update.php` files of the extensions found are read and parsed in
//! parallel.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use serde::Serialize;

use super::info::{self, Info};
use super::php::{line_col, PhpFile};
use super::version::DrupalVersion;
use crate::diag::Diagnostic;

/// Which line of Drupal a codebase is: 7, or 8 and later (which share
/// their formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Generation {
    /// Drupal 7.
    Drupal7,
    /// Drupal 8, 9, 10, 11 and later.
    Drupal8Plus,
}

impl Generation {
    /// The schema a module without updates records: 0 on Drupal 7
    /// (`SCHEMA_INSTALLED`), 8000 on 8+ (`CORE_MINIMUM_SCHEMA_VERSION`).
    pub fn base_schema(self) -> u32 {
        match self {
            Generation::Drupal7 => 0,
            Generation::Drupal8Plus => 8000,
        }
    }
}

/// A codebase's Drupal core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Core {
    /// The core's `VERSION`.
    pub version: DrupalVersion,
    /// 7, or 8+.
    pub generation: Generation,
    /// The major version (7, 8, 9, 10, 11, …).
    pub major: u64,
}

/// The file that holds a Drupal 7 core's `VERSION`.
pub const D7_VERSION_FILE: &str = "includes/bootstrap.inc";
/// The file that holds a Drupal 8+ core's `VERSION`.
pub const D8_VERSION_FILE: &str = "core/lib/Drupal.php";

/// Which Drupal the tree at `root` is: `Ok(None)` when it is not Drupal
/// (neither version file is there), an error when it looks like Drupal but
/// its version cannot be read or is not supported. `shown` names `root` in
/// messages.
pub fn detect(root: &Path, shown: &Path) -> Result<Option<Core>, Diagnostic> {
    for (file, generation) in [
        (D8_VERSION_FILE, Generation::Drupal8Plus),
        (D7_VERSION_FILE, Generation::Drupal7),
    ] {
        let path = root.join(file);
        let shown = shown.join(file);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && !through_symlink(root, file) => {}
            Ok(_) => return Err(Diagnostic::at(&shown, None, "not a regular file")),
            Err(_) => continue,
        }
        let text = read_text(&path).map_err(|e| Diagnostic::at(&shown, None, e))?;
        let php = PhpFile::read(&text);
        let found = match generation {
            Generation::Drupal7 => php.defined_string("VERSION"),
            Generation::Drupal8Plus => php.const_string("VERSION"),
        };
        let Some(v) = found else {
            return Err(Diagnostic::at(
                &shown,
                None,
                "cannot find Drupal's VERSION in this file",
            ));
        };
        let version = DrupalVersion::parse(&v);
        let major = version.core_major();
        let ok = match (generation, major) {
            (Generation::Drupal7, Some(7)) => true,
            (Generation::Drupal8Plus, Some(m)) => m >= 8,
            _ => false,
        };
        let (true, Some(major)) = (ok, major) else {
            return Err(Diagnostic::at(
                &shown,
                None,
                format!("Drupal {v} is not supported: hoist knows Drupal 7 and Drupal 8 and later"),
            ));
        };
        return Ok(Some(Core {
            version,
            generation,
            major,
        }));
    }
    Ok(None)
}

/// Whether a directory on the way from `root` to `rel` is a symlink: the
/// scan never goes through one.
fn through_symlink(root: &Path, rel: &str) -> bool {
    let mut p = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    parts.iter().take(parts.len().saturating_sub(1)).any(|c| {
        p.push(c);
        std::fs::symlink_metadata(&p).map_or(true, |m| !m.is_dir())
    })
}

/// What an extension is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtensionKind {
    /// A module.
    Module,
    /// A theme.
    Theme,
    /// An installation profile.
    Profile,
}

impl ExtensionKind {
    /// The kind's name, as Drupal writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtensionKind::Module => "module",
            ExtensionKind::Theme => "theme",
            ExtensionKind::Profile => "profile",
        }
    }
}

/// Where an extension was found, which decides which copy wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Core: `core/` on 8+, the root `modules/`, `themes/` and `profiles/`
    /// on 7.
    Core,
    /// Inside the directory of the named profile.
    Profile(String),
    /// Under a `profiles` directory, but inside no profile found.
    OtherProfileDir,
    /// `sites/all/`.
    SitesAll,
    /// The root `modules/`, `themes/` and `profiles/` of Drupal 8+.
    Root,
}

impl Origin {
    /// The search order: later wins (`ExtensionDiscovery::ORIGIN_*`).
    fn rank(&self) -> u8 {
        match self {
            Origin::Core => 0,
            Origin::Profile(_) | Origin::OtherProfileDir => 1,
            Origin::SitesAll => 2,
            Origin::Root => 3,
        }
    }
}

/// One extension found in a codebase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    /// Its machine name.
    pub name: String,
    /// Module, theme or profile.
    pub kind: ExtensionKind,
    /// The directory of its info file, relative to the codebase, with `/`.
    pub path: String,
    /// Where it was found.
    pub origin: Origin,
    /// `hidden` in its info file (a Drupal 7 profile is hidden by default).
    pub hidden: bool,
    /// Its `version`, `VERSION` read as the core's version; none if unset.
    pub version: Option<DrupalVersion>,
    /// Drupal 7's `core` key, or 8+'s `core_version_requirement`.
    pub core: Option<String>,
    /// The names of the extensions it depends on.
    pub dependencies: Vec<String>,
    /// The numbers N of its `NAME_update_N()` functions, ascending.
    pub updates: Vec<u32>,
    /// What its `NAME_update_last_removed()` returns.
    pub last_removed: Option<u32>,
    /// Why `NAME_update_last_removed()` could not be read as text, when it
    /// exists but is not `return N;` (`file:line:col: message`). Not a
    /// scan error: only a site with the extension enabled is blocked.
    pub last_removed_unreadable: Option<String>,
    /// Its `NAME_post_update_*()` functions (8+), sorted, as Drupal records
    /// them in `existing_updates`.
    pub post_updates: Vec<String>,
    /// The post-updates its `NAME_removed_post_updates()` lists (8+).
    pub removed_post_updates: Vec<String>,
}

impl Extension {
    /// The schema a fresh install records, as Drupal's module installer
    /// sets it: the highest update, at least the generation's base schema
    /// and at least `hook_update_last_removed()`. Themes have none.
    pub fn schema(&self, generation: Generation) -> Option<u32> {
        if self.kind == ExtensionKind::Theme {
            return None;
        }
        let top = self.updates.last().copied().unwrap_or(0);
        Some(
            top.max(generation.base_schema())
                .max(self.last_removed.unwrap_or(0)),
        )
    }
}

/// Choices Drupal leaves to a site's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// Also find extensions in `tests` directories (8+).
    pub include_tests: bool,
    /// Directory names never entered: `file_scan_ignore_directories`.
    pub ignore_directories: Vec<String>,
}

impl Default for ScanOptions {
    /// Drupal's run-time defaults, with the ignored directories that
    /// `default.settings.php` (7.60+ and 8.5+) sets.
    fn default() -> Self {
        ScanOptions {
            include_tests: false,
            ignore_directories: vec!["node_modules".into(), "bower_components".into()],
        }
    }
}

/// Every extension of a codebase, with where each was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrupalCodebase {
    /// The core.
    pub core: Core,
    /// Every extension found, copies included, in search order.
    pub found: Vec<Extension>,
}

/// A copy of an extension that another copy replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overridden {
    /// The extension.
    pub name: String,
    /// The directory of the copy that is used.
    pub kept: String,
    /// The directory of the copy that is not.
    pub lost: String,
}

/// The extensions a site with a given profile sees: one per name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// By machine name.
    pub extensions: BTreeMap<String, &'a Extension>,
    /// Copies not used, and why not (the copy used instead).
    pub overridden: Vec<Overridden>,
    /// Names used by extensions of two kinds: Drupal keeps such lists
    /// apart, hoist's package list cannot.
    pub conflicts: Vec<String>,
}

/// A directory to search and what to look for in it.
struct Search {
    dir: String,
    origin: Origin,
    look: Look,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Look {
    D7Modules,
    D7Themes,
    D7Profiles,
    D8,
}

/// An info file found by the walk, before it is read.
struct Candidate {
    dir: String,
    name: String,
    search: usize,
}

impl DrupalCodebase {
    /// Scans the Drupal codebase at `root` (`shown` names it in messages).
    /// Every problem found is returned, not only the first.
    pub fn scan(
        root: &Path,
        shown: &Path,
        opts: &ScanOptions,
    ) -> Result<DrupalCodebase, Vec<Diagnostic>> {
        let core = match detect(root, shown) {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Err(vec![Diagnostic::at(
                    shown,
                    None,
                    format!("not a Drupal codebase: neither {D8_VERSION_FILE} nor {D7_VERSION_FILE} is there"),
                )])
            }
            Err(d) => return Err(vec![d]),
        };
        let searches = searches(root, core.generation);
        let mut diags = Vec::new();
        let mut cands = Vec::new();
        for (i, s) in searches.iter().enumerate() {
            let mut w = Walker {
                root,
                shown,
                opts,
                look: s.look,
                search: i,
                out: &mut cands,
                diags: &mut diags,
                seen: HashSet::new(),
            };
            w.visit(&s.dir, 0);
        }
        let read = crate::par::map(&cands, |c| {
            read_extension(root, shown, &core, &searches[c.search], c)
        });
        let mut found = Vec::new();
        for r in read {
            match r {
                Ok(Some(e)) => found.push(e),
                Ok(None) => {}
                Err(mut d) => diags.append(&mut d),
            }
        }
        if core.generation == Generation::Drupal8Plus {
            assign_profiles(&mut found);
        }
        if diags.is_empty() {
            Ok(DrupalCodebase { core, found })
        } else {
            diags.sort();
            Err(diags)
        }
    }

    /// The profiles of the codebase, by name (the copy that wins).
    pub fn profiles(&self) -> BTreeMap<String, &Extension> {
        self.resolve(None)
            .extensions
            .into_iter()
            .filter(|(_, e)| e.kind == ExtensionKind::Profile)
            .collect()
    }

    /// The extensions a site installed with `profile` sees; with `None`,
    /// those of every profile (as Drupal's installer, before a profile is
    /// chosen).
    pub fn resolve(&self, profile: Option<&str>) -> Resolved<'_> {
        let d7 = self.core.generation == Generation::Drupal7;
        let mut visible: Vec<&Extension> = self
            .found
            .iter()
            .filter(|e| match (&e.origin, profile) {
                (_, None) => true,
                (Origin::Profile(p), Some(want)) => e.kind == ExtensionKind::Profile || p == want,
                (Origin::OtherProfileDir, Some(_)) => e.kind == ExtensionKind::Profile,
                _ => true,
            })
            .collect();
        // Stable: within one search directory the walk's order stands.
        visible.sort_by_key(|e| e.origin.rank());
        let mut by_kind: BTreeMap<(ExtensionKind, &str), &Extension> = BTreeMap::new();
        let mut overridden = Vec::new();
        for e in visible {
            let key = (e.kind, e.name.as_str());
            let Some(prev) = by_kind.get(&key).copied() else {
                by_kind.insert(key, e);
                continue;
            };
            // Drupal 7: first found wins inside one search directory, and a
            // copy for another core never overrides.
            let keep_prev = d7
                && (prev.origin.rank() == e.origin.rank()
                    || e.core.as_deref().is_some_and(|c| c.trim() != "7.x"));
            let (kept, lost) = if keep_prev { (prev, e) } else { (e, prev) };
            overridden.push(Overridden {
                name: e.name.clone(),
                kept: kept.path.clone(),
                lost: lost.path.clone(),
            });
            by_kind.insert(key, kept);
        }
        let mut extensions = BTreeMap::new();
        let mut conflicts = Vec::new();
        for ((_, name), e) in by_kind {
            if let Some(other) = extensions.insert(name.to_string(), e) {
                conflicts.push(format!(
                    "{name} is both a {} ({}) and a {} ({})",
                    other.kind.as_str(),
                    other.path,
                    e.kind.as_str(),
                    e.path
                ));
            }
        }
        Resolved {
            extensions,
            overridden,
            conflicts,
        }
    }
}

/// The directories Drupal searches, in its order.
fn searches(root: &Path, generation: Generation) -> Vec<Search> {
    let s = |dir: &str, origin: Origin, look| Search {
        dir: dir.to_string(),
        origin,
        look,
    };
    match generation {
        Generation::Drupal8Plus => vec![
            s("core", Origin::Core, Look::D8),
            s("sites/all", Origin::SitesAll, Look::D8),
            s("", Origin::Root, Look::D8),
        ],
        Generation::Drupal7 => {
            // Each profile directory's modules and themes: a site sees only
            // its own profile's (resolved later).
            let profiles: Vec<String> = list(&root.join("profiles"))
                .ok()
                .filter(|_| !through_symlink(root, "profiles/."))
                .unwrap_or_default()
                .into_iter()
                .filter(|(n, t)| t.is_dir() && !d7_skipped(n))
                .map(|(n, _)| n)
                .collect();
            let mut v = vec![s("profiles", Origin::Core, Look::D7Profiles)];
            for (sub, look) in [("modules", Look::D7Modules), ("themes", Look::D7Themes)] {
                v.push(s(sub, Origin::Core, look));
                for p in &profiles {
                    v.push(s(
                        &format!("profiles/{p}/{sub}"),
                        Origin::Profile(p.clone()),
                        look,
                    ));
                }
                v.push(s(&format!("sites/all/{sub}"), Origin::SitesAll, look));
            }
            v
        }
    }
}

/// Drupal 7's `file_scan_directory()` skips these names.
fn d7_skipped(name: &str) -> bool {
    name.starts_with('.') || name.ends_with("CVS") || name.ends_with('.')
}

/// Directory names `RecursiveExtensionFilterCallback` never enters.
const D8_SKIPPED: &[&str] = &[
    "src",
    "lib",
    "vendor",
    "assets",
    "css",
    "files",
    "images",
    "js",
    "misc",
    "templates",
    "includes",
    "fixtures",
    "Drupal",
];

/// A name Drupal accepts for an extension: a PHP function name.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] >= 0x7f)
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x7f)
}

fn list(dir: &Path) -> std::io::Result<Vec<(String, std::fs::FileType)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        // Names that are not UTF-8 cannot be extension names; their
        // directories are still entered under a lossy name only for
        // listing, never for reading.
        if let Ok(name) = e.file_name().into_string() {
            v.push((name, e.file_type()?));
        }
    }
    v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

struct Walker<'a> {
    root: &'a Path,
    shown: &'a Path,
    opts: &'a ScanOptions,
    look: Look,
    search: usize,
    out: &'a mut Vec<Candidate>,
    diags: &'a mut Vec<Diagnostic>,
    /// Drupal 7: names already found in this search directory.
    seen: HashSet<String>,
}

impl Walker<'_> {
    fn visit(&mut self, rel: &str, depth: usize) {
        // A search directory reached through a symlink is not entered
        // (deeper ones never are: only real directories are visited).
        if depth == 0 && through_symlink(self.root, &format!("{rel}/.")) {
            if std::fs::symlink_metadata(self.root.join(rel)).is_ok() {
                self.diags.push(Diagnostic::at(
                    &self.shown.join(rel),
                    None,
                    "not a directory inside the codebase (hoist never follows symlinks)",
                ));
            }
            return;
        }
        let entries = match list(&self.root.join(rel)) {
            Ok(e) => e,
            // A search directory that is not there is normal.
            Err(e) if depth == 0 && e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.diags.push(Diagnostic::at(
                    &self.shown.join(rel),
                    None,
                    format!("cannot read: {e}"),
                ));
                return;
            }
        };
        let join = |n: &str| {
            if rel.is_empty() {
                n.to_string()
            } else {
                format!("{rel}/{n}")
            }
        };
        let files: BTreeSet<&str> = entries
            .iter()
            .filter(|(_, t)| t.is_file())
            .map(|(n, _)| n.as_str())
            .collect();
        let ignored = |n: &str| self.opts.ignore_directories.iter().any(|i| i == n);
        match self.look {
            Look::D8 => {
                for (n, t) in &entries {
                    if t.is_file() {
                        if let Some(stem) = n.strip_suffix(".info.yml") {
                            if valid_name(stem) {
                                self.found(rel, stem);
                            }
                        }
                    } else if t.is_dir() && self.d8_enters(rel, n, depth) && !ignored(n) {
                        self.visit(&join(n), depth + 1);
                    }
                }
            }
            Look::D7Profiles => {
                // `profiles/NAME/NAME.profile` with `NAME.info`.
                for (n, t) in &entries {
                    if t.is_dir() && valid_name(n) && !d7_skipped(n) {
                        let dir = join(n);
                        let has = |f: &str| {
                            std::fs::symlink_metadata(self.root.join(&dir).join(f))
                                .is_ok_and(|m| m.is_file())
                        };
                        if has(&format!("{n}.profile")) && has(&format!("{n}.info")) {
                            self.found(&dir, n);
                        }
                    }
                }
            }
            Look::D7Modules | Look::D7Themes => {
                // A directory's own files first: they win over its
                // subdirectories' in Drupal 7.
                for n in &files {
                    let stem = match self.look {
                        Look::D7Modules => n
                            .strip_suffix(".module")
                            .filter(|s| files.contains(format!("{s}.info").as_str())),
                        _ => n.strip_suffix(".info").filter(|_| depth >= 1),
                    };
                    if let Some(stem) = stem.filter(|s| valid_name(s)) {
                        self.found(rel, stem);
                    }
                }
                for (n, t) in &entries {
                    if t.is_dir() && !d7_skipped(n) && !ignored(n) {
                        self.visit(&join(n), depth + 1);
                    }
                }
            }
        }
    }

    /// `RecursiveExtensionFilterCallback::accept()` for a directory.
    fn d8_enters(&self, rel: &str, name: &str, depth: usize) -> bool {
        if name.starts_with('.') {
            return false;
        }
        if depth == 0 {
            return ["profiles", "modules", "themes"].contains(&name);
        }
        if name == "config" {
            return rel == "modules" || rel.ends_with("/modules");
        }
        !(D8_SKIPPED.contains(&name) || (name == "tests" && !self.opts.include_tests))
    }

    fn found(&mut self, dir: &str, name: &str) {
        if self.look != Look::D8 && !self.seen.insert(name.to_string()) {
            return;
        }
        self.out.push(Candidate {
            dir: dir.to_string(),
            name: name.to_string(),
            search: self.search,
        });
    }
}

/// The biggest source file read; anything larger is not an info or install
/// file a person wrote.
const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a regular file (never through a symlink) as text; bytes that are
/// not UTF-8 (old Latin-1 comments) are replaced, as they never make up
/// the names read here.
fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut buf = Vec::new();
    f.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > MAX_SOURCE_BYTES {
        return Err(format!("bigger than {MAX_SOURCE_BYTES} bytes"));
    }
    Ok(match String::from_utf8(buf) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Reads an optional file: `Ok(None)` when it is not there.
fn read_optional(path: &Path) -> Result<Option<String>, String> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(None),
        Ok(m) if m.is_file() => read_text(path).map(Some),
        Ok(_) => Err("not a regular file".into()),
    }
}

/// Reads one candidate's info, install and post-update files.
fn read_extension(
    root: &Path,
    shown: &Path,
    core: &Core,
    search: &Search,
    c: &Candidate,
) -> Result<Option<Extension>, Vec<Diagnostic>> {
    let d7 = core.generation == Generation::Drupal7;
    let info_name = if d7 {
        format!("{}.info", c.name)
    } else {
        format!("{}.info.yml", c.name)
    };
    let info_rel = format!("{}/{info_name}", c.dir);
    let info_shown = shown.join(&info_rel);
    let text =
        read_text(&root.join(&info_rel)).map_err(|e| vec![Diagnostic::at(&info_shown, None, e)])?;
    let bad = |e: info::InfoError| vec![Diagnostic::at(&info_shown, e.pos, e.message)];
    let (info, kind) = if d7 {
        let m = info::parse_d7(&text).map_err(bad)?;
        // Drupal 7 skips a module whose info file is empty.
        if m.entries().is_empty() {
            return Ok(None);
        }
        let kind = match search.look {
            Look::D7Modules => ExtensionKind::Module,
            Look::D7Themes => ExtensionKind::Theme,
            _ => ExtensionKind::Profile,
        };
        (Info::from_d7(&m), kind)
    } else {
        let info = Info::parse_yml(&text).map_err(bad)?;
        let kind = match info.kind.as_deref() {
            Some("module") => ExtensionKind::Module,
            Some("theme") => ExtensionKind::Theme,
            Some("profile") => ExtensionKind::Profile,
            // Theme engines and unknown types are not packages.
            _ => return Ok(None),
        };
        (info, kind)
    };
    let version = info.version.as_deref().map(|v| {
        if v == "VERSION" {
            core.version.clone()
        } else {
            DrupalVersion::parse(v)
        }
    });
    let mut ext = Extension {
        name: c.name.clone(),
        kind,
        path: c.dir.clone(),
        origin: search.origin.clone(),
        // A Drupal 7 profile is hidden unless its info file says.
        hidden: info.hidden || (d7 && kind == ExtensionKind::Profile && !info.hidden_set),
        version,
        core: info.core,
        dependencies: info.dependencies,
        updates: Vec::new(),
        last_removed: None,
        last_removed_unreadable: None,
        post_updates: Vec::new(),
        removed_post_updates: Vec::new(),
    };
    let mut diags = Vec::new();
    if kind != ExtensionKind::Theme {
        read_install(root, shown, &mut ext, &mut diags);
    }
    if !d7 {
        read_post_update(root, shown, &mut ext, &mut diags);
    }
    if diags.is_empty() {
        Ok(Some(ext))
    } else {
        Err(diags)
    }
}

/// `NAME.install`: update numbers and `hook_update_last_removed()`.
fn read_install(root: &Path, shown: &Path, ext: &mut Extension, diags: &mut Vec<Diagnostic>) {
    let rel = format!("{}/{}.install", ext.path, ext.name);
    let file = shown.join(&rel);
    let text = match read_optional(&root.join(&rel)) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => return diags.push(Diagnostic::at(&file, None, e)),
    };
    let php = PhpFile::read(&text);
    let prefix = format!("{}_update_", ext.name.to_ascii_lowercase());
    for f in &php.functions {
        let Some(n) = f.name.strip_prefix(&prefix) else {
            continue;
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match n.parse::<u32>() {
            Ok(n) => ext.updates.push(n),
            Err(_) => diags.push(Diagnostic::at(
                &file,
                Some(line_col(&text, f.at)),
                format!("update number {n} is out of range"),
            )),
        }
    }
    ext.updates.sort_unstable();
    ext.updates.dedup();
    if let Some(f) = php.function(&format!("{}_update_last_removed", ext.name)) {
        match php.returned_int(f).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => ext.last_removed = Some(n),
            None => {
                let d = Diagnostic::at(
                    &file,
                    Some(line_col(&text, f.at)),
                    format!(
                        "cannot read what {}_update_last_removed() returns: hoist reads it as text and needs `return N;`",
                        ext.name
                    ),
                );
                ext.last_removed_unreadable = Some(d.to_string());
            }
        }
    }
}

/// `NAME.post_update.php` (8+): post-updates and removed ones.
fn read_post_update(root: &Path, shown: &Path, ext: &mut Extension, diags: &mut Vec<Diagnostic>) {
    let rel = format!("{}/{}.post_update.php", ext.path, ext.name);
    let text = match read_optional(&root.join(&rel)) {
        Ok(Some(t)) => t,
        Ok(None) => return,
        Err(e) => return diags.push(Diagnostic::at(&shown.join(&rel), None, e)),
    };
    let php = PhpFile::read(&text);
    let prefix = format!("{}_post_update_", ext.name.to_ascii_lowercase());
    let mut names: Vec<String> = php
        .functions
        .iter()
        .filter(|f| f.name.len() > prefix.len() && f.name.starts_with(&prefix))
        .map(|f| f.name.clone())
        .collect();
    names.sort();
    names.dedup();
    ext.post_updates = names;
    if let Some(f) = php.function(&format!("{}_removed_post_updates", ext.name)) {
        let mut removed = php.string_keys(f);
        removed.sort();
        removed.dedup();
        ext.removed_post_updates = removed;
    }
}

/// Drupal 8+: which profile directory each module and theme under a
/// `profiles` directory belongs to (the deepest profile containing it).
fn assign_profiles(found: &mut [Extension]) {
    let profiles: Vec<(String, String)> = found
        .iter()
        .filter(|e| e.kind == ExtensionKind::Profile)
        .map(|e| (format!("{}/", e.path), e.name.clone()))
        .collect();
    for e in found.iter_mut() {
        if e.kind == ExtensionKind::Profile {
            continue;
        }
        let sub = match &e.origin {
            Origin::Core => e.path.strip_prefix("core/"),
            Origin::SitesAll => e.path.strip_prefix("sites/all/"),
            Origin::Root => Some(e.path.as_str()),
            _ => None,
        };
        if !sub.is_some_and(|s| s.starts_with("profiles/")) {
            continue;
        }
        let dir = format!("{}/", e.path);
        e.origin = profiles
            .iter()
            .filter(|(p, _)| dir.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map_or(Origin::OtherProfileDir, |(_, n)| Origin::Profile(n.clone()));
    }
}
