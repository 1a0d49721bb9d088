//! Where an `ssh` server is and how to reach it, from the inventory's
//! `servers:` entry (spec section 2).

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::SshError;
use super::path::RemotePath;
use crate::inventory::ServerConfig;

/// Everything needed to reach one `kind: ssh` server. Relative
/// `known_hosts` and `identity_file` are resolved against the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The server's name in the inventory.
    pub name: String,
    /// An address or a name from `~/.ssh/config`.
    pub host: String,
    /// The SSH port.
    pub port: u16,
    /// The remote user; `None`: ssh's own choice (`~/.ssh/config`, else the
    /// local user name).
    pub user: Option<String>,
    /// The private key; `None`: ssh-agent and `~/.ssh/config`.
    pub identity_file: Option<PathBuf>,
    /// The only host keys accepted (absolute).
    pub known_hosts: PathBuf,
    /// hoist's root on that host.
    pub root: RemotePath,
}

/// Refuses words that ssh would read as an option or split apart.
fn check_word(label: &str, what: &str, word: &str) -> Result<(), SshError> {
    let bad = if word.is_empty() {
        Some("is empty")
    } else if word.starts_with('-') {
        Some("starts with '-', which ssh would read as an option")
    } else if word.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains white space or a control character")
    } else {
        None
    };
    match bad {
        Some(why) => Err(SshError::Config {
            host: label.into(),
            reason: format!("the {what} {word:?} {why}"),
        }),
        None => Ok(()),
    }
}

impl SshTarget {
    /// The target of server `name` declared as `cfg`; `inventory` is the
    /// directory relative paths are resolved against. Errors when `cfg` is
    /// not `kind: ssh` or holds something unusable.
    pub fn from_config(
        name: &str,
        cfg: &ServerConfig,
        inventory: &Path,
    ) -> Result<SshTarget, SshError> {
        let ServerConfig::Ssh {
            host,
            port,
            user,
            root,
            known_hosts,
            identity_file,
            ..
        } = cfg
        else {
            return Err(SshError::Config {
                host: format!("server {name}"),
                reason: "not a kind: ssh server".into(),
            });
        };
        let resolve = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                inventory.join(p)
            }
        };
        let root_text = root.to_str().ok_or_else(|| SshError::Config {
            host: format!("server {name}"),
            reason: format!("root {} is not UTF-8", root.display()),
        })?;
        let target = SshTarget {
            name: name.into(),
            host: host.clone(),
            port: *port,
            user: user.clone(),
            identity_file: identity_file.as_ref().map(resolve),
            known_hosts: resolve(known_hosts),
            root: RemotePath::new(root_text).map_err(|source| SshError::Path {
                host: format!("server {name}"),
                source,
            })?,
        };
        target.validate()?;
        Ok(target)
    }

    /// Checks host, user and root: words ssh takes as they are, and a root
    /// other than `/`.
    pub fn validate(&self) -> Result<(), SshError> {
        let label = self.label();
        check_word(&label, "host", &self.host)?;
        if let Some(user) = &self.user {
            check_word(&label, "user", user)?;
        }
        if self.root.is_filesystem_root() {
            return Err(SshError::Config {
                host: label,
                reason: "root must not be / itself".into(),
            });
        }
        Ok(())
    }

    /// `server NAME (user@host:port)`: how messages name this server.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server {} (", self.name)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}:{})", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(host: &str, user: Option<&str>, root: &str) -> ServerConfig {
        ServerConfig::Ssh {
            host: host.into(),
            port: 2222,
            user: user.map(Into::into),
            root: root.into(),
            known_hosts: "ssh/known_hosts".into(),
            identity_file: Some("/keys/id".into()),
            suspend: None,
            web: Default::default(),
        }
    }

    #[test]
    fn paths_resolve_against_the_inventory() {
        let t = SshTarget::from_config(
            "web2",
            &ssh("web2.example.org", Some("hoist"), "/srv/hoist/"),
            Path::new("/inv"),
        )
        .unwrap();
        assert_eq!(t.known_hosts, PathBuf::from("/inv/ssh/known_hosts"));
        assert_eq!(t.identity_file, Some(PathBuf::from("/keys/id")));
        assert_eq!(t.root.as_str(), "/srv/hoist");
        assert_eq!(t.label(), "server web2 (hoist@web2.example.org:2222)");
    }

    #[test]
    fn unusable_declarations_are_refused_naming_the_server() {
        let inv = Path::new("/inv");
        let e =
            SshTarget::from_config("w", &ssh("-oProxyCommand=x", None, "/srv"), inv).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("server w (-oProxyCommand=x:2222): the host"),
            "{e}"
        );
        assert!(SshTarget::from_config("w", &ssh("h", Some("a b"), "/srv"), inv).is_err());
        assert!(SshTarget::from_config("w", &ssh("h", None, "/"), inv).is_err());
        assert!(SshTarget::from_config("w", &ssh("h", None, "/srv/../etc"), inv).is_err());
        let local = ServerConfig::local("/x".into());
        assert!(SshTarget::from_config("w", &local, inv).is_err());
    }
}
