//! Site tasks run on request rather than planned: `hoist backup`, and
//! finding the site they work on.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::rollback;
use super::steps::{observe_fresh, take_backup};
use crate::apply::{execute, TaskOutcome};
use crate::backup;
use crate::inventory::Inventory;
use crate::names::Name;
use crate::plan::Endpoint;
use crate::server::{LocalServer, ServerError, Servers};
use crate::task::{TaskKind, TaskRun};

/// Finds an installed site on any server.
pub(in crate::apply) fn find_site<'a>(
    servers: &'a Servers,
    site: &Name,
) -> Result<(&'a LocalServer, Endpoint), ServerError> {
    for srv in servers.by_name.values() {
        let sites = srv.observe().sites;
        if let Some(o) = sites.get(site) {
            return Ok((
                srv,
                Endpoint {
                    platform: o.platform().clone(),
                    domain: o.domain().clone(),
                    server: None,
                },
            ));
        }
    }
    Err(ServerError::Invalid(format!(
        "site {site} is not installed on any server"
    )))
}

pub(in crate::apply) fn start_explicit(
    srv: &LocalServer,
    kind: TaskKind,
    site: &Name,
    at: &Endpoint,
    commit: Option<String>,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<TaskRun, ServerError> {
    let mut run = TaskRun::start_noted(&srv.tasks(), kind, Some(site.clone()), None, |rec| {
        rec.from = Some(at.clone());
        rec.to = Some(at.clone());
        rec.commit = commit;
    })?;
    run.cancel_on(cancel);
    Ok(run)
}

/// `hoist backup SITE`: a full backup now (no maintenance mode: the dump is
/// a consistent snapshot), old ones pruned to `policy.keep_backups`. Once
/// `cancel` is set, no further step starts.
pub fn backup_now(
    inv: &Inventory,
    servers: &Servers,
    site: &Name,
    commit: Option<String>,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<TaskOutcome, ServerError> {
    let (srv, at) = find_site(servers, site)?;
    let run = start_explicit(srv, TaskKind::Backup, site, &at, commit, cancel)?;
    let keep = inv.settings.policy.keep_backups;
    Ok(execute(
        run,
        format!("backup {site}"),
        |run| {
            let (_obs, settings) = observe_fresh(run, srv, &at, None)?;
            take_backup(
                run,
                srv,
                site,
                &at,
                &settings,
                backup::Scope::Full,
                Some(keep),
            )
        },
        |run| rollback(srv, run),
    ))
}
