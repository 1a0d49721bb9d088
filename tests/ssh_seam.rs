//! The Host seam over ssh: [`SshHost`] passes the same conformance checks
//! as [`LocalHost`], against a real OpenSSH server on loopback, and the
//! task journal works on it. The "remote" host is this machine, so the
//! checks look at its files directly.

mod services;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hoist::driver::host::{EntryKind, Host, HostError, HostPath, LocalHost, WriteMode};
use hoist::driver::tree::Finish;
use hoist::inventory::ServerConfig;
use hoist::ssh::{SshHost, SshTarget};
use hoist::task::{self, TaskKind, TaskResult, TaskRun, TasksDir};
use services::Sshd;

/// A running sshd and a server root for it (its path has a space).
struct Fixture {
    sshd: Sshd,
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn start() -> Option<Fixture> {
        let sshd = Sshd::start()?;
        let dir = tempfile::Builder::new()
            .prefix("hoist-seam-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("srv root");
        std::fs::create_dir(&root).unwrap();
        Some(Fixture { sshd, dir, root })
    }

    fn connect(&self) -> SshHost {
        let cfg = ServerConfig::Ssh {
            host: self.sshd.host.clone(),
            port: self.sshd.port,
            user: Some(self.sshd.user.clone()),
            root: self.root.clone(),
            known_hosts: "client keys/known_hosts".into(),
            identity_file: Some("client keys/id_ed25519".into()),
            suspend: None,
            web: Default::default(),
        };
        let t = SshTarget::from_config("web2", &cfg, self.sshd.dir()).unwrap();
        SshHost::connect(t).unwrap_or_else(|e| panic!("{e}\n{}", self.sshd.log()))
    }
}

fn p(s: &str) -> HostPath {
    HostPath::new(s).unwrap()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o777
}

/// Every byte value, twice, in a shuffled-looking order.
fn all_bytes() -> Vec<u8> {
    (0..512u32).map(|i| (i * 97 % 256) as u8).collect()
}

fn names(h: &dyn Host, dir: &str) -> Vec<(String, EntryKind)> {
    h.list(&p(dir)).unwrap()
}

/// What every [`Host`] guarantees, checked on `h`, whose root is `root`
/// on this machine.
fn conformance(h: &dyn Host, root: &Path) {
    use EntryKind::*;
    // Each write mode: the bytes, the file's mode, a missing directory
    // made, and no temporary file left beside it.
    let modes = [
        ("atomic", WriteMode::Atomic, 0o644),
        ("private", WriteMode::Private, 0o600),
        ("staged", WriteMode::Staged, 0o644),
        ("staged-private", WriteMode::StagedPrivate, 0o600),
    ];
    for (name, mode, want) in modes {
        let mut data = all_bytes();
        data.extend_from_slice(name.as_bytes());
        let f = p(&format!("w/{name}"));
        h.write(&f, &data, mode).unwrap();
        assert_eq!(h.read(&f).unwrap().unwrap(), data, "{name}");
        assert_eq!(mode_of(&root.join("w").join(name)), want, "{name}");
    }
    h.write(&p("w/atomic"), b"replaced", WriteMode::Atomic)
        .unwrap();
    assert_eq!(h.read(&p("w/atomic")).unwrap().unwrap(), b"replaced");
    let listed: Vec<String> = names(h, "w").into_iter().map(|(n, _)| n).collect();
    assert_eq!(listed, ["atomic", "private", "staged", "staged-private"]);
    assert_eq!(h.read(&p("w/none")).unwrap(), None);
    h.make_durable().unwrap();

    // A rename replaces a file; a removal is fine twice.
    h.rename(&p("w/staged"), &p("w/atomic")).unwrap();
    assert!(h
        .read(&p("w/atomic"))
        .unwrap()
        .unwrap()
        .ends_with(b"staged"));
    assert_eq!(h.kind(&p("w/staged")).unwrap(), None);
    h.remove_file(&p("w/atomic")).unwrap();
    h.remove_file(&p("w/atomic")).unwrap();
    assert!(!root.join("w/atomic").exists());

    // copy_tree: links copied as links, `except` left out at the top.
    let t = root.join("t");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    std::fs::create_dir_all(t.join("skip")).unwrap();
    std::fs::write(t.join("keep"), b"keep").unwrap();
    std::fs::write(t.join("sub/f"), b"f").unwrap();
    std::fs::write(t.join("sub/skip"), b"deeper: kept").unwrap();
    std::fs::write(t.join("skip/x"), b"x").unwrap();
    std::os::unix::fs::symlink("keep", t.join("link")).unwrap();
    h.copy_tree(&p("t"), &p("t2"), &["skip"]).unwrap();
    assert_eq!(
        names(h, "t2"),
        [
            ("keep".into(), File),
            ("link".into(), Symlink),
            ("sub".into(), Dir)
        ]
    );
    assert_eq!(
        std::fs::read_link(root.join("t2/link")).unwrap(),
        Path::new("keep")
    );
    assert_eq!(h.read(&p("t2/sub/skip")).unwrap().unwrap(), b"deeper: kept");
    assert!(h.copy_tree(&p("t"), &p("t2"), &[]).is_err(), "t2 exists");

    // remove_tree unlinks a link to a directory, never entering it.
    std::os::unix::fs::symlink(&t, root.join("t2/sub/to t")).unwrap();
    h.remove_tree(&p("t2")).unwrap();
    assert!(!root.join("t2").exists());
    assert_eq!(std::fs::read(t.join("keep")).unwrap(), b"keep");
    h.remove_tree(&p("t2")).unwrap();

    // put_tree copies a controller directory; a link in it is refused.
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("d")).unwrap();
    std::fs::write(src.path().join("a"), all_bytes()).unwrap();
    std::fs::write(src.path().join("d/b"), b"b").unwrap();
    std::fs::set_permissions(src.path().join("d/b"), PermissionsExt::from_mode(0o750)).unwrap();
    std::fs::set_permissions(src.path(), PermissionsExt::from_mode(0o755)).unwrap();
    h.put_tree(src.path(), &p("put")).unwrap();
    assert_eq!(std::fs::read(root.join("put/a")).unwrap(), all_bytes());
    assert_eq!(std::fs::read(root.join("put/d/b")).unwrap(), b"b");
    assert_eq!(mode_of(&root.join("put/d/b")), 0o750);
    assert_eq!(mode_of(&root.join("put")), 0o755);
    std::os::unix::fs::symlink("/etc", src.path().join("d/l")).unwrap();
    assert!(h.put_tree(src.path(), &p("put2")).is_err());
    assert!(!root.join("put2/d/l").exists());

    // kind and list never follow links; a missing directory lists empty.
    assert_eq!(h.kind(&p("t")).unwrap(), Some(Dir));
    assert_eq!(h.kind(&p("t/keep")).unwrap(), Some(File));
    assert_eq!(h.kind(&p("t/link")).unwrap(), Some(Symlink));
    assert_eq!(h.kind(&p("nope")).unwrap(), None);
    assert!(h.is_dir(&p("t")) && !h.is_dir(&p("t/link")));
    assert!(h.list(&p("nope")).unwrap().is_empty());

    // mkdir: parents made; private gives 0700, to an existing one too.
    h.mkdir(&p("priv/a"), true).unwrap();
    assert_eq!(mode_of(&root.join("priv/a")), 0o700);
    std::fs::set_permissions(root.join("t/sub"), PermissionsExt::from_mode(0o755)).unwrap();
    h.mkdir(&p("t/sub"), true).unwrap();
    assert_eq!(mode_of(&t.join("sub")), 0o700);
    h.mkdir(&p("pub/x"), false).unwrap();
    assert!(root.join("pub/x").is_dir());

    let (bytes, files) = h.free_space(&HostPath::root()).unwrap();
    assert!(bytes > 0);
    assert!(files.is_none_or(|f| f > 0), "{files:?}");
    h.sync_dir(&p("t")).unwrap();

    // create_new, append, link, len: the journal's operations.
    h.mkdir(&p("j"), true).unwrap();
    let rec = p("j/rec");
    h.create_new(&rec, b"first\n").unwrap();
    assert_eq!(mode_of(&root.join("j/rec")), 0o600);
    let e = h.create_new(&rec, b"again\n").unwrap_err();
    assert!(matches!(e, HostError::Io { .. }), "{e}");
    h.append(&rec, b"second\n", true).unwrap();
    h.append(&rec, b"", true).unwrap();
    h.append(&rec, b"third\n", false).unwrap();
    assert_eq!(
        h.read(&rec).unwrap().unwrap(),
        b"first\nsecond\nthird\n".to_vec()
    );
    assert!(h
        .append(&p("j/none"), b"x", true)
        .unwrap_err()
        .is_not_found());
    h.link(&rec, &p("j/rec.running")).unwrap();
    assert_eq!(
        std::fs::metadata(root.join("j/rec")).unwrap().ino(),
        std::fs::metadata(root.join("j/rec.running")).unwrap().ino()
    );
    assert!(h.link(&rec, &p("j/rec.running")).is_err());
    assert_eq!(h.len(&rec).unwrap(), 19);
    assert!(h.len(&p("j/none")).unwrap_err().is_not_found());

    // walk: the same entries, fields and order as a local walk of the
    // same tree; `only` as locally.
    let w = root.join("walk");
    std::fs::create_dir_all(w.join("files/sub")).unwrap();
    std::fs::create_dir_all(w.join("empty")).unwrap();
    std::fs::write(w.join("files/a"), b"12345").unwrap();
    std::fs::set_permissions(w.join("files/a"), PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::write(w.join("files/sub/a"), b"deeper").unwrap();
    std::fs::write(w.join(OsStr::from_bytes(b"n\xffme\nx")), b"odd").unwrap();
    std::os::unix::fs::symlink("../elsewhere", w.join("z link")).unwrap();
    let local = LocalHost::new(root.to_path_buf());
    let walked = h.walk(&p("walk"), None).unwrap();
    assert_eq!(walked, local.walk(&p("walk"), None).unwrap());
    let rels: Vec<&[u8]> = walked
        .iter()
        .map(|e| e.rel.as_os_str().as_bytes())
        .collect();
    assert_eq!(
        rels,
        [
            &b""[..],
            b"empty",
            b"files",
            b"n\xffme\nx",
            b"z link",
            b"files/a",
            b"files/sub",
            b"files/sub/a"
        ]
    );
    let a = &walked[5];
    assert_eq!((a.kind, a.size, a.mode), (File, 5, 0o640));
    assert_eq!(walked[4].target.as_deref(), Some(Path::new("../elsewhere")));
    let only = h.walk(&p("walk"), Some(OsStr::new("files"))).unwrap();
    assert_eq!(
        only,
        local.walk(&p("walk"), Some(OsStr::new("files"))).unwrap()
    );
    assert_eq!(only.len(), 2, "{only:?}");
    assert!(
        h.walk(&p("walk/z link"), None).is_err(),
        "a link is no tree"
    );

    // open_in streams a regular file and refuses a link.
    let mut o = h.open_in(&p("walk"), Path::new("files/a")).unwrap();
    assert_eq!(o.len, 5);
    let mut got = Vec::new();
    o.read.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"12345");
    assert!(h.open_in(&p("walk"), Path::new("z link")).is_err());
    assert!(h
        .open_in(&p("walk"), Path::new("none"))
        .err()
        .expect("missing")
        .is_not_found());
    assert!(h.open_in(&p("walk"), Path::new("../t/keep")).is_err());
    // Dropped unread: nothing hangs, and the next call works.
    drop(h.open_in(&p("put"), Path::new("a")).unwrap());

    // create_in: a new 0600 file, given its mode and time by finish.
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let mut wr = h.create_in(&p("walk"), Path::new("files/new")).unwrap();
    assert_eq!(mode_of(&w.join("files/new")), 0o600);
    wr.write_all(&big).unwrap();
    wr.finish(Finish {
        mode: Some(0o640),
        mtime: Some(1_600_000_000),
        synced: true,
    })
    .unwrap();
    assert_eq!(std::fs::read(w.join("files/new")).unwrap(), big);
    let m = std::fs::metadata(w.join("files/new")).unwrap();
    assert_eq!((m.mode() & 0o777, m.mtime()), (0o640, 1_600_000_000));
    assert!(h.create_in(&p("walk"), Path::new("files/new")).is_err());
    assert!(h.create_in(&p("walk"), Path::new("z link")).is_err());
    // Dropped without finish: left as far as it was written.
    let mut wr = h.create_in(&p("walk"), Path::new("files/cut")).unwrap();
    wr.write_all(b"part").unwrap();
    drop(wr);
    assert_eq!(std::fs::read(w.join("files/cut")).unwrap(), b"part");

    // mkdir_in, symlink_in, set_dir_meta.
    h.mkdir_in(&p("walk"), Path::new("nd")).unwrap();
    assert_eq!(mode_of(&w.join("nd")), 0o700);
    assert!(h.mkdir_in(&p("walk"), Path::new("nd")).is_err());
    h.symlink_in(&p("walk"), Path::new("nd/l"), Path::new("../files/a"))
        .unwrap();
    assert_eq!(
        std::fs::read_link(w.join("nd/l")).unwrap(),
        Path::new("../files/a")
    );
    h.set_dir_meta(&p("walk"), Path::new("nd"), 0o750, Some(1_500_000_000))
        .unwrap();
    let m = std::fs::metadata(w.join("nd")).unwrap();
    assert_eq!((m.mode() & 0o777, m.mtime()), (0o750, 1_500_000_000));
    h.make_durable().unwrap();

    // The lock refuses a second holder until the first lets go.
    let held = h.lock().unwrap();
    let e = h.lock().unwrap_err();
    assert!(matches!(e, HostError::Locked(_)), "{e}");
    assert!(e.to_string().contains("another hoist"), "{e}");
    drop(held);
    drop(h.lock().unwrap());
}

#[test]
fn a_local_host_passes_the_conformance_checks() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("srv root");
    std::fs::create_dir(&root).unwrap();
    conformance(&LocalHost::new(root.clone()), &root);
}

#[test]
fn an_ssh_host_passes_the_conformance_checks() {
    let Some(f) = Fixture::start() else { return };
    let h = f.connect();
    conformance(&h, &f.root);
    assert!(Host::label(&h).ends_with(&format!(":{}", f.root.display())));
    assert_eq!(
        h.display(&p("tasks/x")),
        f.root.join("tasks/x").display().to_string()
    );
}

/// A local hoist and one over ssh on the same root exclude each other:
/// they take the same lock file.
#[test]
fn a_local_and_an_ssh_holder_exclude_each_other() {
    let Some(f) = Fixture::start() else { return };
    let h = f.connect();
    let local = LocalHost::new(f.root.clone());
    let held = local.lock().unwrap();
    assert!(matches!(Host::lock(&h), Err(HostError::Locked(_))));
    drop(held);
    let held = Host::lock(&h).unwrap();
    assert!(matches!(local.lock(), Err(HostError::Locked(_))));
    drop(held);
    local.lock().unwrap();
}

/// Over ssh, nothing is written or read through a symbolic link that
/// leads out of the root: the remote side refuses it.
#[test]
fn an_ssh_host_refuses_paths_through_a_link_out_of_the_root() {
    let Some(f) = Fixture::start() else { return };
    let ssh = f.connect();
    // Through the trait: SshHost's own methods of these names differ.
    let h: &dyn Host = &ssh;
    let outside = f.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink(&outside, f.root.join("esc")).unwrap();
    let esc = p("esc");
    let refused: Vec<(&str, Result<(), HostError>)> = vec![
        ("read", h.read(&p("esc/secret")).map(drop)),
        (
            "write",
            h.write(&p("esc/f"), b"x", WriteMode::Atomic).map(drop),
        ),
        ("create_new", h.create_new(&p("esc/f"), b"x")),
        ("append", h.append(&p("esc/secret"), b"x", true)),
        ("mkdir", h.mkdir(&p("esc/d"), false)),
        ("remove_file", h.remove_file(&p("esc/secret"))),
        ("remove_tree", h.remove_tree(&p("esc/secret"))),
        ("walk", h.walk(&esc, None).map(drop)),
        ("open_in", h.open_in(&esc, Path::new("secret")).map(drop)),
        ("create_in", h.create_in(&esc, Path::new("f")).map(drop)),
        ("mkdir_in", h.mkdir_in(&esc, Path::new("d"))),
        (
            "symlink_in",
            h.symlink_in(&esc, Path::new("l"), Path::new("x")),
        ),
        ("link", h.link(&p("esc/secret"), &p("stolen"))),
        ("copy_tree", h.copy_tree(&esc, &p("stolen"), &[])),
    ];
    for (op, r) in refused {
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{op} went through the link"));
        assert!(matches!(e, HostError::Path { .. }), "{op}: {e}");
    }
    let left: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["secret"], "something was written outside the root");
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"s");
    assert!(!f.root.join("stolen").exists());
}

/// The task journal on a server over ssh: a task started, noted and
/// finished there is listed back, and one left running is found.
#[test]
fn the_task_journal_works_on_an_ssh_host() {
    let Some(f) = Fixture::start() else { return };
    let tasks = TasksDir::new(Arc::new(f.connect()), p("tasks"));
    let mut run = TaskRun::start(&tasks, TaskKind::Backup, None, None, |r| {
        r.commit = Some("abc".into())
    })
    .unwrap();
    run.note(|j| j.restored_from = Some("fact".into())).unwrap();
    let id = run.rec.id.clone();
    let left = task::leftovers(&tasks);
    assert_eq!(
        left.running
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(mode_of(&f.root.join("tasks")), 0o700);
    assert_eq!(
        mode_of(&f.root.join("tasks").join(format!("{id}.json"))),
        0o600
    );

    let mut other = TaskRun::start(&tasks, TaskKind::Verify, None, None, |_| {}).unwrap();
    run.finish(TaskResult::Success).unwrap();
    let all = task::list(&tasks);
    assert_eq!(all.len(), 2, "{all:?}");
    let done = all.iter().find(|r| r.id == id).unwrap();
    assert_eq!(done.result, TaskResult::Success);
    assert_eq!(done.commit.as_deref(), Some("abc"));
    assert_eq!(done.journal.restored_from.as_deref(), Some("fact"));
    assert!(!f.root.join("tasks").join(format!("{id}.running")).exists());
    let running: Vec<String> = task::leftovers(&tasks)
        .running
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(running, [other.rec.id.clone()]);
    other.finish(TaskResult::Failed).unwrap();
    assert!(task::leftovers(&tasks).running.is_empty());
}

/// A backup made on this machine is restored from an archive kept on the
/// ssh host into a site directory on the ssh host: the archive streamed
/// by `open_in`, the tree made by `mkdir_in`, `create_in`, `symlink_in`
/// and `set_dir_meta`, published by `rename`. The result walks equal to
/// a restore of the same archive on this machine, and the dump arrives.
#[test]
fn a_backup_is_restored_from_and_onto_an_ssh_host() {
    use hoist::backup;
    use hoist::driver::host::OnHost;
    use hoist::names::{Domain, Name, PackageName};
    use hoist::render::{self, Secret, SiteConfig};
    use hoist::server::LocalServer;
    let Some(f) = Fixture::start() else { return };

    // A site on this machine: settings, files of several modes, a
    // non-UTF-8 name, a link inside, a private subdirectory; a database.
    let srv = LocalServer::new(Name::new("local").unwrap(), f.dir.path().join("local root"));
    let site = Name::new("acme").unwrap();
    let platform = Name::new("shop-1-1").unwrap();
    let domain = Domain::new("acme.example.com").unwrap();
    let dir = srv.site_dir(&platform, &domain);
    std::fs::create_dir_all(dir.join("files/sub")).unwrap();
    let cfg = SiteConfig {
        site: site.clone(),
        domain: domain.clone(),
        aliases: vec![],
        platform: platform.clone(),
        profile: PackageName::new("standard").unwrap(),
        enabled: true,
        db_server: Name::new("default").unwrap(),
        db_name: Some("acme_db".into()),
        db_driver: Default::default(),
        db_address: None,
    };
    let settings = render::settings_file(&cfg, &Secret::new("pw-not-in-backups".into()));
    std::fs::write(dir.join("settings.yaml"), settings).unwrap();
    std::fs::write(dir.join("files/a.txt"), b"hello\n").unwrap();
    std::fs::write(dir.join("files/sub/big.bin"), all_bytes().repeat(2000)).unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"files/\xe9t\xe9")), b"latin1").unwrap();
    std::fs::set_permissions(dir.join("files/a.txt"), PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::set_permissions(dir.join("files/sub"), PermissionsExt::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("a.txt", dir.join("files/link")).unwrap();
    let creds = srv.db().create("acme_db").unwrap();
    let login = hoist::driver::db::Login {
        database: "acme_db".into(),
        user: creds.user.clone(),
        password: creds.password.clone(),
    };
    srv.db()
        .open("acme_db", &creds)
        .unwrap()
        .create_core_tables()
        .unwrap();
    let made = backup::create(
        &srv,
        &site,
        &platform,
        &domain,
        (
            srv.db_server(&Name::new("default").unwrap()).unwrap(),
            &login,
        ),
        backup::Scope::Full,
        None,
    )
    .unwrap();

    // The archive onto the ssh host, and a restore there and here.
    let ssh: Arc<dyn Host> = Arc::new(f.connect());
    let archive = OnHost {
        host: ssh.clone(),
        path: p("backups/acme.tar.gz"),
    };
    ssh.write(
        &archive.path,
        &std::fs::read(&made.info.path).unwrap(),
        WriteMode::Private,
    )
    .unwrap();
    let restore = |archive: &OnHost, dest: OnHost| {
        let mut dump = Vec::new();
        let x = backup::extract(archive, &dest, &mut |r| {
            r.read_to_end(&mut dump)
                .map(drop)
                .map_err(|source| hoist::db::DbError::Read {
                    db: "none".into(),
                    file: backup::DUMP.into(),
                    source,
                })
                .map_err(Into::into)
        })
        .unwrap();
        (x.manifest.site, dump)
    };
    let there = restore(
        &archive,
        OnHost {
            host: ssh.clone(),
            path: p("platforms/shop-1-1/sites/acme.example.com"),
        },
    );
    let here_dir = f.dir.path().join("here/acme.example.com");
    let here = restore(&OnHost::local(&made.info.path), OnHost::local(&here_dir));
    assert_eq!(there.0, site);
    assert!(!there.1.is_empty(), "the dump was not read");
    assert_eq!(there, here);

    // Byte for byte, mode for mode, link for link, file times too: both
    // walks read this machine's filesystem.
    let restored = f.root.join("platforms/shop-1-1/sites/acme.example.com");
    let walk = |d: &Path| {
        let mut v = hoist::driver::tree::walk_local(d, None).unwrap();
        // The top's time, and a link's, are the restore's own (a link's
        // time is not restored, here either).
        v[0].mtime = 0;
        for e in &mut v {
            if e.kind == EntryKind::Symlink {
                e.mtime = 0;
            }
            // Owners are not restored: each copy is its restorer's, and
            // the ssh account need not be this process's user.
            e.uid = 0;
            e.gid = 0;
        }
        v
    };
    assert_eq!(walk(&restored), walk(&here_dir));
    assert_eq!(
        std::fs::read(restored.join("files/sub/big.bin")).unwrap(),
        all_bytes().repeat(2000)
    );
    assert_eq!(mode_of(&restored.join("files/sub")), 0o750);
    assert_eq!(
        std::fs::read_link(restored.join("files/link")).unwrap(),
        Path::new("a.txt")
    );
    // Nothing but the site is left beside it (no staging).
    let left: Vec<_> = std::fs::read_dir(restored.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["acme.example.com"]);
}

/// A site-like tree under `dir`: nested files of every byte, a hard
/// link, a symlink, an odd name, modes and a read-only directory.
fn make_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("files/deep")).unwrap();
    std::fs::write(dir.join("files/deep/all.bin"), all_bytes()).unwrap();
    std::fs::hard_link(dir.join("files/deep/all.bin"), dir.join("files/hard")).unwrap();
    std::os::unix::fs::symlink("deep/all.bin", dir.join("files/link")).unwrap();
    std::fs::write(dir.join(OsStr::from_bytes(b"files/caf\xe9")), b"odd").unwrap();
    std::fs::write(dir.join("settings.yaml"), b"left out").unwrap();
    std::fs::set_permissions(
        dir.join("files/deep/all.bin"),
        PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("files/deep"), PermissionsExt::from_mode(0o555)).unwrap();
}

/// What a copy must keep of `dir`: each entry's kind, mode, bytes or
/// link target, and which files are one.
fn tree_of(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let m = std::fs::symlink_metadata(dir.join(&r)).unwrap();
            let what = if m.is_dir() {
                stack.push(r.clone());
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(dir.join(&r)).unwrap().display())
            } else {
                format!(
                    "{:?} links {}",
                    std::fs::read(dir.join(&r)).unwrap(),
                    m.nlink()
                )
            };
            out.push(format!("{} {:o} {what}", r.display(), m.mode() & 0o7777));
        }
    }
    out.sort();
    out
}

/// A tree copied between hosts either way (a site moved between servers)
/// arrives whole, the top's `settings.yaml` left out; a target that
/// exists is refused.
#[test]
fn a_tree_is_copied_between_a_local_and_an_ssh_host_either_way() {
    use hoist::driver::relay::copy_tree_between;
    let Some(f) = Fixture::start() else { return };
    let ssh = f.connect();
    let local_root = f.dir.path().join("local root");
    std::fs::create_dir(&local_root).unwrap();
    let local = LocalHost::new(local_root.clone());
    make_tree(&local_root.join("a"));
    let mut want = tree_of(&local_root.join("a"));
    want.retain(|l| !l.starts_with("settings.yaml"));
    let n = copy_tree_between(&local, &p("a"), &ssh, &p("sites/b"), &["settings.yaml"]).unwrap();
    assert_eq!(n, 512 + 3, "bytes of the files, a hard link once");
    assert_eq!(tree_of(&f.root.join("sites/b")), want, "local to ssh");
    copy_tree_between(&ssh, &p("sites/b"), &local, &p("c"), &[]).unwrap();
    assert_eq!(tree_of(&local_root.join("c")), want, "ssh to local");
    copy_tree_between(&ssh, &p("sites/b"), &ssh, &p("d"), &[]).unwrap();
    assert_eq!(tree_of(&f.root.join("d")), want, "ssh to ssh");
    let e = copy_tree_between(&local, &p("a"), &ssh, &p("d"), &[]).unwrap_err();
    assert!(e.to_string().contains("exists"), "{e}");
    // Writable again, so the temp dirs can go.
    for d in [
        local_root.join("a"),
        local_root.join("c"),
        f.root.join("sites/b"),
        f.root.join("d"),
    ] {
        std::fs::set_permissions(d.join("files/deep"), PermissionsExt::from_mode(0o755)).unwrap();
    }
}
