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

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::drupal::runner::{HostPhp, Install, Runner, RunnerError, Site};
use crate::drupal::settings::{self, Database, HashSalt, MysqlAt, Settings};
use crate::names::{Domain, PackageName};
use crate::render::{DbDriver, SiteConfig};

use super::app::{AppKind, AppSite, Log};
use super::host::{Host, HostError, HostPath};
use super::tree::Finish;

/// Drupal 7's settings file, in the site's directory.
pub const SETTINGS_PHP: &str = "settings.php";
/// Where a new `settings.php` is written before it replaces the old.
const SETTINGS_TMP: &str = ".settings.php.hoist-new";

/// The Drupal 7 kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drupal7;

fn txt<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// The runner for a site: php-cli from the `PATH` of the host its files
/// are on.
fn runner<'a>(site: &AppSite<'a>) -> Runner<HostPhp<'a>> {
    Runner::new(HostPhp { host: site.host })
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

/// Writes `text` as the site's `settings.php` in `dir` (0600), through
/// the site's host. The directory is made writable by its owner first if
/// the installer (or an operator) made it read-only: Drupal's installer
/// leaves `sites/<domain>` 0555 and `settings.php` 0444, which would stop
/// hoist from replacing the file and from ever removing the directory. The
/// new file's mtime is moved on from the old file's when they would be
/// equal: php-fpm's opcache revalidates a cached script by its mtime, so a
/// file rewritten within the same second would otherwise keep running the
/// old settings.
pub fn write_settings_php(host: &dyn Host, dir: &HostPath, text: &str) -> Result<(), String> {
    let shown = |e: HostError| e.to_string();
    let entries = host
        .walk(dir, Some(OsStr::new(SETTINGS_PHP)))
        .map_err(shown)?;
    let (Some(top), old) = (entries.first(), entries.get(1)) else {
        return Err(format!("{}: not found", host.display(dir)));
    };
    if top.mode & 0o200 == 0 {
        host.set_dir_meta(dir, Path::new(""), top.mode | 0o200, Some(top.mtime))
            .map_err(shown)?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mtime = old.map(|o| now.max(o.mtime + 1));
    // Written beside it, then renamed over it: a site never reads half a
    // file. A leftover of a run killed here is replaced.
    let tmp = dir.join(SETTINGS_TMP).map_err(shown)?;
    host.remove_file(&tmp).map_err(shown)?;
    let mut w = host
        .create_in(dir, Path::new(SETTINGS_TMP))
        .map_err(shown)?;
    std::io::Write::write_all(&mut w, text.as_bytes())
        .map_err(|e| format!("{}: {e}", host.display(dir)))?;
    w.finish(Finish {
        mode: Some(0o600),
        mtime,
        synced: false,
    })
    .map_err(shown)?;
    host.rename(&tmp, &dir.join(SETTINGS_PHP).map_err(shown)?)
        .map_err(shown)
}

/// Renders the site's `settings.php` for its database, keeping the salt of
/// the `settings.php` it has (a new one for a new site).
fn render_settings(site: &AppSite<'_>, cfg: &SiteConfig) -> Result<String, String> {
    let path = site.site_path()?.join(SETTINGS_PHP).map_err(txt)?;
    let existing = match site.host.read(&path).map_err(txt)? {
        Some(b) => Some(
            String::from_utf8(b).map_err(|_| format!("{}: not UTF-8", site.host.display(&path)))?,
        ),
        None => None,
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
        let files = site.site_path()?.join("files").map_err(txt)?;
        site.host.mkdir(&files, false).map_err(txt)?;
        self.write_settings(site, cfg)?;
        let mail = format!("admin@{}", cfg.domain);
        let status = runner(site)
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
        write_settings_php(site.host, &site.site_path()?, &text)
    }

    fn maintenance(&self, site: &AppSite<'_>) -> Result<Option<String>, String> {
        let st = runner(site).status(&site_of(site)).map_err(failed)?;
        Ok(Some(if st.maintenance { "1" } else { "0" }.to_string()))
    }

    fn set_maintenance(&self, site: &AppSite<'_>, value: Option<&str>) -> Result<(), String> {
        runner(site)
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
        match runner(site).updatedb(&site_of(site)) {
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
        runner(site)
            .fix_paths(&site_of(site), from.as_str())
            .map(|_| ())
            .map_err(failed)
    }

    fn clear_caches(&self, site: &AppSite<'_>) -> Result<(), String> {
        runner(site).cache_clear(&site_of(site)).map_err(failed)
    }

    /// The rename's rewrite run the other way, then every cache flushed
    /// (they hold the rewritten paths, and the registry is rebuilt).
    fn unrename(&self, site: &AppSite<'_>, renamed_to: &Domain) -> Result<(), String> {
        let r = runner(site);
        r.fix_paths(&site_of(site), renamed_to.as_str())
            .map_err(failed)?;
        r.cache_clear(&site_of(site)).map_err(failed)
    }
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
        let host = super::super::host::LocalHost::new(d.path().to_path_buf());
        let site = HostPath::new("site").unwrap();
        host.mkdir(&site, false).unwrap();
        let dir = d.path().join("site");
        write_settings_php(&host, &site, "<?php // a\n").unwrap();
        let p = dir.join(SETTINGS_PHP);
        let m1 = std::fs::metadata(&p).unwrap().modified().unwrap();
        // As the installer leaves them.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        write_settings_php(&host, &site, "<?php // b\n").unwrap();
        let m2 = std::fs::metadata(&p).unwrap().modified().unwrap();
        assert!(m2 > m1, "{m1:?} {m2:?}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "<?php // b\n");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no leftover");
    }
}
