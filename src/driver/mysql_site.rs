//! The database seam on a MariaDB/MySQL server ([`crate::mysql::Mysql`]):
//! one database and one user per site, every site statement run as the
//! site's own user so that grants confine it.
//!
//! Known limits, against the SQLite driver: DDL commits implicitly on
//! MySQL, so a package's script is not one transaction with its `system`
//! row (the task's undo drops the copy it ran on, or puts back the kept
//! copy of an update); and the database user's name is at most 32
//! characters (MySQL 8), so a long database name gets a shortened user.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::db::{DbServer, DriverError, Login, Moved, SiteConn, SiteSnapshot};
use crate::codebase::PackageKind;
use crate::compat::SitePackage;
use crate::mysql::sql::{sql_ident, sql_string};
use crate::mysql::{Credentials, DbName, DbUser, Mysql, Renamed};
use crate::names::{Name, PackageName};

/// The tables hoist keeps in every site database (spec 3a), in MySQL's
/// dialect: keys are `VARCHAR(191)`, the longest utf8mb4 key InnoDB takes
/// on every supported version.
const CORE_TABLES: &str = "
CREATE TABLE `system` (name VARCHAR(191) PRIMARY KEY, kind VARCHAR(32) NOT NULL, enabled INTEGER NOT NULL, version VARCHAR(191) NOT NULL, schema_version INTEGER NOT NULL);
CREATE TABLE variables (name VARCHAR(191) PRIMARY KEY, value LONGTEXT NOT NULL);
CREATE TABLE files (fid INTEGER PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE cache (cid VARCHAR(191) PRIMARY KEY, data LONGBLOB, expire INTEGER NOT NULL DEFAULT 0);
CREATE TABLE cache_page (cid VARCHAR(191) PRIMARY KEY, data LONGBLOB, expire INTEGER NOT NULL DEFAULT 0);
";

/// A MariaDB/MySQL server under its name in `hoist.yaml`.
pub struct MysqlServer {
    name: Name,
    server: Mysql,
}

/// The suffix of the database an update keeps as its undo.
const KEPT: &str = "_kept";

impl MysqlServer {
    /// The server `server`, named `name` in the inventory.
    pub fn new(name: Name, server: Mysql) -> MysqlServer {
        MysqlServer { name, server }
    }

    /// The driver itself.
    pub fn inner(&self) -> &Mysql {
        &self.server
    }

    fn db_name(db: &str) -> Result<DbName, DriverError> {
        DbName::new(db).map_err(|e| DriverError::Invalid(e.to_string()))
    }

    /// The user of database `db` ([`crate::render::DbDriver::user_for`]).
    pub fn user_for(db: &str) -> Result<DbUser, DriverError> {
        DbUser::new(&crate::render::DbDriver::Mysql.user_for(db))
            .map_err(|e| DriverError::Invalid(e.to_string()))
    }

    fn creds(l: &Login) -> Result<Credentials, DriverError> {
        Ok(Credentials {
            database: Self::db_name(&l.database)?,
            user: DbUser::new(&l.user).map_err(|e| DriverError::Invalid(e.to_string()))?,
            password: l.password.clone(),
        })
    }

    fn login(c: Credentials) -> Login {
        Login {
            database: c.database.to_string(),
            user: c.user.to_string(),
            password: c.password,
        }
    }

    /// A copy of `from` in a new database `to`: dump piped into load, so
    /// the rows stream through and never sit in memory or on disk.
    fn copy_rows(&self, from: &Login, to: &Credentials) -> Result<(), DriverError> {
        let src = Self::db_name(&from.database)?;
        let (mut reader, mut writer) = std::io::pipe()
            .map_err(|e| DriverError::Invalid(format!("cannot make a pipe: {e}")))?;
        std::thread::scope(|s| {
            let dumper = s.spawn(move || {
                let r = self.server.dump(&src, &mut writer);
                drop(writer);
                r
            });
            let loaded = self.server.load(to, &mut reader);
            drop(reader);
            let dumped = dumper.join().map_err(|_| {
                DriverError::Invalid(format!(
                    "the dump of {} stopped unexpectedly",
                    from.database
                ))
            })?;
            dumped?;
            loaded?;
            Ok(())
        })
    }
}

impl DbServer for MysqlServer {
    fn name(&self) -> &Name {
        &self.name
    }
    fn driver(&self) -> &'static str {
        "mysql"
    }
    fn exists(&self, db: &str) -> Result<bool, DriverError> {
        Ok(self.server.exists(&Self::db_name(db)?)?)
    }
    fn check_free(&self, db: &str) -> Result<(), DriverError> {
        Ok(self
            .server
            .check_free(&Self::db_name(db)?, &Self::user_for(db)?)?)
    }
    fn create(&self, db: &str) -> Result<Login, DriverError> {
        let c = self
            .server
            .create(&Self::db_name(db)?, &Self::user_for(db)?)?;
        Ok(Self::login(c))
    }
    fn drop_database(&self, db: &str) -> Result<(), DriverError> {
        Ok(self
            .server
            .drop(&Self::db_name(db)?, &Self::user_for(db)?)?)
    }
    fn open(&self, login: &Login, _staged: bool) -> Result<Box<dyn SiteConn + '_>, DriverError> {
        Ok(Box::new(MysqlConn {
            server: &self.server,
            creds: Self::creds(login)?,
        }))
    }
    fn copy(&self, from: &Login, to: &str) -> Result<Login, DriverError> {
        let creds = self
            .server
            .create(&Self::db_name(to)?, &Self::user_for(to)?)?;
        if let Err(e) = self.copy_rows(from, &creds) {
            return Err(match self.drop_database(to) {
                Ok(()) => e,
                Err(undo) => DriverError::Invalid(format!(
                    "{e}; and the partial copy {to} could not be dropped: {undo}"
                )),
            });
        }
        Ok(Self::login(creds))
    }
    fn dump(&self, from: &Login, out: &mut dyn Write) -> Result<(), DriverError> {
        Ok(self.server.dump(&Self::db_name(&from.database)?, out)?)
    }
    fn load(&self, into: &Login, dump: &mut dyn Read, _file: &str) -> Result<(), DriverError> {
        Ok(self.server.load(&Self::creds(into)?, dump)?)
    }
    fn keep_copy(&self, login: &Login) -> Result<(), DriverError> {
        let kept = kept_name(&login.database);
        self.drop_database(&kept)?;
        self.copy(login, &kept).map(|_| ())
    }
    fn restore_copy(&self, login: &Login) -> Result<bool, DriverError> {
        let kept = kept_name(&login.database);
        if !self.exists(&kept)? {
            return Ok(false);
        }
        // The site's own database is emptied and refilled from the kept
        // copy, keeping its user and password (its settings stay valid).
        let tables = MysqlConn {
            server: &self.server,
            creds: Self::creds(login)?,
        }
        .tables()?;
        if !tables.is_empty() {
            let list: Vec<String> = tables.iter().map(|t| sql_ident(t)).collect();
            self.server.site_query(
                &Self::creds(login)?,
                &format!(
                    "SET FOREIGN_KEY_CHECKS=0;\nDROP TABLE {};\n",
                    list.join(", ")
                ),
            )?;
        }
        let kept_login = Login {
            database: kept.clone(),
            user: String::new(),
            password: login.password.clone(),
        };
        self.copy_rows(&kept_login, &Self::creds(login)?)?;
        self.drop_database(&kept)?;
        Ok(true)
    }
    fn discard_copy(&self, login: &Login) -> Result<(), DriverError> {
        self.drop_database(&kept_name(&login.database))
    }
    fn query_rows(&self, login: &Login, sql: &str) -> Result<Vec<Vec<Vec<u8>>>, DriverError> {
        let rows = self.server.site_query(&Self::creds(login)?, sql)?;
        Ok(rows
            .into_iter()
            .map(|r| r.into_iter().map(String::into_bytes).collect())
            .collect())
    }
    fn list(&self) -> Result<Vec<String>, DriverError> {
        Ok(self.server.observe()?.databases)
    }
    fn snapshots(
        &self,
        dbs: &[String],
    ) -> Result<Option<BTreeMap<String, SiteSnapshot>>, DriverError> {
        let mut out = BTreeMap::new();
        if dbs.is_empty() {
            return Ok(Some(out));
        }
        let what = "observing the sites' databases";
        // Only databases holding both tables: one without would fail the
        // whole statement; it is read on its own, which reports it.
        let list: Vec<String> = dbs.iter().map(|d| sql_string(d)).collect();
        let found = self.server.admin_rows(
            what,
            &format!(
                "SELECT TABLE_SCHEMA FROM information_schema.TABLES \
                 WHERE TABLE_NAME IN ('system', 'variables') AND TABLE_SCHEMA IN ({}) \
                 GROUP BY TABLE_SCHEMA HAVING COUNT(*) = 2;\n",
                list.join(", ")
            ),
        )?;
        let ready: Vec<String> = found
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        // One client for all, a statement per batch of databases.
        let mut sql = String::new();
        for batch in ready.chunks(100) {
            let parts: Vec<String> = batch
                .iter()
                .map(|d| {
                    let (q, id) = (sql_string(d), sql_ident(d));
                    format!(
                        "SELECT {q}, 's', name, kind, CAST(enabled AS CHAR), version, CAST(schema_version AS CHAR) FROM {id}.`system`\n\
                         UNION ALL SELECT {q}, 'v', value, '', '', '', '' FROM {id}.variables WHERE name = 'maintenance_mode'"
                    )
                })
                .collect();
            sql.push_str(&parts.join("\nUNION ALL "));
            sql.push_str(";\n");
        }
        for d in &ready {
            out.insert(d.clone(), SiteSnapshot::default());
        }
        if sql.is_empty() {
            return Ok(Some(out));
        }
        for row in self.server.admin_rows(what, &sql)? {
            let mut it = row.into_iter();
            let (Some(db), Some(kind)) = (it.next(), it.next()) else {
                continue;
            };
            let rest: Vec<String> = it.collect();
            let Some(snap) = out.get_mut(&db) else {
                continue;
            };
            if kind == "v" {
                snap.maintenance = rest.first().is_some_and(|v| v == "1");
            } else {
                let (name, pkg) = system_row(&db, rest)?;
                snap.packages.insert(name, pkg);
            }
        }
        Ok(Some(out))
    }
    fn move_tables(&self, from: &Login, to: &str) -> Result<Moved, DriverError> {
        let renamed = self.server.rename(
            &Self::db_name(&from.database)?,
            &Self::db_name(to)?,
            &Self::user_for(to)?,
        )?;
        Ok(match renamed {
            Renamed::Moved(c) => Moved::Moved(Self::login(c)),
            Renamed::NeedsCopy { reason } => Moved::Copy(reason),
        })
    }
    fn move_back(&self, from: &str, to: &str) -> Result<(), DriverError> {
        Ok(self
            .server
            .move_back(&Self::db_name(from)?, &Self::db_name(to)?)?)
    }
}

/// One row of database `db`'s `system` table (name, kind, enabled,
/// version, schema), checked: read by a site's own connection and by a
/// fleet's observation alike.
fn system_row(db: &str, row: Vec<String>) -> Result<(PackageName, SitePackage), DriverError> {
    let corrupt = |msg: String| DriverError::Invalid(format!("database {db}: {msg}"));
    let [name, kind, enabled, version, schema] = <[String; 5]>::try_from(row)
        .map_err(|_| corrupt("a system row without five columns".into()))?;
    let n = PackageName::new(&name).map_err(|e| corrupt(format!("system table: {e}")))?;
    let kind = PackageKind::parse(&kind)
        .ok_or_else(|| corrupt(format!("system table: {name}: kind {kind:?}")))?;
    let version = semver::Version::parse(&version)
        .map_err(|e| corrupt(format!("system table: {name}: {e}")))?;
    let schema = schema
        .parse::<u32>()
        .map_err(|_| corrupt(format!("system table: {name}: schema {schema:?}")))?;
    Ok((
        n,
        SitePackage {
            kind,
            enabled: enabled != "0",
            version: version.into(),
            schema,
        },
    ))
}

/// The name of the kept copy of `db` (64 characters at most).
fn kept_name(db: &str) -> String {
    format!("{}{KEPT}", crate::names::prefix(db, 64 - KEPT.len()))
}

/// A site's database on a MySQL server, reached as the site's user.
struct MysqlConn<'a> {
    server: &'a Mysql,
    creds: Credentials,
}

impl MysqlConn<'_> {
    fn query(&self, sql: &str) -> Result<Vec<Vec<String>>, DriverError> {
        Ok(self.server.site_query(&self.creds, sql)?)
    }

    fn tables(&self) -> Result<Vec<String>, DriverError> {
        Ok(self
            .query("SHOW TABLES;\n")?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect())
    }
}

impl SiteConn for MysqlConn<'_> {
    fn create_core_tables(&mut self) -> Result<(), DriverError> {
        self.query(CORE_TABLES).map(|_| ())
    }

    fn apply_package_sql(
        &mut self,
        sql: &mut dyn Read,
        file: &str,
        name: &PackageName,
        rec: &SitePackage,
    ) -> Result<(), DriverError> {
        // The script streams in as the site's user: grants confine it to
        // its own database whatever it says.
        let creds = self.creds.clone();
        self.server
            .load(&creds, sql)
            .map_err(|e| DriverError::Invalid(format!("{file}: {e}")))?;
        self.query(&format!(
            "INSERT INTO `system` (name, kind, enabled, version, schema_version) VALUES ({}, {}, {}, {}, {})\n\
             ON DUPLICATE KEY UPDATE kind = VALUES(kind), enabled = VALUES(enabled), version = VALUES(version), schema_version = VALUES(schema_version);\n",
            sql_string(name.as_str()),
            sql_string(rec.kind.as_str()),
            rec.enabled as i64,
            sql_string(&rec.version.to_string()),
            rec.schema
        ))
        .map(|_| ())
    }

    fn system(&mut self) -> Result<BTreeMap<PackageName, SitePackage>, DriverError> {
        let rows = self.query(
            "SELECT name, kind, enabled, version, schema_version FROM `system` ORDER BY name;\n",
        )?;
        let db = self.creds.database.to_string();
        rows.into_iter().map(|row| system_row(&db, row)).collect()
    }

    fn set_enabled(&mut self, name: &PackageName, enabled: bool) -> Result<(), DriverError> {
        self.query(&format!(
            "UPDATE `system` SET enabled = {} WHERE name = {};\n",
            enabled as i64,
            sql_string(name.as_str())
        ))
        .map(|_| ())
    }

    fn variable(&mut self, name: &str) -> Result<Option<String>, DriverError> {
        let rows = self.query(&format!(
            "SELECT value FROM variables WHERE name = {};\n",
            sql_string(name)
        ))?;
        Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()))
    }

    fn set_variable(&mut self, name: &str, value: &str) -> Result<(), DriverError> {
        self.query(&format!(
            "INSERT INTO variables (name, value) VALUES ({0}, {1}) ON DUPLICATE KEY UPDATE value = {1};\n",
            sql_string(name),
            sql_string(value)
        ))
        .map(|_| ())
    }

    fn delete_variable(&mut self, name: &str) -> Result<(), DriverError> {
        self.query(&format!(
            "DELETE FROM variables WHERE name = {};\n",
            sql_string(name)
        ))
        .map(|_| ())
    }

    fn clear_caches(&mut self) -> Result<(), DriverError> {
        let sql: String = self
            .tables()?
            .into_iter()
            .filter(|t| t.starts_with("cache"))
            .map(|t| format!("DELETE FROM {};\n", sql_ident(&t)))
            .collect();
        if sql.is_empty() {
            return Ok(());
        }
        self.query(&sql).map(|_| ())
    }

    fn fix_paths(&mut self, old_domain: &str, new_domain: &str) -> Result<(), DriverError> {
        let old = sql_string(&format!("sites/{old_domain}/"));
        let new = sql_string(&format!("sites/{new_domain}/"));
        self.query(&format!(
            "START TRANSACTION;\n\
             UPDATE files SET path = CONCAT({new}, SUBSTRING(path, CHAR_LENGTH({old}) + 1)) WHERE LEFT(path, CHAR_LENGTH({old})) = {old};\n\
             UPDATE variables SET value = CONCAT({new}, SUBSTRING(value, CHAR_LENGTH({old}) + 1)) WHERE name = 'file_directory_path' AND LEFT(CONCAT(value, '/'), CHAR_LENGTH({old})) = {old};\n\
             COMMIT;\n"
        ))
        .map(|_| ())
    }
}
