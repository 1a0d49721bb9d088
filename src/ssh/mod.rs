//! The SSH host layer: platforms and sites on hosts reached over OpenSSH
//! (spec sections 2 and 4, issue 14).
//!
//! - [`SshTarget`]: where a `kind: ssh` server is, from the inventory.
//! - [`SshHost`]: a connection to it through the system `ssh` client
//!   (one multiplexed connection, host keys checked against the
//!   inventory's `known_hosts`, no prompts), with the file operations the
//!   apply pipeline needs: atomic durable writes, renames, tree copies and
//!   removals, tar streams, listings, and a server lock.
//! - [`RemotePath`]: an absolute remote path free of `..` and NUL; every
//!   operation also refuses paths outside the server root, and the remote
//!   side refuses those that lead out of it through a symbolic link.
//! - [`quote`]: the one quoting function for remote command lines.
//!
//! Secrets never go on a remote command line: they travel on stdin
//! ([`SshHost::write_atomic`], [`SshHost::exec_stdin`]).
//!
//! [`SshHost`] is a [`crate::driver::host::Host`] (the `seam` module):
//! [`crate::server::Servers::from_inventory`] connects one per `kind: ssh`
//! server, and everything a task does to that server's files (platforms,
//! sites, vhosts of web kind `file`, backups, the task journal, the lock)
//! goes through it. Its sites' databases are on `mysql` servers, reached
//! from this machine. Its nginx is driven there ([`SshReach`]: commands
//! run over ssh, health checks connect from the host through `ssh -W`,
//! vhosts written through a second connection rooted at its `conf_dir`).
//! SQLite and Drupal are refused there with why (their files or php would
//! be on this machine).

mod error;
mod host;
mod lock;
mod ops;
mod path;
pub mod quote;
mod reach;
mod scripts;
mod seam;
mod target;

pub use error::SshError;
pub use host::{ExecOutput, Forwarded, SshHost, MAX_SESSIONS, PERSIST_SECS};
pub use lock::SshLock;
pub use ops::{DirEntry, EntryKind};
pub use path::{PathError, RemotePath};
pub use reach::SshReach;
pub use target::SshTarget;
