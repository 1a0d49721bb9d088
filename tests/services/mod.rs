//! Real services for integration tests: a MariaDB server, php-fpm, nginx and
//! sshd (in `sshd.rs`), each started as root under its own temporary
//! directory, listening on loopback or a unix socket only, with no systemd
//! and nothing pre-running.
//! Every service is stopped (SIGTERM, then wait) when its value is dropped,
//! and is killed by the kernel if the test process dies first.
//!
//! Use from an integration test with `mod services;`. A test that needs a
//! service calls its `start()`: it returns `None` (after printing why) when
//! the binaries are missing, unless `HOIST_REQUIRE_SERVICES` is set (CI sets
//! it), in which case a missing binary fails the test.
#![allow(dead_code)]

mod sshd;
// Only the ssh tests use it; the other test crates include this module too.
#[allow(unused_imports)]
pub use sshd::Sshd;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any service may take to become ready on a loaded 2-core machine.
const READY_DEADLINE: Duration = Duration::from_secs(90);

/// Finds a program in PATH or the sbin directories (root's services live
/// there, and a test's PATH may lack them). The first candidate found wins.
pub fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for name in candidates {
        for dir in &dirs {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
        if *name == "php-fpm" {
            return find_php_fpm();
        }
    }
    None
}

/// php-fpm is installed versioned (`php-fpm8.2`); takes the newest found.
fn find_php_fpm() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = ["/usr/sbin", "/usr/local/sbin"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Whether tests must fail, rather than skip, when a service is missing.
pub fn services_required() -> bool {
    std::env::var_os("HOIST_REQUIRE_SERVICES").is_some_and(|v| !v.is_empty())
}

/// Finds one program of each candidate list; when one is missing, skips (prints
/// why, returns `None`) or, under `HOIST_REQUIRE_SERVICES`, panics.
fn programs_or_skip(service: &str, wanted: &[&[&str]]) -> Option<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for candidates in wanted {
        match find_program(candidates) {
            Some(p) => out.push(p),
            None => missing.push(candidates.join(" or ")),
        }
    }
    if missing.is_empty() {
        return Some(out);
    }
    let why = format!(
        "{service} is not installed (missing {}); see README \"Real services in tests\"",
        missing.join(", ")
    );
    if services_required() {
        panic!("HOIST_REQUIRE_SERVICES is set and {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// One service's program (or `None`: skipped) and a fresh temp dir for it.
fn program_and_dir(service: &str, candidates: &[&str]) -> Option<(PathBuf, tempfile::TempDir)> {
    let program = programs_or_skip(service, &[candidates])?.pop()?;
    Some((program, service_dir(service)))
}

/// A temp dir named after the service, removed on drop.
fn service_dir(service: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("hoist-{service}-"))
        .tempdir()
        .expect("tempdir")
}

/// A free TCP port on 127.0.0.1 (the kernel's choice; released for the
/// service to bind).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Polls `ready` until it returns true, failing with `what` and the output of
/// `diagnose` after the deadline. `ready` may return `Err` to fail at once
/// (e.g. the service exited).
pub fn wait_until(
    what: &str,
    deadline: Duration,
    mut ready: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if ready()? {
            return Ok(());
        }
        if start.elapsed() > deadline {
            return Err(format!("{what}: not ready after {deadline:?}"));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The process ids whose parent is `parent` (from `/proc/*/stat`).
pub fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// Writes `bytes` to a new file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(bytes).expect("write private file");
}

/// A random password of letters and digits.
pub fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// A service's process, started in the foreground so the harness owns it.
struct Proc {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with output to `log`, with a clean environment for
    /// systemd (no NOTIFY_SOCKET), and with the kernel killing it if the test
    /// thread that started it goes away without dropping it.
    fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("service log");
        let err = out.try_clone().expect("service log");
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS");
        // SAFETY: prctl is async-signal-safe; nothing else runs in pre_exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name,
            child: Some(child),
            log,
        }
    }

    /// Spawns like [`Proc::spawn`], then waits until `ready` says the
    /// service answers; panics with its log if it exits or never does.
    fn start_ready(
        name: &'static str,
        cmd: Command,
        log: PathBuf,
        mut ready: impl FnMut() -> bool,
    ) -> Proc {
        let mut proc = Proc::spawn(name, cmd, log);
        let res = wait_until(name, READY_DEADLINE, || {
            proc.alive()?;
            Ok(ready())
        });
        if let Err(e) = res {
            panic!("{e}\n{}", proc.log_text());
        }
        proc
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Err (with the log) if the process has exited.
    fn alive(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Err(format!("{} is not running", self.name));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}):\n{}",
                self.name,
                self.log_text()
            )),
            Err(e) => Err(format!("{}: wait: {e}", self.name)),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait (SIGKILL after a deadline so a test never hangs).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid, which is not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if start.elapsed() > Duration::from_secs(60) => {
                    eprintln!("{} ignored SIGTERM for 60s; killing it", self.name);
                    let _ = child.kill(); // already exiting or gone: nothing to report
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// SIGKILL and reap: a crash, for tests of failure handling.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // an already exited child is what we want
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Output of a command as text, for assertions.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// ---------------------------------------------------------------- MariaDB

/// A MariaDB server with its own data directory, on a free 127.0.0.1 port
/// and a unix socket, whose `root` account has a random password.
pub struct MariaDb {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The server's unix socket.
    pub socket: PathBuf,
    /// The administrative account (`root`, reachable as root@localhost and
    /// root@127.0.0.1).
    pub admin_user: String,
    /// A 0600 file holding the admin password (no trailing newline).
    pub admin_password_file: PathBuf,
    /// A 0600 client option file for the admin over TCP, for
    /// `mariadb --defaults-extra-file=...`.
    pub admin_defaults_file: PathBuf,
    /// The `mariadb` (or `mysql`) client.
    pub client: PathBuf,
    /// The `mariadb-dump` (or `mysqldump`) program.
    pub dump: PathBuf,
    server: PathBuf,
    datadir: PathBuf,
    /// Server options beyond the common ones (e.g. [`MARIADB_UNSYNCED`]).
    extra: &'static [&'static str],
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

/// Keeps the server small: the defaults want a 100 MB redo log per test.
const MARIADB_SIZING: [&str; 2] = ["--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M"];

/// No fsync anywhere: a commit is in the OS's cache only. For servers
/// whose data is thrown away and that no test crashes (SIGKILL keeps the
/// OS's cache, so even a killed server loses nothing; only a power cut
/// would).
const MARIADB_UNSYNCED: &[&str] = &[
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-flush-method=nosync",
    "--skip-innodb-doublewrite",
    "--skip-sync-frm",
];

impl MariaDb {
    /// Initialises a data directory, starts the server, waits until it
    /// accepts connections and sets the admin password. `None`: skipped.
    pub fn start() -> Option<MariaDb> {
        Self::start_with(&[])
    }

    /// Like [`MariaDb::start`], but the server never syncs to disk (much
    /// faster DDL on a slow disk): for servers a test binary shares, whose
    /// data nothing needs after the run.
    pub fn start_unsynced() -> Option<MariaDb> {
        Self::start_with(MARIADB_UNSYNCED)
    }

    fn start_with(extra: &'static [&'static str]) -> Option<MariaDb> {
        let progs = programs_or_skip(
            "MariaDB",
            &[
                &["mariadbd", "mysqld"],
                &["mariadb-install-db", "mysql_install_db"],
                &["mariadb", "mysql"],
                &["mariadb-dump", "mysqldump"],
            ],
        )?;
        let [server, install, client, dump] = <[PathBuf; 4]>::try_from(progs).ok()?;
        let dir = service_dir("mariadb");
        let datadir = dir.path().join("data");
        // Its own tmpdir: bootstraps running at once collide in /tmp.
        let tmpdir = dir.path().join("tmp");
        std::fs::create_dir(&tmpdir).expect("mariadb tmpdir");
        // `normal`: root@localhost without unix_socket auth, so the test
        // can give it a password; the test DB is not wanted.
        let out = Command::new(&install)
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", datadir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .args(MARIADB_SIZING)
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db: {}", text(&out));
        let password = random_password();
        let admin_password_file = dir.path().join("admin.password");
        write_private(&admin_password_file, password.as_bytes());
        let mut db = MariaDb {
            port: free_port(),
            socket: dir.path().join("mysqld.sock"),
            admin_user: "root".into(),
            admin_password_file,
            admin_defaults_file: dir.path().join("admin.cnf"),
            client,
            dump,
            server,
            datadir,
            extra,
            proc: None,
            dir,
        };
        db.launch();
        // Passwordless root until now: set it over the socket, the SQL on
        // stdin (never a command line).
        let sql = format!(
            "ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';\n\
             ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}';\n\
             DROP USER IF EXISTS 'root'@'::1';\n"
        );
        let out = db.run_client(&["--no-defaults", "--user=root", &db.socket_arg()], &sql);
        assert!(out.status.success(), "set admin password: {}", text(&out));
        write_private(
            &db.admin_defaults_file,
            format!(
                "[client]\nuser=root\npassword={password}\nhost=127.0.0.1\nport={}\nprotocol=TCP\n",
                db.port
            )
            .as_bytes(),
        );
        Some(db)
    }

    fn socket_arg(&self) -> String {
        format!("--socket={}", self.socket.display())
    }

    /// Starts `mariadbd` on the existing data directory and waits for the
    /// server's greeting on its TCP port.
    fn launch(&mut self) {
        let mut cmd = Command::new(&self.server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.datadir.display()))
            .arg(self.socket_arg())
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg("--user=root")
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mysqld.pid").display()
            ))
            .arg(format!(
                "--tmpdir={}",
                self.dir.path().join("tmp").display()
            ))
            .arg("--skip-name-resolve")
            .arg("--skip-log-bin")
            .args(MARIADB_SIZING)
            .args(self.extra);
        let port = self.port;
        let proc = Proc::start_ready("mariadbd", cmd, self.dir.path().join("mysqld.log"), || {
            mysql_greeting(port)
        });
        self.proc = Some(proc);
    }

    /// Kills the server with SIGKILL (a crash), leaving the data directory.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Kills the server if running and starts it again on the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// The server's process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(Proc::pid)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mysqld.log")).unwrap_or_default()
    }

    fn run_client(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(Command::new(&self.client).args(args), stdin.as_bytes())
    }

    /// Runs `sql` as the admin (credentials from the 0600 option file) and
    /// returns its batch output; panics on failure.
    pub fn sql(&self, sql: &str) -> String {
        let out = self.sql_as(&self.admin_defaults_file, None, sql);
        assert!(out.status.success(), "admin SQL {sql:?}: {}", text(&out));
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs `sql` with the client option file `defaults` (0600, with user
    /// and password) in database `db`, in batch mode without column names.
    pub fn sql_as(&self, defaults: &Path, db: Option<&str>, sql: &str) -> Output {
        let mut cmd = Command::new(&self.client);
        cmd.arg(format!("--defaults-extra-file={}", defaults.display()))
            .args(["--batch", "--skip-column-names"]);
        if let Some(db) = db {
            cmd.arg(format!("--database={db}"));
        }
        run_with_stdin(&mut cmd, sql.as_bytes())
    }

    /// Writes a 0600 client option file for `user` over TCP into the
    /// server's temp dir and returns its path.
    pub fn defaults_file_for(&self, user: &str, password: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("{user}-{}.cnf", random_password()));
        write_private(
            &path,
            format!(
                "[client]\nuser={user}\npassword={password}\nhost=127.0.0.1\nport={}\nprotocol=TCP\n",
                self.port
            )
            .as_bytes(),
        );
        path
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }
}

/// Whether a MySQL-protocol server greets on 127.0.0.1:`port`: the first
/// packet's payload starts with protocol version 10 (an error packet, 0xff,
/// means it is up but refusing, e.g. still starting).
fn mysql_greeting(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = [0u8; 5];
    let ok = s.read_exact(&mut head).is_ok() && head[4] == 10;
    let _ = s.shutdown(Shutdown::Both);
    ok
}

fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    // A thread feeds stdin so a large input cannot deadlock against output.
    let feeder = std::thread::spawn(move || input.write_all(&bytes));
    let out = child.wait_with_output().expect("wait");
    // The child may exit before reading everything; its status says why.
    let _ = feeder.join();
    out
}

// ---------------------------------------------------------------- php-fpm

/// php-fpm with one static pool, listening on a unix socket, running as root.
pub struct PhpFpm {
    /// The pool's FastCGI socket (for nginx: `fastcgi_pass unix:<this>`).
    pub socket: PathBuf,
    proc: Option<Proc>,
    program: PathBuf,
    conf: PathBuf,
    dir: tempfile::TempDir,
}

impl PhpFpm {
    /// Starts php-fpm and waits until its socket accepts a connection.
    /// `None`: skipped.
    pub fn start() -> Option<PhpFpm> {
        let (fpm, dir) = program_and_dir("php-fpm", &["php-fpm"])?;
        let socket = dir.path().join("php-fpm.sock");
        let conf = dir.path().join("php-fpm.conf");
        std::fs::write(
            &conf,
            format!(
                "[global]\n\
                 pid = {pid}\n\
                 error_log = {log}\n\
                 daemonize = no\n\
                 [hoist]\n\
                 user = root\n\
                 group = root\n\
                 listen = {socket}\n\
                 listen.mode = 0600\n\
                 pm = static\n\
                 pm.max_children = 2\n\
                 catch_workers_output = yes\n",
                pid = dir.path().join("php-fpm.pid").display(),
                log = dir.path().join("php-fpm.error.log").display(),
                socket = socket.display(),
            ),
        )
        .expect("write php-fpm.conf");
        let mut fpm = PhpFpm {
            socket,
            proc: None,
            program: fpm,
            conf,
            dir,
        };
        fpm.launch();
        Some(fpm)
    }

    /// Starts php-fpm on its configuration and waits for its socket.
    fn launch(&mut self) {
        let mut cmd = Command::new(&self.program);
        // -R: allow running the pool as root; -F: stay in the foreground.
        cmd.arg("-R").arg("-F").arg("-y").arg(&self.conf);
        let socket = self.socket.clone();
        // The socket of a killed php-fpm stays: ready once it accepts.
        self.proc = Some(Proc::start_ready(
            "php-fpm",
            cmd,
            self.dir.path().join("php-fpm.out.log"),
            || UnixStream::connect(&socket).is_ok(),
        ));
    }

    /// Stops php-fpm (SIGTERM: the master takes its workers down, which
    /// SIGKILL would leave serving): nginx then answers 502.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// Starts php-fpm again after [`PhpFpm::stop`].
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

// ---------------------------------------------------------------- nginx

/// nginx with its prefix, pid, logs and temp paths in a temp dir, a default
/// server on a free 127.0.0.1 port answering 404, and `conf_dir` included
/// for hoist's vhosts.
pub struct Nginx {
    /// The port every server block listens on, on 127.0.0.1.
    pub port: u16,
    /// Where vhosts go: `nginx.conf` includes `conf_dir/*.conf`.
    pub conf_dir: PathBuf,
    /// The main configuration file.
    pub conf: PathBuf,
    /// The prefix (`-p`): logs and temp files live under it.
    pub prefix: PathBuf,
    program: PathBuf,
    /// For an nginx tests share: a script that runs the `test`/`reload`
    /// hoist is given again when another test's vhost vanished under it
    /// (see [`Nginx::run_parsing`]).
    retrying: Option<PathBuf>,
    proc: Proc,
    dir: tempfile::TempDir,
}

/// Runs its arguments (an nginx command that parses the configuration) and
/// runs them again, a few times at most, when they fail only because a
/// file vanished while nginx read the included directories: on an nginx
/// that tests share, another test removing its vhost is no fault of this
/// test's configuration. hoist itself never retries (a test failing for a
/// file of someone else fails the step, as it should).
const RETRY_VANISHED: &str = r#"#!/bin/sh
i=0
while :; do
  out=$("$@" 2>&1); rc=$?
  i=$((i + 1))
  case "$rc:$out" in
    0:*) break ;;
    *"failed (2: No such file or directory)"*) [ "$i" -lt 5 ] || break ;;
    *) break ;;
  esac
done
printf '%s
' "$out" >&2
exit "$rc"
"#;

impl Nginx {
    /// Writes the configuration, starts nginx in the foreground and waits
    /// until its default server answers. `None`: skipped.
    pub fn start() -> Option<Nginx> {
        Self::start_including("*.conf")
    }

    /// Like [`Nginx::start`], but `nginx.conf` includes the vhosts of every
    /// directory directly under `conf_dir` (`conf_dir/*/*.conf`) rather
    /// than `conf_dir` itself: tests sharing one nginx each give hoist a
    /// `conf_dir` of their own there (and listen on a port of their own).
    pub fn start_nested() -> Option<Nginx> {
        Self::start_including("*/*.conf")
    }

    fn start_including(pattern: &str) -> Option<Nginx> {
        let (program, dir) = program_and_dir("nginx", &["nginx"])?;
        let prefix = dir.path().join("prefix");
        let conf_dir = dir.path().join("hoist.d");
        for d in [prefix.join("logs"), prefix.join("tmp"), conf_dir.clone()] {
            std::fs::create_dir_all(&d).expect("nginx dirs");
        }
        let port = free_port();
        let conf = prefix.join("nginx.conf");
        let p = prefix.display();
        // Workers as root: the temp dirs are 0700 root, and php-fpm's socket
        // is 0600 root, which the default worker user could not reach.
        let mime = if Path::new("/etc/nginx/mime.types").is_file() {
            "include /etc/nginx/mime.types;"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "user root root;\n\
                 worker_processes 1;\n\
                 pid {p}/nginx.pid;\n\
                 error_log {p}/logs/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n\
                 access_log {p}/logs/access.log;\n\
                 client_body_temp_path {p}/tmp/body;\n\
                 proxy_temp_path {p}/tmp/proxy;\n\
                 fastcgi_temp_path {p}/tmp/fastcgi;\n\
                 uwsgi_temp_path {p}/tmp/uwsgi;\n\
                 scgi_temp_path {p}/tmp/scgi;\n\
                 {mime}\n\
                 server {{ listen 127.0.0.1:{port} default_server; return 404; }}\n\
                 include {conf_dir}/{pattern};\n\
                 }}\n",
                conf_dir = conf_dir.display(),
            ),
        )
        .expect("write nginx.conf");
        let mut cmd = Command::new(&program);
        cmd.args(Self::base_args(&prefix, &conf))
            .args(["-g", "daemon off;"]);
        let proc = Proc::start_ready("nginx", cmd, dir.path().join("nginx.out.log"), || {
            http_get(port, "readiness.invalid", "/").is_ok_and(|r| r.status == 404)
        });
        let retrying = (pattern != "*.conf").then(|| {
            use std::os::unix::fs::PermissionsExt;
            let script = dir.path().join("retry-vanished.sh");
            std::fs::write(&script, RETRY_VANISHED).expect("write the retry script");
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .expect("make the retry script executable");
            script
        });
        Some(Nginx {
            port,
            conf_dir,
            conf,
            prefix,
            program,
            retrying,
            proc,
            dir,
        })
    }

    /// `-p`, `-c` and `-e`: the last keeps nginx off /var/log/nginx even
    /// before it has read the configuration.
    fn base_args(prefix: &Path, conf: &Path) -> Vec<String> {
        vec![
            "-p".into(),
            format!("{}/", prefix.display()),
            "-c".into(),
            conf.display().to_string(),
            "-e".into(),
            prefix.join("logs/error.log").display().to_string(),
        ]
    }

    /// The command `nginx -t` for this instance (the `test` of a web server).
    pub fn test_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(Self::base_args(&self.prefix, &self.conf))
            .arg("-t");
        cmd
    }

    /// The command `nginx -s reload` for this instance.
    pub fn reload_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(Self::base_args(&self.prefix, &self.conf))
            .args(["-s", "reload"]);
        cmd
    }

    /// `nginx -t` (or with `-s reload`, when `reload`) for this instance, as
    /// the one line a web server's `test`/`reload` in `hoist.yaml` holds
    /// (the temporary paths have no spaces); on a shared nginx, through
    /// [`RETRY_VANISHED`].
    pub fn command_line(&self, reload: bool) -> String {
        let mut words: Vec<String> = self
            .retrying
            .iter()
            .map(|s| s.display().to_string())
            .collect();
        words.push(self.program.display().to_string());
        words.extend(Self::base_args(&self.prefix, &self.conf));
        if reload {
            words.extend(["-s".to_string(), "reload".to_string()]);
        } else {
            words.push("-t".into());
        }
        words.join(" ")
    }

    /// Runs `nginx -t`; Err with its output when the configuration is bad.
    pub fn test(&self) -> Result<(), String> {
        let out = self.run_parsing(self.test_command());
        if out.status.success() {
            Ok(())
        } else {
            Err(text(&out))
        }
    }

    /// Runs a command that parses the configuration. Tests share this
    /// nginx, each with its own directory of vhosts that its hoist changes
    /// as it goes: a vhost another test removed between nginx's listing of
    /// the directories and its opening of the file fails the parse. Such a
    /// vanished file is no fault of the configuration: the command is run
    /// again (a few times at most), and anything else is returned at once.
    fn run_parsing(&self, mut cmd: Command) -> std::process::Output {
        let mut tries = 0;
        loop {
            let out = cmd.output().expect("run nginx");
            let vanished = !out.status.success()
                && text(&out).contains("failed (2: No such file or directory)")
                && text(&out).contains(&self.conf_dir.display().to_string());
            tries += 1;
            if !vanished || tries == 5 {
                return out;
            }
        }
    }

    /// Tests the configuration, then reloads; panics if either fails.
    /// Returns once every worker of the old configuration has exited: until
    /// then an old worker may still accept a connection and answer with the
    /// old configuration.
    pub fn reload(&self) {
        if let Err(e) = self.test() {
            panic!("nginx -t failed: {e}");
        }
        let master = self.pid().expect("nginx is running");
        let old = children(master);
        let out = self.run_parsing(self.reload_command());
        assert!(out.status.success(), "nginx -s reload: {}", text(&out));
        wait_until("nginx reload", Duration::from_secs(30), || {
            let now = children(master);
            Ok(!now.is_empty() && now.iter().all(|p| !old.contains(p)))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.error_log()));
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }

    /// nginx's process id (the master).
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
}

// ---------------------------------------------------------------- HTTP

/// A response from [`http_get`].
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines, as sent.
    pub headers: Vec<String>,
    /// The body (the connection is closed by the server after it).
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.0 GET to 127.0.0.1:`port` with a Host header; reads to
/// the end of the connection. Chunked encoding does not occur in HTTP/1.0.
pub fn http_get(port: u16, host: &str, path: &str) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok(Response {
        status,
        headers: lines.map(str::to_owned).collect(),
        body: raw[split + 4..].to_vec(),
    })
}

/// Polls GET until `want` accepts the response (e.g. after a reload), and
/// returns that response; panics with the last one after the deadline.
pub fn wait_for_http(
    port: u16,
    host: &str,
    path: &str,
    mut want: impl FnMut(&Response) -> bool,
) -> Response {
    let mut last = None;
    let res = wait_until(&format!("GET http://{host}{path}"), READY_DEADLINE, || {
        let r = http_get(port, host, path);
        let ok = r.as_ref().is_ok_and(&mut want);
        last = Some(r);
        Ok(ok)
    });
    match (res, last) {
        (Ok(()), Some(Ok(r))) => r,
        (e, last) => panic!("{e:?}; last response: {last:?}"),
    }
}

/// The `local` server of a `hoist.yaml` (under `servers:`), with its root
/// at `root` and its sites served by `nginx` through `fpm`, from vhosts in
/// `conf_dir` listening on `port`: the one place the tests say how hoist
/// drives the services started here.
pub fn local_nginx_server_yaml(
    root: &str,
    nginx: &Nginx,
    fpm: &PhpFpm,
    conf_dir: &Path,
    port: u16,
) -> String {
    format!(
        "  local:\n    \
             kind: local\n    \
             root: {root}\n    \
             web:\n      \
               kind: nginx\n      \
               conf_dir: {conf_dir}\n      \
               listen: 127.0.0.1:{port}\n      \
               php_fpm: unix:{socket}\n      \
               test: {test}\n      \
               reload: {reload}\n      \
               check_url: http://127.0.0.1:{port}\n",
        conf_dir = conf_dir.display(),
        socket = fpm.socket.display(),
        test = nginx.command_line(false),
        reload = nginx.command_line(true),
    )
}

/// A `mysql` database server `name` of a `hoist.yaml` (under
/// `databases:`) on `db`, its admin password from a file.
pub fn mysql_database_yaml(name: &str, db: &MariaDb) -> String {
    format!(
        "  {name}:\n    \
             kind: mysql\n    \
             host: 127.0.0.1\n    \
             port: {port}\n    \
             admin_user: {admin}\n    \
             admin_password_file: {pw}\n",
        port = db.port,
        admin = db.admin_user,
        pw = db.admin_password_file.display(),
    )
}

/// A whole `hoist.yaml` for the example's platforms on the services: the
/// local server on `nginx` (its own `conf_dir` and port), database server
/// `maria` on `db`, and a health check expecting the example's
/// `site: NAME` page.
pub fn mysql_nginx_hoist_yaml(db: &MariaDb, fpm: &PhpFpm, nginx: &Nginx) -> String {
    format!(
        "servers:\n{server}databases:\n{database}\
         defaults: {{ server: local, database: maria }}\n\
         {EXAMPLE_HEALTH}\
         policy: {{ parallel: 2 }}\n\
         status: {{ commit: false }}\n",
        server = local_nginx_server_yaml(".hoist-host", nginx, fpm, &nginx.conf_dir, nginx.port),
        database = mysql_database_yaml("maria", db),
    )
}

/// The health check the example's `index.php` passes: 200 with its name.
pub const EXAMPLE_HEALTH: &str =
    "health: { path: /, expect_status: 200, expect_text: \"site: \", timeout_s: 20 }\n";

/// A 4 MiB tmpfs mounted on `dir`, unmounted on drop.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts it (we must be root); Err with mount's message otherwise.
    pub fn mount(dir: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Tmpfs {
    /// [`Tmpfs::mount`], or `None` and a note that the test is skipped
    /// (a failure under `HOIST_REQUIRE_SERVICES`).
    pub fn mount_or_skip(dir: &Path) -> Option<Tmpfs> {
        match Tmpfs::mount(dir) {
            Ok(t) => Some(t),
            Err(e) => {
                assert!(
                    !services_required(),
                    "cannot mount a small tmpfs for the full disk: {e}"
                );
                eprintln!("SKIPPED: cannot mount a small tmpfs (we must be root): {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let out = std::process::Command::new("umount").arg(&self.0).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("cannot unmount {}: {out:?}", self.0.display());
        }
    }
}
