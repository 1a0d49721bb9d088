//! Small filesystem helpers with the care hoist needs everywhere: atomic
//! writes that are synced before they count, private (0600) files, removals
//! that are fine when the thing is already gone, and copies that never
//! follow a symlink.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its parents.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Syncs a directory, so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent"))?;
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Writes `path` atomically (a synced temporary file renamed over it), mode 0644.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o644)
}

/// Replaces `path` atomically for readers (a temporary file renamed over
/// it, mode 0644) without syncing: for derived files that are rewritten
/// anyway and where thousands of fsyncs would cost seconds. The caller
/// syncs the directory once at the end.
pub fn write_replace(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// Writes `path` atomically with mode 0600: for anything holding a secret.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o600)
}

/// Sets mode 0600 on an existing file.
pub fn set_private(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

/// Removes a file; a file already gone is fine.
pub fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a directory tree without following symlinks inside it (they are
/// unlinked, not entered); a tree already gone is fine.
pub fn remove_tree_if_exists(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    }
}

/// Copies the tree `from` to `to` (which must not exist). Symlinks are copied
/// as links when `links` is true, refused otherwise; they are never followed.
pub fn copy_tree(from: &Path, to: &Path, links: bool) -> io::Result<()> {
    copy_tree_except(from, to, links, &[])
}

/// [`copy_tree`], leaving out the entries of `from` itself named in `except`.
pub fn copy_tree_except(from: &Path, to: &Path, links: bool, except: &[&str]) -> io::Result<()> {
    fs::create_dir(to)?;
    for e in fs::read_dir(from)? {
        let e = e?;
        if except.iter().any(|x| e.file_name() == *x) {
            continue;
        }
        let ft = e.file_type()?;
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dest, links)?;
        } else if ft.is_symlink() {
            if !links {
                return Err(io::Error::other(format!(
                    "{} is a symlink; hoist copies no links here",
                    e.path().display()
                )));
            }
            std::os::unix::fs::symlink(fs::read_link(e.path())?, &dest)?;
        } else if ft.is_file() {
            fs::copy(e.path(), &dest)?;
        }
        // Sockets, fifos and devices are not site content: skipped.
    }
    Ok(())
}
