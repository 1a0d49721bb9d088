//! The `rollback` task (spec section 9, `on_failure: rollback-wave`): a site
//! whose migrate, rename, migrate+rename or delete succeeded in a wave that
//! then halted is put back exactly as it was before that task: its
//! directory under the old platform and domain and its database rows, both
//! from the task's backup, and the old vhost as the task's journal kept it.
//! A site still there is backed up first, as the rollout left it, so that
//! nothing written to it since its task is lost. A site whose updates ran
//! in place is put back by a restore of its update's backup (which backs
//! the present state up first too).
//!
//! It is a move in the other direction, journaled with the move's keys:
//! `from` is where the site is now, `to` where it goes back to. So its undo
//! (before it commits) and its finish (after) are the move's, and crash
//! recovery handles it as it handles a move. A deleted site has no `from`:
//! its put-back is undone as an install is, by removing what it made.

use std::path::Path;

use super::site::{
    finish_move, maintenance_on, mark_committed, need, new_db_name, new_site, observe_fresh,
    old_vhost, rollback, server_for, take_backup, txt, undo_created, undo_move, write_settings,
};
use super::{cutover, execute, step, ApplyOptions, StepError, TaskOutcome};
use crate::backup;
use crate::driver::{DbRef, Which};
use crate::inventory::Inventory;
use crate::plan::SitePlan;
use crate::server::{ServerError, Servers};
use crate::task::{TaskKind, TaskRecord, TaskRun, TasksDir};

/// Whether a task of this kind can be put back by a rollback.
pub(super) fn can_put_back(kind: TaskKind) -> bool {
    matches!(
        kind,
        TaskKind::Migrate
            | TaskKind::Rename
            | TaskKind::MigrateRename
            | TaskKind::Delete
            | TaskKind::Update
    )
}

/// Puts site `s` back as it was before its task `done_id` of kind `kind`
/// (which succeeded and [`can_put_back`]): updates by a restore of the
/// update's backup, the rest by a rollback task ([`run`]).
pub(super) fn put_back(
    kind: TaskKind,
    s: &SitePlan,
    done_id: &str,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
) -> Result<TaskOutcome, ServerError> {
    if kind != TaskKind::Update {
        return run(s, done_id, inv, servers, opts);
    }
    let at = need(&s.from, "origin")?;
    let srv = server_for(inv, servers, &at.platform)?;
    let done = record(&srv.tasks(), done_id)?;
    let archive = done
        .backup
        .as_deref()
        .and_then(|b| Path::new(b).file_name())
        .and_then(|b| b.to_str())
        .ok_or_else(|| ServerError::Invalid(format!("task {done_id} took no backup")))?;
    let health = super::cutover::health_of(inv, &s.name);
    super::site::restore(
        servers,
        &s.name,
        &health,
        Some(archive),
        opts.commit.clone(),
        None,
    )
}

/// Reads the record of task `id` of the server's tasks.
fn record(tasks: &TasksDir, id: &str) -> Result<TaskRecord, ServerError> {
    tasks.record(id).ok_or_else(|| {
        ServerError::Invalid(format!(
            "{}: no task record {id} to put back from",
            tasks.display()
        ))
    })
}

/// Puts site `s` back as it was before its task `done_id` (which
/// succeeded), from that task's backup. A site still there (moved by its
/// task) is backed up first as it is now; a deleted one is made again.
pub(super) fn run(
    s: &SitePlan,
    done_id: &str,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
) -> Result<TaskOutcome, ServerError> {
    // Where the site is now: nowhere when its task deleted it.
    let cur = s.to.clone();
    let srv = server_for(
        inv,
        servers,
        &need(&cur.as_ref().or(s.from.as_ref()).cloned(), "origin")?.platform,
    )?;
    let done = record(&srv.tasks(), done_id)?;
    let old = done
        .from
        .clone()
        .ok_or_else(|| ServerError::Invalid(format!("task {done_id} records no origin")))?;
    let archive = srv.root().join(
        done.backup
            .as_deref()
            .ok_or_else(|| ServerError::Invalid(format!("task {done_id} took no backup")))?,
    );
    let prev = done.journal.maintenance_prev.clone().flatten();
    let saved_vhost = done.journal.old_vhost.clone().flatten();
    // The database server the site's rows go back to: where they are now,
    // or, for a deleted site, where its task found them.
    let deleted_db = done.journal.old_db.clone();
    let run = TaskRun::start_noted(
        &srv.tasks(),
        TaskKind::Rollback,
        Some(s.name.clone()),
        None,
        |rec| {
            rec.from = cur.clone();
            rec.to = Some(old.clone());
            rec.commit = opts.commit.clone();
            rec.wave = s.wave.clone();
        },
    )?;
    // Not tied to SIGINT: a rollback puts a site back to safety, and is
    // only started before hoist was asked to stop.
    let old_dir = srv.site_dir(&old.platform, &old.domain);
    let health = cutover::health_of(inv, &s.name);
    Ok(execute(
        run,
        format!("rollback {}", s.name),
        |run| {
            let mut warnings = Vec::new();
            run.log(format!(
                "putting the site back as it was before task {done_id}, from {}",
                archive.display()
            ));
            let now = match &cur {
                Some(cur) => Some((cur, observe_fresh(run, srv, cur, None)?)),
                None => None,
            };
            let manifest = step(run, "check-target", |_| {
                let m = backup::read_manifest(&srv.on_host(&archive).map_err(txt)?).map_err(txt)?;
                if m.site != s.name || m.platform != old.platform || m.domain != old.domain {
                    return Err(format!(
                        "the backup is of {} ({} on {}), not of {} as it was",
                        m.site, m.domain, m.platform, s.name
                    ));
                }
                if srv.exists_at(&old_dir) {
                    return Err(format!("{} exists already", old_dir.display()));
                }
                if cur.as_ref().is_none_or(|c| c.domain != old.domain)
                    && srv
                        .web()
                        .read(&old.domain, Which::Site)
                        .map_err(txt)?
                        .is_some()
                {
                    return Err(format!("a vhost for {} exists already", old.domain));
                }
                if m.scope == backup::Scope::Full {
                    let parent = old_dir.parent().expect("site dirs have a parent");
                    let parent = srv.at(parent).map_err(txt)?;
                    backup::check_room(&archive, &m, srv.host(), &parent).map_err(txt)?;
                } else if cur.is_none() {
                    return Err("a deleted site's backup holds its database only".into());
                }
                Ok(m)
            })?;
            let full = manifest.scope == backup::Scope::Full;
            let db_server = match (&now, &deleted_db) {
                (Some((_, (_, settings))), _) => settings.database.server.clone(),
                (None, Some(db)) => db.server.clone(),
                (None, None) => {
                    return Err(StepError {
                        step: "check-target".into(),
                        message: format!("task {done_id} names no database"),
                    })
                }
            };
            let new_db = DbRef {
                server: db_server,
                name: new_db_name(&s.name),
            };
            // What the undo removes, on disk with the next note (the
            // deploy's at the latest) before anything is made.
            let saved = cur.as_ref().and_then(|cur| old_vhost(srv, &cur.domain));
            run.remember(|j| j.old_vhost = Some(saved));
            let copied = if full {
                Some(srv.place(&old_dir).map_err(|e| StepError {
                    step: "check-target".into(),
                    message: e.to_string(),
                })?)
            } else {
                None
            };
            run.remember(|j| {
                j.new_db = Some(new_db.clone());
                j.moved_dir = copied.is_none();
                j.copied_dir = copied;
            });
            if let Some((cur, (_, settings))) = &now {
                maintenance_on(run, srv, settings)?;
                // What was written to the site since its task goes into a
                // backup of its own before the site is put back. Nothing is
                // pruned: the backup put back must stay.
                warnings.extend(take_backup(
                    run,
                    srv,
                    &s.name,
                    cur,
                    settings,
                    backup::Scope::Full,
                    None,
                )?);
            }
            let dbs = srv.db_server(&new_db.server).map_err(|e| StepError {
                step: "deploy".into(),
                message: e.to_string(),
            })?;
            // A full backup holds the directory as it was; a rename on its
            // own platform moved the directory and backed up the database
            // only: the directory moves back.
            let creds = step(run, "deploy", |run| {
                // On disk before the database exists: a deleted site's
                // put-back has had no note yet to carry the facts above.
                run.note(|j| j.new_db = Some(new_db.clone())).map_err(txt)?;
                let creds = dbs.create(&new_db.name).map_err(txt)?;
                if full {
                    let (from, to) = (srv.on_host(&archive), srv.on_host(&old_dir));
                    backup::extract(&from.map_err(txt)?, &to.map_err(txt)?, &mut |d| {
                        dbs.load(&creds, d, backup::DUMP)
                    })
                    .map_err(txt)?;
                } else if let Some((cur, _)) = &now {
                    backup::load_dump(&srv.on_host(&archive).map_err(txt)?, &mut |d| {
                        dbs.load(&creds, d, backup::DUMP)
                    })
                    .map_err(txt)?;
                    let cur_dir = srv.site_dir(&cur.platform, &cur.domain);
                    srv.rename_at(&cur_dir, &old_dir)
                        .map_err(|e| format!("moving the site back: {e}"))?;
                }
                Ok::<_, String>(creds)
            })?;
            step(run, "settings", |_| {
                let mut cfg = match &now {
                    Some((_, (obs, _))) if !full => {
                        let mut c = obs.config.clone();
                        c.platform = old.platform.clone();
                        c.domain = old.domain.clone();
                        c
                    }
                    _ => srv
                        .read_settings(&old.platform, &old.domain)
                        .map_err(txt)?
                        .0
                        .config(),
                };
                cfg.db_name = Some(new_db.name.clone());
                write_settings(srv, &cfg, &creds.password).map_err(txt)?;
                // The application's own settings first (Drupal's
                // settings.php, for the new database), then its rows: the
                // backup was taken in maintenance, and they get back the
                // value they had before the task.
                let (app, site) = new_site(srv, &old, &new_db, &creds)?;
                app.write_settings(&site, &cfg)?;
                app.set_maintenance(&site, prev.as_deref())
            })?;
            step(run, "switch", |_| {
                let web = srv.web();
                let text = match saved_vhost.as_deref() {
                    Some(t) => t.to_owned(),
                    None => {
                        let (st, _) = srv.read_settings(&old.platform, &old.domain).map_err(txt)?;
                        web.render(&st.config(), Which::Site).map_err(txt)?
                    }
                };
                web.write(&old.domain, Which::Site, Some(&text))
                    .map_err(txt)?;
                web.activate().map_err(txt)
            })?;
            cutover::check_step(run, srv, &old.domain, &health)?;
            mark_committed(run, srv, "health-check")?;
            if let Err(e) = step(run, "remove-new", |run| finish_move(srv, &run.rec)) {
                warnings.push(format!(
                    "the copy the rollout made could not be removed entirely: {e}"
                ));
            }
            Ok(warnings)
        },
        |run| rollback(srv, run),
    ))
}

/// Undoes a rollback that had not committed: what it extracted (and any
/// staging left by an extraction cut short) goes, the rest is a move's
/// undo. Every part may run again.
pub(super) fn undo(srv: &crate::server::LocalServer, rec: &TaskRecord) -> Result<(), String> {
    if let Some(dir) = super::site::path_of(srv, &rec.journal.copied_dir)? {
        backup::remove_staging(&srv.on_host(&dir).map_err(txt)?).map_err(txt)?;
    }
    match rec.from {
        Some(_) => undo_move(srv, rec),
        // A deleted site being made again: what was made goes.
        None => undo_created(srv, rec),
    }
}
