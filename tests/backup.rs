//! Backups through the library API, with real files, real SQLite databases
//! and the real GNU `tar`: round trip, symlinks never followed, hostile and
//! damaged archives refused with nothing written outside the destination,
//! naming and pruning.
//!
//! Embedded only, by nature: these test the archive format itself through
//! the library (entries, modes, gzip members, hostile tar headers) with a
//! `LocalServer` and SQLite; the archive is the same whatever the database
//! server. Backups and restores through the binary on both stacks (rows
//! compared in MariaDB, sites served by nginx) are in `tests/restore.rs`
//! and `tests/pipeline.rs`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hoist::backup::{self, BackupError, DumpInfo, EntryKind, Manifest, ManifestEntry, FORMAT};
use hoist::db::{DbError, SiteDb};
use hoist::driver::db::Login;
use hoist::driver::host::OnHost;
use hoist::names::{Domain, Name, PackageName};
use hoist::render::{self, Secret, SiteConfig};
use hoist::server::LocalServer;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "Sup3rS3cretPassw0rdNeverInBackups";
const MARKER: &[u8] = b"MARKER-outside-the-site-7f3a9c";

struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    srv: LocalServer,
    site: Name,
    platform: Name,
    domain: Domain,
    db: SiteDb,
    login: Login,
    /// A directory outside the server root holding a marker file.
    outside: PathBuf,
}

impl Fixture {
    fn site_dir(&self) -> PathBuf {
        self.srv.site_dir(&self.platform, &self.domain)
    }
}

fn write_mode(p: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A site with settings, files of several modes and sizes, odd names, a
/// long path, an internal symlink and two symlinks that lead out of it,
/// and a database with rows of every type.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let outside = base.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("marker.txt"), MARKER).unwrap();

    let srv = LocalServer::new(Name::new("local").unwrap(), base.join("root"));
    let site = Name::new("acme").unwrap();
    let platform = Name::new("shop-1-1").unwrap();
    let domain = Domain::new("acme.example.com").unwrap();
    let dir = srv.site_dir(&platform, &domain);
    fs::create_dir_all(dir.join("files")).unwrap();
    // Another site beside it, which a relative symlink tries to reach.
    let other = srv.site_dir(&platform, &Domain::new("other.example.com").unwrap());
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("marker.txt"), MARKER).unwrap();

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
    write_mode(
        &dir.join("settings.yaml"),
        render::settings_file(&cfg, &Secret::new(PASSWORD.into())).as_bytes(),
        0o600,
    );
    let f = dir.join("files");
    write_mode(&f.join("a.txt"), b"hello\n", 0o644);
    write_mode(&f.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write_mode(&f.join("empty"), b"", 0o640);
    write_mode(&f.join("100% done.txt"), b"percent", 0o644);
    // Big enough (with its neighbours) for an archive of several gzip
    // members, compressed on several threads.
    let big: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    write_mode(&f.join("sub/deep/big.bin"), &big, 0o600);
    fs::set_permissions(f.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    write_mode(
        &f.join(OsStr::from_bytes(b"latin1-\xe9t\xe9.txt")),
        b"not utf-8 name",
        0o644,
    );
    let long = f.join("l".repeat(90)).join("m".repeat(90)).join("n.txt");
    write_mode(&long, b"long path", 0o644);
    std::os::unix::fs::symlink("a.txt", f.join("link-inside")).unwrap();
    std::os::unix::fs::symlink("sub/deep", f.join("dir-link")).unwrap();
    std::os::unix::fs::symlink(&outside, f.join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.join("marker.txt"), f.join("evil-file")).unwrap();
    std::os::unix::fs::symlink("../../other.example.com", f.join("up")).unwrap();
    // Inside lexically (files/dir-link/..), outside for real: dir-link is
    // files/sub/deep, so this is files/sub/deep/../../../.. = the platform.
    std::os::unix::fs::symlink("dir-link/../../../..", f.join("sneaky")).unwrap();

    let creds = srv.db().create("acme_db").unwrap();
    let login = Login {
        database: "acme_db".into(),
        user: creds.user.clone(),
        password: creds.password.clone(),
    };
    let mut db = srv.db().open("acme_db", &creds).unwrap();
    db.create_core_tables().unwrap();
    db.run_script(
        "INSERT INTO variables VALUES ('site_name', 'Acme''s shop'), ('maintenance_mode', '1');
         INSERT INTO files (path) VALUES ('sites/acme.example.com/files/a.txt');
         INSERT INTO system VALUES ('standard', 'profile', 1, '1.0.0', 3);
         CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, r REAL, b BLOB, s TEXT);
         INSERT INTO t (r, b, s) VALUES (0.1, X'00FF10', 'x'), (NULL, NULL, 'é ü');",
    )
    .unwrap();
    Fixture {
        _tmp: tmp,
        base,
        srv,
        site,
        platform,
        domain,
        db,
        login,
        outside,
    }
}

fn make(fx: &Fixture) -> backup::Created {
    backup::create(
        &fx.srv,
        &fx.site,
        &fx.platform,
        &fx.domain,
        (fx.srv.db_server(&default_db()).unwrap(), &fx.login),
        backup::Scope::Full,
        None,
    )
    .unwrap()
}

/// Every file and symlink under `dir` (not following links): relative path
/// → (kind, mode, bytes or link target).
fn tree(dir: &Path) -> BTreeMap<PathBuf, (char, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            let mode = m.permissions().mode() & 0o777;
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(rel, ('l', 0, t.as_os_str().as_bytes().to_vec()));
            } else if m.is_dir() {
                out.insert(rel, ('d', mode, vec![]));
                stack.push(p);
            } else {
                out.insert(rel, ('f', mode, fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn gunzip(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(p).unwrap())
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// Where each gzip member of a file ends.
fn member_ends(p: &Path) -> Vec<u64> {
    use std::io::{BufRead, Seek};
    let mut r = std::io::BufReader::new(fs::File::open(p).unwrap());
    let mut ends = Vec::new();
    while !r.fill_buf().unwrap().is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(&mut r);
        std::io::copy(&mut d, &mut std::io::sink()).unwrap();
        ends.push(r.stream_position().unwrap());
    }
    ends
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The site tree as a backup should hold it: the original, minus the
/// symlinks that leave the site, with the password redacted.
fn expected_tree(fx: &Fixture) -> BTreeMap<PathBuf, (char, u32, Vec<u8>)> {
    let mut want = tree(&fx.site_dir());
    for gone in ["files/evil", "files/evil-file", "files/up", "files/sneaky"] {
        assert!(want.remove(Path::new(gone)).is_some(), "{gone}");
    }
    let s = want.get_mut(Path::new("settings.yaml")).unwrap();
    s.2 = String::from_utf8(s.2.clone())
        .unwrap()
        .replace(PASSWORD, render::REDACTED)
        .into_bytes();
    want
}

/// Extracts `archive` into `dest`, keeping the dump as read (checked) out
/// of the archive.
fn extract(archive: &Path, dest: &Path) -> Result<(backup::Extracted, Vec<u8>), BackupError> {
    let mut sql = Vec::new();
    let x = backup::extract(&OnHost::local(archive), &OnHost::local(dest), &mut |dump| {
        dump.read_to_end(&mut sql)
            .map(|_| ())
            .map_err(|source| DbError::Read {
                db: "none".into(),
                file: backup::DUMP.into(),
                source,
            })
            .map_err(Into::into)
    })?;
    Ok((x, sql))
}

#[test]
fn round_trip_restores_every_row_file_and_mode() {
    let fx = fixture();
    let c = make(&fx);
    let dest_parent = fx.base.join("restore");
    fs::create_dir_all(&dest_parent).unwrap();
    let dest = dest_parent.join("acme.example.com");
    // The database: a fresh one, the dump loaded as it is read out of the
    // archive, every row equal.
    let creds = fx.srv.db().create("acme_restored").unwrap();
    let mut fresh = fx.srv.db().open("acme_restored", &creds).unwrap();
    let x = backup::extract(
        &OnHost::local(&c.info.path),
        &OnHost::local(&dest),
        &mut |dump| fresh.load(dump, backup::DUMP).map_err(Into::into),
    )
    .unwrap();
    assert_eq!(fresh.content().unwrap(), fx.db.content().unwrap());
    assert!(fresh.content().unwrap()["t"].len() == 2);

    // The files: byte-equal, same modes; links inside kept as links.
    assert_eq!(tree(&dest), expected_tree(&fx));
    assert_eq!(
        fs::read_link(dest.join("files/link-inside")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(
        fs::read(dest.join("files/dir-link/big.bin")).unwrap().len(),
        10_000_000
    );
    let root_mode = fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
    let src_mode = fs::metadata(fx.site_dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(root_mode, src_mode);

    // The manifest says what it is; nothing but the site is left behind.
    assert_eq!(x.manifest.site, fx.site);
    assert_eq!(x.manifest.domain, fx.domain);
    assert_eq!(x.manifest.database, "acme_db");
    assert_eq!(x.site_dir, dest);
    let left: Vec<_> = fs::read_dir(&dest_parent).unwrap().collect();
    assert_eq!(left.len(), 1, "staging directory left behind");
}

#[test]
fn a_database_backup_holds_the_dump_and_settings_but_no_files() {
    let fx = fixture();
    let made = backup::create(
        &fx.srv,
        &fx.site,
        &fx.platform,
        &fx.domain,
        (fx.srv.db_server(&default_db()).unwrap(), &fx.login),
        backup::Scope::Database,
        None,
    )
    .unwrap();
    assert_eq!(made.manifest.scope, backup::Scope::Database);
    let paths: Vec<&str> = made
        .manifest
        .entries
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(paths, ["site", "site/settings.yaml"], "no site files");
    let x = tempfile::tempdir().unwrap();
    let (out, sql) = extract(&made.info.path, &x.path().join("restored")).unwrap();
    assert_eq!(out.manifest.scope, backup::Scope::Database);
    assert!(String::from_utf8(sql).unwrap().contains("CREATE TABLE"));
    assert!(x.path().join("restored/settings.yaml").is_file());
}

#[test]
fn archive_is_private_and_holds_no_password() {
    let fx = fixture();
    let c = make(&fx);
    let mode = fs::metadata(&c.info.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = fs::metadata(fx.srv.backups_dir(&fx.site))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dmode, 0o700);
    let raw = gunzip(&c.info.path);
    assert!(
        !contains(&raw, PASSWORD.as_bytes()),
        "password in the archive"
    );
    assert!(contains(&raw, b"password: \"********\""));
    assert!(c.manifest.settings_redacted);
    // No temporary file is left in the backups directory: the archive and
    // the counter of sequence numbers, private too.
    let mut names: Vec<_> = fs::read_dir(fx.srv.backups_dir(&fx.site))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            OsStr::new(".hoist-seq").to_os_string(),
            OsStr::new(&c.info.file_name).to_os_string()
        ]
    );
    let counter = fx.srv.backups_dir(&fx.site).join(".hoist-seq");
    assert_eq!(
        fs::metadata(&counter).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn symlinks_out_of_the_site_are_never_followed() {
    let fx = fixture();
    let c = make(&fx);
    let raw = gunzip(&c.info.path);
    assert!(
        !contains(&raw, MARKER),
        "content behind a symlink was archived"
    );
    // Not even touched: the outside is as it was.
    assert_eq!(fs::read(fx.outside.join("marker.txt")).unwrap(), MARKER);
    assert_eq!(fs::read_dir(&fx.outside).unwrap().count(), 1);
    let mut skipped: Vec<&str> = c.skipped.iter().map(|s| s.path.as_str()).collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            "site/files/evil",
            "site/files/evil-file",
            "site/files/sneaky",
            "site/files/up"
        ]
    );
    assert_eq!(c.manifest.skipped, c.skipped);
    // The internal ones are stored as symlinks, not as copies.
    let link = c
        .manifest
        .entries
        .iter()
        .find(|e| e.path == "site/files/link-inside")
        .unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(link.target.as_deref(), Some("a.txt"));
}

#[test]
fn gnu_tar_lists_and_extracts_a_backup() {
    let fx = fixture();
    let c = make(&fx);
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(&c.info.path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines[0], "hoist-backup.yaml");
    assert_eq!(lines[1], "database.sql");
    for want in [
        "site",
        "site/files/sub/deep",
        "site/settings.yaml",
        "site/files/sub/deep/big.bin",
    ] {
        assert!(lines.contains(&want), "{want} not in {listing}");
    }
    assert!(lines.iter().any(|l| l.ends_with("/n.txt") && l.len() > 190));

    let x = fx.base.join("gnu");
    fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&c.info.path)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        member_ends(&c.info.path).len() > 1,
        "several gzip members, and GNU tar reads them as one stream"
    );
    assert_eq!(tree(&x.join("site")), expected_tree(&fx));
    let mut dump = Vec::new();
    fx.db.dump(&mut dump).unwrap();
    assert_eq!(fs::read(x.join("database.sql")).unwrap(), dump);
}

#[test]
fn names_follow_the_spec_and_list_is_oldest_first() {
    let fx = fixture();
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let a = make(&fx);
    let b = make(&fx);
    let after = time::OffsetDateTime::now_utc().unix_timestamp();
    for c in [&a, &b] {
        let n = &c.info.file_name;
        let rest = n.strip_prefix("acme.example.com-").unwrap();
        let stem = rest.strip_suffix(".tar.gz").unwrap();
        let stamp = &stem[..15];
        assert!(stem.len() == 15 || stem[15..].starts_with('-'), "{n}");
        let t = time::PrimitiveDateTime::parse(
            stamp,
            time::macros::format_description!("[year][month][day].[hour][minute][second]"),
        )
        .unwrap()
        .assume_utc()
        .unix_timestamp();
        assert!(before <= t && t <= after, "{n} is not the UTC time now");
        assert_eq!(c.info.path.parent().unwrap(), fx.srv.backups_dir(&fx.site));
    }
    assert_ne!(a.info.path, b.info.path);
    let l = backup::list(&fx.srv, &fx.site);
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].path, a.info.path);
    assert_eq!(l[1].path, b.info.path);
    assert_eq!(l[1], b.info);
}

#[test]
fn backups_are_numbered_in_the_order_they_are_made_and_never_reuse_a_number() {
    let fx = fixture();
    // Quick backups, several in one second: each is numbered one more than
    // the last, in its name and its manifest, and listed in that order.
    let made: Vec<_> = (0..3).map(|_| make(&fx)).collect();
    for (i, c) in made.iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(c.info.seq, Some(seq));
        assert_eq!(c.manifest.seq, Some(seq));
        assert!(
            c.info.file_name.ends_with(&format!("-n{seq:06}.tar.gz")),
            "{}",
            c.info.file_name
        );
    }
    let infos: Vec<_> = made.iter().map(|c| c.info.clone()).collect();
    assert_eq!(backup::list(&fx.srv, &fx.site), infos);
    // Pruned to one, and that one deleted by hand: the next number is
    // still new, so no name ever stands for two archives.
    backup::prune(&fx.srv, &fx.site, 1, None).unwrap();
    fs::remove_file(&made[2].info.path).unwrap();
    assert!(backup::list(&fx.srv, &fx.site).is_empty());
    let next = make(&fx);
    assert_eq!(next.info.seq, Some(4));
    assert_eq!(backup::newest(&fx.srv, &fx.site), Some(next.info.clone()));
    // An archive named the older way counts as older than any numbered one,
    // whatever its stamp says, and is still listed.
    let old = fx
        .srv
        .backups_dir(&fx.site)
        .join("acme.example.com-20991231.235959-2.tar.gz");
    fs::copy(&next.info.path, &old).unwrap();
    let l = backup::list(&fx.srv, &fx.site);
    assert_eq!(l.len(), 2);
    assert_eq!((l[0].path.clone(), l[0].seq, l[0].suffix), (old, None, 2));
    assert_eq!(l[1], next.info);
}

#[test]
fn prune_keeps_the_newest_and_the_protected() {
    let fx = fixture();
    let made: Vec<PathBuf> = (0..4).map(|_| make(&fx).info.path).collect();
    let dir = fx.srv.backups_dir(&fx.site);
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    fs::write(
        dir.join(".hoist-tmp-1-20200101.000000.tar.gz"),
        "left by a kill",
    )
    .unwrap();

    let removed = backup::prune(&fx.srv, &fx.site, 2, None).unwrap();
    assert!(removed.contains(&made[0]) && removed.contains(&made[1]));
    assert!(!dir.join(".hoist-tmp-1-20200101.000000.tar.gz").exists());
    assert!(
        dir.join("notes.txt").exists(),
        "a file not ours was removed"
    );
    let left: Vec<PathBuf> = backup::list(&fx.srv, &fx.site)
        .into_iter()
        .map(|b| b.path)
        .collect();
    assert_eq!(left, made[2..]);

    // The protected one survives even when it is not among the newest.
    let removed = backup::prune(&fx.srv, &fx.site, 1, Some(&made[2])).unwrap();
    assert!(removed.is_empty());
    // keep 0 still keeps the newest: the one a task just made.
    backup::prune(&fx.srv, &fx.site, 0, None).unwrap();
    let left: Vec<PathBuf> = backup::list(&fx.srv, &fx.site)
        .into_iter()
        .map(|b| b.path)
        .collect();
    assert_eq!(left, [made[3].clone()]);
}

#[test]
fn progress_reaches_the_total() {
    let fx = fixture();
    let seen = std::cell::RefCell::new(Vec::new());
    let cb = |done: u64, total: u64| seen.borrow_mut().push((done, total));
    backup::create(
        &fx.srv,
        &fx.site,
        &fx.platform,
        &fx.domain,
        (fx.srv.db_server(&default_db()).unwrap(), &fx.login),
        backup::Scope::Full,
        Some(&cb),
    )
    .unwrap();
    let seen = seen.into_inner();
    let &(done, total) = seen.last().unwrap();
    assert!(total > 3_000_000);
    assert!(done >= total, "{done} < {total}");
}

#[test]
fn read_manifest_reads_only_the_manifest() {
    let fx = fixture();
    let c = make(&fx);
    assert_eq!(
        backup::read_manifest(&OnHost::local(&c.info.path)).unwrap(),
        c.manifest
    );
}

#[test]
fn restore_refuses_a_destination_that_is_not_empty() {
    let fx = fixture();
    let c = make(&fx);
    let dest = fx.base.join("busy");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("keep.txt"), "user data").unwrap();
    let e = extract(&c.info.path, &dest).unwrap_err();
    assert!(matches!(e, BackupError::Destination { .. }), "{e}");
    assert_eq!(fs::read(dest.join("keep.txt")).unwrap(), b"user data");
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 1);
    // A staging directory a killed restore left is cleared, and a missing
    // parent is made.
    let dest = fx.base.join("new/parent/acme.example.com");
    let stale = fx
        .base
        .join("new/parent/.hoist-restore-acme.example.com-99999");
    fs::create_dir_all(stale.join("site")).unwrap();
    let other = fx
        .base
        .join("new/parent/.hoist-restore-acme.example.com-1-42");
    fs::create_dir_all(&other).unwrap();
    extract(&c.info.path, &dest).unwrap();
    assert!(!stale.exists());
    assert!(other.exists(), "another site's staging was removed");
    // An empty directory is fine.
    let empty = fx.base.join("empty");
    fs::create_dir_all(&empty).unwrap();
    extract(&c.info.path, &empty).unwrap();
    assert!(empty.join("settings.yaml").exists());
}

// ---------------------------------------------------------------------------
// Hostile and damaged archives

/// An entry to put in a hand-made archive.
struct Raw {
    path: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
    /// Header size when it should lie about the data.
    size: Option<u64>,
    link: Option<Vec<u8>>,
}

fn raw(path: &str, kind: tar::EntryType, data: &[u8]) -> Raw {
    Raw {
        path: path.as_bytes().to_vec(),
        kind,
        data: data.to_vec(),
        size: None,
        link: None,
    }
}

fn link(path: &str, kind: tar::EntryType, target: &str) -> Raw {
    Raw {
        link: Some(target.as_bytes().to_vec()),
        ..raw(path, kind, b"")
    }
}

/// Writes raw header fields, bypassing the tar crate's path checks, as an
/// attacker's tool would.
fn append_raw(b: &mut tar::Builder<impl Write>, r: &Raw) {
    let mut h = tar::Header::new_gnu();
    {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..r.path.len()].copy_from_slice(&r.path);
        if let Some(l) = &r.link {
            old.linkname = [0; 100];
            old.linkname[..l.len()].copy_from_slice(l);
        }
    }
    h.set_entry_type(r.kind);
    h.set_mode(0o644);
    h.set_size(r.size.unwrap_or(r.data.len() as u64));
    h.set_cksum();
    b.append(&h, r.data.as_slice()).unwrap();
}

const SQL: &str = "CREATE TABLE x (a);\nINSERT INTO x VALUES(1);\n";

fn manifest(entries: Vec<ManifestEntry>) -> Manifest {
    Manifest {
        format: FORMAT,
        site: Name::new("acme").unwrap(),
        domain: Domain::new("acme.example.com").unwrap(),
        platform: Name::new("shop-1-1").unwrap(),
        database: "acme_db".into(),
        created: "2024-01-01T00:00:00Z".into(),
        seq: None,
        total: None,
        settings_redacted: true,
        scope: backup::Scope::Full,
        dump: DumpInfo {
            size: SQL.len() as u64,
            sha256: Sha256::digest(SQL.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        },
        entries,
        skipped: vec![],
    }
}

fn me(path: &str, kind: EntryKind, size: u64, target: Option<&str>) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        kind,
        mode: 0o644,
        size,
        target: target.map(String::from),
    }
}

/// The base listing: `site/` and `site/files/`.
fn base_entries() -> Vec<ManifestEntry> {
    vec![
        me("site", EntryKind::Dir, 0, None),
        me("site/files", EntryKind::Dir, 0, None),
    ]
}

/// A gzipped archive: `manifest`, the dump, `site/`, `site/files/`, then
/// `extra` entries as given.
fn hostile(path: &Path, m: &Manifest, extra: &[Raw]) {
    let f = fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let text = serde_yaml::to_string(m).unwrap();
    append_raw(
        &mut b,
        &raw(
            "hoist-backup.yaml",
            tar::EntryType::Regular,
            text.as_bytes(),
        ),
    );
    append_raw(
        &mut b,
        &raw("database.sql", tar::EntryType::Regular, SQL.as_bytes()),
    );
    append_raw(&mut b, &raw("site/", tar::EntryType::Directory, b""));
    append_raw(&mut b, &raw("site/files/", tar::EntryType::Directory, b""));
    for r in extra {
        append_raw(&mut b, r);
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// Extracts `archive` into `<work>/dest` and checks the refusal: the error
/// is one of the refusing kinds, and nothing exists in `work` but the
/// archive (no destination, no staging directory, no escaped file) and
/// nothing new appeared in `outside`.
fn assert_refused(work: &Path, outside: &Path, archive: &Path) -> BackupError {
    let before: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let e = extract(archive, &work.join("dest")).unwrap_err();
    assert!(
        matches!(
            e,
            BackupError::Refused { .. }
                | BackupError::Corrupt { .. }
                | BackupError::Manifest { .. }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains(&archive.display().to_string()), "{msg}");
    let in_work: Vec<_> = fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        in_work,
        vec![archive.to_path_buf()],
        "written beside the destination"
    );
    let after: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(before, after, "written outside");
    assert_eq!(fs::read(outside.join("marker.txt")).unwrap(), MARKER);
    e
}

/// A scratch area: `<tmp>/a/b/work` (the destination's parent, holding only
/// the archive) and `<tmp>/outside` with a marker.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("a/b/work");
    fs::create_dir_all(&work).unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("marker.txt"), MARKER).unwrap();
    (tmp, work, outside)
}

fn reason(e: &BackupError) -> String {
    match e {
        BackupError::Refused { reason, .. } => reason.clone(),
        other => panic!("expected a refused entry, got {other:?}"),
    }
}

#[test]
fn a_well_formed_hand_made_archive_is_accepted() {
    // The harness itself is sound: without the hostile part it extracts,
    // so each refusal below is due to the hostile entry alone.
    let (_t, work, _outside) = scratch();
    let a = work.join("a.tar.gz");
    let mut es = base_entries();
    es.push(me("site/files/ok.txt", EntryKind::File, 2, None));
    es.push(me("site/files/l", EntryKind::Symlink, 0, Some("ok.txt")));
    hostile(
        &a,
        &manifest(es),
        &[
            raw("site/files/ok.txt", tar::EntryType::Regular, b"ok"),
            link("site/files/l", tar::EntryType::Symlink, "ok.txt"),
        ],
    );
    let (_, sql) = extract(&a, &work.join("dest")).unwrap();
    assert_eq!(sql, SQL.as_bytes());
    assert_eq!(fs::read(work.join("dest/files/l")).unwrap(), b"ok");
}

#[test]
fn refuses_dot_dot_paths() {
    let (tmp, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    // Unlisted: the entry check itself refuses it.
    hostile(
        &a,
        &manifest(base_entries()),
        &[raw("site/../../escape.txt", tar::EntryType::Regular, b"x")],
    );
    let e = assert_refused(&work, &outside, &a);
    assert!(reason(&e).contains(".."), "{e}");
    assert!(!tmp.path().join("a/escape.txt").exists());
    assert!(!tmp.path().join("a/b/escape.txt").exists());
    // Listed in a forged manifest: refused when the manifest is read.
    let mut es = base_entries();
    es.push(me("site/../../escape.txt", EntryKind::File, 1, None));
    hostile(
        &a,
        &manifest(es),
        &[raw("site/../../escape.txt", tar::EntryType::Regular, b"x")],
    );
    let e = assert_refused(&work, &outside, &a);
    assert!(matches!(e, BackupError::Manifest { .. }), "{e}");
}

#[test]
fn refuses_absolute_paths() {
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    let target = format!("{}/abs.txt", outside.display());
    let mut es = base_entries();
    es.push(me(&target, EntryKind::File, 1, None));
    hostile(
        &a,
        &manifest(base_entries()),
        &[raw(&target, tar::EntryType::Regular, b"x")],
    );
    let e = assert_refused(&work, &outside, &a);
    assert!(reason(&e).contains("absolute"), "{e}");
    hostile(
        &a,
        &manifest(es),
        &[raw(&target, tar::EntryType::Regular, b"x")],
    );
    assert_refused(&work, &outside, &a);
}

#[test]
fn refuses_symlinks_out_of_the_site() {
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    let abs = outside.display().to_string();
    let cases: [(&str, &str); 5] = [
        ("site/files/out", &abs),
        ("site/files/out", "../.."),
        ("site/files/out", "../../../../outside"),
        ("site/files/root", "/"),
        ("site/files/out", ""),
    ];
    for (path, target) in cases {
        let mut es = base_entries();
        es.push(me(path, EntryKind::Symlink, 0, Some(target)));
        hostile(
            &a,
            &manifest(es),
            &[link(path, tar::EntryType::Symlink, target)],
        );
        let e = assert_refused(&work, &outside, &a);
        assert!(matches!(e, BackupError::Refused { .. }), "{target}: {e}");
    }
}

#[test]
fn refuses_a_symlink_chain_that_leaves_the_site() {
    // files/up -> .. is the site root (fine); files/x -> up/.. is files/
    // when read lexically but the site's parent for real.
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    let mut es = base_entries();
    es.push(me("site/files/up", EntryKind::Symlink, 0, Some("..")));
    es.push(me("site/files/x", EntryKind::Symlink, 0, Some("up/..")));
    hostile(
        &a,
        &manifest(es),
        &[
            link("site/files/up", tar::EntryType::Symlink, ".."),
            link("site/files/x", tar::EntryType::Symlink, "up/.."),
        ],
    );
    let e = assert_refused(&work, &outside, &a);
    assert!(reason(&e).contains("out of the site"), "{e}");
    assert!(e.to_string().contains("site/files/x"), "{e}");
}

#[test]
fn never_writes_through_a_symlink() {
    // A symlink to a directory outside, then a file "inside" it.
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    let abs = outside.display().to_string();
    let mut es = base_entries();
    es.push(me("site/files/evil", EntryKind::Symlink, 0, Some(&abs)));
    es.push(me("site/files/evil/pwned.txt", EntryKind::File, 5, None));
    hostile(
        &a,
        &manifest(es),
        &[
            link("site/files/evil", tar::EntryType::Symlink, &abs),
            raw(
                "site/files/evil/pwned.txt",
                tar::EntryType::Regular,
                b"pwned",
            ),
        ],
    );
    assert_refused(&work, &outside, &a);
    assert!(!outside.join("pwned.txt").exists());
}

#[test]
fn refuses_hard_links_devices_and_fifos() {
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    let cases = [
        (
            link("site/files/h", tar::EntryType::Link, "site/files"),
            "hard link",
        ),
        (
            link("site/files/h", tar::EntryType::Link, "/etc/passwd"),
            "hard link",
        ),
        (raw("site/files/h", tar::EntryType::Char, b""), "device"),
        (raw("site/files/h", tar::EntryType::Block, b""), "device"),
        (raw("site/files/h", tar::EntryType::Fifo, b""), "fifo"),
        (
            raw("site/files/h", tar::EntryType::XGlobalHeader, b""),
            "type",
        ),
    ];
    for (r, why) in cases {
        let mut es = base_entries();
        es.push(me("site/files/h", EntryKind::File, 0, None));
        hostile(&a, &manifest(es), &[r]);
        let e = assert_refused(&work, &outside, &a);
        assert!(reason(&e).contains(why), "{why}: {e}");
    }
}

#[test]
fn refuses_sizes_that_do_not_match() {
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    // Header and manifest disagree.
    let mut es = base_entries();
    es.push(me("site/files/f", EntryKind::File, 100, None));
    hostile(
        &a,
        &manifest(es),
        &[raw("site/files/f", tar::EntryType::Regular, b"short")],
    );
    let e = assert_refused(&work, &outside, &a);
    assert!(reason(&e).contains("in the manifest"), "{e}");
    // Header claims more than the archive holds (both agree on 5000 bytes).
    let mut es = base_entries();
    es.push(me("site/files/f", EntryKind::File, 5000, None));
    hostile(
        &a,
        &manifest(es),
        &[Raw {
            size: Some(5000),
            ..raw("site/files/f", tar::EntryType::Regular, b"short")
        }],
    );
    assert_refused(&work, &outside, &a);
    // The dump's checksum does not match.
    let mut m = manifest(base_entries());
    m.dump.sha256 = "0".repeat(64);
    hostile(&a, &m, &[]);
    let e = assert_refused(&work, &outside, &a);
    assert!(reason(&e).contains("SHA-256"), "{e}");
}

#[test]
fn refuses_unknown_missing_and_duplicate_entries() {
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    // An unknown top-level entry, even when listed.
    let mut es = base_entries();
    es.push(me("other.txt", EntryKind::File, 1, None));
    hostile(
        &a,
        &manifest(es),
        &[raw("other.txt", tar::EntryType::Regular, b"x")],
    );
    assert_refused(&work, &outside, &a);
    // An entry not in the manifest.
    hostile(
        &a,
        &manifest(base_entries()),
        &[raw("site/files/extra", tar::EntryType::Regular, b"x")],
    );
    let e = assert_refused(&work, &outside, &a);
    assert!(reason(&e).contains("not listed"), "{e}");
    // An entry the manifest lists but the archive lacks (cut at an entry).
    let mut es = base_entries();
    es.push(me("site/files/gone", EntryKind::File, 1, None));
    hostile(&a, &manifest(es), &[]);
    let e = assert_refused(&work, &outside, &a);
    assert!(e.to_string().contains("site/files/gone"), "{e}");
    // The same entry twice.
    let mut es = base_entries();
    es.push(me("site/files/f", EntryKind::File, 1, None));
    let f = raw("site/files/f", tar::EntryType::Regular, b"x");
    let g = raw("site/files/f", tar::EntryType::Regular, b"y");
    hostile(&a, &manifest(es), &[f, g]);
    let e = assert_refused(&work, &outside, &a);
    assert!(reason(&e).contains("twice"), "{e}");
}

#[test]
fn refuses_an_archive_without_a_manifest_first() {
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    let f = fs::File::create(&a).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    append_raw(&mut b, &raw("site/", tar::EntryType::Directory, b""));
    b.into_inner().unwrap().finish().unwrap();
    let e = assert_refused(&work, &outside, &a);
    assert!(matches!(e, BackupError::Manifest { .. }), "{e}");
    // A manifest of another format.
    let mut m = manifest(base_entries());
    m.format = 99;
    hostile(&a, &m, &[]);
    let e = assert_refused(&work, &outside, &a);
    assert!(e.to_string().contains("format 99"), "{e}");
}

#[test]
fn damaged_archives_give_clear_errors_never_a_panic() {
    let fx = fixture();
    let c = make(&fx);
    let good = fs::read(&c.info.path).unwrap();
    let (_t, work, outside) = scratch();
    let a = work.join("a.tar.gz");
    // Truncated at many points, including inside the gzip trailer.
    let mut cuts: Vec<usize> = (1..20).map(|i| good.len() * i / 20).collect();
    cuts.extend([0, 1, 10, good.len() - 4, good.len() - 1]);
    for cut in cuts {
        fs::write(&a, &good[..cut]).unwrap();
        let e = assert_refused(&work, &outside, &a);
        assert!(!e.to_string().is_empty(), "cut at {cut}");
    }
    // A flipped byte in the compressed data.
    for pos in [good.len() / 3, good.len() / 2, good.len() - 6] {
        let mut bad = good.clone();
        bad[pos] ^= 0x55;
        fs::write(&a, &bad).unwrap();
        assert_refused(&work, &outside, &a);
    }
    // Not gzip at all.
    fs::write(&a, b"this is not a backup").unwrap();
    let e = assert_refused(&work, &outside, &a);
    assert!(
        matches!(
            e,
            BackupError::Corrupt { .. } | BackupError::Manifest { .. }
        ),
        "{e}"
    );
    // And a truncated one is reported as such.
    fs::write(&a, &good[..good.len() / 2]).unwrap();
    let e = assert_refused(&work, &outside, &a);
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn an_archive_cut_between_two_gzip_members_is_refused() {
    let fx = fixture();
    let c = make(&fx);
    let ends = member_ends(&c.info.path);
    assert!(ends.len() > 1, "{ends:?}");
    let whole = fs::read(&c.info.path).unwrap();
    assert_eq!(*ends.last().unwrap(), whole.len() as u64);
    let (work, outside) = (fx.base.join("cut"), fx.outside.clone());
    fs::create_dir_all(&work).unwrap();
    for end in &ends[..ends.len() - 1] {
        let a = work.join("cut.tar.gz");
        // Every member whole, the stream valid gzip: only the archive
        // itself can tell it is short.
        fs::write(&a, &whole[..*end as usize]).unwrap();
        let e = assert_refused(&work, &outside, &a);
        assert!(e.to_string().contains("truncated"), "cut at {end}: {e}");
    }
}

/// The embedded default's database server.
fn default_db() -> Name {
    Name::new("default").unwrap()
}
