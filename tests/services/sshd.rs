//! A real OpenSSH server for tests of `kind: ssh` servers: `/usr/sbin/sshd`
//! started as root in the foreground (`-D -e -f CONFIG`) on a free
//! 127.0.0.1 port, with its own host key, an `authorized_keys` holding a
//! client key generated for it, and everything under a temp dir. The
//! client side (identity file, known_hosts) lives under a directory whose
//! name has a space, so every path handed to `ssh` is proven to survive
//! one.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{children, free_port, programs_or_skip, service_dir, text, write_private, Proc};

/// An sshd accepting the generated client key for `root`.
pub struct Sshd {
    /// The address it listens on.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The account the client key logs into.
    pub user: String,
    /// The client's private key (0600).
    pub identity_file: PathBuf,
    /// A known_hosts file holding this server's host key, as
    /// `[127.0.0.1]:PORT ssh-ed25519 ...`.
    pub known_hosts: PathBuf,
    /// The host's public key line (`ssh-ed25519 AAAA...`).
    pub host_public_key: String,
    keygen: PathBuf,
    proc: Proc,
    /// The program and its configuration, to start it again.
    program: PathBuf,
    config: PathBuf,
    dir: tempfile::TempDir,
}

/// Whether an SSH server greets on 127.0.0.1:`port` (its first line is
/// `SSH-2.0-...`).
fn ssh_banner(port: u16) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("SSH-2.0-")
}

/// Generates an ed25519 key pair at `path` (no passphrase) and returns the
/// public key line without its comment.
pub fn keygen(program: &Path, path: &Path) -> String {
    let out = Command::new(program)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hoist-test", "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", text(&out));
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Sshd {
    /// Generates the keys, writes the configuration, starts sshd and waits
    /// until it greets. `None`: skipped (sshd, ssh or ssh-keygen missing).
    pub fn start() -> Option<Sshd> {
        Sshd::start_with("")
    }

    /// [`Sshd::start`] with `extra` lines appended to sshd_config (e.g.
    /// `SetEnv PATH=...` to take a tool away from sessions).
    pub fn start_with(extra: &str) -> Option<Sshd> {
        let progs = programs_or_skip("OpenSSH", &[&["sshd"], &["ssh"], &["ssh-keygen"]])?;
        let [sshd, _ssh, keygen_prog] = <[PathBuf; 3]>::try_from(progs).ok()?;
        let dir = service_dir("sshd");
        let d = dir.path();
        let host_key = d.join("host_ed25519_key");
        let host_public_key = keygen(&keygen_prog, &host_key);
        let client_dir = d.join("client keys");
        std::fs::create_dir(&client_dir).expect("client dir");
        let identity_file = client_dir.join("id_ed25519");
        let client_public = keygen(&keygen_prog, &identity_file);
        write_private(
            &d.join("authorized_keys"),
            format!("{client_public}\n").as_bytes(),
        );
        let port = free_port();
        let known_hosts = client_dir.join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {host_public_key}\n"),
        )
        .expect("known_hosts");
        // sshd refuses to start without its privilege separation directory
        // (normally made by systemd's RuntimeDirectory).
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 PidFile {pid}\n\
                 AuthorizedKeysFile {auth}\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PrintMotd no\n\
                 LogLevel INFO\n\
                 {extra}\n",
                host_key = host_key.display(),
                pid = d.join("sshd.pid").display(),
                auth = d.join("authorized_keys").display(),
            ),
        )
        .expect("write sshd_config");
        let proc = launch(&sshd, &config, &d.join("sshd.log"), port);
        Some(Sshd {
            host: "127.0.0.1".into(),
            port,
            user: "root".into(),
            identity_file,
            known_hosts,
            host_public_key,
            keygen: keygen_prog,
            proc,
            program: sshd,
            config,
            dir,
        })
    }

    /// A new key pair at `path`, for tests that need a key this server
    /// does not have (e.g. a swapped host key); returns the public key line.
    pub fn keygen(&self, path: &Path) -> String {
        keygen(&self.keygen, path)
    }

    /// A known_hosts line recording `public_key` for this server.
    pub fn known_hosts_line(&self, public_key: &str) -> String {
        format!("[{}]:{} {public_key}\n", self.host, self.port)
    }

    /// The temp dir of this instance.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Stops the server (SIGKILL) and cuts its connections: the host is
    /// down.
    pub fn stop(&mut self) {
        self.cut_connections();
        self.proc.kill();
    }

    /// Starts the server again, on the same port with the same keys.
    pub fn start_again(&mut self) {
        self.proc = launch(
            &self.program,
            &self.config,
            &self.dir.path().join("sshd.log"),
            self.port,
        );
    }

    /// The listener's process id.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// The per-connection sshd processes (one per client connection).
    pub fn connections(&self) -> Vec<u32> {
        self.pid().map(children).unwrap_or_default()
    }

    /// Every sshd process below the listener: per connection, the
    /// privileged monitor and its session child.
    pub fn session_processes(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut todo = self.connections();
        while let Some(pid) = todo.pop() {
            todo.extend(children(pid));
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sshd" {
                out.push(pid);
            }
        }
        out
    }

    /// Kills every connection's sshd processes (SIGKILL), leaving the
    /// commands they ran: a cut connection, for fault tests. The listener
    /// keeps running.
    pub fn cut_connections(&self) {
        for pid in self.session_processes() {
            // SAFETY: kill(2) on a pid read from /proc; at worst it is gone.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Starts sshd with `config` in the foreground and waits until it greets
/// on `port`.
fn launch(program: &Path, config: &Path, log: &Path, port: u16) -> Proc {
    let mut cmd = Command::new(program);
    cmd.arg("-D").arg("-e").arg("-f").arg(config);
    Proc::start_ready("sshd", cmd, log.to_path_buf(), || ssh_banner(port))
}
