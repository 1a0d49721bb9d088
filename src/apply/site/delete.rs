//! Delete (prune): a final backup, then the vhost, directory (through the
//! trash) and database removed; its undo puts back what is not gone yet.

use super::steps::{
    db_of, drop_db, maintenance_on, observe_fresh, restore_vhost, save_old_vhost, take_backup,
};
use super::undo::Undo;
use super::{need, path_of, rollback, server_for, start, txt};
use crate::apply::{execute, step, ApplyOptions, TaskOutcome};
use crate::backup;
use crate::driver::Which;
use crate::inventory::Inventory;
use crate::plan::SitePlan;
use crate::server::{LocalServer, ServerError, Servers};
use crate::task::{TaskKind, TaskRecord};

/// Delete (prune): a final backup, then the vhost, directory and database
/// removed. The directory goes to the trash first, so everything before the
/// database is dropped can be put back.
pub(in crate::apply) fn delete(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let from = need(&s.from, "origin")?.clone();
    let srv = server_for(inv, servers, &from.platform)
        .or_else(|_| servers.get(&inv.settings.defaults.server))?;
    let run = start(srv, TaskKind::Delete, s, opts)?;
    let keep = inv.settings.policy.keep_backups;
    let dir = srv.site_dir(&from.platform, &from.domain);
    let trash = srv.root().join("trash").join(&run.rec.id);
    Ok(execute(
        run,
        what,
        |run| {
            let mut warnings = Vec::new();
            let (_obs, settings) = observe_fresh(run, srv, &from, s.observed.as_ref())?;
            warnings.extend(take_backup(
                run,
                srv,
                &s.name,
                &from,
                &settings,
                backup::Scope::Full,
                Some(keep),
            )?);
            maintenance_on(run, srv, &settings)?;
            step(run, "remove-vhost", |run| {
                save_old_vhost(run, srv, &from.domain)?;
                let web = srv.web();
                web.write(&from.domain, Which::Site, None).map_err(txt)?;
                web.activate().map_err(txt)
            })?;
            step(run, "remove-site", |run| {
                let place = srv.place(&trash).map_err(txt)?;
                run.note(|j| j.trashed_dir = Some(place)).map_err(txt)?;
                srv.mkdir_at(trash.parent().expect("trash has a parent"))
                    .map_err(txt)?;
                srv.rename_at(&dir, &trash)
                    .map_err(|e| format!("moving the site to the trash: {e}"))
            })?;
            step(run, "drop-database", |run| {
                run.note(|j| j.committed = true).map_err(txt)?;
                db_of(srv, &settings)?
                    .drop_database(&settings.database.name)
                    .map_err(txt)
            })?;
            if let Err(e) = step(run, "empty-trash", |_| srv.remove_tree_at(&trash)) {
                warnings.push(format!(
                    "the deleted site's directory stays in {}: {e}",
                    trash.display()
                ));
            }
            Ok(warnings)
        },
        |run| rollback(srv, run),
    ))
}

pub(in crate::apply) fn undo_delete(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let Some(from) = &rec.from else {
        return Ok(());
    };
    let dir = srv.site_dir(&from.platform, &from.domain);
    let mut u = Undo::default();
    let trashed = u.place(srv, "the trashed site directory", &rec.journal.trashed_dir);
    if let Some(t) = trashed.filter(|t| srv.exists_at(t)) {
        u.move_back(srv, &t, &dir);
    }
    u.check(
        "putting back the vhost",
        restore_vhost(srv, rec, &from.domain, None),
    );
    u.online(srv, from, rec)
}

/// The cleanup after a delete committed: the database and the trash go.
pub(in crate::apply) fn finish_delete(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    if let Some(db) = &rec.journal.old_db {
        drop_db(srv, db)?;
    }
    if let Some(t) = path_of(srv, &rec.journal.trashed_dir)? {
        srv.remove_tree_at(&t).map_err(txt)?;
    }
    Ok(())
}
