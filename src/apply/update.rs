//! The `update` task (spec section 8): the pending updates of the platform
//! a site already lives on, run where it is. Steps 1, 2, 4 and 6 of a
//! migrate (maintenance on, backup, update, clear caches), a health check,
//! maintenance off.
//!
//! The site's own database is changed in place, so an exact copy of it is
//! kept aside from before the first update until the commit point: an undo
//! (or a recovery after a kill) puts that copy back, every row as it was,
//! rather than loading a dump that could fail to load. The backup is kept
//! either way.

use super::site::{
    db_of, live_site, login, maintenance_on, mark_committed, need, observe_fresh,
    restore_maintenance, rollback, server_for, site_db, start, take_backup, txt, update_step,
};
use super::{execute, step, ApplyOptions, TaskOutcome};
use crate::backup;
use crate::inventory::Inventory;
use crate::plan::SitePlan;
use crate::server::{LocalServer, ServerError, Servers};
use crate::task::{TaskKind, TaskRecord};

/// Runs the update of one site.
pub(super) fn run(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let at = need(&s.from, "origin")?.clone();
    let srv = server_for(inv, servers, &at.platform)?;
    let run = start(srv, TaskKind::Update, s, opts)?;
    let keep = inv.settings.policy.keep_backups;
    let health = super::cutover::health_of(inv, &s.name);
    Ok(execute(
        run,
        what,
        |run| {
            let mut warnings = Vec::new();
            let (obs, settings) = observe_fresh(run, srv, &at, s.observed.as_ref())?;
            maintenance_on(run, srv, &settings)?;
            warnings.extend(take_backup(
                run,
                srv,
                &s.name,
                &at,
                &settings,
                backup::Scope::Full,
                Some(keep),
            )?);
            let (app, site) = step(run, "keep-copy", |run| {
                run.note(|j| j.kept_copy = Some(site_db(&settings)))
                    .map_err(txt)?;
                db_of(srv, &settings)?
                    .keep_copy(&login(&settings))
                    .map_err(txt)?;
                live_site(srv, &settings)
            })?;
            warnings.extend(update_step(run, app, &site, &obs.config.profile)?);
            step(run, "clear-caches", |_| app.clear_caches(&site))?;
            step(run, "maintenance-off", |_| {
                app.set_maintenance(&site, Some("0"))
            })?;
            super::cutover::check_step(run, srv, &at.domain, &health)?;
            mark_committed(run, srv, "maintenance-off")?;
            if let Err(e) = step(run, "remove-copy", |run| finish(srv, &run.rec)) {
                warnings.push(format!(
                    "the copy of the database kept for an undo could not be removed: {e}"
                ));
            }
            Ok(warnings)
        },
        |run| rollback(srv, run),
    ))
}

/// Undoes an update that had not committed, from its record alone: the
/// kept copy put back as the site's database, maintenance as it was. May
/// run again after a crash.
pub(crate) fn undo(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let Some(at) = &rec.from else {
        return Ok(());
    };
    if rec.journal.kept_copy.is_some() {
        // A copy that failed halfway leaves its temporary file: it goes
        // too, once whatever was whole is back. Until the copy is back the
        // site stays in maintenance: its database may be half updated.
        let (settings, _) = srv.read_settings(&at.platform, &at.domain).map_err(txt)?;
        let dbs = db_of(srv, &settings)?;
        dbs.restore_copy(&login(&settings)).map_err(|e| {
            format!("the database kept before the updates could not be put back: {e}")
        })?;
        dbs.discard_copy(&login(&settings)).map_err(txt)?;
    }
    restore_maintenance(srv, at, rec)
}

/// Finishes an update that had committed: the kept copy is dropped.
pub(crate) fn finish(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let (Some(_), Some(at)) = (&rec.journal.kept_copy, &rec.from) else {
        return Ok(());
    };
    let (settings, _) = srv.read_settings(&at.platform, &at.domain).map_err(txt)?;
    db_of(srv, &settings)?
        .discard_copy(&login(&settings))
        .map_err(txt)
}
