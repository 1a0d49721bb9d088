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
//! The task pipeline reaches it through the database seam
//! ([`crate::driver::MysqlServer`]).

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::fsutil;

mod error;
mod names;
pub(crate) mod sql;

pub use crate::render::Secret;
use error::{classify, scrub, summarize};
pub use error::{MysqlError, NameError};
use names::check_grant_host;
pub use names::{Credentials, DbName, DbUser};
use sql::{
    admin_password_text, command_args, create_sql, option_file, parse_batch, parse_observed,
    rename_sql, sql_string,
};

/// How long the client waits for a connection.
const CONNECT_TIMEOUT: &str = "--connect-timeout=30";

/// The most of a child's stderr kept for an error message.
const STDERR_KEEP: usize = 8 * 1024;

/// Largest statement the loading client accepts; the server's own
/// `max_allowed_packet` still applies.
const CLIENT_MAX_PACKET: &str = "--max-allowed-packet=1073741824";

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
    Dump {
        db: &'a DbName,
        out: &'a mut dyn Write,
    },
    /// Stdin streamed from the reader; stdout discarded.
    Load {
        db: &'a DbName,
        input: &'a mut dyn Read,
    },
}

impl Io<'_> {
    /// The database streamed, for errors of the caller's reader or writer.
    fn database(&self) -> String {
        match self {
            Io::Query { .. } => String::new(),
            Io::Dump { db, .. } | Io::Load { db, .. } => db.to_string(),
        }
    }
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
        self.check_free(db, user)?;
        let creds = Credentials {
            database: db.clone(),
            user: user.clone(),
            password: crate::db::generate_password(),
        };
        let sql = create_sql(&creds, &self.grant_hosts);
        let what = format!("creating database {db} and user {user}");
        match self.script(&what, sql, &[&creds.password]) {
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
        self.script(&what, sql, &[])
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
        match self.script(&what, rename_sql(from, to, &tables), &[]) {
            Ok(()) => Ok(Renamed::Moved(creds)),
            // RENAME TABLE is atomic: on failure every table is still in
            // `from`, and only the new database and user need to go.
            Err(error) => Err(self.undo(error, self.drop(to, to_user))),
        }
    }

    /// Undoes [`Mysql::rename`]: every table of `to` moves back into `from`
    /// with one atomic `RENAME TABLE`. A `to` without tables (or absent) is
    /// no error, so an undo repeated after a crash is harmless.
    pub fn move_back(&self, from: &DbName, to: &DbName) -> Result<(), MysqlError> {
        let what = format!("moving the tables of {to} back to {from}");
        let rows = self.query(
            &what,
            &format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{to}' \
                 AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED');\n"
            ),
        )?;
        let tables: Vec<String> = rows
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .collect();
        if tables.is_empty() {
            return Ok(());
        }
        self.script(&what, rename_sql(to, from, &tables), &[])
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
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let io = Io::Dump { db, out };
        self.exec(&self.tools.dump, &Login::Admin, &what, &args, io, &[])
    }

    /// Streams `dump` into the site's database as the site's own user, so
    /// grants confine whatever the dump holds: a statement reaching another
    /// database is refused by the server and the load fails with
    /// [`MysqlError::Refused`]. On any failure the database may hold part of
    /// the dump; the caller drops it.
    ///
    /// Known limit: triggers, views and routines carry their definer, and a
    /// site user may not create them for another user, so a dump holding
    /// them loads only under the user that made it (the load is refused,
    /// never done without them).
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
        let io = Io::Load {
            db: &site.database,
            input: dump,
        };
        let login = Login::Site(site);
        self.exec(
            &self.tools.client,
            &login,
            &what,
            &args,
            io,
            &[&site.password],
        )
    }

    /// Whether database `db` exists.
    pub fn exists(&self, db: &DbName) -> Result<bool, MysqlError> {
        let rows = self.query(
            &format!("looking for database {db}"),
            &format!("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}';\n"),
        )?;
        Ok(!rows.is_empty())
    }

    /// Runs `sql` in the site's database as the site's own user (so grants
    /// confine it) and returns its rows, batch output unescaped.
    pub fn site_query(
        &self,
        site: &Credentials,
        sql: &str,
    ) -> Result<Vec<Vec<String>>, MysqlError> {
        let what = format!("querying database {}", site.database);
        let mut out = Vec::new();
        let mut args = vec![
            format!("--database={}", site.database),
            "--batch".to_owned(),
            "--skip-column-names".to_owned(),
            "--binary-mode".to_owned(),
            "--local-infile=0".to_owned(),
            "--default-character-set=utf8mb4".to_owned(),
        ];
        if self.tools.sandbox {
            args.push("--sandbox".to_owned());
        }
        self.exec(
            &self.tools.client,
            &Login::Site(site),
            &what,
            &args,
            Io::Query {
                sql: sql.to_owned(),
                out: &mut out,
            },
            &[&site.password],
        )?;
        let text =
            String::from_utf8(out).map_err(|_| self.unexpected(&what, "output is not UTF-8"))?;
        Ok(parse_batch(&text))
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

    /// Runs admin SQL (one client, one connection, however many
    /// statements) and returns its rows: for reads the driver composes,
    /// such as a fleet's observation.
    pub(crate) fn admin_rows(&self, what: &str, sql: &str) -> Result<Vec<Vec<String>>, MysqlError> {
        self.query(what, sql)
    }

    /// Refuses when `db` or `user` exists: creating must not adopt (and a
    /// failed create then drop) something hoist did not make.
    pub fn check_free(&self, db: &DbName, user: &DbUser) -> Result<(), MysqlError> {
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

    /// Runs an admin script whose output does not matter; `secrets` are
    /// scrubbed from any error.
    fn script(&self, what: &str, sql: String, secrets: &[&Secret]) -> Result<(), MysqlError> {
        let out = &mut Vec::new();
        self.exec(
            &self.tools.client,
            &Login::Admin,
            what,
            &[],
            Io::Query { sql, out },
            secrets,
        )
    }

    /// Runs admin SQL and returns its rows (batch output, unescaped).
    fn query(&self, what: &str, sql: &str) -> Result<Vec<Vec<String>>, MysqlError> {
        let mut out = Vec::new();
        self.exec(
            &self.tools.client,
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

    /// Runs one client program with its login in a private option file.
    fn exec(
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
        if program == self.tools.client {
            // A dead host fails in seconds, not after TCP's minutes.
            // (mariadb-dump has no such option.)
            cmd.arg(CONNECT_TIMEOUT);
        }
        // Nothing inherited may supply or reveal a password.
        cmd.env_remove("MYSQL_PWD");
        if let AdminPassword::Env(var) = &self.admin_password {
            cmd.env_remove(var);
        }
        cmd.stdin(match io {
            Io::Dump { .. } => Stdio::null(),
            _ => Stdio::piped(),
        })
        .stdout(match io {
            Io::Load { .. } => Stdio::null(),
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
        let database = io.database();
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
                    database,
                    source,
                })
            }
            Err(Side::Output(source)) => {
                return Err(MysqlError::WriteDump {
                    server: self.name.clone(),
                    database,
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
            .map(Secret::new)
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
        Io::Dump { out, .. } => {
            let mut stdout = child.stdout.take().expect("piped stdout");
            let mut first = true;
            loop {
                let n = stdout.read(&mut buf).map_err(|_| Side::Child)?;
                if n == 0 {
                    return out.flush().map_err(Side::Output);
                }
                out.write_all(&buf[..n]).map_err(Side::Output)?;
                if std::mem::take(&mut first) {
                    // The fault tests kill the server here, mid-dump.
                    crate::failpoint::hold("mysql-dump");
                }
            }
        }
        Io::Load { input, .. } => {
            // Dropped at the end: EOF for the client.
            let mut stdin = child.stdin.take().expect("piped stdin");
            let mut first = true;
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
                if std::mem::take(&mut first) {
                    // The fault tests kill the server here, mid-load.
                    crate::failpoint::hold("mysql-load");
                }
            }
        }
    }
}
