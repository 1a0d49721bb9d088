//! What observing a server reads, fetched from its host at once: the
//! platforms directory down to each site's settings file, the build
//! records and the vhosts, as one tar stream ([`Host::observed_files`]).
//! On a host over ssh that is one round trip for the whole server instead
//! of several per site. [`Snapshot`] serves those files as a read-only
//! [`Host`], so observation reads them exactly as it reads a live host.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::host::{EntryKind, Host, HostError, HostLock, HostPath, WriteMode};
use super::tree::{HostWrite, Opened, TarIn, TarOut, TreeEntry};

/// The most a snapshot may hold: far above what any fleet's settings,
/// records and vhosts take, and a bound on what a hostile host can make
/// hoist keep in memory.
pub const MAX_BYTES: u64 = 1 << 30;

/// The files and directories observation reads, as they were when fetched.
#[derive(Debug)]
pub struct Snapshot {
    /// The host they were fetched from (for names in messages).
    origin: Arc<dyn Host>,
    /// Every entry by path; a file with its bytes.
    entries: BTreeMap<String, (EntryKind, Vec<u8>)>,
}

impl Snapshot {
    /// The snapshot held in `tar` (paths relative to `origin`'s root); the
    /// parents of every entry are directories. An entry whose name is not
    /// a plain path inside the root is refused.
    pub fn from_tar(origin: Arc<dyn Host>, tar: impl Read) -> Result<Snapshot, HostError> {
        let bad = |e: std::io::Error| {
            HostError::Remote(format!(
                "{}: reading what observing fetched: {e}",
                origin.label()
            ))
        };
        let mut entries = BTreeMap::new();
        let mut total = 0u64;
        let mut archive = tar::Archive::new(tar);
        for e in archive.entries().map_err(bad)? {
            let mut e = e.map_err(bad)?;
            let raw = e.path().map_err(bad)?.into_owned();
            let Some(name) = raw.to_str() else {
                // Not UTF-8: names no platform, site or vhost of hoist's.
                continue;
            };
            let p = HostPath::new(name.trim_start_matches("./"))?;
            if p == HostPath::root() {
                continue;
            }
            let kind = match e.header().entry_type() {
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Regular | tar::EntryType::GNUSparse => EntryKind::File,
                tar::EntryType::Symlink => EntryKind::Symlink,
                _ => EntryKind::Other,
            };
            let mut bytes = Vec::new();
            if kind == EntryKind::File {
                total += e.size();
                if total > MAX_BYTES {
                    return Err(HostError::Remote(format!(
                        "{}: what observing fetched exceeds {MAX_BYTES} bytes",
                        origin.label()
                    )));
                }
                e.read_to_end(&mut bytes).map_err(bad)?;
            }
            let mut up = p.parent();
            while up != HostPath::root() {
                entries
                    .entry(up.as_str().to_string())
                    .or_insert((EntryKind::Dir, Vec::new()));
                up = up.parent();
            }
            entries.insert(p.as_str().to_string(), (kind, bytes));
        }
        Ok(Snapshot { origin, entries })
    }

    fn read_only(&self, p: &HostPath) -> HostError {
        HostError::Remote(format!(
            "{}: observing reads a snapshot, which is not written",
            self.origin.display(p)
        ))
    }
}

impl Host for Snapshot {
    fn label(&self) -> String {
        self.origin.label()
    }
    fn display(&self, p: &HostPath) -> String {
        self.origin.display(p)
    }
    fn read(&self, p: &HostPath) -> Result<Option<Vec<u8>>, HostError> {
        match self.entries.get(p.as_str()) {
            None => Ok(None),
            Some((EntryKind::File, b)) => Ok(Some(b.clone())),
            Some(_) => Err(HostError::Path {
                path: self.display(p),
                why: "not a regular file",
            }),
        }
    }
    fn kind(&self, p: &HostPath) -> Result<Option<EntryKind>, HostError> {
        if *p == HostPath::root() {
            return Ok(Some(EntryKind::Dir));
        }
        Ok(self.entries.get(p.as_str()).map(|(k, _)| *k))
    }
    fn list(&self, p: &HostPath) -> Result<Vec<(String, EntryKind)>, HostError> {
        let prefix = match p.as_str() {
            "" => String::new(),
            s => format!("{s}/"),
        };
        Ok(self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, (kind, _))| {
                let rest = &k[prefix.len()..];
                (!rest.contains('/')).then(|| (rest.to_string(), *kind))
            })
            .collect())
    }
    fn write(&self, p: &HostPath, _: &[u8], _: WriteMode) -> Result<(), HostError> {
        Err(self.read_only(p))
    }
    fn rename(&self, from: &HostPath, _: &HostPath) -> Result<(), HostError> {
        Err(self.read_only(from))
    }
    fn remove_file(&self, p: &HostPath) -> Result<(), HostError> {
        Err(self.read_only(p))
    }
    fn remove_tree(&self, p: &HostPath) -> Result<(), HostError> {
        Err(self.read_only(p))
    }
    fn copy_tree(&self, from: &HostPath, _: &HostPath, _: &[&str]) -> Result<(), HostError> {
        Err(self.read_only(from))
    }
    fn put_tree(&self, _: &Path, to: &HostPath) -> Result<(), HostError> {
        Err(self.read_only(to))
    }
    fn mkdir(&self, p: &HostPath, _: bool) -> Result<(), HostError> {
        Err(self.read_only(p))
    }
    fn free_space(&self, p: &HostPath) -> Result<(u64, Option<u64>), HostError> {
        Err(self.read_only(p))
    }
    fn sync_dir(&self, p: &HostPath) -> Result<(), HostError> {
        Err(self.read_only(p))
    }
    fn create_new(&self, p: &HostPath, _: &[u8]) -> Result<(), HostError> {
        Err(self.read_only(p))
    }
    fn append(&self, p: &HostPath, _: &[u8], _: bool) -> Result<(), HostError> {
        Err(self.read_only(p))
    }
    fn link(&self, from: &HostPath, _: &HostPath) -> Result<(), HostError> {
        Err(self.read_only(from))
    }
    fn len(&self, p: &HostPath) -> Result<u64, HostError> {
        match self.entries.get(p.as_str()) {
            Some((EntryKind::File, b)) => Ok(b.len() as u64),
            _ => Err(self.read_only(p)),
        }
    }
    fn walk(&self, top: &HostPath, _: Option<&OsStr>) -> Result<Vec<TreeEntry>, HostError> {
        Err(self.read_only(top))
    }
    fn open_in(&self, top: &HostPath, _: &Path) -> Result<Opened, HostError> {
        Err(self.read_only(top))
    }
    fn create_in(&self, top: &HostPath, _: &Path) -> Result<Box<dyn HostWrite>, HostError> {
        Err(self.read_only(top))
    }
    fn mkdir_in(&self, top: &HostPath, _: &Path) -> Result<(), HostError> {
        Err(self.read_only(top))
    }
    fn symlink_in(&self, top: &HostPath, _: &Path, _: &Path) -> Result<(), HostError> {
        Err(self.read_only(top))
    }
    fn set_dir_meta(
        &self,
        top: &HostPath,
        _: &Path,
        _: u32,
        _: Option<u64>,
    ) -> Result<(), HostError> {
        Err(self.read_only(top))
    }
    fn make_durable(&self) -> Result<(), HostError> {
        Err(self.read_only(&HostPath::root()))
    }
    fn lock(&self) -> Result<HostLock, HostError> {
        Err(self.read_only(&HostPath::root()))
    }
    fn tar_out(&self, top: &HostPath) -> Result<Box<dyn TarOut>, HostError> {
        Err(self.read_only(top))
    }
    fn tar_in(&self, to: &HostPath) -> Result<Box<dyn TarIn>, HostError> {
        Err(self.read_only(to))
    }
    fn run_program(
        &self,
        _: &OsStr,
        _: &[&OsStr],
        _: Vec<u8>,
        _: std::time::Duration,
    ) -> Result<Option<super::program::ProgramOutput>, HostError> {
        Err(self.read_only(&HostPath::root()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::host::LocalHost;

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o600);
                    b.append_data(&mut h, name, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, name, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn origin() -> Arc<dyn Host> {
        Arc::new(LocalHost::new("/srv/hoist".into()))
    }

    #[test]
    fn files_and_their_parents_are_served_read_only() {
        let t = tar_of(&[
            ("platforms/p1/.hoist-platform.yaml", Some(b"name: p1\n")),
            ("platforms/p1/sites/a.example.com/settings.yaml", Some(b"x")),
            ("platforms/p2", None),
            ("vhosts/a.example.com.conf", Some(b"server {}\n")),
        ]);
        let s = Snapshot::from_tar(origin(), &t[..]).unwrap();
        let p = |x: &str| HostPath::new(x).unwrap();
        assert_eq!(
            s.list(&p("platforms")).unwrap(),
            vec![("p1".into(), EntryKind::Dir), ("p2".into(), EntryKind::Dir)]
        );
        assert_eq!(
            s.list(&p("platforms/p1")).unwrap(),
            vec![
                (".hoist-platform.yaml".into(), EntryKind::File),
                ("sites".into(), EntryKind::Dir)
            ]
        );
        assert!(s.is_dir(&p("platforms/p1/sites/a.example.com")));
        assert_eq!(
            s.read(&p("vhosts/a.example.com.conf")).unwrap().unwrap(),
            b"server {}\n"
        );
        assert_eq!(s.read(&p("vhosts/b.conf")).unwrap(), None);
        assert!(s.read(&p("platforms/p2")).is_err());
        assert!(s.write(&p("x"), b"", WriteMode::Atomic).is_err());
        assert!(s.list(&p("nothing")).unwrap().is_empty());
    }

    #[test]
    fn a_name_leaving_the_root_is_refused() {
        let mut t = tar_of(&[("platforms/p1/x", Some(b"1"))]);
        // tar::Builder refuses `..`: write the name into the header by hand.
        let name = b"../etc/passwd";
        t[..100].fill(0);
        t[..name.len()].copy_from_slice(name);
        let mut h = tar::Header::from_byte_slice(&t[..512]).clone();
        h.set_cksum();
        t[..512].copy_from_slice(h.as_bytes());
        assert!(Snapshot::from_tar(origin(), &t[..]).is_err());
    }
}
