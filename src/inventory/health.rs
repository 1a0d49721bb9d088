//! `health:` of `hoist.yaml` and of a site (spec sections 2 and 8): the
//! HTTP request that tells whether a site serves, sent through its web
//! server with the site's own Host header.

use serde::{Deserialize, Serialize};

/// A health check with every key set: `hoist.yaml`'s `health`, a site's
/// overrides applied ([`HealthCheck::with`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    /// The path requested.
    pub path: String,
    /// The status the answer must have.
    pub expect_status: u16,
    /// A string the body must contain.
    pub expect_text: Option<String>,
    /// Seconds before the request counts as failed.
    pub timeout_s: u64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/".into(),
            expect_status: 200,
            expect_text: None,
            timeout_s: 10,
        }
    }
}

/// A site's `health:`: any key of [`HealthCheck`], overriding it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthOverride {
    /// Overrides [`HealthCheck::path`].
    pub path: Option<String>,
    /// Overrides [`HealthCheck::expect_status`].
    pub expect_status: Option<u16>,
    /// Overrides [`HealthCheck::expect_text`].
    pub expect_text: Option<String>,
    /// Overrides [`HealthCheck::timeout_s`].
    pub timeout_s: Option<u64>,
}

impl HealthCheck {
    /// This check with a site's overrides applied.
    pub fn with(&self, o: &HealthOverride) -> HealthCheck {
        HealthCheck {
            path: o.path.clone().unwrap_or_else(|| self.path.clone()),
            expect_status: o.expect_status.unwrap_or(self.expect_status),
            expect_text: o.expect_text.clone().or_else(|| self.expect_text.clone()),
            timeout_s: o.timeout_s.unwrap_or(self.timeout_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_overrides_only_what_it_names() {
        let base = HealthCheck {
            expect_text: Some("ok".into()),
            ..HealthCheck::default()
        };
        let o = HealthOverride {
            path: Some("/user/login".into()),
            ..HealthOverride::default()
        };
        let c = base.with(&o);
        assert_eq!(c.path, "/user/login");
        assert_eq!(c.expect_status, 200);
        assert_eq!(c.expect_text.as_deref(), Some("ok"));
        assert_eq!(base.with(&HealthOverride::default()), base);
    }
}
