//! A fast path for the plain block YAML that hoist writes and people mostly
//! write: mappings and sequences by indentation, one scalar per line.
//!
//! `plan --offline` on a fleet reads tens of thousands of status files, and
//! libyaml through serde_yaml spent most of that time building values. This
//! reader handles only a strict subset and answers `None` for anything
//! outside it (anchors, tags, flow collections, multi-line or escaped
//! scalars, duplicate keys, tabs, odd numbers, ...). The caller then parses
//! the text with serde_yaml, which also reports errors with positions. So a
//! document gets the same value either way; the unit tests check that
//! against serde_yaml on generated and hand-picked documents.

use serde_json::{Map, Value};

/// One content line: its indentation and what it holds.
struct Line<'a> {
    indent: usize,
    kind: Kind<'a>,
}

enum Kind<'a> {
    /// `key: value`, or `key:` with the value on the following lines.
    Entry(&'a str, Option<&'a str>),
    /// `- value`
    Item(&'a str),
}

/// The value of `text` if it is in the subset, else `None`.
pub fn parse(text: &str) -> Option<Value> {
    // Tabs, carriage returns, byte order marks and the line breaks that
    // YAML knows and `str::lines` does not.
    let odd_ascii = text.bytes().any(|b| b == b'\t' || b == b'\r');
    if odd_ascii
        || !text.is_ascii() && text.contains(['\u{feff}', '\u{85}', '\u{2028}', '\u{2029}'])
    {
        return None;
    }
    let mut lines = Vec::new();
    for raw in text.lines() {
        let body = raw.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = raw.len() - body.len();
        let body = body.trim_end_matches(' ');
        let kind = if let Some(item) = body.strip_prefix("- ") {
            Kind::Item(item.trim_start_matches(' '))
        } else {
            let colon = body.find(':')?;
            let (key, rest) = (&body[..colon], &body[colon + 1..]);
            if !plain_key(key) {
                return None;
            }
            if rest.is_empty() {
                Kind::Entry(key, None)
            } else {
                Kind::Entry(key, Some(rest.strip_prefix(' ')?.trim_start_matches(' ')))
            }
        };
        lines.push(Line { indent, kind });
    }
    let first = lines.first()?;
    if first.indent != 0 || !matches!(first.kind, Kind::Entry(..)) {
        return None;
    }
    let mut at = 0;
    let root = block(&lines, &mut at, 0, 1)?;
    (at == lines.len()).then_some(root)
}

/// The mapping or sequence whose lines start at `lines[*at]`, indented by
/// `indent`, `depth` levels deep. Deep documents are left to the guard of
/// [`crate::yaml`], which refuses them with their position; one level is
/// kept for a leaf `[a, b]`.
fn block(lines: &[Line], at: &mut usize, indent: usize, depth: usize) -> Option<Value> {
    if depth >= crate::yaml::MAX_DEPTH {
        return None;
    }
    match lines[*at].kind {
        Kind::Item(_) => sequence(lines, at, indent),
        Kind::Entry(..) => mapping(lines, at, indent, depth),
    }
}

fn sequence(lines: &[Line], at: &mut usize, indent: usize) -> Option<Value> {
    let mut out = Vec::new();
    while let Some(line) = lines.get(*at).filter(|l| l.indent == indent) {
        let Kind::Item(text) = line.kind else { break };
        out.push(scalar(text)?);
        *at += 1;
    }
    // Anything deeper would continue the last item.
    if lines.get(*at).is_some_and(|l| l.indent > indent) {
        return None;
    }
    Some(Value::Array(out))
}

fn mapping(lines: &[Line], at: &mut usize, indent: usize, depth: usize) -> Option<Value> {
    let mut out = Map::new();
    while let Some(line) = lines.get(*at).filter(|l| l.indent == indent) {
        let Kind::Entry(key, value) = line.kind else {
            // A sequence item where a key belongs.
            return None;
        };
        *at += 1;
        let next = lines.get(*at);
        let value = match value {
            Some(text) => {
                // A deeper line would continue a plain scalar over lines.
                if next.is_some_and(|l| l.indent > indent) {
                    return None;
                }
                scalar(text)?
            }
            None => match next {
                Some(l) if l.indent > indent => block(lines, at, l.indent, depth + 1)?,
                // A sequence may sit at its key's own indentation.
                Some(l) if l.indent == indent && matches!(l.kind, Kind::Item(_)) => {
                    sequence(lines, at, indent)?
                }
                _ => Value::Null,
            },
        };
        if out.insert(key.to_string(), value).is_some() {
            return None;
        }
    }
    if lines.get(*at).is_some_and(|l| l.indent > indent) {
        return None;
    }
    Some(Value::Object(out))
}

/// A key that YAML reads as the same string: a letter or underscore, then
/// letters, digits, `_`, `.` and `-`, and not a word YAML reads otherwise.
fn plain_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && special(key).is_none()
        && !float_word(key)
}

/// The words Rust's float parser takes for infinity and not-a-number.
fn float_word(s: &str) -> bool {
    ["inf", "infinity", "nan"]
        .iter()
        .any(|w| s.eq_ignore_ascii_case(w))
}

/// Whether a plain scalar has nothing that makes it more than one string:
/// no `: ` (a key), no ` #` (a comment), no control character.
fn plain_text(text: &str) -> bool {
    let b = text.as_bytes();
    let ascii_ok = b.iter().enumerate().all(|(i, &c)| {
        let next = b.get(i + 1).copied();
        !(c < 0x20
            || c == 0x7f
            || c == b':' && next == Some(b' ')
            || c == b' ' && next == Some(b'#'))
    });
    ascii_ok && !text.ends_with(':') && (text.is_ascii() || !text.chars().any(char::is_control))
}

/// YAML's null and boolean words, as serde_yaml reads them.
fn special(s: &str) -> Option<Value> {
    match s {
        "null" | "Null" | "NULL" | "~" => Some(Value::Null),
        "true" | "True" | "TRUE" => Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => Some(Value::Bool(false)),
        _ => None,
    }
}

/// One scalar on one line, or `None` when it needs the full parser.
fn scalar(text: &str) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    if text == "{}" {
        return Some(Value::Object(Map::new()));
    }
    if let Some(inner) = text.strip_prefix('[') {
        return flow_sequence(inner.strip_suffix(']')?);
    }
    if let Some(inner) = text.strip_prefix('\'') {
        let inner = inner.strip_suffix('\'')?;
        // Doubled quotes are the only escape; a lone one ends the scalar.
        if inner.replace("''", "").contains('\'') {
            return None;
        }
        return Some(Value::String(inner.replace("''", "'")));
    }
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        if inner.contains(['"', '\\']) {
            return None;
        }
        return Some(Value::String(inner.to_string()));
    }
    let first = text.as_bytes()[0];
    if b"-?:,[]{}#&*!|>'\"%@`.+".contains(&first) && !is_negative_int(text) || !plain_text(text) {
        return None;
    }
    if let Some(v) = special(text) {
        return Some(v);
    }
    if is_negative_int(text) || text.bytes().all(|b| b.is_ascii_digit()) {
        // Leading zeros make a string in YAML 1.2; leave them to serde_yaml.
        let digits = text.trim_start_matches('-');
        if digits.len() > 1 && digits.starts_with('0') {
            return None;
        }
        return if text.starts_with('-') {
            text.parse::<i64>().ok().map(Value::from)
        } else {
            text.parse::<u64>().ok().map(Value::from)
        };
    }
    // Floats, hexadecimal, octal and binary numbers, leading zeros, and
    // the words Rust's float parser knows.
    if first.is_ascii_digit() && (first == b'0' || text.parse::<f64>().is_ok()) || float_word(text)
    {
        return None;
    }
    Some(Value::String(text.to_string()))
}

/// `[a, b, c]` on one line, of plain scalars only: hand-written lists such
/// as `depends: [core]` and `aliases: [www.example.com]`.
fn flow_sequence(inner: &str) -> Option<Value> {
    if inner.trim_matches(' ').is_empty() {
        return Some(Value::Array(Vec::new()));
    }
    // Quotes could hide a comma, and flow indicators or colons inside an
    // item mean something else in flow context.
    if inner.contains(['\'', '"', '[', ']', '{', '}', ':', '#']) {
        return None;
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim_matches(' ');
            if item.is_empty() {
                None
            } else {
                scalar(item)
            }
        })
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

fn is_negative_int(text: &str) -> bool {
    text.strip_prefix('-')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_yaml makes of `text`, converted as the loader converts it.
    fn slow(text: &str) -> Option<Value> {
        let y: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
        super::super::document::yaml_to_json(&y).ok()
    }

    /// The fast path either declines or agrees with serde_yaml.
    fn agrees(text: &str) -> bool {
        match parse(text) {
            None => true,
            Some(v) => {
                assert_eq!(
                    Some(&v),
                    slow(text).as_ref(),
                    "fast path differs on:\n{text}"
                );
                true
            }
        }
    }

    #[test]
    fn reads_the_block_yaml_hoist_writes() {
        let text = "# comment\nsite: a\nsync: synced\ninventory_commit: null\nobserved:\n  aliases:\n  - www.a.example\n  - b.example\n  packages:\n    core:\n      kind: library\n      enabled: true\n      version: 1.0.0\n      schema: 12\n  empty: {}\n  none: []\nlast_task:\n  started: 2025-01-01T10:00:00Z\n  error: 'it''s: broken'\n  neg: -3\n";
        let v = parse(text).expect("in the subset");
        assert_eq!(Some(&v), slow(text).as_ref());
        assert_eq!(v["observed"]["packages"]["core"]["schema"], 12);
        assert_eq!(v["observed"]["aliases"][1], "b.example");
        assert_eq!(v["last_task"]["error"], "it's: broken");
        let flow = "depends: [core, mod_1]\naliases: [ www.a.example ]\nnone: [ ]\nn: [1, -2, true, null, 1.0.0]\n";
        let v = parse(flow).expect("one-line flow lists are in the subset");
        assert_eq!(Some(&v), slow(flow).as_ref());
        assert_eq!(v["depends"][1], "mod_1");
        assert_eq!(v["n"][2], true);
        // Sequences indented under their key read the same.
        assert!(parse("a:\n  - x\n  - y\nb: 1\n").is_some());
        assert!(agrees("a:\n  - x\n  - y\nb: 1\n"));
    }

    #[test]
    fn declines_what_it_does_not_know() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: {b: 1}\n",
            "a: [1, [2]]\n",
            "a: [1, 2,]\n",
            "a: ['x, y']\n",
            "a: [x: 1]\n",
            "a: [x] # c\n",
            "a: |\n  text\n",
            "a: >\n  text\n",
            "a: one\n  two\n",
            "a: 1\na: 2\n",
            "a:\n\tb: 1\n",
            "a: 1 # c\n",
            "a: 1\r\n",
            "---\na: 1\n",
            "a: 0x1F\n",
            "a: 1e3\n",
            "a: .inf\n",
            "a: 007\n",
            "a: +1\n",
            "a: \"x\\ty\"\n",
            "'a': 1\n",
            "1: a\n",
            "true: a\n",
            "- a\n- b\n",
            "a:\n- x\n  - y\n",
            "a:\n  b: 1\n c: 2\n",
            "a: b: c\n",
            "a: 99999999999999999999999\n",
            "",
            "# only a comment\n",
        ] {
            assert_eq!(parse(text), None, "should decline:\n{text}");
        }
    }

    /// A small deterministic generator of awkward YAML values.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[(self.next() % from.len() as u64) as usize]
        }

        fn string(&mut self) -> String {
            const PLAIN: &[&str] = &["site", "mod_01", "core", "shop-2", "a.b", "x", "Site_9"];
            // Mostly ordinary names, so that whole documents stay in the
            // subset; one in eight is awkward.
            if !self.next().is_multiple_of(8) {
                return self.pick(PLAIN).to_string();
            }
            const WORDS: &[&str] = &[
                "a",
                "site-1",
                "1.0.0",
                "true",
                "no",
                "yes",
                "null",
                "~",
                "",
                " ",
                "007",
                "0x1F",
                "1e3",
                "-5",
                "+5",
                ".inf",
                "nan",
                "inf",
                "a: b",
                "a #b",
                "a#b",
                "#x",
                "-",
                "- x",
                "x:",
                ":x",
                "'",
                "''",
                "\"",
                "\\",
                "it's",
                "é",
                "a\nb",
                "[x]",
                "{x}",
                "&a",
                "*a",
                "!t",
                "|",
                ">",
                "%",
                "@",
                "`",
                "?",
                ",",
                "2025-01-01T10:00:00Z",
                "12",
                "-0",
                "18446744073709551616",
                "0",
                "a b",
                " a",
                "a ",
                "\t",
                "y",
                "On",
            ];
            let n = 1 + self.next() % 2;
            (0..n).map(|_| self.pick(WORDS)).collect()
        }

        fn value(&mut self, depth: u32) -> serde_yaml::Value {
            use serde_yaml::Value as Y;
            match self.next() % if depth > 3 { 5 } else { 8 } {
                0 => Y::Null,
                1 => Y::Bool(self.next().is_multiple_of(2)),
                2 => Y::Number((self.next() as i64 % 100_000).into()),
                3 | 4 => Y::String(self.string()),
                5 => Y::Sequence(
                    (0..self.next() % 4)
                        .map(|_| self.value(depth + 1))
                        .collect(),
                ),
                _ => {
                    let mut m = serde_yaml::Mapping::new();
                    for _ in 0..self.next() % 5 {
                        m.insert(Y::String(self.string()), self.value(depth + 1));
                    }
                    Y::Mapping(m)
                }
            }
        }
    }

    #[test]
    fn agrees_with_serde_yaml_on_generated_flow_lists() {
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        let mut taken = 0;
        for _ in 0..5000 {
            let items: Vec<String> = (0..g.next() % 4).map(|_| g.string()).collect();
            let text = format!("key: [{}]\n", items.join(", "));
            agrees(&text);
            taken += usize::from(parse(&text).is_some());
        }
        assert!(taken > 1000, "fast path took only {taken} of 5000");
    }

    #[test]
    fn agrees_with_serde_yaml_on_generated_documents() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut taken = 0;
        for _ in 0..5000 {
            let mut root = serde_yaml::Mapping::new();
            for _ in 0..1 + g.next() % 6 {
                root.insert(serde_yaml::Value::String(g.string()), g.value(0));
            }
            let text = serde_yaml::to_string(&serde_yaml::Value::Mapping(root)).unwrap();
            agrees(&text);
            // The same document with deeper indentation and comments.
            let mut indented = String::from("# generated\n");
            for line in text.lines() {
                let body = line.trim_start_matches(' ');
                let n = line.len() - body.len();
                indented.push_str(&" ".repeat(n * 2));
                indented.push_str(body);
                indented.push_str("\n  # between\n");
            }
            agrees(&indented);
            taken += usize::from(parse(&text).is_some());
        }
        // The subset must cover most ordinary documents, or it is no fast path.
        assert!(taken > 1000, "fast path took only {taken} of 5000");
    }
}
