//! A Drupal 7 site's `settings.php`, rendered by a pure function: the
//! site's `$databases`, a `$drupal_hash_salt` that stays the same for the
//! site's whole life, and file paths under the site's directory.
//!
//! Aegir wrote an empty salt, so Drupal derived one from the database
//! credentials and every migrate logged everyone out; here the salt is
//! generated once ([`HashSalt::generate`]), read back from the settings a
//! site already has ([`existing_salt`]) and written again unchanged.
//! `$base_url` is left to Drupal, which derives it from the request's host,
//! so that a site answers on each of its domains and keeps working when
//! renamed.

use std::fmt::Write as _;
use std::path::PathBuf;

use rand::RngCore;

use crate::render::Secret;

/// Why settings could not be rendered or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A value PHP could hold but a settings file must not: a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which value.
        what: &'static str,
    },
    /// A salt given in was empty: Drupal would then derive one from the
    /// database credentials, which change on a migrate.
    #[error("a Drupal hash salt must not be empty")]
    EmptySalt,
    /// The site directory name is not a plain domain.
    #[error("site directory {0:?} is not a plain domain name")]
    SiteDir(String),
    /// An SQLite database path that is not absolute.
    #[error("SQLite database path {0:?} is not absolute")]
    RelativeSqlite(PathBuf),
    /// The existing settings set the salt in a way hoist cannot read back
    /// (not a single-quoted literal), so keeping it is impossible.
    #[error("settings.php line {line}: $drupal_hash_salt is not a single-quoted string literal; hoist cannot keep it")]
    UnreadableSalt {
        /// 1-based line of the assignment.
        line: usize,
    },
}

/// A site's database as Drupal 7 reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (Drupal's `sqlite` driver).
    Sqlite {
        /// Absolute path of the database file.
        path: PathBuf,
    },
    /// A MariaDB/MySQL database (Drupal's `mysql` driver).
    Mysql {
        /// Where the server listens.
        at: MysqlAt,
        /// Database name.
        database: String,
        /// Database user.
        username: String,
        /// The user's password.
        password: Secret,
    },
}

/// Where a MariaDB/MySQL server listens, as Drupal 7's `mysql` driver
/// reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MysqlAt {
    /// TCP: host name or address, and port.
    Tcp {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A unix socket (Drupal's `unix_socket`), absolute.
    Socket(PathBuf),
}

impl Database {
    /// Drupal's driver name.
    pub fn driver(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Mysql { .. } => "mysql",
        }
    }

    /// The connection as the array Drupal 7 keeps in
    /// `$databases['default']['default']`, as JSON (for the runner's
    /// request). Holds the password: never log it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Database::Sqlite { path } => serde_json::json!({
                "driver": "sqlite",
                "database": path.to_string_lossy(),
                "prefix": "",
            }),
            Database::Mysql {
                at,
                database,
                username,
                password,
            } => {
                // In the order settings.php has them.
                let mut v = serde_json::json!({
                    "driver": "mysql",
                    "database": database,
                    "username": username,
                    "password": password.expose(),
                });
                match at {
                    MysqlAt::Tcp { host, port } => {
                        v["host"] = host.as_str().into();
                        v["port"] = (*port).into();
                    }
                    MysqlAt::Socket(path) => {
                        v["unix_socket"] = path.to_string_lossy().into();
                    }
                }
                v["prefix"] = "".into();
                v["charset"] = "utf8mb4".into();
                v["collation"] = "utf8mb4_general_ci".into();
                v
            }
        }
    }

    /// The password, if the connection has one.
    pub fn password(&self) -> Option<&Secret> {
        match self {
            Database::Sqlite { .. } => None,
            Database::Mysql { password, .. } => Some(password),
        }
    }
}

/// A site's `$drupal_hash_salt`: never empty, generated once, then kept.
#[derive(Clone, PartialEq, Eq)]
pub struct HashSalt(String);

impl HashSalt {
    /// A new random salt, shaped as Drupal's `drupal_random_key()` makes
    /// one: 32 random bytes in URL-safe base64 without padding.
    pub fn generate() -> HashSalt {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        HashSalt(base64_url(&bytes))
    }

    /// A salt given in (from the site's record or its settings).
    pub fn new(salt: impl Into<String>) -> Result<HashSalt, SettingsError> {
        let salt = salt.into();
        if salt.is_empty() {
            return Err(SettingsError::EmptySalt);
        }
        if salt.contains('\0') {
            return Err(SettingsError::Nul { what: "hash salt" });
        }
        Ok(HashSalt(salt))
    }

    /// The salt itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for HashSalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A salt signs sessions and tokens: as secret as a password.
        f.write_str("HashSalt(********)")
    }
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Where a site's salt came from, for the task log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaltOrigin {
    /// Read from the site's settings and kept.
    Kept,
    /// The site had no settings: a new salt.
    Generated,
    /// The site's settings had an empty salt (Drupal then derives one
    /// from the database credentials, as Aegir left it): replaced once by
    /// a stable one, which logs its users out this one time.
    ReplacedEmpty,
}

/// The salt to render for a site whose current `settings.php` (if any) is
/// `existing`: the one it has, else a new one.
pub fn keep_or_generate(existing: Option<&str>) -> Result<(HashSalt, SaltOrigin), SettingsError> {
    let Some(text) = existing else {
        return Ok((HashSalt::generate(), SaltOrigin::Generated));
    };
    match existing_salt(text)? {
        Some(salt) if !salt.is_empty() => Ok((HashSalt::new(salt)?, SaltOrigin::Kept)),
        Some(_) => Ok((HashSalt::generate(), SaltOrigin::ReplacedEmpty)),
        None => Ok((HashSalt::generate(), SaltOrigin::Generated)),
    }
}

/// The value of the last `$drupal_hash_salt = '…';` in a settings file's
/// text, unescaped as PHP reads a single-quoted string; `None` when the
/// file never assigns it. Lines that are comments are skipped.
pub fn existing_salt(settings_php: &str) -> Result<Option<String>, SettingsError> {
    const NAME: &str = "$drupal_hash_salt";
    let mut found = None;
    let mut offset = 0;
    for (index, line) in settings_php.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if !trimmed.starts_with(NAME) {
            continue;
        }
        let rest = trimmed[NAME.len()..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let value_at = start + (line.len() - rest.len());
        let unreadable = SettingsError::UnreadableSalt { line: index + 1 };
        let literal = settings_php[value_at..].trim_start();
        let Some(body) = literal.strip_prefix('\'') else {
            return Err(unreadable);
        };
        let (value, after) = unquote_single(body).ok_or_else(|| unreadable.clone())?;
        if !after.trim_start().starts_with(';') {
            return Err(unreadable);
        }
        found = Some(value);
    }
    Ok(found)
}

/// Reads a PHP single-quoted string's body up to its closing quote:
/// `\'` and `\\` are escapes, every other backslash is itself.
fn unquote_single(body: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => return Some((out, &body[i + 1..])),
            '\\' => match body[i + 1..].chars().next() {
                Some(next @ ('\'' | '\\')) => {
                    out.push(next);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    None
}

/// A value as a PHP single-quoted string literal: inside one, only `\'`
/// and `\\` are escapes, and `?>` ends nothing.
pub fn php_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// What a Drupal 7 `settings.php` is rendered from.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    /// The site's directory under `sites/` (its primary domain).
    pub site_dir: &'a str,
    /// Its database.
    pub database: &'a Database,
    /// Its salt, kept across migrates.
    pub hash_salt: &'a HashSalt,
    /// Whether to set a private files directory (`sites/<dir>/private`).
    /// The web server must refuse to serve it: Drupal protects it with an
    /// `.htaccess` that nginx does not read.
    pub private_files: bool,
}

/// A site directory name: a plain domain, never a path.
fn check_site_dir(dir: &str) -> Result<(), SettingsError> {
    let plain = !dir.is_empty()
        && !dir.starts_with(['.', '-'])
        && !dir.contains("..")
        && dir
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if plain {
        Ok(())
    } else {
        Err(SettingsError::SiteDir(dir.to_string()))
    }
}

fn no_nul(what: &'static str, value: &str) -> Result<(), SettingsError> {
    if value.contains('\0') {
        Err(SettingsError::Nul { what })
    } else {
        Ok(())
    }
}

/// The mark of a rendered file: a digest of where its database is and of
/// its site directory (never of the password, so a backup's copy, whose
/// password is removed, keeps it).
fn mark(s: &Settings<'_>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(s.site_dir.as_bytes());
    match s.database {
        Database::Sqlite { path } => {
            h.update(b"\0sqlite\0");
            h.update(path.as_os_str().as_encoded_bytes());
        }
        Database::Mysql {
            at,
            database,
            username,
            ..
        } => {
            h.update(format!("\0mysql\0{at:?}\0{database}\0{username}").as_bytes());
        }
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// PHP that makes a stale compiled copy of the file run the file on disk.
/// php-fpm's opcache looks at a changed script again only every
/// `opcache.revalidate_freq` seconds (2 by default): for that long after a
/// restore rewrote `settings.php` in place, a request could run the copy
/// compiled before, naming the database the restore replaced (dropped, or
/// on SQLite re-created empty by the first connection). The copy does not
/// find its own mark in the file on disk, so it drops itself from the
/// cache and includes that file instead (once: without opcache's API it
/// carries on as it is).
fn stale_copy_guard(s: &Settings<'_>) -> String {
    let mark = php_string(&format!("hoist-settings-{}", mark(s)));
    format!(
        "// A copy of this file compiled before hoist last rewrote it runs the\n\
         // file on disk instead (php-fpm's opcache re-reads a changed file\n\
         // only every opcache.revalidate_freq seconds).\n\
         if (empty($hoist_settings_reread) && strpos((string) @file_get_contents(__FILE__), {mark}) === FALSE) {{\n  \
           $hoist_settings_reread = TRUE;\n  \
           if (function_exists('opcache_invalidate')) {{\n    \
             opcache_invalidate(__FILE__, TRUE);\n  \
           }}\n  \
           return include __FILE__;\n\
         }}\n\n"
    )
}

/// Renders a site's `settings.php`. Every value is a single-quoted PHP
/// literal (or an integer), so nothing in a value runs or ends the PHP
/// block.
pub fn render(s: &Settings<'_>) -> Result<String, SettingsError> {
    check_site_dir(s.site_dir)?;
    let mut db = String::new();
    let mut entry = |key: &str, value: String| {
        let _ = writeln!(db, "  {} => {},", php_string(key), value);
    };
    match s.database {
        Database::Sqlite { path } => {
            let path_text = path.to_string_lossy();
            no_nul("SQLite path", &path_text)?;
            if !path.is_absolute() {
                return Err(SettingsError::RelativeSqlite(path.clone()));
            }
            entry("driver", php_string("sqlite"));
            entry("database", php_string(&path_text));
            entry("prefix", php_string(""));
        }
        Database::Mysql {
            at,
            database,
            username,
            password,
        } => {
            no_nul("database name", database)?;
            no_nul("database user", username)?;
            no_nul("database password", password.expose())?;
            entry("driver", php_string("mysql"));
            entry("database", php_string(database));
            entry("username", php_string(username));
            entry("password", php_string(password.expose()));
            match at {
                MysqlAt::Tcp { host, port } => {
                    no_nul("database host", host)?;
                    entry("host", php_string(host));
                    entry("port", port.to_string());
                }
                MysqlAt::Socket(path) => {
                    let text = path.to_string_lossy();
                    no_nul("database socket", &text)?;
                    entry("unix_socket", php_string(&text));
                }
            }
            entry("prefix", php_string(""));
            entry("charset", php_string("utf8mb4"));
            entry("collation", php_string("utf8mb4_general_ci"));
        }
    }
    let site = format!("sites/{}", s.site_dir);
    let mut out = String::new();
    out.push_str(
        "<?php\n\
         /**\n \
         * @file\n \
         * Written by hoist: every change here is replaced at the next apply.\n \
         */\n\n",
    );
    out.push_str(&stale_copy_guard(s));
    out.push_str("$databases = array();\n");
    out.push_str("$databases['default']['default'] = array(\n");
    out.push_str(&db);
    out.push_str(");\n\n");
    out.push_str("// Kept across migrates, so that sessions and tokens stay valid.\n");
    let _ = writeln!(
        out,
        "$drupal_hash_salt = {};\n",
        php_string(s.hash_salt.expose())
    );
    out.push_str(
        "// $base_url is not set: Drupal derives it from the request's host, so\n\
         // the site answers on each of its domains.\n\n\
         $update_free_access = FALSE;\n\n\
         ini_set('session.gc_probability', 1);\n\
         ini_set('session.gc_divisor', 100);\n\
         ini_set('session.gc_maxlifetime', 200000);\n\
         ini_set('session.cookie_lifetime', 2000000);\n\n",
    );
    let _ = writeln!(
        out,
        "$conf['file_public_path'] = {};",
        php_string(&format!("{site}/files"))
    );
    if s.private_files {
        let _ = writeln!(
            out,
            "$conf['file_private_path'] = {};",
            php_string(&format!("{site}/private"))
        );
    }
    out.push_str(
        "// hoist owns the permissions of the site directory and this file;\n\
         // Drupal must not chmod them.\n\
         $conf['skip_permissions_hardening'] = TRUE;\n",
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite() -> Database {
        Database::Sqlite {
            path: PathBuf::from("/srv/hoist/databases/example.org.sqlite"),
        }
    }

    #[test]
    fn php_strings_escape_quotes_and_backslashes_only() {
        assert_eq!(php_string(r"a'b\c?>d"), r"'a\'b\\c?>d'");
        assert_eq!(php_string(""), "''");
    }

    #[test]
    fn generated_salts_are_long_distinct_and_url_safe() {
        let a = HashSalt::generate();
        let b = HashSalt::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64_url(b"Man"), "TWFu");
        assert_eq!(base64_url(b"Ma"), "TWE");
        assert_eq!(base64_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn an_empty_salt_is_refused() {
        assert_eq!(HashSalt::new(""), Err(SettingsError::EmptySalt));
    }

    #[test]
    fn the_rendered_salt_is_read_back_unchanged() {
        for value in [r"plain", r"it's \ a ?> salt \\'", "\\"] {
            let salt = HashSalt::new(value).unwrap();
            let db = sqlite();
            let text = render(&Settings {
                site_dir: "example.org",
                database: &db,
                hash_salt: &salt,
                private_files: false,
            })
            .unwrap();
            assert_eq!(existing_salt(&text).unwrap().as_deref(), Some(value));
            let (kept, origin) = keep_or_generate(Some(&text)).unwrap();
            assert_eq!((kept, origin), (salt, SaltOrigin::Kept));
        }
    }

    #[test]
    fn salts_are_generated_once_and_empty_ones_replaced() {
        let (_, origin) = keep_or_generate(None).unwrap();
        assert_eq!(origin, SaltOrigin::Generated);
        let (_, origin) = keep_or_generate(Some("<?php\n$databases = array();\n")).unwrap();
        assert_eq!(origin, SaltOrigin::Generated);
        let aegir = "<?php\n# $drupal_hash_salt = 'comment';\n$drupal_hash_salt = '';\n";
        let (salt, origin) = keep_or_generate(Some(aegir)).unwrap();
        assert_eq!(origin, SaltOrigin::ReplacedEmpty);
        assert!(!salt.expose().is_empty());
    }

    #[test]
    fn a_salt_read_from_a_file_is_refused_with_its_line() {
        let text = "<?php\n\n$drupal_hash_salt = file_get_contents('/x');\n";
        assert_eq!(
            existing_salt(text),
            Err(SettingsError::UnreadableSalt { line: 3 })
        );
    }

    #[test]
    fn mysql_settings_hold_every_connection_value() {
        let db = Database::Mysql {
            at: MysqlAt::Tcp {
                host: "127.0.0.1".into(),
                port: 3307,
            },
            database: "site_db".into(),
            username: "site_user".into(),
            password: Secret::new("pa'ss".into()),
        };
        let salt = HashSalt::generate();
        let text = render(&Settings {
            site_dir: "example.org",
            database: &db,
            hash_salt: &salt,
            private_files: true,
        })
        .unwrap();
        for want in [
            "'driver' => 'mysql',",
            "'port' => 3307,",
            r"'password' => 'pa\'ss',",
            "$conf['file_public_path'] = 'sites/example.org/files';",
            "$conf['file_private_path'] = 'sites/example.org/private';",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        assert!(!text.contains("$base_url ="));
    }

    #[test]
    fn bad_values_are_refused() {
        let salt = HashSalt::generate();
        let relative = Database::Sqlite {
            path: PathBuf::from("db.sqlite"),
        };
        let settings = |dir, db| Settings {
            site_dir: dir,
            database: db,
            hash_salt: &salt,
            private_files: false,
        };
        assert!(matches!(
            render(&settings("example.org", &relative)),
            Err(SettingsError::RelativeSqlite(_))
        ));
        let db = sqlite();
        for dir in ["", "../x", "a/b", ".hidden", "a b"] {
            assert_eq!(
                render(&settings(dir, &db)),
                Err(SettingsError::SiteDir(dir.into()))
            );
        }
        let nul = Database::Mysql {
            at: MysqlAt::Tcp {
                host: "h".into(),
                port: 1,
            },
            database: "d".into(),
            username: "u".into(),
            password: Secret::new("a\0b".into()),
        };
        assert_eq!(
            render(&settings("example.org", &nul)),
            Err(SettingsError::Nul {
                what: "database password"
            })
        );
    }

    #[test]
    fn a_socket_is_drupal_s_unix_socket() {
        let db = Database::Mysql {
            at: MysqlAt::Socket(PathBuf::from("/run/mysqld/mysqld.sock")),
            database: "d".into(),
            username: "u".into(),
            password: Secret::new("p".into()),
        };
        let salt = HashSalt::generate();
        let text = render(&Settings {
            site_dir: "example.org",
            database: &db,
            hash_salt: &salt,
            private_files: false,
        })
        .unwrap();
        assert!(
            text.contains("'unix_socket' => '/run/mysqld/mysqld.sock',"),
            "{text}"
        );
        assert!(
            !text.contains("'host'") && !text.contains("'port'"),
            "{text}"
        );
        assert_eq!(db.to_json()["unix_socket"], "/run/mysqld/mysqld.sock");
        assert!(db.to_json().get("host").is_none());
    }
}
