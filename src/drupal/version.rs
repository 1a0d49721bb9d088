//! Drupal's release versions, ordered as Drupal orders them.
//!
//! Drupal has three shapes of version string:
//! - core: `7.103`, `10.1.0`, `11.0.0-rc1`, `10.1.0-dev`, `11.x-dev`;
//! - legacy contrib, prefixed by the core it is for: `7.x-1.10`,
//!   `8.x-2.0-beta1`, `7.x-1.x-dev`, and the git-deploy form
//!   `7.x-1.0+5-dev` (five commits after 1.0);
//! - semantic-versioned contrib (Drupal 8.8 and later): `2.1.3`,
//!   `2.0.0-alpha1`, `2.1.x-dev`.
//!
//! Numbers compare as numbers (`7.x-1.10` > `7.x-1.9`, `7.103` > `7.98`).
//! Stabilities order as Composer and PHP's `version_compare` order them:
//! `dev` < `unstable` < `alpha` < `beta` < `rc` < the release. A branch
//! snapshot such as `1.x-dev` stands for the newest code of its branch, as
//! Composer's branch aliases do: above every `1.N`, below `2.0.0-alpha1`.
//! Drupal.org maps `8.x-1.5` to `1.5.0`, so a legacy version with the
//! `8.x-` prefix compares with semantic ones by its numbers; a `7.x-`
//! prefix sorts below every Drupal 8+ one. A string of none of these shapes
//! is kept as it is and sorts below every parsed one, by its bytes: the
//! order is total and deterministic, and nothing here panics.

use std::cmp::Ordering;
use std::fmt;

/// A stability, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Stability {
    Dev,
    Unstable(u64),
    Alpha(u64),
    Beta(u64),
    Rc(u64),
    Release,
}

/// The parts of a parsed version, in the order they compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    /// The core a legacy contrib version is for; 8 for every version
    /// without a prefix (core versions and semantic contrib ones).
    compat: u64,
    /// Major, minor, patch: missing ones are 0, a branch wildcard (`x`) is
    /// `u64::MAX`.
    nums: [u64; 3],
    stability: Stability,
    /// Commits after the tag, for the git-deploy `+N-dev` form.
    plus: Option<u64>,
}

/// A Drupal version string with Drupal's order. Equal only when the strings
/// are equal; two spellings of one release (`1.0` and `1.0.0`) are ordered
/// by their text, so the order stays total.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DrupalVersion {
    raw: String,
    key: Option<Key>,
    /// Whether the string has the legacy `N.x-` prefix of contrib.
    prefixed: bool,
}

impl DrupalVersion {
    /// Reads `s`; never fails (see the module documentation).
    pub fn parse(s: &str) -> DrupalVersion {
        let parsed = parse_key(s.trim());
        DrupalVersion {
            raw: s.to_string(),
            prefixed: parsed.as_ref().is_some_and(|(_, p)| *p),
            key: parsed.map(|(k, _)| k),
        }
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the string had one of Drupal's shapes.
    pub fn is_known(&self) -> bool {
        self.key.is_some()
    }

    /// The major version of a core version string (`7` for `7.103`, `11`
    /// for `11.0.0-rc1`); `None` for legacy contrib strings and unknown ones.
    pub fn core_major(&self) -> Option<u64> {
        match &self.key {
            Some(k) if !self.prefixed => Some(k.nums[0]).filter(|m| *m != u64::MAX),
            _ => None,
        }
    }
}

impl fmt::Display for DrupalVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Ord for DrupalVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // Unknown strings (None) sort below every parsed version.
        self.key
            .cmp(&other.key)
            .then_with(|| self.raw.cmp(&other.raw))
    }
}

impl PartialOrd for DrupalVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl serde::Serialize for DrupalVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> serde::Deserialize<'de> for DrupalVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(DrupalVersion::parse(&String::deserialize(d)?))
    }
}

/// Drupal's order of two version strings (see [`DrupalVersion`]).
pub fn version_order(a: &str, b: &str) -> Ordering {
    DrupalVersion::parse(a).cmp(&DrupalVersion::parse(b))
}

fn parse_key(s: &str) -> Option<(Key, bool)> {
    let s = s.to_ascii_lowercase();
    // The legacy `N.x-` prefix, unless the whole string is a core branch
    // snapshot such as `7.x-dev`.
    let (compat, prefixed, rest) = match s.split_once(".x-") {
        Some((c, r)) if r != "dev" && is_digits(c) => (c.parse().ok()?, true, r),
        _ => (8, false, s.as_str()),
    };
    // The git-deploy suffix: `+N-dev`.
    let (rest, plus) = match rest.split_once('+') {
        Some((r, p)) => (r, Some(p.strip_suffix("-dev")?.parse().ok()?)),
        None => (rest, None),
    };
    let (numbers, suffix) = match rest.split_once('-') {
        Some((n, suf)) => (n, Some(suf)),
        None => (rest, None),
    };
    let mut nums = [0u64; 3];
    let mut wildcard = false;
    let parts: Vec<&str> = numbers.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        if *p == "x" && i + 1 == parts.len() && i > 0 {
            wildcard = true;
            for n in &mut nums[i..] {
                *n = u64::MAX;
            }
        } else if is_digits(p) {
            nums[i] = p.parse().ok()?;
        } else {
            return None;
        }
    }
    let stability = match suffix {
        None if !wildcard => Stability::Release,
        Some("dev") => Stability::Dev,
        Some(suf) if !wildcard => stability(suf)?,
        _ => return None,
    };
    let key = Key {
        compat,
        nums,
        stability,
        plus,
    };
    Some((key, prefixed))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn stability(suf: &str) -> Option<Stability> {
    let split = suf.find(|c: char| c.is_ascii_digit()).unwrap_or(suf.len());
    let (word, n) = suf.split_at(split);
    let word = word.trim_end_matches(['-', '.']);
    let n: u64 = if n.is_empty() { 0 } else { n.parse().ok()? };
    Some(match word {
        "unstable" => Stability::Unstable(n),
        "alpha" | "a" => Stability::Alpha(n),
        "beta" | "b" => Stability::Beta(n),
        "rc" => Stability::Rc(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(a: &str, b: &str) {
        assert_eq!(version_order(a, b), Ordering::Less, "{a} < {b}");
        assert_eq!(version_order(b, a), Ordering::Greater, "{b} > {a}");
    }

    #[test]
    fn drupal_orders_numbers_as_numbers() {
        lt("7.x-1.9", "7.x-1.10");
        lt("7.98", "7.103");
        lt("7.103", "10.1.0");
        lt("2.1.3", "2.1.10");
        lt("9.5.11", "10.0.0");
    }

    #[test]
    fn pre_releases_come_before_their_release() {
        lt("8.x-2.0-beta1", "8.x-2.0");
        lt("8.x-2.0-alpha3", "8.x-2.0-beta1");
        lt("8.x-2.0-beta2", "8.x-2.0-rc1");
        lt("8.x-2.0-beta2", "8.x-2.0-beta10");
        lt("11.0.0-rc1", "11.0.0");
        lt("10.1.0-dev", "10.1.0-alpha1");
        lt("10.0.9", "10.1.0-dev");
        lt("7.x-3.0-unstable2", "7.x-3.0-alpha1");
        lt("2.0.0-RC1", "2.0.0");
    }

    #[test]
    fn branch_snapshots_are_the_newest_of_their_branch() {
        lt("7.x-1.10", "7.x-1.x-dev");
        lt("7.x-1.x-dev", "7.x-2.0-alpha1");
        lt("2.1.9", "2.1.x-dev");
        lt("2.1.x-dev", "2.2.0");
        lt("7.103", "7.x-dev");
        lt("11.x-dev", "12.0.0-alpha1");
    }

    #[test]
    fn git_deploy_versions_sit_between_releases() {
        lt("7.x-1.0", "7.x-1.0+5-dev");
        lt("7.x-1.0+5-dev", "7.x-1.0+12-dev");
        lt("7.x-1.0+12-dev", "7.x-1.1");
    }

    #[test]
    fn legacy_8x_versions_meet_semantic_ones() {
        lt("8.x-1.5", "2.0.0");
        lt("8.x-3.2", "3.2.1");
        lt("7.x-9.0", "1.0.0");
    }

    #[test]
    fn unknown_strings_are_ordered_and_never_panic() {
        lt("banana", "7.x-1.0");
        lt("apple", "banana");
        for odd in [
            "",
            ".",
            "..",
            "x",
            "1.x",
            "7.x-",
            "+",
            "1.0+",
            "1.0+x-dev",
            "-",
            "1.2.3.4",
            "99999999999999999999999",
            "7.x-1.0-gamma",
            "1..2",
            "ä.1",
        ] {
            let v = DrupalVersion::parse(odd);
            assert_eq!(v.cmp(&v), Ordering::Equal);
            let _ = v.cmp(&DrupalVersion::parse("1.0"));
        }
        assert!(!DrupalVersion::parse("1.2.3.4").is_known());
        assert!(DrupalVersion::parse("7.x-1.x-dev").is_known());
    }

    #[test]
    fn order_is_total_and_consistent() {
        let mut v: Vec<DrupalVersion> = [
            "7.x-1.10",
            "7.x-1.9",
            "1.0",
            "1.0.0",
            "banana",
            "8.x-2.0",
            "8.x-2.0-beta1",
            "7.98",
            "7.103",
            "10.1.0",
            "11.0.0-rc1",
            "11.0.0",
            "7.x-1.x-dev",
        ]
        .iter()
        .map(|s| DrupalVersion::parse(s))
        .collect();
        v.sort();
        for w in v.windows(2) {
            assert_eq!(w[0].cmp(&w[1]), Ordering::Less, "{} {}", w[0], w[1]);
        }
    }

    #[test]
    fn core_majors() {
        let m = |s: &str| DrupalVersion::parse(s).core_major();
        assert_eq!(m("7.103"), Some(7));
        assert_eq!(m("11.0.0-rc1"), Some(11));
        assert_eq!(m("11.x-dev"), Some(11));
        assert_eq!(m("7.x-dev"), Some(7));
        assert_eq!(m("7.x-1.0"), None);
        assert_eq!(m("7.x-1.x-dev"), None);
        assert_eq!(m("nope"), None);
    }
}
