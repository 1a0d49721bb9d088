//! Validated names. Each is checked once, when it is made, so that the rest of
//! hoist can use it as a path component or a key without checking again: none
//! can contain `/`, `..`, NUL, whitespace or uppercase.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid name or domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

fn check_name(s: &str, what: &str, extra: &[u8], max: usize) -> Result<(), NameError> {
    let b = s.as_bytes();
    let ok_first = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok_rest = |c: u8| ok_first(c) || c == b'-' || extra.contains(&c);
    if b.is_empty() || b.len() > max || !ok_first(b[0]) || !b[1..].iter().all(|&c| ok_rest(c)) {
        let allowed = if extra.is_empty() {
            "lowercase letters, digits and '-'"
        } else {
            "lowercase letters, digits, '-' and '_'"
        };
        return Err(NameError(format!(
            "invalid {what} {s:?}: use 1 to {max} {allowed}, starting with a letter or digit"
        )));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $extra:expr, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// Checks `s` and wraps it.
            pub fn new(s: &str) -> Result<Self, NameError> {
                check_name(s, $what, $extra, $max)?;
                Ok(Self(s.to_string()))
            }
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<std::path::Path> for $ty {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A name of the inventory: a site, platform, server or database server
    /// (`[a-z0-9][a-z0-9-]{0,62}`, the spec's rule for file stems).
    Name, "name", &[], 63
);
name_type!(
    /// A package name inside a platform codebase (`[a-z0-9][a-z0-9_-]{0,63}`):
    /// Drupal-style names such as `legacy_polls` need the underscore.
    PackageName, "package name", b"_", 64
);

/// A site's stable identity (the stem of `sites/<name>.yaml`).
pub type SiteName = Name;
/// A platform's name (the stem of `platforms/<name>.yaml`).
pub type PlatformName = Name;

/// The longest domain hoist accepts, in bytes. DNS allows 253, but hoist
/// names files after domains and a file name has at most 255 bytes
/// (NAME_MAX): the longest is a backup, `<domain>-<YYYYmmdd.HHMMSS>-<N>.tar.gz`
/// (34 bytes past the domain with N up to u32::MAX), then an atomic write's
/// temporary `.<domain>.conf.tmp-<pid>` (21). 200 leaves room for both and
/// for suffixes to come.
pub const MAX_DOMAIN_LEN: usize = 200;

/// A lowercase DNS name, such as `shop.example.com`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain(String);

impl Domain {
    /// Checks `s` is a lowercase DNS name: labels of `[a-z0-9-]`, not starting
    /// or ending with `-`, at most 63 bytes each and [`MAX_DOMAIN_LEN`] in all.
    pub fn new(s: &str) -> Result<Self, NameError> {
        let label_ok = |l: &str| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
                && b.iter()
                    .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        };
        if s.len() > MAX_DOMAIN_LEN {
            return Err(NameError(format!(
                "invalid domain {:?}...: {} bytes; the limit is {MAX_DOMAIN_LEN}, \
                 so that the files named after it fit in 255 bytes",
                prefix(s, 40),
                s.len()
            )));
        }
        if s.is_empty() || !s.split('.').all(label_ok) {
            return Err(NameError(format!(
                "invalid domain {s:?}: use a lowercase DNS name such as shop.example.com \
                 (labels of 1 to 63 letters, digits or '-', not starting or ending with '-')"
            )));
        }
        Ok(Self(s.to_string()))
    }
    /// The domain as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<std::path::Path> for Domain {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl std::str::FromStr for Domain {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character
/// boundary: for showing a part of untrusted text without panicking on a
/// multibyte character.
pub fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_spec_pattern() {
        for ok in ["a", "shop-2-1", "0abc", &"a".repeat(63)] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_reject_path_tricks_and_lookalikes() {
        for bad in [
            "",
            "-a",
            "A",
            "shop_1",
            "..",
            "a/b",
            "a\0",
            "a b",
            "ѕhop", // Cyrillic s
            &"a".repeat(64),
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn package_names_allow_underscore() {
        assert!(PackageName::new("legacy_polls").is_ok());
        assert!(PackageName::new("_x").is_err());
        assert!(PackageName::new("a/b").is_err());
    }

    #[test]
    fn domains() {
        for ok in ["localhost", "shop.example.com", "a-b.c0.io"] {
            assert!(Domain::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Shop.example.com",
            "a..b",
            ".a",
            "a.",
            "-a.b",
            "a-.b",
            "a/b",
            "..",
            "a_b.c",
            "exаmple.com", // Cyrillic a
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(Domain::new(bad).is_err(), "{bad:?}");
        }
    }

    fn domain_of_len(n: usize) -> String {
        // labels of 63, joined by dots, cut to n bytes without a trailing dot
        let mut s = String::new();
        while s.len() < n {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(&"a".repeat(63));
        }
        s.truncate(n);
        if s.ends_with('.') {
            s.pop();
            s.push('b');
        }
        s
    }

    #[test]
    fn domains_are_limited_so_their_file_names_fit() {
        let longest = domain_of_len(MAX_DOMAIN_LEN);
        assert_eq!(longest.len(), MAX_DOMAIN_LEN);
        assert!(Domain::new(&longest).is_ok());
        let e = Domain::new(&domain_of_len(MAX_DOMAIN_LEN + 1)).unwrap_err();
        assert!(e.0.contains("201 bytes; the limit is 200"), "{e}");
        // the longest name derived from a domain: a backup with a suffix
        let backup = format!("{longest}-20260131.235959-{}.tar.gz", u32::MAX);
        assert!(backup.len() <= 255, "{}", backup.len());
        let tmp = format!(".{longest}.conf.tmp-{}", u32::MAX);
        assert!(tmp.len() <= 255, "{}", tmp.len());
        // DNS's own limit is refused with the same message
        assert!(Domain::new(&domain_of_len(253)).is_err());
    }

    #[test]
    fn prefixes_end_on_character_boundaries() {
        assert_eq!(prefix("2026-01-31T12:00", 16), "2026-01-31T12:00");
        assert_eq!(prefix("abc", 16), "abc");
        assert_eq!(prefix("2026-01-31T12:0é", 16), "2026-01-31T12:0");
        assert_eq!(prefix("ééé", 3), "é");
        assert_eq!(prefix("", 0), "");
    }
}
