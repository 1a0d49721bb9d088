//! The SSH host layer against a real OpenSSH server on loopback: byte-exact
//! transfers, atomic operations, tar streams checked with GNU tar, quoting
//! of hostile arguments, confinement to the root, the server lock, host
//! key checking, unreachable hosts, and secrets kept off command lines.
//! The "remote" host is this machine, so the tests check its files
//! directly.

mod services;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hoist::inventory::ServerConfig;
use hoist::ssh::{EntryKind, RemotePath, SshError, SshHost, SshTarget};
use services::{wait_until, Sshd};

/// A running sshd, a root directory for the server (its path has a space)
/// and the server's declaration.
struct Fixture {
    sshd: Sshd,
    root_dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn start() -> Option<Fixture> {
        Some(Fixture::with(Sshd::start()?))
    }

    fn with(sshd: Sshd) -> Fixture {
        let root_dir = tempfile::Builder::new()
            .prefix("hoist-ssh-root-")
            .tempdir()
            .unwrap();
        let root = root_dir.path().join("srv root");
        std::fs::create_dir(&root).unwrap();
        Fixture {
            sshd,
            root_dir,
            root,
        }
    }

    /// The `kind: ssh` declaration, with known_hosts and identity given
    /// relative to the "inventory" (the sshd's dir).
    fn config(&self, port: u16, known_hosts: &str) -> ServerConfig {
        ServerConfig::Ssh {
            host: self.sshd.host.clone(),
            port,
            user: Some(self.sshd.user.clone()),
            root: self.root.clone(),
            known_hosts: known_hosts.into(),
            identity_file: Some("client keys/id_ed25519".into()),
            suspend: None,
            web: Default::default(),
        }
    }

    fn target_with(&self, port: u16, known_hosts: &str) -> SshTarget {
        SshTarget::from_config("web2", &self.config(port, known_hosts), self.sshd.dir()).unwrap()
    }

    fn connect(&self) -> SshHost {
        let t = self.target_with(self.sshd.port, "client keys/known_hosts");
        SshHost::connect(t).unwrap_or_else(|e| panic!("{e}\n{}", self.sshd.log()))
    }

    fn label(&self) -> String {
        format!("server web2 (root@127.0.0.1:{})", self.sshd.port)
    }

    fn remote(&self, rel: &str) -> RemotePath {
        RemotePath::new(self.root.to_str().unwrap())
            .unwrap()
            .join(rel)
            .unwrap()
    }
}

/// Every byte value, twice, in a shuffled-looking order.
fn all_bytes() -> Vec<u8> {
    (0..512u32).map(|i| (i * 97 % 256) as u8).collect()
}

#[test]
fn writes_and_reads_are_byte_exact_and_atomic() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    let name = "it's a \"quoted\" name $x.bin";
    let path = f.remote(name);
    let data = all_bytes();
    host.write_atomic(&path, &data, 0o640).unwrap();
    assert_eq!(host.read(&path).unwrap(), data);
    let local = f.root.join(name);
    assert_eq!(std::fs::read(&local).unwrap(), data);
    assert_eq!(
        std::fs::metadata(&local).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Replaced whole, and no staging file left beside it.
    host.write_atomic(&path, b"second\n", 0o600).unwrap();
    assert_eq!(host.read(&path).unwrap(), b"second\n");
    let entries = host
        .list_dir(&RemotePath::new(f.root.to_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].name, name);
    assert_eq!(entries[0].kind, EntryKind::File);

    // Empty content, a missing file, a missing parent.
    host.write_atomic(&f.remote("empty"), b"", 0o600).unwrap();
    assert_eq!(host.read(&f.remote("empty")).unwrap(), b"");
    let e = host.read(&f.remote("missing")).unwrap_err();
    assert!(matches!(e, SshError::NotFound { .. }), "{e}");
    assert!(e.to_string().starts_with(&f.label()), "{e}");
    let e = host
        .write_atomic(&f.remote("no/such/dir/f"), b"x", 0o600)
        .unwrap_err();
    assert!(matches!(e, SshError::NotFound { .. }), "{e}");
}

#[test]
fn a_cut_stream_leaves_the_old_file() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    let path = f.remote("settings.php");
    host.write_atomic(&path, b"old", 0o600).unwrap();
    // Claims 100 bytes, delivers 3: the remote side sees the stream end early.
    let mut short: &[u8] = b"new";
    let e = host
        .write_atomic_from(&path, &mut short, 100, 0o600)
        .unwrap_err();
    assert!(e.to_string().contains("received 3 of 100 bytes"), "{e}");
    assert_eq!(std::fs::read(f.root.join("settings.php")).unwrap(), b"old");
    assert_eq!(
        std::fs::read_dir(&f.root).unwrap().count(),
        1,
        "a staging file was left"
    );
}

#[test]
fn many_operations_share_one_connection() {
    let Some(f) = Fixture::start() else { return };
    let host = std::sync::Arc::new(f.connect());
    // More threads than sessions per connection: they queue for a slot.
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let host = host.clone();
            let path = f.remote(&format!("f{i}"));
            std::thread::spawn(move || {
                for round in 0..3 {
                    let data = format!("{i}-{round}").into_bytes();
                    host.write_atomic(&path, &data, 0o644).unwrap();
                    assert_eq!(host.read(&path).unwrap(), data);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = f.sshd.log();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        1,
        "one authentication expected:\n{log}"
    );
}

/// type, mode, and content or link target of every entry under `dir`.
fn tree(dir: &Path) -> BTreeMap<String, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.mode() & 0o7777;
            let entry = if m.file_type().is_symlink() {
                (
                    'l',
                    0,
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if m.is_dir() {
                todo.push(p.clone());
                ('d', mode, Vec::new())
            } else {
                ('f', mode, std::fs::read(&p).unwrap())
            };
            out.insert(rel, entry);
        }
    }
    out
}

/// A small site-like tree: binary data, odd names, an empty directory, a
/// symbolic link, an executable.
fn make_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("files/empty dir")).unwrap();
    std::fs::write(dir.join("files/all bytes.bin"), all_bytes()).unwrap();
    std::fs::write(dir.join("files/it's \"quoted\".txt"), "quoted\n").unwrap();
    std::fs::write(dir.join("run.sh"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("files/all bytes.bin", dir.join("link")).unwrap();
}

fn gnu_tar(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("tar")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let feeder = std::thread::spawn(move || input.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        services::text(&out)
    );
    out.stdout
}

#[test]
fn tar_streams_round_trip_and_gnu_tar_reads_them() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    let src = f.root_dir.path().join("source tree");
    make_tree(&src);
    let src_s = src.to_str().unwrap();
    let archive = gnu_tar(
        &[
            "--create",
            "--file=-",
            "--directory",
            src_s,
            "--sort=name",
            ".",
        ],
        b"",
    );

    // In: the archive from GNU tar becomes a remote directory equal to src.
    let site = f.remote("platforms/p1/sites/a.example");
    host.mkdir_p(&site.parent()).unwrap();
    host.tar_in(&site, &mut archive.as_slice()).unwrap();
    let site_local = f.root.join("platforms/p1/sites/a.example");
    assert_eq!(tree(&site_local), tree(&src));

    // Out: what hoist streams, GNU tar lists as it lists its own archive,
    // and extracts to the same tree.
    let mut out = Vec::new();
    host.tar_out(&site, &mut out).unwrap();
    assert_eq!(
        gnu_tar(&["--list", "--file=-"], &out),
        gnu_tar(&["--list", "--file=-"], &archive)
    );
    let back = f.root_dir.path().join("extracted");
    std::fs::create_dir(&back).unwrap();
    gnu_tar(
        &[
            "--extract",
            "--file=-",
            "--directory",
            back.to_str().unwrap(),
        ],
        &out,
    );
    assert_eq!(tree(&back), tree(&src));

    // An existing target is refused; a cut archive leaves nothing behind.
    let e = host.tar_in(&site, &mut archive.as_slice()).unwrap_err();
    assert!(matches!(e, SshError::Exists { .. }), "{e}");
    let cut = &archive[..archive.len() / 3];
    let other = f.remote("platforms/p1/sites/b.example");
    let e = host.tar_in(&other, &mut &cut[..]).unwrap_err();
    assert!(e.to_string().contains("tar in"), "{e}");
    let left: Vec<_> = std::fs::read_dir(f.root.join("platforms/p1/sites"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["a.example"]);
}

#[test]
fn rename_copy_remove_exists_and_list() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    let a = f.remote("a");
    make_tree(&f.root.join("a"));
    let copy = f.remote("copy of a");
    host.copy_tree(&a, &copy).unwrap();
    assert_eq!(tree(&f.root.join("copy of a")), tree(&f.root.join("a")));
    let e = host.copy_tree(&a, &copy).unwrap_err();
    assert!(
        matches!(e, SshError::Exists { ref path, .. } if path.ends_with("copy of a")),
        "{e}"
    );

    let moved = f.remote("moved");
    host.rename(&copy, &moved).unwrap();
    assert!(!host.exists(&copy).unwrap());
    assert!(host.exists(&moved).unwrap());
    let e = host.rename(&moved, &a).unwrap_err();
    assert!(matches!(e, SshError::Exists { .. }), "{e}");
    let e = host
        .rename(&f.remote("nothing"), &f.remote("x"))
        .unwrap_err();
    assert!(matches!(e, SshError::NotFound { .. }), "{e}");

    let kinds: Vec<_> = host
        .list_dir(&moved)
        .unwrap()
        .into_iter()
        .map(|e| (e.name.into_string().unwrap(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("files".into(), EntryKind::Dir),
            ("link".into(), EntryKind::Symlink),
            ("run.sh".into(), EntryKind::File)
        ]
    );

    host.remove_tree(&moved).unwrap();
    assert!(!f.root.join("moved").exists());
    host.remove_tree(&moved).unwrap(); // nothing there: fine
    let root = RemotePath::new(f.root.to_str().unwrap()).unwrap();
    assert!(
        host.remove_tree(&root).is_err(),
        "the root itself must not be removable"
    );
    assert!(f.root.is_dir());

    host.mkdir_p(&f.remote("x/y/z")).unwrap();
    assert!(f.root.join("x/y/z").is_dir());
    host.make_durable(&f.remote("x")).unwrap();
}

#[test]
fn hostile_arguments_are_passed_not_executed() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    let r = f.root.to_str().unwrap();
    let hostile = [
        format!("$(touch '{r}/p1')"),
        format!("`touch '{r}/p2'`"),
        format!("; touch '{r}/p3'"),
        format!("' ; touch '{r}/p4' ; '"),
        format!("\"; touch '{r}/p5'; \""),
        format!("x\ntouch '{r}/p6'"),
        format!("| touch '{r}/p7'"),
        "&& false".into(),
        "*".into(),
        "".into(),
        "-n".into(),
        "\\".into(),
        "$HOME".into(),
        "a=b".into(),
    ];
    let mut argv = vec!["printf".to_string(), "%s\\0".into()];
    argv.extend(hostile.iter().cloned());
    let out = host.exec(&argv).unwrap();
    assert!(out.success(), "{out:?}");
    let got: Vec<String> = out
        .stdout
        .split(|&b| b == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect();
    let mut want = hostile.to_vec();
    want.push(String::new()); // after the last NUL
    assert_eq!(got, want);
    let made: Vec<_> = std::fs::read_dir(&f.root).unwrap().collect();
    assert!(made.is_empty(), "an argument was executed: {made:?}");

    // A failing command is a status, not an error; stdin arrives exact.
    let out = host.exec(&["sh", "-c", "echo oops >&2; exit 7"]).unwrap();
    assert_eq!((out.status, out.stderr.trim()), (7, "oops"));
    let out = host.exec_stdin(&["cat"], &all_bytes()).unwrap();
    assert_eq!(out.stdout, all_bytes());
}

#[test]
fn paths_outside_the_root_are_refused() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    assert!(RemotePath::new("/srv/../etc").is_err());
    assert!(RemotePath::new("relative/path").is_err());
    assert!(RemotePath::new("/srv/a\0b").is_err());
    let root = RemotePath::new(f.root.to_str().unwrap()).unwrap();
    assert!(root.join("../escape").is_err());
    assert!(root.join("/etc/passwd").is_err());

    // Lexically outside: refused before anything is sent.
    let outside = f.root_dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let out_path = RemotePath::new(outside.join("f").to_str().unwrap()).unwrap();
    let e = host.write_atomic(&out_path, b"x", 0o600).unwrap_err();
    assert!(matches!(e, SshError::Path { .. }), "{e}");
    assert!(e.to_string().starts_with(&f.label()), "{e}");

    // Through a symbolic link inside the root: refused by the remote side.
    std::os::unix::fs::symlink(&outside, f.root.join("link")).unwrap();
    std::fs::write(outside.join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), f.root.join("filelink")).unwrap();
    for e in [
        host.write_atomic(&f.remote("link/f"), b"x", 0o600)
            .unwrap_err(),
        host.mkdir_p(&f.remote("link/sub")).unwrap_err(),
        host.list_dir(&f.remote("link")).unwrap_err(),
        host.read(&f.remote("link/secret")).unwrap_err(),
        host.read(&f.remote("filelink")).unwrap_err(),
        host.copy_tree(&f.remote("link"), &f.remote("stolen"))
            .unwrap_err(),
        host.tar_out(&f.remote("link"), &mut Vec::new())
            .unwrap_err(),
    ] {
        assert!(
            matches!(e, SshError::Outside { .. } | SshError::NotFound { .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with(&f.label()), "{e}");
    }
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "something was written outside the root");
    assert!(!f.root.join("stolen").exists());
}

#[test]
fn the_lock_excludes_a_second_holder_until_released_or_cut() {
    let Some(f) = Fixture::start() else { return };
    assert!(f.connect().has_flock(), "this host has flock");
    check_lock(&f);
}

/// A host without `flock`: sessions get a PATH of links to every tool the
/// scripts use but flock, and locks are lock directories.
#[test]
fn the_lock_works_without_flock() {
    let bin = tempfile::Builder::new()
        .prefix("hoist-noflock-")
        .tempdir()
        .unwrap();
    for tool in [
        "sh", "cat", "cp", "mv", "rm", "mkdir", "sync", "dirname", "basename", "chmod", "tar",
        "head", "wc", "sleep", "ln", "stat", "touch", "dd", "find",
    ] {
        let real = services::find_program(&[tool]).unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
    }
    let Some(sshd) = Sshd::start_with(&format!("SetEnv PATH={}", bin.path().display())) else {
        return;
    };
    let f = Fixture::with(sshd);
    assert!(!f.connect().has_flock(), "flock should be out of reach");
    check_lock(&f);
}

/// A directory of links to every tool the remote scripts use, but flock
/// and `without`: a session PATH for a host that lacks them.
fn tools_dir(without: &[&str]) -> tempfile::TempDir {
    let bin = tempfile::Builder::new()
        .prefix("hoist-tools-")
        .tempdir()
        .unwrap();
    for tool in [
        "sh", "cat", "cp", "mv", "rm", "mkdir", "sync", "dirname", "basename", "chmod", "tar",
        "head", "wc", "sleep", "ln", "stat", "touch", "dd", "find",
    ] {
        if without.contains(&tool) {
            continue;
        }
        let real = services::find_program(&[tool]).unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
    }
    bin
}

/// A host without sh, GNU tar or another tool hoist's scripts use is
/// refused at connect with a message saying so.
#[test]
fn a_host_without_sh_or_tar_is_refused_at_connect() {
    for (without, want) in [
        (&["sh"][..], "no working POSIX sh"),
        (&["tar"][..], "lacks GNU tar"),
        // The Host seam lists trees with find.
        (&["find"][..], "lacks find"),
    ] {
        let bin = tools_dir(without);
        let Some(sshd) = Sshd::start_with(&format!("SetEnv PATH={}", bin.path().display())) else {
            return;
        };
        let f = Fixture::with(sshd);
        let e = SshHost::connect(f.target_with(f.sshd.port, "client keys/known_hosts"))
            .expect_err("must be refused");
        let msg = e.to_string();
        assert!(msg.starts_with(&f.label()) && msg.contains(want), "{msg}");
    }
}

/// A second holder is refused (at once and after a wait) until the first
/// lets go; a holder whose connection is cut loses the lock, and it is free
/// for the next one: nothing stale stays behind.
fn check_lock(f: &Fixture) {
    let first = f.connect();
    let second = f.connect(); // another connection, as another process would have
    let file = f.remote("tasks/.lock");
    let held = first.lock(&file).unwrap();

    let e = second
        .lock(&file)
        .err()
        .expect("a second holder must be refused");
    match &e {
        SshError::Locked { holder, .. } => assert!(
            holder.contains(&format!("hoist pid {}", std::process::id())),
            "{e}"
        ),
        _ => panic!("{e}"),
    }
    assert!(e.to_string().starts_with(&f.label()), "{e}");
    let e = second
        .lock_wait(&file, Duration::from_secs(1))
        .err()
        .expect("still held");
    assert!(matches!(e, SshError::LockTimeout { .. }), "{e}");

    held.release().unwrap();
    let again = second.lock(&file).unwrap();
    drop(again);

    let mut held = first.lock(&file).unwrap();
    held.check().unwrap();
    // The host knows too: a task checks it before it commits.
    first.check_locks().unwrap();
    assert!(!f.sshd.session_processes().is_empty());
    f.sshd.cut_connections();
    wait_until("the lock session ends", Duration::from_secs(60), || {
        Ok(held.check().is_err())
    })
    .unwrap();
    assert!(matches!(held.check(), Err(SshError::LockLost { .. })));
    assert!(matches!(
        first.check_locks(),
        Err(SshError::LockLost { .. })
    ));
    drop(held);
    // A lock let go is no longer asked about.
    first.check_locks().unwrap();
    let next = f.connect();
    next.lock_wait(&file, Duration::from_secs(60)).unwrap();
}

#[test]
fn a_wrong_or_unknown_host_key_is_refused() {
    let Some(f) = Fixture::start() else { return };
    let other = f.sshd.dir().join("other key");
    let other_public = f.sshd.keygen(&other);
    std::fs::write(
        f.sshd.dir().join("changed_hosts"),
        f.sshd.known_hosts_line(&other_public),
    )
    .unwrap();
    std::fs::write(f.sshd.dir().join("empty_hosts"), "").unwrap();
    for (file, words) in [
        ("changed_hosts", "REMOTE HOST IDENTIFICATION HAS CHANGED"),
        ("empty_hosts", "host key is known"),
    ] {
        let e = SshHost::connect(f.target_with(f.sshd.port, file)).expect_err("must be refused");
        assert!(matches!(e, SshError::HostKey { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with(&f.label()), "{msg}");
        assert!(msg.contains("host key verification failed"), "{msg}");
        assert!(msg.contains(words), "{msg}");
        assert!(msg.contains(file), "{msg}");
    }
    assert!(
        !f.sshd.log().contains("Accepted publickey"),
        "authenticated despite a bad host key"
    );
    // And the file of known hosts was not touched.
    assert_eq!(
        std::fs::read_to_string(f.sshd.dir().join("empty_hosts")).unwrap(),
        ""
    );
}

#[test]
fn an_unreachable_host_is_named() {
    let Some(f) = Fixture::start() else { return };
    let port = services::free_port();
    let e = SshHost::connect(f.target_with(port, "client keys/known_hosts"))
        .expect_err("nothing listens");
    assert!(matches!(e, SshError::Unreachable { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "server web2 (root@127.0.0.1:{port}): cannot reach the host"
        )),
        "{msg}"
    );
    assert!(msg.contains("Connection refused"), "{msg}");

    let mut cfg = f.config(f.sshd.port, "no such file");
    if let ServerConfig::Ssh { known_hosts, .. } = &mut cfg {
        *known_hosts = "missing/known_hosts".into();
    }
    let t = SshTarget::from_config("web2", &cfg, f.sshd.dir()).unwrap();
    let e = SshHost::connect(t).expect_err("no known_hosts");
    assert!(e.to_string().contains("missing/known_hosts"), "{e}");
}

/// Gives `secret`, then blocks until told to end: the remote side is
/// mid-operation while the test looks at every process.
struct HeldReader {
    data: Vec<u8>,
    sent: bool,
    release: mpsc::Receiver<()>,
}

impl Read for HeldReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.sent {
            self.sent = true;
            buf[..self.data.len()].copy_from_slice(&self.data);
            return Ok(self.data.len());
        }
        let _ = self.release.recv();
        Ok(0)
    }
}

/// Every process's command line and environment, and `ps` output.
fn all_command_lines() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        for f in ["cmdline", "environ"] {
            if let Ok(b) = std::fs::read(e.path().join(f)) {
                out.push(b);
            }
        }
    }
    out.push(
        Command::new("ps")
            .args(["-eww", "-o", "args"])
            .output()
            .unwrap()
            .stdout,
    );
    out
}

#[test]
fn a_secret_on_stdin_is_on_no_command_line() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    let secret = format!("pw-{}", services::random_password());
    let (tx, rx) = mpsc::channel();
    let path = f.remote("settings.php");
    let len = secret.len() as u64;
    let mut reader = HeldReader {
        data: secret.clone().into_bytes(),
        sent: false,
        release: rx,
    };
    let root = f.root.clone();
    std::thread::scope(|s| {
        let writer = s.spawn(|| host.write_atomic_from(&path, &mut reader, len, 0o600));
        // The remote side has the secret in its staging file: it is mid-write.
        wait_until(
            "the staging file holds the secret",
            Duration::from_secs(60),
            || {
                Ok(std::fs::read_dir(&root).unwrap().flatten().any(|e| {
                    e.file_name().to_string_lossy().contains("hoist-tmp")
                        && std::fs::read(e.path()).is_ok_and(|b| b == secret.as_bytes())
                }))
            },
        )
        .unwrap();
        let lines = all_command_lines();
        assert!(
            lines
                .iter()
                .any(|l| String::from_utf8_lossy(l).contains("hoist-tmp")),
            "the sampled processes miss the remote script"
        );
        for l in &lines {
            assert!(
                !String::from_utf8_lossy(l).contains(&secret),
                "the secret is on a command line: {}",
                String::from_utf8_lossy(l)
            );
        }
        tx.send(()).unwrap();
        writer.join().unwrap().unwrap();
    });
    assert_eq!(host.read(&path).unwrap(), secret.as_bytes());
    let mode = std::fs::metadata(f.root.join("settings.php"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_cut_connection_is_opened_again_once() {
    let Some(f) = Fixture::start() else { return };
    let host = f.connect();
    let path = f.remote("f");
    host.write_atomic(&path, b"before", 0o644).unwrap();
    assert!(host.master_alive());
    f.sshd.cut_connections();
    wait_until(
        "the master notices the cut",
        Duration::from_secs(60),
        || Ok(!host.master_alive()),
    )
    .unwrap();
    // Every call after it works, all on one new connection.
    for i in 0..5 {
        let data = format!("after {i}").into_bytes();
        host.write_atomic(&path, &data, 0o644).unwrap();
        assert_eq!(host.read(&path).unwrap(), data);
    }
    let log = f.sshd.log();
    assert_eq!(
        log.matches("Accepted publickey").count(),
        2,
        "expected one connection before the cut and one after:\n{log}"
    );
}
