//! A package version ordered as its application kind orders it: semantic
//! versioning for `embedded` packages (spec 3a), Drupal's order for
//! `drupal` ones (spec 3b), so that `10.1.0` sorts above `7.x-1.2` and
//! `7.x-1.10` above `7.x-1.9`, never as plain strings.
//!
//! A version is written as its plain text everywhere (plans, status
//! files). Read back, a text that is valid semver is taken as semver; any
//! comparison that involves a Drupal version uses Drupal's order on both
//! texts, which agrees with semver on every semver-shaped Drupal version,
//! so a Drupal `2.1.3` read back from a status file compares as it did.

use std::cmp::Ordering;
use std::fmt;

use crate::drupal::DrupalVersion;

/// A package's version, with its kind's order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    /// An `embedded` package's semantic version.
    Semver(semver::Version),
    /// A `drupal` extension's version as its info file writes it (`VERSION`
    /// already read as the core's). Empty when the info file has none.
    Drupal(DrupalVersion),
}

impl Version {
    /// A Drupal version string.
    pub fn drupal(s: &str) -> Version {
        Version::Drupal(DrupalVersion::parse(s))
    }

    /// The version of a Drupal extension whose info file gives none.
    pub fn unknown() -> Version {
        Version::drupal("")
    }

    /// Whether the version says anything: a version-downgrade is judged
    /// only between two known versions.
    pub fn is_known(&self) -> bool {
        match self {
            Version::Semver(_) => true,
            Version::Drupal(d) => d.is_known(),
        }
    }

    /// Whether `self` is known, `other` is known, and `self` is older.
    pub fn is_older_than(&self, other: &Version) -> bool {
        self.is_known() && other.is_known() && self < other
    }

    /// The version as Drupal's order sees it.
    fn as_drupal(&self) -> DrupalVersion {
        match self {
            Version::Semver(v) => DrupalVersion::parse(&v.to_string()),
            Version::Drupal(d) => d.clone(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Version::Semver(_) => 0,
            Version::Drupal(_) => 1,
        }
    }
}

impl Default for Version {
    fn default() -> Self {
        Version::unknown()
    }
}

impl From<semver::Version> for Version {
    fn from(v: semver::Version) -> Self {
        Version::Semver(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Semver(v) => v.fmt(f),
            Version::Drupal(d) => d.fmt(f),
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Version::Semver(a), Version::Semver(b)) => a.cmp(b),
            (Version::Drupal(a), Version::Drupal(b)) => a.cmp(b),
            // Mixed: Drupal's order on both texts; the variant breaks ties
            // so that the order stays total and agrees with `Eq`.
            _ => self
                .as_drupal()
                .cmp(&other.as_drupal())
                .then_with(|| self.rank().cmp(&other.rank())),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Version {
    type Err = std::convert::Infallible;

    /// Semver when the text is semver, else a Drupal version: never fails.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match semver::Version::parse(s) {
            Ok(v) => Version::Semver(v),
            Err(_) => Version::drupal(s),
        })
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse()
            .unwrap_or_else(|e: std::convert::Infallible| match e {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(s: &str) -> Version {
        Version::Semver(semver::Version::parse(s).unwrap())
    }

    #[test]
    fn each_kind_keeps_its_own_order() {
        assert!(sv("1.10.0") > sv("1.9.0"));
        assert!(sv("2.0.0-beta.1") < sv("2.0.0"));
        assert!(Version::drupal("10.1.0") > Version::drupal("7.x-1.2"));
        assert!(Version::drupal("7.x-1.10") > Version::drupal("7.x-1.9"));
        assert!(Version::drupal("7.103") > Version::drupal("7.98"));
        assert!(Version::drupal("8.x-2.0-beta1") < Version::drupal("8.x-2.0"));
    }

    #[test]
    fn a_semver_text_read_back_compares_as_drupal_did() {
        // A Drupal `10.1.0` written to a status file reads back as semver.
        let back: Version = serde_json::from_str("\"10.1.0\"").unwrap();
        assert!(matches!(back, Version::Semver(_)));
        assert!(back > Version::drupal("7.x-1.2"));
        assert!(back > Version::drupal("10.0.9"));
        assert!(back < Version::drupal("10.1.1"));
        let d: Version = serde_json::from_str("\"7.x-1.10\"").unwrap();
        assert_eq!(d, Version::drupal("7.x-1.10"));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"7.x-1.10\"");
    }

    #[test]
    fn unknown_versions_never_make_a_downgrade() {
        let none = Version::unknown();
        assert!(!none.is_older_than(&Version::drupal("7.x-1.0")));
        assert!(!Version::drupal("7.x-1.0").is_older_than(&none));
        assert!(Version::drupal("7.x-1.0").is_older_than(&Version::drupal("7.x-1.1")));
    }

    #[test]
    fn the_mixed_order_is_total() {
        let mut v = [
            sv("10.1.0"),
            Version::drupal("10.1.0"),
            Version::drupal("7.x-1.2"),
            sv("1.0.0"),
            Version::unknown(),
            Version::drupal("7.103"),
        ];
        v.sort();
        for w in v.windows(2) {
            assert_eq!(w[0].cmp(&w[1]), Ordering::Less, "{} {}", w[0], w[1]);
        }
    }
}
