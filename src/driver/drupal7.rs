//! The Drupal 7 application kind: a real Drupal 7 site, driven by php-cli
//! (from `PATH`) with hoist's runner ([`crate::drupal::runner`]). Drupal's
//! own installer installs, its `maintenance_mode` variable is the
//! maintenance switch, `update_get_update_list()` gives the pending updates
//! (run in dependency order, each to completion), and
//! `drupal_flush_all_caches()` clears caches and rebuilds the registry.
//!
//! `settings.php` is rendered by hoist ([`crate::drupal::settings`]) with
//! `$databases` from the site's database server and the site's existing
//! `$drupal_hash_salt` kept, so users stay logged in across a migrate. It
//! is written before any step runs the site's code on a new database, so
//! the code never reaches the old one by a copied `settings.php`.

use std::path::{Path, PathBuf};

use crate::drupal::runner::{Install, Runner, RunnerError, Site};
use crate::drupal::settings::{self, Database, HashSalt, MysqlAt, Settings};
use crate::fsutil;
use crate::names::{Domain, PackageName};
use crate::render::{DbDriver, SiteConfig};

use super::app::{AppKind, AppSite, Log};

/// Drupal 7's settings file, in the site's directory.
pub const SETTINGS_PHP: &str = "settings.php";

/// The Drupal 7 kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drupal7;

fn txt<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The runner for a site: php-cli from `PATH`.
fn runner() -> Runner {
    Runner::local()
}

fn site_of(site: &AppSite<'_>) -> Site {
    Site::new(&site.platform_dir, site.domain.as_str())
}

/// The site's database as its `settings.php` reaches it: an SQLite file
/// its database server names, or the MySQL server's address from the
/// site's settings (`host:port`, or `unix:/path`: Drupal's `unix_socket`).
pub fn database(site: &AppSite<'_>, cfg: &SiteConfig) -> Result<Database, String> {
    match cfg.db_driver {
        DbDriver::Sqlite => {
            let path = site.db.sqlite_file(&site.login.database).ok_or_else(|| {
                format!(
                    "database server {} names no file for {}",
                    site.db.name(),
                    site.login.database
                )
            })?;
            Ok(Database::Sqlite { path })
        }
        DbDriver::Mysql => {
            let addr = cfg.db_address.as_deref().ok_or_else(|| {
                format!(
                    "database server {} has no address for Drupal to reach",
                    cfg.db_server
                )
            })?;
            Ok(Database::Mysql {
                at: mysql_at(addr)?,
                database: site.login.database.clone(),
                username: site.login.user.clone(),
                password: site.login.password.clone(),
            })
        }
    }
}

/// `unix:/path` as a socket, else `host:port` split.
fn mysql_at(addr: &str) -> Result<MysqlAt, String> {
    if let Some(path) = addr.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!("database socket {addr} is not an absolute path"));
        }
        return Ok(MysqlAt::Socket(path));
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("database address {addr} is not host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("database address {addr} has no valid port"))?;
    Ok(MysqlAt::Tcp {
        host: host.trim_matches(['[', ']']).to_string(),
        port,
    })
}

/// Makes `path` writable by its owner if the installer (or an operator)
/// made it read-only: Drupal's installer leaves `sites/<domain>` 0555 and
/// `settings.php` 0444, which would stop hoist from rewriting the file and
/// from ever removing the directory.
fn owner_writable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mode = meta.permissions().mode();
    if meta.file_type().is_symlink() || mode & 0o200 != 0 {
        return Ok(());
    }
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode((mode | 0o200) & 0o7777),
    )
    .map_err(|e| format!("making {} writable: {e}", path.display()))
}

/// Writes `text` as the site's `settings.php` (0600), its mtime moved on
/// from the old file's when they would be equal: php-fpm's opcache
/// revalidates a cached script by its mtime, so a file rewritten within
/// the same second would otherwise keep running the old settings.
pub fn write_settings_php(dir: &Path, text: &str) -> Result<(), String> {
    let path = dir.join(SETTINGS_PHP);
    owner_writable(dir)?;
    owner_writable(&path)?;
    let old_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    fsutil::write_private_unsynced(&path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(old) = old_mtime {
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let now = f
            .metadata()
            .and_then(|m| m.modified())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let secs = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        if secs(now) <= secs(old) {
            f.set_modified(old + std::time::Duration::from_secs(1))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Renders the site's `settings.php` for its database, keeping the salt of
/// the `settings.php` it has (a new one for a new site).
fn render_settings(site: &AppSite<'_>, cfg: &SiteConfig) -> Result<String, String> {
    let dir = site.dir();
    let existing = match std::fs::read_to_string(dir.join(SETTINGS_PHP)) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("{}: {e}", dir.join(SETTINGS_PHP).display())),
    };
    let (salt, _origin): (HashSalt, _) =
        settings::keep_or_generate(existing.as_deref()).map_err(txt)?;
    let db = database(site, cfg)?;
    settings::render(&Settings {
        site_dir: site.domain.as_str(),
        database: &db,
        hash_salt: &salt,
        private_files: false,
    })
    .map_err(txt)
}

/// The message of a runner failure, as a task step reports it.
fn failed(e: RunnerError) -> String {
    e.to_string()
}

impl AppKind for Drupal7 {
    fn name(&self) -> &'static str {
        "drupal 7"
    }

    fn install(&self, site: &AppSite<'_>, cfg: &SiteConfig, log: Log<'_>) -> Result<(), String> {
        let dir = site.dir();
        let files = dir.join("files");
        fsutil::create_dir_all(&files).map_err(|e| format!("{}: {e}", files.display()))?;
        self.write_settings(site, cfg)?;
        let mail = format!("admin@{}", cfg.domain);
        let status = runner()
            .install(
                &site_of(site),
                Install {
                    profile: cfg.profile.to_string(),
                    site_name: cfg.site.to_string(),
                    site_mail: mail.clone(),
                    account_name: "admin".into(),
                    account_mail: mail,
                    // Not kept: the operator signs in with a one-time link.
                    account_pass: crate::db::generate_password(),
                    database: database(site, cfg)?,
                },
            )
            .map_err(failed)?;
        log(format!(
            "installed Drupal {} with profile {} ({} modules enabled)",
            status.core,
            status.profile.as_deref().unwrap_or("?"),
            status.modules.len()
        ));
        Ok(())
    }

    fn write_settings(&self, site: &AppSite<'_>, cfg: &SiteConfig) -> Result<(), String> {
        let text = render_settings(site, cfg)?;
        write_settings_php(&site.dir(), &text)
    }

    fn maintenance(&self, site: &AppSite<'_>) -> Result<Option<String>, String> {
        let st = runner().status(&site_of(site)).map_err(failed)?;
        Ok(Some(if st.maintenance { "1" } else { "0" }.to_string()))
    }

    fn set_maintenance(&self, site: &AppSite<'_>, value: Option<&str>) -> Result<(), String> {
        runner()
            .maintenance(&site_of(site), value == Some("1"))
            .map(|_| ())
            .map_err(failed)
    }

    fn update(
        &self,
        site: &AppSite<'_>,
        _profile: &PackageName,
        log: Log<'_>,
    ) -> Result<Vec<String>, String> {
        let line = |u: &crate::drupal::runner::UpdateRan| {
            let mut l = format!("applied update {}_update_{}", u.module, u.number);
            if !u.description.is_empty() {
                l.push_str(&format!(": {}", u.description));
            }
            if u.passes > 1 {
                l.push_str(&format!(" ({} passes)", u.passes));
            }
            l
        };
        match runner().updatedb(&site_of(site)) {
            Ok(report) => {
                for u in &report.updates {
                    log(line(u));
                }
                if report.updates.is_empty() {
                    log("no pending updates".into());
                }
                Ok(Vec::new())
            }
            Err(e) => {
                if let RunnerError::UpdateFailed { done, .. } = &e {
                    for u in done {
                        log(line(u));
                    }
                }
                Err(failed(e))
            }
        }
    }

    fn fix_paths(
        &self,
        site: &AppSite<'_>,
        from: &Domain,
        _cfg: &SiteConfig,
        _site_name: Option<&str>,
    ) -> Result<(), String> {
        // The site's name is its owners' (Drupal's `site_name`), never
        // hoist's: a clone keeps it. Its base URL is derived from the
        // request's host (settings.php sets none).
        if from == &site.domain {
            return Ok(());
        }
        runner()
            .fix_paths(&site_of(site), from.as_str())
            .map(|_| ())
            .map_err(failed)
    }

    fn clear_caches(&self, site: &AppSite<'_>) -> Result<(), String> {
        runner().cache_clear(&site_of(site)).map_err(failed)
    }

    /// The rename's rewrite run the other way, then every cache flushed
    /// (they hold the rewritten paths, and the registry is rebuilt).
    fn unrename(&self, site: &AppSite<'_>, renamed_to: &Domain) -> Result<(), String> {
        let r = runner();
        r.fix_paths(&site_of(site), renamed_to.as_str())
            .map_err(failed)?;
        r.cache_clear(&site_of(site)).map_err(failed)
    }
}

/// The settings file of a Drupal 7 site in `dir`.
pub fn settings_php(dir: &Path) -> PathBuf {
    dir.join(SETTINGS_PHP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_and_port_or_a_socket() {
        let tcp = |host: &str, port| MysqlAt::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(mysql_at("127.0.0.1:3306").unwrap(), tcp("127.0.0.1", 3306));
        assert_eq!(mysql_at("[::1]:3307").unwrap(), tcp("::1", 3307));
        assert_eq!(
            mysql_at("unix:/run/mysqld.sock").unwrap(),
            MysqlAt::Socket("/run/mysqld.sock".into())
        );
        assert!(mysql_at("unix:mysqld.sock").is_err());
        assert!(mysql_at("db.example").is_err());
        assert!(mysql_at("db:x").is_err());
    }

    #[test]
    fn a_rewritten_settings_file_gets_a_later_mtime() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        write_settings_php(d.path(), "<?php // a\n").unwrap();
        let p = d.path().join(SETTINGS_PHP);
        let m1 = std::fs::metadata(&p).unwrap().modified().unwrap();
        // As the installer leaves them.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        write_settings_php(d.path(), "<?php // b\n").unwrap();
        let m2 = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert!(m2 > m1, "{m1:?} {m2:?}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "<?php // b\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
