//! Where a web server runs, as hoist reaches it: its test and reload
//! commands are run there, and its health checks connect from there (a
//! `check_url` on `127.0.0.1` is the web server's own loopback). This
//! machine is [`Here`]; a host over ssh is `crate::ssh::SshReach`.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

/// A connection a health check talks HTTP over.
pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Where a web server's commands run and its health checks start.
pub trait Reach: Send + Sync {
    /// Runs `command` (its words split at white space, no shell) there;
    /// on failure, the end of its stderr.
    fn run(&self, command: &str) -> Result<(), String>;
    /// A TCP connection to `authority` (`address:port`) made from there,
    /// every read and write bounded by `timeout`.
    fn connect(&self, authority: &str, timeout: Duration) -> Result<Box<dyn Conn>, String>;
}

/// This machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Here;

/// The end of a failed command's stderr, as one block for a message.
pub fn failure_text(stderr: &str) -> String {
    crate::text::block(crate::names::prefix(stderr.trim(), 2000)).into_owned()
}

impl Reach for Here {
    fn run(&self, command: &str) -> Result<(), String> {
        let mut words = command.split_whitespace();
        let program = words.next().ok_or("the command is empty")?;
        let out = Command::new(program)
            .args(words)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failure_text(&String::from_utf8_lossy(&out.stderr)))
        }
    }

    fn connect(&self, authority: &str, timeout: Duration) -> Result<Box<dyn Conn>, String> {
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("{authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority}: no address"))?;
        let s =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{authority}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        Ok(Box::new(s))
    }
}
