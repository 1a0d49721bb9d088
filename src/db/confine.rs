//! What SQL from a package or a dump may do: work on the site's own
//! database and nothing else. SQLite's authorizer sees every action a
//! statement would take as it is prepared; [`verdict`] allows the ones that
//! stay inside the `main` database and refuses the rest: `ATTACH` (another
//! site's file), transaction control (hoist owns the one transaction a
//! script runs in), `PRAGMA`s beyond a few harmless ones, temporary objects
//! (they would outlive the script on hoist's own connection and could shadow
//! its tables), and functions that reach the file system or load code.
//! `VACUUM` has no authorizer action: [`refuse_statement`] refuses it by
//! its keyword.

use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::Connection;

/// PRAGMAs a script may run: they read the schema or check integrity and
/// change nothing outside the database.
const SAFE_PRAGMAS: &[&str] = &[
    "application_id",
    "defer_foreign_keys",
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
];

/// Functions no script may call: they reach the file system or load code
/// (the last three exist only in the `sqlite3` shell, but a build may add
/// them).
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "fts3_tokenizer",
    "readfile",
    "writefile",
    "edit",
];

/// Whether an action of a statement from a package or a dump is allowed;
/// `Err` says what is not.
pub fn verdict(action: AuthAction<'_>, database: Option<&str>) -> Result<(), String> {
    use AuthAction as A;
    // ALTER TABLE's own nested statements look through the (empty: temporary
    // objects are refused) temp schema for triggers to fix.
    let temp_schema = |t: &str| t == "sqlite_temp_master" || t == "sqlite_temp_schema";
    let schema_fixup = database == Some("temp")
        && matches!(action, A::Read { table_name, .. } | A::Update { table_name, .. } if temp_schema(table_name));
    if let Some(db) = database.filter(|d| *d != "main" && !schema_fixup) {
        return Err(format!(
            "it uses database {db:?}: only the site's own database may be used"
        ));
    }
    match action {
        A::CreateIndex { .. }
        | A::CreateTable { .. }
        | A::CreateTrigger { .. }
        | A::CreateView { .. }
        | A::CreateVtable { .. }
        | A::Delete { .. }
        | A::DropIndex { .. }
        | A::DropTable { .. }
        | A::DropTrigger { .. }
        | A::DropView { .. }
        | A::DropVtable { .. }
        | A::Insert { .. }
        | A::Read { .. }
        | A::Select
        | A::Update { .. }
        | A::AlterTable { .. }
        | A::Reindex { .. }
        | A::Analyze { .. }
        | A::Recursive => Ok(()),
        A::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                Err(format!("function {function_name}() is not allowed"))
            } else {
                Ok(())
            }
        }
        A::Pragma { pragma_name, .. } => {
            if SAFE_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name))
            {
                Ok(())
            } else {
                Err(format!("PRAGMA {pragma_name} is not allowed"))
            }
        }
        A::Attach { filename } => Err(format!(
            "ATTACH of {filename:?} is not allowed: only the site's own database may be used"
        )),
        A::Detach { .. } => Err("DETACH is not allowed".into()),
        A::Transaction { .. } | A::Savepoint { .. } => Err(
            "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT) is not allowed: \
             hoist runs the whole script in one transaction"
                .into(),
        ),
        A::CreateTempIndex { .. }
        | A::CreateTempTable { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. }
        | A::DropTempIndex { .. }
        | A::DropTempTable { .. }
        | A::DropTempTrigger { .. }
        | A::DropTempView { .. } => {
            Err("temporary tables, triggers and views are not allowed".into())
        }
        other => Err(format!("{other:?} is not allowed")),
    }
}

/// Refuses what the authorizer never sees: `VACUUM` (which can write a copy
/// of the database anywhere with `VACUUM INTO`).
pub fn refuse_statement(first_keyword: &str) -> Result<(), String> {
    if first_keyword == "VACUUM" {
        return Err("VACUUM is not allowed".into());
    }
    Ok(())
}

/// The start of a statement for an error message: at most 200 characters,
/// on one line.
pub fn excerpt(stmt: &str) -> String {
    const MAX: usize = 200;
    let one: String = stmt.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &one[..i]),
        None => one,
    }
}

/// The authorizer installed on a connection while it runs untrusted SQL;
/// dropping it removes the authorizer (hoist's own statements are not
/// confined).
pub struct Confined<'c> {
    conn: &'c Connection,
    denied: Arc<Mutex<Option<String>>>,
}

impl<'c> Confined<'c> {
    /// Confines `conn` until the guard is dropped.
    pub fn new(conn: &'c Connection) -> Self {
        let denied = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&denied);
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            match verdict(ctx.action, ctx.database_name) {
                Ok(()) => Authorization::Allow,
                Err(why) => {
                    if let Ok(mut s) = slot.lock() {
                        s.get_or_insert(why);
                    }
                    Authorization::Deny
                }
            }
        }));
        Confined { conn, denied }
    }

    /// The first refusal since the last call, if any.
    pub fn take_denied(&self) -> Option<String> {
        self.denied.lock().ok().and_then(|mut s| s.take())
    }
}

impl Drop for Confined<'_> {
    fn drop(&mut self) {
        self.conn
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_sql(conn: &Connection, sql: &str) -> Result<(), String> {
        let c = Confined::new(conn);
        let r = conn.execute_batch(sql).map_err(|e| e.to_string());
        match (r, c.take_denied()) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(why)) => Err(why),
            (Err(e), None) => Err(format!("not refused, failed: {e}")),
        }
    }

    #[test]
    fn ordinary_schema_and_data_work_is_allowed() {
        let conn = Connection::open_in_memory().unwrap();
        try_sql(
            &conn,
            "CREATE TABLE t (a INTEGER PRIMARY KEY AUTOINCREMENT, b TEXT);
             CREATE INDEX t_b ON t(b);
             CREATE VIEW v AS SELECT * FROM t;
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET b = upper(b) WHERE a = new.a; END;
             INSERT INTO t (b) VALUES ('x'), ('y');
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) INSERT INTO t (b) SELECT i FROM n;
             UPDATE t SET b = 'z' WHERE a = 1;
             DELETE FROM t WHERE a = 2;
             ALTER TABLE t ADD COLUMN c;
             ALTER TABLE t RENAME TO t2;
             PRAGMA table_info(t2);
             SELECT * FROM pragma_table_info('t2');
             PRAGMA user_version = 3;
             CREATE VIRTUAL TABLE f USING fts5(body);
             DELETE FROM sqlite_sequence;
             DROP VIEW v; DROP TABLE t2; ANALYZE; REINDEX;",
        )
        .unwrap();
    }

    #[test]
    fn reaching_outside_the_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.sqlite");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE x (a); INSERT INTO x VALUES (1);")
            .unwrap();
        let conn = Connection::open(dir.path().join("mine.sqlite")).unwrap();
        conn.execute_batch("CREATE TABLE t (a);").unwrap();
        let refused = [
            (format!("ATTACH '{}' AS o;", other.display()), "ATTACH"),
            ("DETACH o;".into(), "DETACH"),
            ("BEGIN;".into(), "transaction"),
            ("COMMIT;".into(), "transaction"),
            ("SAVEPOINT s;".into(), "transaction"),
            ("PRAGMA writable_schema = ON;".into(), "writable_schema"),
            ("PRAGMA journal_mode = OFF;".into(), "journal_mode"),
            ("PRAGMA foreign_keys = ON;".into(), "foreign_keys"),
            ("SELECT load_extension('x');".into(), "load_extension"),
            ("CREATE TEMP TABLE system (a);".into(), "temp"),
            (
                "CREATE TEMP TRIGGER tt AFTER INSERT ON t BEGIN SELECT 1; END;".into(),
                "temp",
            ),
            ("CREATE TABLE temp.x (a);".into(), "temp"),
            ("UPDATE temp.sqlite_master SET sql = 'x';".into(), "temp"),
            ("PRAGMA temp.table_info(t);".into(), "temp"),
        ];
        for (sql, why) in refused {
            let e = try_sql(&conn, &sql).unwrap_err();
            assert!(e.contains(why), "{sql}: {e}");
        }
        assert_eq!(
            refuse_statement(&super::super::split::first_keyword(
                "/* */ vacuum into '/tmp/x'"
            )),
            Err("VACUUM is not allowed".into())
        );
        // The authorizer is gone with its guard: hoist's own statements run.
        conn.execute_batch("BEGIN; COMMIT;").unwrap();
        let n: i64 = Connection::open(&other)
            .unwrap()
            .query_row("SELECT count(*) FROM x", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("ATTACH\n  'x'   AS y"), "ATTACH 'x' AS y");
        let long = "é".repeat(500);
        let e = excerpt(&long);
        assert!(e.ends_with("...") && e.chars().count() == 203);
    }
}
