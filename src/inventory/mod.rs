//! The inventory: the desired state, read from `hoist.yaml`, `platforms/*.yaml`
//! and `sites/*.yaml` (spec section 2), checked against the JSON Schemas in
//! `schema/` and then for meaning. Every problem is collected, not only the
//! first.

pub mod document;
pub mod health;
pub mod rollout;
pub mod servers;
pub mod webhooks;
mod yamlfast;
pub mod yamlpos;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::codebase::{Codebase, PackageKind};
use crate::diag::{Diagnostic, Diagnostics};
use crate::names::{Domain, Name, PackageName, PlatformName, SiteName};
use document::Schema;
pub use health::{HealthCheck, HealthOverride};
pub use rollout::Rollout;
pub use servers::{DatabaseConfig, MysqlServerConfig, NginxConfig, ServerConfig, WebConfig};

/// The settings of `hoist.yaml`, defaults filled in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Servers by name.
    pub servers: BTreeMap<Name, ServerConfig>,
    /// Database servers by name.
    pub databases: BTreeMap<Name, DatabaseConfig>,
    /// What platforms and sites use when they name none.
    pub defaults: Defaults,
    /// How plans are made and carried out.
    pub policy: Policy,
    /// How status files are committed.
    pub status: StatusSettings,
    /// How `hoist watch` polls.
    pub watch: WatchSettings,
    /// Who is told about task outcomes, halted rollouts and drift
    /// (`notify: null` is the default too).
    #[serde(deserialize_with = "webhooks::null_is_default")]
    pub notify: webhooks::NotifySettings,
    /// The default health check of every site.
    pub health: HealthCheck,
    /// The waves site tasks run in; none: one wave.
    pub rollout: Option<Rollout>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            servers: BTreeMap::from([(
                Name::new("local").expect("valid"),
                ServerConfig::local(PathBuf::from(".hoist-host")),
            )]),
            databases: BTreeMap::from([(
                Name::new("default").expect("valid"),
                DatabaseConfig::Sqlite,
            )]),
            defaults: Defaults::default(),
            policy: Policy::default(),
            status: StatusSettings::default(),
            watch: WatchSettings::default(),
            notify: webhooks::NotifySettings::default(),
            health: HealthCheck::default(),
            rollout: None,
        }
    }
}

/// `suspend:` of a site or a server: hoist changes nothing there (plans it
/// as `noop`, with this shown) until `until`, or for good without one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suspension {
    /// Why: required, shown wherever the suspension is.
    pub reason: String,
    /// Who suspended it.
    #[serde(default)]
    pub by: Option<String>,
    /// When it ends (RFC 3339); none: until the key is removed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

impl Suspension {
    /// Whether it holds at `now`: an `until` in the past has ended.
    pub fn active(&self, now: OffsetDateTime) -> bool {
        self.until.is_none_or(|u| now < u)
    }

    /// Checks a `suspend:` mapping at JSON pointer `at` of `doc` before it is
    /// decoded, so that a bad value is reported where it is written (decoding
    /// errors point at the document only). The schema has checked its shape.
    fn check(doc: &document::Document, at: &str, shown: &Path, diags: &mut Vec<Diagnostic>) {
        let Some(v) = doc.value.pointer(at).filter(|v| !v.is_null()) else {
            return;
        };
        let pos = |ptr: &str| doc.positions.value(ptr).or(Some((1, 1)));
        if let Some(until) = v.get("until").and_then(|u| u.as_str()) {
            let rfc = &time::format_description::well_known::Rfc3339;
            if let Err(e) = OffsetDateTime::parse(until, rfc) {
                diags.push(Diagnostic::at(
                    shown,
                    pos(&format!("{at}/until")),
                    format!("suspend.until {until:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z: {e}"),
                ));
            }
        }
        if let Some(reason) = v.get("reason").and_then(|r| r.as_str()) {
            if reason.trim().is_empty() {
                diags.push(Diagnostic::at(
                    shown,
                    pos(&format!("{at}/reason")),
                    "suspend.reason must say why the site is left alone",
                ));
            }
        }
    }
}

/// `defaults:` of `hoist.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// The server of a platform that names none.
    pub server: Name,
    /// The database server of a site that names none.
    pub database: Name,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            server: Name::new("local").expect("valid"),
            database: Name::new("default").expect("valid"),
        }
    }
}

/// `policy:` of `hoist.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Delete sites and platforms that exist but are no longer declared.
    pub prune: bool,
    /// Treat compatibility warnings as blocking.
    pub strict: bool,
    /// How many site tasks run at once.
    pub parallel: usize,
    /// How many backups are kept per site.
    pub keep_backups: usize,
    /// Whether `watch` puts drifted sites back (true) or only reports them.
    pub self_heal: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            prune: false,
            strict: false,
            parallel: 2,
            keep_backups: 5,
            // Spec section 2: watch only reports drift unless told to
            // repair it.
            self_heal: false,
        }
    }
}

/// `status:` of `hoist.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusSettings {
    /// Commit status files after each apply.
    pub commit: bool,
    /// A remote to push status commits to.
    pub push: Option<String>,
    /// The author of status commits.
    pub author: Author,
}

impl Default for StatusSettings {
    fn default() -> Self {
        StatusSettings {
            commit: true,
            push: None,
            author: Author::default(),
        }
    }
}

/// A git author.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    /// Name.
    pub name: String,
    /// Email address.
    pub email: String,
}

impl Default for Author {
    fn default() -> Self {
        Author {
            name: "hoist".into(),
            email: "hoist@localhost".into(),
        }
    }
}

/// `watch:` of `hoist.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchSettings {
    /// Seconds between timer reconciles (drift detection).
    pub interval: u64,
    /// Seconds between fetches of a remote inventory.
    pub fetch_interval: u64,
    /// Milliseconds a burst of file changes is gathered before reconciling.
    pub debounce_ms: u64,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            interval: 60,
            fetch_interval: 30,
            debounce_ms: 500,
        }
    }
}

/// Where a platform's codebase comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Source {
    /// A directory, relative to the inventory.
    Path {
        /// The directory.
        path: PathBuf,
    },
    /// A git repository at a ref.
    Git {
        /// The repository URL.
        git: String,
        /// The branch, tag or commit.
        #[serde(rename = "ref")]
        reference: String,
    },
    /// A tarball, relative to the inventory.
    Archive {
        /// The archive file.
        archive: PathBuf,
    },
}

impl Source {
    /// A one-line description for messages and records.
    pub fn describe(&self) -> String {
        match self {
            Source::Path { path } => format!("path {}", path.display()),
            Source::Git { git, reference } => format!("git {git} at {reference}"),
            Source::Archive { archive } => format!("archive {}", archive.display()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlatformFile {
    source: Source,
    server: Option<Name>,
    #[serde(default)]
    kind: Option<AppKindName>,
}

/// `kind:` of a platform: how its packages and its sites' state are read
/// and changed (spec section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppKindName {
    /// The built-in package format (spec 3a).
    Embedded,
    /// Drupal 7, and Drupal 8 and later (spec 3b).
    Drupal,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    domain: Domain,
    platform: PlatformName,
    #[serde(default)]
    aliases: Vec<Domain>,
    profile: Option<PackageName>,
    database: Option<Name>,
    #[serde(default = "yes")]
    enabled: bool,
    clone_from: Option<SiteName>,
    suspend: Option<Suspension>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    health: HealthOverride,
}

fn yes() -> bool {
    true
}

/// A declared platform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformSpec {
    /// Its name, the file stem.
    pub name: PlatformName,
    /// Where its codebase comes from.
    pub source: Source,
    /// The server it is built on.
    pub server: Name,
    /// Its application kind as declared; none: detected from the codebase.
    pub kind: Option<AppKindName>,
    /// Its codebase, read from the source, or why it could not be.
    pub codebase: Result<SourceCodebase, String>,
}

/// A codebase read from a platform's source, with the hash that tells
/// whether the source changed since the platform was built.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceCodebase {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// Its packages.
    pub codebase: Codebase,
    /// [`crate::codebase::tree_hash`] of `dir`.
    pub hash: String,
}

/// A declared site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSpec {
    /// Its stable name, the file stem.
    pub name: SiteName,
    /// Its primary domain.
    pub domain: Domain,
    /// Further domains it answers to.
    pub aliases: Vec<Domain>,
    /// The platform it lives on.
    pub platform: PlatformName,
    /// The profile it is installed with.
    pub profile: PackageName,
    /// Its database server.
    pub database: Name,
    /// False: the site stays but its vhost serves a 'site disabled' page.
    pub enabled: bool,
    /// A new site is made as a copy of this one.
    pub clone_from: Option<SiteName>,
    /// Set: hoist leaves the site alone while it is active.
    pub suspend: Option<Suspension>,
    /// Free-form labels; rollout waves select on them.
    pub labels: BTreeMap<String, String>,
    /// Overrides of `hoist.yaml`'s health check.
    pub health: HealthOverride,
}

impl SiteSpec {
    /// The site's health check: `hoist.yaml`'s with its overrides.
    pub fn health_check(&self, settings: &Settings) -> HealthCheck {
        settings.health.with(&self.health)
    }
}

/// A loaded, checked inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory directory.
    pub root: PathBuf,
    /// `hoist.yaml`.
    pub settings: Settings,
    /// Declared platforms.
    pub platforms: BTreeMap<PlatformName, PlatformSpec>,
    /// Declared sites.
    pub sites: BTreeMap<SiteName, SiteSpec>,
    /// The git commit the inventory was read from, when known: set by the
    /// caller that chose it ([`crate::gitops`]), not by [`load`].
    pub commit: Option<String>,
}

impl Inventory {
    /// The root directory of a declared local server, `--host-root` applied.
    pub fn server_root(&self, server: &Name, host_root: Option<&Path>) -> Option<PathBuf> {
        match self.settings.servers.get(server)? {
            ServerConfig::Local { root, .. } => Some(match host_root {
                Some(r) => r.to_path_buf(),
                None => self.root.join(root),
            }),
            ServerConfig::Ssh { .. } => None,
        }
    }
}

/// How strictly platform sources are held to being readable here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// A source that cannot be read here (not supported yet, say) is an
    /// inventory error: what `hoist validate` checks.
    Required,
    /// Such a platform is loaded with its codebase unknown: planning then
    /// blocks it and the sites that would move onto it, unless the servers
    /// (or status files) already know it.
    MayBeUnknown,
    /// As [`Sources::MayBeUnknown`], and an absolute source (outside the
    /// inventory) is not read either: what an offline plan reads.
    InsideOnly,
}

/// Loads and checks the inventory in `root`, every source required. On any
/// problem, every problem found is returned.
pub fn load(root: &Path) -> Result<Inventory, Diagnostics> {
    load_with(root, Sources::Required)
}

/// Loads and checks the inventory in `root` (see [`Sources`]).
pub fn load_with(root: &Path, sources: Sources) -> Result<Inventory, Diagnostics> {
    let mut diags = Vec::new();
    let settings_file = root.join("hoist.yaml");
    let settings = if !settings_file.exists() {
        diags.push(Diagnostic::at(
            Path::new("hoist.yaml"),
            None,
            format!("not an inventory: {} has no hoist.yaml", root.display()),
        ));
        return Err(Diagnostics(diags));
    } else {
        load_settings(&settings_file, &mut diags)
    };

    // Platforms (each with its codebase scanned and hashed) and sites are
    // read in parallel; problems are merged and sorted below as before.
    let mut platforms = BTreeMap::new();
    let mut platform_pos: HashMap<PlatformName, (PathBuf, document::Document)> = HashMap::new();
    let declared = declared_files(root, "platforms", &mut diags);
    let loaded = crate::par::map(&declared, |(name, path, shown)| {
        let mut diags = Vec::new();
        let doc = match document::load(path, shown, Schema::Platform) {
            Ok(d) => d,
            Err(d) => return (d, None),
        };
        let pf: PlatformFile = match doc.decode(shown) {
            Ok(p) => p,
            Err(d) => return (vec![d], None),
        };
        let server = pf
            .server
            .clone()
            .unwrap_or_else(|| settings.defaults.server.clone());
        if !settings.servers.contains_key(&server) {
            let pos = doc.positions.value("/server").or(Some((1, 1)));
            diags.push(Diagnostic::at(
                shown,
                pos,
                format!(
                    "unknown server {server}: hoist.yaml declares {}",
                    list(settings.servers.keys())
                ),
            ));
        }
        let codebase = read_source(root, &pf.source, pf.kind, shown, &doc, sources, &mut diags);
        let spec = PlatformSpec {
            name: name.clone(),
            source: pf.source,
            server,
            kind: pf.kind,
            codebase,
        };
        (diags, Some((spec, doc)))
    });
    for ((name, _, shown), (mut d, loaded)) in declared.into_iter().zip(loaded) {
        diags.append(&mut d);
        if let Some((spec, doc)) = loaded {
            platform_pos.insert(name.clone(), (shown, doc));
            platforms.insert(name, spec);
        }
    }

    let mut sites = BTreeMap::new();
    let mut site_docs: BTreeMap<SiteName, (PathBuf, document::Document)> = BTreeMap::new();
    let declared = declared_files(root, "sites", &mut diags);
    let loaded = crate::par::map(&declared, |(name, path, shown)| {
        let doc = match document::load(path, shown, Schema::Site) {
            Ok(d) => d,
            Err(d) => return Err(d),
        };
        let mut bad = Vec::new();
        Suspension::check(&doc, "/suspend", shown, &mut bad);
        if !bad.is_empty() {
            return Err(bad);
        }
        let sf: SiteFile = match doc.decode(shown) {
            Ok(s) => s,
            Err(d) => return Err(vec![d]),
        };
        let site = SiteSpec {
            name: name.clone(),
            domain: sf.domain,
            aliases: sf.aliases,
            platform: sf.platform,
            profile: sf
                .profile
                .unwrap_or_else(|| PackageName::new("standard").expect("valid")),
            database: sf
                .database
                .unwrap_or_else(|| settings.defaults.database.clone()),
            enabled: sf.enabled,
            clone_from: sf.clone_from,
            suspend: sf.suspend,
            labels: sf.labels,
            health: sf.health,
        };
        Ok((site, doc))
    });
    for ((name, _, shown), loaded) in declared.into_iter().zip(loaded) {
        match loaded {
            Ok((site, doc)) => {
                sites.insert(name.clone(), site);
                site_docs.insert(name, (shown, doc));
            }
            Err(mut d) => diags.append(&mut d),
        }
    }

    check_sites(&settings, &platforms, &sites, &site_docs, &mut diags);

    if diags.is_empty() {
        Ok(Inventory {
            root: root.to_path_buf(),
            settings,
            platforms,
            sites,
            commit: None,
        })
    } else {
        diags.sort();
        diags.dedup();
        Err(Diagnostics(diags))
    }
}

fn list<'a, T: std::fmt::Display + 'a>(it: impl Iterator<Item = &'a T>) -> String {
    let v: Vec<String> = it.map(|x| x.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn load_settings(path: &Path, diags: &mut Vec<Diagnostic>) -> Settings {
    let shown = Path::new("hoist.yaml");
    let doc = match document::load(path, shown, Schema::Settings) {
        Ok(d) => d,
        Err(mut d) => {
            diags.append(&mut d);
            return Settings::default();
        }
    };
    if doc.value.is_null() {
        return Settings::default();
    }
    let before = diags.len();
    webhooks::check_inline_secrets(&doc.value, &doc.positions, shown, diags);
    servers::check_inline_secrets(&doc.value, &doc.positions, shown, diags);
    if let Some(servers) = doc.value.get("servers").and_then(|s| s.as_object()) {
        for name in servers.keys() {
            // Names are `[a-z0-9-]`: nothing to escape in the pointer.
            Suspension::check(&doc, &format!("/servers/{name}/suspend"), shown, diags);
        }
    }
    if diags.len() > before {
        return Settings::default();
    }
    let s: Settings = match doc.decode(shown) {
        Ok(s) => s,
        Err(d) => {
            diags.push(d);
            return Settings::default();
        }
    };
    if !s.servers.contains_key(&s.defaults.server) {
        diags.push(Diagnostic::at(
            shown,
            doc.positions.value("/defaults/server").or(Some((1, 1))),
            format!(
                "unknown server {}: declared are {}",
                s.defaults.server,
                list(s.servers.keys())
            ),
        ));
    }
    if !s.databases.contains_key(&s.defaults.database) {
        diags.push(Diagnostic::at(
            shown,
            doc.positions.value("/defaults/database").or(Some((1, 1))),
            format!(
                "unknown database server {}: declared are {}",
                s.defaults.database,
                list(s.databases.keys())
            ),
        ));
    }
    s
}

/// The `<dir>/*.yaml` files with valid stems. Bad stems and stray `.yml`
/// files are reported; other files (a README, say) are left alone.
fn declared_files(
    root: &Path,
    dir: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(Name, PathBuf, PathBuf)> {
    let full = root.join(dir);
    if full.exists() && !document::is_real_dir(&full) {
        diags.push(Diagnostic::at(
            Path::new(dir),
            None,
            "not a directory of the inventory (symlinks are not followed)",
        ));
        return Vec::new();
    }
    let Ok(rd) = std::fs::read_dir(&full) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let shown = PathBuf::from(dir).join(&fname);
        if fname.starts_with('.') {
            continue;
        }
        if let Some(stem) = fname.strip_suffix(".yml") {
            diags.push(Diagnostic::at(
                &shown,
                None,
                format!("rename to {stem}.yaml: hoist reads only .yaml files"),
            ));
            continue;
        }
        let Some(stem) = fname.strip_suffix(".yaml") else {
            continue;
        };
        match Name::new(stem) {
            Ok(n) => out.push((n, e.path(), shown)),
            Err(err) => diags.push(Diagnostic::at(
                &shown,
                None,
                format!("bad file name: {err}"),
            )),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Resolves a path given in the inventory, refusing any that leaves it.
pub fn inside(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    if rel.as_os_str().is_empty() {
        return Err("the path is empty".into());
    }
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{} must be a relative path inside the inventory, without `..`",
                    rel.display()
                ))
            }
        }
    }
    let full = root.join(rel);
    // A symlink inside the inventory could still point out of it.
    if let (Ok(r), Ok(f)) = (root.canonicalize(), full.canonicalize()) {
        if !f.starts_with(&r) {
            return Err(format!("{} leads outside the inventory", rel.display()));
        }
    }
    Ok(full)
}

#[allow(clippy::too_many_arguments)]
fn read_source(
    root: &Path,
    source: &Source,
    declared: Option<AppKindName>,
    shown: &Path,
    doc: &document::Document,
    sources: Sources,
    diags: &mut Vec<Diagnostic>,
) -> Result<SourceCodebase, String> {
    let mut fail = |ptr: &str, msg: String| {
        diags.push(Diagnostic::at(shown, doc.positions.value(ptr), msg.clone()));
        Err(msg)
    };
    match source {
        Source::Path { path } => {
            let absolute = path.is_absolute();
            let dir = if absolute {
                if sources == Sources::InsideOnly {
                    // Not an error of the inventory: the plan falls back on
                    // what the status files recorded of the platform.
                    return Err(format!(
                        "an offline plan reads only sources inside the inventory, and {} is outside it",
                        path.display()
                    ));
                }
                match outside(path) {
                    Ok(d) => d,
                    Err(m) => return fail("/source/path", m),
                }
            } else {
                match inside(root, path) {
                    Ok(d) => d,
                    Err(m) => return fail("/source/path", m),
                }
            };
            if !dir.is_dir() {
                return fail(
                    "/source/path",
                    format!("source directory {} does not exist", path.display()),
                );
            }
            let kind = match crate::kind::detect(&dir, path, declared) {
                Ok(k) => k,
                Err(d) => {
                    let msg = d.to_string();
                    diags.push(d);
                    return Err(msg);
                }
            };
            if absolute && kind != AppKindName::Drupal {
                return fail(
                    "/source/path",
                    format!(
                        "{} is outside the inventory: only a drupal platform's source may be an absolute path; put an embedded codebase inside the inventory",
                        path.display()
                    ),
                );
            }
            // One walk gives the source hash and what an embedded scan
            // reads; a Drupal tree is scanned once more by its own rules.
            let walk = crate::codebase::Walk::new(&dir).map_err(|e| e.to_string());
            let scanned = crate::kind::scan(&dir, path, kind, walk.as_ref().ok());
            match scanned {
                Ok(codebase) => Ok(SourceCodebase {
                    dir,
                    codebase,
                    hash: walk?.hash,
                }),
                Err(mut d) => {
                    let msg = format!("codebase {} has {} problem(s)", path.display(), d.len());
                    diags.append(&mut d);
                    Err(msg)
                }
            }
        }
        Source::Git { .. } | Source::Archive { .. } => {
            let (ptr, kind) = match source {
                Source::Git { .. } => ("/source/git", "git"),
                _ => ("/source/archive", "archive"),
            };
            let msg =
                format!("{kind} sources are not supported yet: use `source: {{ path: DIR }}`");
            match sources {
                Sources::Required => fail(ptr, msg),
                Sources::MayBeUnknown | Sources::InsideOnly => Err(msg),
            }
        }
    }
}

/// Checks an absolute source path: no `..`, and not a symlink itself (the
/// scan follows none inside it either), so the tree read is the one named.
fn outside(path: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{} must not contain `..`", path.display()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{} is a symlink: name the directory it points to",
            path.display()
        )),
        _ => Ok(path.to_path_buf()),
    }
}

fn check_sites(
    settings: &Settings,
    platforms: &BTreeMap<PlatformName, PlatformSpec>,
    sites: &BTreeMap<SiteName, SiteSpec>,
    docs: &BTreeMap<SiteName, (PathBuf, document::Document)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut claimed: BTreeMap<&Domain, &SiteName> = BTreeMap::new();
    for (name, site) in sites {
        let (shown, doc) = &docs[name];
        let at = |ptr: &str| doc.positions.value(ptr).or(Some((1, 1)));
        match platforms.get(&site.platform) {
            None => diags.push(Diagnostic::at(
                shown,
                at("/platform"),
                format!(
                    "unknown platform {}: declared are {}",
                    site.platform,
                    list(platforms.keys())
                ),
            )),
            Some(p) => {
                if let Ok(src) = &p.codebase {
                    let is_profile = src
                        .codebase
                        .packages
                        .get(&site.profile)
                        .is_some_and(|p| p.kind == PackageKind::Profile);
                    if !is_profile {
                        let profiles: Vec<&PackageName> = src
                            .codebase
                            .packages
                            .values()
                            .filter(|p| p.kind == PackageKind::Profile)
                            .map(|p| &p.name)
                            .collect();
                        diags.push(Diagnostic::at(
                            shown,
                            at("/profile"),
                            format!(
                                "unknown profile {} on platform {}: it has {}",
                                site.profile,
                                site.platform,
                                list(profiles.into_iter())
                            ),
                        ));
                    }
                }
            }
        }
        if !settings.databases.contains_key(&site.database) {
            diags.push(Diagnostic::at(
                shown,
                at("/database"),
                format!(
                    "unknown database server {}: declared are {}",
                    site.database,
                    list(settings.databases.keys())
                ),
            ));
        }
        let mut mine = vec![("/domain".to_string(), &site.domain)];
        mine.extend(
            site.aliases
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("/aliases/{i}"), a)),
        );
        for (ptr, d) in mine {
            match claimed.get(d) {
                Some(other) if *other == name => diags.push(Diagnostic::at(
                    shown,
                    at(&ptr),
                    format!("{d} is listed twice for this site"),
                )),
                Some(other) => diags.push(Diagnostic::at(
                    shown,
                    at(&ptr),
                    format!("{d} is already claimed by site {other}"),
                )),
                None => {
                    claimed.insert(d, name);
                }
            }
        }
        if let Some(src) = &site.clone_from {
            if src == name {
                diags.push(Diagnostic::at(
                    shown,
                    at("/clone_from"),
                    "a site cannot be cloned from itself",
                ));
            } else if !sites.contains_key(src) {
                diags.push(Diagnostic::at(
                    shown,
                    at("/clone_from"),
                    format!("clone_from names {src}, which is not a declared site"),
                ));
            } else {
                // Walk the chain; a loop back to this site is a cycle.
                let mut seen = vec![name];
                let mut cur = src;
                while let Some(next) = sites.get(cur).and_then(|s| s.clone_from.as_ref()) {
                    seen.push(cur);
                    if next == name {
                        seen.push(next);
                        let chain: Vec<&str> = seen.iter().map(|n| n.as_str()).collect();
                        diags.push(Diagnostic::at(
                            shown,
                            at("/clone_from"),
                            format!("clone_from forms a cycle: {}", chain.join(" -> ")),
                        ));
                        break;
                    }
                    if seen.contains(&next) {
                        break; // a cycle not through this site: reported at its members
                    }
                    cur = next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_defaults_are_the_specs_and_the_schemas() {
        // Spec section 2 spells the defaults out: watch only reports drift.
        let want = Policy {
            prune: false,
            strict: false,
            parallel: 2,
            keep_backups: 5,
            self_heal: false,
        };
        assert_eq!(Policy::default(), want);
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schema/hoist.schema.json")).unwrap();
        let props = &schema["properties"]["policy"]["properties"];
        assert_eq!(props["self_heal"]["default"], want.self_heal);
        assert_eq!(props["prune"]["default"], want.prune);
        assert_eq!(props["strict"]["default"], want.strict);
        assert_eq!(props["parallel"]["default"], want.parallel);
        assert_eq!(props["keep_backups"]["default"], want.keep_backups);
    }
}
