//! The application-kind seam (issue 12 item 1): what a site task asks of
//! the code a site runs, whatever that code is. The task steps of
//! `apply/` (install, migrate, rename, clone, update, restore) journal and
//! undo; the [`AppKind`] of the site's platform carries out the
//! application's part of each step: installing into a new database,
//! switching maintenance mode, running pending updates, fixing paths after
//! a rename, clearing caches, and writing the application's own settings.
//!
//! Two kinds: [`Embedded`] (hoist's own package format, SQL files applied
//! to SQLite or MySQL) and [`super::drupal7::Drupal7`] (a real Drupal 7
//! site, driven through php-cli and hoist's runner). Drupal 8 and later is
//! refused here as in the plan: apply for it needs drush.

use std::path::PathBuf;

use crate::codebase::{self, Codebase};
use crate::compat::{self, SitePackage, Verdict};
use crate::names::{Domain, PackageName, PlatformName};
use crate::render::SiteConfig;

use super::host::{Host, HostPath};
use super::{DbServer, Login, SiteConn};

/// One site as its application sees it: the platform it lives on, its
/// domain (its directory under `sites/`), and how it reaches its database.
pub struct AppSite<'a> {
    /// The platform's directory on the server (the application's root).
    pub platform_dir: PathBuf,
    /// The platform's name, for messages.
    pub platform: PlatformName,
    /// The site's primary domain: its directory is `sites/<domain>`.
    pub domain: Domain,
    /// Its database server.
    pub db: &'a dyn DbServer,
    /// Its database and how it logs in.
    pub login: Login,
    /// Whether its database is a task's new one (staged: made durable at
    /// the task's commit point), rather than a live one.
    pub staged: bool,
    /// Where the platform's built code is read, on whatever host it is.
    pub code: &'a dyn PlatformCode,
    /// The host the site's files are on, where its application's tools
    /// run (this machine, or one over ssh).
    pub host: &'a dyn Host,
    /// The platform's directory inside that host's root.
    pub platform_path: HostPath,
}

/// A server's built platforms, as an application kind reads them: their
/// packages, and files of their code (through the server's host).
pub trait PlatformCode: Sync {
    /// The packages of built platform `p`.
    fn codebase(&self, p: &PlatformName) -> Result<Codebase, String>;
    /// The bytes of `rel` (a path inside the platform) of built platform
    /// `p`; `None`: no such file.
    fn read(&self, p: &PlatformName, rel: &str) -> Result<Option<Vec<u8>>, String>;
}

impl AppSite<'_> {
    /// The site's directory inside its host's root.
    pub fn site_path(&self) -> Result<HostPath, String> {
        self.platform_path
            .join("sites")
            .and_then(|p| p.join(self.domain.as_str()))
            .map_err(|e| e.to_string())
    }

    /// An open connection to its database.
    pub fn conn(&self) -> Result<Box<dyn SiteConn + '_>, String> {
        self.db
            .open(&self.login, self.staged)
            .map_err(|e| e.to_string())
    }
}

/// Where a task's log lines go.
pub type Log<'a> = &'a mut dyn FnMut(String);

/// What the task steps ask of a site's application. Every method either
/// does all of its part or fails with a message for the task record; the
/// task's journal and undo are the caller's (`apply/site.rs`).
pub trait AppKind: Send + Sync {
    /// The kind's name, as `hoist.yaml` and messages say it.
    fn name(&self) -> &'static str;

    /// Installs a new site into its new, empty database (the install
    /// task's `install-packages` step). The site's directory does not
    /// exist yet unless this creates it.
    fn install(&self, site: &AppSite<'_>, cfg: &SiteConfig, log: Log<'_>) -> Result<(), String>;

    /// Writes the application's own settings in the site's directory (for
    /// Drupal, `settings.php`) for the database `site.login` names: after
    /// a deploy, before any other step runs the site's code, and after an
    /// undo put a site back. hoist's own `settings.yaml` is the caller's.
    fn write_settings(&self, site: &AppSite<'_>, cfg: &SiteConfig) -> Result<(), String>;

    /// The site's maintenance setting as stored (`None`: never set).
    fn maintenance(&self, site: &AppSite<'_>) -> Result<Option<String>, String>;

    /// Sets the maintenance setting to `value` (`"1"` on, `"0"` off), or
    /// back to never set (`None`).
    fn set_maintenance(&self, site: &AppSite<'_>, value: Option<&str>) -> Result<(), String>;

    /// Runs the updates the platform's code has and the site's database
    /// has not, in dependency order, a log line each. Returns warnings.
    fn update(
        &self,
        site: &AppSite<'_>,
        profile: &PackageName,
        log: Log<'_>,
    ) -> Result<Vec<String>, String>;

    /// Rewrites what the site's database says of its old domain's paths
    /// (`sites/<from>/`) to its new one, and records its new base URL;
    /// `site_name` is set when the task gives the site a new name (a
    /// clone).
    fn fix_paths(
        &self,
        site: &AppSite<'_>,
        from: &Domain,
        cfg: &SiteConfig,
        site_name: Option<&str>,
    ) -> Result<(), String>;

    /// Clears the site's caches.
    fn clear_caches(&self, site: &AppSite<'_>) -> Result<(), String>;

    /// The settings a rename sets in the site's database besides its
    /// paths (by name): the undo of a rename whose tables moved sets them
    /// back as they were before ([`AppKind::unrename`] does the paths).
    fn rename_vars(&self) -> &'static [&'static str] {
        &[]
    }

    /// Sets back what a rename to `renamed_to` rewrote in the site's
    /// database (its paths under `sites/<renamed_to>/` point under the
    /// site's own directory again), for the undo of a rename whose tables
    /// moved: the site is at its old place, on its old database, again.
    /// A path that pointed under `renamed_to` before the rename is pointed
    /// under the site's directory too: a known limit.
    fn unrename(&self, site: &AppSite<'_>, renamed_to: &Domain) -> Result<(), String>;
}

/// The embedded format's kind.
static EMBEDDED: Embedded = Embedded;
/// The Drupal 7 kind.
static DRUPAL7: super::drupal7::Drupal7 = super::drupal7::Drupal7;

/// The kind of a platform of Drupal `generation` (none: the embedded
/// kind). Drupal 8 and later is refused with the plan's reason.
pub fn kind_for(
    generation: Option<crate::drupal::Generation>,
) -> Result<&'static dyn AppKind, String> {
    match generation {
        None => Ok(&EMBEDDED),
        Some(crate::drupal::Generation::Drupal7) => Ok(&DRUPAL7),
        Some(crate::drupal::Generation::Drupal8Plus) => Err(crate::plan::DRUPAL8_APPLY.to_string()),
    }
}

/// hoist's own package format: SQL files per package, applied to the
/// site's database by hoist.
#[derive(Debug, Clone, Copy, Default)]
pub struct Embedded;

fn txt<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The text of a package's SQL file `rel` inside the site's platform,
/// and how to name it in messages; a missing file reads as empty when
/// `optional`.
fn package_sql(site: &AppSite<'_>, rel: &str, optional: bool) -> Result<(String, String), String> {
    let shown = site.platform_dir.join(rel).display().to_string();
    let bytes = match site.code.read(&site.platform, rel)? {
        Some(b) => b,
        None if optional => Vec::new(),
        None => return Err(format!("{shown}: no such file")),
    };
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown}: not UTF-8"))?;
    Ok((text, shown))
}

impl AppKind for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn install(&self, site: &AppSite<'_>, cfg: &SiteConfig, log: Log<'_>) -> Result<(), String> {
        let cb = site.code.codebase(&site.platform)?;
        let order = cb.install_set(&cfg.profile)?;
        let mut db = site.conn()?;
        db.create_core_tables().map_err(txt)?;
        for (k, v) in [
            ("site_name", cfg.site.to_string()),
            ("base_url", cfg.base_url()),
            ("file_directory_path", cfg.file_directory_path()),
            ("maintenance_mode", "0".into()),
        ] {
            db.set_variable(k, &v).map_err(txt)?;
        }
        for name in &order {
            let p = &cb.packages[name];
            let (sql, shown) = package_sql(site, &codebase::install_sql_rel(name), true)?;
            let sp = SitePackage {
                kind: p.kind,
                enabled: true,
                version: p.version.clone(),
                schema: p.schema(),
            };
            db.apply_package_sql(&mut sql.as_bytes(), &shown, name, &sp)
                .map_err(|e| format!("installing {name}: {e}"))?;
            log(format!(
                "installed {name} {} at schema {}",
                p.version,
                p.schema()
            ));
        }
        Ok(())
    }

    fn write_settings(&self, _site: &AppSite<'_>, _cfg: &SiteConfig) -> Result<(), String> {
        // The embedded code reads hoist's settings.yaml itself.
        Ok(())
    }

    fn maintenance(&self, site: &AppSite<'_>) -> Result<Option<String>, String> {
        site.conn()?.variable("maintenance_mode").map_err(txt)
    }

    fn set_maintenance(&self, site: &AppSite<'_>, value: Option<&str>) -> Result<(), String> {
        let mut db = site.conn()?;
        match value {
            Some(v) => db.set_variable("maintenance_mode", v).map_err(txt),
            None => db.delete_variable("maintenance_mode").map_err(txt),
        }
    }

    fn update(
        &self,
        site: &AppSite<'_>,
        profile: &PackageName,
        log: Log<'_>,
    ) -> Result<Vec<String>, String> {
        let target = site.code.codebase(&site.platform)?;
        let mut db = site.conn()?;
        run_updates(&mut *db, site, &site.platform, &target, profile, log)
    }

    fn fix_paths(
        &self,
        site: &AppSite<'_>,
        from: &Domain,
        cfg: &SiteConfig,
        site_name: Option<&str>,
    ) -> Result<(), String> {
        let mut db = site.conn()?;
        db.fix_paths(from.as_str(), cfg.domain.as_str())
            .map_err(txt)?;
        db.set_variable("base_url", &cfg.base_url()).map_err(txt)?;
        db.set_variable("file_directory_path", &cfg.file_directory_path())
            .map_err(txt)?;
        if let Some(n) = site_name {
            db.set_variable("site_name", n).map_err(txt)?;
        }
        Ok(())
    }

    fn clear_caches(&self, site: &AppSite<'_>) -> Result<(), String> {
        site.conn()?.clear_caches().map_err(txt)
    }

    fn rename_vars(&self) -> &'static [&'static str] {
        &["base_url", "file_directory_path"]
    }

    fn unrename(&self, site: &AppSite<'_>, renamed_to: &Domain) -> Result<(), String> {
        site.conn()?
            .fix_paths(renamed_to.as_str(), site.domain.as_str())
            .map_err(txt)
    }
}

/// Applies pending updates package by package in dependency order, each
/// update in its own transaction with its `system` row; records the target
/// versions; disables packages the target lacks. Returns warnings.
fn run_updates(
    db: &mut dyn SiteConn,
    code: &AppSite<'_>,
    target_name: &PlatformName,
    target: &Codebase,
    profile: &PackageName,
    log: Log<'_>,
) -> Result<Vec<String>, String> {
    let site = db.system().map_err(txt)?;
    let cmp = compat::compare(&site, profile, None, target_name, target);
    if !cmp.errors.is_empty() {
        return Err(cmp.errors.join("; "));
    }
    let order = target.order(
        site.keys()
            .filter(|n| target.packages.contains_key(*n))
            .cloned(),
    )?;
    let mut warnings = Vec::new();
    for name in order {
        let Some(v) = cmp.packages.iter().find(|v| v.name == name) else {
            continue;
        };
        let Some(tp) = target.packages.get(&name) else {
            continue;
        };
        let sp = &site[&name];
        match v.verdict {
            Verdict::Upgrade => {
                for (i, n) in v.pending.iter().enumerate() {
                    let (sql, shown) =
                        package_sql(code, &codebase::update_sql_rel(&name, *n), false)?;
                    let last = i + 1 == v.pending.len();
                    let rec = SitePackage {
                        kind: tp.kind,
                        enabled: true,
                        version: if last {
                            tp.version.clone()
                        } else {
                            sp.version.clone()
                        },
                        schema: *n,
                    };
                    db.apply_package_sql(&mut sql.as_bytes(), &shown, &name, &rec)
                        .map_err(|e| format!("update {n} of {name}: {e}"))?;
                    crate::failpoint::hit("update-inside", crate::failpoint::When::Before)?;
                    log(format!("applied update {n} of {name}"));
                }
            }
            Verdict::Same | Verdict::VersionDowngrade if tp.version != sp.version => {
                let rec = SitePackage {
                    kind: tp.kind,
                    enabled: true,
                    version: tp.version.clone(),
                    schema: sp.schema,
                };
                db.apply_package_sql(&mut std::io::empty(), "", &name, &rec)
                    .map_err(txt)?;
            }
            _ => {}
        }
    }
    for v in cmp
        .packages
        .iter()
        .filter(|v| v.verdict == Verdict::Missing)
    {
        db.set_enabled(&v.name, false).map_err(txt)?;
        log(format!("disabled {}: missing on {target_name}", v.name));
        warnings.push(format!(
            "package {} was disabled: {target_name} does not have it",
            v.name
        ));
    }
    Ok(warnings)
}
