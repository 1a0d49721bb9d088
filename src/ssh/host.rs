//! [`SshHost`]: one server driven through the system `ssh` client over one
//! multiplexed connection.
//!
//! Why the system client: it is what operators already configure (keys,
//! agents, `~/.ssh/config`, jump hosts), it is audited, and it needs nothing
//! on the remote host but sshd. Why multiplexing: a task makes dozens of
//! small calls; over a ControlMaster each costs a round trip on an
//! established connection instead of a TCP and key exchange.
//!
//! The first call ([`SshHost::connect`]) runs a probe with
//! `ControlMaster=auto` and `ControlPersist`: ssh authenticates, leaves the
//! master in the background listening on a socket in a private 0700
//! directory, and runs the probe through it. Every later call uses
//! `ControlMaster=no`: it goes through the master, or, if the master is
//! gone (killed, connection cut), ssh opens a connection of its own; the
//! next call re-establishes the master. The master exits on [`Drop`] (`ssh
//! -O exit`), and by itself after [`PERSIST_SECS`] idle if hoist dies.
//!
//! Always: `BatchMode=yes` (never a prompt), `StrictHostKeyChecking=yes`
//! against the inventory's `known_hosts` only (the global file is
//! `/dev/null`; keys are never added or updated), no forwarding of agent,
//! X11 or ports, no tty.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::error::{classify, SshError};
use super::path::RemotePath;
use super::quote::command_line;
use super::scripts;
use super::target::SshTarget;

/// Seconds an idle master stays up: bounds what a killed hoist leaves.
pub const PERSIST_SECS: u32 = 300;

/// Sessions at once on one connection. sshd's `MaxSessions` defaults to
/// 10; a held lock takes one for its whole life.
pub const MAX_SESSIONS: usize = 8;

/// The most of a remote stderr kept for messages.
const STDERR_KEEP: usize = 16 * 1024;

/// What a finished remote command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit status (-1: killed by a signal).
    pub status: i32,
    /// Its stdout (empty when streamed elsewhere).
    pub stdout: Vec<u8>,
    /// The end of its stderr, as text.
    pub stderr: String,
}

impl ExecOutput {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// A counting semaphore: at most [`MAX_SESSIONS`] ssh sessions at once.
pub(crate) struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

/// One held session slot, returned on drop. It owns a handle on the
/// semaphore so a session can outlive a borrow of its host (a lock or a
/// stream handed out through the Host seam).
pub(crate) struct Slot(Arc<Slots>);

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn acquire(self: &Arc<Self>) -> Slot {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(Arc::clone(self))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

/// One `kind: ssh` server, connected. Shareable between threads.
pub struct SshHost {
    target: SshTarget,
    label: String,
    control_dir: tempfile::TempDir,
    control_path: PathBuf,
    has_flock: AtomicBool,
    pub(crate) slots: Arc<Slots>,
    master: Mutex<()>,
    /// The locks taken through it and the sessions holding them (gone
    /// once let go).
    pub(crate) locks: Mutex<Vec<(RemotePath, std::sync::Weak<Mutex<Child>>)>>,
}

/// A local path as an ssh option value: double-quoted (ssh splits option
/// values at white space), with `%` doubled (ssh expands `%` tokens in
/// these options). Quotes, backslashes and control characters are refused
/// rather than escaped: ssh's escaping rules differ between versions.
fn option_path(label: &str, what: &str, p: &Path) -> Result<String, SshError> {
    let bad = || {
        SshError::Config {
        host: label.into(),
        reason: format!(
            "the {what} path {} cannot be given to ssh (it must be UTF-8 without quotes, backslashes or control characters)",
            p.display()
        ),
    }
    };
    let s = p.to_str().ok_or_else(bad)?;
    if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(bad());
    }
    Ok(format!("\"{}\"", s.replace('%', "%%")))
}

/// A 0700 directory for the control socket, under the temp dir when its
/// path is short and plain (a unix socket path has about 100 bytes), else
/// under /tmp.
fn control_dir(label: &str) -> Result<tempfile::TempDir, SshError> {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir();
    let plain = base.to_str().is_some_and(|s| {
        s.len() < 60
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    });
    let base = if plain { base } else { PathBuf::from("/tmp") };
    let dir = tempfile::Builder::new()
        .prefix("hoist-ssh-")
        .tempdir_in(&base)
        .map_err(|source| SshError::Local {
            host: label.into(),
            what: format!("create a control directory under {}", base.display()),
            source,
        })?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).map_err(
        |source| SshError::Local {
            host: label.into(),
            what: "make the control directory private".into(),
            source,
        },
    )?;
    Ok(dir)
}

/// Reads `r` to the end, keeping the last [`STDERR_KEEP`] bytes.
fn read_tail(mut r: impl Read) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                all.extend_from_slice(&buf[..n]);
                if all.len() > 2 * STDERR_KEEP {
                    all.drain(..all.len() - STDERR_KEEP);
                }
            }
        }
    }
    if all.len() > STDERR_KEEP {
        all.drain(..all.len() - STDERR_KEEP);
    }
    String::from_utf8_lossy(&all).into_owned()
}

impl SshHost {
    /// Connects to `target`: checks its known_hosts and identity files,
    /// opens the master connection (host key checked, key authenticated)
    /// and proves that the account runs a POSIX sh with the tools hoist
    /// needs (GNU tar among them). Every failure names the server.
    pub fn connect(target: SshTarget) -> Result<SshHost, SshError> {
        target.validate()?;
        let label = target.label();
        let check_file = |what: &str, p: &Path| -> Result<(), SshError> {
            match std::fs::metadata(p) {
                Ok(m) if m.is_file() => Ok(()),
                Ok(_) => Err(SshError::Config {
                    host: label.clone(),
                    reason: format!("the {what} {} is not a file", p.display()),
                }),
                Err(source) => Err(SshError::Local {
                    host: label.clone(),
                    what: format!("read the {what} {}", p.display()),
                    source,
                }),
            }
        };
        check_file("known_hosts file", &target.known_hosts)?;
        if let Some(id) = &target.identity_file {
            check_file("identity_file", id)?;
        }
        let control_dir = control_dir(&label)?;
        let control_path = control_dir.path().join("cm");
        let host = SshHost {
            target,
            label,
            control_dir,
            control_path,
            has_flock: AtomicBool::new(false),
            slots: Arc::new(Slots::new(MAX_SESSIONS)),
            master: Mutex::new(()),
            locks: Mutex::new(Vec::new()),
        };
        host.probe()?;
        Ok(host)
    }

    /// The server this is connected to.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// hoist's root on the server.
    pub fn root(&self) -> &RemotePath {
        &self.target.root
    }

    /// How messages name this server.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the host has `flock` (else locks are lock directories).
    pub fn has_flock(&self) -> bool {
        self.has_flock.load(Ordering::Relaxed)
    }

    /// The ssh command with every option hoist insists on, then `extra`
    /// options, then the destination; the remote command line is appended.
    pub(crate) fn command(&self, master: bool, extra: &[&str]) -> Result<Command, SshError> {
        let t = &self.target;
        let mut cmd = Command::new("ssh");
        cmd.args(["-T", "-x", "-a", "-e", "none", "-p", &t.port.to_string()]);
        if let Some(user) = &t.user {
            cmd.args(["-l", user]);
        }
        let kh = option_path(&self.label, "known_hosts", &t.known_hosts)?;
        let cp = option_path(&self.label, "control socket", &self.control_path)?;
        for o in [
            "BatchMode=yes".to_string(),
            "StrictHostKeyChecking=yes".into(),
            format!("UserKnownHostsFile={kh}"),
            "GlobalKnownHostsFile=/dev/null".into(),
            "UpdateHostKeys=no".into(),
            "CheckHostIP=no".into(),
            "ConnectTimeout=30".into(),
            "ServerAliveInterval=15".into(),
            "ServerAliveCountMax=4".into(),
            "LogLevel=ERROR".into(),
            "ClearAllForwardings=yes".into(),
            "PermitLocalCommand=no".into(),
            "RequestTTY=no".into(),
            format!("ControlPath={cp}"),
            format!("ControlMaster={}", if master { "auto" } else { "no" }),
            format!("ControlPersist={PERSIST_SECS}"),
        ] {
            cmd.arg("-o").arg(o);
        }
        if let Some(id) = &t.identity_file {
            let id = option_path(&self.label, "identity_file", id)?;
            cmd.arg("-o").arg(format!("IdentityFile={id}"));
            cmd.arg("-o").arg("IdentitiesOnly=yes");
        }
        cmd.args(extra).arg("--").arg(&t.host);
        Ok(cmd)
    }

    fn local_err(&self, what: &str) -> impl FnOnce(io::Error) -> SshError + '_ {
        let what = what.to_string();
        move |source| SshError::Local {
            host: self.label.clone(),
            what,
            source,
        }
    }

    /// Runs the probe through a new master. Its output goes to files, not
    /// pipes: the master lives on in the background and must hold no pipe
    /// of ours open.
    fn probe(&self) -> Result<(), SshError> {
        let out_path = self.control_dir.path().join("probe.out");
        let err_path = self.control_dir.path().join("probe.err");
        let out =
            std::fs::File::create(&out_path).map_err(self.local_err("create probe output"))?;
        let err =
            std::fs::File::create(&err_path).map_err(self.local_err("create probe output"))?;
        let line = command_line(&["sh", "-c", scripts::PROBE, "hoist"]).map_err(|source| {
            SshError::Quote {
                host: self.label.clone(),
                source,
            }
        })?;
        let status = self
            .command(true, &[])?
            .arg(line)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(self.local_err("run ssh"))?;
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let code = status.code().unwrap_or(-1);
        if let Some(e) = classify(&self.label, &self.target.known_hosts, code, &stderr) {
            return Err(e);
        }
        if code == 255 && !self.control_path.exists() {
            return Err(SshError::Connection {
                host: self.label.clone(),
                detail: stderr.trim().to_string(),
            });
        }
        if !stdout.starts_with("hoist-sh-ok\n") || code != 0 {
            return Err(SshError::NoShell {
                host: self.label.clone(),
                output: stdout,
                detail: stderr.trim().to_string(),
            });
        }
        let lines: Vec<&str> = stdout.lines().collect();
        if let Some(m) = lines.iter().find_map(|l| l.strip_prefix("missing ")) {
            return Err(SshError::MissingTool {
                host: self.label.clone(),
                tool: m.to_string(),
            });
        }
        if !lines.iter().any(|l| l.contains("GNU tar")) {
            return Err(SshError::MissingTool {
                host: self.label.clone(),
                tool: "GNU tar".into(),
            });
        }
        self.has_flock
            .store(lines.contains(&"has-flock"), Ordering::Relaxed);
        Ok(())
    }

    /// Whether the master connection is up (`ssh -O check`): false after
    /// it idled out or its connection broke; the next call opens it again.
    pub fn master_alive(&self) -> bool {
        self.command(false, &["-O", "check"]).is_ok_and(|mut cmd| {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Re-opens the master if it no longer answers on its socket (it idled
    /// out, or the connection broke).
    fn ensure_master(&self) -> Result<(), SshError> {
        if self.master_listening() {
            return Ok(());
        }
        let _one = self.master.lock().unwrap_or_else(|e| e.into_inner());
        if self.master_listening() {
            return Ok(());
        }
        // A socket a dying master has not removed yet would make ssh go
        // around it on a connection of its own, and stop a new master
        // from taking its place.
        if let Err(e) = std::fs::remove_file(&self.control_path) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(self.local_err("remove a dead master's socket")(e));
            }
        }
        self.probe()
    }

    /// Whether a master answers on the control socket: a connect, no
    /// process started (the master drops a client that says nothing).
    fn master_listening(&self) -> bool {
        std::os::unix::net::UnixStream::connect(&self.control_path).is_ok()
    }

    /// The remote command line running `script` (after the prelude) with
    /// the root and `args` as its positional parameters.
    pub(crate) fn script_line<S: AsRef<OsStr>>(
        &self,
        script: &str,
        args: &[S],
    ) -> Result<OsString, SshError> {
        let full = scripts::with_prelude(script);
        let mut argv: Vec<&OsStr> = vec![
            OsStr::new("sh"),
            OsStr::new("-c"),
            OsStr::new(&full),
            OsStr::new("hoist"),
            OsStr::new(self.target.root.as_str()),
        ];
        argv.extend(args.iter().map(AsRef::as_ref));
        command_line(&argv).map_err(|source| SshError::Quote {
            host: self.label.clone(),
            source,
        })
    }

    /// A spawnable ssh command running `line` through the master.
    pub(crate) fn remote_command(&self, line: &OsStr) -> Result<Command, SshError> {
        self.ensure_master()?;
        let mut cmd = self.command(false, &[])?;
        cmd.arg(line);
        Ok(cmd)
    }

    /// Runs `line` remotely: `stdin` streamed in (or none), stdout streamed
    /// to `stdout` (or collected). ssh's own failures become errors; the
    /// remote command's status is returned as it is.
    pub(crate) fn run(
        &self,
        line: &OsStr,
        stdin: Option<&mut (dyn Read + Send)>,
        stdout: Option<&mut (dyn Write + Send)>,
    ) -> Result<ExecOutput, SshError> {
        let _slot = self.slots.acquire();
        let mut cmd = self.remote_command(line)?;
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(self.local_err("run ssh"))?;
        let child_in = child.stdin.take();
        let mut child_out = child.stdout.take().expect("piped stdout");
        let child_err = child.stderr.take().expect("piped stderr");
        let (status, collected, fed, copied, stderr) = std::thread::scope(|s| {
            let feeder = match (stdin, child_in) {
                (Some(r), Some(mut w)) => Some(s.spawn(move || {
                    let res = io::copy(r, &mut w);
                    drop(w); // EOF for the remote side
                    res
                })),
                _ => None,
            };
            let errs = s.spawn(move || read_tail(child_err));
            let mut collected = Vec::new();
            let copied = match stdout {
                Some(w) => io::copy(&mut child_out, w).map(|_| ()),
                None => child_out.read_to_end(&mut collected).map(|_| ()),
            };
            if copied.is_err() {
                // Our side cannot take more: stop the transfer rather than
                // leave ssh blocked on a full pipe.
                let _ = child.kill();
            }
            drop(child_out);
            let status = child.wait();
            let fed = feeder.map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("stdin feeder panicked")))
            });
            let stderr = errs.join().unwrap_or_default();
            (status, collected, fed, copied, stderr)
        });
        let status = status.map_err(self.local_err("wait for ssh"))?;
        let code = status.code().unwrap_or(-1);
        if let Some(e) = classify(&self.label, &self.target.known_hosts, code, &stderr) {
            return Err(e);
        }
        copied.map_err(self.local_err("take the output of the remote command"))?;
        if let Some(Err(e)) = fed {
            // A remote command that exits early closes its stdin: that is
            // its status to report, not a local failure.
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(self.local_err("read the input for the remote command")(e));
            }
        }
        Ok(ExecOutput {
            status: code,
            stdout: collected,
            stderr,
        })
    }

    /// Runs `argv` on the host (each word quoted, so nothing in it is
    /// interpreted by the remote shell). Never put a secret in `argv`:
    /// command lines are visible to every user of the host; use
    /// [`SshHost::exec_stdin`]. A non-zero exit is returned, not an error.
    pub fn exec<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<ExecOutput, SshError> {
        self.exec_inner(argv, None)
    }

    /// [`SshHost::exec`] with `stdin` fed to the command: the way to hand
    /// it a secret.
    pub fn exec_stdin<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        stdin: &[u8],
    ) -> Result<ExecOutput, SshError> {
        let mut r: &[u8] = stdin;
        self.exec_inner(argv, Some(&mut r))
    }

    fn exec_inner<S: AsRef<OsStr>>(
        &self,
        argv: &[S],
        stdin: Option<&mut (dyn Read + Send)>,
    ) -> Result<ExecOutput, SshError> {
        if argv.is_empty() {
            return Err(SshError::Config {
                host: self.label.clone(),
                reason: "exec of an empty command".into(),
            });
        }
        let line = command_line(argv).map_err(|source| SshError::Quote {
            host: self.label.clone(),
            source,
        })?;
        self.run(&line, stdin, None)
    }
}

/// A remote command running with its stdin and stdout as pipes, for a
/// transfer that outlives the call starting it (a file read or written
/// piece by piece through the Host seam). It holds a session slot of its
/// own, so it does not borrow its host.
pub(crate) struct Stream {
    label: String,
    known_hosts: PathBuf,
    child: Child,
    /// The command's stdin; dropping it is the command's EOF.
    pub(crate) stdin: Option<ChildStdin>,
    /// The command's stdout.
    pub(crate) stdout: io::BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    /// Whether a stream dropped before [`Stream::wait`] kills its ssh
    /// (a reader: the remote side may be blocked writing) rather than
    /// waiting for it (a writer: EOF ends it).
    kill_on_drop: bool,
    done: bool,
    _slot: Slot,
}

impl SshHost {
    /// Starts `line` remotely with piped stdin and stdout.
    pub(crate) fn spawn(&self, line: &OsStr, kill_on_drop: bool) -> Result<Stream, SshError> {
        let slot = self.slots.acquire();
        let mut child = self
            .remote_command(line)?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(self.local_err("run ssh"))?;
        let stdin = child.stdin.take();
        let stdout = io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || read_tail(err));
        Ok(Stream {
            label: self.label.clone(),
            known_hosts: self.target.known_hosts.clone(),
            child,
            stdin,
            stdout,
            stderr: Some(stderr),
            kill_on_drop,
            done: false,
            _slot: slot,
        })
    }
}

impl SshHost {
    /// A TCP connection to `authority` (`address:port`) made from the
    /// remote host, carried over the ssh connection (`ssh -W`: no port is
    /// opened anywhere): how a health check reaches a web server that
    /// listens on the remote host's loopback. The connection is cut after
    /// `timeout`.
    pub fn connect_from_host(
        &self,
        authority: &str,
        timeout: std::time::Duration,
    ) -> Result<Forwarded, SshError> {
        let bad = authority.is_empty()
            || authority.starts_with('-')
            || authority
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '%');
        if bad {
            return Err(SshError::Config {
                host: self.label.clone(),
                reason: format!("the address {authority:?} cannot be given to ssh -W"),
            });
        }
        self.ensure_master()?;
        let slot = self.slots.acquire();
        let mut child = self
            .command(false, &["-W", authority])?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(self.local_err("run ssh -W"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (done, watched) = std::sync::mpsc::channel::<()>();
        let pid = child.id();
        // Pipes have no timeouts: a watchdog kills the ssh at the deadline,
        // which ends the read.
        let watchdog = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(timeout) {
                // SAFETY: kill(2) of our own child, not yet reaped (the
                // stream waits for this thread before it reaps it).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        });
        Ok(Forwarded {
            child,
            stdin: Some(stdin),
            stdout,
            done: Some(done),
            watchdog: Some(watchdog),
            _slot: slot,
        })
    }
}

/// A TCP connection made from a remote host ([`SshHost::connect_from_host`]).
pub struct Forwarded {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    done: Option<std::sync::mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
    _slot: Slot,
}

impl Read for Forwarded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Write for Forwarded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stdin {
            Some(s) => s.write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        drop(self.stdin.take());
        drop(self.done.take());
        if let Some(w) = self.watchdog.take() {
            // The watchdog ends at once once its channel is closed.
            let _ = w.join();
        }
        // Nothing to report: the request is over either way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Stream {
    /// Ends the command's stdin, collects what is left of its stdout, and
    /// waits for it. ssh's own failures become errors; the remote
    /// command's status is returned as it is.
    pub(crate) fn wait(&mut self) -> Result<ExecOutput, SshError> {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        let read = self.stdout.read_to_end(&mut rest);
        let status = self.child.wait();
        self.done = true;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let status = status.map_err(|source| SshError::Local {
            host: self.label.clone(),
            what: "wait for ssh".into(),
            source,
        })?;
        let code = status.code().unwrap_or(-1);
        if let Some(e) = classify(&self.label, &self.known_hosts, code, &stderr) {
            return Err(e);
        }
        read.map_err(|source| SshError::Local {
            host: self.label.clone(),
            what: "take the output of the remote command".into(),
            source,
        })?;
        Ok(ExecOutput {
            status: code,
            stdout: rest,
            stderr,
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        drop(self.stdin.take());
        if self.kill_on_drop {
            // Nothing to report: the transfer was given up.
            let _ = self.child.kill();
        }
        // Reaped, so no session is left half open behind the caller.
        let _ = self.child.wait();
        if let Some(h) = self.stderr.take() {
            let _ = h.join();
        }
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        // Stops the master; nothing to report if it is already gone.
        if let Ok(mut cmd) = self.command(false, &["-O", "exit"]) {
            let _ = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_paths_are_quoted_and_percent_doubled() {
        assert_eq!(
            option_path("s", "x", Path::new("/a b/k%h")).unwrap(),
            "\"/a b/k%%h\""
        );
        assert!(option_path("s", "x", Path::new("/a\"b")).is_err());
        assert!(option_path("s", "x", Path::new("/a\\b")).is_err());
        assert!(option_path("s", "x", Path::new("/a\nb")).is_err());
    }
}
