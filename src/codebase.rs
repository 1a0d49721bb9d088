//! Platform codebases: the packages of a platform (spec section 3), read from
//! `packages/<pkg>/package.yaml`, `install.sql` and `updates/<N>.sql`, and the
//! dependency order in which they are installed and updated.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diag::Diagnostic;
use crate::inventory::document::{self, Schema};
use crate::names::PackageName;

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
    /// Its release version.
    pub version: semver::Version,
    /// Packages that must be installed and updated before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<PackageName>,
    /// For a profile: the packages a site installed with it gets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install: Vec<PackageName>,
    /// The numbers of its updates, ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<u32>,
}

impl Package {
    /// The schema version: the highest update number, 0 without updates.
    pub fn schema(&self) -> u32 {
        self.updates.last().copied().unwrap_or(0)
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
}

/// The file holding a package's install SQL, under a codebase directory.
pub fn install_sql_path(codebase: &Path, pkg: &PackageName) -> PathBuf {
    codebase
        .join("packages")
        .join(pkg.as_str())
        .join("install.sql")
}

/// The file holding update `n` of a package, under a codebase directory.
pub fn update_sql_path(codebase: &Path, pkg: &PackageName, n: u32) -> PathBuf {
    codebase
        .join("packages")
        .join(pkg.as_str())
        .join("updates")
        .join(format!("{n}.sql"))
}

impl Codebase {
    /// Reads the codebase in `dir`. `shown` is how `dir` is named in messages.
    /// Every problem found is returned, not only the first. Symlinks are
    /// never followed: a codebase is read only inside its own directory.
    pub fn scan(dir: &Path, shown: &Path) -> Result<Codebase, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let pkgs_dir = dir.join("packages");
        let entries = match read_dir_sorted(&pkgs_dir) {
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
        for (fname, path, ftype) in entries {
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
            match scan_package(&path, &shown_pkg, &fname) {
                Ok(p) => {
                    packages.insert(p.name.clone(), p);
                }
                Err(mut d) => diags.append(&mut d),
            }
        }
        let cb = Codebase { packages };
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

fn scan_package(dir: &Path, shown: &Path, dirname: &str) -> Result<Package, Vec<Diagnostic>> {
    let file = shown.join("package.yaml");
    let doc = document::load(&dir.join("package.yaml"), &file, Schema::Package)?;
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
    let udir = dir.join("updates");
    if std::fs::symlink_metadata(&udir).is_ok() {
        match read_dir_sorted(&udir) {
            Ok(entries) => {
                for (fname, _, ftype) in entries {
                    let n = fname
                        .strip_suffix(".sql")
                        .and_then(|s| s.parse::<u32>().ok())
                        .filter(|n| *n > 0 && ftype.is_file());
                    match n {
                        Some(n) => updates.push(n),
                        None => diags.push(Diagnostic::at(
                            &shown.join("updates").join(&fname),
                            None,
                            "an update must be a file named <N>.sql, N a positive integer",
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
    Ok(Package {
        name: pf.name,
        kind: pf.kind,
        version: pf.version,
        depends: pf.depends,
        install: pf.install,
        updates,
    })
}

/// A content hash of a directory tree: paths, file contents, and link
/// targets (links are recorded, never followed). Two trees with the same
/// hash are the same codebase, which is how a changed source is noticed.
pub fn tree_hash(dir: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    hash_into(dir, "", &mut h)?;
    let digest = h.finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn hash_into(dir: &Path, rel: &str, h: &mut Sha256) -> std::io::Result<()> {
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
            hash_into(&path, &r, h)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, kind: PackageKind, depends: &[&str]) -> Package {
        Package {
            name: PackageName::new(name).unwrap(),
            kind,
            version: semver::Version::new(1, 0, 0),
            depends: depends
                .iter()
                .map(|d| PackageName::new(d).unwrap())
                .collect(),
            install: vec![],
            updates: vec![],
        }
    }

    fn cb(pkgs: Vec<Package>) -> Codebase {
        Codebase {
            packages: pkgs.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }

    fn names(v: Vec<PackageName>) -> Vec<String> {
        v.into_iter().map(|n| n.to_string()).collect()
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
}
