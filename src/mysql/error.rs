//! The driver's errors, and how a client's failure becomes one: the error
//! lines of its message, scrubbed of passwords, typed by MySQL error number.

use std::io;

use super::Secret;
use crate::render::REDACTED;

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

/// The longest line of a client's message kept.
pub(super) const LINE_KEEP: usize = 300;

/// The part of a client's stderr worth reporting: its error lines only when
/// it has any (the client also echoes the failing statement, which may hold
/// a site's data), else its last lines; each line shortened.
pub(super) fn summarize(stderr: &str) -> String {
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

/// `text` with every secret replaced by [`REDACTED`], trimmed.
pub(super) fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut s = text.trim().to_owned();
    for secret in secrets {
        if !secret.expose().is_empty() {
            s = s.replace(secret.expose(), REDACTED);
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
pub(super) fn classify(server: &str, what: &str, user: &str, message: String) -> MysqlError {
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
        let pw = Secret::new("hunter2".into());
        let msg = scrub("ERROR 1064 (42000) at line 2: near 'hunter2'\n", &[&pw]);
        assert!(!msg.contains("hunter2"));
        let e = classify("main", "creating", "root", msg);
        assert!(matches!(e, MysqlError::Failed { .. }));
        assert!(
            e.to_string()
                .starts_with("database server main: creating failed"),
            "{e}"
        );
        // Each message and the variant it must become.
        type Want = fn(&MysqlError) -> bool;
        let cases: [(&str, Want); 5] = [
            (
                "ERROR 1045 (28000): Access denied for user 'root'@'localhost'",
                |e| matches!(e, MysqlError::AccessDenied { .. }),
            ),
            (
                "ERROR 1045 (28000) at line 2: Access denied for user 'u'@'h' (using password: YES)",
                |e| matches!(e, MysqlError::Refused { .. }),
            ),
            (
                "ERROR 2013 (HY000) at line 9: Lost connection",
                |e| matches!(e, MysqlError::ConnectionLost { .. }),
            ),
            (
                "ERROR 1044 (42000) at line 1: Access denied for user 'u'@'%' to database 'evil'",
                |e| matches!(e, MysqlError::Refused { .. }),
            ),
            (
                "mysqldump: Got error: 2002: \"Can't connect\"",
                |e| matches!(e, MysqlError::Unreachable { .. }),
            ),
        ];
        for (message, want) in cases {
            let e = classify("main", "x", "u", message.to_owned());
            assert!(want(&e), "{message} -> {e:?}");
        }
    }
}
