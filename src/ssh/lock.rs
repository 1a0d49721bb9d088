//! A server lock: two hoist processes never work on one server at once.
//!
//! The lock is held by a remote session that stays open for as long as the
//! [`SshLock`] lives: the remote script takes `flock` on the lock file (or,
//! on a host without `flock`, makes a lock directory) and then waits for
//! its stdin to end. When hoist lets go, dies, or loses the connection,
//! stdin ends, the script exits, and the kernel drops the lock (or the
//! script's trap removes the directory). No stale lock outlives its
//! holder's connection, and no timeout guesses at liveness.

use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::{classify, SshError};
use super::host::{Slot, SshHost};
use super::path::RemotePath;
use super::scripts;

/// A held lock on a server. Dropping it releases it (and waits until the
/// remote side has let go).
pub struct SshLock<'h> {
    held: Held,
    _host: PhantomData<&'h SshHost>,
}

/// What a held lock owns: its session and what its messages need. It
/// borrows nothing, so the Host seam can hand it out as a
/// [`crate::driver::host::HostLock`].
pub(crate) struct Held {
    label: String,
    path: RemotePath,
    /// The session holding the lock; its host keeps a weak handle to ask
    /// whether it still runs ([`SshHost::check_locks`]).
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    _slot: Slot,
}

/// What the lock file says about its holder: this process and machine.
fn holder_text() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown host".into()
    };
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!("hoist pid {} on {name} since {since}", std::process::id())
}

impl SshHost {
    /// Takes the lock file `file` (within the root) at once, or fails with
    /// [`SshError::Locked`] naming the holder.
    pub fn lock(&self, file: &RemotePath) -> Result<SshLock<'_>, SshError> {
        self.lock_inner(file, None)
    }

    /// Takes the lock file `file`, waiting up to `timeout` (whole seconds,
    /// at least one) for another holder to let go; then fails with
    /// [`SshError::LockTimeout`].
    pub fn lock_wait(&self, file: &RemotePath, timeout: Duration) -> Result<SshLock<'_>, SshError> {
        self.lock_inner(file, Some(timeout))
    }

    fn lock_inner(
        &self,
        file: &RemotePath,
        wait: Option<Duration>,
    ) -> Result<SshLock<'_>, SshError> {
        file.check_within(self.root())
            .map_err(|source| SshError::Path {
                host: self.label().into(),
                source,
            })?;
        let secs = wait.map_or(0, |d| d.as_secs().max(1));
        let line = self.script_line(
            scripts::LOCK,
            &[file.as_str(), &secs.to_string(), &holder_text()],
        )?;
        let slot = self.slots.acquire();
        let mut child = self
            .remote_command(&line)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SshError::Local {
                host: self.label().into(),
                what: "run ssh".into(),
                source,
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        if first == "locked\n" {
            let child = Arc::new(Mutex::new(child));
            self.note_lock(file, &child);
            return Ok(SshLock {
                held: Held {
                    label: self.label().into(),
                    path: file.clone(),
                    child,
                    stdin,
                    stderr: Some(stderr),
                    _slot: slot,
                },
                _host: PhantomData,
            });
        }
        drop(stdin);
        let status = child.wait().map(|s| s.code().unwrap_or(-1)).unwrap_or(-1);
        let stderr = stderr.join().unwrap_or_default();
        let host = self.label().to_string();
        let path = file.to_string();
        if let Some(e) = classify(&host, &self.target().known_hosts, status, &stderr) {
            return Err(e);
        }
        let holder = stderr.trim().to_string();
        Err(match (status, wait) {
            (scripts::BUSY, None) => SshError::Locked { host, path, holder },
            (scripts::BUSY, Some(waited)) => SshError::LockTimeout {
                host,
                path,
                waited,
                holder,
            },
            (scripts::OUTSIDE, _) => SshError::Outside {
                host,
                path,
                detail: holder,
            },
            (status, _) => SshError::Remote {
                host,
                op: "lock",
                path,
                status,
                stderr: holder,
            },
        })
    }
}

/// Whether a lock's session still runs.
fn session_runs(child: &Mutex<Child>) -> bool {
    let mut c = child.lock().unwrap_or_else(|e| e.into_inner());
    matches!(c.try_wait(), Ok(None))
}

impl SshHost {
    /// Remembers a lock taken through this host, for [`SshHost::check_locks`].
    fn note_lock(&self, file: &RemotePath, child: &Arc<Mutex<Child>>) {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|(_, w)| w.strong_count() > 0);
        locks.push((file.clone(), Arc::downgrade(child)));
    }

    /// Ok while every lock taken through this host and not let go is
    /// still held; [`SshError::LockLost`] once one's session has ended (the
    /// connection broke: another hoist may have taken the server since).
    pub fn check_locks(&self) -> Result<(), SshError> {
        let locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        for (path, w) in locks.iter() {
            if let Some(child) = w.upgrade() {
                if !session_runs(&child) {
                    return Err(SshError::LockLost {
                        host: self.label().into(),
                        path: path.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl SshLock<'_> {
    /// The lock file.
    pub fn path(&self) -> &RemotePath {
        &self.held.path
    }

    /// Ok while the lock is still held; [`SshError::LockLost`] once its
    /// session has ended (the connection broke): whatever was being done
    /// under it must stop.
    pub fn check(&mut self) -> Result<(), SshError> {
        self.held.check()
    }

    /// Lets go of the lock and waits until the remote side has.
    pub fn release(mut self) -> Result<(), SshError> {
        self.held.finish()
    }

    /// The lock as a value that borrows nothing (released when dropped).
    pub(crate) fn into_held(self) -> Held {
        self.held
    }
}

impl Held {
    fn check(&mut self) -> Result<(), SshError> {
        match session_runs(&self.child) {
            true => Ok(()),
            false => Err(SshError::LockLost {
                host: self.label.clone(),
                path: self.path.to_string(),
            }),
        }
    }

    fn finish(&mut self) -> Result<(), SshError> {
        let Some(stdin) = self.stdin.take() else {
            return Ok(());
        };
        drop(stdin); // EOF: the remote script exits and the lock goes
        let status = self.child.lock().unwrap_or_else(|e| e.into_inner()).wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(SshError::Remote {
                host: self.label.clone(),
                op: "unlock",
                path: self.path.to_string(),
                status: s.code().unwrap_or(-1),
                stderr: stderr.trim().into(),
            }),
            Err(source) => Err(SshError::Local {
                host: self.label.clone(),
                what: "wait for the lock session".into(),
                source,
            }),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Errors surface through `release`; a dropped lock goes regardless.
        let _ = self.finish();
    }
}
