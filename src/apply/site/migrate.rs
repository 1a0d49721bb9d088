//! Migrate, rename, or both (spec section 8): the nine steps, their undo
//! (the new copy dropped, or the moved directory and tables moved back) and
//! their finish (the old copy removed).

use std::path::Path;

use super::steps::{
    app_of, app_settings, check_target, copy_database, created, db_of, deploy_copy, drop_db,
    journal_copy, live_site, login, maintenance_on, mark_committed, new_site_for, observe_fresh,
    old_vhost, open_db, restore_vhost, save_old_settings, save_old_vhost, settle, site_db,
    take_backup, write_settings,
};
use super::undo::{drop_new_db, Undo};
use super::{need, new_db_name, rollback, server_for, start, txt};
use crate::apply::{cutover, execute, step, ApplyOptions, StepError, TaskOutcome};
use crate::backup;
use crate::driver::db::Moved;
use crate::driver::{DbRef, Login, Which};
use crate::inventory::Inventory;
use crate::plan::{Endpoint, SiteAction, SitePlan};
use crate::render::SettingsFile;
use crate::server::{LocalServer, ServerError, Servers, OLD_SETTINGS_FILE};
use crate::task::{TaskKind, TaskRecord, TaskRun};

/// Migrate, rename, or both: the nine steps of spec section 8. A migrate
/// onto the site's own platform and domain moves its rows to another
/// database server: its directory stays, as a rename's would.
pub(in crate::apply) fn move_site(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let from = need(&s.from, "origin")?.clone();
    let to = need(&s.to, "target")?.clone();
    let mut cfg = need(&s.config, "settings")?.clone();
    let srv = server_for(inv, servers, &from.platform)?;
    let dest = server_for(inv, servers, &to.platform)?;
    if dest.name() != srv.name() {
        return super::transfer::transfer(s, inv, srv, dest, opts, what);
    }
    let kind = match s.action {
        SiteAction::Migrate => TaskKind::Migrate,
        SiteAction::Rename => TaskKind::Rename,
        _ => TaskKind::MigrateRename,
    };
    let run = start(srv, kind, s, opts)?;
    let same_platform = from.platform == to.platform;
    let old_dir = srv.site_dir(&from.platform, &from.domain);
    let new_dir = srv.site_dir(&to.platform, &to.domain);
    let new_db = DbRef {
        server: cfg.db_server.clone(),
        name: new_db_name(&s.name),
    };
    cfg.db_name = Some(new_db.name.clone());
    let keep = inv.settings.policy.keep_backups;
    let health = cutover::health_of(inv, &s.name);
    let outcome = execute(
        run,
        what,
        |run| {
            let mut warnings = Vec::new();
            let (_obs, settings) = observe_fresh(run, srv, &from, s.observed.as_ref())?;
            step(run, "check-target", |_| {
                // Its own directory and vhost, when they stay, are the
                // site's.
                check_target(
                    srv,
                    Some(new_dir.as_path()).filter(|d| *d != old_dir),
                    Some(&to.domain).filter(|d| **d != from.domain),
                    &new_db,
                )
            })?;
            if !same_platform {
                // Known before anything changes, so the copy and the old
                // vhost (the server is locked: it stays as it is) go to
                // disk with the maintenance note, the task's first, rather
                // than with a note of their own.
                journal_copy(run, srv, &new_db, &new_dir).map_err(|message| StepError {
                    step: "maintenance-on".into(),
                    message,
                })?;
                let old = old_vhost(srv, &from.domain);
                run.remember(|j| j.old_vhost = Some(old));
            }
            maintenance_on(run, srv, &settings)?;
            // A rename on the same platform moves the files and never
            // changes them, so its backup needs only the database.
            warnings.extend(take_backup(
                run,
                srv,
                &s.name,
                &from,
                &settings,
                if same_platform {
                    backup::Scope::Database
                } else {
                    backup::Scope::Full
                },
                Some(keep),
            )?);
            // A rename on its own platform moves the directory rather than
            // copying it, so the deploy's time does not grow with the
            // site's files; its database is copied, as a migrate's is, and
            // the copy edited. An undo moves the directory back and drops
            // the copy: the old database was never edited, so nothing is
            // loaded from the backup. A move to another platform deploys a
            // copy of both.
            let (creds, moved) = step(run, "deploy", |run| {
                // The old vhost rides along with the deploy's note (a
                // migrate's went with its first), so the verify step need
                // not write the journal again before replacing it (nothing
                // changes it in between: the server is locked).
                let creds = if same_platform {
                    let old = old_vhost(srv, &from.domain);
                    run.remember(|j| j.old_vhost = Some(old));
                    move_dir_and_db(run, srv, &settings, &new_db, &old_dir, &new_dir)
                } else {
                    deploy_copy(run, srv, &settings, &new_db, &old_dir, &new_dir)
                        .map(|c| (c, false))
                }?;
                app_settings(srv, &to, &new_db, &creds.0, &cfg)?;
                Ok::<_, String>(creds)
            })?;
            let (app, site) = new_site_for(srv, &to, &new_db, &creds, "update")?;
            // Moved tables are the site's only copy: nothing is run on them
            // that an undo could not set back, so no update (on its own
            // platform a site has none pending).
            warnings.extend(settle(
                run,
                app,
                &site,
                &from.domain,
                &cfg,
                !moved,
                None,
                None,
            )?);
            step(run, "verify", |run| {
                if same_platform {
                    save_old_settings(run, srv, &new_dir)?;
                }
                save_old_vhost(run, srv, &from.domain)?;
                write_settings(srv, &cfg, &creds.password).map_err(txt)
            })?;
            // The new copy leaves maintenance while visitors still reach the
            // old one (in maintenance), so that its preview can be checked.
            step(run, "maintenance-off", |_| {
                app.set_maintenance(&site, Some("0"))
            })?;
            cutover::preview_step(run, srv, &cfg, &health)?;
            cutover::switch_step(run, srv, &cfg, &health)?;
            check_out_step(run, srv, &to)?;
            mark_committed(run, srv, "check-out")?;
            // Step 9: the new site is live. A failure from here on leaves
            // leftovers, not a broken site: it is a warning.
            if let Err(e) = step(run, "remove-old", |run| finish_move(srv, &run.rec)) {
                warnings.push(format!("the old copy could not be removed entirely: {e}"));
            }
            Ok(warnings)
        },
        |run| rollback(srv, run),
    );
    Ok(outcome)
}

/// The `check-out` step of a move: the new site, observed afresh, is what
/// hoist wrote (its settings may still differ while the old ones are kept
/// beside them).
pub(in crate::apply) fn check_out_step(
    run: &mut TaskRun,
    srv: &LocalServer,
    to: &Endpoint,
) -> Result<(), StepError> {
    step(run, "check-out", |_| {
        let seen = srv
            .observe_site(&to.platform, &to.domain)
            .map_err(|e| format!("the new site does not check out: {e}"))?;
        if !seen.drift.is_empty() && !seen.drift.iter().all(|d| d.contains("settings")) {
            return Err(format!(
                "the new site does not check out: {}",
                seen.drift.join("; ")
            ));
        }
        Ok(())
    })
}

/// The deploy of a rename on the same platform: the site directory is
/// moved (its files never change, whatever their size), and so is the
/// database when it stays on its server and the driver can
/// ([`DbServer::move_tables`]: one atomic `RENAME TABLE`, whatever its
/// size); otherwise it is copied ([`copy_database`]). Everything is
/// journaled first: an undo moves the directory back, moves the tables
/// back (or drops the copy). Returns the new login and whether the tables
/// moved.
pub(in crate::apply) fn move_dir_and_db(
    run: &mut TaskRun,
    srv: &LocalServer,
    old: &SettingsFile,
    new_db: &DbRef,
    old_dir: &Path,
    new_dir: &Path,
) -> Result<(Login, bool), String> {
    run.remember(|j| j.moved_dir = true);
    let moved = if old.database.server == new_db.server {
        move_db(run, srv, old, new_db)?
    } else {
        Moved::Copy(format!(
            "the site moves to database server {}",
            new_db.server
        ))
    };
    let (creds, moved_tables) = match moved {
        Moved::Moved(creds) => (creds, true),
        Moved::Copy(why) => {
            run.note(|j| j.new_db = Some(new_db.clone())).map_err(txt)?;
            let copied = copy_database(srv, old, new_db)?;
            let creds = created(run, copied).map_err(|e| {
                format!(
                    "the database is copied rather than moved ({why}), and the copy failed: {e}"
                )
            })?;
            (creds, false)
        }
    };
    crate::failpoint::hit("deploy-inside", crate::failpoint::When::Before)?;
    srv.rename_at(old_dir, new_dir).map_err(txt)?;
    Ok((creds, moved_tables))
}

/// Moves the site's tables into `new_db` on the same server, journaled
/// first ([`crate::journal::Journal::tables_moved`]); [`Moved::Copy`] when the driver cannot
/// (the log says why), with nothing changed.
pub(in crate::apply) fn move_db(
    run: &mut TaskRun,
    srv: &LocalServer,
    old: &SettingsFile,
    new_db: &DbRef,
) -> Result<Moved, String> {
    let dbs = db_of(srv, old)?;
    let app = app_of(srv, &old.config().platform)?;
    let mut before = std::collections::BTreeMap::new();
    if !app.rename_vars().is_empty() {
        let mut db = dbs.open(&login(old), false).map_err(txt)?;
        for k in app.rename_vars() {
            before.insert(k.to_string(), db.variable(k).map_err(txt)?);
        }
    }
    run.note(|j| {
        j.vars_before_move = Some(before);
        j.tables_moved = Some(site_db(old));
        j.new_db = Some(new_db.clone());
    })
    .map_err(txt)?;
    let r = dbs.move_tables(&login(old), &new_db.name);
    let moved = created(run, r)?;
    match &moved {
        Moved::Moved(_) => run.log(format!(
            "moved the tables of {} to {} (RENAME TABLE, no row copied)",
            old.database.name, new_db.name
        )),
        Moved::Copy(why) => {
            run.rec.journal.tables_moved = None;
            run.rec.journal.vars_before_move = None;
            run.log(format!("the database is copied, not moved: {why}"));
        }
    }
    Ok(moved)
}

/// The undo of [`move_db`]: the tables go back to the old database (one
/// atomic `RENAME TABLE`), then what the rename edited in them is set back
/// by the site's application ([`crate::driver::app::AppKind::unrename`]: paths under the new
/// domain's directory; the journaled variables). The caller has put the
/// application's settings back, so its code runs on the old database.
/// Known limit: caches the rename cleared stay empty, and a file path that
/// already pointed under the new domain's directory before the rename is
/// pointed under the old one. May run again after a crash.
pub(in crate::apply) fn move_tables_back(
    srv: &LocalServer,
    rec: &TaskRecord,
    old: &DbRef,
    new: &DbRef,
    from: &Endpoint,
    to: &Endpoint,
) -> Result<(), String> {
    srv.db_server(&old.server)
        .map_err(txt)?
        .move_back(&old.name, &new.name)
        .map_err(txt)?;
    let (settings, _) = srv
        .read_settings(&from.platform, &from.domain)
        .map_err(txt)?;
    if from.domain != to.domain {
        let (app, site) = live_site(srv, &settings)?;
        app.unrename(&site, &to.domain)?;
    }
    if let Some(vars) = rec
        .journal
        .vars_before_move
        .as_ref()
        .filter(|v| !v.is_empty())
    {
        let mut db = open_db(srv, &settings)?;
        for (k, v) in vars {
            match v {
                Some(v) => db.set_variable(k, v).map_err(txt)?,
                None => db.delete_variable(k).map_err(txt)?,
            }
        }
    }
    Ok(())
}

/// Undoes a migrate or rename that has not committed: the deploy's
/// database and copy are dropped (or the moved directory moved back), the
/// old settings and vhost put back, the old site taken out of maintenance.
/// The old database was never edited (the deploy edits a copy), so nothing
/// here can fail for what the data is.
pub(in crate::apply) fn undo_move(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let (Some(from), Some(to)) = (&rec.from, &rec.to) else {
        return Ok(());
    };
    let old_dir = srv.site_dir(&from.platform, &from.domain);
    let new_dir = srv.site_dir(&to.platform, &to.domain);
    let mut u = Undo::default();
    u.settings_back(srv, rec, &new_dir);
    u.check(
        "putting back the old vhost",
        restore_vhost(srv, rec, &from.domain, Some(&to.domain)),
    );
    // A move to another database server alone keeps the directory where
    // it is: nothing moves back.
    if rec.journal.moved_dir && new_dir != old_dir && srv.exists_at(&new_dir) {
        u.move_back(srv, &new_dir, &old_dir);
    }
    if rec.journal.moved_dir {
        // The deploy rewrote the application's settings (settings.php)
        // for the copy's database: they name the old one again.
        u.app_settings_back(srv, from);
    }
    if let Some(dir) = u.place(srv, "the copied site directory", &rec.journal.copied_dir) {
        u.check(
            "removing the copied site directory",
            srv.remove_tree_at(&dir),
        );
    }
    if rec.journal.db_moved.is_some() {
        // An older hoist's rename (see `Journal::db_moved`): its database file
        // comes back and is loaded from the backup; the new name's user
        // goes once the file is back (a file not moved back is kept).
        u.check(
            "loading the database back from the backup",
            reload_from_backup(srv, rec),
        );
        let new = rec.journal.new_db.as_ref();
        if new.is_some_and(|n| !srv.db().exists(&n.name)) {
            drop_new_db(&mut u, srv, rec);
        }
    } else if let (Some(old), Some(new)) = (&rec.journal.tables_moved, &rec.journal.new_db) {
        // The new database holds the site's only rows until they are back:
        // it is dropped only once they are.
        let back = move_tables_back(srv, rec, old, new, from, to);
        let ok = back.is_ok();
        u.check("moving the tables back to the old database", back);
        if ok {
            drop_new_db(&mut u, srv, rec);
        }
    } else {
        drop_new_db(&mut u, srv, rec);
    }
    u.online(srv, from, rec)
}

/// Puts back a database that the task moved to a new name and edited
/// there: its file is moved back (when it is not back already), then the
/// backup taken before the move is loaded into a new file that replaces it,
/// so a repeated undo (after a crash) starts over cleanly.
pub(in crate::apply) fn reload_from_backup(
    srv: &LocalServer,
    rec: &TaskRecord,
) -> Result<(), String> {
    let db = &rec
        .journal
        .old_db
        .as_ref()
        .ok_or("the task journal names no database")?
        .name;
    if let Some(new) = &rec.journal.new_db {
        srv.db().move_back(&new.name, db).map_err(txt)?;
    }
    let archive = srv
        .root()
        .join(rec.backup.as_ref().ok_or("the task has no backup")?);
    // Left by an undo of an earlier hoist that extracted the whole archive.
    let staged = srv.tasks_dir().join(format!(".undo-{}", rec.id));
    srv.remove_tree_at(&staged).map_err(txt)?;
    backup::remove_staging(&srv.on_host(&staged).map_err(txt)?).map_err(txt)?;
    backup::load_dump(&srv.on_host(&archive).map_err(txt)?, &mut |dump| {
        Ok(srv.db().reload(db, dump, backup::DUMP)?)
    })
    .map(|_| ())
    .map_err(txt)
}

/// Step 9 of a move: removes the old copy (directory, database, vhost).
pub(in crate::apply) fn finish_move(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let (Some(from), Some(to)) = (&rec.from, &rec.to) else {
        return Ok(());
    };
    let new_dir = srv.site_dir(&to.platform, &to.domain);
    if rec.journal.copied_dir.is_some() {
        srv.remove_tree_at(&srv.site_dir(&from.platform, &from.domain))
            .map_err(txt)?;
    }
    srv.remove_file_at(&new_dir.join(OLD_SETTINGS_FILE))
        .map_err(txt)?;
    if let Some(db) = &rec.journal.old_db {
        drop_db(srv, db)?;
    }
    let web = srv.web();
    web.write(&to.domain, Which::Preview, None).map_err(txt)?;
    if from.domain != to.domain {
        web.write(&from.domain, Which::Site, None).map_err(txt)?;
    }
    web.activate().map_err(txt)?;
    Ok(())
}
