//! Install: a new site's database, its application installed, settings and
//! vhost written, a health check; its undo removes what it created.

use super::steps::{check_target, created, mark_committed, new_site, write_site_files};
use super::undo::{drop_new_db, Undo};
use super::{need, new_db_name, rollback, server_for, start, txt};
use crate::apply::{cutover, execute, step, ApplyOptions, StepError, TaskOutcome};
use crate::driver::{DbRef, Which};
use crate::inventory::Inventory;
use crate::plan::{Endpoint, SitePlan};
use crate::server::{LocalServer, ServerError, Servers};
use crate::task::{TaskKind, TaskRecord};

pub(in crate::apply) fn install(
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
        server: None,
    };
    let health = cutover::health_of(inv, &s.name);
    Ok(execute(
        run,
        what,
        |run| {
            step(run, "check-target", |_| {
                check_target(srv, Some(&site_dir), Some(&cfg.domain), &new_db)
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
pub(in crate::apply) fn undo_created(srv: &LocalServer, rec: &TaskRecord) -> Result<(), String> {
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
