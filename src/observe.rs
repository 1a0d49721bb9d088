//! The actual state: what exists on the servers (or, offline, what the status
//! files last recorded). The model here is plain data; reading it from a
//! server is [`crate::server::LocalServer::observe`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codebase::Codebase;
use crate::compat::{SiteExtras, SitePackage};
use crate::names::{Domain, Name, PackageName, PlatformName, SiteName};
use crate::render::SiteConfig;

/// A built platform as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedPlatform {
    /// Its name.
    pub name: PlatformName,
    /// The server it is built on.
    pub server: Name,
    /// The source it was built from, described.
    pub source: String,
    /// The hash of the source when it was built.
    pub source_hash: String,
    /// Its packages, read from the built codebase.
    pub codebase: Codebase,
}

/// A site as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedSite {
    /// What its settings say: name, domain, aliases, platform, database.
    pub config: SiteConfig,
    /// The server it lives on.
    pub server: Name,
    /// Its packages, from its database's `system` table.
    pub packages: BTreeMap<PackageName, SitePackage>,
    /// A Drupal site's post-updates and hidden extensions.
    #[serde(default, skip_serializing_if = "SiteExtras::is_empty")]
    pub drupal: SiteExtras,
    /// Whether it is in maintenance mode.
    pub maintenance: bool,
    /// Ways the site differs from what hoist wrote (a vhost edited by hand,
    /// say): a reason to re-render it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
}

impl ObservedSite {
    /// The site's name.
    pub fn name(&self) -> &SiteName {
        &self.config.site
    }
    /// The site's domain.
    pub fn domain(&self) -> &Domain {
        &self.config.domain
    }
    /// The platform it lives on.
    pub fn platform(&self) -> &PlatformName {
        &self.config.platform
    }
    /// A hash of everything observed of the site: a saved plan records it,
    /// and a task refuses to act when the site no longer hashes the same.
    pub fn fingerprint(&self) -> String {
        short_hash(self)
    }
}

fn short_hash<T: Serialize>(t: &T) -> String {
    // Streamed into the hash: the whole observation of a fleet is megabytes.
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    serde_json::to_writer(std::io::BufWriter::with_capacity(8192, &mut h), t)
        .expect("observed state serializes");
    let d = h.0.finalize();
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// A built platform that exists but cannot be read (its codebase is damaged,
/// say). Sites may still live in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenPlatform {
    /// The server it is on.
    pub server: Name,
    /// The source hash its record holds, when the record is readable.
    pub source_hash: Option<String>,
    /// Why it cannot be read.
    pub error: String,
}

/// A site directory that exists but cannot be observed (its database
/// refuses the connection, say). Planning must not take it for absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableSite {
    /// The platform it lives on.
    pub platform: PlatformName,
    /// Its directory's domain.
    pub domain: Domain,
    /// Its name, when its settings could be read.
    pub site: Option<SiteName>,
    /// Why it cannot be observed.
    pub error: String,
}

/// Everything observed, on every server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actual {
    /// Built platforms by name.
    pub platforms: BTreeMap<PlatformName, ObservedPlatform>,
    /// Installed sites by name.
    pub sites: BTreeMap<SiteName, ObservedSite>,
    /// Platforms that exist but cannot be read, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broken_platforms: BTreeMap<PlatformName, BrokenPlatform>,
    /// Site directories that exist but cannot be observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_sites: Vec<UnreadableSite>,
    /// Everything found on a server that is not a valid platform or site,
    /// in words, for the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl Actual {
    /// A hash of what was observed: a saved plan records it, and apply
    /// refuses the plan when a fresh observation hashes differently.
    pub fn fingerprint(&self) -> String {
        short_hash(self)
    }

    /// Adds what another server holds.
    pub fn merge(&mut self, other: Actual) {
        self.platforms.extend(other.platforms);
        self.sites.extend(other.sites);
        self.broken_platforms.extend(other.broken_platforms);
        self.unreadable_sites.extend(other.unreadable_sites);
        self.problems.extend(other.problems);
    }

    /// The unreadable site directory that may be `site` at `domain`.
    pub fn unreadable(&self, site: &SiteName, domain: &Domain) -> Option<&UnreadableSite> {
        self.unreadable_sites
            .iter()
            .find(|u| u.site.as_ref() == Some(site) || &u.domain == domain)
    }

    /// The fingerprint of one site's observed state (none when absent).
    pub fn site_fingerprint(&self, site: &SiteName) -> Option<String> {
        self.sites.get(site).map(ObservedSite::fingerprint)
    }
}
