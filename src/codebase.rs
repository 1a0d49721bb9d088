//! Platform codebases: the packages of a platform (spec section 3), read from
//! `packages/<pkg>/package.yaml`, `install.sql` and `updates/<N>.sql`, and the
//! dependency order in which they are installed and updated.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::FileType;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diag::Diagnostic;
use crate::inventory::document::{self, Schema};
use crate::names::PackageName;
use crate::version::Version;

/// What a package is, as its `package.yaml` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    /// A module: features with their own tables.
    Module,
    /// A theme: looks, no tables usually.
    Theme,
    /// A profile: what a site is installed with.
    Profile,
    /// A library other packages depend on.
    Library,
}

impl PackageKind {
    /// The kind's name as written in `package.yaml` and the `system` table.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Module => "module",
            PackageKind::Theme => "theme",
            PackageKind::Profile => "profile",
            PackageKind::Library => "library",
        }
    }

    /// Parses a kind as stored in a site's `system` table.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "module" => PackageKind::Module,
            "theme" => PackageKind::Theme,
            "profile" => PackageKind::Profile,
            "library" => PackageKind::Library,
            _ => return None,
        })
    }
}

/// One package of a codebase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Its name (also its directory's name).
    pub name: PackageName,
    /// Module, theme, profile or library.
    pub kind: PackageKind,
    /// Its release version, ordered as its kind orders versions.
    pub version: Version,
    /// Packages that must be installed and updated before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<PackageName>,
    /// For a profile: the packages a site installed with it gets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install: Vec<PackageName>,
    /// The numbers of its updates, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<u32>,
    /// The schema a fresh install records when it is above the highest
    /// update: Drupal 8+'s 8000, or `hook_update_last_removed()`. 0 for
    /// embedded packages.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_schema: u32,
    /// Drupal: hidden in its info file (listed, never reported missing).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// Drupal: what `hook_update_last_removed()` returns. A site below it
    /// cannot be updated by this codebase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_removed: Option<u32>,
    /// Drupal: why `hook_update_last_removed()` could not be read as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_removed_unreadable: Option<String>,
    /// Drupal 8+: its post-update functions, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_updates: Vec<String>,
    /// Drupal 8+: the post-updates `hook_removed_post_updates()` lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_post_updates: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Package {
    /// The schema version a fresh install records: the highest update
    /// number (0 without updates), at least [`Package::min_schema`].
    pub fn schema(&self) -> u32 {
        self.updates
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.min_schema)
    }

    /// An embedded package with no Drupal-only facts.
    pub fn embedded(
        name: PackageName,
        kind: PackageKind,
        version: semver::Version,
        updates: Vec<u32>,
    ) -> Package {
        Package {
            name,
            kind,
            version: Version::Semver(version),
            depends: Vec::new(),
            install: Vec::new(),
            updates,
            min_schema: 0,
            hidden: false,
            last_removed: None,
            last_removed_unreadable: None,
            post_updates: Vec::new(),
            removed_post_updates: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageFile {
    name: PackageName,
    kind: PackageKind,
    version: semver::Version,
    #[serde(default)]
    depends: Vec<PackageName>,
    #[serde(default)]
    install: Vec<PackageName>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
}

/// The packages of one platform, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Codebase {
    /// Every package, by name.
    pub packages: BTreeMap<PackageName, Package>,
    /// Set for a Drupal codebase: its core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drupal: Option<DrupalCore>,
}

/// The core of a Drupal codebase, as far as planning needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrupalCore {
    /// The core's `VERSION`.
    pub version: crate::drupal::DrupalVersion,
    /// Its major version: 7, 8, 9, 10, 11, …
    pub major: u64,
}

impl DrupalCore {
    /// Drupal 7, or 8 and later.
    pub fn generation(&self) -> crate::drupal::Generation {
        if self.major >= 8 {
            crate::drupal::Generation::Drupal8Plus
        } else {
            crate::drupal::Generation::Drupal7
        }
    }
}

impl Codebase {
    /// What it is, for messages: `Drupal 7.103`, or `an embedded codebase`.
    pub fn describe_kind(&self) -> String {
        match &self.drupal {
            Some(c) => format!("Drupal {}", c.version),
            None => "an embedded codebase".into(),
        }
    }
}

/// The file holding a package's install SQL, under a codebase directory.
pub fn install_sql_path(codebase: &Path, pkg: &PackageName) -> PathBuf {
    codebase.join(install_sql_rel(pkg))
}

/// [`install_sql_path`] inside a codebase directory.
pub fn install_sql_rel(pkg: &PackageName) -> String {
    format!("packages/{pkg}/install.sql")
}

/// [`update_sql_path`] inside a codebase directory.
pub fn update_sql_rel(pkg: &PackageName, n: u32) -> String {
    format!("packages/{pkg}/updates/{n}.sql")
}

/// The file holding update `n` of a package, under a codebase directory.
pub fn update_sql_path(codebase: &Path, pkg: &PackageName, n: u32) -> PathBuf {
    codebase.join(update_sql_rel(pkg, n))
}

impl Codebase {
    /// Reads the codebase in `dir`. `shown` is how `dir` is named in messages.
    /// Every problem found is returned, not only the first. Symlinks are
    /// never followed: a codebase is read only inside its own directory.
    pub fn scan(dir: &Path, shown: &Path) -> Result<Codebase, Vec<Diagnostic>> {
        Self::scan_in(&Disk(dir), shown)
    }

    /// Reads a codebase from a [`Walk`] of its directory: what [`scan`]
    /// reads, without reading it a second time.
    ///
    /// [`scan`]: Codebase::scan
    pub fn scan_walked(walk: &Walk, shown: &Path) -> Result<Codebase, Vec<Diagnostic>> {
        Self::scan_in(walk, shown)
    }

    fn scan_in(src: &dyn Listing, shown: &Path) -> Result<Codebase, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let pkgs_rel = Path::new("packages");
        let entries = match src.list(pkgs_rel) {
            Ok(e) => e,
            Err(e) => {
                return Err(vec![Diagnostic::at(
                    &shown.join("packages"),
                    None,
                    format!("cannot read the codebase's packages directory: {e}"),
                )])
            }
        };
        let mut packages = BTreeMap::new();
        for (fname, ftype) in entries {
            let shown_pkg = shown.join("packages").join(&fname);
            if fname.starts_with('.') {
                continue;
            }
            if !ftype.is_dir() {
                diags.push(Diagnostic::at(
                    &shown_pkg,
                    None,
                    "expected a package directory",
                ));
                continue;
            }
            match scan_package(src, &pkgs_rel.join(&fname), &shown_pkg, &fname) {
                Ok(p) => {
                    packages.insert(p.name.clone(), p);
                }
                Err(mut d) => diags.append(&mut d),
            }
        }
        let cb = Codebase {
            packages,
            drupal: None,
        };
        // References are checked once every package is known.
        for p in cb.packages.values() {
            let file = shown
                .join("packages")
                .join(p.name.as_str())
                .join("package.yaml");
            for d in p.depends.iter().chain(&p.install) {
                if !cb.packages.contains_key(d) {
                    diags.push(Diagnostic::at(
                        &file,
                        None,
                        format!(
                            "package {} needs {d}, which this codebase does not have",
                            p.name
                        ),
                    ));
                }
            }
            if !p.install.is_empty() && p.kind != PackageKind::Profile {
                diags.push(Diagnostic::at(
                    &file,
                    None,
                    "only a profile may list `install`",
                ));
            }
        }
        if diags.is_empty() {
            if let Err(cycle) = cb.order(cb.packages.keys().cloned()) {
                diags.push(Diagnostic::at(shown, None, cycle));
            }
        }
        if diags.is_empty() {
            Ok(cb)
        } else {
            Err(diags)
        }
    }

    /// The packages a new site installed with `profile` gets, in install order.
    pub fn install_set(&self, profile: &PackageName) -> Result<Vec<PackageName>, String> {
        let p = self
            .packages
            .get(profile)
            .filter(|p| p.kind == PackageKind::Profile)
            .ok_or_else(|| format!("the codebase has no profile {profile}"))?;
        let mut roots = p.install.clone();
        roots.push(p.name.clone());
        self.order(roots)
    }

    /// `roots` and everything they depend on, dependencies first, ties broken
    /// by name so the order is the same on every run.
    pub fn order(
        &self,
        roots: impl IntoIterator<Item = PackageName>,
    ) -> Result<Vec<PackageName>, String> {
        // Close over dependencies first.
        let mut want: BTreeSet<PackageName> = BTreeSet::new();
        let mut todo: Vec<PackageName> = roots.into_iter().collect();
        while let Some(n) = todo.pop() {
            if want.insert(n.clone()) {
                if let Some(p) = self.packages.get(&n) {
                    todo.extend(p.depends.iter().cloned());
                }
            }
        }
        let mut out = Vec::with_capacity(want.len());
        let mut done: BTreeSet<PackageName> = BTreeSet::new();
        while done.len() < want.len() {
            let ready: Vec<PackageName> = want
                .iter()
                .filter(|n| !done.contains(*n))
                .filter(|n| {
                    self.packages.get(*n).is_none_or(|p| {
                        p.depends
                            .iter()
                            .all(|d| done.contains(d) || !want.contains(d))
                    })
                })
                .cloned()
                .collect();
            let ready = match (ready.is_empty(), &self.drupal) {
                // Drupal's core modules depend on each other in cycles
                // (field and field_sql_storage): Drupal's installer and
                // update.php order them by their own rules; here, the first
                // of the cycle by name goes first, the same on every run.
                (true, Some(_)) => want
                    .iter()
                    .filter(|n| !done.contains(*n))
                    .take(1)
                    .cloned()
                    .collect(),
                _ => ready,
            };
            if ready.is_empty() {
                let stuck: Vec<&str> = want
                    .iter()
                    .filter(|n| !done.contains(*n))
                    .map(|n| n.as_str())
                    .collect();
                return Err(format!(
                    "packages depend on each other in a cycle: {}",
                    stuck.join(", ")
                ));
            }
            for n in ready {
                done.insert(n.clone());
                out.push(n);
            }
        }
        Ok(out)
    }
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, std::fs::FileType)>> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::other("not a directory"));
    }
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        v.push((name, e.path(), e.file_type()?));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

fn scan_package(
    src: &dyn Listing,
    rel: &Path,
    shown: &Path,
    dirname: &str,
) -> Result<Package, Vec<Diagnostic>> {
    let file = shown.join("package.yaml");
    let text = src.text(&rel.join("package.yaml"), &file)?;
    let doc = document::parse(&text, &file, Schema::Package)?;
    let pf: PackageFile = doc.decode(&file).map_err(|d| vec![d])?;
    let mut diags = Vec::new();
    if pf.name.as_str() != dirname {
        diags.push(Diagnostic::at(
            &file,
            doc.positions.value("/name"),
            format!(
                "package name {} does not match its directory {dirname:?}",
                pf.name
            ),
        ));
    }
    let mut updates = Vec::new();
    let urel = rel.join("updates");
    if src.exists(&urel) {
        match src.list(&urel) {
            Ok(entries) => {
                for (fname, ftype) in entries {
                    match update_number(&fname).filter(|_| ftype.is_file()) {
                        Some(n) => updates.push(n),
                        None => diags.push(Diagnostic::at(
                            &shown.join("updates").join(&fname),
                            None,
                            "an update must be a file named <N>.sql, N a positive integer \
                             written without leading zeros or sign (1.sql, 12.sql)",
                        )),
                    }
                }
            }
            Err(e) => diags.push(Diagnostic::at(
                &shown.join("updates"),
                None,
                format!("cannot read: {e}"),
            )),
        }
    }
    updates.sort_unstable();
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut p = Package::embedded(pf.name, pf.kind, pf.version, updates);
    p.depends = pf.depends;
    p.install = pf.install;
    Ok(p)
}

/// The number of update file `fname` when it is canonical, `[1-9][0-9]*.sql`:
/// `01.sql` beside `1.sql` would otherwise be one update run twice.
fn update_number(fname: &str) -> Option<u32> {
    let digits = fname.strip_suffix(".sql")?;
    let canonical = digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    // `parse` also refuses a number past u32::MAX, rather than wrapping.
    canonical.then(|| digits.parse().ok()).flatten()
}

/// A hash of everything under `dir`: names, kinds, symlink targets and file
/// contents, in name order. A platform records it when built, and planning
/// compares it with the source's to tell that a codebase changed.
pub fn tree_hash(dir: &Path) -> std::io::Result<String> {
    Walk::new(dir).map(|w| w.hash)
}

/// Where a scan finds directory listings and `package.yaml` texts.
trait Listing {
    /// The sorted entries of directory `rel`.
    fn list(&self, rel: &Path) -> std::io::Result<Vec<(String, FileType)>>;
    /// Whether `rel` exists (as anything, symlinks included).
    fn exists(&self, rel: &Path) -> bool;
    /// The text of YAML file `rel`, checked as [`document::read_text`] does.
    fn text(&self, rel: &Path, shown: &Path) -> Result<String, Vec<Diagnostic>>;
}

/// The codebase on disk, read as it is asked for.
struct Disk<'a>(&'a Path);

impl Listing for Disk<'_> {
    fn list(&self, rel: &Path) -> std::io::Result<Vec<(String, FileType)>> {
        Ok(read_dir_sorted(&self.0.join(rel))?
            .into_iter()
            .map(|(name, _, t)| (name, t))
            .collect())
    }

    fn exists(&self, rel: &Path) -> bool {
        std::fs::symlink_metadata(self.0.join(rel)).is_ok()
    }

    fn text(&self, rel: &Path, shown: &Path) -> Result<String, Vec<Diagnostic>> {
        document::read_text(&self.0.join(rel), shown)
    }
}

/// One walk of a codebase directory: its [`tree_hash`], every real
/// directory's listing, and the bytes of each `package.yaml`. Loading an
/// inventory needs both the hash and the packages of every platform; at
/// fleet scale (50 codebases of 200 packages) reading each file once halves
/// the system calls. Symlinks are never followed.
pub struct Walk {
    dir: PathBuf,
    /// The tree hash of the directory.
    pub hash: String,
    dirs: HashMap<PathBuf, Vec<(String, FileType)>>,
    texts: HashMap<PathBuf, Vec<u8>>,
}

impl Walk {
    /// Walks `dir`. An error means the tree could not be read entirely.
    pub fn new(dir: &Path) -> std::io::Result<Walk> {
        let mut w = Walk {
            dir: dir.to_path_buf(),
            hash: String::new(),
            dirs: HashMap::new(),
            texts: HashMap::new(),
        };
        let mut h = Sha256::new();
        let mut buf = Vec::new();
        w.visit(Path::new(""), "", &mut h, &mut buf)?;
        let digest = h.finalize();
        w.hash = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(w)
    }

    fn visit(
        &mut self,
        rel: &Path,
        shown: &str,
        h: &mut Sha256,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let entries = read_dir_sorted(&self.dir.join(rel))?;
        self.dirs.insert(
            rel.to_path_buf(),
            entries.iter().map(|(n, _, t)| (n.clone(), *t)).collect(),
        );
        for (name, path, ftype) in entries {
            let r = if shown.is_empty() {
                name.clone()
            } else {
                format!("{shown}/{name}")
            };
            if ftype.is_symlink() {
                let target = std::fs::read_link(&path)?;
                h.update(format!("L {r}\0{}\0", target.display()).as_bytes());
            } else if ftype.is_dir() {
                h.update(format!("D {r}\0").as_bytes());
                self.visit(&rel.join(&name), &r, h, buf)?;
            } else if ftype.is_file() {
                let len = read_file(&path, buf, h, &r)?;
                // Kept for the scan: `packages/<pkg>/package.yaml`.
                if name == "package.yaml"
                    && rel.parent() == Some(Path::new("packages"))
                    && len <= document::MAX_YAML_BYTES
                {
                    self.texts.insert(rel.join(&name), buf.clone());
                }
            }
        }
        Ok(())
    }
}

/// Hashes file `path` as the tree hash does (`F <rel>\0<len>\0` and the
/// bytes). Small files end up whole in `buf`; returns the length.
fn read_file(path: &Path, buf: &mut Vec<u8>, h: &mut Sha256, rel: &str) -> std::io::Result<u64> {
    use std::os::unix::fs::OpenOptionsExt;
    const WHOLE: u64 = 1024 * 1024;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    buf.clear();
    (&mut f).take(WHOLE + 1).read_to_end(buf)?;
    if buf.len() as u64 <= WHOLE {
        h.update(format!("F {rel}\0{}\0", buf.len()).as_bytes());
        h.update(&buf[..]);
        return Ok(buf.len() as u64);
    }
    // A big file: its length from the file system, then the bytes streamed.
    let len = f.metadata()?.len();
    h.update(format!("F {rel}\0{len}\0").as_bytes());
    h.update(&buf[..]);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        h.update(&chunk[..n]);
    }
    buf.clear();
    Ok(len)
}

impl Listing for Walk {
    fn list(&self, rel: &Path) -> std::io::Result<Vec<(String, FileType)>> {
        match self.dirs.get(rel) {
            Some(l) => Ok(l.clone()),
            // Not a real directory of the walk: the disk gives the error.
            None => Disk(&self.dir).list(rel),
        }
    }

    fn exists(&self, rel: &Path) -> bool {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Disk(&self.dir).exists(rel);
        };
        match self.dirs.get(parent) {
            Some(l) => l.iter().any(|(n, _)| std::ffi::OsStr::new(n) == name),
            None => Disk(&self.dir).exists(rel),
        }
    }

    fn text(&self, rel: &Path, shown: &Path) -> Result<String, Vec<Diagnostic>> {
        match self.texts.get(rel) {
            Some(bytes) => document::utf8_text(bytes.clone(), shown),
            // Not a regular file, or too big: the disk read says which.
            None => Disk(&self.dir).text(rel, shown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, kind: PackageKind, depends: &[&str]) -> Package {
        let mut p = Package::embedded(
            PackageName::new(name).unwrap(),
            kind,
            semver::Version::new(1, 0, 0),
            vec![],
        );
        p.depends = depends
            .iter()
            .map(|d| PackageName::new(d).unwrap())
            .collect();
        p
    }

    fn cb(pkgs: Vec<Package>) -> Codebase {
        Codebase {
            packages: pkgs.into_iter().map(|p| (p.name.clone(), p)).collect(),
            drupal: None,
        }
    }

    fn names(v: Vec<PackageName>) -> Vec<String> {
        v.into_iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn update_names_must_be_canonical() {
        assert_eq!(update_number("1.sql"), Some(1));
        assert_eq!(update_number("120.sql"), Some(120));
        assert_eq!(update_number("4294967295.sql"), Some(u32::MAX));
        for bad in [
            "01.sql",
            "0.sql",
            "+1.sql",
            "-1.sql",
            "1.SQL",
            "1 .sql",
            ".sql",
            "١.sql", // an Arabic-Indic one
            "4294967296.sql",
            "1.sql.bak",
        ] {
            assert_eq!(update_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn order_puts_dependencies_first() {
        let c = cb(vec![
            pkg("blog", PackageKind::Module, &["node"]),
            pkg("node", PackageKind::Module, &["core"]),
            pkg("core", PackageKind::Library, &[]),
            pkg("aaa", PackageKind::Module, &["blog"]),
        ]);
        let o = names(c.order([PackageName::new("aaa").unwrap()]).unwrap());
        assert_eq!(o, ["core", "node", "blog", "aaa"]);
    }

    #[test]
    fn order_reports_cycles() {
        let c = cb(vec![
            pkg("a", PackageKind::Module, &["b"]),
            pkg("b", PackageKind::Module, &["a"]),
        ]);
        let e = c.order([PackageName::new("a").unwrap()]).unwrap_err();
        assert!(e.contains("cycle") && e.contains("a, b"), "{e}");
    }

    #[test]
    fn install_set_includes_profile_and_its_closure() {
        let mut prof = pkg("standard", PackageKind::Profile, &["core"]);
        prof.install = vec![PackageName::new("blog").unwrap()];
        let c = cb(vec![
            prof,
            pkg("blog", PackageKind::Module, &["core"]),
            pkg("core", PackageKind::Library, &[]),
            pkg("unused", PackageKind::Module, &[]),
        ]);
        let o = names(
            c.install_set(&PackageName::new("standard").unwrap())
                .unwrap(),
        );
        assert_eq!(o, ["core", "blog", "standard"]);
        assert!(c.install_set(&PackageName::new("blog").unwrap()).is_err());
    }

    /// A small codebase with every kind of entry a walk meets.
    fn odd_codebase() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("packages");
        for (pkg, deps) in [("core", ""), ("blog", "\ndepends: [core]")] {
            std::fs::create_dir_all(p.join(pkg).join("updates")).unwrap();
            std::fs::write(
                p.join(pkg).join("package.yaml"),
                format!("name: {pkg}\nkind: module\nversion: 1.0.0{deps}\n"),
            )
            .unwrap();
            std::fs::write(p.join(pkg).join("install.sql"), "CREATE TABLE x (a);\n").unwrap();
            std::fs::write(p.join(pkg).join("updates").join("1.sql"), "SELECT 1;\n").unwrap();
        }
        std::fs::write(p.join("blog").join("big.bin"), vec![7u8; 1024 * 1024 + 5]).unwrap();
        std::fs::create_dir(t.path().join("empty")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", t.path().join("link")).unwrap();
        t
    }

    #[test]
    fn the_walk_hashes_as_recorded_hashes_were_made() {
        // Built platforms record this hash; a change of algorithm would
        // make every one of them look changed. `old_tree_hash` is the
        // implementation the records were made with.
        let t = odd_codebase();
        let walk = Walk::new(t.path()).unwrap();
        assert_eq!(walk.hash, old_tree_hash(t.path()).unwrap());
        assert_eq!(tree_hash(t.path()).unwrap(), walk.hash);
        std::fs::write(t.path().join("packages/core/install.sql"), "changed").unwrap();
        assert_ne!(tree_hash(t.path()).unwrap(), walk.hash);
    }

    #[test]
    fn a_walked_scan_reads_what_a_disk_scan_reads() {
        let t = odd_codebase();
        let shown = Path::new("codebases/x");
        let walk = Walk::new(t.path()).unwrap();
        let walked = Codebase::scan_walked(&walk, shown).unwrap();
        assert_eq!(walked, Codebase::scan(t.path(), shown).unwrap());
        assert_eq!(walked.packages.len(), 2);
        let blog = &walked.packages[&PackageName::new("blog").unwrap()];
        assert_eq!(blog.updates, vec![1]);
        assert_eq!(blog.depends, vec![PackageName::new("core").unwrap()]);

        // The same problems, in the same words: a symlinked package.yaml,
        // a file where the updates directory belongs, bad UTF-8.
        let p = t.path().join("packages");
        std::fs::remove_file(p.join("core/package.yaml")).unwrap();
        std::os::unix::fs::symlink("../blog/package.yaml", p.join("core/package.yaml")).unwrap();
        std::fs::remove_dir_all(p.join("blog/updates")).unwrap();
        std::fs::write(p.join("blog/updates"), "").unwrap();
        std::fs::create_dir(p.join("bad")).unwrap();
        std::fs::write(p.join("bad/package.yaml"), b"name: \xff\n").unwrap();
        let walk = Walk::new(t.path()).unwrap();
        let from_walk = Codebase::scan_walked(&walk, shown).unwrap_err();
        let from_disk = Codebase::scan(t.path(), shown).unwrap_err();
        assert_eq!(from_walk, from_disk);
        let all: Vec<String> = from_walk.iter().map(|d| d.to_string()).collect();
        assert!(
            all.iter()
                .any(|d| d.contains("core/package.yaml: not a regular file")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|d| d.contains("blog/updates: cannot read")),
            "{all:?}"
        );
        assert!(
            all.iter()
                .any(|d| d.contains("bad/package.yaml: not UTF-8")),
            "{all:?}"
        );
    }

    /// The tree hash as it was first written, before the one walk: kept
    /// here as the reference the walk must agree with.
    fn old_tree_hash(dir: &Path) -> std::io::Result<String> {
        let mut h = Sha256::new();
        old_hash_into(dir, "", &mut h)?;
        let digest = h.finalize();
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn old_hash_into(dir: &Path, rel: &str, h: &mut Sha256) -> std::io::Result<()> {
        for (name, path, ftype) in read_dir_sorted(dir)? {
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if ftype.is_symlink() {
                let target = std::fs::read_link(&path)?;
                h.update(format!("L {r}\0{}\0", target.display()).as_bytes());
            } else if ftype.is_dir() {
                h.update(format!("D {r}\0").as_bytes());
                old_hash_into(&path, &r, h)?;
            } else if ftype.is_file() {
                let mut f = std::fs::File::open(&path)?;
                h.update(format!("F {r}\0{}\0", f.metadata()?.len()).as_bytes());
                let mut buf = [0u8; 64 * 1024];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
        }
        Ok(())
    }
}
