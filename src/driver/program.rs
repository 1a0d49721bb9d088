//! Running a program where a server's sites are: what an application kind
//! needs besides files (php-cli for Drupal). Its input goes on stdin (it
//! may hold secrets: never an argument), and a run that outlives its time
//! limit is killed with whatever it started. [`run_local`] is this
//! machine's way; a remote host has its own
//! ([`crate::driver::host::Host::run_program`]).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How a program ended and what it printed.
#[derive(Debug, Clone)]
pub struct ProgramOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

/// Runs `program` with `args` on this machine, `stdin` on its stdin, in
/// a process group of its own that is killed after `timeout`.
/// `Ok(None)`: it was killed for the timeout.
pub fn run_local(
    program: &OsStr,
    args: &[&OsStr],
    stdin: Vec<u8>,
    timeout: Duration,
) -> std::io::Result<Option<ProgramOutput>> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills whatever it
        // started too.
        .process_group(0)
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut input = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        // The program may stop reading (a fatal error): a broken pipe then
        // is not the failure to report.
        let _ = input.write_all(&stdin);
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        match done_rx.recv_timeout(timeout) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // The child is not reaped before this thread is joined,
                // so its pid (and group) cannot have been reused.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                true
            }
            _ => false,
        }
    });
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let read = child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut stdout);
    // Wait for the exit without reaping, then stop the watchdog, then
    // reap: the kill can only ever hit this child.
    let waited = wait_no_reap(pid);
    drop(done_tx);
    let timed_out = watchdog.join().unwrap_or(false);
    let status = child.wait()?;
    let _ = writer.join();
    stderr.extend(err_reader.join().unwrap_or_default());
    read?;
    waited?;
    if timed_out {
        return Ok(None);
    }
    Ok(Some(ProgramOutput {
        status,
        stdout,
        stderr,
    }))
}

/// Waits until process `pid` has exited, leaving it unreaped.
fn wait_no_reap(pid: libc::pid_t) -> std::io::Result<()> {
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
