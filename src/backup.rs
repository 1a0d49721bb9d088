//! Site backups: `.tar.gz` archives of a site's directory and a dump of its
//! database, written with the `tar` and `flate2` crates so GNU `tar` lists
//! and extracts them, and a safe extraction for restore.
//!
//! # Where and how they are named
//!
//! `<root>/backups/<site>/<domain>-<YYYYmmdd.HHMMSS>-n<seq>.tar.gz` (UTC,
//! the time the backup started, then its sequence number among the site's
//! backups: what orders them, since a clock repeats and goes back; see
//! [`list`]). Names of the older form, `<domain>-<YYYYmmdd.HHMMSS>[-N].tar.gz`,
//! are still read. The directory is mode 0700 and every archive mode 0600:
//! an archive is server-side data that never goes to git.
//!
//! # Archive layout (format 1)
//!
//! ```text
//! hoist-backup.yaml   the manifest, always the first entry (see [`Manifest`])
//! database.sql        the database dump, always the second entry: SQL that
//!                     restores into an empty database (SiteDb::load)
//! site/               the site directory: settings.yaml, files/, ...
//! ```
//!
//! The manifest names the site, domain, platform and database, the
//! backup's sequence number, the dump's size and SHA-256, every entry under
//! `site/` (kind, mode, size, link target) and the bytes they hold in all,
//! so extraction can check the archive against it entry by entry, detect a
//! truncated or tampered archive, and refuse one that would not fit before
//! writing anything.
//!
//! # What is not stored
//!
//! - **The database password.** `site/settings.yaml` is stored with its
//!   password replaced by `"********"`: a restore creates a new database and
//!   user with new credentials and rewrites the settings anyway, so the
//!   archive never needs the secret. (Every archive is mode 0600 on top.)
//! - **Symlinks that lead out of the site.** Symlinks are never followed:
//!   a symlink whose target stays inside the site directory (resolved the
//!   way the kernel would, through other links) is stored as a symlink
//!   entry; one that is absolute or escapes the site is skipped and listed
//!   in the manifest's `skipped` and in [`Created::skipped`] (a task warning).
//! - Sockets, fifos and device files (not site content): skipped and listed.
//! - Hard links are stored as separate regular files; owners are recorded
//!   in the headers (for GNU tar) but ignored on restore.
//!
//! # Extraction
//!
//! [`extract`] reads the manifest first and validates it (its declared
//! sizes capped, and checked against the room on the destination's
//! filesystem, with a margin), then every entry
//! against it, into a staging directory beside the destination; it refuses
//! `..`, absolute paths, hard links, devices, fifos, unknown entries,
//! duplicates, sizes that do not match the header or the manifest, and
//! symlinks that resolve outside the site. Only when everything checked out
//! (including the gzip checksum at the end of the stream) is the staging
//! tree synced and renamed into place: nothing is ever written outside the
//! destination's parent, and the destination appears whole or not at all.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::DbError;
use crate::driver::host::{EntryKind as HostKind, Host, HostError, HostPath, OnHost, WriteMode};
use crate::driver::tree::{Finish, HostWrite};
use crate::driver::{DbServer, DriverError, Login};
use crate::names::{Domain, Name, PlatformName};
use crate::render::REDACTED;
use crate::server::{LocalServer, SETTINGS_FILE};

/// The archive format this module writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest's name in the archive.
pub const MANIFEST: &str = "hoist-backup.yaml";
/// The dump's name in the archive.
pub const DUMP: &str = "database.sql";
/// The site directory's name in the archive.
pub const SITE: &str = "site";
/// gzip level: fast levels cost little in size and keep a backup at least
/// as fast as `tar -czf` (gzip -6), which matters inside maintenance mode.
pub const COMPRESSION_LEVEL: u32 = 2;

/// A manifest larger than this is refused unread (a memory bomb otherwise).
const MAX_MANIFEST: u64 = 64 << 20;
/// GNU long-name entries longer than this are refused (PATH_MAX is 4096).
const MAX_LONG_NAME: u64 = 8192;
/// Zero padding tolerated after the end of the archive (GNU tar pads to
/// 10 KiB records); more is refused rather than read forever.
const MAX_TRAILER: u64 = 1 << 20;
/// The most entries a manifest may list (a 64 MiB manifest holds about a
/// million): more is refused before anything is extracted.
const MAX_ENTRIES: usize = 4_000_000;
/// The most bytes an archive may declare, in one entry or in all (16 TiB):
/// sums stay far from overflowing, and a manifest declaring more is refused.
const MAX_BYTES: u64 = 1 << 44;
/// The least room a restore leaves free on the destination's filesystem,
/// beyond what it writes; and a share of what it writes on top (1/16).
const ROOM_MARGIN: u64 = 64 << 20;
const BUF: usize = 1 << 20;

/// A backup or restore failure. Each names the archive, and the entry when
/// one is to blame.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory on the server could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The database could not be dumped.
    #[error("backup of database: {0}")]
    Db(#[from] DbError),
    /// The database server could not dump the database.
    #[error("backup of database: {0}")]
    Driver(#[from] DriverError),
    /// The site directory is missing or is not a plain directory.
    #[error("site directory {path}: {msg}")]
    SiteDir {
        /// The site directory.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A file changed while it was being archived (a live site without
    /// maintenance mode): the backup is abandoned rather than inconsistent.
    #[error("{path} changed while it was being backed up; try again")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The archive cannot be read: not gzip, corrupt, truncated.
    #[error("backup {archive}: {msg}")]
    Corrupt {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The archive's manifest is missing, malformed or not one hoist reads.
    #[error("backup {archive}: manifest {MANIFEST}: {msg}")]
    Manifest {
        /// The archive.
        archive: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An entry is refused: it would land outside the site, is of a kind a
    /// site never holds, or does not match the header or the manifest.
    #[error("backup {archive}: entry {entry:?} refused: {reason}")]
    Refused {
        /// The archive.
        archive: PathBuf,
        /// The entry's path as stored (lossy).
        entry: String,
        /// Why.
        reason: String,
    },
    /// The archive's dump could not be loaded into the database: refused
    /// (it reaches outside its database), or SQLite failed on it.
    #[error("backup {archive}: {source}")]
    Load {
        /// The archive.
        archive: PathBuf,
        /// What the database said, with the dump's line and statement
        /// (boxed: it is large, and rare).
        #[source]
        source: Box<DriverError>,
    },
    /// The extraction destination is not usable.
    #[error("restore destination {path}: {msg}")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The destination's filesystem has no room for what the archive holds:
    /// nothing was written.
    #[error("backup {archive}: not restored: {msg}")]
    Room {
        /// The archive.
        archive: PathBuf,
        /// What is needed and what there is.
        msg: String,
    },
    /// A failpoint fired (tests only).
    #[error("{0}")]
    Failpoint(String),
    /// The server's host failed.
    #[error(transparent)]
    Host(#[from] crate::driver::host::HostError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The manifest: the first entry of every archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The archive format ([`FORMAT`]).
    pub format: u32,
    /// The site's stable name.
    pub site: Name,
    /// Its domain when backed up.
    pub domain: Domain,
    /// Its platform when backed up.
    pub platform: PlatformName,
    /// Its database's name when backed up.
    pub database: String,
    /// When the backup started, RFC 3339 UTC.
    pub created: String,
    /// Its sequence number among the site's backups, also in its name (see
    /// [`list`]). Absent in archives of older hoists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The bytes it holds in all: the dump's size and every entry's. A
    /// restore checks there is room for them before it writes anything.
    /// Absent in archives of older hoists (then summed from the entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Whether the password in `site/settings.yaml` was redacted (always,
    /// in archives hoist writes).
    pub settings_redacted: bool,
    /// The dump entry.
    pub dump: DumpInfo,
    /// What the archive holds of the site directory.
    #[serde(default)]
    pub scope: Scope,
    /// Every entry under `site/`, parents before children.
    pub entries: Vec<ManifestEntry>,
    /// What was left out of the site directory, and why.
    #[serde(default)]
    pub skipped: Vec<SkippedEntry>,
}

/// What a backup holds of the site directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The whole site directory and the database.
    #[default]
    Full,
    /// The database and `settings.yaml` only: what a rename on the same
    /// platform takes, since it moves the site's files but never changes
    /// them, and must stay cheap whatever their size. Restoring such a
    /// backup keeps the site's present files.
    Database,
}

/// The dump's size and checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpInfo {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

/// The kind of a site entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symlink that stays inside the site.
    Symlink,
}

/// One entry under `site/` as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Its path in the archive (`site/...`); bytes that are not UTF-8, and
    /// `%`, are written `%XX`.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its permission bits (`0o777` at most).
    pub mode: u32,
    /// Its size in bytes (files; 0 otherwise).
    #[serde(default)]
    pub size: u64,
    /// A symlink's target, encoded like `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Something left out of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedEntry {
    /// Its path in the archive's terms (`site/...`), encoded like
    /// [`ManifestEntry::path`].
    pub path: String,
    /// Why it was left out.
    pub reason: String,
}

/// A backup archive on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its absolute path.
    pub path: PathBuf,
    /// Its file name.
    pub file_name: String,
    /// The domain in its name.
    pub domain: Domain,
    /// The time in its name, `YYYYmmdd.HHMMSS` UTC.
    pub stamp: String,
    /// Its sequence number among the site's backups, from its name: what
    /// orders them. `None` for a name of the older form (see [`list`]).
    pub seq: Option<u64>,
    /// The `-N` suffix of a name of the older form (1 when there is none,
    /// and for names of the newer form).
    pub suffix: u32,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What [`create`] made.
#[derive(Debug, Clone)]
pub struct Created {
    /// The archive.
    pub info: BackupInfo,
    /// Its manifest.
    pub manifest: Manifest,
    /// What was left out of the site directory (symlinks out of the site,
    /// sockets, ...): worth a task warning.
    pub skipped: Vec<SkippedEntry>,
}

/// What [`extract`] restored.
#[derive(Debug)]
pub struct Extracted {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// The site directory now in place (the `dest_dir` given).
    pub site_dir: PathBuf,
}

/// Takes an archive's dump as it is read out of the archive, never whole
/// in memory: typically [`crate::db::SiteDb::load`] into a new, empty database. The
/// reader checks the dump against the manifest's size and SHA-256 and
/// fails at its end when they differ, before a loader that reads to the
/// end commits anything.
pub type DumpLoader<'a> = dyn FnMut(&mut dyn Read) -> Result<(), DriverError> + 'a;

// ---------------------------------------------------------------------------
// Names and order
//
// A site's backups are ordered by when they were made, never by the clock
// in their names: two backups in one second share a stamp, and a clock set
// back makes a newer stamp sort first. So every archive hoist writes has a
// sequence number, in its name and in its manifest, one more than any the
// site's backups ever had: the highest in the names present, or in the
// counter file [`SEQ_FILE`] (written before the archive gets its name),
// whichever is higher. Pruning removes names but never lowers the counter,
// so a name is never reused for another archive of the same site.
//
// Names of the older form (`<domain>-<stamp>[-N].tar.gz`, without a
// sequence number) were all made before any of the newer form, by an
// older hoist: they sort first, by stamp, then by their `-N`.

/// The counter file in a site's backups directory: the highest sequence
/// number ever given to one of its backups.
const SEQ_FILE: &str = ".hoist-seq";

/// The archive name for `domain` at `stamp` with sequence number `seq`:
/// `<domain>-<YYYYmmdd.HHMMSS>-n<seq>.tar.gz` (at least six digits, so
/// `ls` lists a day's backups in order too).
fn archive_name(domain: &Domain, stamp: &str, seq: u64) -> String {
    format!("{domain}-{stamp}-n{seq:06}.tar.gz")
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 15
        && b[8] == b'.'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..].iter().all(u8::is_ascii_digit)
}

/// What a backup's name says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParsedName {
    domain: Domain,
    stamp: String,
    /// The sequence number (names of the newer form).
    seq: Option<u64>,
    /// The `-N` of an older name (1 when there is none; 1 for newer names).
    suffix: u32,
}

/// Parses `<domain>-<stamp>-n<seq>.tar.gz`, or the older
/// `<domain>-<stamp>[-N].tar.gz`.
fn parse_name(name: &str) -> Option<ParsedName> {
    let stem = name.strip_suffix(".tar.gz")?;
    let split = |stem: &str| -> Option<(Domain, String)> {
        let (domain, stamp) = stem.rsplit_once('-')?;
        is_stamp(stamp).then_some(())?;
        Some((Domain::new(domain).ok()?, stamp.to_string()))
    };
    let parsed = |(domain, stamp), seq, suffix| ParsedName {
        domain,
        stamp,
        seq,
        suffix,
    };
    if let Some(ds) = split(stem) {
        return Some(parsed(ds, None, 1));
    }
    let (rest, n) = stem.rsplit_once('-')?;
    if let Some(digits) = n.strip_prefix('n') {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq: u64 = digits.parse().ok()?;
        return Some(parsed(split(rest)?, Some(seq), 1));
    }
    if n.starts_with('0') {
        return None;
    }
    let suffix: u32 = n.parse().ok().filter(|&s: &u32| s >= 2)?;
    Some(parsed(split(rest)?, None, suffix))
}

fn now_stamp() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day].[hour][minute][second]"
        ))
        .unwrap_or_else(|_| "00000000.000000".into());
    let rfc = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    (stamp, rfc)
}

impl BackupInfo {
    /// The key backups are ordered by (oldest first): older names first,
    /// by stamp and suffix; then newer ones by sequence number. The file
    /// name last only makes the order total.
    fn order(&self) -> (bool, u64, &str, u32, &str) {
        (
            self.seq.is_some(),
            self.seq.unwrap_or(0),
            &self.stamp,
            self.suffix,
            &self.file_name,
        )
    }
}

/// Every backup of `site` on the server, oldest first, in the order they
/// were made (see "Names and order" above). Files that are not backups
/// are ignored.
pub fn list(srv: &LocalServer, site: &Name) -> Vec<BackupInfo> {
    let h = srv.host();
    let Ok(dir) = srv.at(&srv.backups_dir(site)) else {
        return Vec::new();
    };
    let mut v: Vec<BackupInfo> = h
        .list(&dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, kind)| *kind == HostKind::File)
        .filter_map(|(file_name, _)| {
            let p = parse_name(&file_name)?;
            let at = dir.join(&file_name).ok()?;
            let bytes = h.len(&at).unwrap_or(0);
            Some(BackupInfo {
                path: PathBuf::from(h.display(&at)),
                file_name,
                domain: p.domain,
                stamp: p.stamp,
                seq: p.seq,
                suffix: p.suffix,
                bytes,
            })
        })
        .collect();
    v.sort_by(|a, b| a.order().cmp(&b.order()));
    v
}

/// The newest backup of `site`, if it has any.
pub fn newest(srv: &LocalServer, site: &Name) -> Option<BackupInfo> {
    list(srv, site).pop()
}

/// The sequence number for the next backup in `dir` (of a site whose
/// backups are `present`): one more than any given so far.
fn next_seq(h: &dyn Host, dir: &HostPath, present: &[BackupInfo]) -> u64 {
    let counted = dir
        .join(SEQ_FILE)
        .and_then(|p| h.read(&p))
        .ok()
        .flatten()
        .and_then(|t| String::from_utf8_lossy(&t).trim().parse::<u64>().ok())
        .unwrap_or(0);
    let named = present.iter().filter_map(|b| b.seq).max().unwrap_or(0);
    counted.max(named).saturating_add(1)
}

/// Whether a file in a backups directory is a temporary file of a backup
/// (its dump spooled to disk, or the archive before its rename).
fn is_temporary(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b".hoist-tmp-")
}

/// Removes the temporary files a killed backup of `site` left (its dump
/// spooled to disk, its unfinished archive), and returns them. Only while
/// no task runs on the site: crash recovery calls it for each site whose
/// task it found interrupted.
pub fn remove_leftovers(srv: &LocalServer, site: &Name) -> Result<Vec<PathBuf>, BackupError> {
    remove_temporary(srv, &srv.backups_dir(site))
}

fn remove_temporary(srv: &LocalServer, dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let h = srv.host();
    let at = srv.at(dir)?;
    let mut removed = Vec::new();
    // An unreadable backups directory holds no leftover hoist can name.
    for (name, _) in h.list(&at).unwrap_or_default() {
        if is_temporary(OsStr::new(&name)) {
            h.remove_file(&at.join(&name)?)?;
            removed.push(dir.join(name));
        }
    }
    if !removed.is_empty() {
        h.sync_dir(&at)?;
    }
    Ok(removed)
}

/// Deletes all but the newest `keep` backups of `site` (at least one is
/// always kept), never `protect` (the backup a task just made), and removes
/// temporary files a killed backup left behind. Returns what it deleted.
pub fn prune(
    srv: &LocalServer,
    site: &Name,
    keep: usize,
    protect: Option<&Path>,
) -> Result<Vec<PathBuf>, BackupError> {
    let dir = srv.backups_dir(site);
    // One task at a time touches a site, so a temporary file here is a
    // leftover of a killed backup of this site, not one in progress.
    let mut removed = remove_temporary(srv, &dir)?;
    let all = list(srv, site);
    let excess = all.len().saturating_sub(keep.max(1));
    let before = removed.len();
    for b in all.into_iter().take(excess) {
        if protect.is_some_and(|p| p == b.path) {
            continue;
        }
        srv.remove_file_at(&b.path)?;
        removed.push(b.path);
    }
    if removed.len() > before {
        srv.host().sync_dir(&srv.at(&dir)?)?;
    }
    Ok(removed)
}

/// One line of `hoist backups`: a backup, the task that made it (when a
/// task record names it), and whether it is whole.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The backup.
    pub info: BackupInfo,
    /// Its manifest, when it reads and checks out.
    pub manifest: Option<Manifest>,
    /// Why it is not whole (its manifest does not read or check out, or it
    /// belongs to another site, or its name and manifest disagree).
    pub problem: Option<String>,
}

/// Every backup of `site`, newest first, each with its manifest checked
/// (only the manifest is read: its first entry).
pub fn inspect(srv: &LocalServer, site: &Name) -> Vec<Listed> {
    let mut all = list(srv, site);
    all.reverse();
    all.into_iter()
        .map(|info| {
            let read = srv
                .on_host(&info.path)
                .map_err(BackupError::from)
                .and_then(|a| read_manifest(&a));
            let (manifest, problem) = match read {
                Err(e) => (None, Some(e.to_string())),
                Ok(m) if &m.site != site => {
                    let p = format!("a backup of {}, not of {site}", m.site);
                    (Some(m), Some(p))
                }
                Ok(m) if info.seq.is_some() && m.seq != info.seq => {
                    let p = "its name and its manifest give different sequence numbers".into();
                    (Some(m), Some(p))
                }
                Ok(m) => (Some(m), None),
            };
            Listed {
                info,
                manifest,
                problem,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Path encoding for the manifest

/// Encodes raw path bytes as a string: UTF-8 passes, `%` and invalid bytes
/// become `%XX`, so any file name round-trips through the YAML manifest.
fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                s.push_str("%25");
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// Symlink confinement

/// The symbolic links of a tree, by their path in it, with their targets.
type Links = BTreeMap<PathBuf, PathBuf>;

/// Follows the symlink target `target`, found in directory `dir` (components
/// relative to the tree's top), the way the kernel would — through further
/// symlinks of the tree, `links` — but never outside the tree. Returns
/// where it lands, or why it leaves the tree.
fn resolve_inside(
    links: &Links,
    dir: &[OsString],
    target: &Path,
    budget: &mut u32,
) -> Result<Vec<OsString>, String> {
    if target.as_os_str().is_empty() {
        return Err("empty symlink target".into());
    }
    let mut stack = dir.to_vec();
    for c in target.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("symlink to the absolute path {}", target.display()))
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if stack.pop().is_none() {
                    return Err(format!(
                        "symlink to {} points out of the site",
                        target.display()
                    ));
                }
            }
            Component::Normal(n) => {
                stack.push(n.to_os_string());
                let p: PathBuf = stack.iter().collect();
                if let Some(next) = links.get(&p) {
                    if *budget == 0 {
                        return Err("too many levels of symlinks".into());
                    }
                    *budget -= 1;
                    stack.pop();
                    stack = resolve_inside(links, &stack, next, budget)?;
                }
            }
        }
    }
    Ok(stack)
}

/// Whether the symlink at `rel` of a tree whose links are `links` stays
/// inside the tree.
fn check_link(links: &Links, rel: &Path, target: &Path) -> Result<(), String> {
    let dir: Vec<OsString> = rel
        .parent()
        .map(|p| p.iter().map(OsStr::to_os_string).collect())
        .unwrap_or_default();
    // The kernel gives up after 40 links; so does this.
    resolve_inside(links, &dir, target, &mut 40).map(|_| ())
}

// ---------------------------------------------------------------------------
// Creating a backup

/// One entry of the site directory to archive.
struct Item {
    /// Relative to the site directory.
    rel: PathBuf,
    kind: EntryKind,
    mode: u32,
    size: u64,
    mtime: u64,
    uid: u64,
    gid: u64,
    target: Option<PathBuf>,
}

fn archive_path(rel: &Path) -> PathBuf {
    // Not `join`: joining "" would give "site/", not "site".
    let mut p = OsString::from(SITE);
    if !rel.as_os_str().is_empty() {
        p.push("/");
        p.push(rel);
    }
    PathBuf::from(p)
}

/// Lists the site directory through its host, without following any
/// symlink: parents before children, names sorted, so archives are
/// deterministic. Links that lead out of the site, and entries that are no
/// file, directory or link, are left out and named.
fn walk(
    h: &dyn Host,
    site_dir: &HostPath,
    shown: &Path,
    scope: Scope,
) -> Result<(Vec<Item>, Vec<SkippedEntry>), BackupError> {
    let site_err = |msg: String| BackupError::SiteDir {
        path: shown.into(),
        msg,
    };
    match h.kind(site_dir) {
        Ok(Some(HostKind::Dir)) => {}
        Ok(Some(_)) => {
            return Err(site_err(
                "not a directory (a symlink is not followed)".into(),
            ))
        }
        Ok(None) => return Err(site_err("does not exist".into())),
        Err(e) => return Err(site_err(e.to_string())),
    }
    let only = (scope == Scope::Database).then(|| OsStr::new(SETTINGS_FILE));
    let listed = h.walk(site_dir, only)?;
    let links: Links = listed
        .iter()
        .filter_map(|e| Some((e.rel.clone(), e.target.clone()?)))
        .collect();
    let mut items = Vec::with_capacity(listed.len());
    let mut skipped = Vec::new();
    for e in listed {
        let skip = |reason: String| SkippedEntry {
            path: encode(archive_path(&e.rel).as_os_str().as_bytes()),
            reason,
        };
        let kind = match e.kind {
            HostKind::Dir => EntryKind::Dir,
            HostKind::File => EntryKind::File,
            HostKind::Symlink => {
                let target = e.target.as_deref().unwrap_or(Path::new(""));
                if let Err(reason) = check_link(&links, &e.rel, target) {
                    skipped.push(skip(reason));
                    continue;
                }
                EntryKind::Symlink
            }
            HostKind::Other => {
                skipped.push(skip(
                    "not a file, directory or symlink (socket, fifo or device)".into(),
                ));
                continue;
            }
        };
        items.push(Item {
            rel: e.rel,
            kind,
            mode: e.mode,
            size: e.size,
            mtime: e.mtime,
            uid: e.uid,
            gid: e.gid,
            target: e.target,
        });
    }
    Ok((items, skipped))
}

/// `settings.yaml` with its database password replaced by [`REDACTED`].
fn redact_settings(text: &str) -> String {
    if let Ok(s) = crate::yaml::from_str::<crate::render::SettingsFile>(text) {
        let pw = s.database.password.expose();
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let out = text.replace(&q(pw), &q(REDACTED));
        // A hand-edited file may hold the password in another form: then
        // the canonical redacted rendering is stored instead.
        if pw.is_empty() || !out.contains(pw) {
            return out;
        }
        return crate::render::settings_redacted(&s.config());
    }
    // Unparseable: blank every `password:` value we can see.
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("password:") || t.starts_with("\"password\":") {
                let indent = &l[..l.len() - t.len()];
                let key = t.split(':').next().unwrap_or("password");
                format!("{indent}{key}: \"{REDACTED}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// A Drupal `settings.php` with the database password (as its renders
/// quote it) replaced by [`REDACTED`]; a line that still holds the
/// password (a hand edit) is dropped. A restore renders the file again
/// from `settings.yaml`, keeping its salt.
fn redact_php(text: &str, password: Option<&str>) -> String {
    let Some(pw) = password.filter(|p| !p.is_empty()) else {
        return text.to_string();
    };
    let php = crate::drupal::settings::php_string;
    let out = text.replace(&php(pw), &php(REDACTED));
    if !out.contains(pw) {
        return out;
    }
    out.lines()
        .map(|l| {
            if l.contains(pw) {
                "// (a line that held the database password, left out by hoist's backup)\n"
                    .to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// Deletes a temporary file on its host unless disarmed: no half-written
/// backup is left behind by an error. One that cannot be removed is
/// logged, and removed by the next recovery ([`remove_leftovers`]).
struct TempFile<'h> {
    host: &'h dyn Host,
    path: Option<HostPath>,
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if let Err(e) = self.host.remove_file(&p) {
                tracing::warn!("cannot remove the temporary file of a backup: {e}");
            }
        }
    }
}

/// How much of the archive one gzip member holds (see [`ParGz`]).
const GZ_CHUNK: usize = 4 << 20;

/// gzip on every core. The stream is cut into [`GZ_CHUNK`] pieces, each
/// compressed on a thread of its own into a complete gzip member, and the
/// members are written in order: a file of concatenated members is one
/// gzip stream to `gzip -d`, GNU tar and flate2's `MultiGzDecoder`. Each
/// member costs about 20 bytes and a fresh dictionary, well under 1% of a
/// large archive. A stream shorter than one piece is compressed on the
/// caller's thread, as one member.
struct ParGz<W: Write> {
    inner: W,
    level: flate2::Compression,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
    threads: usize,
    members: usize,
}

impl<W: Write> ParGz<W> {
    fn new(inner: W, level: flate2::Compression) -> Self {
        ParGz {
            inner,
            level,
            buf: Vec::new(),
            pending: Default::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            members: 0,
        }
    }

    fn member(data: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), level);
        gz.write_all(data)?;
        gz.finish()
    }

    /// Writes the oldest piece in flight, once compressed.
    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.pop_front() {
            let out = h
                .join()
                .map_err(|_| io::Error::other("a compression thread panicked"))??;
            self.inner.write_all(&out)?;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        while self.pending.len() >= self.threads {
            self.write_oldest()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(GZ_CHUNK));
        let level = self.level;
        self.pending
            .push_back(std::thread::spawn(move || Self::member(&data, level)));
        self.members += 1;
        Ok(())
    }

    /// Compresses and writes what is left, and returns the inner writer.
    fn finish(mut self) -> io::Result<W> {
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        // The last piece, or an empty stream's one member.
        if !self.buf.is_empty() || self.members == 0 {
            let out = Self::member(&self.buf, self.level)?;
            self.inner.write_all(&out)?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParGz<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve(GZ_CHUNK.min(buf.len().max(64 << 10)));
        }
        let n = buf.len().min(GZ_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == GZ_CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How much of a dump is kept in memory before it goes to a temporary file:
/// most site databases fit, and their backups then create no extra file.
const SPOOL_IN_MEMORY: usize = 16 << 20;

/// A dump on its way into the archive: in memory up to
/// [`SPOOL_IN_MEMORY`], then in a private temporary file at `path` on the
/// server's host (removed when dropped).
struct Spool<'h> {
    host: &'h dyn Host,
    path: HostPath,
    mem: Vec<u8>,
    file: Option<(BufWriter<Box<dyn HostWrite>>, TempFile<'h>)>,
}

impl Write for Spool<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.mem.len() + buf.len() > SPOOL_IN_MEMORY {
            let host_io = |e: HostError| match e {
                HostError::Io { source, .. } => source,
                other => io::Error::other(other.to_string()),
            };
            self.host.remove_file(&self.path).map_err(host_io)?;
            let f = self.host.create(&self.path).map_err(host_io)?;
            let guard = TempFile {
                host: self.host,
                path: Some(self.path.clone()),
            };
            let mut w = BufWriter::with_capacity(BUF, f);
            w.write_all(&std::mem::take(&mut self.mem))?;
            self.file = Some((w, guard));
        }
        match &mut self.file {
            Some((w, _)) => w.write(buf),
            None => {
                self.mem.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((w, _)) => w.flush(),
            None => Ok(()),
        }
    }
}

/// A writer that hashes and counts what passes through it.
struct HashCount<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts the uncompressed tar stream for the progress callback.
struct Progress<'a, W> {
    inner: W,
    done: u64,
    total: u64,
    reported: u64,
    cb: Option<&'a dyn Fn(u64, u64)>,
}

impl<W: Write> Write for Progress<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if let Some(cb) = self.cb {
            if self.done - self.reported >= 4 << 20 {
                self.reported = self.done;
                cb(self.done, self.total);
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads exactly `left` bytes from a file being archived; fewer (the file
/// shrank) is an error, so a header never claims bytes that are not there.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h
}

/// Backs up site `site` — its directory `sites/<domain>` on `platform` and
/// its open database `db` — into a new archive under the site's backups
/// directory, written to a temporary file, synced, then renamed, so an
/// archive with a backup's name is always complete.
///
/// Everything is streamed: the dump goes to a private temporary file first
/// (its size and SHA-256 go into the manifest, which comes first), and files
/// are copied through the compressor with large buffers. `progress`, when
/// given, is called now and then with (bytes archived, bytes in all),
/// uncompressed.
///
/// With the `failpoints` feature, failpoint `backup-archive` fires between
/// the dump and the site files (an error, or a kill with `:abort`).
pub fn create(
    srv: &LocalServer,
    site: &Name,
    platform: &PlatformName,
    domain: &Domain,
    (db, login): (&dyn DbServer, &Login),
    scope: Scope,
    progress: Option<&dyn Fn(u64, u64)>,
) -> Result<Created, BackupError> {
    let host = srv.host();
    let shown_site = srv.site_dir(platform, domain);
    let site_dir = srv.at(&shown_site)?;
    let shown_dir = srv.backups_dir(site);
    let dir = srv.at(&shown_dir)?;
    host.mkdir(&dir, true)?;
    let (stamp, created) = now_stamp();
    let pid = std::process::id();
    let seq = next_seq(host, &dir, &list(srv, site));

    // 1. The dump, kept in memory while it is small, else spooled to a
    // private temporary file.
    let dump_path = dir.join(&format!(".hoist-tmp-{pid}-{stamp}.sql"))?;
    let shown_dump = PathBuf::from(host.display(&dump_path));
    let mut hc = HashCount {
        inner: Spool {
            host,
            path: dump_path.clone(),
            mem: Vec::new(),
            file: None,
        },
        hash: Sha256::new(),
        count: 0,
    };
    db.dump(login, &mut hc)?;
    hc.flush().map_err(io_err(&shown_dump))?;
    let dump_info = DumpInfo {
        size: hc.count,
        sha256: hex(&hc.hash.finalize()),
    };

    // 2. The site directory, listed; settings.yaml (and an application's
    // settings.php, which holds the same password) redacted in memory.
    let (items, skipped) = walk(host, &site_dir, &shown_site, scope)?;
    let settings_rel = Path::new(SETTINGS_FILE);
    let php_rel = Path::new(crate::driver::drupal7::SETTINGS_PHP);
    let password = site_dir
        .join(SETTINGS_FILE)
        .and_then(|p| host.read(&p))
        .ok()
        .flatten()
        .and_then(|t| {
            crate::yaml::from_str::<crate::render::SettingsFile>(&String::from_utf8_lossy(&t)).ok()
        })
        .map(|s| s.database.password.expose().to_string());
    let mut redacted: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    let mut entries = Vec::with_capacity(items.len());
    for it in &items {
        let mut size = it.size;
        let is = |rel: &Path| it.kind == EntryKind::File && it.rel == rel;
        if is(settings_rel) || is(php_rel) {
            let mut text = Vec::new();
            host.open_in(&site_dir, &it.rel)?
                .read
                .read_to_end(&mut text)
                .map_err(io_err(&shown_site.join(&it.rel)))?;
            let text = String::from_utf8_lossy(&text);
            let r = if is(settings_rel) {
                redact_settings(&text)
            } else {
                redact_php(&text, password.as_deref())
            }
            .into_bytes();
            size = r.len() as u64;
            redacted.insert(it.rel.clone(), r);
        }
        entries.push(ManifestEntry {
            path: encode(archive_path(&it.rel).as_os_str().as_bytes()),
            kind: it.kind,
            mode: it.mode,
            size,
            target: it.target.as_ref().map(|t| encode(t.as_os_str().as_bytes())),
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        site: site.clone(),
        domain: domain.clone(),
        platform: platform.clone(),
        database: login.database.clone(),
        created,
        seq: Some(seq),
        total: None,
        settings_redacted: true,
        scope,
        dump: dump_info,
        entries,
        skipped: skipped.clone(),
    };
    let manifest = Manifest {
        total: Some(
            declared_total(&manifest).map_err(|msg| BackupError::Manifest {
                archive: shown_dir.clone(),
                msg,
            })?,
        ),
        ..manifest
    };
    let manifest_text = serde_yaml::to_string(&manifest).map_err(|e| BackupError::Manifest {
        archive: shown_dir.clone(),
        msg: e.to_string(),
    })?;

    // 3. The archive, into a private temporary file. Its name is new: its
    // sequence number is higher than any the site's backups had.
    let final_path = dir.join(&archive_name(domain, &stamp, seq))?;
    let tmp_path = dir.join(&format!(".hoist-tmp-{pid}-{stamp}.tar.gz"))?;
    let shown_tmp = PathBuf::from(host.display(&tmp_path));
    host.remove_file(&tmp_path)?;
    let file = host.create(&tmp_path)?;
    let mut tmp_guard = TempFile {
        host,
        path: Some(tmp_path.clone()),
    };
    let gz = ParGz::new(
        BufWriter::with_capacity(BUF, file),
        flate2::Compression::new(COMPRESSION_LEVEL),
    );
    let total = manifest.total.unwrap_or(0);
    let counted = Progress {
        inner: gz,
        done: 0,
        total,
        reported: 0,
        cb: progress,
    };
    let mut tar = tar::Builder::new(counted);
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let werr = |e: io::Error| BackupError::Io {
        path: shown_tmp.clone(),
        source: e,
    };

    let mut h = header(
        tar::EntryType::Regular,
        0o600,
        manifest_text.len() as u64,
        mtime,
    );
    tar.append_data(&mut h, MANIFEST, manifest_text.as_bytes())
        .map_err(werr)?;

    let mut h = header(tar::EntryType::Regular, 0o600, manifest.dump.size, mtime);
    match hc.inner.file {
        None => tar
            .append_data(&mut h, DUMP, hc.inner.mem.as_slice())
            .map_err(werr)?,
        Some((file, guard)) => {
            let written = file.into_inner().map_err(|e| BackupError::Io {
                path: shown_dump.clone(),
                source: e.into_error(),
            })?;
            written.finish(Finish::default())?;
            let dump_file = host.open(&dump_path)?;
            let dump_reader = Exact {
                inner: BufReader::with_capacity(BUF, dump_file.read),
                left: manifest.dump.size,
            };
            tar.append_data(&mut h, DUMP, dump_reader).map_err(werr)?;
            drop(guard);
        }
    }

    crate::failpoint::hit("backup-archive", crate::failpoint::When::Before)
        .map_err(BackupError::Failpoint)?;

    for it in &items {
        let path = archive_path(&it.rel);
        let src = shown_site.join(&it.rel);
        match it.kind {
            EntryKind::Dir => {
                let mut h = header(tar::EntryType::Directory, it.mode, 0, it.mtime);
                h.set_uid(it.uid);
                h.set_gid(it.gid);
                tar.append_data(&mut h, &path, io::empty()).map_err(werr)?;
            }
            EntryKind::Symlink => {
                let mut h = header(tar::EntryType::Symlink, it.mode, 0, it.mtime);
                h.set_uid(it.uid);
                h.set_gid(it.gid);
                let target = it.target.as_deref().unwrap_or(Path::new(""));
                tar.append_link(&mut h, &path, target).map_err(werr)?;
            }
            EntryKind::File => {
                let mut h;
                if let Some(r) = redacted.get(&it.rel) {
                    h = header(tar::EntryType::Regular, it.mode, r.len() as u64, it.mtime);
                    h.set_uid(it.uid);
                    h.set_gid(it.gid);
                    tar.append_data(&mut h, &path, r.as_slice()).map_err(werr)?;
                    continue;
                }
                // A file swapped for a symlink or anything but a file since
                // the walk is refused, not followed.
                let f = host.open_in(&site_dir, &it.rel).map_err(|e| match e {
                    // Not readable is not a change: said as it is.
                    HostError::Io { source, .. }
                        if source.kind() == io::ErrorKind::PermissionDenied =>
                    {
                        io_err(&src)(source)
                    }
                    _ => BackupError::Changed { path: src.clone() },
                })?;
                if f.len != it.size {
                    return Err(BackupError::Changed { path: src });
                }
                h = header(tar::EntryType::Regular, it.mode, it.size, it.mtime);
                h.set_uid(it.uid);
                h.set_gid(it.gid);
                let r = Exact {
                    inner: f.read,
                    left: it.size,
                };
                tar.append_data(&mut h, &path, r).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        BackupError::Changed { path: src.clone() }
                    } else {
                        werr(e)
                    }
                })?;
            }
        }
    }

    let counted = tar.into_inner().map_err(werr)?;
    if let Some(cb) = progress {
        cb(counted.done, counted.total);
    }
    let file = counted
        .inner
        .finish()
        .map_err(werr)?
        .into_inner()
        .map_err(|e| werr(e.into_error()))?;
    file.finish(Finish {
        synced: true,
        ..Finish::default()
    })?;
    // The counter first: once a name with this number exists, no later
    // backup may be given it, even after pruning removed that name.
    host.write(
        &dir.join(SEQ_FILE)?,
        format!("{seq}\n").as_bytes(),
        WriteMode::Private,
    )?;
    let shown_final = PathBuf::from(host.display(&final_path));
    if host.exists(&final_path)? {
        return Err(BackupError::Io {
            path: shown_final,
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        });
    }
    host.rename(&tmp_path, &final_path)?;
    tmp_guard.path = None;
    host.sync_dir(&dir)?;
    let bytes = host.len(&final_path).unwrap_or(0);
    let file_name = final_path.file_name().to_string();
    Ok(Created {
        info: BackupInfo {
            path: shown_final,
            file_name,
            domain: domain.clone(),
            stamp,
            seq: Some(seq),
            suffix: 1,
            bytes,
        },
        manifest,
        skipped,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------
// Reading and extracting

// Archives are written as several gzip members (see `ParGz`); older ones
// are one. Every member's checksum is checked.
type Decoder = Box<dyn Read + Send>;

/// How much of an archive is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Its first entries only (the manifest): inflated as they are asked
    /// for.
    Head,
    /// All of it: inflated on a thread of its own, beside the one that
    /// writes or loads what it holds.
    Whole,
}

fn open_archive(archive: &OnHost, how: Reading) -> Result<tar::Archive<Decoder>, BackupError> {
    let f = archive.host.open(&archive.path)?;
    let gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUF, f.read));
    Ok(tar::Archive::new(match how {
        Reading::Head => Box::new(gz),
        Reading::Whole => Box::new(crate::par::ReadAhead::new(gz, BUF, 4)),
    }))
}

/// An entry's path after GNU long-name handling, as raw bytes.
struct Raw {
    path: Vec<u8>,
    link: Option<Vec<u8>>,
}

/// Reads entries in raw mode so GNU long names are handled here, bounded,
/// and every other extension (PAX, sparse, ...) is refused.
struct Reader<'a> {
    archive: &'a Path,
    entries: tar::Entries<'a, Decoder>,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, e: impl std::fmt::Display) -> BackupError {
        BackupError::Corrupt {
            archive: self.archive.into(),
            msg: format!("{e} (corrupt or truncated archive)"),
        }
    }

    fn refuse(&self, entry: &[u8], reason: impl Into<String>) -> BackupError {
        BackupError::Refused {
            archive: self.archive.into(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn next(&mut self) -> Result<Option<(tar::Entry<'a, Decoder>, Raw)>, BackupError> {
        let mut long_path: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut e = match self.entries.next() {
                None if long_path.is_some() || long_link.is_some() => {
                    return Err(self.corrupt("a long name with no entry after it"))
                }
                None => return Ok(None),
                Some(Err(e)) => return Err(self.corrupt(e)),
                Some(Ok(e)) => e,
            };
            let kind = e.header().entry_type();
            if kind.is_gnu_longname() || kind.is_gnu_longlink() {
                let size = e.header().entry_size().map_err(|e| self.corrupt(e))?;
                if size > MAX_LONG_NAME {
                    return Err(self.refuse(b"", format!("a long name of {size} bytes")));
                }
                let mut v = Vec::new();
                (&mut e)
                    .take(size)
                    .read_to_end(&mut v)
                    .map_err(|e| self.corrupt(e))?;
                if v.len() as u64 != size {
                    return Err(self.corrupt("a long name is cut short"));
                }
                while v.last() == Some(&0) {
                    v.pop();
                }
                let slot = if kind.is_gnu_longname() {
                    &mut long_path
                } else {
                    &mut long_link
                };
                if slot.replace(v).is_some() {
                    return Err(self.corrupt("two long names for one entry"));
                }
                continue;
            }
            let path = long_path
                .take()
                .unwrap_or_else(|| e.header().path_bytes().into_owned());
            let link = long_link
                .take()
                .or_else(|| e.header().link_name_bytes().map(|c| c.into_owned()));
            return Ok(Some((e, Raw { path, link })));
        }
    }
}

/// Copies exactly `size` bytes of an entry to `out`; a short entry is a
/// truncated archive. Read errors blame the archive, write errors `dest`.
fn copy_entry(
    r: &mut impl Read,
    size: u64,
    out: &mut dyn Write,
    archive: &Path,
    entry: &[u8],
    dest: &Path,
) -> Result<(), BackupError> {
    let mut buf = vec![0u8; BUF.min(usize::try_from(size).unwrap_or(BUF)).max(1)];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = r.read(&mut buf[..want]).map_err(|e| BackupError::Corrupt {
            archive: archive.into(),
            msg: format!(
                "entry {:?}: {e} (corrupt or truncated archive)",
                String::from_utf8_lossy(entry)
            ),
        })?;
        if n == 0 {
            return Err(BackupError::Corrupt {
                archive: archive.into(),
                msg: format!(
                    "entry {:?}: {} of its {size} bytes are missing (truncated archive)",
                    String::from_utf8_lossy(entry),
                    left
                ),
            });
        }
        out.write_all(&buf[..n]).map_err(io_err(dest))?;
        left -= n as u64;
    }
    Ok(())
}

/// Checks an archive path: relative, no `.` or `..` or empty components,
/// no NUL. Returns its components. A single trailing `/` (directories) is
/// allowed.
fn check_path(p: &[u8]) -> Result<Vec<&[u8]>, String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if p[0] == b'/' {
        return Err("absolute path".into());
    }
    if p.contains(&0) {
        return Err("NUL in path".into());
    }
    let p = p.strip_suffix(b"/").unwrap_or(p);
    let comps: Vec<&[u8]> = p.split(|&b| b == b'/').collect();
    for c in &comps {
        match *c {
            b".." => return Err("`..` in path".into()),
            b"." | b"" => return Err("`.` or empty component in path".into()),
            _ => {}
        }
    }
    Ok(comps)
}

fn read_manifest_from(r: &mut Reader<'_>) -> Result<Manifest, BackupError> {
    let archive = r.archive.to_path_buf();
    let merr = |msg: String| BackupError::Manifest {
        archive: archive.clone(),
        msg,
    };
    let Some((mut e, raw)) = r.next()? else {
        return Err(merr("the archive is empty".into()));
    };
    if raw.path != MANIFEST.as_bytes() || e.header().entry_type() != tar::EntryType::Regular {
        return Err(merr(format!(
            "not the first entry (found {:?}): not a hoist backup",
            String::from_utf8_lossy(&raw.path)
        )));
    }
    let size = e.header().entry_size().map_err(|e| r.corrupt(e))?;
    if size > MAX_MANIFEST {
        return Err(merr(format!("{size} bytes is too large")));
    }
    let mut text = Vec::new();
    copy_entry(&mut e, size, &mut text, r.archive, &raw.path, r.archive)?;
    let text = String::from_utf8(text).map_err(|_| merr("not UTF-8".into()))?;
    let m: Manifest = crate::yaml::from_str(&text).map_err(|e| merr(e.located()))?;
    if m.format != FORMAT {
        return Err(merr(format!(
            "format {} (this hoist reads format {FORMAT})",
            m.format
        )));
    }
    if m.dump.sha256.len() != 64 || !m.dump.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(merr("dump.sha256 is not a SHA-256".into()));
    }
    declared_total(&m).map_err(merr)?;
    Ok(m)
}

/// The bytes a manifest declares in all (the dump and every entry), within
/// the caps ([`MAX_ENTRIES`], [`MAX_BYTES`]) and equal to its `total` when
/// it states one; or what is wrong with it.
fn declared_total(m: &Manifest) -> Result<u64, String> {
    if m.entries.len() > MAX_ENTRIES {
        return Err(format!(
            "lists {} entries, more than the {MAX_ENTRIES} hoist reads",
            m.entries.len()
        ));
    }
    let sizes = std::iter::once(m.dump.size).chain(m.entries.iter().map(|e| e.size));
    let mut sum: u64 = 0;
    for size in sizes {
        sum = sum
            .checked_add(size)
            .filter(|&s| s <= MAX_BYTES)
            .ok_or_else(|| format!("declares more than {MAX_BYTES} bytes"))?;
    }
    match m.total {
        Some(t) if t != sum => Err(format!(
            "declares {t} bytes in all, but its dump and entries hold {sum}"
        )),
        _ => Ok(sum),
    }
}

/// Whether `bytes` in `files` files fit on a filesystem with `free` bytes
/// and `free_files` files left (`None`: no limit), leaving the margin
/// ([`ROOM_MARGIN`], and 1/16 of what is written) free; if not, why.
fn room_for(bytes: u64, files: u64, free: u64, free_files: Option<u64>) -> Result<(), String> {
    let want = bytes
        .checked_add(bytes / 16)
        .and_then(|w| w.checked_add(ROOM_MARGIN))
        .unwrap_or(u64::MAX);
    if want == u64::MAX || want > free {
        return Err(format!(
            "it holds {bytes} bytes, and the filesystem has {free} bytes free \
             ({want} needed, with a margin)"
        ));
    }
    if let Some(left) = free_files.filter(|&left| files.saturating_add(files / 16 + 64) > left) {
        return Err(format!(
            "it holds {files} files, and the filesystem has room for {left} more"
        ));
    }
    Ok(())
}

/// Refuses to extract `m` (the manifest of `archive`) into `dir` when its
/// filesystem has no room for what the manifest declares, with a margin
/// ([`extract`] holds every entry to its declared size, so this bounds
/// what is written). [`extract`] checks it itself; a restore checks it
/// first too, before it changes anything.
pub fn check_room(
    archive: &Path,
    m: &Manifest,
    h: &dyn Host,
    dir: &HostPath,
) -> Result<(), BackupError> {
    let bytes = declared_total(m).map_err(|msg| BackupError::Manifest {
        archive: archive.into(),
        msg,
    })?;
    let (free, free_files) = h.free_space(dir)?;
    room_for(bytes, m.entries.len() as u64 + 1, free, free_files).map_err(|msg| BackupError::Room {
        archive: archive.into(),
        msg,
    })
}

/// Reads an archive's manifest (its first entry) and validates it, without
/// extracting anything: to show what a backup holds, or to check that it is
/// a backup of the site being restored.
pub fn read_manifest(archive: &OnHost) -> Result<Manifest, BackupError> {
    let shown = archive.shown();
    let mut a = open_archive(archive, Reading::Head)?;
    let mut r = reader(&shown, &mut a)?;
    read_manifest_from(&mut r)
}

/// Removes the staging directory on every path out of [`extract`] but
/// success; one that cannot be removed is logged, and removed by the next
/// [`remove_staging`].
struct Staging<'h> {
    host: &'h dyn Host,
    path: Option<HostPath>,
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if let Err(e) = self.host.remove_tree(&p) {
                tracing::warn!("cannot remove the staging directory of a restore: {e}");
            }
        }
    }
}

fn staging_prefix(dest_name: &OsStr) -> OsString {
    let mut p = OsString::from(".hoist-restore-");
    p.push(dest_name);
    p.push("-");
    p
}

/// Removes what a killed [`extract`] into `dest_dir` left behind (its
/// staging directories `.hoist-restore-<name>-<pid>` beside `dest_dir`).
/// [`extract`] does this itself first; crash recovery may call it too. Safe
/// because one task at a time touches a site.
pub fn remove_staging(dest_dir: &OnHost) -> Result<(), BackupError> {
    let name = dest_dir.path.file_name();
    if name.is_empty() {
        return Ok(());
    }
    let (h, parent) = (&dest_dir.host, dest_dir.path.parent());
    let prefix = staging_prefix(OsStr::new(name));
    // An unreadable parent holds no staging directory hoist can name.
    for (n, _) in h.list(&parent).unwrap_or_default() {
        let rest = n.as_bytes().strip_prefix(prefix.as_bytes());
        if rest.is_some_and(|r| !r.is_empty() && r.iter().all(u8::is_ascii_digit)) {
            h.remove_tree(&parent.join(&n)?)?;
        }
    }
    Ok(())
}

/// Extracts backup `archive` safely: its site directory becomes `dest_dir`
/// (which must not exist, or be an empty directory) and its dump goes to
/// `load` as it is read (see [`DumpLoader`]). Everything is first extracted into a staging
/// directory beside `dest_dir` and checked against the manifest; any refusal
/// or error removes the staging directory and leaves `dest_dir` untouched.
///
/// The restored `settings.yaml` holds a redacted password: the caller
/// creates a new database and user, loads the dump into it, and rewrites
/// the settings. Modes (permission bits only) and mtimes are restored;
/// owners are not.
///
/// With the `failpoints` feature, failpoint `restore-extract` fires after
/// the entries are extracted into staging and before the rename.
pub fn extract(
    archive: &OnHost,
    dest_dir: &OnHost,
    load: &mut DumpLoader<'_>,
) -> Result<Extracted, BackupError> {
    let (h, dest) = (dest_dir.host.as_ref(), &dest_dir.path);
    let shown = dest_dir.shown();
    let derr = |msg: &str| BackupError::Destination {
        path: shown.clone(),
        msg: msg.into(),
    };
    let name = dest.file_name();
    if name.is_empty() {
        return Err(derr("has no file name"));
    }
    let parent = dest.parent();
    match h.kind(dest)? {
        None => {}
        Some(HostKind::Dir) if !h.list(dest)?.is_empty() => {
            return Err(derr("exists and is not empty"))
        }
        Some(HostKind::Dir) => {}
        Some(_) => return Err(derr("exists and is not a directory")),
    }
    h.mkdir(&parent, false)?;
    remove_staging(dest_dir)?;
    let mut staging_name = staging_prefix(OsStr::new(name));
    staging_name.push(std::process::id().to_string());
    let staging_name = staging_name.to_string_lossy().into_owned();
    h.mkdir_in(&parent, Path::new(&staging_name))?;
    let staging = parent.join(&staging_name)?;
    let guard = Staging {
        host: h,
        path: Some(staging.clone()),
    };

    let manifest = extract_into(archive, h, &staging, load)?;
    crate::failpoint::hit("restore-extract", crate::failpoint::When::Before)
        .map_err(BackupError::Failpoint)?;

    // One sync of the host's filesystems makes every extracted file
    // durable before the rename publishes them (cheaper than an fsync per
    // file).
    h.make_durable()?;
    // rename(2) replaces an empty directory, and fails on a non-empty one
    // that appeared meanwhile: either way nothing of the user's is lost.
    h.rename(&staging.join(SITE)?, dest)?;
    h.sync_dir(&parent)?;
    drop(guard);
    Ok(Extracted {
        manifest,
        site_dir: shown,
    })
}

/// Loads backup `archive`'s dump with `load` (see [`DumpLoader`]) and
/// nothing else: what undoing an edit in place needs, with no site
/// directory to extract. Returns the manifest.
pub fn load_dump(archive: &OnHost, load: &mut DumpLoader<'_>) -> Result<Manifest, BackupError> {
    let shown = archive.shown();
    let mut a = open_archive(archive, Reading::Whole)?;
    let mut r = reader(&shown, &mut a)?;
    let manifest = read_manifest_from(&mut r)?;
    stream_dump(&mut r, &manifest, load)?;
    Ok(manifest)
}

fn reader<'a>(
    archive: &'a Path,
    a: &'a mut tar::Archive<Decoder>,
) -> Result<Reader<'a>, BackupError> {
    let entries = a
        .entries()
        .map_err(|e| BackupError::Corrupt {
            archive: archive.into(),
            msg: e.to_string(),
        })?
        .raw(true);
    Ok(Reader { archive, entries })
}

/// The dump entry as a loader reads it: bounded by its size, hashed, and
/// checked against the manifest at its end. A failure is kept in `failure`
/// (the archive's fault, reported rather than the loader's view of it).
struct CheckedDump<'e, R> {
    inner: &'e mut R,
    left: u64,
    hash: Sha256,
    want: &'e str,
    checked: bool,
    failure: Option<BackupError>,
    archive: &'e Path,
}

impl<R: Read> CheckedDump<'_, R> {
    fn fail(&mut self, kind: io::ErrorKind, e: BackupError) -> io::Error {
        let msg = e.to_string();
        self.failure.get_or_insert(e);
        io::Error::new(kind, msg)
    }
}

impl<R: Read> Read for CheckedDump<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            if !self.checked {
                if hex(&self.hash.clone().finalize()) != self.want {
                    let e = BackupError::Refused {
                        archive: self.archive.into(),
                        entry: DUMP.into(),
                        reason: "its SHA-256 does not match the manifest".into(),
                    };
                    return Err(self.fail(io::ErrorKind::InvalidData, e));
                }
                self.checked = true;
            }
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..max]) {
            Ok(0) => {
                let e = BackupError::Corrupt {
                    archive: self.archive.into(),
                    msg: format!(
                        "entry {DUMP:?}: {} of its bytes are missing (truncated archive)",
                        self.left
                    ),
                };
                return Err(self.fail(io::ErrorKind::UnexpectedEof, e));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let b = BackupError::Corrupt {
                    archive: self.archive.into(),
                    msg: format!("entry {DUMP:?}: {e} (corrupt or truncated archive)"),
                };
                return Err(self.fail(e.kind(), b));
            }
        };
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads the dump, the entry after the manifest, into `load`, checked
/// against the manifest.
fn stream_dump(
    r: &mut Reader<'_>,
    manifest: &Manifest,
    load: &mut DumpLoader<'_>,
) -> Result<(), BackupError> {
    let Some((mut e, raw)) = r.next()? else {
        return Err(r.corrupt(format!("{DUMP} is missing (truncated archive)")));
    };
    if raw.path != DUMP.as_bytes() || e.header().entry_type() != tar::EntryType::Regular {
        return Err(r.refuse(&raw.path, format!("expected {DUMP} as the second entry")));
    }
    let size = e.header().entry_size().map_err(|e| r.corrupt(e))?;
    if size != manifest.dump.size {
        return Err(r.refuse(
            &raw.path,
            format!(
                "{size} bytes in its header, {} in the manifest",
                manifest.dump.size
            ),
        ));
    }
    let mut dump = CheckedDump {
        inner: &mut e,
        left: size,
        hash: Sha256::new(),
        want: &manifest.dump.sha256,
        checked: false,
        failure: None,
        archive: r.archive,
    };
    let loaded = load(&mut dump);
    if let Some(e) = dump.failure.take() {
        return Err(e);
    }
    loaded.map_err(|source| BackupError::Load {
        archive: r.archive.into(),
        source: Box::new(source),
    })?;
    if !dump.checked {
        // A loader that stopped early: the rest is read and checked still,
        // so a tampered archive never passes.
        io::copy(&mut dump, &mut io::sink()).map_err(|e| {
            dump.failure
                .take()
                .unwrap_or_else(|| r.corrupt(format!("entry {DUMP:?}: {e}")))
        })?;
    }
    Ok(())
}

/// Extracts into `staging/site`, loads the dump with `load`, and returns
/// the manifest.
fn extract_into(
    at: &OnHost,
    host: &dyn Host,
    staging: &HostPath,
    load: &mut DumpLoader<'_>,
) -> Result<Manifest, BackupError> {
    let shown = at.shown();
    let archive = shown.as_path();
    let shown_staging = PathBuf::from(host.display(staging));
    let mut a = open_archive(at, Reading::Whole)?;
    let mut r = reader(archive, &mut a)?;
    let manifest = read_manifest_from(&mut r)?;
    check_room(archive, &manifest, host, staging)?;
    let merr = |msg: String| BackupError::Manifest {
        archive: archive.into(),
        msg,
    };

    // The manifest's entries, checked like archive paths, by raw path.
    let mut expected: BTreeMap<Vec<u8>, &ManifestEntry> = BTreeMap::new();
    for me in &manifest.entries {
        let raw = decode(&me.path).ok_or_else(|| merr(format!("bad path {:?}", me.path)))?;
        let comps = check_path(&raw).map_err(|e| merr(format!("path {:?}: {e}", me.path)))?;
        if comps[0] != SITE.as_bytes() || raw.ends_with(b"/") {
            return Err(merr(format!("path {:?} is not under {SITE}/", me.path)));
        }
        if me.mode > 0o777 {
            return Err(merr(format!("path {:?}: bad mode", me.path)));
        }
        if expected.insert(raw, me).is_some() {
            return Err(merr(format!("path {:?} is listed twice", me.path)));
        }
    }
    if expected.get(SITE.as_bytes()).map(|e| e.kind) != Some(EntryKind::Dir) {
        return Err(merr(format!("lists no {SITE}/ directory")));
    }

    // The dump: second entry, checked against the manifest as it loads.
    stream_dump(&mut r, &manifest, load)?;

    // The site tree. Symlinks are made last, once no further entry can be
    // written through them, and then checked in place.
    let mut seen: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    let mut made_dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    // Entry, its path in staging, its target.
    let mut links: Vec<(Vec<u8>, PathBuf, Vec<u8>)> = Vec::new();
    while let Some((mut e, raw)) = r.next()? {
        let path = raw.path.strip_suffix(b"/").unwrap_or(&raw.path).to_vec();
        check_path(&raw.path).map_err(|why| r.refuse(&raw.path, why))?;
        let Some(me) = expected.get(&path) else {
            return Err(r.refuse(&raw.path, "not listed in the manifest"));
        };
        if !seen.insert(path.clone()) {
            return Err(r.refuse(&raw.path, "appears twice"));
        }
        // Every entry's parent must be a directory extracted before it, so
        // nothing is ever written through a symlink or outside the tree.
        if let Some(i) = path.iter().rposition(|&b| b == b'/') {
            if !made_dirs.contains(&path[..i]) {
                return Err(r.refuse(
                    &raw.path,
                    "its parent directory is not in the archive before it",
                ));
            }
        }
        let h = e.header();
        let kind = h.entry_type();
        let mode = h.mode().map_err(|e| r.corrupt(e))? & 0o777;
        let mtime = h.mtime().unwrap_or(0);
        let size = h.entry_size().map_err(|e| r.corrupt(e))?;
        let want = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => return Err(r.refuse(&raw.path, "a hard link")),
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(r.refuse(&raw.path, "a device file"))
            }
            tar::EntryType::Fifo => return Err(r.refuse(&raw.path, "a fifo")),
            other => {
                return Err(r.refuse(
                    &raw.path,
                    format!("an entry of type {:?}", other.as_byte() as char),
                ))
            }
        };
        if want != me.kind {
            return Err(r.refuse(&raw.path, "its kind does not match the manifest"));
        }
        if want != EntryKind::File && size != 0 {
            return Err(r.refuse(&raw.path, "a directory or link with data"));
        }
        if size != me.size {
            return Err(r.refuse(
                &raw.path,
                format!("{size} bytes in its header, {} in the manifest", me.size),
            ));
        }
        // Relative to staging: checked above, plain components only.
        let rel = PathBuf::from(OsStr::from_bytes(&path));
        let dest = shown_staging.join(&rel);
        match want {
            EntryKind::Dir => {
                host.mkdir_in(staging, &rel)?;
                made_dirs.insert(path.clone());
                dirs.push((rel, mode, mtime));
            }
            EntryKind::File => {
                let f = host.create_in(staging, &rel)?;
                let mut w = BufWriter::with_capacity(BUF.min(size as usize).max(8192), f);
                copy_entry(&mut e, size, &mut w, archive, &raw.path, &dest)?;
                let f = w.into_inner().map_err(|e| io_err(&dest)(e.into_error()))?;
                f.finish(Finish {
                    mode: Some(mode),
                    mtime: Some(mtime),
                    synced: false,
                })?;
            }
            EntryKind::Symlink => {
                let target = raw
                    .link
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| r.refuse(&raw.path, "a symlink with no target"))?;
                if me.target.as_deref().and_then(decode).as_deref() != Some(&target[..]) {
                    return Err(r.refuse(&raw.path, "its target does not match the manifest"));
                }
                if target.first() == Some(&b'/') {
                    return Err(r.refuse(&raw.path, "a symlink to an absolute path"));
                }
                links.push((raw.path.clone(), rel, target));
            }
        }
    }
    if let Some(missing) = expected.keys().find(|k| !seen.contains(*k)) {
        return Err(BackupError::Corrupt {
            archive: archive.into(),
            msg: format!(
                "entry {:?} listed in the manifest is missing (truncated archive)",
                String::from_utf8_lossy(missing)
            ),
        });
    }
    // Read what is left so the gzip trailer (CRC and length) is checked.
    let mut rest = a.into_inner();
    let n = io::copy(&mut (&mut rest).take(MAX_TRAILER + 1), &mut io::sink()).map_err(|e| {
        BackupError::Corrupt {
            archive: archive.into(),
            msg: format!("{e} (corrupt or truncated archive)"),
        }
    })?;
    if n > MAX_TRAILER {
        return Err(BackupError::Corrupt {
            archive: archive.into(),
            msg: "data after the end of the archive".into(),
        });
    }

    // The site's links, by their path in the site (what they resolve
    // against), made once no further entry can be written through them.
    let site_links: Links = links
        .iter()
        .map(|(_, rel, target)| {
            let in_site = rel.strip_prefix(SITE).unwrap_or(rel).to_path_buf();
            (in_site, PathBuf::from(OsStr::from_bytes(target)))
        })
        .collect();
    for (_, rel, target) in &links {
        host.symlink_in(staging, rel, Path::new(OsStr::from_bytes(target)))?;
    }
    for (entry, rel, target) in &links {
        let in_site = rel.strip_prefix(SITE).unwrap_or(rel);
        check_link(&site_links, in_site, Path::new(OsStr::from_bytes(target))).map_err(|why| {
            BackupError::Refused {
                archive: archive.into(),
                entry: String::from_utf8_lossy(entry).into_owned(),
                reason: why,
            }
        })?;
    }
    // Directory modes last (deepest first): a read-only directory must not
    // stop its own contents from being written.
    for (rel, mode, mtime) in dirs.iter().rev() {
        host.set_dir_meta(staging, rel, *mode, Some(*mtime))?;
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_dump_spills_to_a_private_file_that_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".dump.sql");
        let host = crate::driver::host::LocalHost::new(dir.path().to_path_buf());
        let at = HostPath::new(".dump.sql").unwrap();
        let mut small = Spool {
            host: &host,
            path: at.clone(),
            mem: Vec::new(),
            file: None,
        };
        small.write_all(b"CREATE TABLE t(x);").unwrap();
        assert!(
            small.file.is_none() && !path.exists(),
            "small dumps stay in memory"
        );

        let mut big = Spool {
            host: &host,
            path: at,
            mem: Vec::new(),
            file: None,
        };
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(SPOOL_IN_MEMORY >> 20) + 2 {
            big.write_all(&chunk).unwrap();
        }
        big.flush().unwrap();
        assert!(big.mem.is_empty());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len() as usize, SPOOL_IN_MEMORY + (2 << 20));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        drop(big);
        assert!(!path.exists(), "the temporary file is removed");
    }

    #[test]
    fn names_round_trip_and_reject_others() {
        let d = Domain::new("shop-2.example.com").unwrap();
        for seq in [1, 2, 13, 1_234_567] {
            let n = archive_name(&d, "20240131.235959", seq);
            let p = parse_name(&n).unwrap();
            assert_eq!((p.domain, p.stamp.as_str()), (d.clone(), "20240131.235959"));
            assert_eq!((p.seq, p.suffix), (Some(seq), 1));
        }
        assert_eq!(
            archive_name(&d, "20240131.235959", 7),
            "shop-2.example.com-20240131.235959-n000007.tar.gz"
        );
        // Names of the older form still parse, with their -N suffix.
        let old = parse_name("shop-2.example.com-20240131.235959-3.tar.gz").unwrap();
        assert_eq!((old.seq, old.suffix), (None, 3));
        let old = parse_name("shop-2.example.com-20240131.235959.tar.gz").unwrap();
        assert_eq!((old.seq, old.suffix), (None, 1));
        // A domain that itself looks like a stamp, or like a sequence
        // number, still parses right.
        for odd in ["x-20240101.120000", "a-n5"] {
            let odd = Domain::new(odd).unwrap();
            let p = parse_name(&archive_name(&odd, "20250101.000000", 2)).unwrap();
            assert_eq!((p.domain, p.seq), (odd, Some(2)));
        }
        for bad in [
            "notes.txt",
            "a.com-20240131.235959.tar",
            "a.com-2024013.235959.tar.gz",
            "a.com-20240131.235959-01.tar.gz",
            "a.com-20240131.235959-1.tar.gz",
            "a.com-20240131.235959-n.tar.gz",
            "a.com-20240131.235959-n1x.tar.gz",
            "a.com-20240131.235959-n+1.tar.gz",
            "a.com-n000001.tar.gz",
            "A.com-20240131.235959.tar.gz",
            ".hoist-tmp-1-20240131.235959.tar.gz",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn backups_are_ordered_by_sequence_after_every_older_name() {
        let info = |name: &str| {
            let p = parse_name(name).unwrap();
            BackupInfo {
                path: PathBuf::from(name),
                file_name: name.into(),
                domain: p.domain,
                stamp: p.stamp,
                seq: p.seq,
                suffix: p.suffix,
                bytes: 0,
            }
        };
        // Given in the order they were made; the clock went back twice.
        let made = [
            "a.com-20240101.000000.tar.gz",
            "a.com-20240101.000000-2.tar.gz",
            "a.com-20240101.000000-10.tar.gz",
            "a.com-20240102.000000.tar.gz",
            "a.com-20230101.000000-n000009.tar.gz",
            "a.com-20220101.000000-n000010.tar.gz",
            "a.com-20220101.000000-n1000000.tar.gz",
        ];
        let mut v: Vec<BackupInfo> = made.iter().rev().map(|n| info(n)).collect();
        v.sort_by(|a, b| a.order().cmp(&b.order()));
        let names: Vec<&str> = v.iter().map(|b| b.file_name.as_str()).collect();
        assert_eq!(names, made);
    }

    #[test]
    fn the_next_sequence_number_is_above_the_counter_and_every_name() {
        let t = tempfile::tempdir().unwrap();
        let host = crate::driver::host::LocalHost::new(t.path().to_path_buf());
        let dir = HostPath::root();
        let none: [BackupInfo; 0] = [];
        assert_eq!(next_seq(&host, &dir, &none), 1);
        std::fs::write(t.path().join(SEQ_FILE), "41\n").unwrap();
        assert_eq!(next_seq(&host, &dir, &none), 42);
        let named = BackupInfo {
            path: PathBuf::new(),
            file_name: String::new(),
            domain: Domain::new("a.com").unwrap(),
            stamp: "20240101.000000".into(),
            seq: Some(99),
            suffix: 1,
            bytes: 0,
        };
        assert_eq!(next_seq(&host, &dir, &[named]), 100);
        // A damaged counter is not trusted, but the names still are.
        std::fs::write(t.path().join(SEQ_FILE), "garbage").unwrap();
        assert_eq!(next_seq(&host, &dir, &none), 1);
    }

    #[test]
    fn room_is_checked_with_a_margin() {
        let gib = 1u64 << 30;
        assert!(room_for(gib, 10, 2 * gib, Some(1000)).is_ok());
        assert!(room_for(gib, 10, 2 * gib, None).is_ok());
        // Exactly the bytes is not enough: the margin must stay free.
        let e = room_for(gib, 10, gib, None).unwrap_err();
        assert!(e.contains(&format!("{gib} bytes")), "{e}");
        assert!(room_for(0, 1, ROOM_MARGIN - 1, None).is_err());
        assert!(room_for(0, 1, ROOM_MARGIN, None).is_ok());
        // Files count too, where the filesystem limits them.
        let e = room_for(1, 10_000, 2 * gib, Some(5_000)).unwrap_err();
        assert!(e.contains("10000 files"), "{e}");
        // Declared sizes near the integer limit do not wrap around.
        assert!(room_for(u64::MAX, 1, u64::MAX, None).is_err());
    }

    #[test]
    fn a_manifest_declaring_too_much_or_a_wrong_total_is_refused() {
        let m = |sizes: &[u64], total: Option<u64>| Manifest {
            format: FORMAT,
            site: Name::new("a").unwrap(),
            domain: Domain::new("a.com").unwrap(),
            platform: PlatformName::new("p").unwrap(),
            database: "a_db".into(),
            created: String::new(),
            seq: None,
            total,
            settings_redacted: true,
            dump: DumpInfo {
                size: 10,
                sha256: String::new(),
            },
            scope: Scope::Full,
            entries: sizes
                .iter()
                .map(|&size| ManifestEntry {
                    path: "site/x".into(),
                    kind: EntryKind::File,
                    mode: 0o600,
                    size,
                    target: None,
                })
                .collect(),
            skipped: vec![],
        };
        assert_eq!(declared_total(&m(&[1, 2], None)), Ok(13));
        assert_eq!(declared_total(&m(&[1, 2], Some(13))), Ok(13));
        let e = declared_total(&m(&[1, 2], Some(12))).unwrap_err();
        assert!(e.contains("declares 12 bytes in all"), "{e}");
        assert!(declared_total(&m(&[MAX_BYTES], None)).is_err());
        assert!(declared_total(&m(&[u64::MAX, u64::MAX], None)).is_err());
    }

    #[test]
    fn path_encoding_round_trips_any_bytes() {
        for raw in [
            &b"site/a b.txt"[..],
            b"site/100%",
            b"site/\xe9\xff%25",
            "é".as_bytes(),
        ] {
            let e = encode(raw);
            assert_eq!(decode(&e).as_deref(), Some(raw), "{e}");
        }
        assert_eq!(encode(b"a%\xff"), "a%25%FF");
        assert_eq!(decode("a%2"), None);
        assert_eq!(decode("a%zz"), None);
    }

    #[test]
    fn archive_paths_are_checked() {
        assert!(check_path(b"site/files/a").is_ok());
        assert!(check_path(b"site/files/").is_ok());
        for bad in [
            &b""[..],
            b"/etc/passwd",
            b"site/../x",
            b"..",
            b"site//x",
            b"site/./x",
            b"site/x\0",
        ] {
            assert!(check_path(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn settings_php_keeps_its_salt_and_loses_its_password() {
        let pw = "p'w\\x";
        let text = format!(
            "<?php\n  'password' => {},\n$drupal_hash_salt = 'salt';\n$other = \"{pw}\";\n",
            crate::drupal::settings::php_string(pw)
        );
        let r = redact_php(&text, Some(pw));
        assert!(!r.contains(pw), "{r}");
        assert!(r.contains("'password' => '********',"), "{r}");
        assert!(r.contains("$drupal_hash_salt = 'salt';"), "{r}");
        assert_eq!(redact_php(&text, None), text);
    }

    #[test]
    fn settings_are_redacted_even_when_unparseable() {
        let text = "site: a\ndatabase:\n  password: \"hunter2\"\n  other: {\n";
        let r = redact_settings(text);
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("  password: \"********\""), "{r}");
    }

    #[test]
    fn link_resolution_follows_links_but_stays_inside() {
        // The links of a site: files/a is a directory, the rest links.
        let links: Links = [
            ("files/up", ".."),
            ("files/loop1", "loop2"),
            ("files/loop2", "loop1"),
        ]
        .into_iter()
        .map(|(l, t)| (PathBuf::from(l), PathBuf::from(t)))
        .collect();
        let ok = |rel: &str, target: &str| check_link(&links, Path::new(rel), Path::new(target));
        assert!(ok("files/l", "a").is_ok());
        assert!(ok("files/l", "../files/./a/..").is_ok());
        assert!(ok("files/l", "up").is_ok());
        assert!(ok("files/l", "up/files/up").is_ok());
        assert!(ok("files/l", "up/..").is_err());
        assert!(ok("files/l", "up/files/up/..").is_err());
        assert!(ok("files/l", "/etc").is_err());
        assert!(ok("l", "..").is_err());
        assert!(ok("files/l", "").is_err());
        let e = ok("files/l", "loop1/x").unwrap_err();
        assert!(e.contains("too many levels"), "{e}");
    }
}
