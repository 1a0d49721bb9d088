//! The host seam: where a server's files live. The task steps, the task
//! journal ([`crate::task::TasksDir`]), backups (the site tree and the
//! archives, through the operations of [`crate::driver::tree`]), the
//! server's build, observation and recovery reach a server's root only
//! through a [`Host`], with paths relative to that root ([`HostPath`])
//! that can never leave it.
//!
//! [`LocalHost`] is this machine (today's layout, byte for byte, through
//! [`crate::fsutil`]); an `ssh` server's host is [`crate::ssh::SshHost`]
//! over one multiplexed connection.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::program::ProgramOutput;
use super::tree::{self, HostWrite, Opened, TarIn, TarOut, TreeEntry};
use crate::fsutil;

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A path that would leave the root, or cannot be sent.
    #[error("path {path:?} refused: {why}")]
    Path {
        /// The refused path.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path, as the host names it.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Another hoist holds the server.
    #[error("{0}")]
    Locked(String),
    /// The host could not be reached, or refused the operation.
    #[error("{0}")]
    Remote(String),
}

impl HostError {
    /// Whether the error says the thing was not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HostError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// A path inside a server's root: relative, normalised (no `.`, empty or
/// trailing components), and free of `..` and NUL, so whatever the root
/// is, the path stays under it. The root itself is the empty path.
/// A journal holds it as its text, checked again when read back.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct HostPath(String);

impl TryFrom<String> for HostPath {
    type Error = HostError;
    fn try_from(s: String) -> Result<HostPath, HostError> {
        HostPath::new(&s)
    }
}

impl From<HostPath> for String {
    fn from(p: HostPath) -> String {
        p.0
    }
}

impl HostPath {
    /// The root itself.
    pub fn root() -> HostPath {
        HostPath(String::new())
    }

    /// A path relative to the root, checked.
    pub fn new(s: &str) -> Result<HostPath, HostError> {
        HostPath::root().join(s)
    }

    /// `rel` (one or more components) under this path; refuses an absolute
    /// `rel`, a `..` and a NUL.
    pub fn join(&self, rel: &str) -> Result<HostPath, HostError> {
        let refuse = |why| HostError::Path {
            path: rel.to_string(),
            why,
        };
        if rel.starts_with('/') {
            return Err(refuse("absolute where a path inside the root is needed"));
        }
        if rel.contains('\0') {
            return Err(refuse("contains a NUL byte"));
        }
        let mut out = self.0.clone();
        for c in rel.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(refuse("contains '..'")),
                c => {
                    if !out.is_empty() {
                        out.push('/');
                    }
                    out.push_str(c);
                }
            }
        }
        Ok(HostPath(out))
    }

    /// The path under `root` that `abs` names, when `abs` is `root` or
    /// lies under it (lexically; `..` refused).
    pub fn within(root: &Path, abs: &Path) -> Result<HostPath, HostError> {
        let refuse = |why| HostError::Path {
            path: abs.display().to_string(),
            why,
        };
        let rel = abs
            .strip_prefix(root)
            .map_err(|_| refuse("outside the server's root"))?;
        let s = rel.to_str().ok_or_else(|| refuse("not UTF-8"))?;
        HostPath::new(s)
    }

    /// The path as text, relative to the root ("" for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory holding it (the root for a top entry and the root).
    pub fn parent(&self) -> HostPath {
        match self.0.rfind('/') {
            Some(i) => HostPath(self.0[..i].to_string()),
            None => HostPath::root(),
        }
    }

    /// The path as it is under `root` on a filesystem (`root` itself for
    /// the root).
    pub fn under(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&self.0)
        }
    }

    /// Its last component ("" for the root).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

impl fmt::Display for HostPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "." } else { &self.0 })
    }
}

/// How a file is written: always atomically for readers (a temporary file
/// renamed over it); the modes differ in permissions and in whether the
/// write is durable before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Mode 0644, synced.
    Atomic,
    /// Mode 0600 (it holds a secret), synced.
    Private,
    /// Mode 0644, left for [`Host::make_durable`] (a task's commit point).
    Staged,
    /// Mode 0600, left for [`Host::make_durable`].
    StagedPrivate,
}

/// What an entry is, its links never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A device, socket or fifo.
    Other,
}

/// The server's lock, held while it lives.
pub struct HostLock {
    _held: Box<dyn Send>,
}

impl HostLock {
    /// A lock held by `guard`: released when it drops.
    pub fn new(guard: Box<dyn Send>) -> HostLock {
        HostLock { _held: guard }
    }
}

impl fmt::Debug for HostLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HostLock")
    }
}

/// The file operations the tasks need on a server's root. Every path is a
/// [`HostPath`]; removals are fine when the thing is already gone; no
/// operation follows a symbolic link out of what it was given.
pub trait Host: Send + Sync + fmt::Debug {
    /// Names the host in messages (`local:/srv/hoist`, `hoist@web2:/srv`).
    fn label(&self) -> String;
    /// The absolute path of `p` as the host names it (for messages and
    /// journal facts, never to be opened on the controller).
    fn display(&self, p: &HostPath) -> String;
    /// Where the root is on this machine, when the host is this machine:
    /// what is read there with local tools (a platform's code scanned,
    /// php run). A remote host has none.
    fn local_root(&self) -> Option<&Path> {
        None
    }
    /// A file's bytes; `None` when it does not exist.
    fn read(&self, p: &HostPath) -> Result<Option<Vec<u8>>, HostError>;
    /// Replaces a file (making its directory when missing).
    fn write(&self, p: &HostPath, bytes: &[u8], mode: WriteMode) -> Result<(), HostError>;
    /// Renames `from` to `to` (on the same filesystem: atomic).
    fn rename(&self, from: &HostPath, to: &HostPath) -> Result<(), HostError>;
    /// Removes a file; one already gone is fine.
    fn remove_file(&self, p: &HostPath) -> Result<(), HostError>;
    /// Removes a tree, unlinking the links inside it; one already gone is
    /// fine.
    fn remove_tree(&self, p: &HostPath) -> Result<(), HostError>;
    /// Copies the tree `from` to `to` (which must not exist), links copied
    /// as links, leaving out the entries of `from` named in `except`.
    fn copy_tree(&self, from: &HostPath, to: &HostPath, except: &[&str]) -> Result<(), HostError>;
    /// Copies the controller's directory `src` to `to` (which must not
    /// exist); a symbolic link in `src` is refused.
    fn put_tree(&self, src: &Path, to: &HostPath) -> Result<(), HostError>;
    /// What `p` is, `None` when it does not exist.
    fn kind(&self, p: &HostPath) -> Result<Option<EntryKind>, HostError>;
    /// The entries of a directory, sorted by name; empty when it does not
    /// exist.
    fn list(&self, p: &HostPath) -> Result<Vec<(String, EntryKind)>, HostError>;
    /// Makes a directory and its parents; `private` gives it mode 0700
    /// (and an existing one that mode).
    fn mkdir(&self, p: &HostPath, private: bool) -> Result<(), HostError>;
    /// Bytes and files still free on the filesystem holding `p`.
    fn free_space(&self, p: &HostPath) -> Result<(u64, Option<u64>), HostError>;
    /// Syncs a directory, so a rename or create inside it survives a crash.
    fn sync_dir(&self, p: &HostPath) -> Result<(), HostError>;
    /// Creates the file `p` (mode 0600) holding `bytes`, refusing one that
    /// exists, unsynced: a task record's first write ([`crate::task`]).
    fn create_new(&self, p: &HostPath, bytes: &[u8]) -> Result<(), HostError>;
    /// Appends `bytes` to the file `p`; `synced`: its data is on disk when
    /// this returns (a journal line an undo depends on).
    fn append(&self, p: &HostPath, bytes: &[u8], synced: bool) -> Result<(), HostError>;
    /// Gives the file `from` the second name `to` (a hard link), refusing a
    /// `to` that exists.
    fn link(&self, from: &HostPath, to: &HostPath) -> Result<(), HostError>;
    /// The size of the file `p`.
    fn len(&self, p: &HostPath) -> Result<u64, HostError>;
    /// Lists the tree `top` without following links, parents first, names
    /// sorted; with `only`, just the entries of that name.
    fn walk(&self, top: &HostPath, only: Option<&OsStr>) -> Result<Vec<TreeEntry>, HostError>;
    /// Opens the regular file `rel` of the tree `top` (a link is refused).
    fn open_in(&self, top: &HostPath, rel: &Path) -> Result<Opened, HostError>;
    /// Creates the new file `rel` of the tree `top` (mode 0600 until
    /// [`HostWrite::finish`]).
    fn create_in(&self, top: &HostPath, rel: &Path) -> Result<Box<dyn HostWrite>, HostError>;
    /// Makes the new directory `rel` of the tree `top` (mode 0700).
    fn mkdir_in(&self, top: &HostPath, rel: &Path) -> Result<(), HostError>;
    /// Makes `rel` of the tree `top` a symbolic link to `target`.
    fn symlink_in(&self, top: &HostPath, rel: &Path, target: &Path) -> Result<(), HostError>;
    /// Gives the directory `rel` of the tree `top` `mode` and `mtime`.
    fn set_dir_meta(
        &self,
        top: &HostPath,
        rel: &Path,
        mode: u32,
        mtime: Option<u64>,
    ) -> Result<(), HostError>;
    /// Makes everything written under the root durable (the staged writes
    /// and the journal), at a task's commit point.
    fn make_durable(&self) -> Result<(), HostError>;
    /// Streams the directory `top` as a GNU tar made by the host's `tar`:
    /// symbolic and hard links as links, names sorted, members named
    /// `./…`, the top itself first.
    fn tar_out(&self, top: &HostPath) -> Result<Box<dyn TarOut>, HostError>;
    /// Makes the directory `to` (which must not exist; mode 0700 until its
    /// own is set) and unpacks a tar stream into it with the host's `tar`,
    /// modes and mtimes kept, files owned by the user hoist runs as there.
    /// The stream must be checked beforehand ([`super::relay`]).
    fn tar_in(&self, to: &HostPath) -> Result<Box<dyn TarIn>, HostError>;
    /// Runs `program` (found on the host's `PATH`) with `args` there,
    /// `stdin` on its stdin (what is secret travels there, never in an
    /// argument), killed with what it started after `timeout`; `Ok(None)`:
    /// killed for the timeout. What an application kind runs where its
    /// sites are (php-cli for Drupal).
    fn run_program(
        &self,
        program: &OsStr,
        args: &[&OsStr],
        stdin: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<Option<ProgramOutput>, HostError>;
    /// Takes the server's lock; a second hoist is refused with the
    /// holder's pid.
    fn lock(&self) -> Result<HostLock, HostError>;
    /// Ok while every lock taken through this host and not let go is
    /// still held (a lock over a connection is lost with it).
    fn check_lock(&self) -> Result<(), HostError> {
        Ok(())
    }
    /// What observing the server reads (its platforms down to each site's
    /// settings file, the build records, the vhosts) as one tar stream,
    /// when reading it piece by piece costs a round trip each (a host over
    /// ssh); `None`: observation reads the host directly.
    fn observed_files(&self) -> Result<Option<Vec<u8>>, HostError> {
        Ok(None)
    }

    /// Opens the regular file `p` (a link is refused).
    fn open(&self, p: &HostPath) -> Result<Opened, HostError> {
        self.open_in(&p.parent(), Path::new(p.file_name()))
    }
    /// Creates the new file `p` (see [`Host::create_in`]).
    fn create(&self, p: &HostPath) -> Result<Box<dyn HostWrite>, HostError> {
        self.create_in(&p.parent(), Path::new(p.file_name()))
    }
    /// Whether `p` exists.
    fn exists(&self, p: &HostPath) -> Result<bool, HostError> {
        Ok(self.kind(p)?.is_some())
    }
    /// Whether `p` is a directory (a link to one is not).
    fn is_dir(&self, p: &HostPath) -> bool {
        matches!(self.kind(p), Ok(Some(EntryKind::Dir)))
    }
}

/// A path on a host, with the host: an archive, or a directory a backup
/// is restored into.
#[derive(Debug, Clone)]
pub struct OnHost {
    /// The host.
    pub host: Arc<dyn Host>,
    /// The path on it.
    pub path: HostPath,
}

impl OnHost {
    /// The file or directory `abs` on this machine (its parent as the
    /// root): an archive handed to hoist, a directory of a test.
    pub fn local(abs: &Path) -> OnHost {
        let parent = abs.parent().unwrap_or(Path::new("/"));
        let name = abs.file_name().and_then(|n| n.to_str()).unwrap_or("");
        OnHost {
            host: Arc::new(LocalHost::new(parent.to_path_buf())),
            // A name that is no host path (not UTF-8, "..") stands for the
            // root: what is done there then fails as it would on the name.
            path: HostPath::new(name).unwrap_or_else(|_| HostPath::root()),
        }
    }

    /// The path as its host names it, for messages.
    pub fn shown(&self) -> PathBuf {
        PathBuf::from(self.host.display(&self.path))
    }
}

/// The server's top directories, each of which may be a mount of its own.
pub const TOP_DIRS: [&str; 5] = ["platforms", "databases", "vhosts", "backups", "tasks"];

/// This machine: a server rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalHost {
    root: PathBuf,
}

impl LocalHost {
    /// The host rooted at `root`.
    pub fn new(root: PathBuf) -> LocalHost {
        LocalHost { root }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `p` is on this machine.
    pub fn path(&self, p: &HostPath) -> PathBuf {
        p.under(&self.root)
    }

    /// Where `rel` of the tree `p` is on this machine (`rel` confined).
    fn path_in(&self, p: &HostPath, rel: &Path) -> Result<PathBuf, HostError> {
        tree::confined(rel)?;
        Ok(self.path(p).join(rel))
    }

    fn io(&self, p: &Path) -> impl FnOnce(std::io::Error) -> HostError {
        let path = p.display().to_string();
        move |source| HostError::Io { path, source }
    }
}

fn kind_of(t: std::fs::FileType) -> EntryKind {
    if t.is_dir() {
        EntryKind::Dir
    } else if t.is_file() {
        EntryKind::File
    } else if t.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    }
}

impl Host for LocalHost {
    fn label(&self) -> String {
        format!("local:{}", self.root.display())
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn display(&self, p: &HostPath) -> String {
        self.path(p).display().to_string()
    }

    fn read(&self, p: &HostPath) -> Result<Option<Vec<u8>>, HostError> {
        let abs = self.path(p);
        match std::fs::read(&abs) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&abs)(e)),
        }
    }

    fn write(&self, p: &HostPath, bytes: &[u8], mode: WriteMode) -> Result<(), HostError> {
        let abs = self.path(p);
        match mode {
            WriteMode::Atomic => fsutil::write_atomic(&abs, bytes),
            WriteMode::Private => fsutil::write_private(&abs, bytes),
            WriteMode::Staged => fsutil::write_replace(&abs, bytes),
            WriteMode::StagedPrivate => fsutil::write_private_unsynced(&abs, bytes),
        }
        .map_err(self.io(&abs))
    }

    fn rename(&self, from: &HostPath, to: &HostPath) -> Result<(), HostError> {
        let (a, b) = (self.path(from), self.path(to));
        std::fs::rename(&a, &b).map_err(|source| HostError::Io {
            path: format!("moving {} to {}", a.display(), b.display()),
            source,
        })
    }

    fn remove_file(&self, p: &HostPath) -> Result<(), HostError> {
        let abs = self.path(p);
        fsutil::remove_file_if_exists(&abs).map_err(self.io(&abs))
    }

    fn remove_tree(&self, p: &HostPath) -> Result<(), HostError> {
        let abs = self.path(p);
        fsutil::remove_tree_if_exists(&abs).map_err(self.io(&abs))
    }

    fn copy_tree(&self, from: &HostPath, to: &HostPath, except: &[&str]) -> Result<(), HostError> {
        let (a, b) = (self.path(from), self.path(to));
        fsutil::copy_tree_except(&a, &b, true, except).map_err(self.io(&a))
    }

    fn put_tree(&self, src: &Path, to: &HostPath) -> Result<(), HostError> {
        fsutil::copy_tree(src, &self.path(to), false).map_err(self.io(src))
    }

    fn kind(&self, p: &HostPath) -> Result<Option<EntryKind>, HostError> {
        let abs = self.path(p);
        match std::fs::symlink_metadata(&abs) {
            Ok(m) => Ok(Some(kind_of(m.file_type()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&abs)(e)),
        }
    }

    fn list(&self, p: &HostPath) -> Result<Vec<(String, EntryKind)>, HostError> {
        let abs = self.path(p);
        let rd = match std::fs::read_dir(&abs) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&abs)(e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(self.io(&abs))?;
            let t = e.file_type().map_err(self.io(&e.path()))?;
            out.push((e.file_name().to_string_lossy().into_owned(), kind_of(t)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn mkdir(&self, p: &HostPath, private: bool) -> Result<(), HostError> {
        let abs = self.path(p);
        if private {
            fsutil::create_private_dir(&abs)
        } else {
            fsutil::create_dir_all(&abs)
        }
        .map_err(self.io(&abs))
    }

    fn free_space(&self, p: &HostPath) -> Result<(u64, Option<u64>), HostError> {
        let abs = self.path(p);
        fsutil::free_space(&abs).map_err(self.io(&abs))
    }

    fn sync_dir(&self, p: &HostPath) -> Result<(), HostError> {
        let abs = self.path(p);
        fsutil::sync_dir(&abs).map_err(self.io(&abs))
    }

    fn create_new(&self, p: &HostPath, bytes: &[u8]) -> Result<(), HostError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let abs = self.path(p);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&abs)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(self.io(&abs))
    }

    fn append(&self, p: &HostPath, bytes: &[u8], synced: bool) -> Result<(), HostError> {
        use std::io::Write;
        let abs = self.path(p);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&abs)
            .map_err(self.io(&abs))?;
        f.write_all(bytes).map_err(self.io(&abs))?;
        if synced {
            f.sync_data().map_err(self.io(&abs))?;
        }
        Ok(())
    }

    fn link(&self, from: &HostPath, to: &HostPath) -> Result<(), HostError> {
        let (a, b) = (self.path(from), self.path(to));
        std::fs::hard_link(&a, &b).map_err(|source| HostError::Io {
            path: format!("linking {} as {}", a.display(), b.display()),
            source,
        })
    }

    fn len(&self, p: &HostPath) -> Result<u64, HostError> {
        let abs = self.path(p);
        std::fs::symlink_metadata(&abs)
            .map(|m| m.len())
            .map_err(self.io(&abs))
    }

    fn walk(&self, top: &HostPath, only: Option<&OsStr>) -> Result<Vec<TreeEntry>, HostError> {
        tree::walk_local(&self.path(top), only)
    }

    fn open_in(&self, top: &HostPath, rel: &Path) -> Result<Opened, HostError> {
        tree::open_local(&self.path_in(top, rel)?)
    }

    fn create_in(&self, top: &HostPath, rel: &Path) -> Result<Box<dyn HostWrite>, HostError> {
        tree::create_local(&self.path_in(top, rel)?)
    }

    fn mkdir_in(&self, top: &HostPath, rel: &Path) -> Result<(), HostError> {
        tree::mkdir_local(&self.path_in(top, rel)?)
    }

    fn symlink_in(&self, top: &HostPath, rel: &Path, target: &Path) -> Result<(), HostError> {
        let abs = self.path_in(top, rel)?;
        std::os::unix::fs::symlink(target, &abs).map_err(self.io(&abs))
    }

    fn set_dir_meta(
        &self,
        top: &HostPath,
        rel: &Path,
        mode: u32,
        mtime: Option<u64>,
    ) -> Result<(), HostError> {
        tree::set_meta_local(&self.path_in(top, rel)?, mode, mtime)
    }

    fn tar_out(&self, top: &HostPath) -> Result<Box<dyn TarOut>, HostError> {
        tree::tar_out_local(&self.path(top))
    }

    fn tar_in(&self, to: &HostPath) -> Result<Box<dyn TarIn>, HostError> {
        tree::tar_in_local(&self.path(to))
    }

    fn run_program(
        &self,
        program: &OsStr,
        args: &[&OsStr],
        stdin: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<Option<ProgramOutput>, HostError> {
        super::program::run_local(program, args, stdin, timeout).map_err(|source| HostError::Io {
            path: format!("running {}", program.to_string_lossy()),
            source,
        })
    }

    /// One `syncfs` for each filesystem among the root and its top
    /// directories (those that exist).
    fn make_durable(&self) -> Result<(), HostError> {
        let mut dirs = vec![self.root.clone()];
        dirs.extend(
            TOP_DIRS
                .iter()
                .map(|d| self.root.join(d))
                .filter(|d| d.is_dir()),
        );
        let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
        fsutil::sync_filesystems(&refs).map_err(self.io(&self.root))
    }

    fn lock(&self) -> Result<HostLock, HostError> {
        local_lock(&self.root).map(|f| HostLock::new(Box::new(f)))
    }
}

/// An exclusive `flock` on `<root>/.hoist.lock`, released by the kernel
/// with the file (or with a killed process).
fn local_lock(root: &Path) -> Result<std::fs::File, HostError> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| HostError::Io { path, source }
    };
    fsutil::create_dir_all(root).map_err(io(root))?;
    let path = root.join(".hoist.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(&path))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut holder = String::new();
        // The holder's pid only improves the message; without it the
        // refusal says "pid unknown".
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(HostError::Locked(format!(
            "another hoist is working on server root {} ({}); wait for it to finish",
            root.display(),
            if holder.is_empty() {
                "pid unknown"
            } else {
                holder
            }
        )));
    }
    // The pid written is for the message of a refused second hoist: the
    // lock holds whether or not it is written.
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = write!(f, "pid {}", std::process::id());
    let _ = f.sync_all();
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_paths_never_leave_the_root() {
        assert_eq!(HostPath::new("a//b/./c/").unwrap().as_str(), "a/b/c");
        assert!(HostPath::new("/etc").is_err());
        assert!(HostPath::new("a/../../etc").is_err());
        assert!(HostPath::new("a\0b").is_err());
        let p = HostPath::new("platforms/p").unwrap();
        assert!(p.join("..").is_err());
        assert_eq!(p.join("sites/d").unwrap().as_str(), "platforms/p/sites/d");
        assert_eq!(p.parent().as_str(), "platforms");
        assert_eq!(p.file_name(), "p");
        let root = Path::new("/srv/hoist");
        assert_eq!(
            HostPath::within(root, Path::new("/srv/hoist/tasks/x"))
                .unwrap()
                .as_str(),
            "tasks/x"
        );
        assert!(HostPath::within(root, Path::new("/srv/other")).is_err());
        assert!(HostPath::within(root, Path::new("/srv/hoist/../other")).is_err());
    }

    #[test]
    fn local_host_writes_reads_copies_and_removes() {
        let d = tempfile::tempdir().unwrap();
        let h = LocalHost::new(d.path().to_path_buf());
        let f = HostPath::new("a/b/settings.yaml").unwrap();
        h.write(&f, b"secret", WriteMode::Private).unwrap();
        assert_eq!(h.read(&f).unwrap().unwrap(), b"secret");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.path(&f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(h.read(&HostPath::new("nope").unwrap()).unwrap(), None);
        std::os::unix::fs::symlink("settings.yaml", d.path().join("a/b/link")).unwrap();
        let a = HostPath::new("a").unwrap();
        let c = HostPath::new("c").unwrap();
        h.copy_tree(&a.join("b").unwrap(), &c, &["settings.yaml"])
            .unwrap();
        assert_eq!(
            h.list(&c).unwrap(),
            vec![("link".to_string(), EntryKind::Symlink)]
        );
        h.remove_tree(&a).unwrap();
        h.remove_tree(&a).unwrap();
        assert!(!h.exists(&a).unwrap());
        assert!(h.list(&a).unwrap().is_empty());
        h.make_durable().unwrap();
    }

    #[test]
    fn local_host_lock_refuses_a_second_holder() {
        let d = tempfile::tempdir().unwrap();
        let h = LocalHost::new(d.path().to_path_buf());
        let held = h.lock().unwrap();
        let e = h.lock().unwrap_err();
        assert!(e.to_string().contains("another hoist"), "{e}");
        drop(held);
        h.lock().unwrap();
    }
}
