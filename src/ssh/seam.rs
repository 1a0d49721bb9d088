//! [`SshHost`] as a [`Host`]: the task journal, backups and the server's
//! files reached through the one seam, over the host's multiplexed
//! connection. Each operation is one remote script ([`super::scripts`]),
//! so one round trip; a tree is listed by one `find`.
//!
//! Paths: a [`HostPath`] is joined onto the root on the controller (it
//! cannot climb out of it), and the remote script's `inside` refuses a
//! path whose directory leads out of the root through a symbolic link.
//! Names inside a tree are raw bytes and travel as raw bytes. Data travels
//! on stdin, never on a command line.
//!
//! Reads and writes of a tree's files stream: [`Host::open_in`] hands out
//! the remote `dd`'s stdout, and [`Host::create_in`] a writer whose bytes
//! go in frames to a remote script that also applies [`Finish`] and
//! reports the outcome, all in the one session.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::error::SshError;
use super::host::{ExecOutput, SshHost, Stream};
use super::path::RemotePath;
use super::scripts;
use crate::driver::host::{EntryKind, Host, HostError, HostLock, HostPath, WriteMode, TOP_DIRS};
use crate::driver::program::ProgramOutput;
use crate::driver::tree::{self, Finish, HostWrite, Opened, TarIn, TarOut, TreeEntry};

impl From<SshError> for HostError {
    /// Keeps what callers test for: a missing thing is an `Io` error of
    /// kind `NotFound` ([`HostError::is_not_found`]), an existing one of
    /// kind `AlreadyExists`, a held lock [`HostError::Locked`], a path
    /// refused [`HostError::Path`]. Messages name the server.
    fn from(e: SshError) -> HostError {
        let msg = e.to_string();
        match e {
            SshError::NotFound { host, path } => HostError::Io {
                path: format!("{host}: {path}"),
                source: io::ErrorKind::NotFound.into(),
            },
            SshError::Exists { host, path } => HostError::Io {
                path: format!("{host}: {path}"),
                source: io::ErrorKind::AlreadyExists.into(),
            },
            SshError::Outside { .. } => HostError::Path {
                path: msg,
                why: "a symbolic link, or a path through one out of the server root",
            },
            SshError::Path { .. } => HostError::Path {
                path: msg,
                why: "outside the server root",
            },
            SshError::Quote { .. } => HostError::Path {
                path: msg,
                why: "cannot be sent to the server",
            },
            SshError::Locked { .. } | SshError::LockTimeout { .. } => HostError::Locked(msg),
            _ => HostError::Remote(msg),
        }
    }
}

impl fmt::Debug for SshHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshHost")
            .field("label", &SshHost::label(self))
            .field("root", &self.root().as_str())
            .finish()
    }
}

/// How much a [`RemoteWrite`] gathers before it sends a frame: few
/// frames (each costs the remote side a `head`), little memory.
const FRAME: usize = 256 * 1024;

/// `bytes` escaped for `find -name`, so that it matches only itself.
fn name_pattern(bytes: &[u8]) -> OsString {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

fn kind_letter(b: u8) -> EntryKind {
    match b {
        b'd' => EntryKind::Dir,
        b'f' => EntryKind::File,
        b'l' => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

/// One entry of the `find -printf` of [`scripts::WALK`], from its eight
/// fields (raw bytes).
fn walk_entry(f: &[&[u8]]) -> Option<TreeEntry> {
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    let num = |b: &[u8]| text(b)?.parse::<u64>().ok();
    let kind = kind_letter(*f[0].first()?);
    // `%T@` is seconds with a fraction; the whole seconds are kept, as a
    // local walk keeps them (a time before the epoch is 0 there too).
    let secs = text(f[3])?;
    let mtime = secs
        .split('.')
        .next()?
        .parse::<i64>()
        .ok()
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0);
    Some(TreeEntry {
        rel: PathBuf::from(OsString::from_vec(f[6].to_vec())),
        kind,
        mode: u32::from_str_radix(&text(f[1])?, 8).ok()? & 0o777,
        size: if kind == EntryKind::File {
            num(f[2])?
        } else {
            0
        },
        mtime,
        uid: num(f[4])?,
        gid: num(f[5])?,
        target: (kind == EntryKind::Symlink).then(|| PathBuf::from(OsStr::from_bytes(f[7]))),
    })
}

/// The entries of a `find` listing in the order of
/// [`tree::walk_local`]: the top, then each directory's entries sorted by
/// name before those of its subdirectories.
fn walk_order(entries: Vec<TreeEntry>) -> Vec<TreeEntry> {
    use std::collections::HashMap;
    let mut top = None;
    let mut children: HashMap<PathBuf, Vec<TreeEntry>> = HashMap::new();
    for e in entries {
        if e.rel.as_os_str().is_empty() {
            top = Some(e);
            continue;
        }
        let parent = e.rel.parent().unwrap_or(Path::new("")).to_path_buf();
        children.entry(parent).or_default().push(e);
    }
    let Some(mut top) = top else {
        return Vec::new();
    };
    // The top is a directory (checked remotely); a walk names no target
    // for it.
    top.kind = EntryKind::Dir;
    top.target = None;
    let mut out = vec![top];
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        let mut kids = children.remove(&dir).unwrap_or_default();
        kids.sort_by(|a, b| a.rel.file_name().cmp(&b.rel.file_name()));
        let mut subdirs = Vec::new();
        for k in kids {
            if k.kind == EntryKind::Dir {
                subdirs.push(k.rel.clone());
            }
            out.push(k);
        }
        // Reversed so the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    out
}

impl SshHost {
    /// Where `p` is on the server.
    fn at(&self, p: &HostPath) -> Result<RemotePath, SshError> {
        if p.as_str().is_empty() {
            return Ok(self.root().clone());
        }
        self.root()
            .join(p.as_str())
            .map_err(|source| SshError::Path {
                host: SshHost::label(self).into(),
                source,
            })
    }

    /// Where `rel` of the tree `top` is on the server, as raw bytes (a
    /// tree's names need not be UTF-8); `rel` confined to plain
    /// components.
    fn at_in(&self, top: &HostPath, rel: &Path) -> Result<OsString, HostError> {
        tree::confined(rel)?;
        let base = self.at(top)?;
        let mut out = base.as_str().as_bytes().to_vec();
        if !rel.as_os_str().is_empty() {
            if !out.ends_with(b"/") {
                out.push(b'/');
            }
            out.extend_from_slice(rel.as_os_str().as_bytes());
        }
        Ok(OsString::from_vec(out))
    }

    /// Runs a seam script with `args` (and `stdin`), its statuses turned
    /// into errors about `shown`.
    fn seam(
        &self,
        op: &'static str,
        shown: &OsStr,
        script: &str,
        args: &[&OsStr],
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput, SshError> {
        let line = self.script_line(script, args)?;
        let mut input = stdin.unwrap_or_default();
        let out = self.run(
            &line,
            stdin.map(|_| &mut input as &mut (dyn Read + Send)),
            None,
        )?;
        self.check(op, &shown.to_string_lossy(), out)
    }

    /// Starts a streaming script and reads its first line: `Ok` with the
    /// stream and the line when it starts with `want`, else the error its
    /// status says.
    fn stream_start(
        &self,
        op: &'static str,
        shown: &OsStr,
        script: &str,
        args: &[&OsStr],
        kill_on_drop: bool,
        want: &str,
    ) -> Result<(Stream, String), SshError> {
        let line = self.script_line(script, args)?;
        let mut s = self.spawn(&line, kill_on_drop)?;
        let mut first = Vec::new();
        // A failed read shows as a missing line: the status says why.
        let _ = s.stdout.read_until(b'\n', &mut first);
        let first = String::from_utf8_lossy(&first).into_owned();
        if first.starts_with(want) {
            return Ok((s, first));
        }
        let out = s.wait()?;
        let status = out.status;
        self.check(op, &shown.to_string_lossy(), out)?;
        Err(SshError::Remote {
            host: SshHost::label(self).into(),
            op,
            path: shown.to_string_lossy().into_owned(),
            status,
            stderr: format!("unexpected answer {first:?}"),
        })
    }
}

/// A remote file being read ([`Host::open_in`]). At the end of its bytes
/// the remote status is checked: a read that failed there is an error
/// here, not a short file. Dropped early, its session is ended.
struct RemoteRead {
    stream: Stream,
    ended: bool,
    shown: String,
}

impl Read for RemoteRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        let n = self.stream.stdout.read(buf)?;
        if n == 0 {
            self.ended = true;
            let out = self.stream.wait().map_err(io::Error::other)?;
            if !out.success() {
                return Err(io::Error::other(format!(
                    "reading {} failed on the server (exit {}): {}",
                    self.shown,
                    out.status,
                    out.stderr.trim()
                )));
            }
        }
        Ok(n)
    }
}

/// A remote tree streamed as a tar ([`Host::tar_out`]).
struct RemoteTar {
    read: RemoteRead,
}

impl Read for RemoteTar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read.read(buf)
    }
}

impl TarOut for RemoteTar {
    /// Reading to the end checks the remote status ([`RemoteRead`]).
    fn end(mut self: Box<Self>) -> Result<(), HostError> {
        io::copy(&mut self.read, &mut io::sink())
            .map(|_| ())
            .map_err(|source| HostError::Io {
                path: self.read.shown.clone(),
                source,
            })
    }
}

/// A tar stream unpacked remotely into a new directory ([`Host::tar_in`]).
struct RemoteUntar {
    stream: Stream,
    shown: String,
}

/// How an unpacking on `shown` ended, as an error.
fn untar_failed(shown: &str, out: &ExecOutput) -> HostError {
    HostError::Remote(format!(
        "{shown}: unpacking failed (exit {}): {}",
        out.status,
        out.stderr.trim()
    ))
}

impl Write for RemoteUntar {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = match self.stream.stdin.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("the stream was already ended")),
        };
        let shown = &self.shown;
        r.map_err(|e| write_failure(&mut self.stream, e, |out| untar_failed(shown, out)))
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.stream.stdin.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl TarIn for RemoteUntar {
    fn end(mut self: Box<Self>) -> Result<(), HostError> {
        let out = self.stream.wait()?;
        if out.success() {
            return Ok(());
        }
        Err(untar_failed(&self.shown, &out))
    }
}

/// Why a write to a remote command failed: one that refused it (a full
/// disk) or went away closes its stdin, and the broken pipe seen here says
/// nothing; its status and stderr say what happened (`failed` words them).
fn write_failure(
    stream: &mut Stream,
    sent: io::Error,
    failed: impl FnOnce(&ExecOutput) -> HostError,
) -> io::Error {
    if stream.stdin.is_none() {
        return sent;
    }
    match stream.wait() {
        Ok(out) if !out.success() => io::Error::other(failed(&out)),
        Ok(_) => sent,
        Err(e) => io::Error::other(HostError::from(e)),
    }
}

/// A new remote file being written ([`Host::create_in`]), in frames of
/// [`scripts::CREATE`].
struct RemoteWrite {
    stream: Stream,
    buf: Vec<u8>,
    total: u64,
    label: String,
    shown: String,
}

impl RemoteWrite {
    /// Sends what is gathered as one frame.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let stdin = self
            .stream
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("the write was already ended"))?;
        stdin.write_all(format!("d {}\n", self.buf.len()).as_bytes())?;
        stdin.write_all(&self.buf)?;
        self.total += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn failed(&self, status: i32, stderr: &str) -> HostError {
        write_failed(&self.label, &self.shown, status, stderr)
    }

    /// Why a send failed ([`write_failure`]).
    fn cause(&mut self, sent: io::Error) -> io::Error {
        let (label, shown) = (&self.label, &self.shown);
        write_failure(&mut self.stream, sent, |out| {
            write_failed(label, shown, out.status, &out.stderr)
        })
    }
}

/// How writing `shown` on host `label` ended, as an error.
fn write_failed(label: &str, shown: &str, status: i32, stderr: &str) -> HostError {
    HostError::Remote(format!(
        "{label}: writing {shown} failed (exit {status}): {}",
        stderr.trim()
    ))
}

impl Write for RemoteWrite {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= FRAME {
            if let Err(e) = self.send() {
                return Err(self.cause(e));
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let sent = self.send().and_then(|()| match self.stream.stdin.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        });
        sent.map_err(|e| self.cause(e))
    }
}

impl Drop for RemoteWrite {
    fn drop(&mut self) {
        // Left as far as it was written, as a local file would be: what
        // is gathered goes out before the stream's stdin ends. A failure
        // here has no one to report to; the caller removes the file.
        if self.stream.stdin.is_some() {
            let _ = self.send();
        }
    }
}

impl HostWrite for RemoteWrite {
    fn finish(mut self: Box<Self>, how: Finish) -> Result<(), HostError> {
        let io_err = |e: io::Error, w: &RemoteWrite| HostError::Io {
            path: format!("{}: {}", w.label, w.shown),
            source: e,
        };
        let sent = self.send().and_then(|()| {
            let last = format!(
                "f {} {} {} {}\n",
                self.total + self.buf.len() as u64,
                how.mode.map_or("-".into(), |m| format!("{:o}", m & 0o7777)),
                how.mtime.map_or("-".into(), |t| t.to_string()),
                u8::from(how.synced)
            );
            match self.stream.stdin.as_mut() {
                Some(w) => w.write_all(last.as_bytes()),
                None => Err(io::Error::other("the write was already ended")),
            }
        });
        // Whatever was sent, the remote status tells what happened: a
        // refused write closes its stdin (a broken pipe here).
        let out = self.stream.wait()?;
        if !out.success() {
            return Err(self.failed(out.status, &out.stderr));
        }
        sent.map_err(|e| io_err(e, &self))?;
        if out.stdout != b"finished\n" {
            return Err(self.failed(out.status, "the server did not confirm the write"));
        }
        Ok(())
    }
}

impl Host for SshHost {
    fn label(&self) -> String {
        let t = self.target();
        let user = t.user.as_deref().map_or(String::new(), |u| format!("{u}@"));
        format!("{user}{}:{}", t.host, self.root())
    }

    fn display(&self, p: &HostPath) -> String {
        self.at(p)
            .map_or_else(|_| format!("{}/{p}", self.root()), |r| r.to_string())
    }

    /// Stricter than [`crate::driver::host::LocalHost`]: a final symbolic
    /// link is refused, not followed (nothing hoist reads is one).
    fn read(&self, p: &HostPath) -> Result<Option<Vec<u8>>, HostError> {
        match SshHost::read(self, &self.at(p)?) {
            Ok(b) => Ok(Some(b)),
            Err(SshError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write(&self, p: &HostPath, bytes: &[u8], mode: WriteMode) -> Result<(), HostError> {
        let at = self.at(p)?;
        let (perm, synced) = match mode {
            WriteMode::Atomic => ("644", "1"),
            WriteMode::Private => ("600", "1"),
            WriteMode::Staged => ("644", "0"),
            WriteMode::StagedPrivate => ("600", "0"),
        };
        let len = bytes.len().to_string();
        let path = OsStr::new(at.as_str());
        let args = [path, OsStr::new(perm), OsStr::new(&len), OsStr::new(synced)];
        self.seam("write", path, scripts::HOST_WRITE, &args, Some(bytes))?;
        Ok(())
    }

    /// `mv -T`: rename(2) on one filesystem, which is how every caller
    /// uses it (a staged sibling put in place).
    fn rename(&self, from: &HostPath, to: &HostPath) -> Result<(), HostError> {
        let (a, b) = (self.at(from)?, self.at(to)?);
        let args = [OsStr::new(a.as_str()), OsStr::new(b.as_str())];
        self.seam("rename", args[0], scripts::RENAME_OVER, &args, None)?;
        Ok(())
    }

    fn remove_file(&self, p: &HostPath) -> Result<(), HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        self.seam("remove", path, scripts::REMOVE_FILE, &[path], None)?;
        Ok(())
    }

    /// The root itself is refused (as [`SshHost::remove_tree`] refuses it).
    fn remove_tree(&self, p: &HostPath) -> Result<(), HostError> {
        Ok(SshHost::remove_tree(self, &self.at(p)?)?)
    }

    fn copy_tree(&self, from: &HostPath, to: &HostPath, except: &[&str]) -> Result<(), HostError> {
        let (a, b) = (self.at(from)?, self.at(to)?);
        let mut args = vec![OsStr::new(a.as_str()), OsStr::new(b.as_str())];
        args.extend(except.iter().map(OsStr::new));
        let line = self.script_line(scripts::COPY_EXCEPT, &args)?;
        let out = self.run(&line, None, None)?;
        let shown = if out.status == scripts::EXISTS {
            &b
        } else {
            &a
        };
        self.check("copy", shown.as_str(), out)?;
        Ok(())
    }

    /// Streams `src` as a tar built here (the `tar` crate, names sorted)
    /// into [`SshHost::tar_in`]'s staging and rename; the files become
    /// the remote account's. A link anywhere in `src` is refused before
    /// anything is sent.
    fn put_tree(&self, src: &Path, to: &HostPath) -> Result<(), HostError> {
        let entries = tree::walk_local(src, None)?;
        if let Some(l) = entries.iter().find(|e| e.kind == EntryKind::Symlink) {
            return Err(HostError::Io {
                path: src.join(&l.rel).display().to_string(),
                source: io::Error::other("a symlink; hoist copies no links here"),
            });
        }
        let dest = self.at(to)?;
        let (mut reader, writer) = io::pipe().map_err(|source| HostError::Io {
            path: src.display().to_string(),
            source,
        })?;
        std::thread::scope(|s| {
            let builder = s.spawn(move || tar_of(src, &entries, writer));
            let sent = self.tar_in_as(&dest, &mut reader, true);
            // The builder ends when its pipe is closed: dropped here if the
            // remote side gave up early.
            drop(reader);
            let built = builder
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the tar builder panicked")));
            match (sent, built) {
                (Ok(()), Ok(())) => Ok(()),
                (Ok(()), Err(source)) => Err(HostError::Io {
                    path: src.display().to_string(),
                    source,
                }),
                (Err(e), _) => Err(e.into()),
            }
        })
    }

    fn kind(&self, p: &HostPath) -> Result<Option<EntryKind>, HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        let out = self.seam("kind", path, scripts::KIND, &[path], None)?;
        Ok(match out.stdout.first() {
            Some(b'n') | None => None,
            Some(&b) => Some(kind_letter(b)),
        })
    }

    fn list(&self, p: &HostPath) -> Result<Vec<(String, EntryKind)>, HostError> {
        let entries = match self.list_dir(&self.at(p)?) {
            Ok(e) => e,
            Err(SshError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out: Vec<(String, EntryKind)> = entries
            .into_iter()
            .map(|e| {
                let kind = match e.kind {
                    super::EntryKind::Dir => EntryKind::Dir,
                    super::EntryKind::File => EntryKind::File,
                    super::EntryKind::Symlink => EntryKind::Symlink,
                    super::EntryKind::Other => EntryKind::Other,
                };
                (e.name.to_string_lossy().into_owned(), kind)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn mkdir(&self, p: &HostPath, private: bool) -> Result<(), HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        let flag = OsStr::new(if private { "1" } else { "0" });
        self.seam("mkdir", path, scripts::MKDIR, &[path, flag], None)?;
        Ok(())
    }

    fn free_space(&self, p: &HostPath) -> Result<(u64, Option<u64>), HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        let out = self.seam("free space", path, scripts::FREE_SPACE, &[path], None)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match nums[..] {
            [avail, bsize, files, ffree] => {
                Ok((avail.saturating_mul(bsize), (files != 0).then_some(ffree)))
            }
            _ => Err(HostError::Remote(format!(
                "{}: free space of {at}: unexpected answer {text:?}",
                SshHost::label(self)
            ))),
        }
    }

    fn sync_dir(&self, p: &HostPath) -> Result<(), HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        self.seam("sync", path, scripts::SYNC_DIR, &[path], None)?;
        Ok(())
    }

    fn create_new(&self, p: &HostPath, bytes: &[u8]) -> Result<(), HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        let len = bytes.len().to_string();
        let args = [path, OsStr::new(&len)];
        self.seam("create", path, scripts::CREATE_NEW, &args, Some(bytes))?;
        Ok(())
    }

    fn append(&self, p: &HostPath, bytes: &[u8], synced: bool) -> Result<(), HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        let len = bytes.len().to_string();
        let args = [
            path,
            OsStr::new(&len),
            OsStr::new(if synced { "1" } else { "0" }),
        ];
        self.seam("append", path, scripts::APPEND, &args, Some(bytes))?;
        Ok(())
    }

    fn link(&self, from: &HostPath, to: &HostPath) -> Result<(), HostError> {
        let (a, b) = (self.at(from)?, self.at(to)?);
        let args = [OsStr::new(a.as_str()), OsStr::new(b.as_str())];
        let line = self.script_line(scripts::LINK, &args)?;
        let out = self.run(&line, None, None)?;
        let shown = if out.status == scripts::EXISTS {
            &b
        } else {
            &a
        };
        self.check("link", shown.as_str(), out)?;
        Ok(())
    }

    fn len(&self, p: &HostPath) -> Result<u64, HostError> {
        let at = self.at(p)?;
        let path = OsStr::new(at.as_str());
        let out = self.seam("size", path, scripts::LEN, &[path], None)?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| {
            HostError::Remote(format!(
                "{}: size of {at}: unexpected answer {text:?}",
                SshHost::label(self)
            ))
        })
    }

    fn walk(&self, top: &HostPath, only: Option<&OsStr>) -> Result<Vec<TreeEntry>, HostError> {
        let at = self.at(top)?;
        let path = OsStr::new(at.as_str());
        let pattern = only.map(|o| name_pattern(o.as_bytes()));
        let args = match &pattern {
            Some(p) => vec![path, OsStr::new("1"), p.as_os_str()],
            None => vec![path, OsStr::new("0"), OsStr::new("")],
        };
        let out = self.seam("walk", path, scripts::WALK, &args, None)?;
        let fields: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
        // Eight fields an entry, each NUL-ended: the split leaves one
        // empty piece after the last.
        let whole = fields.len().saturating_sub(1) / 8 * 8;
        let mut entries = Vec::with_capacity(whole / 8);
        for f in fields[..whole].chunks(8) {
            let e = walk_entry(f).ok_or_else(|| {
                HostError::Remote(format!(
                    "{}: walk of {at}: malformed entry {:?}",
                    SshHost::label(self),
                    String::from_utf8_lossy(&f.join(&b'|'))
                ))
            })?;
            if only.is_some_and(|o| !e.rel.as_os_str().is_empty() && e.rel.file_name() != Some(o)) {
                continue;
            }
            entries.push(e);
        }
        Ok(walk_order(entries))
    }

    fn open_in(&self, top: &HostPath, rel: &Path) -> Result<Opened, HostError> {
        let path = self.at_in(top, rel)?;
        let (stream, first) =
            self.stream_start("open", &path, scripts::OPEN, &[&path], true, "open ")?;
        let len = first["open ".len()..].trim().parse().map_err(|_| {
            HostError::Remote(format!(
                "{}: open {}: unexpected answer {first:?}",
                SshHost::label(self),
                path.to_string_lossy()
            ))
        })?;
        Ok(Opened {
            read: Box::new(RemoteRead {
                stream,
                ended: false,
                shown: format!("{}: {}", SshHost::label(self), path.to_string_lossy()),
            }),
            len,
        })
    }

    fn create_in(&self, top: &HostPath, rel: &Path) -> Result<Box<dyn HostWrite>, HostError> {
        let path = self.at_in(top, rel)?;
        // Not killed when dropped: its stdin ends, and what was sent stays.
        let (stream, _) =
            self.stream_start("create", &path, scripts::CREATE, &[&path], false, "ready")?;
        Ok(Box::new(RemoteWrite {
            stream,
            buf: Vec::new(),
            total: 0,
            label: SshHost::label(self).into(),
            shown: path.to_string_lossy().into_owned(),
        }))
    }

    fn mkdir_in(&self, top: &HostPath, rel: &Path) -> Result<(), HostError> {
        let path = self.at_in(top, rel)?;
        self.seam("mkdir", &path, scripts::MKDIR_NEW, &[&path], None)?;
        Ok(())
    }

    fn symlink_in(&self, top: &HostPath, rel: &Path, target: &Path) -> Result<(), HostError> {
        let path = self.at_in(top, rel)?;
        let args = [path.as_os_str(), target.as_os_str()];
        self.seam("symlink", &path, scripts::SYMLINK, &args, None)?;
        Ok(())
    }

    fn set_dir_meta(
        &self,
        top: &HostPath,
        rel: &Path,
        mode: u32,
        mtime: Option<u64>,
    ) -> Result<(), HostError> {
        let path = self.at_in(top, rel)?;
        let mode = format!("{:o}", mode & 0o7777);
        let mtime = mtime.map_or("-".to_string(), |t| t.to_string());
        let args = [path.as_os_str(), OsStr::new(&mode), OsStr::new(&mtime)];
        self.seam("set mode", &path, scripts::SET_DIR_META, &args, None)?;
        Ok(())
    }

    /// Through [`scripts::TAR_OUT`], as a backup streams a site.
    fn tar_out(&self, top: &HostPath) -> Result<Box<dyn TarOut>, HostError> {
        let path = self.at(top)?;
        self.confine(&path)?;
        let line = self.script_line(scripts::TAR_OUT, &[path.as_str()])?;
        let stream = self.spawn(&line, true)?;
        Ok(Box::new(RemoteTar {
            read: RemoteRead {
                stream,
                ended: false,
                shown: format!("{}: {path}", SshHost::label(self)),
            },
        }))
    }

    fn tar_in(&self, to: &HostPath) -> Result<Box<dyn TarIn>, HostError> {
        let path = self.at(to)?;
        let mut args = vec![OsStr::new(path.as_str())];
        args.extend(tree::TAR_IN_ARGS.iter().map(OsStr::new));
        let shown = OsStr::new(path.as_str());
        let (stream, _) =
            self.stream_start("untar", shown, scripts::UNTAR_NEW, &args, false, "ready")?;
        Ok(Box::new(RemoteUntar {
            stream,
            shown: format!("{}: {path}", SshHost::label(self)),
        }))
    }

    /// Through [`scripts::RUN_PROGRAM`]: the remote `timeout` kills the
    /// program where it runs, which closing the connection would not.
    fn run_program(
        &self,
        program: &OsStr,
        args: &[&OsStr],
        stdin: Vec<u8>,
        timeout: std::time::Duration,
    ) -> Result<Option<ProgramOutput>, HostError> {
        use std::os::unix::process::ExitStatusExt;
        let secs = timeout.as_secs().max(1).to_string();
        let mut argv = vec![OsStr::new(&secs), program];
        argv.extend_from_slice(args);
        let line = self.script_line(scripts::RUN_PROGRAM, &argv)?;
        let started = std::time::Instant::now();
        let out = self.run(&line, Some(&mut stdin.as_slice()), None)?;
        let shown = program.to_string_lossy();
        if !out.success() {
            return Err(HostError::Remote(format!(
                "{}: running {shown} failed (exit {}): {}",
                SshHost::label(self),
                out.status,
                out.stderr.trim()
            )));
        }
        let (stderr, status) = program_status(&out.stderr).ok_or_else(|| {
            HostError::Remote(format!(
                "{}: {shown} ended without its status: {}",
                SshHost::label(self),
                out.stderr.trim()
            ))
        })?;
        // 124: `timeout` stopped it; 137 (KILL) once the limit is past.
        if status == 124 || (status == 137 && started.elapsed() >= timeout) {
            return Ok(None);
        }
        Ok(Some(ProgramOutput {
            status: std::process::ExitStatus::from_raw(status << 8),
            stdout: out.stdout,
            stderr: stderr.into_bytes(),
        }))
    }

    /// A `syncfs` of the root's filesystem and of each top directory's
    /// (each may be a mount of its own), in one round trip.
    fn make_durable(&self) -> Result<(), HostError> {
        let root = OsStr::new(self.root().as_str());
        let args: Vec<&OsStr> = TOP_DIRS.iter().map(OsStr::new).collect();
        self.seam("sync", root, scripts::DURABLE, &args, None)?;
        Ok(())
    }

    /// The lock file `.hoist.lock` in the root, as [`crate::driver::host::LocalHost`]
    /// takes it: a hoist on the server itself and one over ssh exclude
    /// each other where `flock` is there.
    fn lock(&self) -> Result<HostLock, HostError> {
        let file = self.at(&HostPath::new(".hoist.lock")?)?;
        let held = SshHost::lock(self, &file)?.into_held();
        Ok(HostLock::new(Box::new(held)))
    }

    fn check_lock(&self) -> Result<(), HostError> {
        Ok(self.check_locks()?)
    }

    /// One round trip for the whole server ([`SshHost::observed_tar`]).
    fn observed_files(&self) -> Result<Option<Vec<u8>>, HostError> {
        Ok(Some(self.observed_tar()?))
    }
}

/// Writes `src` as a tar of `entries` (its walk: no links) into `out`,
/// with a first `./` entry so the tree's top keeps its mode.
fn tar_of(src: &Path, entries: &[TreeEntry], out: io::PipeWriter) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    for e in entries {
        let abs = src.join(&e.rel);
        if e.rel.as_os_str().is_empty() {
            b.append_dir(".", &abs)?;
        } else {
            b.append_path_with_name(&abs, &e.rel)?;
        }
    }
    b.into_inner()?.flush()
}

/// Splits [`scripts::RUN_PROGRAM`]'s stderr into the program's own and
/// its exit status (the last line, `hoist-exit N`).
fn program_status(stderr: &str) -> Option<(String, i32)> {
    let trimmed = stderr.trim_end_matches('\n');
    let (rest, last) = trimmed.rsplit_once('\n').unwrap_or(("", trimmed));
    let status = last.strip_prefix("hoist-exit ")?.trim().parse().ok()?;
    Some((rest.to_string(), status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_is_taken_off_the_programs_stderr() {
        assert_eq!(
            program_status("PHP Fatal error: x\n\nhoist-exit 255\n"),
            Some(("PHP Fatal error: x\n".to_string(), 255))
        );
        assert_eq!(program_status("\nhoist-exit 0\n"), Some((String::new(), 0)));
        assert_eq!(program_status("cut off"), None);
        assert_eq!(program_status("hoist-exit x\n"), None);
    }

    fn entry(rel: &str, kind: EntryKind) -> TreeEntry {
        TreeEntry {
            rel: PathBuf::from(rel),
            kind,
            mode: 0o755,
            size: 0,
            mtime: 0,
            uid: 0,
            gid: 0,
            target: None,
        }
    }

    #[test]
    fn a_find_listing_is_put_in_local_walk_order() {
        use EntryKind::*;
        let found = vec![
            entry("b/c/f", File),
            entry("l", Symlink),
            entry("b", Dir),
            entry("", Dir),
            entry("b/c", Dir),
            entry("a", File),
            entry("b/a", File),
        ];
        let rels: Vec<String> = walk_order(found)
            .iter()
            .map(|e| e.rel.display().to_string())
            .collect();
        assert_eq!(rels, ["", "a", "b", "l", "b/a", "b/c", "b/c/f"]);
    }

    #[test]
    fn find_fields_become_an_entry() {
        let f: Vec<&[u8]> = vec![
            b"l",
            b"777",
            b"4",
            b"1700000000.5000000000",
            b"1000",
            b"100",
            b"d/\xffname",
            b"/etc",
        ];
        let e = walk_entry(&f).unwrap();
        assert_eq!(e.kind, EntryKind::Symlink);
        assert_eq!(e.mode, 0o777);
        assert_eq!(e.size, 0, "only files have a size");
        assert_eq!(e.mtime, 1_700_000_000);
        assert_eq!((e.uid, e.gid), (1000, 100));
        assert_eq!(e.rel.as_os_str().as_bytes(), b"d/\xffname");
        assert_eq!(e.target.as_deref(), Some(Path::new("/etc")));
        let mut bad = f.clone();
        bad[1] = b"9x";
        assert!(walk_entry(&bad).is_none());
    }

    #[test]
    fn name_patterns_match_only_the_name() {
        assert_eq!(
            name_pattern(b"a*b?[c]\\"),
            OsString::from("a\\*b\\?\\[c\\]\\\\")
        );
        assert_eq!(
            name_pattern(b"settings.yaml"),
            OsString::from("settings.yaml")
        );
    }
}
