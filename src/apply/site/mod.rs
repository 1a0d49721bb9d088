//! Site tasks, each a sequence of named steps recorded in the task journal:
//! install, migrate / rename / migrate+rename (spec section 8), clone,
//! delete, and enable / disable / verify. Every fact an undo needs is
//! journaled before the step that creates it, so the undo works from the
//! task record alone (which is what crash recovery has).
//!
//! Each task kind keeps its steps, its undo and its finish in a file of its
//! own ([`install`], [`migrate`], [`clone`], [`delete`], [`rerender`],
//! [`restore`], [`command`] for `hoist backup`; the update and the rollout's
//! rollback are in `apply/update.rs` and `apply/rollback.rs`). The steps
//! they share are in [`steps`], the undo's bookkeeping in [`undo`]; this
//! file picks the task for a plan's action ([`run`]) and the undo or finish
//! for a record ([`undo`](self::undo()), [`finish`]).

mod clone;
mod command;
mod delete;
mod install;
mod migrate;
mod rerender;
mod restore;
mod steps;
mod transfer;
mod undo;

pub use command::backup_now;
pub(in crate::apply) use install::undo_created;
pub(in crate::apply) use migrate::{finish_move, undo_move};
pub use restore::restore;
pub(in crate::apply) use steps::{
    db_of, live_site, login, maintenance_on, mark_committed, new_site, observe_fresh, old_vhost,
    restore_maintenance, site_db, take_backup, update_step, write_settings,
};

use std::path::PathBuf;

use crate::apply::{ApplyOptions, TaskOutcome};
use crate::inventory::Inventory;
use crate::journal::Place;
use crate::names::{Name, PlatformName};
use crate::plan::{SiteAction, SitePlan};
use crate::server::{LocalServer, ServerError, Servers};
use crate::task::{TaskKind, TaskRecord, TaskResult, TaskRun};
use clone::clone;
use delete::{delete, finish_delete, undo_delete};
use install::install;
use migrate::move_site;
use rerender::{finish_rerender, rerender, undo_rerender};
use restore::{finish_restore, undo_restore};

/// The backup a restore task restored (or tried to), relative to the
/// server root.
pub fn restored_from(rec: &TaskRecord) -> Option<&str> {
    rec.journal.restored_from.as_deref()
}

pub(in crate::apply) fn txt<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Where on `srv` a journaled place is (`None`: the journal has none).
pub(in crate::apply) fn path_of(
    srv: &LocalServer,
    p: &Option<Place>,
) -> Result<Option<PathBuf>, String> {
    p.as_ref().map(|p| srv.locate(p).map_err(txt)).transpose()
}

/// Runs the task for one site.
pub(in crate::apply) fn run(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> TaskOutcome {
    let r = match s.action {
        SiteAction::Create => install(s, inv, servers, opts, what.clone()),
        SiteAction::Migrate | SiteAction::Rename | SiteAction::MigrateRename => {
            move_site(s, inv, servers, opts, what.clone())
        }
        SiteAction::Clone => clone(s, inv, servers, opts, what.clone()),
        SiteAction::Update => super::update::run(s, inv, servers, opts, what.clone()),
        SiteAction::Delete => delete(s, inv, servers, opts, what.clone()),
        SiteAction::Enable | SiteAction::Disable | SiteAction::Verify => {
            rerender(s, inv, servers, opts, what.clone())
        }
        SiteAction::Noop => {
            return TaskOutcome {
                id: None,
                what,
                result: TaskResult::Success,
                message: None,
            }
        }
    };
    r.unwrap_or_else(|e| TaskOutcome {
        id: None,
        what,
        result: TaskResult::Failed,
        message: Some(e.to_string()),
    })
}

/// The server a site on `platform` lives on.
pub(in crate::apply) fn server_for<'a>(
    inv: &Inventory,
    servers: &'a Servers,
    platform: &PlatformName,
) -> Result<&'a LocalServer, ServerError> {
    let name: Name = inv
        .platforms
        .get(platform)
        .map(|p| p.server.clone())
        .unwrap_or_else(|| inv.settings.defaults.server.clone());
    servers.get(&name)
}

pub(in crate::apply) fn start(
    srv: &LocalServer,
    kind: TaskKind,
    s: &SitePlan,
    opts: &ApplyOptions,
) -> Result<TaskRun, ServerError> {
    let mut run = TaskRun::start_noted(&srv.tasks(), kind, Some(s.name.clone()), None, |rec| {
        rec.from = s.from.clone();
        rec.to = s.to.clone();
        rec.commit = opts.commit.clone();
        rec.wave = s.wave.clone();
    })?;
    run.cancel_on(opts.cancel.clone());
    Ok(run)
}

pub(in crate::apply) fn need<'a, T>(o: &'a Option<T>, what: &str) -> Result<&'a T, ServerError> {
    o.as_ref()
        .ok_or_else(|| ServerError::Invalid(format!("the plan has no {what} for the site")))
}

/// A fresh database name for a site: its name and a random suffix, so a
/// migration's new database never collides with the old one.
pub fn new_db_name(site: &Name) -> String {
    use rand::Rng;
    // A test fixes the suffix to make a name that is taken already.
    let suffix = crate::failpoint::value("db-suffix")
        .unwrap_or_else(|| format!("{:08x}", rand::rng().random::<u32>()));
    format!("{}_{suffix}", site.as_str().replace('-', "_"))
}

/// The undo closure of every site task: a task that had committed is
/// finished, any other is undone, both from its journal alone. Returns
/// what the undo could not do, for the task's message.
pub(in crate::apply) fn rollback(srv: &LocalServer, run: &mut TaskRun) -> Result<(), String> {
    rollback_with(
        srv,
        None,
        run,
        |rec| undo_parts(srv, rec),
        |rec| finish(srv, rec, None),
    )
}

/// [`rollback`] of a task on `srv` whose undo and finish are `undo_it`
/// and `finish_it` (a move to `other`, another server, reaches both: an
/// undo waits while that server does not answer, as for a database server).
pub(in crate::apply) fn rollback_with(
    srv: &LocalServer,
    other: Option<&LocalServer>,
    run: &mut TaskRun,
    undo_it: impl FnOnce(&TaskRecord) -> Result<(), String>,
    finish_it: impl FnOnce(&TaskRecord) -> Result<(), String>,
) -> Result<(), String> {
    if run.rec.journal.committed {
        run.log(match finish_it(&run.rec) {
            Ok(()) => {
                "the task had committed, so it was finished rather than rolled back".to_string()
            }
            Err(e) => format!("the task had committed; finishing it failed: {e}"),
        });
        return Ok(());
    }
    let blocked = other
        .and_then(|b| {
            let answers = b.host().kind(&crate::driver::host::HostPath::root());
            answers
                .err()
                .map(|e| format!("server {} does not answer ({e})", b.name()))
        })
        .or_else(|| {
            undo_blocked(srv, &run.rec)
                .map(|why| format!("the database server does not answer ({why})"))
        });
    if let Some(why) = blocked {
        let msg = format!(
            "the undo waits: {why}; the next hoist run on this server retries it; until then the site stays as the failed step left it, its backup kept"
        );
        run.log(format!("error: {msg}"));
        return match run.note(|j| j.undo_waits = true) {
            Ok(()) => Err(msg),
            Err(e) => Err(format!(
                "{msg}; and the task journal could not be written: {e}"
            )),
        };
    }
    match undo_it(&run.rec).map_err(|e| undo_failed(&run.rec, e)) {
        Ok(()) => {
            run.log(undone(&run.rec));
            Ok(())
        }
        Err(e) => {
            run.log(format!("error: {e}"));
            Err(e)
        }
    }
}

/// Why the undo of `rec` cannot run now: a database server its journal
/// names (any database fact) does not answer. Started, the undo would stop
/// half way and leave the site in maintenance for good; deferred, it runs
/// whole once the server is back (the server died in the middle of a dump,
/// say, which is why the task failed).
pub(crate) fn undo_blocked(srv: &LocalServer, rec: &TaskRecord) -> Option<String> {
    let servers: std::collections::BTreeSet<&Name> =
        rec.journal.databases().map(|r| &r.server).collect();
    servers.iter().find_map(|name| {
        // An undeclared server is no reason to wait: the undo reports it.
        let d = srv.db_server(name).ok()?;
        d.list().err().map(|e| e.to_string())
    })
}

/// Undoes a site task that had not committed, from its record alone, and
/// says what it did; or, when any part of the undo failed, what failed
/// (the site then stays in maintenance, its backup kept). Every part may
/// run again: crash recovery may repeat it. A move to another server
/// needs that server (`to`, held by this hoist).
pub(crate) fn undo(
    srv: &LocalServer,
    rec: &TaskRecord,
    to: Option<&LocalServer>,
) -> Result<String, String> {
    let r = match (&rec.journal.to_server, to) {
        (Some(_), Some(b)) => transfer::undo(srv, b, rec),
        (Some(n), None) => Err(format!(
            "it moved the site to server {n}, which this hoist does not hold"
        )),
        (None, _) => undo_parts(srv, rec),
    };
    r.map(|()| undone(rec)).map_err(|e| undo_failed(rec, e))
}

/// The undo of a task on one server, by kind.
fn undo_parts(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    match rec.kind {
        TaskKind::Install | TaskKind::Clone => undo_created(srv, rec),
        TaskKind::Migrate | TaskKind::Rename | TaskKind::MigrateRename => undo_move(srv, rec),
        TaskKind::Delete => undo_delete(srv, rec),
        TaskKind::Enable | TaskKind::Disable | TaskKind::Verify => undo_rerender(srv, rec),
        TaskKind::Update => super::update::undo(srv, rec),
        TaskKind::Restore => undo_restore(srv, rec),
        TaskKind::Rollback => super::rollback::undo(srv, rec),
        TaskKind::Backup | TaskKind::Build | TaskKind::DeletePlatform => Ok(()),
    }
}

/// What a complete undo of `rec` did, in words.
fn undone(rec: &TaskRecord) -> String {
    match rec.kind {
        TaskKind::Install | TaskKind::Clone => "rolled back: the new site's database, directory and vhost were removed; nothing else was touched",
        TaskKind::Migrate | TaskKind::Rename | TaskKind::MigrateRename => "rolled back: the new copy was removed and the old site is back online as it was",
        TaskKind::Delete => "rolled back: the site is back online; its backup is kept",
        TaskKind::Enable | TaskKind::Disable | TaskKind::Verify => "rolled back: settings and vhost were put back",
        TaskKind::Update => "rolled back: the database kept before the updates was put back and the site is back online as it was; its backup is kept",
        TaskKind::Restore => "rolled back: the site is back as it was before the restore; both backups are kept",
        TaskKind::Rollback => "rolled back: the site is back where the rollout had put it; the copy from the backup was removed",
        TaskKind::Backup | TaskKind::Build | TaskKind::DeletePlatform => "rolled back: nothing to undo",
    }
    .to_string()
}

/// An undo of `rec` that failed with `e`, in words (and logged).
fn undo_failed(rec: &TaskRecord, e: String) -> String {
    let kept = rec
        .backup
        .as_deref()
        .map(|b| format!("; its backup {b} is kept"))
        .unwrap_or_default();
    let e = format!(
        "ROLLING BACK FAILED: {e}; the site was left in maintenance mode where it had been put there, for a person to look at{kept}"
    );
    tracing::error!(task = %rec.id, "{e}");
    e
}

/// Finishes a site task that had committed (its remaining work is
/// cleanup), from its record alone; a move to another server needs that
/// server (`to`, held by this hoist).
pub(crate) fn finish(
    srv: &LocalServer,
    rec: &TaskRecord,
    to: Option<&LocalServer>,
) -> Result<(), String> {
    if let Some(n) = &rec.journal.to_server {
        return match to {
            Some(b) => transfer::finish(srv, b, rec),
            None => Err(format!(
                "it moved the site to server {n}, which this hoist does not hold"
            )),
        };
    }
    match rec.kind {
        TaskKind::Migrate | TaskKind::Rename | TaskKind::MigrateRename | TaskKind::Rollback => {
            finish_move(srv, rec)
        }
        TaskKind::Delete => finish_delete(srv, rec),
        TaskKind::Enable | TaskKind::Disable | TaskKind::Verify => finish_rerender(srv, rec),
        TaskKind::Restore => finish_restore(srv, rec),
        TaskKind::Update => super::update::finish(srv, rec),
        _ => Ok(()),
    }
}
