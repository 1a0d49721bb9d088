//! Names of site databases and users, checked before they reach any SQL,
//! and the login a site gets.

use std::fmt;

use super::{NameError, Secret};

/// Checks `value` against `[a-z0-9_]{1,max}`.
fn check_ident(kind: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    let err = |reason| NameError {
        kind,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(err("is empty"));
    }
    if value.len() > max {
        return Err(err(if max == 32 {
            "is longer than 32 characters (MySQL's limit for user names)"
        } else {
            "is longer than 64 characters"
        }));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(err("may hold only a-z, 0-9 and _"));
    }
    Ok(())
}

/// A site database's name: `[a-z0-9_]{1,64}`, so it needs no quoting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbName(String);

impl DbName {
    /// Validates a database name.
    pub fn new(s: &str) -> Result<DbName, NameError> {
        check_ident("database name", s, 64).map(|()| DbName(s.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site database user's name: `[a-z0-9_]{1,32}` (32 is MySQL's limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbUser(String);

impl DbUser {
    /// Validates a user name.
    pub fn new(s: &str) -> Result<DbUser, NameError> {
        check_ident("database user", s, 32).map(|()| DbUser(s.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DbUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a `grant_hosts` entry: a host name, an address, or a pattern
/// with `%`/`_`; no quote can occur, so it goes into SQL as `'host'`.
pub(super) fn check_grant_host(h: &str) -> Result<(), NameError> {
    let ok = !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:%_-/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NameError {
            kind: "grant host",
            value: h.to_owned(),
            reason: "must be 1 to 255 of a-z, A-Z, 0-9 and . : % _ - /",
        })
    }
}

/// A site's login: its database, its user and the user's password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The site's database.
    pub database: DbName,
    /// The site's user, granted that database only.
    pub user: DbUser,
    /// The user's password.
    pub password: Secret,
}

/// A site's login for unit tests.
#[cfg(test)]
pub(super) fn test_creds() -> Credentials {
    Credentials {
        database: DbName::new("site_a").unwrap(),
        user: DbUser::new("site_a").unwrap(),
        password: Secret::new("s3cretPW".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_sql() {
        assert!(DbName::new("shop_example_com").is_ok());
        assert!(DbName::new(&"a".repeat(64)).is_ok());
        assert!(DbName::new(&"a".repeat(65)).is_err());
        assert!(DbUser::new(&"a".repeat(32)).is_ok());
        let e = DbUser::new(&"a".repeat(33)).unwrap_err();
        assert!(e.reason.contains("32"), "{e}");
        for bad in ["", "Shop", "a-b", "a`b", "a'b", "a b", "é", "a;drop"] {
            assert!(DbName::new(bad).is_err(), "{bad:?}");
            assert!(DbUser::new(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "10.0.%",
            "%",
            "web-1.example.org",
        ] {
            assert!(check_grant_host(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a'b", "a b", "x\ny", "a`"] {
            assert!(check_grant_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = test_creds();
        assert!(!format!("{c:?}").contains("s3cretPW"));
        let p = crate::db::generate_password();
        assert_eq!(p.expose().len(), 32);
        assert!(p.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(p, crate::db::generate_password());
    }
}
