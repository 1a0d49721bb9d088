//! The embedded local server: platforms, sites, vhosts, backups and tasks in
//! a directory tree (spec section 4), and observation of all of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::db::{Credentials, DbError, SqliteServer};
use crate::driver::host::{
    EntryKind, Host, HostError, HostLock, HostPath, LocalHost, OnHost, WriteMode,
};
use crate::driver::{DbServer, Drivers, WebServer, Which};
use crate::journal::Place;
use crate::names::{Domain, Name, PlatformName};
use crate::observe::{Actual, ObservedPlatform, ObservedSite};
use crate::render::{self, SettingsFile, SiteConfig};

/// Site database snapshots by database server and database name, read
/// for a whole server at once ([`LocalServer::observe`]).
type Snapshots = BTreeMap<(Name, String), crate::driver::db::SiteSnapshot>;

/// What observing a whole server reads once for all of its sites.
#[derive(Default)]
struct Pre {
    /// Database snapshots ([`LocalServer::snapshots`]).
    snapshots: Snapshots,
    /// The Drupal generation of each platform observed (none: embedded).
    generations: BTreeMap<PlatformName, Option<crate::drupal::Generation>>,
}

/// A server failure.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database server failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Something on the server is not as hoist left it.
    #[error("{0}")]
    Invalid(String),
    /// Another hoist process holds the server.
    #[error("{0}")]
    Locked(String),
    /// The server's host failed.
    #[error(transparent)]
    Host(HostError),
}

impl From<HostError> for ServerError {
    fn from(e: HostError) -> ServerError {
        match e {
            HostError::Locked(m) => ServerError::Locked(m),
            e => ServerError::Host(e),
        }
    }
}

/// Wraps an I/O error with its path.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What hoist records inside a built platform about its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformRecord {
    /// The platform's name.
    pub name: PlatformName,
    /// The source it was built from, described.
    pub source: String,
    /// The source's tree hash at build time.
    pub source_hash: String,
    /// What the build holds, scanned from its source: how a platform on a
    /// remote host is observed without reading its code back (platforms
    /// are immutable once built). Absent in records of older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codebase: Option<crate::codebase::Codebase>,
}

/// The name of the record file inside a built platform.
pub const PLATFORM_RECORD: &str = ".hoist-platform.yaml";
/// A site's settings file, in its directory.
pub const SETTINGS_FILE: &str = "settings.yaml";

/// The directories under a Drupal platform's `sites/` that are Drupal's
/// own: shared modules and themes (`all`) and the fallback site
/// (`default`).
pub const DRUPAL_OWN_SITE_DIRS: [&str; 2] = ["all", "default"];
/// The copy of a site's settings a task keeps while it replaces them.
pub const OLD_SETTINGS_FILE: &str = ".hoist-old-settings.yaml";

/// A server: everything under one root directory on its [`Host`].
#[derive(Debug, Clone)]
pub struct LocalServer {
    name: Name,
    root: PathBuf,
    host: std::sync::Arc<dyn Host>,
    db: SqliteServer,
    drivers: Drivers,
}

impl LocalServer {
    /// The server `name` rooted at `root`.
    pub fn new(name: Name, root: PathBuf) -> Self {
        let drivers = Drivers::embedded(&root);
        Self::with_drivers(name, root, drivers)
    }

    /// The server `name` rooted at `root`, driving `drivers`.
    pub fn with_drivers(name: Name, root: PathBuf, drivers: Drivers) -> Self {
        let host = std::sync::Arc::new(LocalHost::new(root.clone()));
        Self::with_host(name, root, host, drivers)
    }

    /// The server `name` whose files are on `host` under `root` (as that
    /// host names it), driving `drivers`.
    pub fn with_host(
        name: Name,
        root: PathBuf,
        host: std::sync::Arc<dyn Host>,
        drivers: Drivers,
    ) -> Self {
        let db = SqliteServer::new(root.join("databases"));
        LocalServer {
            name,
            root,
            host,
            db,
            drivers,
        }
    }

    /// Its host: where its files are.
    pub fn host(&self) -> &dyn Host {
        self.host.as_ref()
    }

    /// Its host, shared: what keeps a connection to it open.
    pub fn host_arc(&self) -> std::sync::Arc<dyn Host> {
        self.host.clone()
    }

    /// Whether its files are on this machine (else on a host over ssh).
    pub fn is_local(&self) -> bool {
        self.host.local_root().is_some()
    }

    /// `abs` (a path under the root) as a journal records it: on this
    /// server.
    pub fn place(&self, abs: &Path) -> Result<Place, HostError> {
        Ok(Place::On {
            server: self.name.clone(),
            path: self.at(abs)?,
        })
    }

    /// Where on this server's root a journaled place is; a place on
    /// another server, or outside the root, is refused.
    pub fn locate(&self, p: &Place) -> Result<PathBuf, HostError> {
        let rel = match p {
            Place::On { server, path } if *server == self.name => path.clone(),
            Place::On { server, path } => {
                return Err(HostError::Path {
                    path: format!("{server}:{path}"),
                    why: "on another server than the task's",
                })
            }
            Place::Legacy(abs) => self.at(abs)?,
        };
        Ok(rel.under(&self.root))
    }

    /// Removes the tree at `abs` (a path under the root, as this server's
    /// accessors and the task journal name them) through the host; one
    /// already gone is fine.
    pub fn remove_tree_at(&self, abs: &Path) -> Result<(), HostError> {
        self.host.remove_tree(&self.at(abs)?)
    }

    /// Removes the file at `abs` through the host; one already gone is fine.
    pub fn remove_file_at(&self, abs: &Path) -> Result<(), HostError> {
        self.host.remove_file(&self.at(abs)?)
    }

    /// Renames `from` to `to` (both under the root) through the host.
    pub fn rename_at(&self, from: &Path, to: &Path) -> Result<(), HostError> {
        self.host.rename(&self.at(from)?, &self.at(to)?)
    }

    /// Whether `abs` exists (a path that cannot be looked at is taken as
    /// there, so nothing is moved or removed on a guess).
    pub fn exists_at(&self, abs: &Path) -> bool {
        self.at(abs)
            .and_then(|p| self.host.exists(&p))
            .unwrap_or(true)
    }

    /// Makes the directory `abs` and its parents through the host.
    pub fn mkdir_at(&self, abs: &Path) -> Result<(), HostError> {
        self.host.mkdir(&self.at(abs)?, false)
    }

    /// Writes the file `abs` through the host.
    pub fn write_at(&self, abs: &Path, bytes: &[u8], mode: WriteMode) -> Result<(), HostError> {
        self.host.write(&self.at(abs)?, bytes, mode)
    }

    /// The bytes of the file `abs`; a missing file is an error.
    pub fn read_at(&self, abs: &Path) -> Result<Vec<u8>, HostError> {
        self.host
            .read(&self.at(abs)?)?
            .ok_or_else(|| HostError::Io {
                path: abs.display().to_string(),
                source: std::io::ErrorKind::NotFound.into(),
            })
    }

    /// Copies the tree `from` to `to` (both under the root, `to` missing)
    /// through the host, links as links, without `from`'s entries named
    /// in `except`.
    pub fn copy_tree_at(&self, from: &Path, to: &Path, except: &[&str]) -> Result<(), HostError> {
        self.host.copy_tree(&self.at(from)?, &self.at(to)?, except)
    }

    /// The path inside the root that `abs` (a path this server's
    /// accessors gave, such as [`LocalServer::site_dir`]) names; refused
    /// `abs` (under the root) with the server's host: an archive or a
    /// directory a backup is read from or restored into.
    pub fn on_host(&self, abs: &Path) -> Result<OnHost, HostError> {
        Ok(OnHost {
            host: self.host.clone(),
            path: self.at(abs)?,
        })
    }
    /// when it lies outside the root.
    pub fn at(&self, abs: &Path) -> Result<HostPath, HostError> {
        HostPath::within(&self.root, abs).or_else(|e| {
            if !self.is_local() {
                return Err(e);
            }
            // A journal written while the root was spelt otherwise (through
            // a symlink, or relative) names the same places: compared by
            // their real directories, the last component left as it is.
            let real = |p: &Path| p.canonicalize().ok();
            let (Some(root), Some(dir), Some(name)) = (
                real(&self.root),
                abs.parent().and_then(real),
                abs.file_name(),
            ) else {
                return Err(e);
            };
            HostPath::within(&root, &dir.join(name)).map_err(|_| e)
        })
    }

    /// Its drivers.
    pub fn drivers(&self) -> &Drivers {
        &self.drivers
    }

    /// Its web server.
    pub fn web(&self) -> &dyn WebServer {
        self.drivers.web.as_ref()
    }

    /// The database server `name` of the inventory, as seen from this
    /// server.
    pub fn db_server(&self, name: &Name) -> Result<&dyn DbServer, ServerError> {
        self.drivers
            .db(name)
            .map_err(|e| ServerError::Invalid(e.to_string()))
    }

    /// The server's name in `hoist.yaml`.
    pub fn name(&self) -> &Name {
        &self.name
    }
    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Its database server.
    pub fn db(&self) -> &SqliteServer {
        &self.db
    }
    /// Where a platform is built.
    pub fn platform_dir(&self, p: &PlatformName) -> PathBuf {
        self.root.join("platforms").join(p.as_str())
    }
    /// Where a platform is built, inside the root.
    pub fn platform_path(&self, p: &PlatformName) -> HostPath {
        HostPath::new("platforms")
            .and_then(|d| d.join(p.as_str()))
            .expect("platform names are single components")
    }
    /// Where a site lives on a platform.
    pub fn site_dir(&self, p: &PlatformName, d: &Domain) -> PathBuf {
        self.platform_dir(p).join("sites").join(d.as_str())
    }
    /// What lives under a platform's `sites/` that is not the platform's
    /// own: site directories and task leftovers. On a Drupal platform,
    /// Drupal's own directories ([`DRUPAL_OWN_SITE_DIRS`]) and plain files
    /// (`sites.php`, `README.txt`) are the platform's.
    pub fn hosted_entries(&self, p: &PlatformName) -> Vec<String> {
        let drupal = matches!(self.drupal_generation(p), Ok(Some(_)));
        self.hosted_in(p, drupal)
    }

    /// [`LocalServer::hosted_entries`] of a platform known to be Drupal's
    /// or not.
    fn hosted_in(&self, p: &PlatformName, drupal: bool) -> Vec<String> {
        let sites = self.platform_path(p).join("sites");
        // An unreadable sites directory hosts nothing hoist can name:
        // observation then reports each site's own failure.
        let listed = sites.and_then(|s| self.host.list(&s)).unwrap_or_default();
        listed
            .into_iter()
            .filter(|(name, kind)| {
                !drupal
                    || (*kind == EntryKind::Dir && !DRUPAL_OWN_SITE_DIRS.contains(&name.as_str()))
            })
            .map(|(name, _)| name)
            .collect()
    }

    /// A site's settings file.
    pub fn settings_path(&self, cfg: &SiteConfig) -> PathBuf {
        self.root.join(cfg.settings_path())
    }
    /// A domain's vhost file.
    pub fn vhost_path(&self, d: &Domain) -> PathBuf {
        self.root.join("vhosts").join(format!("{d}.conf"))
    }
    /// Where a site's backups are kept.
    pub fn backups_dir(&self, site: &Name) -> PathBuf {
        self.root.join("backups").join(site.as_str())
    }
    /// Where task journals and logs are kept.
    pub fn tasks_dir(&self) -> PathBuf {
        self.root.join("tasks")
    }
    /// The tasks directory, through the server's host (where the journal
    /// is made durable).
    pub fn tasks(&self) -> crate::task::TasksDir {
        crate::task::TasksDir::new(
            self.host.clone(),
            HostPath::root().join("tasks").expect("a plain name"),
        )
    }

    /// Makes everything written under the server's root durable: one
    /// `syncfs` for each filesystem among the root and its top directories
    /// (those that exist). A task's commit point calls it, so the files it
    /// staged unsynced are on disk before it notes the commit.
    pub fn sync_staged(&self) -> Result<(), HostError> {
        self.host.make_durable()
    }

    /// Builds platform `name` from the codebase in `src`: copied into a
    /// temporary directory, recorded, then renamed into place, so a platform
    /// directory is always complete. An existing build (with no site on it)
    /// is replaced.
    pub fn build_platform(
        &self,
        name: &PlatformName,
        src: &Path,
        record: &PlatformRecord,
    ) -> Result<(), ServerError> {
        let h = self.host();
        let platforms = HostPath::new("platforms")?;
        h.mkdir(&platforms, false)?;
        let tmp = platforms.join(&format!(".build-{name}"))?;
        h.remove_tree(&tmp)?;
        h.put_tree(src, &tmp)?;
        let rec = serde_yaml::to_string(record).map_err(|e| ServerError::Invalid(e.to_string()))?;
        h.write(
            &tmp.join(PLATFORM_RECORD)?,
            rec.as_bytes(),
            WriteMode::Atomic,
        )?;
        let dest = self.platform_path(name);
        if h.exists(&dest)? {
            // A rebuild replaces the code, never the sites living in it:
            // their directory moves into the new build before the swap.
            let old = platforms.join(&format!(".old-{name}"))?;
            if h.exists(&old.join("sites")?)? {
                return Err(ServerError::Invalid(format!(
                    "{} holds sites from an interrupted rebuild; run hoist again to recover it",
                    h.display(&old)
                )));
            }
            h.remove_tree(&old)?;
            h.remove_tree(&tmp.join("sites")?)?;
            h.rename(&dest, &old)?;
            if h.exists(&old.join("sites")?)? {
                h.rename(&old.join("sites")?, &tmp.join("sites")?)?;
            }
            h.rename(&tmp, &dest)?;
            h.remove_tree(&old)?;
        } else {
            h.rename(&tmp, &dest)?;
        }
        Ok(h.sync_dir(&platforms)?)
    }

    /// Removes a platform; one already gone is fine.
    pub fn delete_platform(&self, name: &PlatformName) -> Result<(), ServerError> {
        Ok(self.host().remove_tree(&self.platform_path(name))?)
    }

    /// The Drupal generation of a built platform (none: the embedded
    /// kind). Here its code says so (one small file read); on a remote host
    /// its build record does.
    pub fn drupal_generation(
        &self,
        p: &PlatformName,
    ) -> Result<Option<crate::drupal::Generation>, ServerError> {
        if self.is_local() {
            let pdir = self.platform_dir(p);
            let core = crate::drupal::detect(&pdir, &pdir)
                .map_err(|d| ServerError::Invalid(d.to_string()))?;
            return Ok(core.map(|c| c.generation));
        }
        let cb = self.built_codebase(p)?;
        Ok(cb.drupal.map(|c| c.generation()))
    }

    /// The packages of a built platform: here scanned from its code; on a
    /// remote host read from its build record (hoist scanned the source it
    /// built from, and a platform is immutable once built).
    pub fn built_codebase(
        &self,
        p: &PlatformName,
    ) -> Result<crate::codebase::Codebase, ServerError> {
        let dir = self.platform_dir(p);
        if self.is_local() {
            return crate::kind::detect_and_scan(&dir, &dir, None).map_err(|d| {
                ServerError::Invalid(
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            });
        }
        self.platform_record(p)?.codebase.ok_or_else(|| {
            ServerError::Invalid(format!(
                "{}: the build record lists no packages (built by an older hoist); rebuild the platform",
                dir.join(PLATFORM_RECORD).display()
            ))
        })
    }

    /// A built platform's record.
    fn platform_record(&self, p: &PlatformName) -> Result<PlatformRecord, ServerError> {
        let rec_path = self.platform_dir(p).join(PLATFORM_RECORD);
        let text = self.read_text(&rec_path)?;
        crate::yaml::from_str(&text).map_err(|e| ServerError::Invalid(e.at(&self.shown(&rec_path))))
    }

    /// A path under the root as the operator would find it: with the
    /// host's name when it is not this machine.
    fn shown(&self, abs: &Path) -> String {
        match self.at(abs) {
            Ok(p) if !self.is_local() => self.host.display(&p),
            _ => abs.display().to_string(),
        }
    }

    /// A file's text, through the host.
    fn read_text(&self, abs: &Path) -> Result<String, ServerError> {
        let bytes = self.read_at(abs)?;
        String::from_utf8(bytes).map_err(|_| ServerError::Io {
            path: abs.to_path_buf(),
            source: std::io::ErrorKind::InvalidData.into(),
        })
    }

    /// Reads a site's settings file.
    pub fn read_settings(
        &self,
        platform: &PlatformName,
        domain: &Domain,
    ) -> Result<(SettingsFile, String), ServerError> {
        let path = self.site_dir(platform, domain).join(SETTINGS_FILE);
        let text = self.read_text(&path)?;
        let s: SettingsFile = crate::yaml::from_str(&text)
            .map_err(|e| ServerError::Invalid(e.at(&path.display().to_string())))?;
        Ok((s, text))
    }

    /// The credentials a settings file holds.
    pub fn credentials(s: &SettingsFile) -> Credentials {
        Credentials {
            user: s.database.user.clone(),
            password: s.database.password.clone(),
        }
    }

    /// Observes every platform and site on the server. What exists but
    /// cannot be read is recorded as such, never taken for absent. On a
    /// host where each read is a round trip, the files observation reads
    /// are fetched at once first ([`crate::driver::snapshot`]) and read
    /// from there.
    pub fn observe(&self) -> Actual {
        match self.host.observed_files() {
            Ok(None) => self.observe_files(),
            Ok(Some(tar)) => {
                match crate::driver::snapshot::Snapshot::from_tar(self.host.clone(), &tar[..]) {
                    Ok(snap) => {
                        tracing::debug!(server = %self.name, bytes = tar.len(), "observed through one fetch");
                        self.through(std::sync::Arc::new(snap)).observe_files()
                    }
                    Err(e) => self.observe_directly(e),
                }
            }
            Err(e) => self.observe_directly(e),
        }
    }

    /// Observation read piece by piece, when the snapshot failed with `e`.
    fn observe_directly(&self, e: HostError) -> Actual {
        tracing::warn!(server = %self.name, "reading the server's files one by one: {e}");
        self.observe_files()
    }

    /// This server with its files read from `host` (and its vhosts, where
    /// they are among its files).
    fn through(&self, host: std::sync::Arc<dyn Host>) -> LocalServer {
        let mut view = self.clone();
        if let Some(web) = view.drivers.web.through(host.clone()) {
            view.drivers.web = web;
        }
        view.host = host;
        view
    }

    /// [`LocalServer::observe`] from the server's host as it is.
    fn observe_files(&self) -> Actual {
        let mut a = Actual::default();
        let dir = self.root.join("platforms");
        // An unreadable platforms directory is observed as empty, as before
        // the host seam: the plan then names what it would build.
        let names: Vec<String> = HostPath::new("platforms")
            .and_then(|p| self.host().list(&p))
            .unwrap_or_default()
            .into_iter()
            .filter(|(n, k)| *k == EntryKind::Dir && !n.starts_with('.'))
            .map(|(n, _)| n)
            .collect();
        let mut valid = Vec::new();
        for n in names {
            match PlatformName::new(&n) {
                Ok(name) => valid.push(name),
                Err(_) => a
                    .problems
                    .push(format!("{}: not a platform name", dir.join(&n).display())),
            }
        }
        // Platforms and sites are observed in parallel (each site is its own
        // settings file, vhost and database); results are merged in order.
        let observed = crate::par::map(&valid, |name| self.observe_platform(name));
        let mut at = Vec::new();
        let mut pre = Pre::default();
        for (name, o) in valid.iter().zip(observed) {
            match o {
                Ok(p) => {
                    let generation = p.codebase.drupal.as_ref().map(|c| c.generation());
                    pre.generations.insert(name.clone(), generation);
                    a.platforms.insert(name.clone(), p);
                }
                Err(e) => {
                    a.problems.push(format!("platform {name}: {e}"));
                    let source_hash = self
                        .read_text(&self.platform_dir(name).join(PLATFORM_RECORD))
                        .ok()
                        .and_then(|t| crate::yaml::from_str::<PlatformRecord>(&t).ok())
                        .map(|r| r.source_hash);
                    a.broken_platforms.insert(
                        name.clone(),
                        crate::observe::BrokenPlatform {
                            server: self.name.clone(),
                            source_hash,
                            error: e.to_string(),
                        },
                    );
                }
            }
            let sdir = self.platform_path(name).join("sites");
            let hosted = match pre.generations.get(name) {
                Some(g) => self.hosted_in(name, g.is_some()),
                None => self.hosted_entries(name),
            };
            let domains: Vec<String> = hosted
                .into_iter()
                .filter(|d| {
                    sdir.as_ref()
                        .is_ok_and(|s| s.join(d).is_ok_and(|p| self.host.is_dir(&p)))
                })
                .collect();
            // Staging and aside directories of tasks start with a dot and
            // are no domain: recovery owns them.
            at.extend(
                domains
                    .iter()
                    .filter_map(|d| Domain::new(d).ok())
                    .map(|d| (name.clone(), d)),
            );
        }
        pre.snapshots = self.snapshots(&at);
        let observed = crate::par::map(&at, |(name, domain)| {
            self.observe_site_with(name, domain, &pre)
        });
        for ((name, domain), o) in at.into_iter().zip(observed) {
            match o {
                Ok(s) => {
                    if let Some(other) = a.sites.get(s.name()) {
                        a.problems.push(format!(
                            "site {} is found twice: {} on {} and {} on {}",
                            s.name(),
                            other.domain(),
                            other.platform(),
                            s.domain(),
                            s.platform()
                        ));
                        continue;
                    }
                    a.sites.insert(s.name().clone(), s);
                }
                Err(e) => {
                    a.problems.push(format!(
                        "site directory {}: {e}",
                        self.site_dir(&name, &domain).display()
                    ));
                    let site = self.read_settings(&name, &domain).ok().map(|(s, _)| s.site);
                    a.unreadable_sites.push(crate::observe::UnreadableSite {
                        platform: name.clone(),
                        domain,
                        site,
                        error: e.to_string(),
                    });
                }
            }
        }
        a
    }

    fn observe_platform(&self, name: &PlatformName) -> Result<ObservedPlatform, ServerError> {
        let rec = self.platform_record(name)?;
        let codebase = match (self.is_local(), rec.codebase) {
            (false, Some(cb)) => cb,
            _ => self.built_codebase(name)?,
        };
        Ok(ObservedPlatform {
            name: name.clone(),
            server: self.name.clone(),
            source: rec.source,
            source_hash: rec.source_hash,
            codebase,
        })
    }

    /// The database snapshots of the sites at `at`, read per database
    /// server at once where its driver can ([`DbServer::snapshots`]): one
    /// admin connection for all of a server's sites. A server that fails
    /// here leaves its sites to be read one by one, which reports why.
    fn snapshots(&self, at: &[(PlatformName, Domain)]) -> Snapshots {
        let settings = crate::par::map(at, |(p, d)| self.read_settings(p, d).ok());
        let mut by_server: BTreeMap<Name, Vec<String>> = BTreeMap::new();
        for (s, _) in settings.into_iter().flatten() {
            if s.database.driver != render::DbDriver::Sqlite {
                by_server
                    .entry(s.database.server)
                    .or_default()
                    .push(s.database.name);
            }
        }
        let mut out = Snapshots::new();
        for (server, dbs) in by_server {
            let read = self.db_server(&server).and_then(|d| {
                d.snapshots(&dbs)
                    .map_err(|e| ServerError::Invalid(e.to_string()))
            });
            match read {
                Ok(Some(m)) => out.extend(m.into_iter().map(|(db, s)| ((server.clone(), db), s))),
                Ok(None) => {}
                Err(e) => tracing::debug!(%server, error = %e, "reading the sites one by one"),
            }
        }
        out
    }

    /// Observes one site from its settings file and database.
    pub fn observe_site(
        &self,
        platform: &PlatformName,
        domain: &Domain,
    ) -> Result<ObservedSite, ServerError> {
        self.observe_site_with(platform, domain, &Pre::default())
    }

    /// [`LocalServer::observe_site`], its database read from `pre` when
    /// that holds it.
    fn observe_site_with(
        &self,
        platform: &PlatformName,
        domain: &Domain,
        pre: &Pre,
    ) -> Result<ObservedSite, ServerError> {
        let (settings, text) = self.read_settings(platform, domain)?;
        let cfg = settings.config();
        if &cfg.platform != platform || &cfg.domain != domain {
            return Err(ServerError::Invalid(format!(
                "its settings say {} on {}, but it lives at {domain} on {platform}",
                cfg.domain, cfg.platform
            )));
        }
        let mut drift = Vec::new();
        if text != render::settings_file(&cfg, &settings.database.password) {
            drift.push("its settings file was edited by hand".to_string());
        }
        let web = self.web();
        let want = web
            .render(&cfg, Which::Site)
            .map_err(|e| ServerError::Invalid(e.to_string()))?;
        match web.read(domain, Which::Site) {
            Ok(Some(v)) if v == want => {}
            Ok(Some(_)) => drift.push("its vhost was edited by hand".into()),
            Ok(None) | Err(_) => drift.push("its vhost is missing".into()),
        }
        // The platform's kind tells how the site's database is read: one
        // small file, not a scan of the codebase.
        let generation = match pre.generations.get(platform) {
            Some(g) => *g,
            None => self.drupal_generation(platform)?,
        };
        let (packages, drupal, maintenance) = if settings.database.driver
            == render::DbDriver::Sqlite
        {
            if !self.is_local() {
                return Err(ServerError::Invalid(format!(
                    "its database is SQLite, whose files live on a local server only; server {} is reached over ssh",
                    self.name
                )));
            }
            // Read-only: observing never creates or changes a file.
            let db = self
                .db
                .open_read_only(&settings.database.name, &Self::credentials(&settings))?;
            match generation {
                Some(generation) => {
                    let st = db.drupal_state(generation)?;
                    let (rows, extras) =
                        crate::drupal::model::site_packages(&st).map_err(ServerError::Invalid)?;
                    (rows, extras, db.drupal_maintenance(generation)?)
                }
                None => (
                    db.system()?,
                    Default::default(),
                    db.variable("maintenance_mode")?.as_deref() == Some("1"),
                ),
            }
        } else {
            if let Some(generation) = generation {
                let login = crate::driver::Login::from(&settings);
                let server = self.db_server(&settings.database.server)?;
                return self.observed_drupal(cfg, drift, server, &login, generation);
            }
            let key = (
                settings.database.server.clone(),
                settings.database.name.clone(),
            );
            if let Some(snap) = pre.snapshots.get(&key) {
                (snap.packages.clone(), Default::default(), snap.maintenance)
            } else {
                let login = crate::driver::Login::from(&settings);
                let server = self.db_server(&settings.database.server)?;
                let invalid = |e: crate::driver::DriverError| ServerError::Invalid(e.to_string());
                let mut db = server.open(&login, false).map_err(invalid)?;
                let m = db.variable("maintenance_mode").map_err(invalid)?;
                let p = db.system().map_err(invalid)?;
                (p, Default::default(), m.as_deref() == Some("1"))
            }
        };
        Ok(ObservedSite {
            config: cfg,
            server: self.name.clone(),
            packages,
            drupal,
            maintenance,
            drift,
        })
    }

    /// A Drupal site on a database server reached by queries (MySQL): its
    /// state and maintenance mode read with the same SQL as on SQLite.
    fn observed_drupal(
        &self,
        config: SiteConfig,
        drift: Vec<String>,
        server: &dyn crate::driver::DbServer,
        login: &crate::driver::Login,
        generation: crate::drupal::Generation,
    ) -> Result<ObservedSite, ServerError> {
        use crate::drupal::state;
        let invalid = |e: String| ServerError::Invalid(e);
        let mut query = |sql: &str| server.query_rows(login, sql).map_err(|e| e.to_string());
        let (st, maintenance) = match generation {
            // One statement, one client process: a plan over hundreds of
            // sites pays one per site.
            crate::drupal::Generation::Drupal7 => {
                let sql = state::d7_tagged_sql("").map_err(|e| invalid(e.to_string()))?;
                state::d7_from_tagged(query(&sql).map_err(invalid)?)
                    .map_err(|e| invalid(e.to_string()))?
            }
            crate::drupal::Generation::Drupal8Plus => {
                let st = state::read_rows(generation, "", &mut query)
                    .map_err(|e| invalid(e.to_string()))?;
                let m = query(state::maintenance_sql(generation)).map_err(invalid)?;
                let value = m.into_iter().next().and_then(|r| r.into_iter().next());
                (st, state::maintenance_from(value.as_deref()))
            }
        };
        let (packages, drupal) = crate::drupal::model::site_packages(&st).map_err(invalid)?;
        Ok(ObservedSite {
            config,
            server: self.name.clone(),
            packages,
            drupal,
            maintenance,
            drift,
        })
    }

    /// Takes the server's lock for as long as the returned guard lives. A
    /// second hoist on the same server is refused with the holder's pid; a
    /// lock left by a killed process is released by the kernel with it.
    pub fn lock(&self) -> Result<ServerLock, ServerError> {
        Ok(self.host().lock()?)
    }
}

impl crate::driver::app::PlatformCode for LocalServer {
    fn codebase(&self, p: &PlatformName) -> Result<crate::codebase::Codebase, String> {
        self.built_codebase(p).map_err(|e| e.to_string())
    }

    fn read(&self, p: &PlatformName, rel: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.platform_path(p).join(rel).map_err(|e| e.to_string())?;
        self.host
            .read(&path)
            .map_err(|e| format!("{}: {e}", self.host.display(&path)))
    }
}

/// A server's lock, held while it lives.
pub type ServerLock = HostLock;

/// Every server the inventory declares, by name.
#[derive(Debug, Clone, Default)]
pub struct Servers {
    /// The servers.
    pub by_name: BTreeMap<Name, LocalServer>,
    /// The `ssh` servers that could not be reached, with why: everything on
    /// them is left alone ([`Servers::hold_unreachable`]).
    pub unreachable: BTreeMap<Name, String>,
}

impl Servers {
    /// The servers of `inv`; `host_root` overrides the root of `local`.
    /// An `ssh` server is connected to here (all of them side by side);
    /// one that cannot be reached (down, refused, a host key not in its
    /// `known_hosts`) is listed in [`Servers::unreachable`].
    pub fn from_inventory(inv: &crate::inventory::Inventory, host_root: Option<&Path>) -> Servers {
        use crate::inventory::ServerConfig;
        let connected: Vec<(Name, Result<LocalServer, String>)> = std::thread::scope(|scope| {
            let running: Vec<_> = inv
                .settings
                .servers
                .iter()
                .map(|(n, cfg)| {
                    let root = match cfg {
                        ServerConfig::Local { .. } => {
                            let o = if n.as_str() == "local" {
                                host_root
                            } else {
                                None
                            };
                            inv.server_root(n, o)
                        }
                        ServerConfig::Ssh { root, .. } => Some(root.clone()),
                    };
                    (n, cfg, root)
                })
                .filter_map(|(n, cfg, root)| Some((n, cfg, root?)))
                .map(|(n, cfg, root)| {
                    let h = scope.spawn(move || {
                        let (host, ssh): (std::sync::Arc<dyn Host>, _) = match cfg {
                            ServerConfig::Local { .. } => {
                                (std::sync::Arc::new(LocalHost::new(root.clone())), None)
                            }
                            ServerConfig::Ssh { .. } => {
                                let t =
                                    crate::ssh::SshTarget::from_config(n.as_str(), cfg, &inv.root)
                                        .map_err(|e| e.to_string())?;
                                let ssh = std::sync::Arc::new(
                                    crate::ssh::SshHost::connect(t).map_err(|e| e.to_string())?,
                                );
                                (ssh.clone() as std::sync::Arc<dyn Host>, Some(ssh))
                            }
                        };
                        let drivers =
                            Drivers::for_host(inv, &root, cfg.web(), host.clone(), ssh.as_ref());
                        Ok(LocalServer::with_host(n.clone(), root, host, drivers))
                    });
                    (n.clone(), h)
                })
                .collect();
            running
                .into_iter()
                .map(|(n, h)| (n, h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))))
                .collect()
        });
        let mut servers = Servers::default();
        for (n, r) in connected {
            match r {
                Ok(s) => {
                    servers.by_name.insert(n, s);
                }
                Err(why) => {
                    tracing::error!(server = %n, "server {n} cannot be reached: {why}");
                    servers.unreachable.insert(n, why);
                }
            }
        }
        servers
    }

    /// Leaves alone everything on an unreachable server: the server is
    /// held in `inv` as if suspended (the plan shows why and does nothing
    /// to its platforms and sites), and so is each site the status files
    /// last saw there (it may still live there; installing it elsewhere
    /// would make a second copy). Returns a message per server.
    pub fn hold_unreachable(
        &self,
        inv: &mut crate::inventory::Inventory,
        last_seen: &BTreeMap<crate::names::SiteName, Name>,
    ) -> Vec<String> {
        use crate::inventory::{ServerConfig, Suspension};
        let held = |why: &str| Suspension {
            reason: why.to_string(),
            by: Some("hoist".into()),
            until: None,
        };
        let mut told = Vec::new();
        for (n, why) in &self.unreachable {
            let reason = format!("server {n} cannot be reached: {why}");
            if let Some(ServerConfig::Local { suspend, .. } | ServerConfig::Ssh { suspend, .. }) =
                inv.settings.servers.get_mut(n)
            {
                *suspend = Some(held(&reason));
            }
            for (site, spec) in inv.sites.iter_mut() {
                if last_seen.get(site) == Some(n) && spec.suspend.is_none() {
                    spec.suspend = Some(held(&format!(
                        "last seen on server {n}, which cannot be reached: {why}"
                    )));
                }
            }
            told.push(format!("{reason}: its platforms and sites are left alone"));
        }
        told
    }

    /// The roots of an inventory's local servers, canonical (those that
    /// exist): never part of an inventory, even when they lie inside its
    /// directory. Nothing is connected to.
    pub fn local_roots(
        inv: &crate::inventory::Inventory,
        host_root: Option<&Path>,
    ) -> Vec<PathBuf> {
        inv.settings
            .servers
            .keys()
            .filter_map(|n| {
                let o = if n.as_str() == "local" {
                    host_root
                } else {
                    None
                };
                inv.server_root(n, o)?.canonicalize().ok()
            })
            .collect()
    }

    /// The roots of the local servers that exist, canonical.
    pub fn roots(&self) -> Vec<PathBuf> {
        self.by_name
            .values()
            .filter(|s| s.is_local())
            .filter_map(|s| s.root().canonicalize().ok())
            .collect()
    }

    /// A server by name.
    pub fn get(&self, name: &Name) -> Result<&LocalServer, ServerError> {
        self.by_name
            .get(name)
            .ok_or_else(|| ServerError::Invalid(format!("unknown server {name}")))
    }

    /// Locks every server, in name order (so two processes cannot deadlock).
    pub fn lock_all(&self) -> Result<Vec<ServerLock>, ServerError> {
        self.by_name.values().map(|s| s.lock()).collect()
    }

    /// Observes every server, side by side (a remote server costs round
    /// trips, not CPU), merged in name order.
    pub fn observe(&self) -> crate::observe::Actual {
        let each: Vec<crate::observe::Actual> = std::thread::scope(|scope| {
            let running: Vec<_> = self
                .by_name
                .values()
                .map(|s| scope.spawn(move || s.observe()))
                .collect();
            running
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut actual = crate::observe::Actual::default();
        for a in each {
            actual.merge(a);
        }
        actual
    }
}
