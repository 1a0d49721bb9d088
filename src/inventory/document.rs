//! Reading one YAML file: size limit, syntax, conversion to JSON, validation
//! against its JSON Schema, with every problem placed at its line and column.

use std::path::Path;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::yamlpos::Positions;
use crate::diag::Diagnostic;

/// The largest YAML file hoist reads: inventory files are small, and a
/// limit keeps a hostile pull request from exhausting memory.
pub const MAX_YAML_BYTES: u64 = 1024 * 1024;

/// The JSON Schemas shipped in `schema/`, compiled once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// `hoist.yaml`
    Settings,
    /// `platforms/<name>.yaml`
    Platform,
    /// `sites/<name>.yaml`
    Site,
    /// `packages/<pkg>/package.yaml` in a codebase
    Package,
    /// `status/sites/<name>.yaml`, written by hoist
    StatusSite,
    /// `status/platforms/<name>.yaml`, written by hoist
    StatusPlatform,
}

impl Schema {
    /// The schema's JSON text, as shipped in `schema/`.
    pub fn text(self) -> &'static str {
        match self {
            Schema::Settings => include_str!("../../schema/hoist.schema.json"),
            Schema::Platform => include_str!("../../schema/platform.schema.json"),
            Schema::Site => include_str!("../../schema/site.schema.json"),
            Schema::Package => include_str!("../../schema/package.schema.json"),
            Schema::StatusSite => include_str!("../../schema/status-site.schema.json"),
            Schema::StatusPlatform => include_str!("../../schema/status-platform.schema.json"),
        }
    }

    fn validator(self) -> &'static jsonschema::Validator {
        static CELLS: [OnceLock<jsonschema::Validator>; 6] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        CELLS[self as usize].get_or_init(|| {
            let schema: Value =
                serde_json::from_str(self.text()).expect("shipped schema is valid JSON");
            jsonschema::draft202012::new(&schema).expect("shipped schema compiles")
        })
    }
}

/// A parsed, schema-valid YAML document with the positions of its nodes.
pub struct Document {
    /// The document as JSON (null for an empty file).
    pub value: Value,
    /// Where each node stands in the file.
    pub positions: LazyPositions,
}

/// The positions of a document's nodes, indexed on first use: a valid file
/// never needs them, and indexing is a second YAML parse, which at fleet
/// scale (10,000 site and status files) was a third of `plan --offline`.
pub struct LazyPositions {
    text: String,
    index: OnceLock<Positions>,
}

impl LazyPositions {
    fn new(text: &str) -> Self {
        LazyPositions {
            text: text.to_string(),
            index: OnceLock::new(),
        }
    }

    fn get(&self) -> &Positions {
        self.index.get_or_init(|| Positions::index(&self.text))
    }

    /// See [`Positions::value`].
    pub fn value(&self, pointer: &str) -> Option<(usize, usize)> {
        self.get().value(pointer)
    }

    /// See [`Positions::key`].
    pub fn key(&self, pointer: &str) -> Option<(usize, usize)> {
        self.get().key(pointer)
    }
}

impl Document {
    /// Deserializes the whole document into `T`; the schema has already
    /// checked its shape, so an error here names a value the schema allows
    /// but the type does not (a bad semver, say).
    pub fn decode<T: DeserializeOwned>(&self, file: &Path) -> Result<T, Diagnostic> {
        // Deserializing from a reference: no copy of the tree.
        T::deserialize(&self.value).map_err(|e| {
            Diagnostic::at(
                file,
                self.positions.value(""),
                format!("invalid value: {e}"),
            )
        })
    }
}

/// Reads a YAML file of the inventory as text, with the care input from a
/// pull request needs: a regular file only (a symlink could lead anywhere),
/// at most [`MAX_YAML_BYTES`], UTF-8.
pub fn read_text(path: &Path, shown: &Path) -> Result<String, Vec<Diagnostic>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let one = |msg: String| vec![Diagnostic::at(shown, None, msg)];
    let not_regular = || one("not a regular file (symlinks are not followed)".into());
    // One open that refuses a symlink (ELOOP) and cannot hang on a FIFO,
    // then the checks on what was opened: no window between a check and
    // the read, and one path lookup per file on fleets of 50,000 files.
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(not_regular()),
        Err(e) => return Err(one(format!("cannot read: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| one(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > MAX_YAML_BYTES {
        return Err(one(format!(
            "file is {} bytes; the limit is {MAX_YAML_BYTES}",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grew since the check is still read only up to the limit.
    (&mut file)
        .take(MAX_YAML_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| one(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_YAML_BYTES {
        return Err(one(format!(
            "file is over the limit of {MAX_YAML_BYTES} bytes"
        )));
    }
    utf8_text(bytes, shown)
}

/// The bytes of a YAML file as text, or where they stop being UTF-8.
pub fn utf8_text(bytes: Vec<u8>, shown: &Path) -> Result<String, Vec<Diagnostic>> {
    String::from_utf8(bytes).map_err(|e| {
        vec![Diagnostic::at(
            shown,
            None,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        )]
    })
}

/// Whether `path` is a real directory (not a symlink to one): directories
/// of an untrusted inventory are entered only when they are its own.
pub fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Reads and validates `path` against `schema`. `shown` is the name used in
/// messages (relative to the inventory, usually).
pub fn load(path: &Path, shown: &Path, schema: Schema) -> Result<Document, Vec<Diagnostic>> {
    let text = read_text(path, shown)?;
    parse(&text, shown, schema)
}

/// Parses and validates YAML `text` (see [`load`]).
pub fn parse(text: &str, shown: &Path, schema: Schema) -> Result<Document, Vec<Diagnostic>> {
    let text = crate::yaml::strip_bom(text);
    if text.contains('\0') {
        return Err(vec![Diagnostic::at(
            shown,
            None,
            "file contains a NUL byte",
        )]);
    }
    // Most files are plain block YAML, read without libyaml; anything else,
    // and every error, goes through the guard and serde_yaml.
    let value = match super::yamlfast::parse(text) {
        Some(v) => v,
        None => {
            let yaml = crate::yaml::value(text).map_err(|e| {
                let mut pos = e.pos();
                let msg = match &e {
                    crate::yaml::YamlError::Invalid { msg, .. } => {
                        if msg.starts_with("duplicate entry") {
                            if let Some((_, at)) = Positions::index(text).first_duplicate() {
                                pos = Some(*at);
                            }
                        }
                        format!("YAML syntax: {msg}")
                    }
                    other => other.to_string(),
                };
                vec![Diagnostic::at(shown, pos, msg)]
            })?;
            yaml_to_json(&yaml).map_err(|m| vec![Diagnostic::at(shown, None, m)])?
        }
    };
    let positions = LazyPositions::new(text);
    // The common case, a valid file, is checked without collecting errors.
    if schema.validator().is_valid(&value) {
        return Ok(Document { value, positions });
    }
    let mut diags: Vec<Diagnostic> = schema
        .validator()
        .iter_errors(&value)
        .map(|e| {
            let ptr = e.instance_path().as_str().to_string();
            let pos = match e.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    let key = unexpected
                        .first()
                        .map(|k| k.replace('~', "~0").replace('/', "~1"));
                    key.and_then(|k| positions.key(&format!("{ptr}/{k}")))
                        .or_else(|| positions.value(&ptr))
                }
                _ => positions.value(&ptr),
            };
            let at = if ptr.is_empty() {
                String::new()
            } else {
                format!(" (at {ptr})")
            };
            let msg = match (e.kind(), e.instance().as_str()) {
                // A raw regex helps no one: say what the field wants.
                (jsonschema::error::ValidationErrorKind::Pattern { .. }, Some(v)) => {
                    pattern_message(&ptr, v)
                }
                _ => e.to_string(),
            };
            Diagnostic::at(shown, pos, format!("{msg}{at}"))
        })
        .collect();
    if diags.is_empty() {
        Ok(Document { value, positions })
    } else {
        diags.sort();
        diags.dedup();
        Err(diags)
    }
}

/// The message for a string that fails its field's pattern, from the same
/// validators that make the typed names.
fn pattern_message(ptr: &str, v: &str) -> String {
    use crate::names::{Domain, Name, PackageName};
    let last = ptr.rsplit('/').next().unwrap_or("");
    let parent = ptr.rsplit('/').nth(1).unwrap_or("");
    // Checked before `ptr == "/name"` and the name fallback below.
    if last == "url" {
        return format!("{v:?} is not an http:// or https:// URL");
    }
    if last == "secret_env" {
        return format!("{v:?} is not an environment variable name (letters, digits and _)");
    }
    let err = if last == "domain" || parent == "aliases" {
        Domain::new(v).err()
    } else if last == "profile" || parent == "depends" || parent == "install" || ptr == "/name" {
        PackageName::new(v).err()
    } else {
        Name::new(v).err()
    };
    err.map(|e| e.to_string())
        .unwrap_or_else(|| format!("{v:?} is not allowed here"))
}

pub(super) fn yaml_to_json(v: &serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("number {f} is not allowed"))?
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(s) => Value::Array(s.iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!("mapping keys must be strings, found {other:?}"));
                    }
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => return Err(format!("YAML tags such as {} are not allowed", t.tag)),
    })
}
