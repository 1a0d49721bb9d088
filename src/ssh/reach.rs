//! [`SshReach`]: a web server on a host over ssh, as hoist reaches it: its
//! test and reload commands run there, and its health checks connect from
//! there through the ssh connection (`ssh -W`).

use std::sync::Arc;
use std::time::Duration;

use super::host::SshHost;
use super::path::RemotePath;
use super::target::SshTarget;
use super::SshError;
use crate::driver::reach::{failure_text, Conn, Reach};

/// The web server of a host over ssh.
pub struct SshReach(pub Arc<SshHost>);

impl Reach for SshReach {
    fn run(&self, command: &str) -> Result<(), String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        if words.is_empty() {
            return Err("the command is empty".into());
        }
        let out = self.0.exec(&words).map_err(|e| e.to_string())?;
        if out.success() {
            Ok(())
        } else {
            Err(failure_text(&out.stderr))
        }
    }

    fn connect(&self, authority: &str, timeout: Duration) -> Result<Box<dyn Conn>, String> {
        let c = self
            .0
            .connect_from_host(authority, timeout)
            .map_err(|e| e.to_string())?;
        Ok(Box::new(c))
    }
}

impl SshHost {
    /// Another connection to the same host, rooted at `dir` (a web
    /// server's `conf_dir`, outside the server root): every path it is
    /// given stays under `dir`.
    pub fn rooted_at(&self, dir: &std::path::Path) -> Result<SshHost, SshError> {
        let root = dir
            .to_str()
            .ok_or_else(|| SshError::Config {
                host: self.target().label(),
                reason: format!("{} is not UTF-8", dir.display()),
            })
            .and_then(|d| {
                RemotePath::new(d).map_err(|source| SshError::Path {
                    host: self.target().label(),
                    source,
                })
            })?;
        SshHost::connect(SshTarget {
            root,
            ..self.target().clone()
        })
    }
}
