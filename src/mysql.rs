//! Site databases on a MariaDB (>= 10.5) or MySQL (>= 8.0) server: one
//! database and one user per site, the user granted that database only.
//!
//! The server is driven through its own command-line programs, `mariadb`
//! (or `mysql`) and `mariadb-dump` (or `mysqldump`), run as child processes.
//! They are on every host that runs such a server, they speak every
//! authentication plugin and TLS setting the server wants, and they stream
//! dumps in both directions for free (a dump never sits in memory), where a
//! client library would add a heavy dependency and a dump writer of our own.
//!
//! Secrets: no password is on a command line or in a child's environment.
//! Each child reads its login from a 0600 option file (`--defaults-file`)
//! in a private 0700 temporary directory, removed when the child is done.
//! `--defaults-file` rather than `--defaults-extra-file`: the latter also
//! reads `~/.my.cnf`, which would override the login we mean to use. SQL
//! holding a password goes to the client on stdin. Error messages are
//! scrubbed of every password involved before they are returned.
//!
//! Confinement: a dump is loaded as the site's own user into its own
//! database, so grants confine whatever it holds; the client runs with
//! `--binary-mode` (no client commands such as `\!` or `source`),
//! `--local-infile=0` (no reading of local files) and `--sandbox` where the
//! client has it.
//!
//! This module is standalone: the task pipeline does not call it yet.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::fsutil;

/// The most of a child's stderr kept for an error message.
const STDERR_KEEP: usize = 8 * 1024;

/// Largest statement the loading client accepts; the server's own
/// `max_allowed_packet` still applies.
const CLIENT_MAX_PACKET: &str = "--max-allowed-packet=1073741824";

/// Why a name was refused before it reached any SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct NameError {
    /// What was named: "database name", "database user" or "grant host".
    pub kind: &'static str,
    /// The refused text.
    pub value: String,
    /// The rule it broke.
    pub reason: &'static str,
}

/// An error from the MariaDB/MySQL driver. Every variant that involves the
/// server names it; none contains a password.
#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    /// A database, user or grant host name broke its rule.
    #[error("database server {server}: {source}")]
    Name {
        /// The database server's name in the inventory.
        server: String,
        /// The refused name.
        source: NameError,
    },
    /// The admin password could not be read from its file or variable.
    #[error("database server {server}: cannot read the admin password from {from}: {reason}")]
    AdminPassword {
        /// The database server's name in the inventory.
        server: String,
        /// The file or environment variable.
        from: String,
        /// Why.
        reason: String,
    },
    /// No client program was found.
    #[error("database server {server}: no {wanted} program found in PATH")]
    NoClient {
        /// The database server's name in the inventory.
        server: String,
        /// The programs looked for.
        wanted: &'static str,
    },
    /// A client program could not be started, or its option file written.
    #[error("database server {server}: cannot run {program}: {source}")]
    Spawn {
        /// The database server's name in the inventory.
        server: String,
        /// The program.
        program: String,
        /// The cause.
        source: io::Error,
    },
    /// The server refused the login.
    #[error("database server {server}: access denied for user {user} ({message})")]
    AccessDenied {
        /// The database server's name in the inventory.
        server: String,
        /// The user that tried to log in.
        user: String,
        /// The client's message.
        message: String,
    },
    /// The server could not be reached.
    #[error("database server {server}: cannot connect ({message})")]
    Unreachable {
        /// The database server's name in the inventory.
        server: String,
        /// The client's message.
        message: String,
    },
    /// The connection broke while `what` was running (the server went
    /// away, or the client was killed).
    #[error("database server {server}: connection lost during {what} ({message})")]
    ConnectionLost {
        /// The database server's name in the inventory.
        server: String,
        /// The operation.
        what: String,
        /// The client's message.
        message: String,
    },
    /// The server refused a statement for lack of privilege: e.g. a dump
    /// reaching outside its site's database.
    #[error("database server {server}: {what} refused by the server ({message})")]
    Refused {
        /// The database server's name in the inventory.
        server: String,
        /// The operation.
        what: String,
        /// The client's message.
        message: String,
    },
    /// Any other failure of a statement or a client.
    #[error("database server {server}: {what} failed ({message})")]
    Failed {
        /// The database server's name in the inventory.
        server: String,
        /// The operation.
        what: String,
        /// The client's message.
        message: String,
    },
    /// A database that should be new exists already.
    #[error("database server {server}: database {database} exists already")]
    DatabaseExists {
        /// The database server's name in the inventory.
        server: String,
        /// The database.
        database: String,
    },
    /// A user that should be new exists already.
    #[error("database server {server}: database user {user} exists already")]
    UserExists {
        /// The database server's name in the inventory.
        server: String,
        /// The user.
        user: String,
    },
    /// A database that should exist does not.
    #[error("database server {server}: database {database} does not exist")]
    NoDatabase {
        /// The database server's name in the inventory.
        server: String,
        /// The database.
        database: String,
    },
    /// Reading the dump to load failed; the load was stopped.
    #[error("database server {server}: reading the dump to load into {database}: {source}")]
    ReadDump {
        /// The database server's name in the inventory.
        server: String,
        /// The target database.
        database: String,
        /// The cause.
        source: io::Error,
    },
    /// Writing the dump failed; the dump was stopped.
    #[error("database server {server}: writing the dump of {database}: {source}")]
    WriteDump {
        /// The database server's name in the inventory.
        server: String,
        /// The dumped database.
        database: String,
        /// The cause.
        source: io::Error,
    },
    /// The client's output was not what was asked for.
    #[error("database server {server}: unexpected output from {what}: {detail}")]
    Unexpected {
        /// The database server's name in the inventory.
        server: String,
        /// The operation.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// An operation failed, and so did undoing its partial effect.
    #[error("{error}; undoing it failed too: {undo}")]
    UndoFailed {
        /// The first failure.
        error: Box<MysqlError>,
        /// The failure of the undo.
        undo: Box<MysqlError>,
    },
}

/// A password, shown as `***` by `Debug` so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The password itself, for the one place that must write it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A new random password: 32 letters and digits (about 190 bits), safe
    /// in SQL strings and option files without quoting.
    pub fn random() -> Secret {
        use rand::distr::{Alphanumeric, SampleString};
        Secret(Alphanumeric.sample_string(&mut rand::rng(), 32))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Checks `value` against `[a-z0-9_]{1,max}`.
fn check_ident(kind: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    let err = |reason| NameError {
        kind,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(err("is empty"));
    }
    if value.len() > max {
        return Err(err(if max == 32 {
            "is longer than 32 characters (MySQL's limit for user names)"
        } else {
            "is longer than 64 characters"
        }));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(err("may hold only a-z, 0-9 and _"));
    }
    Ok(())
}

/// A site database's name: `[a-z0-9_]{1,64}`, so it needs no quoting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbName(String);

impl DbName {
    /// Validates a database name.
    pub fn new(s: &str) -> Result<DbName, NameError> {
        check_ident("database name", s, 64).map(|()| DbName(s.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site database user's name: `[a-z0-9_]{1,32}` (32 is MySQL's limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbUser(String);

impl DbUser {
    /// Validates a user name.
    pub fn new(s: &str) -> Result<DbUser, NameError> {
        check_ident("database user", s, 32).map(|()| DbUser(s.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a `grant_hosts` entry: a host name, an address, or a pattern
/// with `%`/`_`; no quote can occur, so it goes into SQL as `'host'`.
fn check_grant_host(h: &str) -> Result<(), NameError> {
    let ok = !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:%_-/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            kind: "grant host",
            value: h.to_owned(),
            reason: "must be 1 to 255 of a-z, A-Z, 0-9 and . : % _ - /",
        })
    }
}

/// A site's login: its database, its user and the user's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The site's database.
    pub database: DbName,
    /// The site's user, granted that database only.
    pub user: DbUser,
    /// The user's password.
    pub password: Secret,
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP to `host:port`.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix socket on this machine.
    Socket(PathBuf),
}

/// Where the admin password is read from, each time it is needed (so a
/// rotated password is picked up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminPassword {
    /// A file holding the password (one trailing newline is ignored).
    File(PathBuf),
    /// An environment variable of hoist's process holding the password.
    Env(String),
}

/// The client programs used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// `mariadb` or `mysql`.
    pub client: PathBuf,
    /// `mariadb-dump` or `mysqldump`.
    pub dump: PathBuf,
    /// Whether the client knows `--sandbox` (MariaDB clients since 10.5.25).
    pub sandbox: bool,
}

impl Tools {
    /// Finds the programs in PATH, preferring MariaDB's names. `None` names
    /// what is missing.
    pub fn detect() -> Result<Tools, &'static str> {
        let client = find_in_path(&["mariadb", "mysql"]).ok_or("mariadb or mysql")?;
        let dump =
            find_in_path(&["mariadb-dump", "mysqldump"]).ok_or("mariadb-dump or mysqldump")?;
        // One run of --help tells whether the hardening option exists; an
        // unknown option would make every load fail.
        let sandbox = Command::new(&client)
            .arg("--help")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--sandbox"));
        Ok(Tools {
            client,
            dump,
            sandbox,
        })
    }
}

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// A database server's settings, as `hoist.yaml` gives them.
#[derive(Debug, Clone)]
pub struct MysqlConfig {
    /// The server's name in the inventory, used in every error.
    pub name: String,
    /// Where it listens.
    pub endpoint: Endpoint,
    /// The administrative user (creates databases and users).
    pub admin_user: String,
    /// Where its password comes from.
    pub admin_password: AdminPassword,
    /// Where site users may connect from.
    pub grant_hosts: Vec<String>,
    /// The client programs; `None`: found in PATH.
    pub tools: Option<Tools>,
}

/// What the server holds, observed in one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Databases, without the server's own (`mysql`, `sys`, the schemas).
    pub databases: Vec<String>,
    /// Users as `(user, host)`.
    pub users: Vec<(String, String)>,
}

/// The outcome of [`Mysql::rename`].
#[derive(Debug, PartialEq, Eq)]
pub enum Renamed {
    /// The tables were moved to the new database, owned by a new user;
    /// the old database (now empty) and its user are left for the caller
    /// to drop once the site has switched, or to move back on undo.
    Moved(Credentials),
    /// The database holds objects `RENAME TABLE` cannot move across
    /// databases (views, triggers, routines, events, sequences): copy it
    /// with dump and load instead. Nothing was changed.
    NeedsCopy {
        /// What was found.
        reason: String,
    },
}

/// Who a client logs in as.
enum Login<'a> {
    Admin,
    Site(&'a Credentials),
}

/// How a child's stdin and stdout are used.
enum Io<'a> {
    /// SQL on stdin, batch output collected.
    Query { sql: String, out: &'a mut Vec<u8> },
    /// Nothing on stdin; stdout streamed to the writer.
    Dump(&'a mut dyn Write),
    /// Stdin streamed from the reader; stdout discarded.
    Load(&'a mut dyn Read),
}

/// A MariaDB/MySQL server holding site databases.
#[derive(Debug)]
pub struct Mysql {
    name: String,
    endpoint: Endpoint,
    admin_user: String,
    admin_password: AdminPassword,
    grant_hosts: Vec<String>,
    tools: Tools,
}

/// The server's own schemas, never a site's.
const SYSTEM_SCHEMAS: &str = "'mysql','information_schema','performance_schema','sys'";

impl Mysql {
    /// Checks the settings and finds the client programs. Nothing is
    /// connected yet.
    pub fn new(config: MysqlConfig) -> Result<Mysql, MysqlError> {
        let server = config.name.clone();
        for h in &config.grant_hosts {
            check_grant_host(h).map_err(|source| MysqlError::Name {
                server: server.clone(),
                source,
            })?;
        }
        if config.grant_hosts.is_empty() {
            return Err(MysqlError::Name {
                server,
                source: NameError {
                    kind: "grant host",
                    value: String::new(),
                    reason: "grant_hosts is empty: site users could connect from nowhere",
                },
            });
        }
        let tools = match config.tools {
            Some(t) => t,
            None => Tools::detect().map_err(|wanted| MysqlError::NoClient {
                server: server.clone(),
                wanted,
            })?,
        };
        Ok(Mysql {
            name: config.name,
            endpoint: config.endpoint,
            admin_user: config.admin_user,
            admin_password: config.admin_password,
            grant_hosts: config.grant_hosts,
            tools,
        })
    }

    /// The server's name in the inventory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Logs in as the admin and returns the server's version string.
    pub fn ping(&self) -> Result<String, MysqlError> {
        let rows = self.query("connecting", "SELECT VERSION();\n")?;
        match rows.as_slice() {
            [row] if row.len() == 1 => Ok(row[0].clone()),
            _ => Err(self.unexpected("connecting", "no version row")),
        }
    }

    /// Creates the site's database and its user, granted that database only
    /// from each of `grant_hosts`, with a new random password. Refuses (with
    /// nothing changed) when either exists; if creation fails half-way, what
    /// was created is dropped again.
    pub fn create(&self, db: &DbName, user: &DbUser) -> Result<Credentials, MysqlError> {
        self.ensure_absent(db, user)?;
        let creds = Credentials {
            database: db.clone(),
            user: user.clone(),
            password: Secret::random(),
        };
        let sql = create_sql(&creds, &self.grant_hosts);
        let what = format!("creating database {db} and user {user}");
        match self.exec(
            &Login::Admin,
            &what,
            &[],
            Io::Query {
                sql,
                out: &mut Vec::new(),
            },
            &[&creds.password],
        ) {
            Ok(()) => Ok(creds),
            // Both were absent a moment ago, so all that exists now is ours.
            Err(error) => Err(self.undo(error, self.drop(db, user))),
        }
    }

    /// Drops the database and every account of the user (whatever its
    /// host). Dropping what does not exist is not an error.
    pub fn drop(&self, db: &DbName, user: &DbUser) -> Result<(), MysqlError> {
        let what = format!("dropping database {db} and user {user}");
        let hosts = self.query(
            &what,
            &format!("SELECT Host FROM mysql.user WHERE User = '{user}';\n"),
        )?;
        let mut sql = format!("DROP DATABASE IF EXISTS `{db}`;\n");
        for row in &hosts {
            let host = row.first().map(String::as_str).unwrap_or_default();
            // The host comes from the server; quote it as a string literal.
            sql.push_str(&format!(
                "DROP USER IF EXISTS '{user}'@{};\n",
                sql_string(host)
            ));
        }
        self.exec(
            &Login::Admin,
            &what,
            &[],
            Io::Query {
                sql,
                out: &mut Vec::new(),
            },
            &[],
        )
    }

    /// Moves a site's tables to a new database owned by a new user, with
    /// one `RENAME TABLE` (atomic and instant: no row is copied). See
    /// [`Renamed`] for what is left and when a copy is needed instead.
    pub fn rename(
        &self,
        from: &DbName,
        to: &DbName,
        to_user: &DbUser,
    ) -> Result<Renamed, MysqlError> {
        let what = format!("renaming database {from} to {to}");
        let f = from.as_str();
        let rows = self.query(
            &what,
            &format!(
                "SELECT 'schema', SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{f}'\n\
                 UNION ALL SELECT TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{f}'\n\
                 UNION ALL SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{f}'\n\
                 UNION ALL SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{f}'\n\
                 UNION ALL SELECT 'EVENT', EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{f}';\n"
            ),
        )?;
        let mut exists = false;
        let mut tables = Vec::new();
        let mut others = Vec::new();
        for row in rows {
            match <[String; 2]>::try_from(row) {
                Ok([kind, _]) if kind == "schema" => exists = true,
                // SYSTEM VERSIONED tables are base tables with history.
                Ok([kind, name]) if kind == "BASE TABLE" || kind == "SYSTEM VERSIONED" => {
                    tables.push(name)
                }
                Ok([kind, name]) => others.push(format!("{} {name}", kind.to_lowercase())),
                Err(_) => return Err(self.unexpected(&what, "a row without two columns")),
            }
        }
        if !exists {
            return Err(MysqlError::NoDatabase {
                server: self.name.clone(),
                database: from.to_string(),
            });
        }
        if !others.is_empty() {
            others.sort();
            return Ok(Renamed::NeedsCopy {
                reason: format!("database {from} holds {}", others.join(", ")),
            });
        }
        let creds = self.create(to, to_user)?;
        if tables.is_empty() {
            return Ok(Renamed::Moved(creds));
        }
        match self.exec(
            &Login::Admin,
            &what,
            &[],
            Io::Query {
                sql: rename_sql(from, to, &tables),
                out: &mut Vec::new(),
            },
            &[],
        ) {
            Ok(()) => Ok(Renamed::Moved(creds)),
            // RENAME TABLE is atomic: on failure every table is still in
            // `from`, and only the new database and user need to go.
            Err(error) => Err(self.undo(error, self.drop(to, to_user))),
        }
    }

    /// Streams a consistent dump of `db` to `out` (`--single-transaction`:
    /// the site may keep running). The dump holds no `CREATE DATABASE` or
    /// `USE`, so it loads into any database; binary columns are written in
    /// hex, so every byte survives any transport.
    pub fn dump(&self, db: &DbName, out: &mut dyn Write) -> Result<(), MysqlError> {
        let what = format!("dumping database {db}");
        let args = [
            "--single-transaction",
            "--quick",
            "--routines",
            "--triggers",
            "--hex-blob",
            "--default-character-set=utf8mb4",
            "--skip-dump-date",
            "--no-tablespaces",
            CLIENT_MAX_PACKET,
            "--",
            db.as_str(),
        ];
        self.exec_dump(&what, &args, db, out)
    }

    /// Streams `dump` into the site's database as the site's own user, so
    /// grants confine whatever the dump holds: a statement reaching another
    /// database is refused by the server and the load fails with
    /// [`MysqlError::Refused`]. On any failure the database may hold part of
    /// the dump; the caller drops it.
    pub fn load(&self, site: &Credentials, dump: &mut dyn Read) -> Result<(), MysqlError> {
        let what = format!("loading into database {}", site.database);
        let mut args = vec![
            format!("--database={}", site.database),
            "--binary-mode".to_owned(),
            "--local-infile=0".to_owned(),
            "--default-character-set=utf8mb4".to_owned(),
            CLIENT_MAX_PACKET.to_owned(),
        ];
        if self.tools.sandbox {
            args.push("--sandbox".to_owned());
        }
        self.exec(
            &Login::Site(site),
            &what,
            &args,
            Io::Load(dump),
            &[&site.password],
        )
        .map_err(|e| match e {
            MysqlError::ReadDump { server, source, .. } => MysqlError::ReadDump {
                server,
                database: site.database.to_string(),
                source,
            },
            e => e,
        })
    }

    /// The databases and users on the server, in one query.
    pub fn observe(&self) -> Result<Observed, MysqlError> {
        let rows = self.query(
            "listing databases and users",
            &format!(
                "SELECT 'db', SCHEMA_NAME, '' FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME NOT IN ({SYSTEM_SCHEMAS})\n\
                 UNION ALL SELECT 'user', User, Host FROM mysql.user;\n"
            ),
        )?;
        parse_observed(rows).ok_or_else(|| {
            self.unexpected("listing databases and users", "a row without three columns")
        })
    }

    /// Refuses when `db` or `user` exists: creating must not adopt (and a
    /// failed create then drop) something hoist did not make.
    fn ensure_absent(&self, db: &DbName, user: &DbUser) -> Result<(), MysqlError> {
        let rows = self.query(
            &format!("checking database {db} and user {user}"),
            &format!(
                "SELECT 'db' FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'\n\
                 UNION ALL SELECT 'user' FROM mysql.user WHERE User = '{user}';\n"
            ),
        )?;
        let found = |k: &str| rows.iter().any(|r| r.first().is_some_and(|v| v == k));
        if found("db") {
            return Err(MysqlError::DatabaseExists {
                server: self.name.clone(),
                database: db.to_string(),
            });
        }
        if found("user") {
            return Err(MysqlError::UserExists {
                server: self.name.clone(),
                user: user.to_string(),
            });
        }
        Ok(())
    }

    /// `error`, or both errors when the undo failed too.
    fn undo(&self, error: MysqlError, undo: Result<(), MysqlError>) -> MysqlError {
        match undo {
            Ok(()) => error,
            Err(undo) => MysqlError::UndoFailed {
                error: Box::new(error),
                undo: Box::new(undo),
            },
        }
    }

    fn unexpected(&self, what: &str, detail: &str) -> MysqlError {
        MysqlError::Unexpected {
            server: self.name.clone(),
            what: what.to_owned(),
            detail: detail.to_owned(),
        }
    }

    /// Runs admin SQL and returns its rows (batch output, unescaped).
    fn query(&self, what: &str, sql: &str) -> Result<Vec<Vec<String>>, MysqlError> {
        let mut out = Vec::new();
        self.exec(
            &Login::Admin,
            what,
            &["--batch".into(), "--skip-column-names".into()],
            Io::Query {
                sql: sql.to_owned(),
                out: &mut out,
            },
            &[],
        )?;
        let text =
            String::from_utf8(out).map_err(|_| self.unexpected(what, "output is not UTF-8"))?;
        Ok(parse_batch(&text))
    }

    fn exec_dump(
        &self,
        what: &str,
        args: &[&str],
        db: &DbName,
        out: &mut dyn Write,
    ) -> Result<(), MysqlError> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        self.exec_program(
            &self.tools.dump,
            &Login::Admin,
            what,
            &args,
            Io::Dump(out),
            &[],
        )
        .map_err(|e| match e {
            MysqlError::WriteDump { server, source, .. } => MysqlError::WriteDump {
                server,
                database: db.to_string(),
                source,
            },
            e => e,
        })
    }

    fn exec(
        &self,
        login: &Login<'_>,
        what: &str,
        args: &[String],
        io: Io<'_>,
        secrets: &[&Secret],
    ) -> Result<(), MysqlError> {
        self.exec_program(&self.tools.client, login, what, args, io, secrets)
    }

    /// Runs one client program with its login in a private option file.
    fn exec_program(
        &self,
        program: &Path,
        login: &Login<'_>,
        what: &str,
        args: &[String],
        io: Io<'_>,
        secrets: &[&Secret],
    ) -> Result<(), MysqlError> {
        let spawn_err = |source| MysqlError::Spawn {
            server: self.name.clone(),
            program: program.display().to_string(),
            source,
        };
        let (user, password) = match login {
            Login::Admin => (self.admin_user.clone(), self.read_admin_password()?),
            Login::Site(c) => (c.user.to_string(), c.password.clone()),
        };
        let mut secrets: Vec<&Secret> = secrets.to_vec();
        secrets.push(&password);
        // 0700 directory, 0600 file; both removed when `dir` drops, which
        // is after the child has exited.
        let dir = tempfile::Builder::new()
            .prefix("hoist-mysql-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(spawn_err)?;
        let cnf = dir.path().join("client.cnf");
        fsutil::write_private_unsynced(
            &cnf,
            option_file(&self.endpoint, &user, &password).as_bytes(),
        )
        .map_err(spawn_err)?;
        let mut cmd = Command::new(program);
        cmd.args(command_args(&cnf, args));
        // Nothing inherited may supply or reveal a password.
        cmd.env_remove("MYSQL_PWD");
        if let AdminPassword::Env(var) = &self.admin_password {
            cmd.env_remove(var);
        }
        cmd.stdin(match io {
            Io::Dump(_) => Stdio::null(),
            _ => Stdio::piped(),
        })
        .stdout(match io {
            Io::Load(_) => Stdio::null(),
            _ => Stdio::piped(),
        })
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let stderr = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = e.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Keep the tail: the error is at the end.
                    if buf.len() > 2 * STDERR_KEEP {
                        buf.drain(..buf.len() - STDERR_KEEP);
                    }
                }
                buf
            })
        });
        let streamed = stream(&mut child, io);
        if streamed.is_err() {
            // Our side failed: stop the child rather than let it block.
            // It may have exited already, which is what we want anyway.
            if let Err(e) = child.kill() {
                tracing::debug!(error = %e, "client already gone");
            }
        }
        let status = child.wait().map_err(spawn_err)?;
        let stderr = stderr
            .and_then(|t| t.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let message = scrub(&summarize(&stderr), &secrets);
        match streamed {
            Err(Side::Input(source)) => {
                return Err(MysqlError::ReadDump {
                    server: self.name.clone(),
                    database: String::new(),
                    source,
                })
            }
            Err(Side::Output(source)) => {
                return Err(MysqlError::WriteDump {
                    server: self.name.clone(),
                    database: String::new(),
                    source,
                })
            }
            // The child stopped reading its input: its status says why.
            Err(Side::Child) | Ok(()) => {}
        }
        if status.success() {
            return Ok(());
        }
        let message = if message.is_empty() {
            format!("{} exited with {status}", program.display())
        } else {
            message
        };
        Err(classify(&self.name, what, &user, message))
    }

    fn read_admin_password(&self) -> Result<Secret, MysqlError> {
        let (from, raw) = match &self.admin_password {
            AdminPassword::File(p) => (
                format!("file {}", p.display()),
                std::fs::read_to_string(p).map_err(|e| e.to_string()),
            ),
            AdminPassword::Env(v) => (
                format!("environment variable {v}"),
                std::env::var(v).map_err(|e| e.to_string()),
            ),
        };
        raw.and_then(|s| admin_password_text(&s).map_err(str::to_owned))
            .map(Secret)
            .map_err(|reason| MysqlError::AdminPassword {
                server: self.name.clone(),
                from,
                reason,
            })
    }
}

/// Which side of a streamed child failed.
enum Side {
    /// Reading the caller's dump.
    Input(io::Error),
    /// Writing to the caller's writer.
    Output(io::Error),
    /// The child's pipe: it exited early, and its status and stderr say why.
    Child,
}

/// Moves the data of `io` between the caller and the child, 64 KiB at a
/// time, never holding more.
fn stream(child: &mut Child, io: Io<'_>) -> Result<(), Side> {
    let mut buf = vec![0u8; 64 * 1024];
    match io {
        Io::Query { sql, out } => {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // Fed from a thread so large output cannot deadlock the input.
            let feeder = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
            let mut stdout = child.stdout.take().expect("piped stdout");
            stdout.read_to_end(out).map_err(|_| Side::Child)?;
            match feeder.join() {
                Ok(r) => r.map_err(|_| Side::Child),
                Err(_) => Err(Side::Child),
            }
        }
        Io::Dump(out) => {
            let mut stdout = child.stdout.take().expect("piped stdout");
            loop {
                let n = stdout.read(&mut buf).map_err(|_| Side::Child)?;
                if n == 0 {
                    return out.flush().map_err(Side::Output);
                }
                out.write_all(&buf[..n]).map_err(Side::Output)?;
            }
        }
        Io::Load(input) => {
            // Dropped at the end: EOF for the client.
            let mut stdin = child.stdin.take().expect("piped stdin");
            loop {
                let n = match input.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Side::Input(e)),
                };
                if n == 0 {
                    return Ok(());
                }
                stdin.write_all(&buf[..n]).map_err(|_| Side::Child)?;
            }
        }
    }
}

/// The child's arguments: the option file first (the clients require it
/// there), then `args`. Holds no secret: the unit tests check it.
fn command_args(cnf: &Path, args: &[String]) -> Vec<OsString> {
    let mut v = Vec::with_capacity(args.len() + 1);
    let mut first = OsString::from("--defaults-file=");
    first.push(cnf);
    v.push(first);
    v.extend(args.iter().map(OsString::from));
    v
}

/// A `[client]` option file with the login and endpoint.
fn option_file(endpoint: &Endpoint, user: &str, password: &Secret) -> String {
    let mut s = format!(
        "[client]\nuser={}\npassword={}\n",
        option_value(user),
        option_value(password.expose())
    );
    match endpoint {
        Endpoint::Tcp { host, port } => s.push_str(&format!(
            "host={}\nport={port}\nprotocol=TCP\n",
            option_value(host)
        )),
        Endpoint::Socket(p) => s.push_str(&format!(
            "socket={}\nprotocol=SOCKET\n",
            option_value(&p.display().to_string())
        )),
    }
    s
}

/// An option-file value, double-quoted with `\` and `"` escaped, so `#`,
/// spaces and quotes survive.
fn option_value(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '\\' || c == '"' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The admin password from a file's or variable's text: one trailing
/// newline is dropped; no other line break or NUL can be written to an
/// option file.
fn admin_password_text(raw: &str) -> Result<String, &'static str> {
    let s = raw
        .strip_suffix("\r\n")
        .or_else(|| raw.strip_suffix('\n'))
        .unwrap_or(raw);
    if s.is_empty() {
        return Err("it is empty");
    }
    if s.contains(['\n', '\r', '\0']) {
        return Err("it holds a line break or NUL");
    }
    Ok(s.to_owned())
}

/// A SQL string literal for a value from the server: `'` and `\` escaped.
fn sql_string(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A quoted identifier for a name from the server: backticks doubled.
fn sql_ident(v: &str) -> String {
    format!("`{}`", v.replace('`', "``"))
}

/// The script creating a site's database and user. `CREATE USER` then
/// `GRANT`: `GRANT ... IDENTIFIED BY` is gone in MySQL 8.
fn create_sql(c: &Credentials, hosts: &[String]) -> String {
    let (db, user, pw) = (&c.database, &c.user, c.password.expose());
    let mut sql =
        format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n");
    for h in hosts {
        sql.push_str(&format!(
            "CREATE USER '{user}'@'{h}' IDENTIFIED BY '{pw}';\n\
             GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{h}';\n"
        ));
    }
    sql
}

/// One `RENAME TABLE` moving every table: atomic, and no row is copied.
fn rename_sql(from: &DbName, to: &DbName, tables: &[String]) -> String {
    let moves: Vec<String> = tables
        .iter()
        .map(|t| format!("`{from}`.{0} TO `{to}`.{0}", sql_ident(t)))
        .collect();
    format!(
        "SET SESSION lock_wait_timeout = 60;\nRENAME TABLE {};\n",
        moves.join(", ")
    )
}

/// Rows of `--batch` output: tab-separated, with `\t`, `\n`, `\0` and `\\`
/// escaped inside values.
fn parse_batch(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| line.split('\t').map(unescape_batch).collect())
        .collect()
}

fn unescape_batch(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn parse_observed(rows: Vec<Vec<String>>) -> Option<Observed> {
    let mut o = Observed::default();
    for row in rows {
        let [kind, name, host] = <[String; 3]>::try_from(row).ok()?;
        if kind == "db" {
            o.databases.push(name);
        } else {
            o.users.push((name, host));
        }
    }
    o.databases.sort();
    o.users.sort();
    Some(o)
}

/// The longest line of a client's message kept.
const LINE_KEEP: usize = 300;

/// The part of a client's stderr worth reporting: its error lines only when
/// it has any (the client also echoes the failing statement, which may hold
/// a site's data), else its last lines; each line shortened.
fn summarize(stderr: &str) -> String {
    let is_error = |l: &&str| {
        l.starts_with("ERROR") || l.contains("Got error") || l.contains("Couldn't execute")
    };
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines.iter().copied().filter(is_error).collect();
    let kept = if errors.is_empty() {
        &lines[lines.len().saturating_sub(5)..]
    } else {
        &errors[..]
    };
    kept.iter()
        .map(|l| match l.char_indices().nth(LINE_KEEP) {
            Some((at, _)) => format!("{}...", &l[..at]),
            None => (*l).to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `text` with every secret replaced by `***`, trimmed.
fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut s = text.trim().to_owned();
    for secret in secrets {
        if !secret.expose().is_empty() {
            s = s.replace(secret.expose(), "***");
        }
    }
    s
}

/// The MySQL error number in a client's message (`ERROR 1045 (28000)...`).
fn error_code(message: &str) -> Option<u32> {
    let at = message.find("ERROR ")?;
    let digits: String = message[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A typed error from a failed client's message.
fn classify(server: &str, what: &str, user: &str, message: String) -> MysqlError {
    let server = server.to_owned();
    let what = what.to_owned();
    // mysqldump reports "Got error: 1045: ..." rather than "ERROR 1045".
    let code = error_code(&message).or_else(|| {
        let at = message.find("Got error: ")?;
        message[at + 11..]
            .split(':')
            .next()
            .and_then(|d| d.trim().parse().ok())
    });
    // 1045 is also a statement's missing global privilege (FILE, CREATE
    // USER); only a failed login has no "at line N".
    let login = !message.contains(") at line ");
    match code {
        Some(1045) if login => MysqlError::AccessDenied {
            server,
            user: user.to_owned(),
            message,
        },
        // Can't connect (socket, TCP), unknown host.
        Some(2002 | 2003 | 2005) => MysqlError::Unreachable { server, message },
        // Server gone away, lost connection.
        Some(2006 | 2013) => MysqlError::ConnectionLost {
            server,
            what,
            message,
        },
        // No privilege for a database, a command, an operation, a column.
        Some(1044 | 1045 | 1142 | 1143 | 1227 | 1370) => MysqlError::Refused {
            server,
            what,
            message,
        },
        _ => MysqlError::Failed {
            server,
            what,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            database: DbName::new("site_a").unwrap(),
            user: DbUser::new("site_a").unwrap(),
            password: Secret::new("s3cretPW"),
        }
    }

    #[test]
    fn names_are_checked_before_any_sql() {
        assert!(DbName::new("shop_example_com").is_ok());
        assert!(DbName::new(&"a".repeat(64)).is_ok());
        assert!(DbName::new(&"a".repeat(65)).is_err());
        assert!(DbUser::new(&"a".repeat(32)).is_ok());
        let e = DbUser::new(&"a".repeat(33)).unwrap_err();
        assert!(e.reason.contains("32"), "{e}");
        for bad in ["", "Shop", "a-b", "a`b", "a'b", "a b", "é", "a;drop"] {
            assert!(DbName::new(bad).is_err(), "{bad:?}");
            assert!(DbUser::new(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "10.0.%",
            "%",
            "web-1.example.org",
        ] {
            assert!(check_grant_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a'b", "a b", "x\ny", "a`"] {
            assert!(check_grant_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = creds();
        assert!(!format!("{c:?}").contains("s3cretPW"));
        let p = Secret::random();
        assert_eq!(p.expose().len(), 32);
        assert!(p.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(p, Secret::random());
    }

    #[test]
    fn command_lines_hold_no_password() {
        let c = creds();
        let cnf = Path::new("/tmp/hoist-mysql-x/client.cnf");
        let args = command_args(cnf, &["--database=site_a".into(), "--binary-mode".into()]);
        assert_eq!(args[0], "--defaults-file=/tmp/hoist-mysql-x/client.cnf");
        for a in &args {
            assert!(!a.to_string_lossy().contains(c.password.expose()));
        }
        // The password is in the option file only.
        let f = option_file(
            &Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 3306,
            },
            "site_a",
            &c.password,
        );
        assert_eq!(
            f,
            "[client]\nuser=\"site_a\"\npassword=\"s3cretPW\"\nhost=\"127.0.0.1\"\nport=3306\nprotocol=TCP\n"
        );
    }

    #[test]
    fn option_values_are_quoted() {
        assert_eq!(option_value(r#"a"b\c #d"#), r#""a\"b\\c #d""#);
        assert_eq!(admin_password_text("pw\n").unwrap(), "pw");
        assert_eq!(admin_password_text("pw\r\n").unwrap(), "pw");
        assert!(admin_password_text("\n").is_err());
        assert!(admin_password_text("a\nb").is_err());
    }

    #[test]
    fn create_script_creates_then_grants_per_host() {
        let sql = create_sql(&creds(), &["localhost".into(), "127.0.0.1".into()]);
        assert!(sql.starts_with("CREATE DATABASE `site_a`"));
        assert!(
            !sql.contains("GRANT ALL PRIVILEGES ON `site_a`.* TO 'site_a'@'localhost' IDENTIFIED")
        );
        assert_eq!(sql.matches("CREATE USER").count(), 2);
        assert!(sql.contains("GRANT ALL PRIVILEGES ON `site_a`.* TO 'site_a'@'127.0.0.1';"));
    }

    #[test]
    fn rename_is_one_statement_with_quoted_tables() {
        let sql = rename_sql(
            &DbName::new("a").unwrap(),
            &DbName::new("b").unwrap(),
            &["t1".into(), "odd`name".into()],
        );
        assert!(
            sql.ends_with(
                "RENAME TABLE `a`.`t1` TO `b`.`t1`, `a`.`odd``name` TO `b`.`odd``name`;\n"
            ),
            "{sql}"
        );
    }

    #[test]
    fn batch_output_is_unescaped() {
        let rows = parse_batch("db\tx\\ty\t\nuser\tu\\\\1\tlocalhost\n");
        assert_eq!(rows[0], ["db", "x\ty", ""]);
        assert_eq!(rows[1], ["user", "u\\1", "localhost"]);
        let o = parse_observed(rows).unwrap();
        assert_eq!(o.databases, ["x\ty"]);
        assert_eq!(o.users, [("u\\1".to_owned(), "localhost".to_owned())]);
        assert!(parse_observed(vec![vec!["db".into()]]).is_none());
    }

    #[test]
    fn messages_keep_the_error_not_the_echoed_statement() {
        let stderr = "--------------\nINSERT INTO t VALUES ('private row')\n--------------\n\n\
                      ERROR 2013 (HY000) at line 9: Lost connection\n";
        assert_eq!(
            summarize(stderr),
            "ERROR 2013 (HY000) at line 9: Lost connection"
        );
        let long = format!("ERROR 1064 (42000) at line 1: near '{}'", "x".repeat(1000));
        assert_eq!(summarize(&long).len(), LINE_KEEP + 3);
        assert_eq!(summarize("a\nb\nc\nd\ne\nf\ng\n"), "c; d; e; f; g");
        assert_eq!(
            summarize("mariadb-dump: Got error: 1049: \"Unknown database 'x'\" when selecting the database\n"),
            "mariadb-dump: Got error: 1049: \"Unknown database 'x'\" when selecting the database"
        );
    }

    #[test]
    fn errors_are_typed_and_scrubbed() {
        let pw = Secret::new("hunter2");
        let msg = scrub("ERROR 1064 (42000) at line 2: near 'hunter2'\n", &[&pw]);
        assert!(!msg.contains("hunter2"));
        let e = classify("main", "creating", "root", msg);
        assert!(matches!(e, MysqlError::Failed { .. }));
        assert!(
            e.to_string()
                .starts_with("database server main: creating failed"),
            "{e}"
        );
        let e = classify(
            "main",
            "connecting",
            "root",
            "ERROR 1045 (28000): Access denied for user 'root'@'localhost'".into(),
        );
        assert!(matches!(e, MysqlError::AccessDenied { .. }), "{e}");
        let e = classify(
            "main",
            "loading",
            "u",
            "ERROR 1045 (28000) at line 2: Access denied for user 'u'@'h' (using password: YES)"
                .into(),
        );
        assert!(matches!(e, MysqlError::Refused { .. }), "{e}");
        let e = classify(
            "main",
            "x",
            "u",
            "ERROR 2013 (HY000) at line 9: Lost connection".into(),
        );
        assert!(matches!(e, MysqlError::ConnectionLost { .. }), "{e}");
        let e = classify(
            "main",
            "x",
            "u",
            "ERROR 1044 (42000) at line 1: Access denied for user 'u'@'%' to database 'evil'"
                .into(),
        );
        assert!(matches!(e, MysqlError::Refused { .. }), "{e}");
        let e = classify(
            "main",
            "x",
            "u",
            "mysqldump: Got error: 2002: \"Can't connect\"".into(),
        );
        assert!(matches!(e, MysqlError::Unreachable { .. }), "{e}");
        assert_eq!(sql_string("a'b\\c"), "'a\\'b\\\\c'");
    }
}
