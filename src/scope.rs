//! Which part of the fleet one hoist process reconciles: all of it, or one
//! server's share (`hoist watch --server NAME`, spec section 7), so a fleet
//! can run one pull agent per server over the same inventory repository.
//!
//! A server's share is the platforms declared on it and the sites declared
//! on those platforms. The rest of the inventory is out of scope but not
//! unknown: a site observed on this server but declared on another
//! server's platform is left alone (never planned as undeclared, so never
//! pruned), and the status files of other servers' sites are never
//! rewritten, deleted or overwritten by this server's status commits.
//!
//! Pure: the watcher and the status recorder call it with what they read.

use std::collections::BTreeMap;

use crate::inventory::Inventory;
use crate::names::{Name, PlatformName, SiteName};
use crate::observe::Actual;

/// Why a scope cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// `--server` names no server of `hoist.yaml`.
    #[error("--server {0}: no such server in hoist.yaml (declared: {1})")]
    UnknownServer(Name, String),
}

/// The part of the fleet a run reconciles.
#[derive(Debug, Clone, Default)]
pub enum Scope {
    /// Every server: the status files are all this run's.
    #[default]
    All,
    /// One server's share.
    Server(ServerScope),
}

/// One server's share of the inventory, and where everything else lives.
#[derive(Debug, Clone)]
pub struct ServerScope {
    server: Name,
    /// Every declared site and the server of its declared platform.
    site_servers: BTreeMap<SiteName, Name>,
    /// Every declared platform and its server.
    platform_servers: BTreeMap<PlatformName, Name>,
    /// Why sites declared here are held back: told with each observation.
    held: Vec<String>,
}

impl Scope {
    /// Narrows `inv` to `server`'s share: its platforms, the sites on them,
    /// and the server itself as the only one to lock and observe.
    ///
    /// `last_seen` is where the status files last saw each site. A site
    /// declared here but last seen on another server is moving between
    /// servers, which is not supported yet: it is held back here (this
    /// watcher cannot see the other copy and would install a second one).
    pub fn narrow(
        mut inv: Inventory,
        server: &Name,
        last_seen: &BTreeMap<SiteName, Name>,
    ) -> Result<(Inventory, Scope), ScopeError> {
        if !inv.settings.servers.contains_key(server) {
            let names: Vec<&str> = inv.settings.servers.keys().map(Name::as_str).collect();
            return Err(ScopeError::UnknownServer(server.clone(), names.join(", ")));
        }
        let platform_servers: BTreeMap<PlatformName, Name> = inv
            .platforms
            .values()
            .map(|p| (p.name.clone(), p.server.clone()))
            .collect();
        let site_servers: BTreeMap<SiteName, Name> = inv
            .sites
            .values()
            .filter_map(|s| Some((s.name.clone(), platform_servers.get(&s.platform)?.clone())))
            .collect();
        inv.settings.servers.retain(|n, _| n == server);
        inv.platforms.retain(|_, p| p.server == *server);
        let mut held = Vec::new();
        inv.sites.retain(|n, _| {
            if site_servers.get(n) != Some(server) {
                return false;
            }
            match last_seen.get(n) {
                Some(other) if other != server => {
                    held.push(format!(
                        "site {n} is declared on server {server} but was last seen on server {other}: left alone (a move between servers is carried out by a hoist that holds both: `hoist apply`, or `hoist watch` without --server)"
                    ));
                    false
                }
                _ => true,
            }
        });
        let scope = ServerScope {
            server: server.clone(),
            site_servers,
            platform_servers,
            held,
        };
        Ok((inv, Scope::Server(scope)))
    }

    /// The server this run is limited to, if any.
    pub fn server(&self) -> Option<&Name> {
        match self {
            Scope::All => None,
            Scope::Server(s) => Some(&s.server),
        }
    }

    /// Drops from `actual` what this server holds but the inventory puts
    /// on another server: a move between servers (not supported yet), and
    /// planning it here as undeclared could prune it. Each is told in `problems`.
    pub fn actual(&self, mut actual: Actual) -> Actual {
        let Scope::Server(s) = self else {
            return actual;
        };
        let mut told = s.held.clone();
        actual.sites.retain(|name, o| match s.site_servers.get(name) {
            Some(other) if *other != s.server => {
                told.push(format!(
                    "site {name} is on server {} but declared on server {other}'s platform: left alone (a move between servers is carried out by a hoist that holds both: `hoist apply`, or `hoist watch` without --server)",
                    o.server
                ));
                false
            }
            _ => true,
        });
        actual
            .platforms
            .retain(|name, o| match s.platform_servers.get(name) {
                Some(other) if *other != s.server => {
                    told.push(format!(
                    "platform {name} is on server {} but declared on server {other}: left alone",
                    o.server
                ));
                    false
                }
                _ => true,
            });
        actual.problems.extend(told);
        actual
    }

    /// Whether a site's status file is this run's to write or remove,
    /// given the server its status says it was observed on.
    pub fn owns_site(&self, name: &SiteName, observed_on: Option<&Name>) -> bool {
        match self {
            Scope::All => true,
            Scope::Server(s) => s.owns(observed_on, s.site_servers.get(name)),
        }
    }

    /// Whether a platform's status file is this run's to write or remove.
    pub fn owns_platform(&self, name: &PlatformName, observed_on: Option<&Name>) -> bool {
        match self {
            Scope::All => true,
            Scope::Server(s) => s.owns(observed_on, s.platform_servers.get(name)),
        }
    }
}

impl ServerScope {
    /// Observed here and declared here or nowhere; or not observed and
    /// declared here. What is observed on one server and declared on
    /// another is moving between them: neither watcher's to rewrite. A
    /// status of something neither observed nor declared is stale, and
    /// whoever sees it first removes it (removing twice is no conflict).
    fn owns(&self, observed_on: Option<&Name>, declared_on: Option<&Name>) -> bool {
        let here = |n: &Name| *n == self.server;
        match (observed_on, declared_on) {
            (Some(o), Some(d)) => here(o) && here(d),
            (Some(o), None) => here(o),
            (None, Some(d)) => here(d),
            (None, None) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn scope() -> Scope {
        Scope::Server(ServerScope {
            server: n("web-a"),
            site_servers: [(n("acme"), n("web-a")), (n("dental"), n("web-b"))].into(),
            platform_servers: [(n("shop-1"), n("web-a"))].into(),
            held: vec![],
        })
    }

    #[test]
    fn a_server_owns_what_it_holds_and_what_is_declared_on_it() {
        let s = scope();
        let (a, b) = (n("web-a"), n("web-b"));
        assert!(s.owns_site(&n("acme"), Some(&a)));
        assert!(s.owns_site(&n("acme"), None));
        assert!(!s.owns_site(&n("dental"), Some(&b)));
        assert!(!s.owns_site(&n("dental"), None));
        // Moving between servers: neither side's.
        assert!(!s.owns_site(&n("dental"), Some(&a)));
        assert!(!s.owns_site(&n("acme"), Some(&b)));
        // Undeclared: the server holding it; stale: anyone.
        assert!(s.owns_site(&n("gone"), Some(&a)));
        assert!(!s.owns_site(&n("gone"), Some(&b)));
        assert!(s.owns_site(&n("gone"), None));
        assert!(s.owns_platform(&n("shop-1"), Some(&a)));
        assert!(Scope::All.owns_site(&n("dental"), Some(&b)));
    }
}
