//! Crash recovery: a hoist killed in the middle of a task leaves its record
//! `running`, with a journal of what it did. The next hoist that takes the
//! server's lock finishes each such task (when it had committed: what is
//! left is cleanup) or undoes it, so the site ends up online exactly once,
//! old or new, never both or neither.

use crate::driver::host::{HostError, HostPath};
use crate::names::PlatformName;
use crate::server::{LocalServer, Servers};
use crate::task::{self, TaskKind, TaskResult, TaskRun};

/// What recovery did with one task.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The task's id.
    pub id: String,
    /// How it ends now.
    pub result: TaskResult,
    /// What was done.
    pub message: String,
}

/// Finishes or undoes every task left running on `srv`. Call it holding the
/// server's lock: no other hoist is then working on these tasks. `held`
/// are the servers whose locks this hoist holds: a move to another server
/// is finished or undone only when that server is among them (else it
/// waits, running, for a hoist that holds both).
pub fn recover(srv: &LocalServer, held: &Servers) -> Vec<Recovered> {
    let mut out = Vec::new();
    let mut left = task::leftovers(&srv.tasks());
    let mut all_ended = true;
    for rec in std::mem::take(&mut left.running) {
        let mut run = match TaskRun::resume(&srv.tasks(), rec) {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!("cannot take up a task record: {e}");
                all_ended = false;
                continue;
            }
        };
        if let Some(step) = run.rec.steps.last_mut().filter(|s| s.state == "running") {
            step.state = "interrupted".into();
        }
        if let Some(site) = &run.rec.site {
            remove_backup_leftovers(srv, site);
        }
        let committed = super::committed(&run);
        let to = run.rec.journal.to_server.clone();
        let peer = to.as_ref().and_then(|n| held.by_name.get(n));
        let blocked = match (&to, peer) {
            (Some(n), None) => Some(format!(
                "the site was moving to server {n}, which this hoist does not hold (not declared, not reached, or not this watcher's)"
            )),
            _ => match run.rec.kind {
                TaskKind::Build | TaskKind::DeletePlatform => None,
                _ if committed => None,
                _ => super::site::undo_blocked(srv, &run.rec)
                    .map(|why| format!("the database server does not answer ({why})")),
            },
        };
        if let Some(why) = blocked {
            // Left running for the next hoist: an undo never runs half.
            let message = task::quote(&format!(
                "the {} still waits: {why}; the next hoist run retries it",
                if committed { "finish" } else { "undo" }
            ));
            tracing::warn!(task = %run.rec.id, "{message}");
            run.log(format!("recovery: {message}"));
            all_ended = false;
            out.push(Recovered {
                id: run.rec.id.clone(),
                result: TaskResult::Failed,
                message,
            });
            continue;
        }
        let (result, message) = match run.rec.kind {
            TaskKind::Build | TaskKind::DeletePlatform => recover_platform(srv, &run.rec),
            _ if committed => match super::site::finish(srv, &run.rec, peer) {
                Ok(()) => (
                    TaskResult::Success,
                    "finished: the task had committed, only its cleanup was left".to_string(),
                ),
                Err(e) => (
                    TaskResult::Warning,
                    format!("the task had committed; its cleanup failed: {e}"),
                ),
            },
            _ => match super::site::undo(srv, &run.rec, peer) {
                Ok(done) | Err(done) => (TaskResult::Failed, done),
            },
        };
        let message = task::quote(&message);
        run.log(format!("recovered after an interruption: {message}"));
        run.rec.recovered = Some(message.clone());
        all_ended &= run.finish(result).is_ok();
        tracing::warn!(task = %run.rec.id, "recovered an interrupted task: {message}");
        out.push(Recovered {
            id: run.rec.id.clone(),
            result,
            message,
        });
    }
    match left.tidy(&srv.tasks(), all_ended) {
        Ok(gone) => {
            for g in gone {
                tracing::warn!("removed the task record {g}: it was never written");
            }
        }
        Err(e) => tracing::warn!("cannot tidy {}: {e}", srv.tasks().display()),
    }
    // Records are private; a directory an older hoist made is made so.
    if let Err(e) = srv.tasks().make_private() {
        tracing::warn!("cannot make {} private: {e}", srv.tasks().display());
    }
    out
}

/// Removes what a backup killed with the task of `site` left: its spooled
/// dump and its unfinished archive (a backup runs only inside a task, so
/// a site whose task ended has none).
fn remove_backup_leftovers(srv: &LocalServer, site: &crate::names::Name) {
    match crate::backup::remove_leftovers(srv, site) {
        Ok(gone) => {
            for g in gone {
                tracing::warn!("removed {}, left by an interrupted backup", g.display());
            }
        }
        Err(e) => tracing::warn!("cannot remove what an interrupted backup of {site} left: {e}"),
    }
}

/// A build is all or nothing (copied aside, then renamed into place): undo
/// leftovers, and put back a build that was being replaced.
fn recover_platform(srv: &LocalServer, rec: &task::TaskRecord) -> (TaskResult, String) {
    let Some(name) = rec
        .platform
        .as_ref()
        .and_then(|p| PlatformName::new(p.as_str()).ok())
    else {
        return (TaskResult::Failed, "no platform in the record".into());
    };
    let h = srv.host();
    let dir = srv.platform_path(&name);
    let aside = |prefix: &str| dir.parent().join(&format!("{prefix}{name}"));
    let (tmp, old) = match (aside(".build-"), aside(".old-")) {
        (Ok(t), Ok(o)) => (t, o),
        (Err(e), _) | (_, Err(e)) => return (TaskResult::Failed, e.to_string()),
    };
    let mut problems = Vec::new();
    let mut note = |what: &str, r: Result<(), HostError>| {
        if let Err(e) = r {
            problems.push(format!("{what}: {e}"));
        }
    };
    // A path that cannot be read is taken as there: nothing is removed
    // or moved on a guess.
    let exists = |p: &HostPath| h.exists(p).unwrap_or(true);
    let has_sites = |p: &HostPath| p.join("sites").map_or(true, |s| exists(&s));
    if !h.exists(&dir).unwrap_or(true) {
        if has_sites(&tmp) {
            // Killed mid-swap with the sites already in the new build: it is
            // complete (its record is written before the swap), so finish.
            note("moving the new build into place", h.rename(&tmp, &dir));
        } else if exists(&old) {
            note("putting the old build back", h.rename(&old, &dir));
        }
    }
    // Whatever is left aside holds no site any more.
    if !has_sites(&old) {
        note("removing the replaced build", h.remove_tree(&old));
    }
    if !has_sites(&tmp) {
        note("removing the unfinished build", h.remove_tree(&tmp));
    }
    if !problems.is_empty() {
        let e = format!(
            "ROLLING BACK FAILED for platform {name}: {}",
            problems.join("; ")
        );
        tracing::error!(task = %rec.id, platform = %name, "{e}");
        return (TaskResult::Failed, e);
    }
    match rec.kind {
        TaskKind::DeletePlatform if !exists(&dir) => {
            (TaskResult::Success, "the platform is gone".into())
        }
        _ => (
            TaskResult::Failed,
            "rolled back: temporary build files removed; the platform is as it was".into(),
        ),
    }
}
