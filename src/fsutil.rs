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

/// Whether a write is synced before it returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// File and directory entry synced: the write survives a crash.
    Now,
    /// Left to the caller: a later [`sync_filesystems`] (a task's commit
    /// point) or a single directory sync makes it durable.
    Later,
}

/// Replaces `path` through a temporary file renamed over it, so readers see
/// the old content or the new, never a mix.
fn write_atomic_mode(path: &Path, data: &[u8], mode: u32, sync: Sync) -> io::Result<()> {
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
    {
        let open = || {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(mode)
                .open(&tmp)
        };
        // The directory is made only when it is missing: thousands of
        // status files in one directory need no mkdir each.
        let mut f = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir)?;
                open()?
            }
            r => r?,
        };
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        if sync == Sync::Now {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    match sync {
        Sync::Now => sync_dir(dir),
        Sync::Later => Ok(()),
    }
}

/// Writes `path` atomically (a synced temporary file renamed over it), mode 0644.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o644, Sync::Now)
}

/// Replaces `path` atomically for readers (a temporary file renamed over
/// it, mode 0644) without syncing: for derived files that are rewritten
/// anyway and where thousands of fsyncs would cost seconds, and for a
/// task's staged files, which its commit point makes durable with
/// [`sync_filesystems`]. The caller syncs.
pub fn write_replace(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o644, Sync::Later)
}

/// Writes `path` atomically with mode 0600: for anything holding a secret.
pub fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o600, Sync::Now)
}

/// [`write_private`] without the sync: for a task's staged files, which its
/// commit point makes durable with [`sync_filesystems`].
pub fn write_private_unsynced(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, data, 0o600, Sync::Later)
}

/// Makes everything written so far on the filesystems holding `paths`
/// durable: one `syncfs(2)` per filesystem. A task calls it once at its
/// commit point instead of an fsync per staged file and directory: a copied
/// site tree, its settings, vhost, database and backup all reach the disk
/// in one call, which costs less than syncing each of a dozen files.
pub fn sync_filesystems(paths: &[&Path]) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut done = Vec::new();
    for p in paths {
        let f = fs::File::open(p)?;
        let dev = f.metadata()?.dev();
        if done.contains(&dev) {
            continue;
        }
        // SAFETY: syncfs on a descriptor we own; no memory is involved.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) } != 0 {
            return Err(io::Error::last_os_error());
        }
        done.push(dev);
    }
    Ok(())
}

/// Creates directory `dir` (and its parents) with mode 0700, or gives an
/// existing one that mode: for directories of private files that an older
/// hoist made readable by everyone.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && m.permissions().mode() & 0o777 == 0o700 => Ok(()),
        Ok(m) if m.is_dir() => fs::set_permissions(dir, fs::Permissions::from_mode(0o700)),
        _ => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir),
    }
}

/// Room on the filesystem holding `dir`: the bytes an unprivileged writer
/// may still use, and the files it may still create (`None` where the
/// filesystem sets no limit, as btrfs).
pub fn free_space(dir: &Path) -> io::Result<(u64, Option<u64>)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: statvfs fills the struct it is given; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    let bytes = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    #[allow(clippy::unnecessary_cast)]
    let files = (st.f_files != 0).then_some(st.f_favail as u64);
    Ok((bytes, files))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_private_write_replaces_with_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("settings.yaml");
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_unsynced(&p, b"new").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary file is left beside it.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn atomic_writes_make_a_missing_directory() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/f");
        write_replace(&p, b"x").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"x");
        write_atomic(&d.path().join("c/f"), b"y").unwrap();
        assert_eq!(fs::read(d.path().join("c/f")).unwrap(), b"y");
    }

    #[test]
    fn sync_filesystems_syncs_each_path_and_names_a_missing_one() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        fs::create_dir(&a).unwrap();
        sync_filesystems(&[d.path(), &a]).unwrap();
        let gone = d.path().join("gone");
        let e = sync_filesystems(&[d.path(), &gone]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
