//! A migrate (or migrate+rename) onto a platform on another server (issue
//! 14 item 3): the steps of spec section 8 with the old site on server A
//! and the new copy made on server B, its undo (the copy on B removed, the
//! old site on A back online) and its finish (the old copy on A removed).
//!
//! The task's record stays on A, where the live site is until the switch;
//! it names B ([`crate::journal::Journal::to_server`]), so the undo or the
//! finish, from the record alone, reaches both. The site's files stream
//! from A's host to B's through this process as one checked tar stream
//! ([`copy_tree_between`]: nothing is kept whole here); its database is
//! copied onto its database server (a streamed dump and load when that is
//! another one); updates and the health checks run on B. Only once B's
//! copy is durable and serving is the commit noted on A, and only then is
//! A's copy removed.

use super::steps::{
    app_settings, check_target, copy_database, created, drop_db, maintenance_on, mark_committed,
    new_site_for, observe_fresh, take_backup, write_settings,
};
use super::undo::{drop_new_db, Undo};
use super::{need, new_db_name, rollback_with, start, txt};
use crate::apply::{cutover, execute, step, ApplyOptions, StepError, TaskOutcome};
use crate::backup;
use crate::driver::relay::copy_tree_between;
use crate::driver::{DbRef, Which};
use crate::inventory::Inventory;
use crate::plan::{SiteAction, SitePlan};
use crate::server::{LocalServer, ServerError, SETTINGS_FILE};
use crate::task::{TaskKind, TaskRecord};

/// Moves site `s` from its platform on `a` to its new platform on `b`.
pub(in crate::apply) fn transfer(
    s: &SitePlan,
    inv: &Inventory,
    a: &LocalServer,
    b: &LocalServer,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let from = need(&s.from, "origin")?.clone();
    let to = need(&s.to, "target")?.clone();
    let mut cfg = need(&s.config, "settings")?.clone();
    let kind = match s.action {
        SiteAction::MigrateRename => TaskKind::MigrateRename,
        _ => TaskKind::Migrate,
    };
    let run = start(a, kind, s, opts)?;
    let old_dir = a.site_dir(&from.platform, &from.domain);
    let new_dir = b.site_dir(&to.platform, &to.domain);
    let new_db = DbRef {
        server: cfg.db_server.clone(),
        name: new_db_name(&s.name),
    };
    cfg.db_name = Some(new_db.name.clone());
    let keep = inv.settings.policy.keep_backups;
    let health = cutover::health_of(inv, &s.name);
    Ok(execute(
        run,
        what,
        |run| {
            let (_obs, settings) = observe_fresh(run, a, &from, s.observed.as_ref())?;
            step(run, "check-target", |_| {
                check_target(b, Some(new_dir.as_path()), Some(&to.domain), &new_db)
            })?;
            // Known before anything changes: goes to disk with the
            // maintenance note, the task's first.
            let copied = b.place(&new_dir).map_err(|e| StepError {
                step: "maintenance-on".into(),
                message: e.to_string(),
            })?;
            run.remember(|j| {
                j.to_server = Some(b.name().clone());
                j.new_db = Some(new_db.clone());
                j.copied_dir = Some(copied);
            });
            maintenance_on(run, a, &settings)?;
            let mut warnings = take_backup(
                run,
                a,
                &s.name,
                &from,
                &settings,
                backup::Scope::Full,
                Some(keep),
            )?;
            let creds = step(run, "deploy", |run| {
                let creds = created(run, copy_database(a, &settings, &new_db)?)?;
                crate::failpoint::hit("deploy-inside", crate::failpoint::When::Before)?;
                let (src, dst) = (a.at(&old_dir).map_err(txt)?, b.at(&new_dir).map_err(txt)?);
                // The settings are not copied: the verify step writes the
                // new site's own.
                let n = copy_tree_between(a.host(), &src, b.host(), &dst, &[SETTINGS_FILE])
                    .map_err(|e| {
                        format!("copying the site directory to server {}: {e}", b.name())
                    })?;
                run.log(format!(
                    "copied the site directory to server {} ({n} bytes)",
                    b.name()
                ));
                app_settings(b, &to, &new_db, &creds, &cfg)?;
                Ok::<_, String>(creds)
            })?;
            let (app, site) = new_site_for(b, &to, &new_db, &creds, "update")?;
            warnings.extend(super::steps::settle(
                run,
                app,
                &site,
                &from.domain,
                &cfg,
                true,
                None,
                None,
            )?);
            step(run, "verify", |_| {
                write_settings(b, &cfg, &creds.password).map_err(txt)
            })?;
            step(run, "maintenance-off", |_| {
                app.set_maintenance(&site, Some("0"))
            })?;
            cutover::preview_step(run, b, &cfg, &health)?;
            cutover::switch_step(run, b, &cfg, &health)?;
            super::migrate::check_out_step(run, b, &to)?;
            // B's copy is made durable before the commit is noted on A: a
            // crash after the note must find it whole.
            b.sync_staged()
                .and_then(|()| b.host().check_lock())
                .map_err(|e| StepError {
                    step: "check-out".into(),
                    message: format!("server {}: {e}; nothing was committed", b.name()),
                })?;
            mark_committed(run, a, "check-out")?;
            if let Err(e) = step(run, "remove-old", |run| finish(a, b, &run.rec)) {
                warnings.push(format!("the old copy could not be removed entirely: {e}"));
            }
            Ok(warnings)
        },
        |run| {
            rollback_with(
                a,
                Some(b),
                run,
                |rec| undo(a, b, rec),
                |rec| finish(a, b, rec),
            )
        },
    ))
}

/// Undoes a move to server `b` that has not committed, from its record on
/// `a` alone: on `b` the new vhost, preview and copied directory go, and
/// the new database is dropped; on `a` the old site (never changed but for
/// maintenance) comes back online. May run again after a crash.
pub(in crate::apply) fn undo(
    a: &LocalServer,
    b: &LocalServer,
    rec: &TaskRecord,
) -> Result<(), String> {
    let (Some(from), Some(to)) = (&rec.from, &rec.to) else {
        return Ok(());
    };
    let mut u = Undo::default();
    // The task checked that no vhost of the new domain was on `b` before it
    // noted anything, and held `b`'s lock since: what is there is its own.
    let web = b.web();
    u.check(
        &format!("removing the new vhost on server {}", b.name()),
        web.write(&to.domain, Which::Site, None)
            .and_then(|()| web.write(&to.domain, Which::Preview, None))
            .and_then(|()| web.activate()),
    );
    if let Some(dir) = u.place(b, "the copied site directory", &rec.journal.copied_dir) {
        u.check(
            &format!("removing the copied site directory on server {}", b.name()),
            b.remove_tree_at(&dir),
        );
    }
    drop_new_db(&mut u, a, rec);
    u.online(a, from, rec)
}

/// Step 9 of a move to server `b`: the old copy on `a` removed (directory,
/// database, vhost) and the preview on `b`.
pub(in crate::apply) fn finish(
    a: &LocalServer,
    b: &LocalServer,
    rec: &TaskRecord,
) -> Result<(), String> {
    let (Some(from), Some(to)) = (&rec.from, &rec.to) else {
        return Ok(());
    };
    a.remove_tree_at(&a.site_dir(&from.platform, &from.domain))
        .map_err(txt)?;
    if let Some(db) = &rec.journal.old_db {
        drop_db(a, db)?;
    }
    let old = a.web();
    old.write(&from.domain, Which::Site, None).map_err(txt)?;
    old.activate().map_err(txt)?;
    let new = b.web();
    new.write(&to.domain, Which::Preview, None).map_err(txt)?;
    new.activate().map_err(txt)
}
