//! Dumps of a site database: SQL text in the form `sqlite3 .dump` writes,
//! which the `sqlite3` shell loads too, and which gives back every value
//! byte for byte (see [`sql_literal`]).

use std::io::Write;

use rusqlite::types::ValueRef;

use super::{quote_ident, DbError, SiteDb};

impl SiteDb {
    /// A SQL dump of the whole database that restores into an empty one: the
    /// same form as `sqlite3 .dump`, written to `out`.
    pub fn dump(&self, out: &mut dyn Write) -> Result<(), DbError> {
        let io = |source| DbError::Io {
            db: self.name.clone(),
            source,
        };
        writeln!(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;").map_err(io)?;
        let mut stmt = self
            .conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND sql IS NOT NULL ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let tables: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        for (name, sql) in &tables {
            writeln!(out, "{sql};").map_err(io)?;
            self.dump_rows(name, out)?;
        }
        if self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'",
                [],
                |_| Ok(()),
            )
            .is_ok()
        {
            writeln!(out, "DELETE FROM sqlite_sequence;").map_err(io)?;
            self.dump_rows("sqlite_sequence", out)?;
        }
        let mut stmt = self
            .conn
            .prepare("SELECT sql FROM sqlite_master WHERE type IN ('index', 'trigger', 'view') AND sql IS NOT NULL ORDER BY rowid")
            .map_err(|e| self.err(e))?;
        let rest: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        for sql in rest {
            writeln!(out, "{sql};").map_err(io)?;
        }
        writeln!(out, "COMMIT;").map_err(io)
    }

    /// One `INSERT` line per row of `table`.
    pub(super) fn dump_rows(&self, table: &str, out: &mut dyn Write) -> Result<(), DbError> {
        let io = |source| DbError::Io {
            db: self.name.clone(),
            source,
        };
        let q = quote_ident(table);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT * FROM {q}"))
            .map_err(|e| self.err(e))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut check = self.conn.prepare(READS_AS).map_err(|e| self.err(e))?;
        let mut reads_back = |text: &str, want: f64| {
            check
                .query_row([text], |r| r.get::<_, f64>(0))
                .is_ok_and(|got| got.to_bits() == want.to_bits())
        };
        let mut line = String::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            line.clear();
            line.push_str("INSERT INTO ");
            line.push_str(&q);
            line.push_str(" VALUES(");
            for i in 0..cols {
                if i > 0 {
                    line.push(',');
                }
                sql_literal(
                    row.get_ref(i).map_err(|e| self.err(e))?,
                    &mut reads_back,
                    &mut line,
                );
            }
            line.push_str(");\n");
            out.write_all(line.as_bytes()).map_err(io)?;
        }
        Ok(())
    }
}

/// What SQLite makes of a REAL literal's digits: the same conversion
/// (`sqlite3AtoF`) its parser applies to a literal in a statement.
const READS_AS: &str = "SELECT CAST(?1 AS REAL)";

/// Appends `v` as an SQL literal that SQLite (this build and the `sqlite3`
/// shell) reads back as exactly the same value: same type, same bytes.
///
/// - TEXT that is valid UTF-8 without NUL is a quoted string; any other
///   TEXT (a NUL in PHP-serialized data, bytes that are not UTF-8) is
///   `CAST(X'..' AS TEXT)`, which keeps its bytes as they are.
/// - REAL is Rust's shortest decimal form (with a `.` or `e`, so it stays a
///   REAL) when `reads_back(digits, value)` (SQLite's own conversion, see
///   [`READS_AS`]) gives exactly the value; SQLite's conversion is not
///   correctly rounded for every double, and then the literal is an exact
///   product, see [`exact_real`]. Infinities are `9e999`/`-9e999` as in
///   `sqlite3 .dump`; SQLite stores NaN as NULL, so none is ever read.
/// - INTEGER is decimal (SQLite reads `-9223372036854775808` as an
///   integer); BLOB is `X'..'`.
pub fn sql_literal(
    v: ValueRef<'_>,
    reads_back: &mut dyn FnMut(&str, f64) -> bool,
    out: &mut String,
) {
    use std::fmt::Write;
    match v {
        ValueRef::Null => out.push_str("NULL"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(f) if f.is_nan() => out.push_str("NULL"),
        ValueRef::Real(f) if f.is_infinite() => {
            out.push_str(if f > 0.0 { "9e999" } else { "-9e999" })
        }
        ValueRef::Real(f) => {
            let at = out.len();
            let _ = write!(out, "{f:?}");
            // A whole number below 2^53 converts exactly (SQLite scales it
            // to an integer first); anything else is checked. The sign is
            // applied by negation, which is exact.
            let digits = out[at..].trim_start_matches('-');
            let whole = f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0;
            if !whole && !reads_back(digits, f.abs()) {
                out.truncate(at);
                exact_real(f, out);
            }
        }
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) if !s.contains('\0') => {
                out.push('\'');
                let mut parts = s.split('\'');
                out.push_str(parts.next().unwrap_or(""));
                for p in parts {
                    out.push_str("''");
                    out.push_str(p);
                }
                out.push('\'');
            }
            _ => {
                out.push_str("CAST(");
                hex_literal(t, out);
                out.push_str(" AS TEXT)");
            }
        },
        ValueRef::Blob(b) => hex_literal(b, out),
    }
}

/// `f` (finite) as an expression of exact IEEE operations: its integer
/// significand (at most 53 bits, exact as an integer literal) multiplied
/// or divided by powers of two no larger than 2^62, each step exact because
/// every intermediate result lies between the significand and `f` itself.
/// Any SQLite on any IEEE machine evaluates it to the same bits.
fn exact_real(f: f64, out: &mut String) {
    use std::fmt::Write;
    let bits = f.to_bits();
    let biased = i32::try_from((bits >> 52) & 0x7ff).unwrap_or(0);
    let frac = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), biased - 1075)
    };
    if m != 0 {
        let tz = m.trailing_zeros();
        m >>= tz;
        e += i32::try_from(tz).unwrap_or(0);
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let _ = write!(out, "{sign}CAST({m} AS REAL)");
    let (op, mut n) = if e >= 0 { ('*', e) } else { ('/', -e) };
    while n > 0 {
        let k = n.min(62);
        let _ = write!(out, "{op}{}", 1u64 << k);
        n -= k;
    }
}

fn hex_literal(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{types::Value, Connection};

    fn literal(conn: &Connection, v: ValueRef<'_>) -> String {
        let mut check = conn.prepare(READS_AS).unwrap();
        let mut lit = String::new();
        sql_literal(
            v,
            &mut |t, f| {
                check
                    .query_row([t], |r| r.get::<_, f64>(0))
                    .is_ok_and(|g| g.to_bits() == f.to_bits())
            },
            &mut lit,
        );
        lit
    }

    /// What SQLite makes of `v`'s literal: its type and exact bits/bytes.
    fn read_back(conn: &Connection, v: ValueRef<'_>) -> Value {
        let lit = literal(conn, v);
        conn.query_row(&format!("SELECT {lit}"), [], |r| r.get::<_, Value>(0))
            .unwrap_or_else(|e| panic!("{lit}: {e}"))
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    #[test]
    fn every_value_reads_back_exactly() {
        let conn = Connection::open_in_memory().unwrap();
        let mut values = vec![
            Value::Null,
            Value::Integer(0),
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Integer(-1),
            Value::Real(0.0),
            Value::Real(-0.0),
            Value::Real(f64::INFINITY),
            Value::Real(f64::NEG_INFINITY),
            Value::Real(f64::MIN_POSITIVE),
            Value::Real(f64::from_bits(1)),
            Value::Real(-f64::from_bits(0x000f_ffff_ffff_ffff)),
            Value::Real(f64::MAX),
            Value::Real(f64::MIN),
            Value::Real(0.1),
            Value::Real(1e300),
            Value::Real(2.0),
            Value::Real(9007199254740993.0),
            Value::Text("it's ; -- /* \"x\" \n\r\t é".into()),
            Value::Text(String::new()),
            Value::Blob(vec![]),
            Value::Blob((0..=255).collect()),
        ];
        // Reals from random bit patterns, subnormals and large exponents.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                values.push(Value::Real(f));
            }
            values.push(Value::Real(f64::from_bits(x >> 12)));
        }
        for v in &values {
            let got = read_back(&conn, v.into());
            assert!(same(&got, v), "{v:?} came back as {got:?}");
        }
    }

    #[test]
    fn text_with_nul_or_bad_utf8_keeps_its_bytes() {
        let conn = Connection::open_in_memory().unwrap();
        for bytes in [
            &b"a:1:{s:3:\"\0*\0x\";i:1;}"[..],
            b"\xff\xfe not utf-8 \xc3",
            b"\0",
            b"caf\xc3\xa9",
        ] {
            let lit = literal(&conn, ValueRef::Text(bytes));
            let (t, h): (String, String) = conn
                .query_row(&format!("SELECT typeof({lit}), hex({lit})"), [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(t, "text", "{lit}");
            let mut want = String::new();
            hex_literal(bytes, &mut want);
            assert_eq!(format!("X'{h}'"), want, "{lit}");
        }
        assert_eq!(literal(&conn, ValueRef::Real(f64::NAN)), "NULL");
        // Decimal where SQLite reads it back exactly, a product otherwise.
        assert_eq!(literal(&conn, ValueRef::Real(0.1)), "0.1");
        assert_eq!(literal(&conn, ValueRef::Real(-0.0)), "-0.0");
        let awkward = 1.715_373_926_431_966e178;
        assert!(literal(&conn, ValueRef::Real(awkward)).starts_with("CAST("));
    }
}
