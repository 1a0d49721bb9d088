//! A Drupal site's state, read from rows of its database: the SQL to fetch
//! them ([`Queries`]) and pure functions from the rows to a [`SiteState`].
//!
//! Drupal 7 keeps one `system` row per extension it has seen: `status` 1 is
//! enabled, `schema_version` -1 is not installed (a module with status 0
//! and a schema is installed but disabled); the profile is the
//! `install_profile` variable, PHP-serialized, `standard` when unset (as
//! `drupal_get_profile()` has it); `system.info` holds the info file as
//! Drupal last read it, which gives the version the site last ran.
//! Drupal 8+ keeps the installed modules and themes in the `core.extension`
//! config (`module` => weight, `theme` => weight, `profile`), each module's
//! schema in `key_value` collection `system.schema`, and the post-updates
//! run in collection `post_update`, key `existing_updates`; every value is
//! PHP-serialized. Installed is enabled on 8+.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::scan::{ExtensionKind, Generation};
use super::unserialize::{unserialize, PhpValue, UnserializeError};
use super::version::DrupalVersion;

/// One extension as a site has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteExtension {
    /// Module, theme or profile.
    pub kind: ExtensionKind,
    /// Enabled (7) or installed (8+).
    pub enabled: bool,
    /// The schema the site has applied; none for themes, and for a module
    /// Drupal 8+ holds no schema for.
    pub schema: Option<u32>,
    /// The version the site last ran (Drupal 7's `system.info`).
    pub version: Option<DrupalVersion>,
    /// Whether the site's record says it is hidden (Drupal 7).
    pub hidden: bool,
}

/// A site's extensions and updates, as its database records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteState {
    /// Drupal 7 or 8+.
    pub generation: Generation,
    /// The installation profile.
    pub profile: Option<String>,
    /// Installed extensions (not-installed Drupal 7 rows are left out, and
    /// so are Drupal 7 themes that are not enabled), by name.
    pub extensions: BTreeMap<String, SiteExtension>,
    /// The post-updates run (8+).
    pub post_updates: BTreeSet<String>,
    /// The core version the site last ran (Drupal 7: the `system` row's
    /// info), when known.
    pub core_version: Option<DrupalVersion>,
}

/// Why rows are not a site state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A serialized value could not be read.
    #[error("{what}: {source}")]
    Unserialize {
        /// Which value.
        what: String,
        /// Why.
        source: UnserializeError,
    },
    /// A value has the wrong shape.
    #[error("{what}: {message}")]
    Shape {
        /// Which value.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A table prefix that could not be put in SQL safely.
    #[error("invalid table prefix {0:?}: use letters, digits and '_' (and one '.')")]
    Prefix(String),
    /// The database could not be read.
    #[error("reading the site's database: {0}")]
    Db(String),
}

fn shape(what: &str, message: impl Into<String>) -> StateError {
    StateError::Shape {
        what: what.into(),
        message: message.into(),
    }
}

fn php(what: &str, bytes: &[u8]) -> Result<PhpValue, StateError> {
    unserialize(bytes).map_err(|source| StateError::Unserialize {
        what: what.into(),
        source,
    })
}

/// The SQL that fetches a site's state, for a database whose tables have
/// Drupal's table `prefix` (`''` for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    /// Drupal 7: rows for [`D7SystemRow`] (`name, type, status,
    /// schema_version, info`).
    pub d7_system: String,
    /// Drupal 7: the serialized `install_profile` variable (zero or one row).
    pub d7_install_profile: String,
    /// Drupal 8+: the serialized `core.extension` config (one row).
    pub d8_core_extension: String,
    /// Drupal 8+: `name, value` of collection `system.schema`.
    pub d8_schema: String,
    /// Drupal 8+: the serialized `existing_updates` list (zero or one row).
    pub d8_post_updates: String,
}

impl Queries {
    /// The queries for tables prefixed by `prefix`.
    pub fn new(prefix: &str) -> Result<Queries, StateError> {
        let ok = prefix.bytes().filter(|&b| b == b'.').count() <= 1
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !ok {
            return Err(StateError::Prefix(prefix.into()));
        }
        let p = prefix;
        Ok(Queries {
            d7_system: format!(
                "SELECT name, type, status, schema_version, info FROM {p}system ORDER BY name"
            ),
            d7_install_profile: format!(
                "SELECT value FROM {p}variable WHERE name = 'install_profile'"
            ),
            d8_core_extension: format!(
                "SELECT data FROM {p}config WHERE collection = '' AND name = 'core.extension'"
            ),
            d8_schema: format!(
                "SELECT name, value FROM {p}key_value WHERE collection = 'system.schema' ORDER BY name"
            ),
            d8_post_updates: format!(
                "SELECT value FROM {p}key_value WHERE collection = 'post_update' AND name = 'existing_updates'"
            ),
        })
    }
}

/// A row of Drupal 7's `system` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct D7SystemRow {
    /// The extension's name.
    pub name: String,
    /// `module` or `theme` (others are ignored).
    pub kind: String,
    /// 1 when enabled.
    pub status: i64,
    /// The schema applied; -1 when not installed.
    pub schema_version: i64,
    /// The serialized info array, if fetched.
    pub info: Option<Vec<u8>>,
}

/// A Drupal 7 site's state from its `system` rows and its
/// `install_profile` variable's serialized value (none when unset).
pub fn d7_state(
    rows: &[D7SystemRow],
    install_profile: Option<&[u8]>,
) -> Result<SiteState, StateError> {
    let profile = match install_profile {
        None => "standard".to_string(),
        Some(b) => php("variable install_profile", b)?
            .as_str()
            .ok_or_else(|| shape("variable install_profile", "not a string"))?
            .to_string(),
    };
    let mut extensions = BTreeMap::new();
    let mut core_version = None;
    for r in rows {
        let base = match r.kind.as_str() {
            "module" if r.name == profile => ExtensionKind::Profile,
            "module" => ExtensionKind::Module,
            "theme" => ExtensionKind::Theme,
            _ => continue,
        };
        let enabled = r.status == 1;
        let installed = match base {
            ExtensionKind::Theme => enabled,
            _ => r.schema_version >= 0,
        };
        if !installed {
            continue;
        }
        let what = format!("system.info of {}", r.name);
        let info = match &r.info {
            Some(b) if !b.is_empty() => Some(php(&what, b)?),
            _ => None,
        };
        let version = info
            .as_ref()
            .and_then(|i| i.get("version"))
            .and_then(PhpValue::as_str)
            .map(DrupalVersion::parse);
        if r.name == "system" {
            core_version = version.clone();
        }
        let schema = match base {
            ExtensionKind::Theme => None,
            _ => Some(u32::try_from(r.schema_version).map_err(|_| {
                shape(
                    &format!("system.schema_version of {}", r.name),
                    "out of range",
                )
            })?),
        };
        extensions.insert(
            r.name.clone(),
            SiteExtension {
                kind: base,
                enabled,
                schema,
                version,
                hidden: info
                    .as_ref()
                    .and_then(|i| i.get("hidden"))
                    .is_some_and(PhpValue::truthy),
            },
        );
    }
    Ok(SiteState {
        generation: Generation::Drupal7,
        profile: Some(profile),
        extensions,
        post_updates: BTreeSet::new(),
        core_version,
    })
}

/// A Drupal 8+ site's state from its serialized `core.extension` config,
/// its `system.schema` rows (name, serialized value) and its serialized
/// `existing_updates` (none when unset).
pub fn d8_state(
    core_extension: &[u8],
    schema_rows: &[(String, Vec<u8>)],
    existing_updates: Option<&[u8]>,
) -> Result<SiteState, StateError> {
    const CE: &str = "config core.extension";
    let ce = php(CE, core_extension)?;
    if ce.entries().is_none() {
        return Err(shape(CE, "not an array"));
    }
    let profile = match ce.get("profile") {
        None | Some(PhpValue::Null) | Some(PhpValue::Bool(false)) => None,
        Some(p) => Some(
            p.as_str()
                .ok_or_else(|| shape(CE, "`profile` is not a string"))?
                .to_string(),
        ),
    };
    let mut schemas = BTreeMap::new();
    for (name, value) in schema_rows {
        let what = format!("system.schema of {name}");
        let n = php(&what, value)?
            .as_int()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| shape(&what, "not a schema number"))?;
        schemas.insert(name.as_str(), n);
    }
    let mut extensions = BTreeMap::new();
    for (list, kind) in [
        ("module", ExtensionKind::Module),
        ("theme", ExtensionKind::Theme),
    ] {
        let entries = match ce.get(list) {
            None => &[][..],
            Some(v) => v
                .entries()
                .ok_or_else(|| shape(CE, format!("`{list}` is not an array")))?,
        };
        for (k, _weight) in entries {
            let name = k
                .as_str()
                .ok_or_else(|| shape(CE, format!("a `{list}` key is not a name")))?;
            let kind = if kind == ExtensionKind::Module && profile.as_deref() == Some(name) {
                ExtensionKind::Profile
            } else {
                kind
            };
            extensions.insert(
                name.to_string(),
                SiteExtension {
                    kind,
                    enabled: true,
                    schema: match kind {
                        ExtensionKind::Theme => None,
                        _ => schemas.get(name).copied(),
                    },
                    version: None,
                    hidden: false,
                },
            );
        }
    }
    let mut post_updates = BTreeSet::new();
    if let Some(b) = existing_updates {
        const EU: &str = "key_value post_update.existing_updates";
        let v = php(EU, b)?;
        for (_, u) in v.entries().ok_or_else(|| shape(EU, "not an array"))? {
            let u = u
                .as_str()
                .ok_or_else(|| shape(EU, "an entry is not a name"))?;
            post_updates.insert(u.to_string());
        }
    }
    Ok(SiteState {
        generation: Generation::Drupal8Plus,
        profile,
        extensions,
        post_updates,
        core_version: None,
    })
}

/// The SQL that reads whether a site is in maintenance mode: Drupal 7's
/// `maintenance_mode` variable, Drupal 8+'s `system.maintenance_mode`
/// state (zero or one row, its serialized value).
pub fn maintenance_sql(generation: Generation) -> &'static str {
    match generation {
        Generation::Drupal7 => "SELECT value FROM variable WHERE name = 'maintenance_mode'",
        Generation::Drupal8Plus => {
            "SELECT value FROM key_value WHERE collection = 'state' AND name = 'system.maintenance_mode'"
        }
    }
}

/// Whether a serialized maintenance value (none: unset) means on. A value
/// that cannot be read counts as off.
pub fn maintenance_from(value: Option<&[u8]>) -> bool {
    value
        .and_then(|v| crate::drupal::unserialize::unserialize(v).ok())
        .is_some_and(|v| v.truthy())
}

/// One statement that reads all a Drupal 7 site's observation needs: its
/// `system` rows (tagged `s`), its `install_profile` (`p`) and
/// `maintenance_mode` (`m`) variables, for a database reached by a
/// client process per statement (MySQL), where one statement costs one
/// process.
pub fn d7_tagged_sql(prefix: &str) -> Result<String, StateError> {
    Queries::new(prefix)?;
    let p = prefix;
    Ok(format!(
        "SELECT 's', name, type, status, schema_version, info FROM {p}system \
         UNION ALL SELECT 'p', value, '', 0, 0, '' FROM {p}variable WHERE name = 'install_profile' \
         UNION ALL SELECT 'm', value, '', 0, 0, '' FROM {p}variable WHERE name = 'maintenance_mode'"
    ))
}

/// A Drupal 7 site's state and maintenance mode from the rows of
/// [`d7_tagged_sql`].
pub fn d7_from_tagged(rows: Rows) -> Result<(SiteState, bool), StateError> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let int = |what: &str, b: &[u8]| -> Result<i64, StateError> {
        text(b)
            .trim()
            .parse()
            .map_err(|_| StateError::Db(format!("{what} is not a number: {:?}", text(b))))
    };
    let (mut system, mut profile, mut maintenance) = (Vec::new(), None, None);
    for r in rows {
        let [tag, name, kind, status, schema, info]: [Vec<u8>; 6] = r
            .try_into()
            .map_err(|_| StateError::Db("tagged rows have 6 columns".into()))?;
        match tag.as_slice() {
            b"s" => system.push(D7SystemRow {
                name: text(&name),
                kind: text(&kind),
                status: int("system.status", &status)?,
                schema_version: int("system.schema_version", &schema)?,
                info: Some(info),
            }),
            b"p" => profile = Some(name),
            b"m" => maintenance = Some(name),
            t => return Err(StateError::Db(format!("unexpected row tag {:?}", text(t)))),
        }
    }
    let st = d7_state(&system, profile.as_deref())?;
    Ok((st, maintenance_from(maintenance.as_deref())))
}

/// Rows of a query, each column's bytes.
pub type Rows = Vec<Vec<Vec<u8>>>;

/// Reads a site's state through [`Queries`] with `query`, which runs one
/// statement and returns its rows, each column's bytes: the thin I/O half
/// for a database reached other than by rusqlite (MySQL). A column that
/// is not a number where one is expected is an error, never a panic.
pub fn read_rows(
    generation: Generation,
    prefix: &str,
    query: &mut dyn FnMut(&str) -> Result<Rows, String>,
) -> Result<SiteState, StateError> {
    let q = Queries::new(prefix)?;
    let mut run = |sql: &str| query(sql).map_err(StateError::Db);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let int = |what: &str, b: &[u8]| -> Result<i64, StateError> {
        text(b)
            .trim()
            .parse()
            .map_err(|_| StateError::Db(format!("{what} is not a number: {:?}", text(b))))
    };
    let first =
        |rows: Vec<Vec<Vec<u8>>>| rows.into_iter().next().and_then(|r| r.into_iter().next());
    match generation {
        Generation::Drupal7 => {
            let mut rows = Vec::new();
            for r in run(&q.d7_system)? {
                let [name, kind, status, schema, info]: [Vec<u8>; 5] = r
                    .try_into()
                    .map_err(|_| StateError::Db("system rows have 5 columns".into()))?;
                rows.push(D7SystemRow {
                    name: text(&name),
                    kind: text(&kind),
                    status: int("system.status", &status)?,
                    schema_version: int("system.schema_version", &schema)?,
                    info: Some(info),
                });
            }
            let profile = first(run(&q.d7_install_profile)?);
            d7_state(&rows, profile.as_deref())
        }
        Generation::Drupal8Plus => {
            let ce = first(run(&q.d8_core_extension)?)
                .ok_or_else(|| StateError::Db("no core.extension config".into()))?;
            let mut schema = Vec::new();
            for r in run(&q.d8_schema)? {
                let [name, value]: [Vec<u8>; 2] = r
                    .try_into()
                    .map_err(|_| StateError::Db("system.schema rows have 2 columns".into()))?;
                schema.push((text(&name), value));
            }
            let posts = first(run(&q.d8_post_updates)?);
            d8_state(&ce, &schema, posts.as_deref())
        }
    }
}

/// Reads a site's state from an SQLite database through [`Queries`]: the
/// thin I/O half, for SQLite-backed sites and tests.
pub fn read_sqlite(
    conn: &rusqlite::Connection,
    generation: Generation,
    prefix: &str,
) -> Result<SiteState, StateError> {
    use rusqlite::OptionalExtension;
    let q = Queries::new(prefix)?;
    let db = |e: rusqlite::Error| StateError::Db(e.to_string());
    // Drupal's PDO layer stores serialized values as BLOBs, but a value
    // written as TEXT reads the same.
    let bytes = |r: &rusqlite::Row<'_>, i: usize| -> rusqlite::Result<Vec<u8>> {
        Ok(match r.get_ref(i)? {
            rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => b.to_vec(),
            _ => Vec::new(),
        })
    };
    match generation {
        Generation::Drupal7 => {
            let mut st = conn.prepare(&q.d7_system).map_err(db)?;
            let rows = st
                .query_map([], |r| {
                    Ok(D7SystemRow {
                        name: r.get(0)?,
                        kind: r.get(1)?,
                        status: r.get(2)?,
                        schema_version: r.get(3)?,
                        info: Some(bytes(r, 4)?),
                    })
                })
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            let profile = conn
                .query_row(&q.d7_install_profile, [], |r| bytes(r, 0))
                .optional()
                .map_err(db)?;
            d7_state(&rows, profile.as_deref())
        }
        Generation::Drupal8Plus => {
            let ce = conn
                .query_row(&q.d8_core_extension, [], |r| bytes(r, 0))
                .map_err(db)?;
            let mut st = conn.prepare(&q.d8_schema).map_err(db)?;
            let schema = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, bytes(r, 1)?)))
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            let posts = conn
                .query_row(&q.d8_post_updates, [], |r| bytes(r, 0))
                .optional()
                .map_err(db)?;
            d8_state(&ce, &schema, posts.as_deref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_rows_give_state_and_maintenance() {
        let v = |s: &str| s.as_bytes().to_vec();
        let row = |t: &str, a: &str, b: &str, c: &str, d: &str, e: &str| {
            vec![v(t), v(a), v(b), v(c), v(d), v(e)]
        };
        let rows = vec![
            row(
                "s",
                "system",
                "module",
                "1",
                "7088",
                r#"a:1:{s:7:"version";s:5:"7.103";}"#,
            ),
            row("s", "standard", "module", "1", "0", ""),
            row("p", r#"s:8:"standard";"#, "", "0", "0", ""),
            row("m", "i:1;", "", "0", "0", ""),
        ];
        let (st, m) = d7_from_tagged(rows).unwrap();
        assert!(m);
        assert_eq!(st.extensions["system"].schema, Some(7088));
        assert_eq!(st.profile.as_deref(), Some("standard"));
        assert!(d7_from_tagged(vec![row("x", "", "", "", "", "")]).is_err());
        assert!(d7_from_tagged(vec![vec![v("s")]]).is_err());
        assert!(d7_tagged_sql("bad prefix;").is_err());
    }

    #[test]
    fn rows_read_as_bytes_give_the_same_state_and_bad_numbers_are_errors() {
        let info = br#"a:1:{s:7:"version";s:4:"7.98";}"#.to_vec();
        let mut good = |sql: &str| -> Result<Vec<Vec<Vec<u8>>>, String> {
            Ok(if sql.contains("FROM system") {
                vec![
                    vec![
                        b"system".to_vec(),
                        b"module".to_vec(),
                        b"1".to_vec(),
                        b"7086".to_vec(),
                        info.clone(),
                    ],
                    vec![
                        b"minimal".to_vec(),
                        b"module".to_vec(),
                        b"1".to_vec(),
                        b"0".to_vec(),
                        Vec::new(),
                    ],
                ]
            } else {
                vec![vec![br#"s:7:"minimal";"#.to_vec()]]
            })
        };
        let st = read_rows(Generation::Drupal7, "", &mut good).unwrap();
        assert_eq!(st.profile.as_deref(), Some("minimal"));
        assert_eq!(st.extensions["system"].schema, Some(7086));
        assert_eq!(st.core_version, Some(DrupalVersion::parse("7.98")));
        let mut bad = |_: &str| -> Result<Vec<Vec<Vec<u8>>>, String> {
            Ok(vec![vec![
                b"system".to_vec(),
                b"module".to_vec(),
                b"1".to_vec(),
                b"x".to_vec(),
                Vec::new(),
            ]])
        };
        assert!(read_rows(Generation::Drupal7, "", &mut bad).is_err());
        let mut short =
            |_: &str| -> Result<Vec<Vec<Vec<u8>>>, String> { Ok(vec![vec![b"system".to_vec()]]) };
        assert!(read_rows(Generation::Drupal7, "", &mut short).is_err());
        assert!(maintenance_from(Some(b"i:1;")));
        assert!(!maintenance_from(Some(b"i:0;")));
        assert!(!maintenance_from(Some(b"\xff garbage")));
        assert!(!maintenance_from(None));
    }

    fn row(name: &str, kind: &str, status: i64, schema: i64, info: &str) -> D7SystemRow {
        D7SystemRow {
            name: name.into(),
            kind: kind.into(),
            status,
            schema_version: schema,
            info: Some(info.as_bytes().to_vec()),
        }
    }

    #[test]
    fn drupal_7_rows() {
        let rows = vec![
            row(
                "system",
                "module",
                1,
                7084,
                "a:1:{s:7:\"version\";s:4:\"7.98\";}",
            ),
            row(
                "views",
                "module",
                1,
                7301,
                "a:2:{s:7:\"version\";s:8:\"7.x-3.24\";s:6:\"hidden\";b:0;}",
            ),
            row("old", "module", 0, 7001, ""),
            row("never", "module", 0, -1, ""),
            row("minimal", "module", 1, 0, "a:1:{s:6:\"hidden\";b:1;}"),
            row("bartik", "theme", 1, -1, ""),
            row("garland", "theme", 0, -1, ""),
            row("phptemplate", "theme_engine", 1, -1, ""),
        ];
        let s = d7_state(&rows, Some(b"s:7:\"minimal\";")).unwrap();
        assert_eq!(s.profile.as_deref(), Some("minimal"));
        assert_eq!(s.core_version.as_ref().map(|v| v.as_str()), Some("7.98"));
        let names: Vec<&str> = s.extensions.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["bartik", "minimal", "old", "system", "views"]);
        assert_eq!(s.extensions["minimal"].kind, ExtensionKind::Profile);
        assert!(s.extensions["minimal"].hidden);
        assert!(!s.extensions["old"].enabled);
        assert_eq!(s.extensions["old"].schema, Some(7001));
        assert_eq!(s.extensions["bartik"].schema, None);
        assert_eq!(
            s.extensions["views"].version.as_ref().unwrap().as_str(),
            "7.x-3.24"
        );
        // Unset profile: Drupal's default.
        assert_eq!(
            d7_state(&rows, None).unwrap().profile.as_deref(),
            Some("standard")
        );
        // A broken value names itself.
        let e = d7_state(&rows, Some(b"s:9:\"minimal\";")).unwrap_err();
        assert!(
            e.to_string().starts_with("variable install_profile: "),
            "{e}"
        );
        let mut bad = rows.clone();
        bad[1].info = Some(b"a:1:{".to_vec());
        let e = d7_state(&bad, None).unwrap_err();
        assert!(e.to_string().starts_with("system.info of views"), "{e}");
    }

    #[test]
    fn drupal_8_values() {
        let ce = b"a:4:{s:6:\"module\";a:3:{s:4:\"node\";i:0;s:6:\"system\";i:0;s:8:\"standard\";i:1000;}s:5:\"theme\";a:1:{s:7:\"olivero\";i:0;}s:7:\"profile\";s:8:\"standard\";s:5:\"_core\";a:1:{s:19:\"default_config_hash\";s:3:\"abc\";}}";
        let schema = vec![
            ("node".to_string(), b"i:8700;".to_vec()),
            ("system".to_string(), b"s:5:\"10201\";".to_vec()),
            ("standard".to_string(), b"i:8000;".to_vec()),
            ("gone".to_string(), b"i:8001;".to_vec()),
        ];
        let posts =
            b"a:2:{i:0;s:27:\"node_post_update_glossary_x\";i:1;s:21:\"system_post_update_yz\";}";
        let s = d8_state(ce, &schema, Some(posts)).unwrap();
        assert_eq!(s.profile.as_deref(), Some("standard"));
        assert_eq!(s.extensions.len(), 4);
        assert_eq!(s.extensions["system"].schema, Some(10201));
        assert_eq!(s.extensions["standard"].kind, ExtensionKind::Profile);
        assert_eq!(s.extensions["olivero"].schema, None);
        assert!(s.post_updates.contains("system_post_update_yz"));
        let e = d8_state(ce, &[("node".into(), b"b:1;".to_vec())], None).unwrap_err();
        assert!(e.to_string().contains("system.schema of node"), "{e}");
        assert!(d8_state(b"s:1:\"x\";", &[], None).is_err());
        assert!(d8_state(b"a:0:{}", &[], None).is_ok_and(|s| s.extensions.is_empty()));
        assert!(d8_state(b"a:1:{s:6:\"module\";i:1;}", &[], None).is_err());
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(Queries::new("").is_ok());
        assert!(Queries::new("d7_")
            .unwrap()
            .d7_system
            .contains("FROM d7_system"));
        assert!(Queries::new("main.").is_ok());
        for bad in ["a b", "x;DROP", "a.b.c", "'"] {
            assert!(Queries::new(bad).is_err(), "{bad}");
        }
    }
}
