//! Enable, disable, verify: settings and vhost rendered again from the
//! inventory; the undo puts back the saved ones.

use super::steps::{
    mark_committed, observe_fresh, restore_vhost, save_old_settings, save_old_vhost,
    write_settings, write_vhost,
};
use super::undo::Undo;
use super::{need, path_of, rollback, server_for, start, txt};
use crate::apply::{cutover, execute, step, ApplyOptions, TaskOutcome};
use crate::inventory::Inventory;
use crate::plan::{SiteAction, SitePlan};
use crate::server::{LocalServer, ServerError, Servers, OLD_SETTINGS_FILE};
use crate::task::{TaskKind, TaskRecord};

/// Enable, disable, verify: settings and vhost rendered again from the
/// inventory (keeping the site's database and credentials).
pub(in crate::apply) fn rerender(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let at = need(&s.from, "origin")?.clone();
    let cfg = need(&s.config, "settings")?.clone();
    let srv = server_for(inv, servers, &at.platform)?;
    let kind = match s.action {
        SiteAction::Enable => TaskKind::Enable,
        SiteAction::Disable => TaskKind::Disable,
        _ => TaskKind::Verify,
    };
    let run = start(srv, kind, s, opts)?;
    let dir = srv.site_dir(&at.platform, &at.domain);
    let health = cutover::health_of(inv, &s.name);
    Ok(execute(
        run,
        what,
        |run| {
            let (_obs, settings) = observe_fresh(run, srv, &at, s.observed.as_ref())?;
            step(run, "write-settings", |run| {
                save_old_settings(run, srv, &dir)?;
                let mut c = cfg.clone();
                c.db_name = Some(settings.database.name.clone());
                write_settings(srv, &c, &settings.database.password).map_err(txt)
            })?;
            step(run, "write-vhost", |run| {
                save_old_vhost(run, srv, &at.domain)?;
                let mut c = cfg.clone();
                c.db_name = Some(settings.database.name.clone());
                write_vhost(srv, &c).map_err(txt)?;
                srv.web().activate().map_err(txt)
            })?;
            if cfg.enabled {
                cutover::check_step(run, srv, &at.domain, &health)?;
            }
            mark_committed(run, srv, "write-vhost")?;
            let mut warnings = vec![];
            if let Err(e) = srv.remove_file_at(&dir.join(OLD_SETTINGS_FILE)) {
                warnings.push(format!("the saved old settings could not be removed: {e}"));
            }
            Ok(warnings)
        },
        |run| rollback(srv, run),
    ))
}

pub(in crate::apply) fn undo_rerender(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let Some(at) = &rec.from else {
        return Ok(());
    };
    let mut u = Undo::default();
    u.settings_back(srv, rec, &srv.site_dir(&at.platform, &at.domain));
    u.check(
        "putting back the vhost",
        restore_vhost(srv, rec, &at.domain, None),
    );
    u.done()
}

/// The cleanup after settings and vhost were written again: the saved old
/// settings go.
pub(in crate::apply) fn finish_rerender(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    match path_of(srv, &rec.journal.saved_settings)? {
        Some(p) => srv.remove_file_at(&p).map_err(txt),
        None => Ok(()),
    }
}
