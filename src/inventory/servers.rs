//! `servers:` and `databases:` of `hoist.yaml` (spec section 2): where
//! platforms and sites live, what serves them, and where their databases
//! are. Secrets are never written here: a password in the inventory is an
//! error (`check_inline_secrets`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::document::LazyPositions;
use super::Suspension;
use crate::diag::Diagnostic;

/// A server declaration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ServerConfig {
    /// The embedded local server: a directory tree on this machine.
    Local {
        /// Its root, relative to the inventory or absolute.
        root: PathBuf,
        /// Set: hoist leaves every platform and site on it alone.
        #[serde(default)]
        suspend: Option<Suspension>,
        /// What serves its sites.
        #[serde(default)]
        web: WebConfig,
    },
    /// Another host, reached over OpenSSH.
    Ssh {
        /// An address or a name from `~/.ssh/config`.
        host: String,
        /// The SSH port.
        #[serde(default = "ssh_port")]
        port: u16,
        /// The remote user; default: ssh's own choice.
        #[serde(default)]
        user: Option<String>,
        /// The root, absolute on that host.
        root: PathBuf,
        /// The host keys it may present, relative to the inventory: always
        /// checked.
        known_hosts: PathBuf,
        /// The private key; default: ssh-agent and `~/.ssh/config`.
        #[serde(default)]
        identity_file: Option<PathBuf>,
        /// Set: hoist leaves every platform and site on it alone.
        #[serde(default)]
        suspend: Option<Suspension>,
        /// What serves its sites.
        #[serde(default)]
        web: WebConfig,
    },
}

fn ssh_port() -> u16 {
    22
}

impl ServerConfig {
    /// The server's suspension, if one is declared (active or not).
    pub fn suspend(&self) -> Option<&Suspension> {
        match self {
            ServerConfig::Local { suspend, .. } | ServerConfig::Ssh { suspend, .. } => {
                suspend.as_ref()
            }
        }
    }

    /// The web server of its sites.
    pub fn web(&self) -> &WebConfig {
        match self {
            ServerConfig::Local { web, .. } | ServerConfig::Ssh { web, .. } => web,
        }
    }

    /// The embedded default server, rooted at `root`.
    pub fn local(root: PathBuf) -> ServerConfig {
        ServerConfig::Local {
            root,
            suspend: None,
            web: WebConfig::File,
        }
    }
}

/// `web:` of a server: what serves its sites.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum WebConfig {
    /// Vhosts rendered under `<root>/vhosts/` and served by nothing: the
    /// embedded default. Health checks are skipped.
    #[default]
    File,
    /// nginx with php-fpm.
    Nginx(NginxConfig),
}

/// `web: { kind: nginx, ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxConfig {
    /// The directory of hoist's vhosts, included by nginx.conf.
    pub conf_dir: PathBuf,
    /// Where vhosts listen: a port, or `address:port`.
    #[serde(default)]
    pub listen: Listen,
    /// php-fpm's address: `unix:/path` or `host:port`.
    pub php_fpm: String,
    /// Run before every reload; a failure fails the step.
    #[serde(default = "nginx_test")]
    pub test: String,
    /// Makes nginx read its configuration again.
    #[serde(default = "nginx_reload")]
    pub reload: String,
    /// Where health checks are sent, with each site's Host header.
    #[serde(default = "check_url")]
    pub check_url: String,
}

/// `listen:` of an nginx web server: a port (`80`) or `address:port`
/// (`127.0.0.1:8080`), checked when the inventory is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen(String);

impl Default for Listen {
    fn default() -> Self {
        Listen("80".into())
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Port(u16),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Port(p) => p.to_string(),
            Raw::Text(t) => t,
        };
        if crate::nginx::valid_listen(&text) {
            Ok(Listen(text))
        } else {
            Err(serde::de::Error::custom(format!(
                "listen {text:?} is not a port or address:port"
            )))
        }
    }
}
fn nginx_test() -> String {
    "nginx -t".into()
}
fn nginx_reload() -> String {
    "nginx -s reload".into()
}
fn check_url() -> String {
    "http://127.0.0.1:80".into()
}

/// A database server declaration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DatabaseConfig {
    /// The embedded SQLite server: database files under the server root.
    Sqlite,
    /// A MariaDB (>= 10.5) or MySQL (>= 8.0) server.
    Mysql(MysqlServerConfig),
}

/// `databases: { NAME: { kind: mysql, ... } }`. The admin password comes
/// from a file or an environment variable, never from the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlServerConfig {
    /// Its address (with `port`); ignored when `socket` is set.
    #[serde(default = "localhost")]
    pub host: String,
    /// Its TCP port.
    #[serde(default = "mysql_port")]
    pub port: u16,
    /// A Unix socket to connect through instead of TCP.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// The user that creates databases and users.
    #[serde(default = "root_user")]
    pub admin_user: String,
    /// A file holding the admin password (relative to the inventory or
    /// absolute; kept out of git by the operator).
    #[serde(default)]
    pub admin_password_file: Option<PathBuf>,
    /// An environment variable holding the admin password.
    #[serde(default)]
    pub admin_password_env: Option<String>,
    /// Where site users may connect from.
    #[serde(default = "grant_hosts")]
    pub grant_hosts: Vec<String>,
}

impl MysqlServerConfig {
    /// Where it listens, as a site's settings give it: `unix:/path` or
    /// `host:port`.
    pub fn address(&self) -> String {
        match &self.socket {
            Some(s) => format!("unix:{}", s.display()),
            None => format!("{}:{}", self.host, self.port),
        }
    }
}

fn localhost() -> String {
    "127.0.0.1".into()
}
fn mysql_port() -> u16 {
    3306
}
fn root_user() -> String {
    "root".into()
}
fn grant_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

/// Keys of a database server that would hold a secret in the inventory.
const INLINE_DB_SECRETS: [&str; 3] = ["admin_password", "password", "pass"];

/// Reports each password written in the inventory: a database server's
/// admin password must come from `admin_password_file` or
/// `admin_password_env`, so that it never reaches git.
pub(super) fn check_inline_secrets(
    value: &Value,
    positions: &LazyPositions,
    shown: &Path,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(dbs) = value.get("databases").and_then(Value::as_object) else {
        return;
    };
    for (name, db) in dbs {
        for key in INLINE_DB_SECRETS {
            if db.get(key).is_some() {
                let ptr = format!("/databases/{name}/{key}");
                diags.push(Diagnostic::at(
                    shown,
                    positions.key(&ptr).or(Some((1, 1))),
                    "a secret written inline: a password never goes in the inventory; use `admin_password_file: PATH` or `admin_password_env: NAME`",
                ));
            }
        }
    }
}
