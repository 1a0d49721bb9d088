//! A tree copied from one host to another (a site moved between servers)
//! as one tar stream: the source host's `tar` writes it, this process
//! reads it entry by entry, checks each and writes it on to the target
//! host's `tar`. Nothing is kept whole here, and it costs one session per
//! host instead of several per file.
//!
//! The stream from the source is untrusted (a host may be compromised):
//! only directories, regular files, symbolic links and hard links to a
//! file earlier in the stream pass, named by plain relative components,
//! never below a symbolic link an earlier member made (which the target's
//! `tar` would write through), modes cut to the permission bits. The checked stream is written anew, so nothing but
//! what was checked reaches the target.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::host::{Host, HostError, HostPath};

/// Why a relay stopped.
#[derive(Debug)]
enum Stop {
    /// Reading the source's stream failed.
    Read(io::Error),
    /// Writing to the target failed (its reason inside).
    Write(io::Error),
    /// A member the target must not get.
    Refused(String),
}

/// Copies the directory `from` on `src` to `to` on `dst` (which must not
/// exist), leaving out the entries of `from` named in `except`; returns
/// the bytes of the files copied. A failure leaves whatever part of `to`
/// was made for the caller to remove.
pub fn copy_tree_between(
    src: &dyn Host,
    from: &HostPath,
    dst: &dyn Host,
    to: &HostPath,
    except: &[&str],
) -> Result<u64, HostError> {
    dst.mkdir(&to.parent(), false)?;
    let mut out = src.tar_out(from)?;
    let mut sink = dst.tar_in(to)?;
    match relay(&mut out, &mut sink, except) {
        Ok(Copied { bytes, top }) => {
            out.end()?;
            sink.end()?;
            // The top is made 0700 by the target: its own mode and time
            // now, as a directory's are set after what is in it.
            let (mode, mtime) = top.ok_or_else(|| {
                HostError::Remote(format!(
                    "{}: the stream has no member for the directory itself",
                    src.display(from)
                ))
            })?;
            dst.set_dir_meta(to, Path::new(""), mode, Some(mtime))?;
            Ok(bytes)
        }
        Err(Stop::Read(e)) => {
            drop(sink);
            // The source's status says more than a cut stream.
            out.end()?;
            Err(HostError::Io {
                path: src.display(from),
                source: e,
            })
        }
        Err(Stop::Write(e)) => Err(HostError::Io {
            path: dst.display(to),
            source: e,
        }),
        Err(Stop::Refused(why)) => Err(HostError::Remote(format!(
            "{}: {why}: nothing of it is copied further",
            src.display(from)
        ))),
    }
}

/// The member name `raw` as a path of plain components (`./` and `.`
/// dropped; `None`: the top itself), or why it is refused.
fn member_path(raw: &[u8]) -> Result<Option<PathBuf>, String> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(format!("member {} leaves the tree", p.display())),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// What a relay carried.
struct Copied {
    /// The bytes of the files.
    bytes: u64,
    /// The mode and mtime of the tree's top (its `./` member), which the
    /// target makes itself.
    top: Option<(u32, u64)>,
}

/// Reads the tar stream `input`, checks each member and writes it to
/// `output`, but for the top, whose mode and mtime it returns.
fn relay(input: &mut dyn Read, output: &mut dyn Write, except: &[&str]) -> Result<Copied, Stop> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    let mut links: HashSet<PathBuf> = HashSet::new();
    let mut files: HashSet<PathBuf> = HashSet::new();
    let mut bytes = 0u64;
    let mut top = None;
    for entry in archive.entries().map_err(Stop::Read)? {
        let mut entry = entry.map_err(Stop::Read)?;
        let (mode, mtime) = {
            let h = entry.header();
            (
                h.mode().map_err(Stop::Read)? & 0o777,
                h.mtime().map_err(Stop::Read)?,
            )
        };
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = member_path(&raw).map_err(Stop::Refused)? else {
            if entry.header().entry_type().is_dir() {
                top = Some((mode, mtime));
            }
            continue;
        };
        if let Some(Component::Normal(first)) = rel.components().next() {
            if except.iter().any(|e| OsStr::new(e) == first) {
                continue;
            }
        }
        if rel.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(Stop::Refused(format!(
                "member {} is under a symbolic link of the tree",
                rel.display()
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode);
        header.set_mtime(mtime);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder
                .append_data(&mut header, &rel, io::empty())
                .map_err(Stop::Write)?;
        } else if kind.is_file() {
            // A test's moment between two files of a copy under way.
            crate::failpoint::hold("copy-file");
            // Checked against what arrives: a member cut short fails the read.
            let size = entry.size();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            builder
                .append_data(&mut header, &rel, &mut entry)
                .map_err(|e| match e.kind() {
                    // The tar crate pads a short member; what it read is the cause.
                    io::ErrorKind::UnexpectedEof => Stop::Read(e),
                    _ => Stop::Write(e),
                })?;
            bytes += size;
            files.insert(rel);
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, &rel, Path::new(OsStr::from_bytes(&target)))
                .map_err(Stop::Write)?;
            links.insert(rel);
        } else if kind.is_hard_link() {
            // Kept a link, to a file this stream made before it: the
            // target's tar links inside the new tree only.
            let target = entry
                .link_name_bytes()
                .map(|t| member_path(&t))
                .transpose()
                .map_err(Stop::Refused)?
                .flatten();
            let target = target.filter(|t| files.contains(t)).ok_or_else(|| {
                Stop::Refused(format!(
                    "member {} is a hard link to no file before it",
                    rel.display()
                ))
            })?;
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            builder
                .append_link(&mut header, &rel, &target)
                .map_err(Stop::Write)?;
        }
        // Devices, fifos and sockets are left out, as a copy leaves them.
    }
    builder.finish().map_err(Stop::Write)?;
    Ok(Copied { bytes, top })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `members`: (name, type, link target or file bytes).
    fn tar_of(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in members {
            let mut h = tar::Header::new_old();
            // Written raw: the builder itself refuses the hostile names.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o4755);
            h.set_mtime(7);
            if kind.is_symlink() || kind.is_hard_link() {
                // Raw, as a hostile host could write it.
                h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
                h.set_size(0);
            } else {
                h.set_size(data.len() as u64);
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            if !kind.is_symlink() && !kind.is_hard_link() {
                out.extend_from_slice(data);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    /// The members `relay` writes (name, mode), and the top it reports.
    type Relayed = (Vec<(String, u32)>, Option<(u32, u64)>);

    fn run(members: &[(&str, tar::EntryType, &[u8])]) -> Result<Relayed, String> {
        let input = tar_of(members);
        let mut output = Vec::new();
        let top = match relay(&mut input.as_slice(), &mut output, &["settings.yaml"]) {
            Ok(c) => c.top,
            Err(Stop::Refused(why)) => return Err(why),
            Err(e) => return Err(format!("{e:?}")),
        };
        let mut a = tar::Archive::new(output.as_slice());
        let written = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                (name, e.header().mode().unwrap())
            })
            .collect();
        Ok((written, top))
    }

    use tar::EntryType::{Directory as D, Regular as F, Symlink as L};

    #[test]
    fn files_dirs_and_links_pass_with_their_permission_bits_only() {
        let (got, top) = run(&[
            ("./", D, b""),
            ("./files/", D, b""),
            ("./files/a.bin", F, b"\x00\xff\r\n"),
            ("./settings.yaml", F, b"secret"),
            ("./link", L, b"files/a.bin"),
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![
                ("files".to_string(), 0o755),
                ("files/a.bin".to_string(), 0o755),
                ("link".to_string(), 0o755),
            ]
        );
        assert_eq!(top, Some((0o755, 7)), "the top is reported, not written");
    }

    #[test]
    fn a_member_leaving_the_tree_is_refused() {
        for name in ["../x", "./a/../../x", "/etc/x"] {
            let err = run(&[(name, F, b"x")]).unwrap_err();
            assert!(err.contains("leaves the tree"), "{name}: {err}");
        }
    }

    #[test]
    fn a_member_under_a_link_of_the_stream_is_refused() {
        let err = run(&[("./l", L, b"/etc"), ("./l/passwd", F, b"x")]).unwrap_err();
        assert!(err.contains("under a symbolic link"), "{err}");
    }

    #[test]
    fn a_hard_link_passes_only_to_a_file_before_it() {
        let (got, _) = run(&[("./a", F, b"x"), ("./b", tar::EntryType::Link, b"./a")]).unwrap();
        assert_eq!(got.len(), 2);
        for to in [&b"/etc/passwd"[..], b"./zz", b"../a"] {
            let err = run(&[("./a", F, b"x"), ("./b", tar::EntryType::Link, to)]).unwrap_err();
            assert!(err.contains("hard link") || err.contains("leaves"), "{err}");
        }
    }
}
