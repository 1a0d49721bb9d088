//! The `rollback` task (spec section 9, `on_failure: rollback-wave`): a site
//! whose migrate, rename or migrate+rename succeeded in a wave that then
//! halted is put back exactly as it was before that task: its directory
//! under the old platform and domain and its database rows, both from the
//! task's backup, and the old vhost as the task's journal kept it.
//!
//! It is a move in the other direction, journaled with the move's keys:
//! `from` is where the site is now, `to` where it goes back to. So its undo
//! (before it commits) and its finish (after) are the move's, and crash
//! recovery handles it as it handles a move.

use std::path::Path;

use serde_json::Value;

use super::site::{
    db_fact, db_of, finish_move, key, maintenance_on, mark_committed, need, new_db_name, new_site,
    observe_fresh, old_vhost, rollback, server_for, txt, undo_move, write_settings,
};
use super::{cutover, execute, step, ApplyOptions, StepError, TaskOutcome};
use crate::backup;
use crate::driver::{DbRef, Which};
use crate::inventory::Inventory;
use crate::plan::SitePlan;
use crate::server::{io_err, ServerError, Servers};
use crate::task::{self, TaskKind, TaskRecord, TaskRun};

/// Whether a task of this kind can be put back by a rollback.
pub(super) fn can_put_back(kind: TaskKind) -> bool {
    matches!(
        kind,
        TaskKind::Migrate | TaskKind::Rename | TaskKind::MigrateRename
    )
}

/// Reads the record of task `id` of the server's tasks.
fn record(tasks_dir: &Path, id: &str) -> Result<TaskRecord, ServerError> {
    let path = tasks_dir.join(format!("{id}.json"));
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    task::parse(&bytes)
        .ok_or_else(|| ServerError::Invalid(format!("{}: not a task record", path.display())))
}

/// Puts site `s` back as it was before its task `done_id` (which
/// succeeded), from that task's backup.
pub(super) fn run(
    s: &SitePlan,
    done_id: &str,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
) -> Result<TaskOutcome, ServerError> {
    let cur = need(&s.to, "target")?.clone();
    let srv = server_for(inv, servers, &cur.platform)?;
    let done = record(&srv.tasks_dir(), done_id)?;
    let old = done
        .from
        .clone()
        .ok_or_else(|| ServerError::Invalid(format!("task {done_id} records no origin")))?;
    let archive = srv.root().join(
        done.backup
            .as_deref()
            .ok_or_else(|| ServerError::Invalid(format!("task {done_id} took no backup")))?,
    );
    let prev = done.journal.get(key::MAINTENANCE_PREV).cloned();
    let saved_vhost = done.journal.get(key::OLD_VHOST).cloned();
    let run = TaskRun::start_noted(
        &srv.tasks_dir(),
        TaskKind::Rollback,
        Some(s.name.clone()),
        None,
        |rec| {
            rec.from = Some(cur.clone());
            rec.to = Some(old.clone());
            rec.commit = opts.commit.clone();
            rec.wave = s.wave.clone();
        },
    )
    .map_err(io_err(&srv.tasks_dir()))?;
    // Not tied to SIGINT: a rollback puts a site back to safety, and is
    // only started before hoist was asked to stop.
    let cur_dir = srv.site_dir(&cur.platform, &cur.domain);
    let old_dir = srv.site_dir(&old.platform, &old.domain);
    let health = cutover::health_of(inv, &s.name);
    Ok(execute(
        run,
        format!("rollback {}", s.name),
        |run| {
            run.log(format!(
                "putting the site back as it was before task {done_id}, from {}",
                archive.display()
            ));
            let (obs, settings) = observe_fresh(run, srv, &cur, None)?;
            let manifest = step(run, "check-target", |_| {
                let m = backup::read_manifest(&archive).map_err(txt)?;
                if m.site != s.name || m.platform != old.platform || m.domain != old.domain {
                    return Err(format!(
                        "the backup is of {} ({} on {}), not of {} as it was",
                        m.site, m.domain, m.platform, s.name
                    ));
                }
                if old_dir.exists() {
                    return Err(format!("{} exists already", old_dir.display()));
                }
                if old.domain != cur.domain
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
                    backup::check_room(&archive, &m, parent).map_err(txt)?;
                }
                Ok(m)
            })?;
            let full = manifest.scope == backup::Scope::Full;
            let new_db = DbRef {
                server: settings.database.server.clone(),
                name: new_db_name(&s.name),
            };
            // What the undo removes, on disk with maintenance's note,
            // before anything is made.
            run.remember(key::OLD_VHOST, old_vhost(srv, &cur.domain));
            run.remember(key::NEW_DB, db_fact(&new_db.server, &new_db.name));
            if full {
                run.remember(key::COPIED_DIR, old_dir.display().to_string());
            } else {
                run.remember(key::MOVED_DIR, true);
            }
            maintenance_on(run, srv, &settings)?;
            let dbs = db_of(srv, &settings).map_err(|message| StepError {
                step: "deploy".into(),
                message,
            })?;
            // A full backup holds the directory as it was; a rename on its
            // own platform moved the directory and backed up the database
            // only: the directory moves back.
            let creds = step(run, "deploy", |_| {
                let creds = dbs.create(&new_db.name).map_err(txt)?;
                if full {
                    backup::extract(&archive, &old_dir, &mut |d| {
                        dbs.load(&creds, d, backup::DUMP)
                    })
                    .map_err(txt)?;
                } else {
                    backup::load_dump(&archive, &mut |d| dbs.load(&creds, d, backup::DUMP))
                        .map_err(txt)?;
                    std::fs::rename(&cur_dir, &old_dir).map_err(|e| {
                        format!(
                            "moving {} back to {}: {e}",
                            cur_dir.display(),
                            old_dir.display()
                        )
                    })?;
                }
                Ok::<_, String>(creds)
            })?;
            step(run, "settings", |_| {
                let mut cfg = if full {
                    srv.read_settings(&old.platform, &old.domain)
                        .map_err(txt)?
                        .0
                        .config()
                } else {
                    let mut c = obs.config.clone();
                    c.platform = old.platform.clone();
                    c.domain = old.domain.clone();
                    c
                };
                cfg.db_name = Some(new_db.name.clone());
                write_settings(srv, &cfg, &creds.password).map_err(txt)?;
                // The application's own settings first (Drupal's
                // settings.php, for the new database), then its rows: the
                // backup was taken in maintenance, and they get back the
                // value they had before the task.
                let (app, site) = new_site(srv, &old, &new_db, &creds)?;
                app.write_settings(&site, &cfg)?;
                app.set_maintenance(&site, prev.as_ref().and_then(Value::as_str))
            })?;
            step(run, "switch", |_| {
                let web = srv.web();
                let text = match saved_vhost.as_ref().and_then(Value::as_str) {
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
            let mut warnings = Vec::new();
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
    if let Some(dir) = super::site::path_of(rec, key::COPIED_DIR) {
        backup::remove_staging(&dir).map_err(txt)?;
    }
    undo_move(srv, rec)
}
