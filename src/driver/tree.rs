//! Trees and streams on a host: what a backup reads from a site directory
//! and writes into a restored one, and the archives it streams. Names in
//! a site's tree are raw bytes (a user's file name need not be UTF-8), so
//! entries inside a tree are addressed by a [`HostPath`](super::host::HostPath) to the tree and a
//! relative path of plain components below it, checked by [`confined`].
//!
//! The functions here are [`crate::driver::host::LocalHost`]'s side of
//! these operations.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::host::{EntryKind, HostError};

/// One entry of a tree, as listed without following any link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Relative to the tree's top ("" for the top itself).
    pub rel: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Its permission bits.
    pub mode: u32,
    /// Its size in bytes (files; 0 for the rest).
    pub size: u64,
    /// Its modification time, in seconds since the epoch.
    pub mtime: u64,
    /// Its owner.
    pub uid: u64,
    /// Its group.
    pub gid: u64,
    /// A link's target, as stored.
    pub target: Option<PathBuf>,
}

/// A regular file opened for reading, with its size when opened.
pub struct Opened {
    /// Its bytes.
    pub read: Box<dyn Read + Send>,
    /// Its size when opened.
    pub len: u64,
}

/// How a written file is left by [`HostWrite::finish`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Finish {
    /// Permission bits to give it (else 0600, as it was created).
    pub mode: Option<u32>,
    /// A modification time to give it (seconds since the epoch).
    pub mtime: Option<u64>,
    /// Whether its data is synced before `finish` returns.
    pub synced: bool,
}

/// A new file being written on a host.
pub trait HostWrite: Write + Send {
    /// Ends the write as `how` says. A file dropped without it is left as
    /// far as it was written (its caller removes it).
    fn finish(self: Box<Self>, how: Finish) -> Result<(), HostError>;
}

/// A tree streamed out of a host as a GNU tar ([`super::host::Host::tar_out`]).
pub trait TarOut: Read + Send {
    /// Reads what is left and checks how the host's `tar` ended (a file
    /// that changed while it was read fails it). Dropped without it, the
    /// stream is cut and the host's `tar` stopped.
    fn end(self: Box<Self>) -> Result<(), HostError>;
}

/// A host unpacking a tar stream into a new directory
/// ([`super::host::Host::tar_in`]).
pub trait TarIn: Write + Send {
    /// Ends the stream and checks how the host's `tar` ended. A write that
    /// fails already carries the host's reason (a full disk), not a broken
    /// pipe.
    fn end(self: Box<Self>) -> Result<(), HostError>;
}

/// Refuses a relative path inside a tree that is not made of plain
/// components (absolute, `..`, `.`): it could leave the tree.
pub fn confined(rel: &Path) -> Result<(), HostError> {
    if rel.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err(HostError::Path {
            path: rel.display().to_string(),
            why: "not a plain path inside the tree",
        })
    }
}

fn io(p: &Path) -> impl FnOnce(io::Error) -> HostError {
    let path = p.display().to_string();
    move |source| HostError::Io { path, source }
}

/// Lists the tree `top` on this machine without following any link:
/// parents before children, each directory's entries sorted by name before
/// those of its subdirectories. With `only`, the entries kept
/// (and directories entered) are those of that name.
pub fn walk_local(top: &Path, only: Option<&OsStr>) -> Result<Vec<TreeEntry>, HostError> {
    let m = fs::symlink_metadata(top).map_err(io(top))?;
    if !m.is_dir() {
        return Err(HostError::Io {
            path: top.display().to_string(),
            source: io::Error::other("not a directory (a symlink is not followed)"),
        });
    }
    let entry =
        |rel: PathBuf, m: &fs::Metadata, kind: EntryKind, target: Option<PathBuf>| TreeEntry {
            rel,
            kind,
            mode: m.mode() & 0o777,
            size: if kind == EntryKind::File { m.len() } else { 0 },
            mtime: u64::try_from(m.mtime()).unwrap_or(0),
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
            target,
        };
    let mut out = vec![entry(PathBuf::new(), &m, EntryKind::Dir, None)];
    // An explicit stack, not recursion: a hostile tree may be very deep.
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        let abs = top.join(&dir);
        let mut children = Vec::new();
        for e in fs::read_dir(&abs).map_err(io(&abs))? {
            let e = e.map_err(io(&abs))?;
            children.push(e.file_name());
        }
        children.sort();
        let mut subdirs = Vec::new();
        for name in children {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            let rel = dir.join(&name);
            let p = top.join(&rel);
            let m = fs::symlink_metadata(&p).map_err(io(&p))?;
            let ft = m.file_type();
            if ft.is_dir() {
                out.push(entry(rel.clone(), &m, EntryKind::Dir, None));
                subdirs.push(rel);
            } else if ft.is_file() {
                out.push(entry(rel, &m, EntryKind::File, None));
            } else if ft.is_symlink() {
                let target = fs::read_link(&p).map_err(io(&p))?;
                out.push(entry(rel, &m, EntryKind::Symlink, Some(target)));
            } else {
                out.push(entry(rel, &m, EntryKind::Other, None));
            }
        }
        // Reversed so the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(out)
}

/// Opens the regular file `p` for reading; a link is refused, never
/// followed (O_NOFOLLOW), and so is anything but a regular file.
pub fn open_local(p: &Path) -> Result<Opened, HostError> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .map_err(io(p))?;
    let m = f.metadata().map_err(io(p))?;
    if !m.is_file() {
        return Err(io(p)(io::Error::other("not a regular file")));
    }
    Ok(Opened {
        read: Box::new(f),
        len: m.len(),
    })
}

/// A new file on this machine.
struct LocalWrite {
    file: fs::File,
    path: PathBuf,
}

impl Write for LocalWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl HostWrite for LocalWrite {
    fn finish(self: Box<Self>, how: Finish) -> Result<(), HostError> {
        let err = io(&self.path);
        if let Some(mode) = how.mode {
            self.file
                .set_permissions(fs::Permissions::from_mode(mode))
                .map_err(err)?;
        }
        if let Some(secs) = how.mtime {
            set_mtime(&self.file, secs);
        }
        if how.synced {
            self.file.sync_all().map_err(io(&self.path))?;
        }
        Ok(())
    }
}

/// Creates the new file `p` (mode 0600; one that exists, or a link in its
/// place, is refused) for writing.
pub fn create_local(p: &Path) -> Result<Box<dyn HostWrite>, HostError> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
        .map_err(io(p))?;
    Ok(Box::new(LocalWrite {
        file,
        path: p.to_path_buf(),
    }))
}

/// Makes the new directory `p` (mode 0700; its parent must exist).
pub fn mkdir_local(p: &Path) -> Result<(), HostError> {
    fs::DirBuilder::new().mode(0o700).create(p).map_err(io(p))
}

/// Gives `p` (a directory: never a link) `mode` and, when given, `mtime`.
pub fn set_meta_local(p: &Path, mode: u32, mtime: Option<u64>) -> Result<(), HostError> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(io(p))?;
    if let (Some(secs), Ok(f)) = (mtime, fs::File::open(p)) {
        set_mtime(&f, secs);
    }
    Ok(())
}

/// Gives an extracted file the modification time its archive entry says.
/// The time comes from an untrusted header: one past what the clock can
/// hold is left out rather than overflowing. A time is metadata, not
/// content, so a file system that refuses it is no reason to fail.
fn set_mtime(f: &fs::File, secs: u64) {
    if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        if let Err(e) = f.set_modified(t) {
            tracing::debug!("keeping an extracted file's time failed: {e}");
        }
    }
}

/// GNU tar's arguments to stream a tree (run in it), as an ssh host's
/// `TAR_OUT` script has them: links as links, names sorted, members
/// named `./…`.
const TAR_OUT_ARGS: [&str; 5] = [
    "--create",
    "--file=-",
    "--numeric-owner",
    "--sort=name",
    ".",
];
/// GNU tar's arguments to unpack a stream (run in the new directory):
/// modes kept exactly, owner the user running it.
pub const TAR_IN_ARGS: [&str; 4] = [
    "--extract",
    "--file=-",
    "--preserve-permissions",
    "--no-same-owner",
];

/// A local `tar` process streaming a tree or unpacking one.
struct TarProcess {
    child: std::process::Child,
    shown: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl TarProcess {
    fn start(dir: &Path, args: &[&str], shown: String) -> Result<TarProcess, HostError> {
        let mut child = std::process::Command::new("tar")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| HostError::Io {
                path: format!("running tar for {shown}"),
                source,
            })?;
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s); // a read error leaves what came
            s
        });
        Ok(TarProcess {
            child,
            shown,
            stderr: Some(stderr),
        })
    }

    /// Waits for `tar` and reports a failure with its stderr.
    fn wait(&mut self) -> Result<(), HostError> {
        drop(self.child.stdin.take());
        let status = self.child.wait().map_err(|source| HostError::Io {
            path: format!("waiting for tar for {}", self.shown),
            source,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        Err(HostError::Io {
            path: self.shown.clone(),
            source: io::Error::other(format!("tar failed ({status}): {}", stderr.trim())),
        })
    }

    /// A write that failed: `tar` stopped reading, and its status says why.
    fn cause(&mut self, e: io::Error) -> io::Error {
        match self.wait() {
            Err(why) => io::Error::other(why),
            Ok(()) => e,
        }
    }
}

impl Drop for TarProcess {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            // Not ended: a stream cut short. Already exited is fine.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Read for TarProcess {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.child.stdout.as_mut() {
            Some(out) => out.read(buf),
            None => Ok(0),
        }
    }
}

impl Write for TarProcess {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match self.child.stdin.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("the stream was already ended")),
        };
        r.map_err(|e| self.cause(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = match self.child.stdin.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        };
        r.map_err(|e| self.cause(e))
    }
}

impl TarOut for TarProcess {
    fn end(mut self: Box<Self>) -> Result<(), HostError> {
        let drained = io::copy(&mut *self, &mut io::sink());
        self.wait()?;
        drained.map(|_| ()).map_err(|source| HostError::Io {
            path: self.shown.clone(),
            source,
        })
    }
}

impl TarIn for TarProcess {
    fn end(mut self: Box<Self>) -> Result<(), HostError> {
        self.wait()
    }
}

/// The local directory `top` streamed as a tar (its top not a link).
pub fn tar_out_local(top: &Path) -> Result<Box<dyn TarOut>, HostError> {
    let m = fs::symlink_metadata(top).map_err(io(top))?;
    if !m.is_dir() {
        return Err(HostError::Io {
            path: top.display().to_string(),
            source: io::Error::other("not a directory (a symlink is not followed)"),
        });
    }
    let mut p = TarProcess::start(top, &TAR_OUT_ARGS, top.display().to_string())?;
    drop(p.child.stdin.take());
    Ok(Box::new(p))
}

/// The new local directory `to` (0700), a tar stream unpacked into it.
pub fn tar_in_local(to: &Path) -> Result<Box<dyn TarIn>, HostError> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .map_err(io(to))?;
    let mut p = TarProcess::start(to, &TAR_IN_ARGS, to.display().to_string())?;
    drop(p.child.stdout.take());
    Ok(Box::new(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_confined() {
        assert!(confined(Path::new("")).is_ok());
        assert!(confined(Path::new("a/b c/d")).is_ok());
        for bad in ["/etc", "a/../b", "..", "./a"] {
            assert!(confined(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_local_walk_lists_parents_first_in_name_order_and_never_follows_links() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("site");
        fs::create_dir_all(top.join("b/c")).unwrap();
        fs::write(top.join("b/c/f"), b"12345").unwrap();
        fs::write(top.join("a"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", top.join("l")).unwrap();
        let rels: Vec<String> = walk_local(&top, None)
            .unwrap()
            .iter()
            .map(|e| e.rel.display().to_string())
            .collect();
        // A directory's entries, then each subdirectory's in turn.
        assert_eq!(rels, ["", "a", "b", "l", "b/c", "b/c/f"]);
        let all = walk_local(&top, None).unwrap();
        assert_eq!(all[5].size, 5);
        assert_eq!(all[3].kind, EntryKind::Symlink);
        assert_eq!(all[3].target.as_deref(), Some(Path::new("/etc")));
        let only: Vec<PathBuf> = walk_local(&top, Some(OsStr::new("a")))
            .unwrap()
            .into_iter()
            .map(|e| e.rel)
            .collect();
        assert_eq!(only, [PathBuf::new(), PathBuf::from("a")]);
        assert!(
            walk_local(&top.join("l"), None).is_err(),
            "a link is no tree"
        );
        assert!(
            open_local(&top.join("l")).is_err(),
            "a link is not followed"
        );
    }
}
