//! `hoist restore`: a site put back to a backup in place, undoable like a
//! migrate.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::command::{find_site, start_explicit};
use super::steps::{
    app_settings, check_free, created, db_of, drop_db, maintenance_on, mark_committed,
    new_site_for, observe_fresh, restore_vhost, save_old_settings, save_old_vhost, settle,
    take_backup, write_settings, write_vhost,
};
use super::undo::{drop_new_db, Undo};
use super::{new_db_name, path_of, rollback, txt};
use crate::apply::{cutover, execute, step, StepError, TaskOutcome};
use crate::backup;
use crate::driver::DbRef;
use crate::names::Name;
use crate::server::{LocalServer, ServerError, Servers};
use crate::task::{TaskKind, TaskRecord};

/// `hoist restore SITE [BACKUP]`: the site put back to a backup (the newest
/// when none is named), in place under its present platform and domain. A
/// backup of the present state is taken first; a failure rolls back like a
/// migrate. A database-only backup restores the database and keeps the
/// site's present files.
pub fn restore(
    servers: &Servers,
    site: &Name,
    health: &crate::inventory::HealthCheck,
    archive: Option<&str>,
    commit: Option<String>,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<TaskOutcome, ServerError> {
    let (srv, at) = find_site(servers, site)?;
    let run = start_explicit(srv, TaskKind::Restore, site, &at, commit, cancel)?;
    let site_dir = srv.site_dir(&at.platform, &at.domain);
    let parent = site_dir
        .parent()
        .expect("site dirs have a parent")
        .to_path_buf();
    let staged = parent.join(format!(".restored-{}", run.rec.id));
    let aside = parent.join(format!(".replaced-{}", run.rec.id));
    Ok(execute(
        run,
        format!("restore {site}"),
        |run| {
            let mut warnings = Vec::new();
            let (obs, settings) = observe_fresh(run, srv, &at, None)?;
            let (path, manifest) = step(run, "choose-backup", |run| {
                let all = backup::list(srv, site);
                let chosen = match archive {
                    Some(name) => all
                        .iter()
                        .find(|b| b.file_name == name || b.path == Path::new(name))
                        .ok_or_else(|| {
                            format!(
                                "no backup {name:?} of {site}; `hoist backups {site}` lists them"
                            )
                        })?,
                    // The newest: the last one made, whatever the clock
                    // said (backup::list orders by sequence number).
                    None => all.last().ok_or_else(|| format!("{site} has no backups"))?,
                };
                let m =
                    backup::read_manifest(&srv.on_host(&chosen.path).map_err(txt)?).map_err(txt)?;
                if &m.site != site {
                    return Err(format!(
                        "{} is a backup of {}, not of {site}",
                        chosen.file_name, m.site
                    ));
                }
                let room = srv.at(&parent).map_err(txt)?;
                backup::check_room(&chosen.path, &m, srv.host(), &room).map_err(txt)?;
                let rel = chosen.path.strip_prefix(srv.root()).unwrap_or(&chosen.path);
                let rel = rel.display().to_string();
                run.remember(|j| j.restored_from = Some(rel));
                run.log(format!(
                    "restoring {} (taken {} of {} on {})",
                    chosen.file_name, m.created, m.domain, m.platform
                ));
                Ok((chosen.path.clone(), m))
            })?;
            maintenance_on(run, srv, &settings)?;
            // The present state first: the restore must be undoable too.
            warnings.extend(take_backup(
                run,
                srv,
                site,
                &at,
                &settings,
                backup::Scope::Full,
                None,
            )?);
            // The new database first: the dump streams into it straight
            // out of the archive as the site directory is extracted.
            let new_db = DbRef {
                server: settings.database.server.clone(),
                name: new_db_name(site),
            };
            let dbs = db_of(srv, &settings).map_err(|message| StepError {
                step: "deploy".into(),
                message,
            })?;
            let creds = step(run, "deploy", |run| {
                check_free(srv, &new_db)?;
                run.note(|j| j.new_db = Some(new_db.clone())).map_err(txt)?;
                created(run, dbs.create(&new_db.name))
            })?;
            step(run, "extract", |run| {
                let place = srv.place(&staged).map_err(txt)?;
                run.note(|j| j.extracted_dir = Some(place)).map_err(txt)?;
                let (from, to) = (srv.on_host(&path), srv.on_host(&staged));
                backup::extract(&from.map_err(txt)?, &to.map_err(txt)?, &mut |dump| {
                    dbs.load(&creds, dump, backup::DUMP)
                })
                .map_err(txt)
            })?;
            let mut cfg = obs.config.clone();
            cfg.db_name = Some(new_db.name.clone());
            // The restored directory goes into place first: an
            // application's code (Drupal's) only runs on its site's own
            // directory.
            step(run, "swap", |run| {
                if manifest.scope == backup::Scope::Full {
                    let place = srv.place(&aside).map_err(txt)?;
                    run.note(|j| j.aside_dir = Some(place)).map_err(txt)?;
                    srv.rename_at(&site_dir, &aside)
                        .map_err(|e| format!("moving the present site aside: {e}"))?;
                    run.note(|j| j.swapped = true).map_err(txt)?;
                    srv.rename_at(&staged, &site_dir)
                        .map_err(|e| format!("moving the restored site into place: {e}"))?;
                } else {
                    save_old_settings(run, srv, &site_dir)?;
                }
                save_old_vhost(run, srv, &at.domain)?;
                write_settings(srv, &cfg, &creds.password).map_err(txt)?;
                app_settings(srv, &at, &new_db, &creds, &cfg)?;
                write_vhost(srv, &cfg).map_err(txt)?;
                srv.observe_site(&at.platform, &at.domain)
                    .map_err(|e| format!("the restored site does not check out: {e}"))?;
                Ok::<_, String>(())
            })?;
            let (app, site) = new_site_for(srv, &at, &new_db, &creds, "fix-paths")?;
            settle(
                run,
                app,
                &site,
                &manifest.domain,
                &cfg,
                false,
                None,
                Some("1"),
            )?;
            step(run, "maintenance-off", |_| {
                app.set_maintenance(&site, Some("0"))
            })?;
            // Spec 8: a restore ends with a check of the site as served;
            // a failure rolls it back like the update's does.
            if cfg.enabled {
                cutover::check_step(run, srv, &at.domain, health)?;
            }
            mark_committed(run, srv, "maintenance-off")?;
            if let Err(e) = step(run, "remove-old", |run| finish_restore(srv, &run.rec)) {
                warnings.push(format!(
                    "the replaced copy could not be removed entirely: {e}"
                ));
            }
            Ok(warnings)
        },
        |run| rollback(srv, run),
    ))
}

pub(in crate::apply) fn undo_restore(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let Some(at) = &rec.from else {
        return Ok(());
    };
    let site_dir = srv.site_dir(&at.platform, &at.domain);
    let mut u = Undo::default();
    let aside = u.place(srv, "the replaced site directory", &rec.journal.aside_dir);
    if let Some(aside) = aside.filter(|a| srv.exists_at(a)) {
        if rec.journal.swapped {
            u.check(
                "removing the restored site directory",
                srv.remove_tree_at(&site_dir),
            );
        }
        u.move_back(srv, &aside, &site_dir);
    }
    u.settings_back(srv, rec, &site_dir);
    if rec.journal.saved_settings.is_some() {
        // A restore of the database alone rewrote the application's
        // settings in place, for the new database.
        u.app_settings_back(srv, at);
    }
    u.check(
        "putting back the vhost",
        restore_vhost(srv, rec, &at.domain, None),
    );
    if let Some(staged) = u.place(srv, "the extracted backup", &rec.journal.extracted_dir) {
        u.check("removing the extracted backup", srv.remove_tree_at(&staged));
        u.check(
            "removing the extraction's staging",
            srv.on_host(&staged)
                .map_err(backup::BackupError::from)
                .and_then(|s| backup::remove_staging(&s)),
        );
    }
    drop_new_db(&mut u, srv, rec);
    u.online(srv, at, rec)
}

/// The cleanup after a restore committed: the replaced copy and its
/// database removed.
pub(in crate::apply) fn finish_restore(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    if let Some(aside) = path_of(srv, &rec.journal.aside_dir)? {
        srv.remove_tree_at(&aside).map_err(txt)?;
    }
    if let Some(staged) = path_of(srv, &rec.journal.extracted_dir)? {
        srv.remove_tree_at(&staged).map_err(txt)?;
    }
    if let Some(saved) = path_of(srv, &rec.journal.saved_settings)? {
        srv.remove_file_at(&saved).map_err(txt)?;
    }
    if let Some(db) = &rec.journal.old_db {
        drop_db(srv, db)?;
    }
    Ok(())
}
