//! Splits a stream of SQL into statements, with exactly the rules of
//! SQLite's own `sqlite3_complete()` (the function the `sqlite3` shell uses
//! to decide that a statement is complete): quotes `'..'`, `".."`, `` `..` ``
//! and `[..]`, `--` and `/* */` comments, and `CREATE TRIGGER .. BEGIN ..
//! END;` bodies whose inner semicolons do not end the statement.
//!
//! It is the same state machine as SQLite's, fed one chunk at a time and
//! never rescanning what it has seen, so splitting is linear in the input
//! however long a statement or a line is (`sqlite3_complete()` on a growing
//! buffer would be quadratic on a long multi-line value).

/// Tokens of `sqlite3_complete()`.
#[derive(Clone, Copy)]
enum Tok {
    Semi = 0,
    Ws = 1,
    Other = 2,
    Explain = 3,
    Create = 4,
    Temp = 5,
    Trigger = 6,
    End = 7,
}

/// `sqlite3_complete()`'s transitions: `TRANS[state][token]`. State 1
/// (START) after a semicolon means a statement just ended.
const TRANS: [[u8; 8]; 8] = [
    // SEMI WS OTHER EXPLAIN CREATE TEMP TRIGGER END
    [1, 0, 2, 3, 4, 2, 2, 2], // 0 INVALID
    [1, 1, 2, 3, 4, 2, 2, 2], // 1 START
    [1, 2, 2, 2, 2, 2, 2, 2], // 2 NORMAL
    [1, 3, 3, 2, 4, 2, 2, 2], // 3 EXPLAIN
    [1, 4, 2, 2, 2, 4, 5, 2], // 4 CREATE
    [6, 5, 5, 5, 5, 5, 5, 5], // 5 TRIGGER
    [6, 6, 5, 5, 5, 5, 5, 7], // 6 SEMI
    [1, 7, 5, 5, 5, 5, 5, 5], // 7 END
];

/// Where the lexer is inside a token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lex {
    Normal,
    /// After a `-`: a comment if another follows.
    Dash,
    /// After a `/`: a comment if `*` follows.
    Slash,
    LineComment,
    BlockComment,
    /// In a block comment, after a `*`.
    BlockStar,
    /// In a string or quoted identifier ending with this byte.
    Quote(u8),
    Ident,
}

/// SQLite's `IdChar()`: letters, digits, `_`, `$` and every byte >= 0x80.
fn id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// An incomplete statement at the end of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    /// The line it starts on.
    pub line: u64,
    /// Its first bytes.
    pub head: String,
}

/// Takes each complete statement: its bytes and the line it starts on.
pub type Emit<'a, E> = dyn FnMut(&[u8], u64) -> Result<(), E> + 'a;

/// The statement splitter: feed it chunks, it calls back with every
/// complete statement (its bytes, through the final `;`, and the line it
/// starts on).
pub struct Splitter {
    /// The current statement's bytes from earlier chunks.
    buf: Vec<u8>,
    state: u8,
    lex: Lex,
    /// The keyword being read (only keywords of up to 9 bytes matter).
    ident: [u8; 9],
    ident_len: usize,
    /// Whether the current statement has a token besides `;`.
    has_tokens: bool,
    /// The line the current (unemitted) text starts on.
    line: u64,
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// A splitter at the start of its input.
    pub fn new() -> Self {
        Splitter {
            buf: Vec::new(),
            state: 0,
            lex: Lex::Normal,
            ident: [0; 9],
            ident_len: 0,
            has_tokens: false,
            line: 1,
        }
    }

    fn token(&mut self, t: Tok) -> bool {
        if !matches!(t, Tok::Ws | Tok::Semi) {
            self.has_tokens = true;
        }
        self.state = TRANS[self.state as usize][t as usize];
        // Also an empty statement (`;` alone), which has no tokens and so
        // is dropped rather than emitted.
        matches!(t, Tok::Semi) && self.state == 1
    }

    fn keyword(&self) -> Tok {
        let w = &self.ident[..self.ident_len.min(9)];
        if self.ident_len > 9 {
            return Tok::Other;
        }
        if w.eq_ignore_ascii_case(b"create") {
            Tok::Create
        } else if w.eq_ignore_ascii_case(b"trigger") {
            Tok::Trigger
        } else if w.eq_ignore_ascii_case(b"temp") || w.eq_ignore_ascii_case(b"temporary") {
            Tok::Temp
        } else if w.eq_ignore_ascii_case(b"end") {
            Tok::End
        } else if w.eq_ignore_ascii_case(b"explain") {
            Tok::Explain
        } else {
            Tok::Other
        }
    }

    /// Steps over byte `b` in lexer state `self.lex`; returns whether a
    /// statement ended with it.
    fn step(&mut self, b: u8) -> bool {
        loop {
            match self.lex {
                Lex::Normal => {
                    return match b {
                        b';' => self.token(Tok::Semi),
                        b' ' | b'\r' | b'\t' | b'\n' | 0x0c => self.token(Tok::Ws),
                        b'/' => {
                            self.lex = Lex::Slash;
                            false
                        }
                        b'-' => {
                            self.lex = Lex::Dash;
                            false
                        }
                        b'[' => {
                            self.lex = Lex::Quote(b']');
                            false
                        }
                        b'`' | b'"' | b'\'' => {
                            self.lex = Lex::Quote(b);
                            false
                        }
                        _ if id_char(b) => {
                            self.lex = Lex::Ident;
                            self.ident[0] = b;
                            self.ident_len = 1;
                            false
                        }
                        _ => self.token(Tok::Other),
                    };
                }
                Lex::Dash | Lex::Slash => {
                    let opener = if self.lex == Lex::Dash { b'-' } else { b'*' };
                    if b == opener {
                        self.lex = if self.lex == Lex::Dash {
                            Lex::LineComment
                        } else {
                            Lex::BlockComment
                        };
                        return false;
                    }
                    // A lone '-' or '/' is an operator; `b` starts afresh.
                    self.lex = Lex::Normal;
                    let ended = self.token(Tok::Other);
                    debug_assert!(!ended);
                }
                Lex::LineComment => {
                    if b == b'\n' {
                        self.lex = Lex::Normal;
                        return self.token(Tok::Ws);
                    }
                    return false;
                }
                Lex::BlockComment | Lex::BlockStar => {
                    if self.lex == Lex::BlockStar && b == b'/' {
                        self.lex = Lex::Normal;
                        return self.token(Tok::Ws);
                    }
                    self.lex = if b == b'*' {
                        Lex::BlockStar
                    } else {
                        Lex::BlockComment
                    };
                    return false;
                }
                Lex::Quote(end) => {
                    if b == end {
                        self.lex = Lex::Normal;
                        return self.token(Tok::Other);
                    }
                    return false;
                }
                Lex::Ident => {
                    if id_char(b) {
                        if self.ident_len < 9 {
                            self.ident[self.ident_len] = b;
                        }
                        self.ident_len += 1;
                        return false;
                    }
                    self.lex = Lex::Normal;
                    let k = self.keyword();
                    let ended = self.token(k);
                    debug_assert!(!ended);
                }
            }
        }
    }

    /// Feeds the next chunk of input; `emit` gets each statement completed
    /// in it, with the line it starts on. Stops at `emit`'s first error.
    pub fn feed<E>(&mut self, chunk: &[u8], emit: &mut Emit<'_, E>) -> Result<(), E> {
        let mut start = 0;
        let mut i = 0;
        while i < chunk.len() {
            // Inside a string (most of a dump's bytes): jump to its end.
            if let Lex::Quote(end) = self.lex {
                match chunk[i..].iter().position(|&c| c == end) {
                    Some(n) => i += n,
                    None => break,
                }
            }
            if self.step(chunk[i]) {
                let text: &[u8] = if self.buf.is_empty() {
                    &chunk[start..=i]
                } else {
                    self.buf.extend_from_slice(&chunk[start..=i]);
                    &self.buf
                };
                let (line, next) = lines(self.line, text);
                let r = if self.has_tokens {
                    emit(text, line)
                } else {
                    Ok(())
                };
                self.line = next;
                self.buf.clear();
                self.has_tokens = false;
                r?;
                start = i + 1;
            }
            i += 1;
        }
        self.buf.extend_from_slice(&chunk[start..]);
        if self.state <= 1 && self.lex == Lex::Normal {
            // Only whitespace and comments since the last statement:
            // nothing to keep but the line count.
            self.line = lines(self.line, &self.buf).1;
            self.buf.clear();
        }
        Ok(())
    }

    /// Ends the input: `Err` when a statement is left incomplete (text that
    /// is not only whitespace and comments after the last `;`).
    pub fn finish(mut self) -> Result<(), Incomplete> {
        match self.lex {
            Lex::Ident => {
                let k = self.keyword();
                self.token(k);
            }
            Lex::Dash | Lex::Slash => {
                self.token(Tok::Other);
            }
            Lex::LineComment | Lex::Normal => {}
            Lex::BlockComment | Lex::BlockStar | Lex::Quote(_) => self.has_tokens = true,
        }
        if !self.has_tokens {
            return Ok(());
        }
        let (line, _) = lines(self.line, &self.buf);
        let text = String::from_utf8_lossy(&self.buf);
        Err(Incomplete {
            line,
            head: super::confine::excerpt(text.trim()),
        })
    }
}

/// The line `text`'s first token is on, given the line its first byte is
/// on, and the line after it.
fn lines(first: u64, text: &[u8]) -> (u64, u64) {
    let lead = text.len() - skip_blank(text).len();
    let nl = |s: &[u8]| s.iter().filter(|&&b| b == b'\n').count() as u64;
    let start = first + nl(&text[..lead]);
    (start, start + nl(&text[lead..]))
}

/// `s` after its leading whitespace and comments.
fn skip_blank(mut s: &[u8]) -> &[u8] {
    loop {
        s = s.trim_ascii_start();
        if let Some(rest) = s.strip_prefix(b"--") {
            s = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |n| &rest[n..]);
        } else if let Some(rest) = s.strip_prefix(b"/*") {
            s = rest
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(&[][..], |n| &rest[n + 2..]);
        } else {
            return s;
        }
    }
}

/// The first keyword of a statement, upper-cased, after whitespace and
/// comments (empty when it starts with something else).
pub fn first_keyword(stmt: &str) -> String {
    skip_blank(stmt.as_bytes())
        .iter()
        .take_while(|&&b| id_char(b))
        .map(|&b| b.to_ascii_uppercase() as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `input` fed in chunks of `n` bytes.
    fn split(input: &str, n: usize) -> Result<Vec<(String, u64)>, Incomplete> {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for c in input.as_bytes().chunks(n.max(1)) {
            s.feed::<()>(c, &mut |t, l| {
                out.push((String::from_utf8(skip_blank(t).to_vec()).unwrap(), l));
                Ok(())
            })
            .unwrap();
        }
        s.finish().map(|()| out)
    }

    fn texts(input: &str) -> Vec<String> {
        let whole = split(input, usize::MAX).unwrap();
        for n in [1, 2, 3, 7] {
            assert_eq!(split(input, n).unwrap(), whole, "chunks of {n}");
        }
        whole.into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            texts("INSERT INTO t VALUES('a;''b;'); SELECT \"x;\",[y;],`z;` -- c;\n; /* ; */ SELECT 1;"),
            vec![
                "INSERT INTO t VALUES('a;''b;');",
                "SELECT \"x;\",[y;],`z;` -- c;\n;",
                "SELECT 1;"
            ]
        );
        assert_eq!(texts("  ;; \n -- only a comment\n"), Vec::<String>::new());
        assert_eq!(
            texts("SELECT 1-1;SELECT 2/2;"),
            vec!["SELECT 1-1;", "SELECT 2/2;"]
        );
    }

    #[test]
    fn a_trigger_body_is_one_statement() {
        let t = "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a=1; DELETE FROM u;\nEND;\nINSERT INTO t VALUES(1);";
        assert_eq!(
            texts(t),
            vec![
                "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET a=1; DELETE FROM u;\nEND;",
                "INSERT INTO t VALUES(1);"
            ]
        );
        // `end` as a column name inside a trigger does not end it early.
        assert_eq!(
            texts("CREATE TRIGGER x BEGIN SELECT end FROM t; END; SELECT 1;").len(),
            2
        );
        // Outside a trigger, END is an ordinary statement (COMMIT's alias).
        assert_eq!(texts("BEGIN; END; SELECT 1;").len(), 3);
    }

    #[test]
    fn statements_carry_their_first_line() {
        let got = split("\n\nSELECT 1;\n-- note\nSELECT\n'a\nb';\n\nSELECT 3;", 4).unwrap();
        let lines: Vec<u64> = got.iter().map(|(_, l)| *l).collect();
        assert_eq!(lines, vec![3, 5, 9]);
    }

    #[test]
    fn an_unfinished_statement_is_reported() {
        let e = split("SELECT 1;\nINSERT INTO t VALUES('open", 5).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.head.starts_with("INSERT INTO t"));
        assert!(split("SELECT 1; /* open", 3).is_err());
        assert!(split("SELECT 1", 3).is_err());
        assert!(split("CREATE TRIGGER x BEGIN SELECT 1;", 3).is_err());
        assert!(split("SELECT 1; -- trailing comment", 3).is_ok());
    }

    #[test]
    fn agrees_with_sqlite3_complete() {
        let cases = [
            "SELECT 1",
            "SELECT 1;",
            "SELECT 'a;",
            "SELECT [a;",
            "SELECT 1; -- x",
            "SELECT 1 /* ; */",
            "CREATE TRIGGER t BEGIN SELECT 1; END",
            "CREATE TRIGGER t BEGIN SELECT 1; END;",
            "EXPLAIN CREATE TEMPORARY TRIGGER t BEGIN SELECT 1; END;",
            "CREATE TABLE trigger(a); ",
            "create table t(\"end\" text);",
            "SELECT 1 - -2;",
            "SELECT 1/*/;",
            "SELECT 1/**/;",
        ];
        for c in cases {
            let z = std::ffi::CString::new(c).unwrap();
            let want = unsafe { rusqlite::ffi::sqlite3_complete(z.as_ptr()) } != 0;
            let mut s = Splitter::new();
            let mut n = 0;
            s.feed::<()>(c.as_bytes(), &mut |_, _| {
                n += 1;
                Ok(())
            })
            .unwrap();
            let complete = s.finish().is_ok() && n > 0;
            assert_eq!(complete, want, "{c:?}");
        }
    }

    #[test]
    fn first_keywords() {
        assert_eq!(first_keyword("  -- x\n /* y */ vacuum into 'f'"), "VACUUM");
        assert_eq!(first_keyword("insert"), "INSERT");
        assert_eq!(first_keyword("(select 1)"), "");
    }
}
