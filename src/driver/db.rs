//! The database seam: where site databases live ([`DbServer`]) and what the
//! embedded application kind does inside one ([`SiteConn`]). Two drivers sit
//! behind it: the embedded SQLite server under a server root
//! ([`crate::db::SqliteServer`]), and a MariaDB/MySQL server
//! (`mysql_site.rs`). The task steps speak only to these traits.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::compat::SitePackage;
use crate::db::{self, DbError, SiteDb, SqliteServer};
use crate::names::{Name, PackageName};
use crate::render::{Secret, SettingsFile};

/// How a site logs in to its database: the database, its user and the
/// user's password (what its settings file holds).
#[derive(Debug, Clone)]
pub struct Login {
    /// The database.
    pub database: String,
    /// Its user, granted that database only.
    pub user: String,
    /// The user's password.
    pub password: Secret,
}

impl From<&SettingsFile> for Login {
    /// The login a site's settings file holds: the one place that reads it.
    fn from(settings: &SettingsFile) -> Login {
        Login {
            database: settings.database.name.clone(),
            user: settings.database.user.clone(),
            password: settings.database.password.clone(),
        }
    }
}

/// What observing a site reads from its database: its `system` rows and
/// whether it is in maintenance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteSnapshot {
    /// The `system` table.
    pub packages: BTreeMap<PackageName, SitePackage>,
    /// `maintenance_mode` is `1`.
    pub maintenance: bool,
}

/// What [`DbServer::move_tables`] did.
#[derive(Debug)]
pub enum Moved {
    /// The tables are in the new database, reached with this login; the
    /// old database is left empty, with its user.
    Moved(Login),
    /// Nothing was changed: the driver cannot move this database without
    /// copying it, for the reason given.
    Copy(String),
}

/// A database named with the database server it lives on: what a journal
/// records, so an undo or a recovery finds it whatever the inventory says
/// by then.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DbRef {
    /// The database server's name in `hoist.yaml`.
    pub server: Name,
    /// The database's name.
    pub name: String,
}

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The embedded SQLite server.
    #[error(transparent)]
    Sqlite(#[from] DbError),
    /// A MariaDB/MySQL server.
    #[error(transparent)]
    Mysql(#[from] crate::mysql::MysqlError),
    /// A name the driver cannot use.
    #[error("{0}")]
    Invalid(String),
    /// The inventory names a database server that is not declared.
    #[error("unknown database server {0}")]
    Unknown(Name),
}

impl DriverError {
    /// Whether the server refused to create a database or a user because
    /// it exists: then it is not the caller's, and no undo may drop it.
    pub fn already_exists(&self) -> bool {
        matches!(
            self,
            DriverError::Sqlite(DbError::Exists(_))
                | DriverError::Mysql(
                    crate::mysql::MysqlError::DatabaseExists { .. }
                        | crate::mysql::MysqlError::UserExists { .. }
                )
        )
    }
}

/// What the embedded application kind does in a site's database (spec
/// 3a): its core tables, packages' SQL, the `system` and `variables`
/// tables, caches and file paths.
pub trait SiteConn {
    /// Creates the tables hoist keeps in every site database.
    fn create_core_tables(&mut self) -> Result<(), DriverError>;
    /// Runs a package's SQL (`file` names it in errors) confined to this
    /// database, and records `rec` as its `system` row, in one transaction
    /// where the engine allows.
    fn apply_package_sql(
        &mut self,
        sql: &mut dyn Read,
        file: &str,
        name: &PackageName,
        rec: &SitePackage,
    ) -> Result<(), DriverError>;
    /// The `system` table.
    fn system(&mut self) -> Result<BTreeMap<PackageName, SitePackage>, DriverError>;
    /// Enables or disables a package.
    fn set_enabled(&mut self, name: &PackageName, enabled: bool) -> Result<(), DriverError>;
    /// A variable, if set.
    fn variable(&mut self, name: &str) -> Result<Option<String>, DriverError>;
    /// Sets a variable.
    fn set_variable(&mut self, name: &str, value: &str) -> Result<(), DriverError>;
    /// Unsets a variable.
    fn delete_variable(&mut self, name: &str) -> Result<(), DriverError>;
    /// Empties the `cache*` tables.
    fn clear_caches(&mut self) -> Result<(), DriverError>;
    /// Rewrites file paths under `sites/<old>/` to `sites/<new>/`.
    fn fix_paths(&mut self, old_domain: &str, new_domain: &str) -> Result<(), DriverError>;
}

/// A database server holding site databases, one database and one user
/// per site.
pub trait DbServer: Send + Sync {
    /// Its name in `hoist.yaml`.
    fn name(&self) -> &Name;
    /// The driver, as settings files record it: `sqlite` or `mysql`.
    fn driver(&self) -> &'static str;
    /// Whether database `db` exists.
    fn exists(&self, db: &str) -> Result<bool, DriverError>;
    /// Refuses, with an error naming it, when database `db` or the user
    /// [`DbServer::create`] would make for it exists: a task asks this
    /// before it records anything, so that it never adopts (and an undo
    /// never drops) what it did not create.
    fn check_free(&self, db: &str) -> Result<(), DriverError> {
        if self.exists(db)? {
            return Err(DriverError::Invalid(format!(
                "database server {}: database {db} exists already",
                self.name()
            )));
        }
        Ok(())
    }
    /// Creates an empty database `db` and its user, refusing one that
    /// exists.
    fn create(&self, db: &str) -> Result<Login, DriverError>;
    /// Drops database `db` and its user; absent ones are no error.
    fn drop_database(&self, db: &str) -> Result<(), DriverError>;
    /// Opens a site's database for the embedded kind's statements.
    /// `staged`: a database the running task created, whose writes the
    /// task's commit point makes durable.
    fn open(&self, login: &Login, staged: bool) -> Result<Box<dyn SiteConn + '_>, DriverError>;
    /// A new database `to` holding exactly the rows of `from`.
    fn copy(&self, from: &Login, to: &str) -> Result<Login, DriverError>;
    /// Streams a dump of `from` that [`DbServer::load`] reads back.
    fn dump(&self, from: &Login, out: &mut dyn Write) -> Result<(), DriverError>;
    /// Streams a dump into the empty database of `into`, confined to it.
    fn load(&self, into: &Login, dump: &mut dyn Read, file: &str) -> Result<(), DriverError>;
    /// Keeps a copy of `db` that [`DbServer::restore_copy`] puts back: the
    /// undo of an update, which edits the database in place.
    fn keep_copy(&self, login: &Login) -> Result<(), DriverError>;
    /// Puts back the kept copy of `db`; false when there was none.
    fn restore_copy(&self, login: &Login) -> Result<bool, DriverError>;
    /// Removes the kept copy of `db`, if any.
    fn discard_copy(&self, login: &Login) -> Result<(), DriverError>;
    /// Every database on the server that hoist may have made.
    fn list(&self) -> Result<Vec<String>, DriverError>;
    /// The snapshots of many site databases read at once, over one admin
    /// connection (observing a fleet must not open a connection per site
    /// in sequence); `None`: this driver reads each site on its own
    /// ([`DbServer::open`]). A database missing from the answer (absent,
    /// or without hoist's tables) is read on its own, which says why.
    /// Known limit: the site's own login is not tried on this path.
    fn snapshots(
        &self,
        _dbs: &[String],
    ) -> Result<Option<BTreeMap<String, SiteSnapshot>>, DriverError> {
        Ok(None)
    }
    /// The file of database `db`, for a server whose databases are files
    /// (SQLite): what a site's own settings name. `None` for a server
    /// reached over the network.
    fn sqlite_file(&self, _db: &str) -> Option<std::path::PathBuf> {
        None
    }
    /// Runs one read-only statement `sql` in the site's database as the
    /// site's user and returns its rows, each column's bytes: how a
    /// database not in the embedded format (a Drupal site's) is observed.
    /// SQLite servers are read through rusqlite instead.
    fn query_rows(&self, login: &Login, sql: &str) -> Result<Vec<Vec<Vec<u8>>>, DriverError> {
        let _ = (login, sql);
        Err(DriverError::Invalid(format!(
            "database server {} cannot run queries for observation",
            self.name()
        )))
    }
    /// Moves the tables of `from` into a new database `to` with a new
    /// user, without copying a row, when the driver can; the old database
    /// stays, empty, with its user, until the caller drops it (the task
    /// committed) or [`DbServer::move_back`] refills it (undo). The
    /// default cannot: [`Moved::Copy`], nothing changed.
    fn move_tables(&self, _from: &Login, _to: &str) -> Result<Moved, DriverError> {
        Ok(Moved::Copy(format!(
            "a {} database server copies rather than moves",
            self.driver()
        )))
    }
    /// Undoes [`DbServer::move_tables`]: every table of `to` goes back
    /// into `from`, at once. Nothing to move, or no database `to`, is no
    /// error (an undo may run again after a crash).
    fn move_back(&self, _from: &str, _to: &str) -> Result<(), DriverError> {
        Ok(())
    }
}

/// The embedded SQLite server of one server root, under its name in
/// `hoist.yaml`.
pub struct Sqlite {
    name: Name,
    server: SqliteServer,
}

impl Sqlite {
    /// The SQLite server named `name` keeping its files as `server` does.
    pub fn new(name: Name, server: SqliteServer) -> Sqlite {
        Sqlite { name, server }
    }

    /// The files' server.
    pub fn files(&self) -> &SqliteServer {
        &self.server
    }

    fn creds(l: &Login) -> db::Credentials {
        db::Credentials {
            user: l.user.clone(),
            password: l.password.clone(),
        }
    }

    fn login(database: &str, c: db::Credentials) -> Login {
        Login {
            database: database.to_owned(),
            user: c.user,
            password: c.password,
        }
    }
}

impl DbServer for Sqlite {
    fn name(&self) -> &Name {
        &self.name
    }
    fn driver(&self) -> &'static str {
        "sqlite"
    }
    fn exists(&self, db: &str) -> Result<bool, DriverError> {
        Ok(self.server.exists(db))
    }
    fn create(&self, db: &str) -> Result<Login, DriverError> {
        Ok(Self::login(db, self.server.create(db)?))
    }
    fn drop_database(&self, db: &str) -> Result<(), DriverError> {
        Ok(self.server.drop_database(db)?)
    }
    fn open(&self, login: &Login, staged: bool) -> Result<Box<dyn SiteConn + '_>, DriverError> {
        let c = Self::creds(login);
        let db = if staged {
            self.server.open_staged(&login.database, &c)?
        } else {
            self.server.open(&login.database, &c)?
        };
        Ok(Box::new(db))
    }
    fn copy(&self, from: &Login, to: &str) -> Result<Login, DriverError> {
        // SQLite's online backup gives the rows a dump and import would,
        // at the speed of a file copy.
        let creds = self.server.create(to)?;
        let mut new = self.server.open_staged(to, &creds)?;
        self.server
            .open(&from.database, &Self::creds(from))?
            .copy_into(&mut new)?;
        Ok(Self::login(to, creds))
    }
    fn dump(&self, from: &Login, out: &mut dyn Write) -> Result<(), DriverError> {
        let db = self.server.open(&from.database, &Self::creds(from))?;
        Ok(db.dump(out)?)
    }
    fn load(&self, into: &Login, dump: &mut dyn Read, file: &str) -> Result<(), DriverError> {
        let mut db = self
            .server
            .open_staged(&into.database, &Self::creds(into))?;
        Ok(db.load(dump, file)?)
    }
    fn keep_copy(&self, login: &Login) -> Result<(), DriverError> {
        let db = self.server.open(&login.database, &Self::creds(login))?;
        Ok(self.server.keep_copy(&db)?)
    }
    fn restore_copy(&self, login: &Login) -> Result<bool, DriverError> {
        Ok(self.server.restore_copy(&login.database)?)
    }
    fn discard_copy(&self, login: &Login) -> Result<(), DriverError> {
        Ok(self.server.discard_copy(&login.database)?)
    }
    fn list(&self) -> Result<Vec<String>, DriverError> {
        Ok(self.server.list())
    }
    fn sqlite_file(&self, db: &str) -> Option<std::path::PathBuf> {
        self.server.path(db).ok()
    }
}

impl SiteConn for SiteDb {
    fn create_core_tables(&mut self) -> Result<(), DriverError> {
        Ok(SiteDb::create_core_tables(self)?)
    }
    fn apply_package_sql(
        &mut self,
        sql: &mut dyn Read,
        file: &str,
        name: &PackageName,
        rec: &SitePackage,
    ) -> Result<(), DriverError> {
        Ok(SiteDb::apply_package_sql(self, sql, file, name, rec)?)
    }
    fn system(&mut self) -> Result<BTreeMap<PackageName, SitePackage>, DriverError> {
        Ok(SiteDb::system(self)?)
    }
    fn set_enabled(&mut self, name: &PackageName, enabled: bool) -> Result<(), DriverError> {
        Ok(SiteDb::set_enabled(self, name, enabled)?)
    }
    fn variable(&mut self, name: &str) -> Result<Option<String>, DriverError> {
        Ok(SiteDb::variable(self, name)?)
    }
    fn set_variable(&mut self, name: &str, value: &str) -> Result<(), DriverError> {
        Ok(SiteDb::set_variable(self, name, value)?)
    }
    fn delete_variable(&mut self, name: &str) -> Result<(), DriverError> {
        Ok(SiteDb::delete_variable(self, name)?)
    }
    fn clear_caches(&mut self) -> Result<(), DriverError> {
        Ok(SiteDb::clear_caches(self)?)
    }
    fn fix_paths(&mut self, old_domain: &str, new_domain: &str) -> Result<(), DriverError> {
        Ok(SiteDb::fix_paths(self, old_domain, new_domain)?)
    }
}

/// A new database `to` on `dst` holding the rows of `from` on `src`: on
/// one server its own copy; across two servers of one driver, a dump
/// streamed through a pipe into a load (never whole in memory or on disk).
/// A partial copy is dropped again.
pub fn copy_between(
    src: &dyn DbServer,
    from: &Login,
    dst: &dyn DbServer,
    to: &str,
) -> Result<Login, DriverError> {
    if src.name() == dst.name() {
        return dst.copy(from, to);
    }
    if src.driver() != dst.driver() {
        return Err(DriverError::Invalid(format!(
            "moving a database from a {} server ({}) to a {} server ({}) is not supported",
            src.driver(),
            src.name(),
            dst.driver(),
            dst.name()
        )));
    }
    let login = dst.create(to)?;
    let streamed = (|| {
        let (mut reader, mut writer) = std::io::pipe()
            .map_err(|e| DriverError::Invalid(format!("cannot make a pipe: {e}")))?;
        std::thread::scope(|s| {
            let dumper = s.spawn(move || {
                let r = src.dump(from, &mut writer);
                drop(writer);
                r
            });
            let loaded = dst.load(&login, &mut reader, &from.database);
            drop(reader);
            let dumped = dumper.join().map_err(|_| {
                DriverError::Invalid(format!(
                    "the dump of {} stopped unexpectedly",
                    from.database
                ))
            })?;
            dumped?;
            loaded
        })
    })();
    match streamed {
        Ok(()) => Ok(login),
        Err(e) => Err(match dst.drop_database(to) {
            Ok(()) => e,
            Err(undo) => DriverError::Invalid(format!(
                "{e}; and the partial copy {to} on {} could not be dropped: {undo}",
                dst.name()
            )),
        }),
    }
}
