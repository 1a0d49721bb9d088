//! Clone: a copy of a site deployed under a new name and domain; the source
//! is only read. Its undo is an install's ([`super::install::undo_created`]).

use super::steps::{
    app_settings, check_target, deploy_copy, journal_copy, mark_committed, new_site_for, settle,
    take_backup, write_settings, write_vhost,
};
use super::{need, new_db_name, rollback, server_for, start, txt};
use crate::apply::{cutover, execute, step, ApplyOptions, StepError, TaskOutcome};
use crate::backup;
use crate::driver::DbRef;
use crate::inventory::Inventory;
use crate::plan::{Endpoint, SitePlan};
use crate::server::{ServerError, Servers};
use crate::task::TaskKind;

/// Clone: a backup of the source without maintenance, a copy deployed under
/// the new name and domain (updated if the platform differs), verified. The
/// source is only read.
pub(in crate::apply) fn clone(
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
                    server: None,
                });
                Ok::<_, String>(src)
            })?;
            let from = Endpoint {
                platform: src.platform().clone(),
                domain: src.domain().clone(),
                server: None,
            };
            let (settings, _) = srv
                .read_settings(&from.platform, &from.domain)
                .map_err(|e| StepError {
                    step: "observe".into(),
                    message: e.to_string(),
                })?;
            step(run, "check-target", |_| {
                check_target(srv, Some(&new_dir), Some(&to.domain), &new_db)
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
