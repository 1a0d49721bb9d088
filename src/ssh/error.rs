//! What can go wrong talking to a host over SSH. Every message names the
//! server (`server web2 (hoist@web2.example.org:22)`), so an operator of
//! many servers knows at once which one to look at.

use std::path::PathBuf;
use std::time::Duration;

use super::path::PathError;
use super::quote::QuoteError;

/// An error of the SSH host layer. `host` is the server's label:
/// its inventory name with `user@host:port`.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The inventory's declaration cannot be used as it is.
    #[error("{host}: {reason}")]
    Config {
        /// The server.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local `ssh` client could not be run, or a local file needed for
    /// the connection could not be made or read.
    #[error("{host}: {what}: {source}")]
    Local {
        /// The server.
        host: String,
        /// What was being done.
        what: String,
        /// The local error.
        source: std::io::Error,
    },
    /// Nothing answered: refused, unreachable, unresolvable, timed out.
    #[error("{host}: cannot reach the host: {detail}")]
    Unreachable {
        /// The server.
        host: String,
        /// ssh's own words.
        detail: String,
    },
    /// The host's key is unknown or differs from the inventory's
    /// known_hosts: nothing is done on this server until an operator looks.
    #[error(
        "{host}: host key verification failed against {}: the host presented a key \
         that is not the one recorded there (a changed or unknown host key); nothing \
         is done on this server until the key is checked and known_hosts updated: {detail}",
        known_hosts.display()
    )]
    HostKey {
        /// The server.
        host: String,
        /// The known_hosts file checked against.
        known_hosts: PathBuf,
        /// ssh's own words.
        detail: String,
    },
    /// The host refused every key offered.
    #[error("{host}: authentication refused (no key from identity_file, ssh-agent or ~/.ssh/config was accepted): {detail}")]
    Auth {
        /// The server.
        host: String,
        /// ssh's own words.
        detail: String,
    },
    /// The connection broke, or ssh failed in a way not listed above.
    #[error("{host}: ssh connection failed: {detail}")]
    Connection {
        /// The server.
        host: String,
        /// ssh's own words.
        detail: String,
    },
    /// The login shell did not run hoist's probe as a POSIX `sh` would.
    #[error("{host}: the remote account has no working POSIX sh (the probe printed {output:?}): {detail}")]
    NoShell {
        /// The server.
        host: String,
        /// What the probe printed.
        output: String,
        /// Its stderr.
        detail: String,
    },
    /// A program hoist needs on the host is missing.
    #[error("{host}: the host lacks {tool}, which hoist needs there")]
    MissingTool {
        /// The server.
        host: String,
        /// The program.
        tool: String,
    },
    /// A path was refused before anything was sent.
    #[error("{host}: {source}")]
    Path {
        /// The server.
        host: String,
        /// Why.
        source: PathError,
    },
    /// An argument could not be put on a command line.
    #[error("{host}: {source}")]
    Quote {
        /// The server.
        host: String,
        /// Why.
        source: QuoteError,
    },
    /// The remote side found that a path leads outside the root (through
    /// a symbolic link), and refused it.
    #[error("{host}: {path} leads outside the server root: {detail}")]
    Outside {
        /// The server.
        host: String,
        /// The path.
        path: String,
        /// The remote side's words.
        detail: String,
    },
    /// A path (or a needed parent directory) does not exist.
    #[error("{host}: {path} does not exist")]
    NotFound {
        /// The server.
        host: String,
        /// The path.
        path: String,
    },
    /// A target that must be new exists already.
    #[error("{host}: {path} exists already")]
    Exists {
        /// The server.
        host: String,
        /// The path.
        path: String,
    },
    /// Another hoist process holds the server's lock.
    #[error("{host}: locked by another hoist process ({holder}); lock file {path}")]
    Locked {
        /// The server.
        host: String,
        /// The lock file.
        path: String,
        /// What the holder wrote into it.
        holder: String,
    },
    /// The lock stayed held for the whole wait.
    #[error("{host}: still locked after {waited:?} by another hoist process ({holder}); lock file {path}")]
    LockTimeout {
        /// The server.
        host: String,
        /// The lock file.
        path: String,
        /// How long was waited.
        waited: Duration,
        /// What the holder wrote into it.
        holder: String,
    },
    /// A held lock was lost: its session ended (the connection broke).
    #[error("{host}: the lock on {path} was lost: its ssh session ended")]
    LockLost {
        /// The server.
        host: String,
        /// The lock file.
        path: String,
    },
    /// A remote operation failed.
    #[error("{host}: {op} {path} failed (exit {status}): {stderr}")]
    Remote {
        /// The server.
        host: String,
        /// The operation.
        op: &'static str,
        /// Its path (or paths).
        path: String,
        /// The remote exit status (-1: killed by a signal).
        status: i32,
        /// The end of its stderr.
        stderr: String,
    },
}

/// Sorts a failed ssh run (exit 255, ssh's own words on stderr) into the
/// variants above. `None`: the words are not ssh's, so the remote command
/// itself failed.
pub(crate) fn classify(
    host: &str,
    known_hosts: &std::path::Path,
    status: i32,
    stderr: &str,
) -> Option<SshError> {
    if status != 255 {
        return None;
    }
    let detail = stderr.trim().to_string();
    let has = |words: &[&str]| words.iter().any(|w| stderr.contains(w));
    let host = host.to_string();
    if has(&[
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "host key is known",
        "No matching host key",
        "HOST KEY",
    ]) {
        return Some(SshError::HostKey {
            host,
            known_hosts: known_hosts.to_path_buf(),
            detail,
        });
    }
    if has(&["Permission denied", "Too many authentication failures"]) {
        return Some(SshError::Auth { host, detail });
    }
    if has(&[
        "Connection refused",
        "No route to host",
        "Network is unreachable",
        "Could not resolve hostname",
        "Name or service not known",
        "connect to host",
        "Connection timed out",
        "Operation timed out",
    ]) {
        return Some(SshError::Unreachable { host, detail });
    }
    if has(&[
        "ssh:",
        "Connection closed",
        "Connection reset",
        "closed by remote host",
        "Broken pipe",
        "Timeout, server",
        "client_loop",
        "kex_exchange_identification",
        "mux_client",
        "Control socket",
    ]) {
        return Some(SshError::Connection { host, detail });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn c(status: i32, stderr: &str) -> Option<SshError> {
        classify("server w (h:22)", Path::new("/kh"), status, stderr)
    }

    #[test]
    fn ssh_failures_are_sorted() {
        assert!(matches!(
            c(
                255,
                "ssh: connect to host 127.0.0.1 port 9: Connection refused"
            ),
            Some(SshError::Unreachable { .. })
        ));
        assert!(matches!(
            c(255, "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed."),
            Some(SshError::HostKey { .. })
        ));
        assert!(matches!(
            c(255, "root@127.0.0.1: Permission denied (publickey)."),
            Some(SshError::Auth { .. })
        ));
        assert!(matches!(
            c(255, "Connection to 127.0.0.1 closed by remote host."),
            Some(SshError::Connection { .. })
        ));
    }

    #[test]
    fn remote_failures_are_not_ssh_failures() {
        assert!(c(1, "ssh: anything").is_none());
        assert!(c(255, "my program failed").is_none());
    }

    #[test]
    fn messages_name_the_host() {
        let e = c(255, "Host key verification failed.").unwrap();
        let msg = e.to_string();
        assert!(
            msg.starts_with("server w (h:22): host key verification failed against /kh"),
            "{msg}"
        );
    }
}
