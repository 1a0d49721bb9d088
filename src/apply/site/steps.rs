//! The steps and helpers the site tasks share: settings and vhosts written,
//! the site observed afresh, maintenance, backups, the deploy of a copy, the
//! settling steps (updates, paths, caches), and the commit point.

use std::path::Path;

use super::txt;
use crate::apply::{step, StepError};
use crate::backup;
use crate::driver::app::{AppKind, AppSite};
use crate::driver::host::WriteMode;
use crate::driver::{DbRef, DbServer, DriverError, Login, SiteConn, Which};
use crate::names::{Domain, Name, PlatformName};
use crate::plan::Endpoint;
use crate::render::{self, SettingsFile, SiteConfig};
use crate::server::{LocalServer, ServerError, OLD_SETTINGS_FILE, SETTINGS_FILE};
use crate::task::{TaskRecord, TaskRun};

/// Writes a site's files directory, settings (0600) and vhost, unsynced:
/// the task's commit point ([`mark_committed`]) makes them durable.
pub(in crate::apply) fn write_site_files(
    srv: &LocalServer,
    cfg: &SiteConfig,
    password: &render::Secret,
) -> Result<(), ServerError> {
    let dir = srv.site_dir(&cfg.platform, &cfg.domain);
    srv.mkdir_at(&dir.join("files"))?;
    write_settings(srv, cfg, password)?;
    write_vhost(srv, cfg).map_err(ServerError::Invalid)
}

pub(in crate::apply) fn write_settings(
    srv: &LocalServer,
    cfg: &SiteConfig,
    password: &render::Secret,
) -> Result<(), ServerError> {
    let sp = srv.settings_path(cfg);
    let text = render::settings_file(cfg, password);
    Ok(srv.write_at(&sp, text.as_bytes(), WriteMode::StagedPrivate)?)
}

/// Renders and writes a site's vhost, unsynced: the task's commit point
/// ([`mark_committed`]) makes it durable. An undo before then writes the
/// old one back from the journal.
pub(in crate::apply) fn write_vhost(srv: &LocalServer, cfg: &SiteConfig) -> Result<(), String> {
    let web = srv.web();
    let text = web.render(cfg, Which::Site).map_err(txt)?;
    web.write(&cfg.domain, Which::Site, Some(&text))
        .map_err(txt)
}

/// Marks the point of no return: the new state is live, so from here a
/// failure finishes the task rather than undoing it. Everything the task
/// staged unsynced (a copied site tree, a new database and its user,
/// settings, vhost, a backup) is made durable first, in one sync per
/// filesystem: a crash after the mark must find the new site whole, since
/// recovery then removes the old one.
pub(in crate::apply) fn mark_committed(
    run: &mut TaskRun,
    srv: &LocalServer,
    after: &str,
) -> Result<(), StepError> {
    let fail = |message: String| StepError {
        step: after.into(),
        message,
    };
    srv.sync_staged()
        .map_err(|e| fail(format!("cannot sync the server's files: {e}")))?;
    // Nothing commits under a lock lost with its connection: another hoist
    // may be at work on the server.
    srv.host()
        .check_lock()
        .map_err(|e| fail(format!("{e}; nothing was committed")))?;
    run.note(|j| j.committed = true)
        .map_err(|e| fail(format!("cannot write the task journal: {e}")))
}

/// Keeps a copy of a site's settings as `.hoist-old-settings.yaml` before
/// they are replaced, journaled first so an undo puts it back. The copy is
/// synced before the settings change: it holds the only copy of the site's
/// database password.
pub(in crate::apply) fn save_old_settings(
    run: &mut TaskRun,
    srv: &LocalServer,
    dir: &Path,
) -> Result<(), String> {
    let saved = dir.join(OLD_SETTINGS_FILE);
    let place = srv.place(&saved).map_err(txt)?;
    run.note(|j| j.saved_settings = Some(place)).map_err(txt)?;
    let text = srv.read_at(&dir.join(SETTINGS_FILE)).map_err(txt)?;
    srv.write_at(&saved, &text, WriteMode::Private).map_err(txt)
}

/// Observes the site afresh (never act on a stale comparison) and checks it
/// is what the plan was made on.
pub(in crate::apply) fn observe_fresh(
    run: &mut TaskRun,
    srv: &LocalServer,
    at: &Endpoint,
    planned: Option<&String>,
) -> Result<(crate::observe::ObservedSite, SettingsFile), StepError> {
    step(run, "observe", |run| {
        let obs = srv.observe_site(&at.platform, &at.domain).map_err(txt)?;
        if let Some(fp) = planned {
            if &obs.fingerprint() != fp {
                return Err(
                    "the site changed since the plan was made; run `hoist plan` again".to_string(),
                );
            }
        }
        let (settings, _) = srv.read_settings(&at.platform, &at.domain).map_err(txt)?;
        // Read-only so far: the first noted change carries this to disk.
        run.remember(|j| j.old_db = Some(site_db(&settings)));
        Ok((obs, settings))
    })
}

/// How a site logs in to its database, from its settings.
pub(in crate::apply) fn login(settings: &SettingsFile) -> Login {
    Login::from(settings)
}

/// Refuses, before the task records anything, a new database whose name
/// or user exists on its server: a task never adopts (and an undo never
/// drops) what it did not create.
pub(in crate::apply) fn check_free(srv: &LocalServer, new_db: &DbRef) -> Result<(), String> {
    srv.db_server(&new_db.server)
        .map_err(txt)?
        .check_free(&new_db.name)
        .map_err(txt)
}

/// The `check-target` step's test: refuses, before anything changes, a
/// target that is taken: the site directory `dir`, a vhost of `domain`
/// (either left out when the task keeps its own), or the new database or
/// its user ([`check_free`]).
pub(in crate::apply) fn check_target(
    srv: &LocalServer,
    dir: Option<&Path>,
    domain: Option<&Domain>,
    new_db: &DbRef,
) -> Result<(), String> {
    if let Some(dir) = dir.filter(|d| srv.exists_at(d)) {
        return Err(format!("{} exists already", dir.display()));
    }
    if let Some(domain) = domain {
        if srv.web().read(domain, Which::Site).map_err(txt)?.is_some() {
            return Err(format!("a vhost for {domain} exists already"));
        }
    }
    check_free(srv, new_db)
}

/// The result of creating the database the journal names as `NEW_DB`
/// (noted before, so an undo drops it). When the server refused because
/// the database or its user exists (made by someone else since the task
/// checked), the fact is withdrawn: what exists is not the task's, and no
/// undo may drop it.
pub(in crate::apply) fn created<T>(
    run: &mut TaskRun,
    r: Result<T, DriverError>,
) -> Result<T, String> {
    match r {
        Err(e) if e.already_exists() => {
            run.rec.journal.new_db = None;
            match run.save() {
                Ok(()) => Err(e.to_string()),
                Err(w) => Err(format!(
                    "{e}; and the task journal could not be written: {w}"
                )),
            }
        }
        r => r.map_err(txt),
    }
}

/// The database server a site's settings name.
pub(in crate::apply) fn db_of<'a>(
    srv: &'a LocalServer,
    settings: &SettingsFile,
) -> Result<&'a dyn DbServer, String> {
    srv.db_server(&settings.database.server).map_err(txt)
}

/// An open connection to a site's live database, in the embedded format.
pub(in crate::apply) fn open_db<'a>(
    srv: &'a LocalServer,
    settings: &SettingsFile,
) -> Result<Box<dyn SiteConn + 'a>, String> {
    db_of(srv, settings)?
        .open(&login(settings), false)
        .map_err(txt)
}

/// The database a site's settings name, with its database server.
pub(in crate::apply) fn site_db(settings: &SettingsFile) -> DbRef {
    DbRef {
        server: settings.database.server.clone(),
        name: settings.database.name.clone(),
    }
}

/// Drops the database a journal fact names.
pub(in crate::apply) fn drop_db(srv: &LocalServer, r: &DbRef) -> Result<(), String> {
    srv.db_server(&r.server)
        .map_err(txt)?
        .drop_database(&r.name)
        .map_err(txt)
}

pub(in crate::apply) fn maintenance_on(
    run: &mut TaskRun,
    srv: &LocalServer,
    settings: &SettingsFile,
) -> Result<(), StepError> {
    step(run, "maintenance-on", |run| {
        let (app, site) = live_site(srv, settings)?;
        let prev = app.maintenance(&site)?;
        run.note(|j| j.maintenance_prev = Some(prev)).map_err(txt)?;
        app.set_maintenance(&site, Some("1"))
    })
}

pub(in crate::apply) fn restore_maintenance(
    srv: &LocalServer,
    at: &Endpoint,
    rec: &TaskRecord,
) -> Result<(), String> {
    let Some(prev) = &rec.journal.maintenance_prev else {
        return Ok(());
    };
    let (settings, _) = srv.read_settings(&at.platform, &at.domain).map_err(txt)?;
    let (app, site) = live_site(srv, &settings)?;
    app.set_maintenance(&site, prev.as_deref())
}

/// The application of platform `p` on `srv` ([`crate::driver::app::kind_of`]).
pub(in crate::apply) fn app_of(
    srv: &LocalServer,
    p: &PlatformName,
) -> Result<&'static dyn AppKind, String> {
    let generation = srv.drupal_generation(p).map_err(txt)?;
    crate::driver::app::kind_for(generation)
}

/// A site and its application, as its settings file says: where it lives
/// and its live database.
pub(in crate::apply) fn live_site<'a>(
    srv: &'a LocalServer,
    settings: &SettingsFile,
) -> Result<(&'static dyn AppKind, AppSite<'a>), String> {
    let cfg = settings.config();
    let app = app_of(srv, &cfg.platform)?;
    Ok((
        app,
        AppSite {
            platform_dir: srv.platform_dir(&cfg.platform),
            platform: cfg.platform.clone(),
            domain: cfg.domain.clone(),
            db: db_of(srv, settings)?,
            login: login(settings),
            staged: false,
            code: srv,
            host: srv.host(),
            platform_path: srv.platform_path(&cfg.platform),
        },
    ))
}

/// The site a task is making at `at`, on the new (staged) database
/// `db` it logs in to with `creds`, and its application.
pub(in crate::apply) fn new_site<'a>(
    srv: &'a LocalServer,
    at: &Endpoint,
    db: &DbRef,
    creds: &Login,
) -> Result<(&'static dyn AppKind, AppSite<'a>), String> {
    let app = app_of(srv, &at.platform)?;
    Ok((
        app,
        AppSite {
            platform_dir: srv.platform_dir(&at.platform),
            platform: at.platform.clone(),
            domain: at.domain.clone(),
            db: srv.db_server(&db.server).map_err(txt)?,
            login: creds.clone(),
            staged: true,
            code: srv,
            host: srv.host(),
            platform_path: srv.platform_path(&at.platform),
        },
    ))
}

/// Takes a backup of a site (a dump of its database, and its directory as
/// `scope` says), prunes old ones, and records it in the task.
pub(in crate::apply) fn take_backup(
    run: &mut TaskRun,
    srv: &LocalServer,
    site: &Name,
    at: &Endpoint,
    settings: &SettingsFile,
    scope: backup::Scope,
    keep: Option<usize>,
) -> Result<Vec<String>, StepError> {
    step(run, "backup", |run| {
        let mut warnings = Vec::new();
        let made = backup::create(
            srv,
            site,
            &at.platform,
            &at.domain,
            (db_of(srv, settings)?, &login(settings)),
            scope,
            None,
        )
        .map_err(txt)?;
        let rel = made
            .info
            .path
            .strip_prefix(srv.root())
            .unwrap_or(&made.info.path)
            .display()
            .to_string();
        // Carried to disk by the next note (the deploy's, or the finish):
        // nothing between here and there needs it after a crash.
        run.rec.backup = Some(rel.clone());
        run.log(format!("backup {rel} ({} bytes)", made.info.bytes));
        for sk in &made.skipped {
            warnings.push(format!("backup left out {}: {}", sk.path, sk.reason));
        }
        if let Some(keep) = keep {
            match backup::prune(srv, site, keep.max(1), Some(&made.info.path)) {
                Ok(gone) => {
                    for g in gone {
                        run.log(format!("pruned old backup {}", g.display()));
                    }
                }
                Err(e) => warnings.push(format!("old backups could not be pruned: {e}")),
            }
        }
        Ok::<_, String>(warnings)
    })
}

/// The deploy of a migrate or clone: a new database and user holding a
/// copy of the old one (SQLite's online backup gives the rows a dump and
/// import would), and a copy of the site directory (links copied as links,
/// never followed). The caller has journaled both ([`journal_copy`])
/// and synced the journal, so an undo removes them.
pub(in crate::apply) fn deploy_copy(
    run: &mut TaskRun,
    srv: &LocalServer,
    old: &SettingsFile,
    new_db: &DbRef,
    from: &Path,
    to: &Path,
) -> Result<Login, String> {
    let copied = copy_database(srv, old, new_db)?;
    let creds = created(run, copied)?;
    crate::failpoint::hit("deploy-inside", crate::failpoint::When::Before)?;
    srv.mkdir_at(to.parent().expect("site dirs have a parent"))
        .map_err(txt)?;
    // The settings are not copied: the verify step writes the new site's
    // own, and a file copied only to be replaced costs a create and a delete.
    srv.copy_tree_at(from, to, &[SETTINGS_FILE])
        .map_err(|e| format!("copying the site directory: {e}"))?;
    Ok(creds)
}

/// Journals what [`deploy_copy`] will make (the new database and the
/// directory it copies to, both checked free by then), to go to disk with
/// the task's next note or save, before the deploy. An undo before the
/// deploy made them finds nothing to remove.
pub(in crate::apply) fn journal_copy(
    run: &mut TaskRun,
    srv: &LocalServer,
    new_db: &DbRef,
    to: &Path,
) -> Result<(), String> {
    let to = srv.place(to).map_err(txt)?;
    run.remember(|j| {
        j.new_db = Some(new_db.clone());
        j.copied_dir = Some(to);
    });
    Ok(())
}

/// A new database `new_db` and its user, holding a copy of the site's
/// database ([`crate::driver::db::copy_between`]: on one server its own
/// copy, across servers a streamed dump and load). The later steps edit
/// the copy: the old database stays as it was until the task commits, so
/// an undo only drops the copy and never depends on loading a dump.
pub(in crate::apply) fn copy_database(
    srv: &LocalServer,
    old: &SettingsFile,
    new_db: &DbRef,
) -> Result<Result<Login, DriverError>, String> {
    let src = db_of(srv, old)?;
    let dst = srv.db_server(&new_db.server).map_err(txt)?;
    Ok(crate::driver::db::copy_between(
        src,
        &login(old),
        dst,
        &new_db.name,
    ))
}

/// Steps 4 to 6 on a deployed site: pending updates (when `update`),
/// paths fixed from `from_domain` to the new site's (and its name set to
/// `site_name`, a clone's), maintenance set to `maintenance` when given,
/// caches cleared. Returns the updates' warnings.
#[allow(clippy::too_many_arguments)]
pub(in crate::apply) fn settle(
    run: &mut TaskRun,
    app: &dyn AppKind,
    site: &AppSite<'_>,
    from_domain: &Domain,
    cfg: &SiteConfig,
    update: bool,
    site_name: Option<&str>,
    maintenance: Option<&str>,
) -> Result<Vec<String>, StepError> {
    let warnings = if update {
        update_step(run, app, site, &cfg.profile)?
    } else {
        Vec::new()
    };
    step(run, "fix-paths", |_| {
        app.fix_paths(site, from_domain, cfg, site_name)?;
        if let Some(m) = maintenance {
            app.set_maintenance(site, Some(m))?;
        }
        Ok::<_, String>(())
    })?;
    step(run, "clear-caches", |_| app.clear_caches(site))?;
    Ok(warnings)
}

/// Step 4: the pending updates of the site's platform applied to its
/// database, a log line each. Returns their warnings.
pub(in crate::apply) fn update_step(
    run: &mut TaskRun,
    app: &dyn AppKind,
    site: &AppSite<'_>,
    profile: &crate::names::PackageName,
) -> Result<Vec<String>, StepError> {
    step(run, "update", |run| {
        app.update(site, profile, &mut |line| run.log(line))
    })
}

/// The site a task is making, for its next step `next_step` (which fails
/// when the site's application or database server cannot be had).
pub(in crate::apply) fn new_site_for<'a>(
    srv: &'a LocalServer,
    at: &Endpoint,
    db: &DbRef,
    creds: &Login,
    next_step: &str,
) -> Result<(&'static dyn AppKind, AppSite<'a>), StepError> {
    new_site(srv, at, db, creds).map_err(|message| StepError {
        step: next_step.into(),
        message,
    })
}

/// Writes the application's own settings of the site a deploy made at
/// `at` (a Drupal site's `settings.php`, for its new database), before
/// anything runs its code: a copied `settings.php` names the old database.
pub(in crate::apply) fn app_settings(
    srv: &LocalServer,
    at: &Endpoint,
    db: &DbRef,
    creds: &Login,
    cfg: &SiteConfig,
) -> Result<(), String> {
    let (app, site) = new_site(srv, at, db, creds)?;
    app.write_settings(&site, cfg)
}

/// Notes the vhost of `domain` as it is (null: none), before it is
/// replaced; once only.
pub(in crate::apply) fn save_old_vhost(
    run: &mut TaskRun,
    srv: &LocalServer,
    domain: &Domain,
) -> Result<(), String> {
    if run.rec.journal.old_vhost.is_some() {
        return Ok(());
    }
    let old = old_vhost(srv, domain);
    run.note(|j| j.old_vhost = Some(old)).map_err(txt)
}

/// The vhost of `domain` as it is (`None`: none, or unreadable).
pub(in crate::apply) fn old_vhost(srv: &LocalServer, domain: &Domain) -> Option<String> {
    srv.web().read(domain, Which::Site).ok().flatten()
}

/// Puts back the vhost of `old` the journal saved (and removes those of
/// `new` and its preview), then has the web server serve it again.
pub(in crate::apply) fn restore_vhost(
    srv: &LocalServer,
    rec: &TaskRecord,
    old: &Domain,
    new: Option<&Domain>,
) -> Result<(), String> {
    let Some(saved) = &rec.journal.old_vhost else {
        return Ok(());
    };
    let web = srv.web();
    if let Some(n) = new.filter(|n| *n != old) {
        web.write(n, Which::Site, None).map_err(txt)?;
    }
    web.write(new.unwrap_or(old), Which::Preview, None)
        .map_err(txt)?;
    web.write(old, Which::Site, saved.as_deref()).map_err(txt)?;
    web.activate().map_err(txt)
}
