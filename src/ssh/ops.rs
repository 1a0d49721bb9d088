//! File operations on an [`SshHost`], each one remote script run through
//! the master connection. Every path must lie within the server root
//! (checked here, lexically) and must not lead out of it through a
//! symbolic link (checked there, by the script's `inside`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;

use super::error::SshError;
use super::host::{ExecOutput, SshHost};
use super::path::RemotePath;
use super::scripts;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (not followed).
    Symlink,
    /// A device, socket or fifo.
    Other,
}

/// One entry of [`SshHost::list_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Its name, byte for byte.
    pub name: OsString,
    /// What it is.
    pub kind: EntryKind,
}

/// A random suffix for staging names.
fn nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl SshHost {
    /// Refuses a path outside the root before anything is sent.
    pub(crate) fn confine(&self, p: &RemotePath) -> Result<(), SshError> {
        p.check_within(self.root())
            .map_err(|source| SshError::Path {
                host: self.label().into(),
                source,
            })
    }

    /// Runs `script` with `args` and turns the statuses it uses into
    /// errors about `path`.
    fn script(
        &self,
        op: &'static str,
        path: &str,
        script: &str,
        args: &[&str],
        stdin: Option<&mut (dyn Read + Send)>,
        stdout: Option<&mut (dyn Write + Send)>,
    ) -> Result<ExecOutput, SshError> {
        let line = self.script_line(script, args)?;
        let out = self.run(&line, stdin, stdout)?;
        self.check(op, path, out)
    }

    pub(crate) fn check(
        &self,
        op: &'static str,
        path: &str,
        out: ExecOutput,
    ) -> Result<ExecOutput, SshError> {
        let host = self.label().to_string();
        let path = path.to_string();
        match out.status {
            0 => Ok(out),
            scripts::NOT_FOUND => Err(SshError::NotFound { host, path }),
            scripts::EXISTS => Err(SshError::Exists { host, path }),
            scripts::OUTSIDE => Err(SshError::Outside {
                host,
                path,
                detail: out.stderr.trim().into(),
            }),
            scripts::SHORT => Err(SshError::Connection {
                host,
                detail: format!("{op} {path}: the stream was cut: {}", out.stderr.trim()),
            }),
            status => Err(SshError::Remote {
                host,
                op,
                path,
                status,
                stderr: out.stderr.trim().into(),
            }),
        }
    }

    /// The bytes of file `path`. A final symbolic link is refused.
    pub fn read(&self, path: &RemotePath) -> Result<Vec<u8>, SshError> {
        self.confine(path)?;
        let out = self.script(
            "read",
            path.as_str(),
            scripts::READ,
            &[path.as_str()],
            None,
            None,
        )?;
        Ok(out.stdout)
    }

    /// Replaces file `path` with `data` and mode `mode` (e.g. `0o600`),
    /// atomically and durably: a temporary sibling is written, checked for
    /// length, fsynced and renamed over `path`, and the directory fsynced.
    /// Its parent must exist. `data` travels on stdin, so it may be secret.
    pub fn write_atomic(&self, path: &RemotePath, data: &[u8], mode: u32) -> Result<(), SshError> {
        let mut r: &[u8] = data;
        self.write_atomic_from(path, &mut r, data.len() as u64, mode)
    }

    /// [`SshHost::write_atomic`] streaming `len` bytes from `data`. If the
    /// stream ends early or is cut, `path` is left as it was.
    pub fn write_atomic_from(
        &self,
        path: &RemotePath,
        data: &mut (dyn Read + Send),
        len: u64,
        mode: u32,
    ) -> Result<(), SshError> {
        self.confine(path)?;
        let mode = format!("{:o}", mode & 0o7777);
        let len = len.to_string();
        self.script(
            "write",
            path.as_str(),
            scripts::WRITE,
            &[path.as_str(), &mode, &len],
            Some(data),
            None,
        )?;
        Ok(())
    }

    /// Renames `from` to `to`, which must not exist yet; both directories
    /// are fsynced.
    pub fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<(), SshError> {
        self.confine(from)?;
        self.confine(to)?;
        let out = self.run(
            &self.script_line(scripts::RENAME, &[from.as_str(), to.as_str()])?,
            None,
            None,
        )?;
        let path = if out.status == scripts::EXISTS {
            to
        } else {
            from
        };
        self.check("rename", path.as_str(), out)?;
        Ok(())
    }

    /// Removes `path` and everything below it (symbolic links inside are
    /// removed, not followed). It disappears at once: it is renamed aside
    /// before being deleted. Nothing there is fine. The root itself is
    /// refused.
    pub fn remove_tree(&self, path: &RemotePath) -> Result<(), SshError> {
        self.confine(path)?;
        if path == self.root() {
            return Err(SshError::Config {
                host: self.label().into(),
                reason: format!("refusing to remove the server root {path}"),
            });
        }
        self.script(
            "remove",
            path.as_str(),
            scripts::REMOVE_TREE,
            &[path.as_str()],
            None,
            None,
        )?;
        Ok(())
    }

    /// Copies directory `from` to the new `to` on the host (modes, times,
    /// symbolic links as links), through a temporary sibling made durable
    /// and renamed into place: `to` is either absent or complete.
    pub fn copy_tree(&self, from: &RemotePath, to: &RemotePath) -> Result<(), SshError> {
        self.confine(from)?;
        self.confine(to)?;
        let out = self.run(
            &self.script_line(scripts::COPY_TREE, &[from.as_str(), to.as_str()])?,
            None,
            None,
        )?;
        let path = if out.status == scripts::EXISTS {
            to
        } else {
            from
        };
        self.check("copy", path.as_str(), out)?;
        Ok(())
    }

    /// Whether `path` exists (a dangling symbolic link counts).
    pub fn exists(&self, path: &RemotePath) -> Result<bool, SshError> {
        self.confine(path)?;
        let out = self.run(
            &self.script_line(scripts::EXISTS_SCRIPT, &[path.as_str()])?,
            None,
            None,
        )?;
        match out.status {
            0 => Ok(true),
            1 => Ok(false),
            _ => self.check("exists", path.as_str(), out).map(|_| false),
        }
    }

    /// The entries of directory `path` (without `.` and `..`), sorted by
    /// name.
    pub fn list_dir(&self, path: &RemotePath) -> Result<Vec<DirEntry>, SshError> {
        self.confine(path)?;
        let out = self.script(
            "list",
            path.as_str(),
            scripts::LIST_DIR,
            &[path.as_str()],
            None,
            None,
        )?;
        let mut entries = Vec::new();
        for rec in out.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let (kind, name) = match rec {
                [k, b' ', name @ ..] => (*k, name),
                _ => {
                    return Err(SshError::Remote {
                        host: self.label().into(),
                        op: "list",
                        path: path.to_string(),
                        status: 0,
                        stderr: format!("malformed entry {:?}", String::from_utf8_lossy(rec)),
                    })
                }
            };
            let kind = match kind {
                b'd' => EntryKind::Dir,
                b'f' => EntryKind::File,
                b'l' => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            entries.push(DirEntry {
                name: OsString::from_vec(name.to_vec()),
                kind,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Creates directory `path` and its missing parents. Not made durable
    /// by itself: see [`SshHost::make_durable`].
    pub fn mkdir_p(&self, path: &RemotePath) -> Result<(), SshError> {
        self.confine(path)?;
        self.script(
            "mkdir",
            path.as_str(),
            scripts::MKDIR_P,
            &[path.as_str()],
            None,
            None,
        )?;
        Ok(())
    }

    /// Makes everything written so far on the filesystem holding `path`
    /// durable (`sync -f`, a `syncfs(2)`): one call at a task's commit point.
    pub fn make_durable(&self, path: &RemotePath) -> Result<(), SshError> {
        self.confine(path)?;
        self.script(
            "sync",
            path.as_str(),
            scripts::MAKE_DURABLE,
            &[path.as_str()],
            None,
            None,
        )?;
        Ok(())
    }

    /// What observing the server reads, as a tar ([`scripts::OBSERVE`]).
    pub fn observed_tar(&self) -> Result<Vec<u8>, SshError> {
        let root = self.root().clone();
        let out = self.script(
            "observe",
            root.as_str(),
            scripts::OBSERVE,
            &[] as &[&str],
            None,
            None,
        )?;
        Ok(out.stdout)
    }

    /// Streams directory `dir` as a tar (GNU format, names sorted, numeric
    /// owners, members relative to `dir`) into `out`.
    pub fn tar_out(&self, dir: &RemotePath, out: &mut (dyn Write + Send)) -> Result<(), SshError> {
        self.confine(dir)?;
        self.script(
            "tar out",
            dir.as_str(),
            scripts::TAR_OUT,
            &[dir.as_str()],
            None,
            Some(out),
        )?;
        Ok(())
    }

    /// Extracts the tar read from `input` as the new directory `dir`: into
    /// a staging sibling first, renamed into place only once the whole
    /// stream went through and GNU tar accepted it, so a cut stream leaves
    /// no half tree under the real name.
    pub fn tar_in(&self, dir: &RemotePath, input: &mut (dyn Read + Send)) -> Result<(), SshError> {
        self.tar_in_as(dir, input, false)
    }

    /// [`SshHost::tar_in`]; `mine`: the files are the remote account's,
    /// not the archive's owners'.
    pub(crate) fn tar_in_as(
        &self,
        dir: &RemotePath,
        input: &mut (dyn Read + Send),
        mine: bool,
    ) -> Result<(), SshError> {
        self.confine(dir)?;
        if self.exists(dir)? {
            return Err(SshError::Exists {
                host: self.label().into(),
                path: dir.to_string(),
            });
        }
        let staging = dir.staging_sibling("hoist-tar", &nonce());
        let res = self.script(
            "tar in",
            dir.as_str(),
            scripts::TAR_IN,
            &[staging.as_str(), if mine { "mine" } else { "same" }],
            Some(input),
            None,
        );
        if let Err(e) = res {
            // Best effort: a staging name left behind holds nothing live.
            let _ = self.remove_tree(&staging);
            return Err(e);
        }
        self.rename(&staging, dir)
    }
}
