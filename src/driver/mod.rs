//! The seams between the task steps and what they drive: the database
//! server of a site ([`DbServer`], with [`SiteConn`] for the embedded
//! kind's statements) and the web server of a server ([`WebServer`], with
//! [`health`] checks). A server's [`Drivers`] are chosen once from
//! `hoist.yaml`'s `kind:` keys; the steps, their undo and recovery speak
//! only to them.
//!
//! The application a site runs is the third seam: [`app::AppKind`], chosen
//! by the platform's code ([`app::kind_of`]): the embedded format or
//! Drupal 7 ([`drupal7`]).
//!
//! The fourth seam is the host ([`host::Host`]): where a server's files
//! live, reached with paths inside its root ([`host::HostPath`]).
//! [`host::LocalHost`] is this machine; `src/ssh` is the transport an
//! `ssh` host uses.

pub mod app;
pub mod db;
pub mod drupal7;
pub mod health;
pub mod host;
mod mysql_site;
pub mod program;
pub mod reach;
pub mod relay;
pub mod snapshot;
pub mod tree;
pub mod web;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use db::{DbRef, DbServer, DriverError, Login, SiteConn, Sqlite};
pub use mysql_site::MysqlServer;
pub use web::{FileWeb, NginxWeb, WebError, WebServer, Which};

use crate::db::SqliteServer;
use crate::inventory::{DatabaseConfig, Inventory, MysqlServerConfig, WebConfig};
use crate::names::Name;

/// The drivers of one server: its web server and every database server
/// its sites may use (SQLite ones keep their files under its root).
#[derive(Clone)]
pub struct Drivers {
    /// What serves its sites.
    pub web: Arc<dyn WebServer>,
    /// Database servers by name; an entry that could not be set up holds
    /// why, reported when a task needs it.
    pub dbs: BTreeMap<Name, Result<Arc<dyn DbServer>, String>>,
}

impl std::fmt::Debug for Drivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drivers")
            .field("web", &self.web.kind())
            .field("dbs", &self.dbs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Drivers {
    /// The embedded default: web kind `file`, SQLite database server
    /// `default`, under `root`.
    pub fn embedded(root: &Path) -> Drivers {
        let name = Name::new("default").expect("valid");
        let sqlite: Arc<dyn DbServer> = Arc::new(Sqlite::new(
            name.clone(),
            SqliteServer::new(root.join("databases")),
        ));
        Drivers {
            web: Arc::new(FileWeb::new(Arc::new(host::LocalHost::new(
                root.to_path_buf(),
            )))),
            dbs: BTreeMap::from([(name, Ok(sqlite))]),
        }
    }

    /// The drivers of a server whose files are on `host` under `root` (as
    /// that host names it), with web server `web`, for the database servers
    /// of `inv`; `ssh` is that host when it is reached over ssh (its nginx
    /// is then driven there). On a host over ssh, SQLite (files on the
    /// controller) is refused when a task needs it.
    pub fn for_host(
        inv: &Inventory,
        root: &Path,
        web: &WebConfig,
        host: Arc<dyn host::Host>,
        ssh: Option<&Arc<crate::ssh::SshHost>>,
    ) -> Drivers {
        let local = host.local_root().is_some();
        let web: Arc<dyn WebServer> = match (web, ssh) {
            (WebConfig::File, _) => Arc::new(FileWeb::new(host.clone())),
            (WebConfig::Nginx(c), None) => Arc::new(NginxWeb::new(root.to_path_buf(), c.clone())),
            (WebConfig::Nginx(c), Some(ssh)) => match ssh.rooted_at(&c.conf_dir) {
                Ok(conf) => Arc::new(NginxWeb::over(
                    root.to_path_buf(),
                    c.clone(),
                    Arc::new(conf),
                    Arc::new(crate::ssh::SshReach(ssh.clone())),
                )),
                Err(e) => Arc::new(web::Unavailable::new(
                    "nginx",
                    format!("its conf_dir cannot be reached: {e}"),
                )),
            },
        };
        let dbs = inv
            .settings
            .databases
            .iter()
            .map(|(name, cfg)| {
                let d: Result<Arc<dyn DbServer>, String> = match cfg {
                    DatabaseConfig::Sqlite if !local => Err(format!(
                        "SQLite keeps its files on a local server; {} is reached over ssh: use a mysql database server for its sites",
                        host.label()
                    )),
                    DatabaseConfig::Sqlite => Ok(Arc::new(Sqlite::new(
                        name.clone(),
                        SqliteServer::new(root.join("databases")),
                    ))),
                    DatabaseConfig::Mysql(c) => mysql(inv, name, c)
                        .map(|m| Arc::new(MysqlServer::new(name.clone(), m)) as Arc<dyn DbServer>),
                };
                (name.clone(), d)
            })
            .collect();
        Drivers { web, dbs }
    }

    /// Connects to each of the database servers `names` as its admin
    /// would (a listing of databases): what an apply asks before it changes
    /// anything, so an unreachable server or a wrong admin password stops
    /// it with every server root untouched. Each failure names its server.
    pub fn preflight<'a>(&self, names: impl IntoIterator<Item = &'a Name>) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        names
            .into_iter()
            .filter(|n| seen.insert(*n))
            .filter_map(|n| match self.db(n).and_then(|d| d.list().map(|_| ())) {
                Ok(()) => None,
                Err(e) => Some(format!("database server {n}: {e}")),
            })
            .collect()
    }

    /// The database server `name`.
    pub fn db(&self, name: &Name) -> Result<&dyn DbServer, DriverError> {
        match self.dbs.get(name) {
            Some(Ok(d)) => Ok(d.as_ref()),
            Some(Err(why)) => Err(DriverError::Invalid(format!(
                "database server {name} cannot be used: {why}"
            ))),
            None => Err(DriverError::Unknown(name.clone())),
        }
    }
}

/// A MySQL driver from its inventory settings.
fn mysql(
    inv: &Inventory,
    name: &Name,
    c: &MysqlServerConfig,
) -> Result<crate::mysql::Mysql, String> {
    use crate::mysql::{AdminPassword, Endpoint, Mysql, MysqlConfig};
    let admin_password = match (&c.admin_password_file, &c.admin_password_env) {
        (Some(f), None) => AdminPassword::File(inv.root.join(f)),
        (None, Some(e)) => AdminPassword::Env(e.clone()),
        (None, None) => {
            return Err("it names neither admin_password_file nor admin_password_env".into())
        }
        (Some(_), Some(_)) => {
            return Err("it names both admin_password_file and admin_password_env".into())
        }
    };
    let endpoint = match &c.socket {
        Some(s) => Endpoint::Socket(s.clone()),
        None => Endpoint::Tcp {
            host: c.host.clone(),
            port: c.port,
        },
    };
    Mysql::new(MysqlConfig {
        name: name.to_string(),
        endpoint,
        admin_user: c.admin_user.clone(),
        admin_password,
        grant_hosts: c.grant_hosts.clone(),
        tools: None,
    })
    .map_err(|e| e.to_string())
}
