//! The text the driver hands to the clients and reads back: option files,
//! command lines, SQL scripts and batch output. Pure, unit-tested without a
//! server.

use std::ffi::OsString;
use std::path::Path;

use super::{Credentials, DbName, Endpoint, Observed, Secret};

/// The child's arguments: the option file first (the clients require it
/// there), then `args`. Holds no secret: the unit tests check it.
pub(super) fn command_args(cnf: &Path, args: &[String]) -> Vec<OsString> {
    let mut v = Vec::with_capacity(args.len() + 1);
    let mut first = OsString::from("--defaults-file=");
    first.push(cnf);
    v.push(first);
    v.extend(args.iter().map(OsString::from));
    v
}

/// A `[client]` option file with the login and endpoint.
pub(super) fn option_file(endpoint: &Endpoint, user: &str, password: &Secret) -> String {
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
pub(super) fn option_value(v: &str) -> String {
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
pub(super) fn admin_password_text(raw: &str) -> Result<String, &'static str> {
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
pub(crate) fn sql_string(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A quoted identifier for a name from the server: backticks doubled.
pub(crate) fn sql_ident(v: &str) -> String {
    format!("`{}`", v.replace('`', "``"))
}

/// The script creating a site's database and user. `CREATE USER` then
/// `GRANT`: `GRANT ... IDENTIFIED BY` is gone in MySQL 8.
pub(super) fn create_sql(c: &Credentials, hosts: &[String]) -> String {
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
pub(super) fn rename_sql(from: &DbName, to: &DbName, tables: &[String]) -> String {
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
pub(super) fn parse_batch(text: &str) -> Vec<Vec<String>> {
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

pub(super) fn parse_observed(rows: Vec<Vec<String>>) -> Option<Observed> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::names::test_creds;

    #[test]
    fn command_lines_hold_no_password() {
        let c = test_creds();
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
        let sql = create_sql(&test_creds(), &["localhost".into(), "127.0.0.1".into()]);
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
    fn values_from_the_server_are_quoted() {
        assert_eq!(sql_string("a'b\\c"), "'a\\'b\\\\c'");
        assert_eq!(sql_ident("a`b"), "`a``b`");
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
}
