//! Health checks and the blue/green cutover (spec 8, steps 7 and 8): a new
//! copy is checked on its preview vhost before any visitor reaches it;
//! then the site's own vhost is switched to it (the web server's test, then
//! its reload) and checked under the site's domain. A failed check fails
//! the step, and the task's undo switches back ([`super::site`]).
//!
//! With web kind `file` nothing serves the sites: the checks are skipped
//! and the task log says so.

use super::{step, StepError};
use crate::driver::health::Health;
use crate::driver::Which;
use crate::inventory::{HealthCheck, Inventory};
use crate::names::{Domain, Name};
use crate::render::SiteConfig;
use crate::server::LocalServer;
use crate::task::TaskRun;

/// The health check of site `name`: `hoist.yaml`'s, with the site's
/// overrides.
pub fn health_of(inv: &Inventory, name: &Name) -> HealthCheck {
    inv.sites
        .get(name)
        .map(|s| s.health_check(&inv.settings))
        .unwrap_or_else(|| inv.settings.health.clone())
}

/// Checks `domain` (or its preview) and records the result in the task's
/// log and journal; a failure is an error naming what was asked.
fn check(
    run: &mut TaskRun,
    srv: &LocalServer,
    domain: &Domain,
    which: Which,
    how: &HealthCheck,
) -> Result<(), String> {
    let web = srv.web();
    let shown = match which {
        Which::Site => domain.to_string(),
        Which::Preview => format!("{domain} (preview)"),
    };
    let h = web.check(domain, which, how);
    let line = h.describe(&shown, &how.path);
    run.log(line.clone());
    tracing::info!(site_domain = %domain, health = ?h, "health check");
    run.remember(|j| j.health = Some(h.clone()));
    match h {
        Health::Failed { .. } => Err(line),
        _ => Ok(()),
    }
}

/// A step `health-check`: the site under its own domain, as it is served.
pub(super) fn check_step(
    run: &mut TaskRun,
    srv: &LocalServer,
    domain: &Domain,
    how: &HealthCheck,
) -> Result<(), StepError> {
    step(run, "health-check", |run| {
        check(run, srv, domain, Which::Site, how)
    })
}

/// Step 7's check: the new copy served under its preview name only, then
/// checked there. Journaled first, so an undo removes the preview.
pub(super) fn preview_step(
    run: &mut TaskRun,
    srv: &LocalServer,
    cfg: &SiteConfig,
    how: &HealthCheck,
) -> Result<(), StepError> {
    step(run, "preview", |run| {
        let web = srv.web();
        if web.kind() == "file" {
            return check(run, srv, &cfg.domain, Which::Preview, how);
        }
        run.note(|j| {
            j.health_how = Some(how.clone());
            j.preview = Some(cfg.domain.clone());
        })
        .map_err(txt)?;
        let text = web.render(cfg, Which::Preview).map_err(txt)?;
        web.write(&cfg.domain, Which::Preview, Some(&text))
            .map_err(txt)?;
        web.activate().map_err(txt)?;
        check(run, srv, &cfg.domain, Which::Preview, how)
    })
}

/// Step 8: the site's vhost pointed at the new copy (test, reload), the
/// preview removed, and the site checked under its own domain. The caller
/// has saved the old vhost in the journal.
pub(super) fn switch_step(
    run: &mut TaskRun,
    srv: &LocalServer,
    cfg: &SiteConfig,
    how: &HealthCheck,
) -> Result<(), StepError> {
    step(run, "switch", |run| {
        let web = srv.web();
        let text = web.render(cfg, Which::Site).map_err(txt)?;
        web.write(&cfg.domain, Which::Site, Some(&text))
            .map_err(txt)?;
        web.write(&cfg.domain, Which::Preview, None).map_err(txt)?;
        web.activate().map_err(txt)?;
        if cfg.enabled {
            check(run, srv, &cfg.domain, Which::Site, how)
        } else {
            run.log("health check skipped: the site is disabled");
            Ok(())
        }
    })
}

/// After an undo put the old site back online: is it serving? The check
/// the task journaled is asked again; a failure is logged loudly (the undo
/// itself is complete: the old copy is back as it was, and nothing an undo
/// could do would make it serve).
pub(super) fn check_after_undo(srv: &LocalServer, domain: &Domain, rec: &crate::task::TaskRecord) {
    let Some(how) = &rec.journal.health_how else {
        return;
    };
    match srv.web().check(domain, Which::Site, how) {
        Health::Failed { reason } => tracing::error!(
            site_domain = %domain,
            "the site put back does not pass its health check: {reason}"
        ),
        h => tracing::info!(site_domain = %domain, health = ?h, "the site put back was checked"),
    }
}

fn txt<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}
