//! The one quoting function for remote command lines.
//!
//! sshd hands the command string to the remote user's login shell, which
//! must be a POSIX shell (sh, dash, bash, ksh, zsh). Every word hoist puts
//! on a remote command line goes through [`quote`]: inside single quotes
//! a POSIX shell expands nothing (`$`, backquotes, `\`, `;`, newlines are
//! literal), and a single quote itself is written as `'\''` (close, an
//! escaped quote, reopen). Words of only harmless characters are left bare
//! so that logs stay readable. A NUL cannot be passed in an argument at all
//! and is refused.
//!
//! Secrets never go through here: they travel on the command's stdin.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// An argument that cannot be put on a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "argument {index} of a remote command contains a NUL byte, which no command line can carry"
)]
pub struct QuoteError {
    /// Its position in the argument vector (0: the program).
    pub index: usize,
}

/// Characters a POSIX shell gives no meaning to in an unquoted word (and
/// that start no option-like or glob-like surprise: `-` is fine inside a
/// word, and the shell itself never reads a word as an option).
fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b',' | b'+' | b':' | b'@')
}

/// One word, quoted for a POSIX shell so that it reaches the command
/// byte for byte. The caller refuses NUL beforehand ([`command_line`]).
pub fn quote(word: &[u8]) -> Vec<u8> {
    // `=` is left out of `is_bare`: `a=b` as the first word is an assignment.
    if !word.is_empty() && word.iter().all(|&b| is_bare(b)) {
        return word.to_vec();
    }
    let mut out = Vec::with_capacity(word.len() + 2);
    out.push(b'\'');
    for &b in word {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// An argument vector as one command line for the remote login shell:
/// each word quoted by [`quote`], separated by spaces.
pub fn command_line<S: AsRef<OsStr>>(argv: &[S]) -> Result<OsString, QuoteError> {
    let mut out = Vec::new();
    for (index, arg) in argv.iter().enumerate() {
        let bytes = arg.as_ref().as_bytes();
        if bytes.contains(&0) {
            return Err(QuoteError { index });
        }
        if index > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&quote(bytes));
    }
    Ok(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> String {
        String::from_utf8(quote(s.as_bytes())).unwrap()
    }

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(q("/srv/hoist/a-b_c.txt"), "/srv/hoist/a-b_c.txt");
        assert_eq!(q("user@host:1"), "user@host:1");
    }

    #[test]
    fn everything_else_is_single_quoted() {
        assert_eq!(q(""), "''");
        assert_eq!(q("a b"), "'a b'");
        assert_eq!(q("$(touch x)"), "'$(touch x)'");
        assert_eq!(q("`id`"), "'`id`'");
        assert_eq!(q(";"), "';'");
        assert_eq!(q("a\nb"), "'a\nb'");
        assert_eq!(q("x=1"), "'x=1'");
        assert_eq!(q("*"), "'*'");
        assert_eq!(q("~"), "'~'");
    }

    #[test]
    fn a_single_quote_closes_escapes_and_reopens() {
        assert_eq!(q("it's"), "'it'\\''s'");
        assert_eq!(q("'"), "''\\'''");
    }

    #[test]
    fn command_line_joins_and_refuses_nul() {
        let line = command_line(&["printf", "%s", "a b"]).unwrap();
        assert_eq!(line, OsString::from("printf '%s' 'a b'"));
        assert_eq!(
            command_line(&["echo", "a\0b"]),
            Err(QuoteError { index: 1 })
        );
    }

    #[test]
    fn non_utf8_bytes_pass_inside_quotes() {
        let word = [0xff, b' ', 0x80];
        assert_eq!(quote(&word), vec![b'\'', 0xff, b' ', 0x80, b'\'']);
    }
}
