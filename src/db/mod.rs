//! The embedded database server: one SQLite file per site database under
//! `<root>/databases/`, with a database user whose password is checked on
//! connect (its salted hash sits beside the database, mode 0600), and the
//! tables hoist keeps in every site database (spec section 4).
//!
//! SQL from outside hoist's code (packages' scripts, dumps) is streamed
//! statement by statement (`load`, `split`) and confined to the site's
//! own database (`confine`); dumps keep every value byte for byte
//! (`dump`).

mod confine;
mod drupal;
mod dump;
mod load;
mod split;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::codebase::PackageKind;
use crate::compat::SitePackage;
use crate::fsutil;
use crate::names::PackageName;
use crate::render::Secret;

/// A database server failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite said no.
    #[error("database {db}: {source}")]
    Sqlite {
        /// The database.
        db: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file of the database server could not be read or written.
    #[error("database {db}: {source}")]
    Io {
        /// The database.
        db: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A statement of a package's script or of a dump was refused or
    /// failed.
    #[error("database {db}: {file}, line {line}: {msg}: {statement}")]
    Script {
        /// The database.
        db: String,
        /// The script or dump.
        file: String,
        /// The line the statement starts on.
        line: u64,
        /// What went wrong.
        msg: String,
        /// The statement (its start).
        statement: String,
    },
    /// A script or dump could not be read.
    #[error("database {db}: reading {file}: {source}")]
    Read {
        /// The database.
        db: String,
        /// The script or dump.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database does not exist.
    #[error("database {0} does not exist")]
    Missing(String),
    /// The database exists already.
    #[error("database {0} exists already")]
    Exists(String),
    /// Wrong user or password.
    #[error("database {0}: access denied for its user")]
    AccessDenied(String),
    /// A site database lacks what hoist keeps in it.
    #[error("database {db}: {msg}")]
    Corrupt {
        /// The database.
        db: String,
        /// What is wrong.
        msg: String,
    },
}

/// A database's user and password.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user name (the database's name).
    pub user: String,
    /// The password.
    pub password: Secret,
}

/// The SQLite database server of one local server root.
#[derive(Debug, Clone)]
pub struct SqliteServer {
    dir: PathBuf,
}

fn valid_db_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

fn hash_password(salt: &str, password: &str) -> String {
    let d = Sha256::digest(format!("{salt}:{password}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random password: 32 characters of [A-Za-z0-9].
pub fn generate_password() -> Secret {
    use rand::distr::{Alphanumeric, SampleString};
    Secret::new(Alphanumeric.sample_string(&mut rand::rng(), 32))
}

impl SqliteServer {
    /// The server whose databases live in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        SqliteServer { dir }
    }

    fn file(&self, db: &str) -> Result<PathBuf, DbError> {
        if !valid_db_name(db) {
            return Err(DbError::Corrupt {
                db: db.into(),
                msg: "invalid database name".into(),
            });
        }
        Ok(self.dir.join(format!("{db}.sqlite")))
    }

    /// The file of database `db` (a valid name), which may not exist.
    pub fn path(&self, db: &str) -> Result<PathBuf, DbError> {
        self.file(db)
    }

    fn user_file(&self, db: &str) -> PathBuf {
        self.dir.join(format!("{db}.user"))
    }

    /// Whether database `db` exists.
    pub fn exists(&self, db: &str) -> bool {
        self.file(db).map(|f| f.exists()).unwrap_or(false)
    }

    /// Every database on the server.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".sqlite"))
                    .map(String::from)
            })
            .collect();
        v.sort();
        v
    }

    /// Creates an empty database `db` with a user of the same name and a new
    /// password, and returns the credentials.
    pub fn create(&self, db: &str) -> Result<Credentials, DbError> {
        let file = self.file(db)?;
        let io = |source| DbError::Io {
            db: db.into(),
            source,
        };
        fsutil::create_dir_all(&self.dir).map_err(io)?;
        if file.exists() {
            return Err(DbError::Exists(db.into()));
        }
        let creds = self.new_user(db)?;
        let conn = Connection::open(&file).map_err(|source| DbError::Sqlite {
            db: db.into(),
            source,
        })?;
        conn.execute_batch("PRAGMA journal_mode=DELETE;")
            .map_err(|source| DbError::Sqlite {
                db: db.into(),
                source,
            })?;
        drop(conn);
        fsutil::set_private(&file).map_err(io)?;
        Ok(creds)
    }

    /// Writes the user of database `db` (named like it) with a new password,
    /// mode 0600. Not synced: every database hoist creates is staged, and
    /// the task's commit point ([`crate::server::LocalServer::sync_staged`])
    /// writes its user to disk with it before it goes live.
    fn new_user(&self, db: &str) -> Result<Credentials, DbError> {
        let password = generate_password();
        let salt = generate_password();
        let line = format!(
            "{db}:{}:{}\n",
            salt.expose(),
            hash_password(salt.expose(), password.expose())
        );
        let path = self.user_file(db);
        // A leftover of an interrupted task is removed, never reused.
        fsutil::remove_file_if_exists(&path)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
            })
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|source| DbError::Io {
                db: db.into(),
                source,
            })?;
        Ok(Credentials {
            user: db.into(),
            password,
        })
    }

    /// Moves database `old`'s content to a new database `new` with a new user
    /// and password, in one rename of its file: the move a rename makes
    /// instead of a copy, whatever the database's size. `old`'s user stays
    /// until `old` is dropped. A database with a leftover journal (a crashed
    /// transaction) is refused: its file alone is not its content.
    pub fn move_to(&self, old: &str, new: &str) -> Result<Credentials, DbError> {
        let from = self.file(old)?;
        let to = self.file(new)?;
        if !from.exists() {
            return Err(DbError::Missing(old.into()));
        }
        if to.exists() {
            return Err(DbError::Exists(new.into()));
        }
        for suffix in ["-journal", "-wal"] {
            if PathBuf::from(format!("{}{suffix}", from.display())).exists() {
                return Err(DbError::Corrupt {
                    db: old.into(),
                    msg: format!("it has a leftover {suffix} file; open it once to recover it"),
                });
            }
        }
        let creds = self.new_user(new)?;
        std::fs::rename(&from, &to)
            .and_then(|()| fsutil::sync_dir(&self.dir))
            .map_err(|source| DbError::Io {
                db: old.into(),
                source,
            })?;
        Ok(creds)
    }

    /// Drops database `db` and its user. Dropping one that is gone is fine:
    /// every step of hoist may run again.
    pub fn drop_database(&self, db: &str) -> Result<(), DbError> {
        let file = self.file(db)?;
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", file.display()));
            fsutil::remove_file_if_exists(&p).map_err(|source| DbError::Io {
                db: db.into(),
                source,
            })?;
        }
        fsutil::remove_file_if_exists(&self.user_file(db)).map_err(|source| DbError::Io {
            db: db.into(),
            source,
        })
    }

    /// Undoes [`SqliteServer::move_to`]: moves database `new`'s file back to
    /// `old` unless `old` has a file already or `new` has none (a repeated
    /// undo). `new`'s user is left for [`SqliteServer::drop_database`].
    pub fn move_back(&self, new: &str, old: &str) -> Result<(), DbError> {
        let from = self.file(new)?;
        let to = self.file(old)?;
        if !from.exists() || to.exists() {
            return Ok(());
        }
        std::fs::rename(&from, &to)
            .and_then(|()| fsutil::sync_dir(&self.dir))
            .map_err(|source| DbError::Io {
                db: old.into(),
                source,
            })
    }

    /// Replaces the content of database `db` with a dump (named `file` in
    /// errors), keeping its user: the dump is loaded into a new file beside
    /// it, which replaces the database's file in one rename. Undoes edits
    /// made in place.
    pub fn reload(&self, db: &str, dump: &mut dyn Read, file: &str) -> Result<(), DbError> {
        let path = self.file(db)?;
        let io = |source| DbError::Io {
            db: db.into(),
            source,
        };
        let sqlite = |source| DbError::Sqlite {
            db: db.into(),
            source,
        };
        let tmp = self.dir.join(format!(".{db}.reload"));
        let tmp_journal = self.dir.join(format!(".{db}.reload-journal"));
        fsutil::remove_file_if_exists(&tmp).map_err(io)?;
        fsutil::remove_file_if_exists(&tmp_journal).map_err(io)?;
        let conn = Connection::open(&tmp).map_err(sqlite)?;
        conn.execute_batch("PRAGMA journal_mode=DELETE;")
            .map_err(sqlite)?;
        let mut fresh = SiteDb {
            name: db.into(),
            conn,
        };
        let loaded = fresh.load(dump, file);
        drop(fresh);
        if let Err(e) = loaded {
            // The partial copy goes; if it cannot, the next reload removes
            // it first. Either way the load's error is the one to report.
            return Err(match fsutil::remove_file_if_exists(&tmp) {
                Ok(()) => e,
                Err(rm) => DbError::Corrupt {
                    db: db.into(),
                    msg: format!("{e}; and {} could not be removed: {rm}", tmp.display()),
                },
            });
        }
        fsutil::set_private(&tmp).map_err(io)?;
        replace_file(&tmp, &path, &self.dir).map_err(io)
    }

    fn kept_file(&self, db: &str) -> PathBuf {
        self.dir.join(format!(".{db}.kept"))
    }

    fn kept_tmp(&self, db: &str) -> PathBuf {
        self.dir.join(format!(".{db}.kept-tmp"))
    }

    /// Keeps an exact copy of `src` aside (`.<db>.kept`, synced), before
    /// it is changed in place: [`SqliteServer::restore_copy`] puts it back
    /// page for page (every row as it was), whatever the changes were, and
    /// [`SqliteServer::discard_copy`] drops it. Written under another name
    /// and renamed, so a copy that exists is whole.
    pub fn keep_copy(&self, src: &SiteDb) -> Result<(), DbError> {
        let db = src.name.as_str();
        self.file(db)?;
        let io = |source| DbError::Io {
            db: db.into(),
            source,
        };
        let sqlite = |source| DbError::Sqlite {
            db: db.into(),
            source,
        };
        let (tmp, kept) = (self.kept_tmp(db), self.kept_file(db));
        self.discard_copy(db)?;
        let mut conn = Connection::open(&tmp).map_err(sqlite)?;
        conn.execute_batch("PRAGMA journal_mode=DELETE;")
            .map_err(sqlite)?;
        rusqlite::backup::Backup::new(&src.conn, &mut conn)
            .map_err(sqlite)?
            .run_to_completion(4096, std::time::Duration::ZERO, None)
            .map_err(sqlite)?;
        drop(conn);
        fsutil::set_private(&tmp).map_err(io)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &kept))
            .and_then(|()| fsutil::sync_dir(&self.dir))
            .map_err(io)
    }

    /// Puts the copy [`SqliteServer::keep_copy`] made back as database
    /// `db`, keeping its user. False when there is no copy (none was made,
    /// or it is back already: an undo may run again).
    pub fn restore_copy(&self, db: &str) -> Result<bool, DbError> {
        let file = self.file(db)?;
        let kept = self.kept_file(db);
        if !kept.exists() {
            return Ok(false);
        }
        replace_file(&kept, &file, &self.dir).map_err(|source| DbError::Io {
            db: db.into(),
            source,
        })?;
        Ok(true)
    }

    /// Drops the copy [`SqliteServer::keep_copy`] made, if any.
    pub fn discard_copy(&self, db: &str) -> Result<(), DbError> {
        self.file(db)?;
        for p in [self.kept_file(db), self.kept_tmp(db)] {
            for suffix in ["", "-journal"] {
                fsutil::remove_file_if_exists(&PathBuf::from(format!("{}{suffix}", p.display())))
                    .map_err(|source| DbError::Io {
                    db: db.into(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Connects to `db` as `creds` to build it up before it goes live (a
    /// deploy's copy, a new install, a restore): no journal file and no sync
    /// per transaction, because until its task commits, an interruption
    /// drops the database or loads it anew from a backup anyway. That saves
    /// a dozen fsyncs and file creations per task. The task's commit point
    /// ([`crate::server::LocalServer::sync_staged`]) makes it
    /// durable before it goes live.
    pub fn open_staged(&self, db: &str, creds: &Credentials) -> Result<SiteDb, DbError> {
        let s = self.open(db, creds)?;
        s.conn
            .execute_batch("PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF;")
            .map_err(|e| s.err(e))?;
        Ok(s)
    }

    /// Connects to `db` as `creds`.
    pub fn open(&self, db: &str, creds: &Credentials) -> Result<SiteDb, DbError> {
        self.open_with(db, creds, OpenFlags::SQLITE_OPEN_READ_WRITE)
    }

    /// Connects to `db` read-only, for observation.
    pub fn open_read_only(&self, db: &str, creds: &Credentials) -> Result<SiteDb, DbError> {
        self.open_with(db, creds, OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn open_with(
        &self,
        db: &str,
        creds: &Credentials,
        flags: OpenFlags,
    ) -> Result<SiteDb, DbError> {
        let file = self.file(db)?;
        if !file.exists() {
            return Err(DbError::Missing(db.into()));
        }
        let line = std::fs::read_to_string(self.user_file(db))
            .map_err(|_| DbError::AccessDenied(db.into()))?;
        let mut parts = line.trim_end().splitn(3, ':');
        let (user, salt, hash) = (parts.next(), parts.next(), parts.next());
        let ok = user == Some(creds.user.as_str())
            && salt
                .zip(hash)
                .is_some_and(|(s, h)| hash_password(s, creds.password.expose()) == h);
        if !ok {
            return Err(DbError::AccessDenied(db.into()));
        }
        let conn = Connection::open_with_flags(&file, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|source| DbError::Sqlite {
                db: db.into(),
                source,
            })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|source| DbError::Sqlite {
                db: db.into(),
                source,
            })?;
        Ok(SiteDb {
            name: db.into(),
            conn,
        })
    }
}

/// An open site database.
pub struct SiteDb {
    name: String,
    conn: Connection,
}

/// The tables hoist keeps in every site database.
const CORE_TABLES: &str = "
CREATE TABLE system (name TEXT PRIMARY KEY, kind TEXT NOT NULL, enabled INTEGER NOT NULL, version TEXT NOT NULL, schema_version INTEGER NOT NULL);
CREATE TABLE variables (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (fid INTEGER PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE cache (cid TEXT PRIMARY KEY, data BLOB, expire INTEGER NOT NULL DEFAULT 0);
CREATE TABLE cache_page (cid TEXT PRIMARY KEY, data BLOB, expire INTEGER NOT NULL DEFAULT 0);
";

impl SiteDb {
    fn err(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            db: self.name.clone(),
            source,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates hoist's own tables in a new database.
    pub fn create_core_tables(&self) -> Result<(), DbError> {
        self.conn
            .execute_batch(CORE_TABLES)
            .map_err(|e| self.err(e))
    }

    /// Runs `sql` (several statements) in one transaction: all or nothing,
    /// confined like a package's script.
    pub fn run_script(&mut self, sql: &str) -> Result<(), DbError> {
        self.run_confined(&mut sql.as_bytes(), "script", load::Kind::Package, |_| {
            Ok(())
        })
    }

    /// Runs the SQL read from `input` (named `file` in errors) confined to
    /// this database, then hoist's own `then`, in one transaction committed
    /// only when both succeed.
    fn run_confined(
        &mut self,
        input: &mut dyn Read,
        file: &str,
        kind: load::Kind,
        then: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> Result<(), DbError> {
        let db = self.name.clone();
        let e = |source| DbError::Sqlite {
            db: db.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        load::run(&tx, &db, file, kind, input)?;
        then(&tx).map_err(e)?;
        tx.commit().map_err(e)
    }

    /// Runs a package's script `sql` (named `file` in errors, empty for a
    /// package without one) and records its row in `system`, in one
    /// transaction, so a package is never half installed or half updated.
    /// The script is confined to this database: anything reaching further
    /// (ATTACH, transaction control, VACUUM, most PRAGMAs) is refused.
    pub fn apply_package_sql(
        &mut self,
        sql: &mut dyn Read,
        file: &str,
        name: &PackageName,
        pkg: &SitePackage,
    ) -> Result<(), DbError> {
        self.run_confined(sql, file, load::Kind::Package, |tx| {
            tx.execute(
                "INSERT INTO system (name, kind, enabled, version, schema_version) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET kind=?2, enabled=?3, version=?4, schema_version=?5",
                params![name.as_str(), pkg.kind.as_str(), pkg.enabled as i64, pkg.version.to_string(), pkg.schema],
            )
            .map(|_| ())
        })
    }

    /// Loads a dump (made by [`SiteDb::dump`] or `sqlite3 .dump`, named
    /// `file` in errors) into this empty database, streaming it statement
    /// by statement in one transaction: all of it or nothing. The dump is
    /// confined like a package's script; its own `BEGIN TRANSACTION;` and
    /// `COMMIT;` frame is accepted where a dump puts it.
    pub fn load(&mut self, dump: &mut dyn Read, file: &str) -> Result<(), DbError> {
        self.run_confined(dump, file, load::Kind::Dump, |_| Ok(()))
    }

    /// The `system` table: every package the site has, by name.
    pub fn system(&self) -> Result<BTreeMap<PackageName, SitePackage>, DbError> {
        let corrupt = |msg: String| DbError::Corrupt {
            db: self.name.clone(),
            msg,
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, kind, enabled, version, schema_version FROM system ORDER BY name",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (name, kind, enabled, version, schema) = row.map_err(|e| self.err(e))?;
            let n = PackageName::new(&name).map_err(|e| corrupt(format!("system table: {e}")))?;
            let kind = PackageKind::parse(&kind).ok_or_else(|| {
                corrupt(format!(
                    "system table: package {name} has unknown kind {kind:?}"
                ))
            })?;
            let version = semver::Version::parse(&version).map_err(|e| {
                corrupt(format!(
                    "system table: package {name}: version {version:?}: {e}"
                ))
            })?;
            let schema = u32::try_from(schema).map_err(|_| {
                corrupt(format!(
                    "system table: package {name}: bad schema_version {schema}"
                ))
            })?;
            out.insert(
                n,
                SitePackage {
                    kind,
                    enabled: enabled != 0,
                    version: version.into(),
                    schema,
                },
            );
        }
        Ok(out)
    }

    /// Sets a package's enabled flag.
    pub fn set_enabled(&self, name: &PackageName, enabled: bool) -> Result<(), DbError> {
        self.conn
            .execute(
                "UPDATE system SET enabled = ?1 WHERE name = ?2",
                params![enabled as i64, name.as_str()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Reads a variable.
    pub fn variable(&self, name: &str) -> Result<Option<String>, DbError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT value FROM variables WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets a variable.
    pub fn set_variable(&self, name: &str, value: &str) -> Result<(), DbError> {
        self.conn
            .execute(
                "INSERT INTO variables (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET value = ?2",
                params![name, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Removes a variable.
    pub fn delete_variable(&self, name: &str) -> Result<(), DbError> {
        self.conn
            .execute("DELETE FROM variables WHERE name = ?1", [name])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Copies this whole database into `dst` (a new, empty one) with SQLite's
    /// online backup: a consistent snapshot with the same rows a dump and
    /// import would give, at the speed of a file copy.
    pub fn copy_into(&self, dst: &mut SiteDb) -> Result<(), DbError> {
        let name = dst.name.clone();
        let b = rusqlite::backup::Backup::new(&self.conn, &mut dst.conn).map_err(|source| {
            DbError::Sqlite {
                db: name.clone(),
                source,
            }
        })?;
        b.run_to_completion(4096, std::time::Duration::ZERO, None)
            .map_err(|source| DbError::Sqlite { db: name, source })
    }

    /// Empties every `cache*` table.
    pub fn clear_caches(&self) -> Result<(), DbError> {
        for t in self
            .tables()?
            .into_iter()
            .filter(|t| t.starts_with("cache"))
        {
            self.conn
                .execute(&format!("DELETE FROM {}", quote_ident(&t)), [])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Rewrites `files.path` and `file_directory_path` from `sites/<old>/`
    /// to `sites/<new>/`.
    pub fn fix_paths(&mut self, old_domain: &str, new_domain: &str) -> Result<(), DbError> {
        let old = format!("sites/{old_domain}/");
        let new = format!("sites/{new_domain}/");
        let db = self.name.clone();
        let e = |source| DbError::Sqlite {
            db: db.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute(
            "UPDATE files SET path = ?2 || substr(path, length(?1) + 1) WHERE substr(path, 1, length(?1)) = ?1",
            params![old, new],
        )
        .map_err(e)?;
        tx.execute(
            "UPDATE variables SET value = ?2 || substr(value, length(?1) + 1)
             WHERE name = 'file_directory_path' AND substr(value || '/', 1, length(?1)) = ?1",
            params![old, new],
        )
        .map_err(e)?;
        tx.commit().map_err(e)
    }

    fn tables(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .map_err(|e| self.err(e))?;
        let v = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<String>, _>>();
        v.map_err(|e| self.err(e))
    }

    /// Every row of every table, as text, for comparing two databases in
    /// tests and checks: tables by name, rows in primary-key order.
    pub fn content(&self) -> Result<BTreeMap<String, Vec<String>>, DbError> {
        let mut out = BTreeMap::new();
        for t in self.tables()? {
            let mut buf = Vec::new();
            self.dump_rows(&t, &mut buf)?;
            let mut rows: Vec<String> = String::from_utf8_lossy(&buf)
                .lines()
                .map(String::from)
                .collect();
            rows.sort();
            out.insert(t, rows);
        }
        Ok(out)
    }
}

/// Replaces database file `file` with `new` in one rename, synced. The
/// old file's journal, if a crash left one, belongs to the content being
/// replaced: it goes first, or SQLite would play it into the new file.
fn replace_file(new: &Path, file: &Path, dir: &Path) -> std::io::Result<()> {
    for suffix in ["-journal", "-wal", "-shm"] {
        fsutil::remove_file_if_exists(&PathBuf::from(format!("{}{suffix}", file.display())))?;
    }
    std::fs::rename(new, file)?;
    fsutil::sync_dir(dir)
}

/// Quotes an SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Whether `path` holds a SQLite database file (by its header).
pub fn looks_like_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
        && &buf == b"SQLite format 3\0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().join("databases"));
        let creds = s.create("site_1").unwrap();
        assert!(s.open("site_1", &creds).is_ok());
        let wrong = Credentials {
            user: creds.user.clone(),
            password: Secret::new("nope".into()),
        };
        assert!(matches!(
            s.open("site_1", &wrong),
            Err(DbError::AccessDenied(_))
        ));
        assert!(matches!(s.create("site_1"), Err(DbError::Exists(_))));
        s.drop_database("site_1").unwrap();
        s.drop_database("site_1").unwrap();
        assert!(!s.exists("site_1"));
        assert!(s.create("../x").is_err());
    }

    #[test]
    fn a_kept_copy_puts_every_row_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().to_path_buf());
        let creds = s.create("site").unwrap();
        let mut db = s.open("site", &creds).unwrap();
        db.create_core_tables().unwrap();
        db.set_variable("x", "before").unwrap();
        let before = db.content().unwrap();
        s.keep_copy(&db).unwrap();
        db.run_script("CREATE TABLE added (a); INSERT INTO added VALUES (1);")
            .unwrap();
        db.set_variable("x", "after").unwrap();
        drop(db);
        assert!(s.restore_copy("site").unwrap());
        assert!(!s.restore_copy("site").unwrap(), "once only");
        let db = s.open("site", &creds).unwrap();
        assert_eq!(db.content().unwrap(), before, "the same rows, same user");
        s.keep_copy(&db).unwrap();
        s.discard_copy("site").unwrap();
        assert!(!s.restore_copy("site").unwrap());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_move_keeps_the_file_and_changes_the_user_and_reload_undoes_edits() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().to_path_buf());
        let c1 = s.create("old").unwrap();
        let old = s.open("old", &c1).unwrap();
        old.create_core_tables().unwrap();
        old.set_variable("site_name", "before").unwrap();
        let mut dump = Vec::new();
        old.dump(&mut dump).unwrap();
        let before = old.content().unwrap();
        drop(old);

        let c2 = s.move_to("old", "new").unwrap();
        assert!(!s.exists("old") && s.exists("new"));
        assert!(matches!(s.open("new", &c1), Err(DbError::AccessDenied(_))));
        let new = s.open("new", &c2).unwrap();
        assert_eq!(new.content().unwrap(), before, "the same content");
        new.set_variable("site_name", "after").unwrap();
        drop(new);
        assert!(matches!(s.move_to("new", "new"), Err(DbError::Exists(_))));
        assert!(matches!(s.move_to("gone", "x"), Err(DbError::Missing(_))));

        // The undo: back under the old name, then the dump over the edits.
        s.move_back("new", "old").unwrap();
        s.move_back("new", "old").unwrap();
        s.reload("old", &mut dump.as_slice(), "dump.sql").unwrap();
        let old = s.open("old", &c1).unwrap();
        assert_eq!(
            old.variable("site_name").unwrap().as_deref(),
            Some("before")
        );
        assert_eq!(old.content().unwrap(), before);
        assert!(!s.exists("new"));
    }

    #[test]
    fn a_refused_reload_leaves_the_database_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().to_path_buf());
        let c = s.create("a").unwrap();
        let a = s.open("a", &c).unwrap();
        a.create_core_tables().unwrap();
        a.set_variable("site_name", "kept").unwrap();
        let before = a.content().unwrap();
        drop(a);
        let evil = format!(
            "BEGIN TRANSACTION;\nATTACH '{}' AS o;\nCOMMIT;\n",
            dir.path().join("a.sqlite").display()
        );
        let e = s
            .reload("a", &mut evil.as_bytes(), "database.sql")
            .unwrap_err()
            .to_string();
        assert!(e.contains("database.sql, line 2: refused: ATTACH"), "{e}");
        assert_eq!(s.open("a", &c).unwrap().content().unwrap(), before);
        assert!(!dir.path().join(".a.reload").exists());
    }

    #[test]
    fn a_database_with_a_leftover_journal_is_not_moved() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().to_path_buf());
        s.create("old").unwrap();
        std::fs::write(dir.path().join("old.sqlite-journal"), b"x").unwrap();
        assert!(matches!(
            s.move_to("old", "new"),
            Err(DbError::Corrupt { .. })
        ));
        assert!(s.exists("old") && !s.exists("new"));
        assert!(!dir.path().join("new.user").exists());
    }

    #[test]
    fn dump_round_trips_every_value_type() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().to_path_buf());
        let c1 = s.create("a").unwrap();
        let mut a = s.open("a", &c1).unwrap();
        a.create_core_tables().unwrap();
        a.run_script(
            "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, r REAL, s TEXT, b BLOB, n);
             INSERT INTO t (r, s, b, n) VALUES (0.1, 'it''s', X'00FF', NULL), (1e300, 'x', X'', 3), (2.0, '', NULL, 'y');
             CREATE INDEX t_s ON t(s);
             INSERT INTO files (path) VALUES ('sites/a/files/x.png');",
        )
        .unwrap();
        let mut dump = Vec::new();
        a.dump(&mut dump).unwrap();
        let c2 = s.create("b").unwrap();
        let mut b = s.open("b", &c2).unwrap();
        b.load(&mut dump.as_slice(), "dump.sql").unwrap();
        assert_eq!(a.content().unwrap(), b.content().unwrap());
        let idx: i64 = b
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='t_s'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(idx, 1);
    }

    #[test]
    fn copy_into_gives_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().to_path_buf());
        let c = s.create("a").unwrap();
        let mut a = s.open("a", &c).unwrap();
        a.create_core_tables().unwrap();
        a.run_script("CREATE TABLE t (x); INSERT INTO t VALUES (1), ('two'), (X'03');")
            .unwrap();
        let c2 = s.create("b").unwrap();
        let mut b = s.open("b", &c2).unwrap();
        a.copy_into(&mut b).unwrap();
        assert_eq!(a.content().unwrap(), b.content().unwrap());
        // b keeps its own user: a's password does not open it
        assert!(s.open("b", &c).is_err());
    }

    #[test]
    fn fix_paths_rewrites_only_the_old_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteServer::new(dir.path().to_path_buf());
        let c = s.create("a").unwrap();
        let mut a = s.open("a", &c).unwrap();
        a.create_core_tables().unwrap();
        a.run_script("INSERT INTO files (path) VALUES ('sites/old.com/files/a.txt'), ('sites/old.com.evil/files/b.txt');").unwrap();
        a.set_variable("file_directory_path", "sites/old.com/files")
            .unwrap();
        a.fix_paths("old.com", "new.org").unwrap();
        let c = a.content().unwrap();
        assert!(
            c["files"]
                .iter()
                .any(|r| r.contains("'sites/new.org/files/a.txt'")),
            "{:?}",
            c["files"]
        );
        assert!(c["files"]
            .iter()
            .any(|r| r.contains("'sites/old.com.evil/files/b.txt'")));
        assert_eq!(
            a.variable("file_directory_path").unwrap().as_deref(),
            Some("sites/new.org/files")
        );
    }
}
