//! Runs SQL that comes from outside hoist's code (a package's
//! `install.sql` or `updates/N.sql`, a backup's dump) statement by
//! statement as it is read, confined to the site's database
//! ([`super::confine`]), inside a transaction the caller owns.
//!
//! Streaming keeps a restore linear and its memory flat whatever the dump's
//! size: each statement is split off the input ([`super::split`]), prepared
//! on its own and run, and only the statement being read is held.

use std::io::{ErrorKind, Read};

use rusqlite::Connection;

use super::confine::{excerpt, refuse_statement, Confined};
use super::split::{first_keyword, Splitter};
use super::DbError;

/// What the SQL is, which decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A package's script: no transaction control at all.
    Package,
    /// A dump: its own `PRAGMA foreign_keys=OFF;` and `BEGIN TRANSACTION;`
    /// before its first statement and its `COMMIT;` as its last (what
    /// `sqlite3 .dump` and [`super::SiteDb::dump`] write) are accepted and
    /// skipped, as the caller's transaction stands in for them.
    Dump,
}

/// Where a dump is in its `BEGIN TRANSACTION; .. COMMIT;` frame.
#[derive(Default)]
struct Frame {
    began: bool,
    ended: bool,
    data: bool,
}

impl Frame {
    /// Whether `stmt` is one of the frame's own statements (then skipped),
    /// or `Err` when it is out of place.
    fn skip(&mut self, stmt: &str) -> Result<bool, String> {
        if self.ended {
            return Err("a statement after the dump's COMMIT".into());
        }
        if stmt.len() <= 32 {
            let norm: String = stmt
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            let head = !self.began && !self.data;
            match norm.as_str() {
                "PRAGMAFOREIGN_KEYS=OFF;" if head => return Ok(true),
                "BEGINTRANSACTION;" | "BEGIN;" if head => {
                    self.began = true;
                    return Ok(true);
                }
                "COMMIT;" | "END;" | "COMMITTRANSACTION;" | "ENDTRANSACTION;" if self.began => {
                    self.ended = true;
                    return Ok(true);
                }
                _ => {}
            }
        }
        self.data = true;
        Ok(false)
    }
}

/// Runs every statement read from `input` (named `file` in errors) on
/// `conn`, which the caller has in a transaction. Stops at the first
/// statement refused or failed; the caller's rollback then undoes the rest.
pub fn run(
    conn: &Connection,
    db: &str,
    file: &str,
    kind: Kind,
    input: &mut dyn Read,
) -> Result<(), DbError> {
    let guard = Confined::new(conn);
    let fail = |line: u64, msg: String, stmt: &str| DbError::Script {
        db: db.into(),
        file: file.into(),
        line,
        msg,
        statement: excerpt(stmt),
    };
    let mut frame = Frame::default();
    let mut exec = |bytes: &[u8], line: u64| -> Result<(), DbError> {
        let stmt = std::str::from_utf8(bytes).map_err(|_| {
            fail(
                line,
                "the statement is not valid UTF-8".into(),
                &String::from_utf8_lossy(bytes),
            )
        })?;
        if stmt.contains('\0') {
            return Err(fail(line, "the statement holds a NUL byte".into(), stmt));
        }
        if kind == Kind::Dump && frame.skip(stmt).map_err(|m| fail(line, m, stmt))? {
            return Ok(());
        }
        refuse_statement(&first_keyword(stmt))
            .map_err(|m| fail(line, format!("refused: {m}"), stmt))?;
        let sqlite = |e: rusqlite::Error| match guard.take_denied() {
            Some(why) => fail(line, format!("refused: {why}"), stmt),
            None => fail(line, e.to_string(), stmt),
        };
        let mut prepared = conn.prepare(stmt).map_err(sqlite)?;
        let mut rows = prepared.raw_query();
        while rows.next().map_err(sqlite)?.is_some() {}
        Ok(())
    };
    let mut splitter = Splitter::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DbError::Read {
                    db: db.into(),
                    file: file.into(),
                    source,
                })
            }
        };
        splitter.feed(&buf[..n], &mut exec)?;
    }
    splitter.finish().map_err(|inc| {
        fail(
            inc.line,
            "the input ends inside this statement (a missing `;`, quote or end of comment)".into(),
            &inc.head,
        )
    })?;
    if frame.began && !frame.ended {
        return Err(DbError::Script {
            db: db.into(),
            file: file.into(),
            line: 0,
            msg: "the dump ends without its COMMIT (cut short?)".into(),
            statement: String::new(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(sql: &str, kind: Kind) -> Result<Connection, String> {
        let mut conn = Connection::open_in_memory().unwrap();
        let tx = conn.transaction().unwrap();
        run(&tx, "t", "x.sql", kind, &mut sql.as_bytes()).map_err(|e| e.to_string())?;
        tx.commit().unwrap();
        Ok(conn)
    }

    #[test]
    fn a_dump_frame_is_accepted_only_where_a_dump_puts_it() {
        let c = load(
            "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(a);\nINSERT INTO t VALUES(1);\nCOMMIT;\n",
            Kind::Dump,
        )
        .unwrap();
        let n: i64 = c.query_row("SELECT a FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        let e = load(
            "BEGIN TRANSACTION;\nCREATE TABLE t(a);\nCOMMIT;\nDROP TABLE t;\n",
            Kind::Dump,
        )
        .unwrap_err();
        assert!(
            e.contains("x.sql, line 4") && e.contains("after the dump's COMMIT"),
            "{e}"
        );
        let e = load("BEGIN TRANSACTION;\nCREATE TABLE t(a);\n", Kind::Dump).unwrap_err();
        assert!(e.contains("without its COMMIT"), "{e}");
        let e = load("CREATE TABLE t(a);\nCOMMIT;\n", Kind::Dump).unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("transaction control"),
            "{e}"
        );
        let e = load("CREATE TABLE t(a);\nPRAGMA foreign_keys=OFF;\n", Kind::Dump).unwrap_err();
        assert!(e.contains("PRAGMA foreign_keys"), "{e}");
        // A package's script gets no frame at all.
        let e = load(
            "BEGIN TRANSACTION;\nCREATE TABLE t(a);\nCOMMIT;\n",
            Kind::Package,
        )
        .unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("transaction control"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_line_and_the_statement() {
        let e = load(
            "CREATE TABLE t(a);\n\nINSERT INTO nope VALUES(1);",
            Kind::Package,
        )
        .unwrap_err();
        assert!(
            e.contains("x.sql, line 3: no such table: nope: INSERT INTO nope"),
            "{e}"
        );
        let e = load(
            "CREATE TABLE t(a);\nVACUUM INTO '/tmp/x.db';",
            Kind::Package,
        )
        .unwrap_err();
        assert!(e.contains("line 2: refused: VACUUM"), "{e}");
        let e = load("CREATE TABLE t(a);\nINSERT INTO t VALUES('x", Kind::Package).unwrap_err();
        assert!(e.contains("line 2: the input ends inside"), "{e}");
        let e = load("SELECT 1;\nSELECT 'a\0b';", Kind::Package).unwrap_err();
        assert!(e.contains("NUL"), "{e}");
    }

    #[test]
    fn a_refused_statement_leaves_nothing_behind() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE keep(a); INSERT INTO keep VALUES(1);")
            .unwrap();
        let tx = conn.transaction().unwrap();
        let r = run(
            &tx,
            "t",
            "x.sql",
            Kind::Package,
            &mut "DELETE FROM keep;\nCOMMIT;\n".as_bytes(),
        );
        assert!(r.is_err());
        drop(tx);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM keep", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn loading_is_linear_in_a_long_multiline_value() {
        // 200k lines in one string: line-by-line completeness checks would
        // rescan it 200k times.
        let big = "x;\n".repeat(200_000);
        let sql = format!("CREATE TABLE t(a);\nINSERT INTO t VALUES('{big}');\n");
        let t = std::time::Instant::now();
        let c = load(&sql, Kind::Package).unwrap();
        let n: i64 = c
            .query_row("SELECT length(a) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, big.len() as i64);
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
    }
}
