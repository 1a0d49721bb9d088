//! Extension info files: Drupal 7's INI-like `NAME.info` and Drupal 8+'s
//! `NAME.info.yml`, read into the few facts hoist needs.
//!
//! The Drupal 7 reader follows `drupal_parse_info_format()`: `key = value`
//! lines, keys with `[]` and `[name]` array parts, values bare (trimmed,
//! the rest of the line: a `;` after a value is part of it), or single or
//! double quoted (a quote after a backslash does not end them, they may span
//! lines, and backslashes are then removed as PHP's `stripslashes` does),
//! lines starting with `;` are comments. It is stricter than Drupal's, which
//! skips any line it cannot read: such a line is an error here, with its
//! line and column, so a typo never silently drops a dependency. Where
//! Drupal's regular expression lets `key =` take the next line as its value,
//! the value here is empty.

use std::collections::HashMap;

/// A value of a Drupal 7 info file: a string, or an array of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoValue {
    /// A string.
    Str(String),
    /// An array, keys in the order they were first set.
    Map(InfoMap),
}

/// An ordered map of info values (PHP array semantics: `[]` appends with
/// the next index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoMap {
    entries: Vec<(String, InfoValue)>,
    index: HashMap<String, usize>,
}

impl InfoMap {
    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&InfoValue> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// The string under `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            InfoValue::Str(s) => Some(s),
            InfoValue::Map(_) => None,
        }
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(String, InfoValue)] {
        &self.entries
    }

    fn slot(&mut self, key: &str) -> &mut InfoValue {
        let key = if key.is_empty() {
            self.entries.len().to_string()
        } else {
            key.to_string()
        };
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, InfoValue::Str(String::new())));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }
}

/// A problem in an info file, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InfoError {
    /// Line and column, where known.
    pub pos: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl InfoError {
    fn at(line: usize, col: usize, message: impl Into<String>) -> Self {
        InfoError {
            pos: Some((line, col)),
            message: message.into(),
        }
    }
}

/// Parses a Drupal 7 `.info` file.
pub fn parse_d7(text: &str) -> Result<InfoMap, InfoError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let b = text.as_bytes();
    let mut info = InfoMap::default();
    let mut pos = 0;
    let mut line_no = 0;
    while pos < b.len() {
        line_no += 1;
        let eol = b[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |n| pos + n);
        let line = &text[pos..eol];
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let next = (eol + 1).min(b.len());
        if body.trim_end().is_empty() || body.starts_with(';') {
            pos = next;
            continue;
        }
        let (key, after_eq) =
            split_key(body).map_err(|(off, m)| InfoError::at(line_no, indent + off + 1, m))?;
        let parts = key_parts(key).ok_or_else(|| {
            InfoError::at(
                line_no,
                indent + 1,
                format!("cannot read the key {key:?}: use name, name[] or name[key]"),
            )
        })?;
        let value_at = pos + indent + after_eq;
        let rest = &text[value_at..];
        let rest_trim = rest.trim_start_matches([' ', '\t']);
        let vstart = value_at + (rest.len() - rest_trim.len());
        let (value, end) = match quoted(text, vstart) {
            Some((v, end)) => {
                // A quoted value may end on a later line.
                line_no += text[pos..end].bytes().filter(|&c| c == b'\n').count();
                (v, end)
            }
            None => (text[vstart..eol].trim_end().to_string(), eol),
        };
        insert(&mut info, &parts, value);
        pos = (end + 1).min(b.len());
    }
    Ok(info)
}

/// The key before the first `=`, and the offset just after that `=`.
fn split_key(body: &str) -> Result<(&str, usize), (usize, String)> {
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'=' => {
                let key = body[..i].trim_end();
                if key.is_empty() {
                    return Err((i, "a key is missing before `=`".into()));
                }
                return Ok((key, i + 1));
            }
            b'[' => match b[i + 1..].iter().position(|&c| c == b']' || c == b'[') {
                Some(n) if b[i + 1 + n] == b']' => i += n + 2,
                _ => return Err((i, "an unbalanced `[` in a key".into())),
            },
            b';' | b']' => return Err((i, format!("a key cannot contain `{}`", b[i] as char))),
            b'\r' => break,
            _ => i += 1,
        }
    }
    Err((0, "expected `key = value` or a `;` comment".into()))
}

/// `name[a][]` → `["name", "a", ""]`; `None` when the brackets are not a
/// plain sequence after the name.
fn key_parts(key: &str) -> Option<Vec<&str>> {
    let (base, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => return Some(vec![key]),
    };
    let mut parts = vec![base];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        parts.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    Some(parts)
}

/// A quoted value starting at `at`: its unescaped text and the end of the
/// line its closing quote is on. `None` when `at` holds no quote, the quote
/// is not closed, or more than white space follows it on its line: Drupal
/// then reads the line as a bare value.
fn quoted(text: &str, at: usize) -> Option<(String, usize)> {
    let b = text.as_bytes();
    let q = *b.get(at)?;
    if q != b'"' && q != b'\'' {
        return None;
    }
    let mut i = at + 1;
    while i < b.len() && !(b[i] == q && b[i - 1] != b'\\') {
        i += 1;
    }
    if i >= b.len() {
        return None;
    }
    let eol = b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |n| i + n);
    if !text[i + 1..eol].trim().is_empty() {
        return None;
    }
    Some((stripslashes(&text[at + 1..i]), eol))
}

/// PHP's `stripslashes`: `\x` → `x`, `\0` → NUL, a lone `\` at the end
/// dropped.
fn stripslashes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('0') => out.push('\0'),
                Some(n) => out.push(n),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn insert(info: &mut InfoMap, parts: &[&str], value: String) {
    let (last, parents) = parts.split_last().expect("a key has a name");
    let mut map = info;
    for p in parents {
        let slot = map.slot(p);
        if !matches!(slot, InfoValue::Map(_)) {
            *slot = InfoValue::Map(InfoMap::default());
        }
        map = match slot {
            InfoValue::Map(m) => m,
            InfoValue::Str(_) => unreachable!("just made a map"),
        };
    }
    *map.slot(last) = InfoValue::Str(value);
}

/// PHP's truthiness of an info value after Drupal 7 resolves the constants
/// `TRUE`, `FALSE` and `NULL` (case-insensitive, quoted or not).
pub fn d7_truthy(v: Option<&InfoValue>) -> bool {
    match v {
        None => false,
        Some(InfoValue::Map(m)) => !m.entries.is_empty(),
        Some(InfoValue::Str(s)) => {
            let l = s.to_ascii_lowercase();
            !(s.is_empty() || s == "0" || l == "false" || l == "null")
        }
    }
}

/// A dependency's extension name: Drupal's `drupal_parse_dependency` and
/// `Dependency::createFromString` drop the version constraint in
/// parentheses and a `project:` prefix.
pub fn dependency_name(dep: &str) -> &str {
    let name = dep.split('(').next().unwrap_or("").trim();
    match name.split(':').nth(1) {
        Some(n) => n.trim(),
        None => name,
    }
}

/// The facts of an info file hoist uses, in either format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// The human-readable name.
    pub name: Option<String>,
    /// Drupal 8+'s `type` (module, theme, profile, theme_engine).
    pub kind: Option<String>,
    /// `version` as written (`VERSION` not yet resolved).
    pub version: Option<String>,
    /// Drupal 7's `core`, or Drupal 8+'s `core_version_requirement` (or its
    /// older `core`).
    pub core: Option<String>,
    /// Whether the extension is hidden from the user interface.
    pub hidden: bool,
    /// Whether the `hidden` key is present at all.
    pub hidden_set: bool,
    /// The names of the extensions it depends on.
    pub dependencies: Vec<String>,
}

impl Info {
    /// The facts of a parsed Drupal 7 info file.
    pub fn from_d7(m: &InfoMap) -> Info {
        let dependencies = match m.get("dependencies") {
            Some(InfoValue::Map(d)) => d
                .entries()
                .iter()
                .filter_map(|(_, v)| match v {
                    InfoValue::Str(s) => Some(dependency_name(s).to_string()),
                    InfoValue::Map(_) => None,
                })
                .filter(|s| !s.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        Info {
            name: m.str("name").map(String::from),
            kind: None,
            version: m.str("version").map(String::from),
            core: m.str("core").map(String::from),
            hidden: d7_truthy(m.get("hidden")),
            hidden_set: m.get("hidden").is_some(),
            dependencies,
        }
    }

    /// Reads a Drupal 8+ `.info.yml`. `name` and `type` are required, as
    /// Drupal's `InfoParserDynamic` requires them.
    pub fn parse_yml(text: &str) -> Result<Info, InfoError> {
        use serde_yaml::Value;
        let v: Value = serde_yaml::from_str(text).map_err(|e| InfoError {
            pos: e.location().map(|l| (l.line(), l.column())),
            message: format!("not valid YAML: {e}"),
        })?;
        let Value::Mapping(m) = v else {
            return Err(InfoError {
                pos: None,
                message: "an info file must be a mapping of keys".into(),
            });
        };
        let scalar = |k: &str| -> Option<String> {
            match m.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let missing: Vec<&str> = ["type", "name"]
            .into_iter()
            .filter(|k| scalar(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(InfoError {
                pos: None,
                message: format!("missing required keys ({})", missing.join(", ")),
            });
        }
        let dependencies = match m.get("dependencies") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(s)) => {
                let mut out = Vec::new();
                for d in s {
                    match d {
                        Value::String(d) => out.push(dependency_name(d).to_string()),
                        _ => {
                            return Err(InfoError {
                                pos: None,
                                message: "each of `dependencies` must be a string".into(),
                            })
                        }
                    }
                }
                out
            }
            // Drupal loops over a scalar as over nothing (with a PHP
            // warning); its own decoupled_menus_test (10.1) has one.
            Some(Value::String(_)) => Vec::new(),
            Some(_) => {
                return Err(InfoError {
                    pos: None,
                    message: "`dependencies` must be a list".into(),
                })
            }
        };
        let hidden = match m.get("hidden") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::String(s)) => !(s.is_empty() || s == "0"),
            Some(_) => true,
        };
        Ok(Info {
            name: scalar("name"),
            kind: scalar("type"),
            version: scalar("version"),
            core: scalar("core_version_requirement").or_else(|| scalar("core")),
            hidden,
            hidden_set: m.get("hidden").is_some(),
            dependencies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_drupal_7_info_file() {
        let text = "\u{feff}; $Id$\nname = \"Views UI\"\ndescription = 'Administrative \\'interface\\''\ncore = 7.x\nversion = VERSION\nhidden = TRUE\n  dependencies[] = views (>=7.x-3.0)\ndependencies[] = ctools\nfiles[] = views_ui.module\nstylesheets[all][] = a.css\nstylesheets[all][] = b.css\nregions[header] = Header ; not a comment\n\n; Information added by Drupal.org packaging script\nproject = \"views\"\nmulti = \"line one\nline two\"\nafter = yes\r\n";
        let m = parse_d7(text).unwrap();
        assert_eq!(m.str("name"), Some("Views UI"));
        assert_eq!(m.str("description"), Some("Administrative 'interface'"));
        assert_eq!(m.str("regions"), None);
        match m.get("regions") {
            Some(InfoValue::Map(r)) => assert_eq!(r.str("header"), Some("Header ; not a comment")),
            other => panic!("{other:?}"),
        }
        match m.get("stylesheets") {
            Some(InfoValue::Map(s)) => match s.get("all") {
                Some(InfoValue::Map(all)) => {
                    assert_eq!(all.str("0"), Some("a.css"));
                    assert_eq!(all.str("1"), Some("b.css"));
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert_eq!(m.str("multi"), Some("line one\nline two"));
        assert_eq!(m.str("after"), Some("yes"));
        let info = Info::from_d7(&m);
        assert_eq!(info.dependencies, ["views", "ctools"]);
        assert_eq!(info.version.as_deref(), Some("VERSION"));
        assert!(info.hidden);
        assert_eq!(info.core.as_deref(), Some("7.x"));
    }

    #[test]
    fn quoted_values_followed_by_text_are_bare_as_in_drupal() {
        let m = parse_d7("name = \"Foo\" trailing\n").unwrap();
        assert_eq!(m.str("name"), Some("\"Foo\" trailing"));
        let m = parse_d7("a = \"x\\\"y\"\n").unwrap();
        assert_eq!(m.str("a"), Some("x\"y"));
    }

    #[test]
    fn hidden_follows_php_truthiness() {
        for (v, h) in [
            ("TRUE", true),
            ("true", true),
            ("1", true),
            ("yes", true),
            ("FALSE", false),
            ("0", false),
            ("", false),
            ("\"FALSE\"", false),
        ] {
            let info = Info::from_d7(&parse_d7(&format!("hidden = {v}\n")).unwrap());
            assert_eq!(info.hidden, h, "{v}");
        }
    }

    #[test]
    fn malformed_lines_are_errors_with_positions() {
        for (text, pos) in [
            ("name = a\nno equals here\n", (2, 1)),
            ("name = a\n  [section]\n", (2, 3)),
            ("  = value\n", (1, 3)),
            ("key[a = b\n", (1, 4)),
            ("a;b = c\n", (1, 2)),
            ("a[b]c = d\n", (1, 1)),
        ] {
            let e = parse_d7(text).unwrap_err();
            assert_eq!(e.pos, Some(pos), "{text:?}: {e}");
        }
        // A quoted value spanning lines moves the line count on.
        let e = parse_d7("a = \"x\ny\"\nbad\n").unwrap_err();
        assert_eq!(e.pos, Some((3, 1)));
    }

    #[test]
    fn dependency_names() {
        assert_eq!(dependency_name("drupal:node"), "node");
        assert_eq!(dependency_name("views:views_ui (>=8.x-3.0)"), "views_ui");
        assert_eq!(dependency_name("ctools (>=7.x-1.2)"), "ctools");
        assert_eq!(dependency_name(" taxonomy "), "taxonomy");
    }

    #[test]
    fn reads_a_drupal_8_info_file() {
        let text = "name: 'Node'\ntype: module\ndescription: x\npackage: Core\nversion: VERSION\nhidden: true\ndependencies:\n  - drupal:text\n  - 'drupal:filter (>=10.1)'\nconfigure: entity.node_type.collection\n";
        let info = Info::parse_yml(text).unwrap();
        assert_eq!(info.kind.as_deref(), Some("module"));
        assert_eq!(info.dependencies, ["text", "filter"]);
        assert!(info.hidden);
        let e = Info::parse_yml("name: x\n").unwrap_err();
        assert!(e.message.contains("missing required keys (type)"), "{e}");
        let e = Info::parse_yml("name: x\ntype: [\n").unwrap_err();
        assert!(e.pos.is_some(), "{e}");
        assert!(Info::parse_yml("- a\n").is_err());
        assert!(Info::parse_yml("name: x\ntype: module\ndependencies: {a: b}\n").is_err());
        let scalar =
            Info::parse_yml("name: x\ntype: module\ndependencies:\n  drupal:rest\n").unwrap();
        assert!(scalar.dependencies.is_empty());
    }
}
