//! Reading PHP source as text, without running it: which global functions a
//! file defines, the integer a function returns, and the string keys of the
//! array it returns. Enough of PHP's lexical grammar is followed for what
//! PHP would define to be found and nothing else: comments (`//`, `#`,
//! `/* */`), string literals (quoted, heredoc, nowdoc) and inline HTML
//! outside `<?php … ?>` are skipped, and functions inside a class, trait,
//! interface or enum body are methods, not global functions.

/// One token of PHP code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    /// A run of identifier characters: a name, keyword or number.
    Word(&'a str),
    /// A string literal's text: single-quoted ones unescaped, others raw.
    Str(String),
    /// Any other character of code.
    Punct(u8),
}

/// A token and its byte offset in the source.
type Spanned<'a> = (Tok<'a>, usize);

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// The tokens of `src`'s PHP code, with their byte offsets.
fn tokens(src: &str) -> Vec<Spanned<'_>> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    // Outside `<?php`, a file is inline HTML.
    let mut html = true;
    while i < b.len() {
        if html {
            match find(b, i, b"<?") {
                Some(at) => {
                    i = at + 2;
                    if b[i..].len() >= 3 && b[i..i + 3].eq_ignore_ascii_case(b"php") {
                        i += 3;
                    } else if b.get(i) == Some(&b'=') {
                        i += 1;
                    }
                    html = false;
                }
                None => break,
            }
            continue;
        }
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'?' && b.get(i + 1) == Some(&b'>') {
            html = true;
            i += 2;
        } else if (c == b'#' && b.get(i + 1) != Some(&b'['))
            || (c == b'/' && b.get(i + 1) == Some(&b'/'))
        {
            // A line comment ends at the line's end or at `?>`.
            while i < b.len() && b[i] != b'\n' && !(b[i] == b'?' && b.get(i + 1) == Some(&b'>')) {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = find(b, i + 2, b"*/").map_or(b.len(), |e| e + 2);
        } else if c == b'\'' || c == b'"' || c == b'`' {
            let start = i;
            i += 1;
            let mut text = Vec::new();
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' && i + 1 < b.len() {
                    // Single quotes only unescape `\'` and `\\`.
                    if c != b'\'' || b[i + 1] == b'\'' || b[i + 1] == b'\\' {
                        if c != b'\'' {
                            text.push(b[i]);
                        }
                        i += 1;
                    }
                }
                text.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push((Tok::Str(String::from_utf8_lossy(&text).into_owned()), start));
        } else if c == b'<' && b[i..].starts_with(b"<<<") {
            let start = i;
            i = heredoc_end(b, i + 3);
            out.push((Tok::Str(String::new()), start));
        } else if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            // Runs of identifier bytes split only at ASCII, so at char
            // boundaries.
            out.push((Tok::Word(&src[start..i]), start));
        } else {
            out.push((Tok::Punct(c), i));
            i += 1;
        }
    }
    out
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(pat.len())
        .position(|w| w == pat)
        .map(|p| p + from)
}

/// Where a heredoc or nowdoc that starts after `<<<` at `i` ends.
fn heredoc_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    let quoted = matches!(b.get(i), Some(b'\'') | Some(b'"'));
    if quoted {
        i += 1;
    }
    let start = i;
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    let id = &b[start..i];
    if id.is_empty() {
        return i;
    }
    // The closing identifier: first on its line after optional
    // indentation, and not followed by an identifier character.
    let mut line = find(b, i, b"\n").map_or(b.len(), |n| n + 1);
    while line < b.len() {
        let mut j = line;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        if b[j..].starts_with(id) && !b.get(j + id.len()).is_some_and(|&c| is_ident(c)) {
            return j + id.len();
        }
        line = find(b, j, b"\n").map_or(b.len(), |n| n + 1);
    }
    b.len()
}

/// A global function defined in a PHP file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDef {
    /// Its name, lowercased: PHP function names are case-insensitive.
    pub name: String,
    /// The byte offset of its name in the file.
    pub at: usize,
    /// The token range of its body, inside the braces.
    body: std::ops::Range<usize>,
}

/// The global functions a PHP file defines, read as text.
pub struct PhpFile<'a> {
    toks: Vec<Spanned<'a>>,
    /// Every global function, in the order they appear.
    pub functions: Vec<FunctionDef>,
}

impl<'a> PhpFile<'a> {
    /// Reads `src`.
    pub fn read(src: &'a str) -> PhpFile<'a> {
        let toks = tokens(src);
        let functions = global_functions(&toks);
        PhpFile { toks, functions }
    }

    /// The function named `name` (case-insensitive).
    pub fn function(&self, name: &str) -> Option<&FunctionDef> {
        let name = name.to_ascii_lowercase();
        self.functions.iter().find(|f| f.name == name)
    }

    /// The integer literal `f` returns, when its body is only
    /// `return N;` (parentheses and an `(int)` cast allowed).
    pub fn returned_int(&self, f: &FunctionDef) -> Option<i64> {
        let body: Vec<&Tok> = self.toks[f.body.clone()]
            .iter()
            .map(|(t, _)| t)
            .filter(|t| !matches!(t, Tok::Punct(b'(') | Tok::Punct(b')')))
            .filter(|t| !matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case("int")))
            .collect();
        match body.as_slice() {
            [Tok::Word(r), Tok::Word(n), Tok::Punct(b';')] if r.eq_ignore_ascii_case("return") => {
                n.parse().ok()
            }
            _ => None,
        }
    }

    /// The string given to `define('NAME', '…')` anywhere in the file.
    pub fn defined_string(&self, name: &str) -> Option<String> {
        self.toks.windows(5).find_map(|w| match w {
            [(Tok::Word(d), _), (Tok::Punct(b'('), _), (Tok::Str(n), _), (Tok::Punct(b','), _), (Tok::Str(v), _)]
                if d.eq_ignore_ascii_case("define") && n == name =>
            {
                Some(v.clone())
            }
            _ => None,
        })
    }

    /// The string of a constant `const NAME = '…';` anywhere in the file.
    pub fn const_string(&self, name: &str) -> Option<String> {
        self.toks.windows(4).find_map(|w| match w {
            [(Tok::Word(c), _), (Tok::Word(n), _), (Tok::Punct(b'='), _), (Tok::Str(v), _)]
                if c.eq_ignore_ascii_case("const") && *n == name =>
            {
                Some(v.clone())
            }
            _ => None,
        })
    }

    /// The string keys (`'key' => …`) written in `f`'s body.
    pub fn string_keys(&self, f: &FunctionDef) -> Vec<String> {
        self.toks[f.body.clone()]
            .windows(3)
            .filter_map(|w| match (&w[0].0, &w[1].0, &w[2].0) {
                (Tok::Str(s), Tok::Punct(b'='), Tok::Punct(b'>')) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Finds `function NAME (` outside class-like bodies, with each body's
/// token range.
fn global_functions(toks: &[Spanned<'_>]) -> Vec<FunctionDef> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    // The brace depths at which class-like bodies were opened.
    let mut classes: Vec<usize> = Vec::new();
    let mut class_pending = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Punct(b'{') => {
                depth += 1;
                if class_pending {
                    classes.push(depth);
                    class_pending = false;
                }
            }
            Tok::Punct(b'}') => {
                if classes.last() == Some(&depth) {
                    classes.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Word(w) if is_class_keyword(w) && !after_member_access(toks, i) => {
                // `Foo::class` and `new class(...)`'s parentheses aside, the
                // next `{` opens the body.
                class_pending = true;
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("function") && classes.is_empty() => {
                let mut j = i + 1;
                if matches!(toks.get(j), Some((Tok::Punct(b'&'), _))) {
                    j += 1;
                }
                if let (Some((Tok::Word(name), at)), Some((Tok::Punct(b'('), _))) =
                    (toks.get(j), toks.get(j + 1))
                {
                    if let Some(body) = body_of(toks, j + 1) {
                        out.push(FunctionDef {
                            name: name.to_ascii_lowercase(),
                            at: *at,
                            body: body.clone(),
                        });
                        // The body is skipped: functions declared inside
                        // another function's body are found when it runs,
                        // and are rare enough in .install files to ignore.
                        i = body.end + 1;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn is_class_keyword(w: &str) -> bool {
    ["class", "interface", "trait", "enum"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

fn after_member_access(toks: &[Spanned<'_>], i: usize) -> bool {
    i >= 1
        && matches!(
            (&toks[i - 1].0, i.checked_sub(2).map(|j| &toks[j].0)),
            (Tok::Punct(b':'), Some(Tok::Punct(b':'))) | (Tok::Punct(b'>'), Some(Tok::Punct(b'-')))
        )
}

/// The index of the token closing the bracket `open` (`o` … `c`).
fn matching(toks: &[Spanned<'_>], open: usize, o: u8, c: u8) -> Option<usize> {
    let mut depth = 0usize;
    for (i, (t, _)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct(x) if *x == o => depth += 1,
            Tok::Punct(x) if *x == c => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The token range inside the braces of a function whose parameter list
/// opens at `open`.
fn body_of(toks: &[Spanned<'_>], open: usize) -> Option<std::ops::Range<usize>> {
    let mut i = matching(toks, open, b'(', b')')?;
    // A return type, then the body's brace (a `;` means no body).
    loop {
        i += 1;
        match toks.get(i)?.0 {
            Tok::Punct(b'{') => break,
            Tok::Punct(b';') => return None,
            _ => {}
        }
    }
    Some(i + 1..matching(toks, i, b'{', b'}')?)
}

/// 1-based line and column of byte offset `at` in `src`.
pub fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src.as_bytes()[..at.min(src.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let col = before.len()
        - before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(src: &str) -> Vec<String> {
        PhpFile::read(src)
            .functions
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn finds_global_functions_only_in_code() {
        let src = r#"<?php
/**
 * function foo_update_7999() in a doc comment.
 */
// function foo_update_7998() {}
# function foo_update_7997() {}
/* function foo_update_7996() {} */
$s = 'function foo_update_7995() {}';
$t = "function foo_update_7994() { \" }";
$h = <<<EOT
function foo_update_7993() {}
EOT;
$n = <<<'EOT'
  function foo_update_7992() {}
  EOT;
#[Attribute]
function foo_update_7001() {
  $x = "{$y}";
  return t('}');
}
function &Foo_Update_7002(array &$sandbox): ?string {
  if (TRUE) { }
}
class Foo {
  public function foo_update_7990() {}
}
$c = Foo::class;
function foo_update_7003() {}
$f = function () {};
abstract_call();
?>
<p>function foo_update_7991() {}</p>
<?php
function foo_update_last_removed(): int {
  return 7000;
}
"#;
        assert_eq!(
            names(src),
            [
                "foo_update_7001",
                "foo_update_7002",
                "foo_update_7003",
                "foo_update_last_removed"
            ]
        );
        let f = PhpFile::read(src);
        let lr = f.function("FOO_update_last_removed").unwrap();
        assert_eq!(f.returned_int(lr), Some(7000));
        assert_eq!(line_col(src, f.functions[0].at), (17, 10));
    }

    #[test]
    fn returned_ints_and_string_keys() {
        let src = "<?php\nfunction a() { return (int) 42; }\nfunction b() { return X; }\nfunction c(): array {\n  return [\n    'c_post_update_one' => '9.0.0',\n    \"c_post_update_two\" => '10.0.0',\n  ];\n}\n";
        let f = PhpFile::read(src);
        assert_eq!(f.returned_int(f.function("a").unwrap()), Some(42));
        assert_eq!(f.returned_int(f.function("b").unwrap()), None);
        assert_eq!(
            f.string_keys(f.function("c").unwrap()),
            ["c_post_update_one", "c_post_update_two"]
        );
    }

    #[test]
    fn version_constants() {
        let d7 = "<?php\n// define('VERSION', '6.0');\ndefine('VERSION', '7.103');\n";
        assert_eq!(
            PhpFile::read(d7).defined_string("VERSION").as_deref(),
            Some("7.103")
        );
        let d8 = "<?php\nclass Drupal {\n  const VERSION = '11.2.0';\n  const CORE_MINIMUM_SCHEMA_VERSION = 8000;\n}\n";
        assert_eq!(
            PhpFile::read(d8).const_string("VERSION").as_deref(),
            Some("11.2.0")
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for src in [
            "",
            "<?php",
            "<?php function",
            "<?php function x(",
            "<?php function x() {",
            "<?php 'unterminated",
            "<?php <<<",
            "<?php <<<EOT\nno end",
            "<?php /* open",
            "<?php }}}{{{ function f() { } }",
            "<?php class { function x() {} }",
            "?>",
            "<?",
            "<?php function é() {}",
        ] {
            let f = PhpFile::read(src);
            for d in &f.functions {
                let _ = f.returned_int(d);
                let _ = line_col(src, d.at);
            }
        }
    }
}
