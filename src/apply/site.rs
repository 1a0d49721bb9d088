//! Site tasks, each a sequence of named steps recorded in the task journal:
//! install, migrate / rename / migrate+rename (spec section 8), clone,
//! delete, and enable / disable / verify. Every fact an undo needs is
//! journaled before the step that creates it, so the undo works from the
//! task record alone (which is what crash recovery has).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{cutover, execute, step, ApplyOptions, StepError, TaskOutcome};
use crate::backup;
use crate::driver::app::{AppKind, AppSite};
use crate::driver::db::Moved;
use crate::driver::host::WriteMode;
use crate::driver::{DbRef, DbServer, DriverError, Login, SiteConn, Which};
use crate::inventory::Inventory;
use crate::journal::Place;
use crate::names::{Domain, Name, PlatformName};
use crate::plan::{Endpoint, SiteAction, SitePlan};
use crate::render::{self, SettingsFile, SiteConfig};
use crate::server::{io_err, LocalServer, ServerError, Servers, OLD_SETTINGS_FILE, SETTINGS_FILE};
use crate::task::{TaskKind, TaskRecord, TaskResult, TaskRun};

/// The backup a restore task restored (or tried to), relative to the
/// server root.
pub fn restored_from(rec: &TaskRecord) -> Option<&str> {
    rec.journal.restored_from.as_deref()
}

pub(super) fn txt<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Where on `srv` a journaled place is (`None`: the journal has none).
pub(super) fn path_of(srv: &LocalServer, p: &Option<Place>) -> Result<Option<PathBuf>, String> {
    p.as_ref().map(|p| srv.locate(p).map_err(txt)).transpose()
}

/// Runs the task for one site.
pub(super) fn run(
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
pub(super) fn server_for<'a>(
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

pub(super) fn start(
    srv: &LocalServer,
    kind: TaskKind,
    s: &SitePlan,
    opts: &ApplyOptions,
) -> Result<TaskRun, ServerError> {
    let mut run = TaskRun::start_noted(&srv.tasks_dir(), kind, Some(s.name.clone()), None, |rec| {
        rec.from = s.from.clone();
        rec.to = s.to.clone();
        rec.commit = opts.commit.clone();
        rec.wave = s.wave.clone();
    })
    .map_err(io_err(&srv.tasks_dir()))?;
    run.cancel_on(opts.cancel.clone());
    Ok(run)
}

pub(super) fn need<'a, T>(o: &'a Option<T>, what: &str) -> Result<&'a T, ServerError> {
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

/// Writes a site's files directory, settings (0600) and vhost, unsynced:
/// the task's commit point ([`mark_committed`]) makes them durable.
fn write_site_files(
    srv: &LocalServer,
    cfg: &SiteConfig,
    password: &render::Secret,
) -> Result<(), ServerError> {
    let dir = srv.site_dir(&cfg.platform, &cfg.domain);
    srv.mkdir_at(&dir.join("files"))?;
    write_settings(srv, cfg, password)?;
    write_vhost(srv, cfg).map_err(ServerError::Invalid)
}

pub(super) fn write_settings(
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
fn write_vhost(srv: &LocalServer, cfg: &SiteConfig) -> Result<(), String> {
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
pub(super) fn mark_committed(
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
    run.note(|j| j.committed = true)
        .map_err(|e| fail(format!("cannot write the task journal: {e}")))
}

/// Keeps a copy of a site's settings as `.hoist-old-settings.yaml` before
/// they are replaced, journaled first so an undo puts it back. The copy is
/// synced before the settings change: it holds the only copy of the site's
/// database password.
fn save_old_settings(run: &mut TaskRun, srv: &LocalServer, dir: &Path) -> Result<(), String> {
    let saved = dir.join(OLD_SETTINGS_FILE);
    let place = srv.place(&saved).map_err(txt)?;
    run.note(|j| j.saved_settings = Some(place)).map_err(txt)?;
    let text = srv.read_at(&dir.join(SETTINGS_FILE)).map_err(txt)?;
    srv.write_at(&saved, &text, WriteMode::Private).map_err(txt)
}

/// Observes the site afresh (never act on a stale comparison) and checks it
/// is what the plan was made on.
pub(super) fn observe_fresh(
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
pub(super) fn login(settings: &SettingsFile) -> Login {
    Login::from(settings)
}

/// Refuses, before the task records anything, a new database whose name
/// or user exists on its server: a task never adopts (and an undo never
/// drops) what it did not create.
fn check_free(srv: &LocalServer, new_db: &DbRef) -> Result<(), String> {
    srv.db_server(&new_db.server)
        .map_err(txt)?
        .check_free(&new_db.name)
        .map_err(txt)
}

/// The result of creating the database the journal names as `NEW_DB`
/// (noted before, so an undo drops it). When the server refused because
/// the database or its user exists (made by someone else since the task
/// checked), the fact is withdrawn: what exists is not the task's, and no
/// undo may drop it.
fn created<T>(run: &mut TaskRun, r: Result<T, DriverError>) -> Result<T, String> {
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
pub(super) fn db_of<'a>(
    srv: &'a LocalServer,
    settings: &SettingsFile,
) -> Result<&'a dyn DbServer, String> {
    srv.db_server(&settings.database.server).map_err(txt)
}

/// An open connection to a site's live database, in the embedded format.
pub(super) fn open_db<'a>(
    srv: &'a LocalServer,
    settings: &SettingsFile,
) -> Result<Box<dyn SiteConn + 'a>, String> {
    db_of(srv, settings)?
        .open(&login(settings), false)
        .map_err(txt)
}

/// The database a site's settings name, with its database server.
pub(super) fn site_db(settings: &SettingsFile) -> DbRef {
    DbRef {
        server: settings.database.server.clone(),
        name: settings.database.name.clone(),
    }
}

/// Drops the database a journal fact names.
pub(super) fn drop_db(srv: &LocalServer, r: &DbRef) -> Result<(), String> {
    srv.db_server(&r.server)
        .map_err(txt)?
        .drop_database(&r.name)
        .map_err(txt)
}

pub(super) fn maintenance_on(
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

pub(super) fn restore_maintenance(
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
pub(super) fn app_of(srv: &LocalServer, p: &PlatformName) -> Result<&'static dyn AppKind, String> {
    crate::driver::app::kind_of(&srv.platform_dir(p))
}

/// A site and its application, as its settings file says: where it lives
/// and its live database.
pub(super) fn live_site<'a>(
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
        },
    ))
}

/// The site a task is making at `at`, on the new (staged) database
/// `db` it logs in to with `creds`, and its application.
pub(super) fn new_site<'a>(
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
        },
    ))
}

/// Takes a backup of a site (a dump of its database, and its directory as
/// `scope` says), prunes old ones, and records it in the task.
pub(super) fn take_backup(
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
fn deploy_copy(
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
fn journal_copy(
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
fn copy_database(
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

/// The deploy of a rename on the same platform: the site directory is
/// moved (its files never change, whatever their size), and so is the
/// database when it stays on its server and the driver can
/// ([`DbServer::move_tables`]: one atomic `RENAME TABLE`, whatever its
/// size); otherwise it is copied ([`copy_database`]). Everything is
/// journaled first: an undo moves the directory back, moves the tables
/// back (or drops the copy). Returns the new login and whether the tables
/// moved.
fn move_dir_and_db(
    run: &mut TaskRun,
    srv: &LocalServer,
    old: &SettingsFile,
    new_db: &DbRef,
    old_dir: &Path,
    new_dir: &Path,
) -> Result<(Login, bool), String> {
    run.remember(|j| j.moved_dir = true);
    let app = app_of(srv, &old.config().platform)?;
    let moved = if !app.rename_moves_tables() {
        Moved::Copy(format!(
            "a {} site's database is copied (its undo cannot set moved tables back)",
            app.name()
        ))
    } else if old.database.server == new_db.server {
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

/// The variables a rename edits in the moved tables ([`settle`]), which
/// an undo sets back.
const MOVED_VARS: [&str; 2] = ["base_url", "file_directory_path"];

/// Moves the site's tables into `new_db` on the same server, journaled
/// first ([`crate::journal::Journal::tables_moved`]); [`Moved::Copy`] when the driver cannot
/// (the log says why), with nothing changed.
fn move_db(
    run: &mut TaskRun,
    srv: &LocalServer,
    old: &SettingsFile,
    new_db: &DbRef,
) -> Result<Moved, String> {
    let dbs = db_of(srv, old)?;
    let mut before = std::collections::BTreeMap::new();
    {
        let mut db = dbs.open(&login(old), false).map_err(txt)?;
        for k in MOVED_VARS {
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
/// (paths under the new domain's directory, the journaled variables).
/// Known limit: caches the rename cleared stay empty, and a file path that
/// already pointed under the new domain's directory before the rename is
/// pointed under the old one. May run again after a crash.
fn move_tables_back(
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
    let mut db = open_db(srv, &settings)?;
    if from.domain != to.domain {
        db.fix_paths(to.domain.as_str(), from.domain.as_str())
            .map_err(txt)?;
    }
    if let Some(vars) = &rec.journal.vars_before_move {
        for (k, v) in vars {
            match v {
                Some(v) => db.set_variable(k, v).map_err(txt)?,
                None => db.delete_variable(k).map_err(txt)?,
            }
        }
    }
    Ok(())
}

/// Steps 4 to 6 on a deployed site: pending updates (when `update`),
/// paths fixed from `from_domain` to the new site's (and its name set to
/// `site_name`, a clone's), maintenance set to `maintenance` when given,
/// caches cleared. Returns the updates' warnings.
#[allow(clippy::too_many_arguments)]
fn settle(
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
pub(super) fn update_step(
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
fn new_site_for<'a>(
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
fn app_settings(
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
fn save_old_vhost(run: &mut TaskRun, srv: &LocalServer, domain: &Domain) -> Result<(), String> {
    if run.rec.journal.old_vhost.is_some() {
        return Ok(());
    }
    let old = old_vhost(srv, domain);
    run.note(|j| j.old_vhost = Some(old)).map_err(txt)
}

/// The vhost of `domain` as it is (`None`: none, or unreadable).
pub(super) fn old_vhost(srv: &LocalServer, domain: &Domain) -> Option<String> {
    srv.web().read(domain, Which::Site).ok().flatten()
}

/// Puts back the vhost of `old` the journal saved (and removes those of
/// `new` and its preview), then has the web server serve it again.
fn restore_vhost(
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

/// What an undo could not do. Every part of an undo runs whatever befell
/// the others, and the site is taken out of maintenance only when all of
/// them worked: a site half put back stays in maintenance, and the task
/// says what failed.
#[derive(Default)]
struct Undo {
    failed: Vec<String>,
}

impl Undo {
    /// Notes `r`'s failure, if it failed, as a failure of `what`.
    fn check<E: std::fmt::Display>(&mut self, what: &str, r: Result<(), E>) {
        if let Err(e) = r {
            self.failed.push(format!("{what}: {e}"));
        }
    }

    /// Ends the undo: the site is taken out of maintenance (as it was
    /// before the task) when every part worked.
    fn online(mut self, srv: &LocalServer, at: &Endpoint, rec: &TaskRecord) -> Result<(), String> {
        if self.failed.is_empty() {
            self.check(
                "taking the site out of maintenance",
                restore_maintenance(srv, at, rec),
            );
            if self.failed.is_empty() {
                cutover::check_after_undo(srv, &at.domain, rec);
            }
        }
        self.done()
    }

    /// Moves the site directory `from` (where the task put it) back to
    /// `to`, unless something took `to` meanwhile: then it stays.
    fn move_back(&mut self, srv: &LocalServer, from: &Path, to: &Path) {
        let back = if srv.exists_at(to) {
            Err(format!("{} exists", to.display()))
        } else {
            crate::failpoint::hit("undo-move-back", crate::failpoint::When::Before)
                .and_then(|()| srv.rename_at(from, to).map_err(txt))
        };
        self.check(
            &format!("moving the site directory back from {}", from.display()),
            back,
        );
    }

    /// Puts back the settings a task saved ([`save_old_settings`]) as
    /// the settings of the site directory `dir`.
    fn settings_back(&mut self, srv: &LocalServer, rec: &TaskRecord, dir: &Path) {
        let saved = self.place(srv, "the saved settings", &rec.journal.saved_settings);
        if let Some(saved) = saved.filter(|p| srv.exists_at(p)) {
            self.check(
                "putting back the old settings",
                srv.rename_at(&saved, &dir.join(SETTINGS_FILE)),
            );
        }
    }

    /// Renders the application's own settings of the site at `at` again
    /// from its `settings.yaml` (as put back), for its own database.
    fn app_settings_back(&mut self, srv: &LocalServer, at: &Endpoint) {
        let r = srv
            .read_settings(&at.platform, &at.domain)
            .map_err(txt)
            .and_then(|(settings, _)| {
                let (app, site) = live_site(srv, &settings)?;
                app.write_settings(&site, &settings.config())
            });
        self.check("putting back the application's settings", r);
    }

    /// Where a journaled place is on `srv`; a place it refuses is a
    /// failure of the undo (named `what`).
    fn place(&mut self, srv: &LocalServer, what: &str, p: &Option<Place>) -> Option<PathBuf> {
        match path_of(srv, p) {
            Ok(p) => p,
            Err(e) => {
                self.failed.push(format!("{what}: {e}"));
                None
            }
        }
    }

    fn done(self) -> Result<(), String> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(self.failed.join("; "))
        }
    }
}

fn install(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let mut cfg = need(&s.config, "settings")?.clone();
    let srv = server_for(inv, servers, &cfg.platform)?;
    let run = start(srv, TaskKind::Install, s, opts)?;
    let new_db = DbRef {
        server: cfg.db_server.clone(),
        name: new_db_name(&s.name),
    };
    cfg.db_name = Some(new_db.name.clone());
    let site_dir = srv.site_dir(&cfg.platform, &cfg.domain);
    let endpoint = Endpoint {
        platform: cfg.platform.clone(),
        domain: cfg.domain.clone(),
    };
    let health = cutover::health_of(inv, &s.name);
    Ok(execute(
        run,
        what,
        |run| {
            step(run, "check-target", |_| {
                if srv.exists_at(&site_dir) {
                    return Err(format!("{} exists already", site_dir.display()));
                }
                if srv
                    .web()
                    .read(&cfg.domain, Which::Site)
                    .map_err(txt)?
                    .is_some()
                {
                    return Err(format!("a vhost for {} exists already", cfg.domain));
                }
                check_free(srv, &new_db)
            })?;
            let dbs = srv.db_server(&new_db.server).map_err(|e| StepError {
                step: "create-database".into(),
                message: e.to_string(),
            })?;
            let creds = step(run, "create-database", |run| {
                // The site's directory goes to disk with the database's
                // note: an application's installer may make it.
                let dir = srv.place(&site_dir).map_err(txt)?;
                run.note(|j| {
                    j.copied_dir = Some(dir);
                    j.new_db = Some(new_db.clone());
                })
                .map_err(txt)?;
                created(run, dbs.create(&new_db.name))
            })?;
            step(run, "install-packages", |run| {
                let (app, site) = new_site(srv, &endpoint, &new_db, &creds)?;
                app.install(&site, &cfg, &mut |line| run.log(line))
            })?;
            step(run, "write-settings", |run| {
                run.note(|j| j.old_vhost = Some(None)).map_err(txt)?;
                write_site_files(srv, &cfg, &creds.password).map_err(txt)?;
                srv.web().activate().map_err(txt)
            })?;
            cutover::check_step(run, srv, &cfg.domain, &health)?;
            mark_committed(run, srv, "health-check")?;
            Ok(vec![])
        },
        |run| rollback(srv, run),
    ))
}

/// Undoes what an install or a clone created: its vhost, directory and
/// database. Nothing else was touched.
pub(super) fn undo_created(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    let mut u = Undo::default();
    if let (Some(to), true) = (&rec.to, rec.journal.old_vhost.is_some()) {
        let web = srv.web();
        u.check(
            "removing the new vhost",
            web.write(&to.domain, Which::Site, None)
                .and_then(|()| web.activate()),
        );
    }
    if let Some(dir) = u.place(srv, "the new site directory", &rec.journal.copied_dir) {
        u.check("removing the new site directory", srv.remove_tree_at(&dir));
    }
    drop_new_db(&mut u, srv, rec);
    u.done()
}

/// Drops the database the task created, if it did.
fn drop_new_db(u: &mut Undo, srv: &LocalServer, rec: &TaskRecord) {
    if let Some(db) = &rec.journal.new_db {
        u.check("dropping the new database", drop_db(srv, db));
    }
}

/// Migrate, rename, or both: the nine steps of spec section 8.
fn move_site(
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
    if server_for(inv, servers, &to.platform)?.name() != srv.name() {
        return Err(ServerError::Invalid(
            "moving a site to another server is not supported".into(),
        ));
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
                if srv.exists_at(&new_dir) && new_dir != old_dir {
                    return Err(format!("{} exists already", new_dir.display()));
                }
                if from.domain != to.domain
                    && srv
                        .web()
                        .read(&to.domain, Which::Site)
                        .map_err(txt)?
                        .is_some()
                {
                    return Err(format!("a vhost for {} exists already", to.domain));
                }
                check_free(srv, &new_db)
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
            })?;
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

/// Undoes a migrate or rename that has not committed: the deploy's
/// database and copy are dropped (or the moved directory moved back), the
/// old settings and vhost put back, the old site taken out of maintenance.
/// The old database was never edited (the deploy edits a copy), so nothing
/// here can fail for what the data is.
pub(super) fn undo_move(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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
    if rec.journal.moved_dir && srv.exists_at(&new_dir) {
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
fn reload_from_backup(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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
    backup::remove_staging(&staged).map_err(txt)?;
    backup::load_dump(&archive, &mut |dump| {
        Ok(srv.db().reload(db, dump, backup::DUMP)?)
    })
    .map(|_| ())
    .map_err(txt)
}

/// Step 9 of a move: removes the old copy (directory, database, vhost).
pub(super) fn finish_move(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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

/// Clone: a backup of the source without maintenance, a copy deployed under
/// the new name and domain (updated if the platform differs), verified. The
/// source is only read.
fn clone(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let to = need(&s.to, "target")?.clone();
    let src_name = need(&s.clone_from, "clone source")?.clone();
    let mut cfg = need(&s.config, "settings")?.clone();
    let srv = server_for(inv, servers, &to.platform)?;
    let run = start(srv, TaskKind::Clone, s, opts)?;
    let new_dir = srv.site_dir(&to.platform, &to.domain);
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
            let mut warnings = Vec::new();
            let src = step(run, "observe", |run| {
                let sites = srv.observe().sites;
                let src = sites
                    .get(&src_name)
                    .cloned()
                    .ok_or_else(|| format!("clone source {src_name} is not installed"))?;
                run.rec.from = Some(Endpoint {
                    platform: src.platform().clone(),
                    domain: src.domain().clone(),
                });
                Ok::<_, String>(src)
            })?;
            let from = Endpoint {
                platform: src.platform().clone(),
                domain: src.domain().clone(),
            };
            let (settings, _) = srv
                .read_settings(&from.platform, &from.domain)
                .map_err(|e| StepError {
                    step: "observe".into(),
                    message: e.to_string(),
                })?;
            step(run, "check-target", |_| {
                if srv.exists_at(&new_dir) {
                    return Err(format!("{} exists already", new_dir.display()));
                }
                if srv
                    .web()
                    .read(&to.domain, Which::Site)
                    .map_err(txt)?
                    .is_some()
                {
                    return Err(format!("a vhost for {} exists already", to.domain));
                }
                check_free(srv, &new_db)
            })?;
            warnings.extend(take_backup(
                run,
                srv,
                &src_name,
                &from,
                &settings,
                backup::Scope::Full,
                Some(keep),
            )?);
            let creds = step(run, "deploy", |run| {
                let old_dir = srv.site_dir(&from.platform, &from.domain);
                journal_copy(run, srv, &new_db, &new_dir)?;
                run.save().map_err(txt)?;
                let creds = deploy_copy(run, srv, &settings, &new_db, &old_dir, &new_dir)?;
                app_settings(srv, &to, &new_db, &creds, &cfg)?;
                Ok::<_, String>(creds)
            })?;
            let (app, site) = new_site_for(srv, &to, &new_db, &creds, "update")?;
            warnings.extend(settle(
                run,
                app,
                &site,
                &from.domain,
                &cfg,
                true,
                Some(cfg.site.as_str()),
                Some("0"),
            )?);
            step(run, "verify", |run| {
                run.note(|j| j.old_vhost = Some(None)).map_err(txt)?;
                write_settings(srv, &cfg, &creds.password).map_err(txt)?;
                write_vhost(srv, &cfg).map_err(txt)?;
                srv.web().activate().map_err(txt)?;
                srv.observe_site(&to.platform, &to.domain)
                    .map_err(|e| format!("the clone does not check out: {e}"))?;
                Ok::<_, String>(())
            })?;
            cutover::check_step(run, srv, &to.domain, &health)?;
            mark_committed(run, srv, "health-check")?;
            Ok(warnings)
        },
        |run| rollback(srv, run),
    ))
}

/// Delete (prune): a final backup, then the vhost, directory and database
/// removed. The directory goes to the trash first, so everything before the
/// database is dropped can be put back.
fn delete(
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

/// Enable, disable, verify: settings and vhost rendered again from the
/// inventory (keeping the site's database and credentials).
fn rerender(
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

/// The undo closure of every site task: a task that had committed is
/// finished, any other is undone, both from its journal alone. Returns
/// what the undo could not do, for the task's message.
pub(super) fn rollback(srv: &LocalServer, run: &mut TaskRun) -> Result<(), String> {
    if run.rec.journal.committed {
        run.log(match finish(srv, &run.rec) {
            Ok(()) => {
                "the task had committed, so it was finished rather than rolled back".to_string()
            }
            Err(e) => format!("the task had committed; finishing it failed: {e}"),
        });
        return Ok(());
    }
    if let Some(why) = undo_blocked(srv, &run.rec) {
        let msg = format!(
            "the undo waits for the database server ({why}): the next hoist run on this server retries it; until then the site stays as the failed step left it, its backup kept"
        );
        run.log(format!("error: {msg}"));
        return match run.note(|j| j.undo_waits = true) {
            Ok(()) => Err(msg),
            Err(e) => Err(format!(
                "{msg}; and the task journal could not be written: {e}"
            )),
        };
    }
    match undo(srv, &run.rec) {
        Ok(msg) => {
            run.log(msg);
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
/// run again: crash recovery may repeat it.
pub(crate) fn undo(srv: &LocalServer, rec: &TaskRecord) -> Result<String, String> {
    let (r, done) = match rec.kind {
        TaskKind::Install | TaskKind::Clone => (
            undo_created(srv, rec),
            "rolled back: the new site's database, directory and vhost were removed; nothing else was touched",
        ),
        TaskKind::Migrate | TaskKind::Rename | TaskKind::MigrateRename => (
            undo_move(srv, rec),
            "rolled back: the new copy was removed and the old site is back online as it was",
        ),
        TaskKind::Delete => (
            undo_delete(srv, rec),
            "rolled back: the site is back online; its backup is kept",
        ),
        TaskKind::Enable | TaskKind::Disable | TaskKind::Verify => (
            undo_rerender(srv, rec),
            "rolled back: settings and vhost were put back",
        ),
        TaskKind::Update => (
            super::update::undo(srv, rec),
            "rolled back: the database kept before the updates was put back and the site is back online as it was; its backup is kept",
        ),
        TaskKind::Restore => (
            undo_restore(srv, rec),
            "rolled back: the site is back as it was before the restore; both backups are kept",
        ),
        TaskKind::Rollback => (
            super::rollback::undo(srv, rec),
            "rolled back: the site is back where the rollout had put it; the copy from the backup was removed",
        ),
        TaskKind::Backup | TaskKind::Build | TaskKind::DeletePlatform => {
            (Ok(()), "rolled back: nothing to undo")
        }
    };
    r.map(|()| done.to_string()).map_err(|e| {
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
    })
}

/// Finishes a site task that had committed (its remaining work is
/// cleanup), from its record alone.
pub(crate) fn finish(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
    match rec.kind {
        TaskKind::Migrate | TaskKind::Rename | TaskKind::MigrateRename | TaskKind::Rollback => {
            finish_move(srv, rec)
        }
        TaskKind::Delete => {
            if let Some(db) = &rec.journal.old_db {
                drop_db(srv, db)?;
            }
            if let Some(t) = path_of(srv, &rec.journal.trashed_dir)? {
                srv.remove_tree_at(&t).map_err(txt)?;
            }
            Ok(())
        }
        TaskKind::Enable | TaskKind::Disable | TaskKind::Verify => {
            match path_of(srv, &rec.journal.saved_settings)? {
                Some(p) => srv.remove_file_at(&p).map_err(txt),
                None => Ok(()),
            }
        }
        TaskKind::Restore => finish_restore(srv, rec),
        TaskKind::Update => super::update::finish(srv, rec),
        _ => Ok(()),
    }
}

fn undo_delete(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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

fn undo_rerender(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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

/// Finds an installed site on any server.
fn find_site<'a>(
    servers: &'a Servers,
    site: &Name,
) -> Result<(&'a LocalServer, Endpoint), ServerError> {
    for srv in servers.by_name.values() {
        let sites = srv.observe().sites;
        if let Some(o) = sites.get(site) {
            return Ok((
                srv,
                Endpoint {
                    platform: o.platform().clone(),
                    domain: o.domain().clone(),
                },
            ));
        }
    }
    Err(ServerError::Invalid(format!(
        "site {site} is not installed on any server"
    )))
}

fn start_explicit(
    srv: &LocalServer,
    kind: TaskKind,
    site: &Name,
    at: &Endpoint,
    commit: Option<String>,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<TaskRun, ServerError> {
    let mut run = TaskRun::start_noted(&srv.tasks_dir(), kind, Some(site.clone()), None, |rec| {
        rec.from = Some(at.clone());
        rec.to = Some(at.clone());
        rec.commit = commit;
    })
    .map_err(io_err(&srv.tasks_dir()))?;
    run.cancel_on(cancel);
    Ok(run)
}

/// `hoist backup SITE`: a full backup now (no maintenance mode: the dump is
/// a consistent snapshot), old ones pruned to `policy.keep_backups`. Once
/// `cancel` is set, no further step starts.
pub fn backup_now(
    inv: &Inventory,
    servers: &Servers,
    site: &Name,
    commit: Option<String>,
    cancel: Option<Arc<AtomicBool>>,
) -> Result<TaskOutcome, ServerError> {
    let (srv, at) = find_site(servers, site)?;
    let run = start_explicit(srv, TaskKind::Backup, site, &at, commit, cancel)?;
    let keep = inv.settings.policy.keep_backups;
    Ok(execute(
        run,
        format!("backup {site}"),
        |run| {
            let (_obs, settings) = observe_fresh(run, srv, &at, None)?;
            take_backup(
                run,
                srv,
                site,
                &at,
                &settings,
                backup::Scope::Full,
                Some(keep),
            )
        },
        |run| rollback(srv, run),
    ))
}

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
                let m = backup::read_manifest(&chosen.path).map_err(txt)?;
                if &m.site != site {
                    return Err(format!(
                        "{} is a backup of {}, not of {site}",
                        chosen.file_name, m.site
                    ));
                }
                backup::check_room(&chosen.path, &m, &parent).map_err(txt)?;
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
                backup::extract(&path, &staged, &mut |dump| {
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

fn undo_restore(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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
            backup::remove_staging(&staged),
        );
    }
    drop_new_db(&mut u, srv, rec);
    u.online(srv, at, rec)
}

/// The cleanup after a restore committed: the replaced copy and its
/// database removed.
fn finish_restore(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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
