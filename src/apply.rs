//! Carrying out a plan: one task per changed platform or site, platform
//! builds first, then site tasks up to `policy.parallel` at once, each step
//! recorded in the task's journal and undone on failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::codebase;
use crate::compat::SitePackage;
use crate::fsutil;
use crate::inventory::Inventory;
use crate::names::{Name, PlatformName};
use crate::plan::{Plan, PlatformAction, PlatformPlan, SiteAction, SitePlan};
use crate::render::{self, SiteConfig};
use crate::server::{LocalServer, PlatformRecord, ServerError, Servers};
use crate::task::{TaskKind, TaskResult, TaskRun};

/// A task failure: which step, and why.
#[derive(Debug, thiserror::Error)]
#[error("step {step}: {message}")]
pub struct StepError {
    /// The step that failed.
    pub step: String,
    /// Why.
    pub message: String,
}

/// How to carry out a plan.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Site tasks at once.
    pub parallel: usize,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// The inventory commit being applied, recorded in each task.
    pub commit: Option<String>,
    /// Once set (by `hoist watch` on SIGTERM), no further task starts; the
    /// running ones finish.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ApplyOptions {
    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

/// How one task ended.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// The task's id (none when it could not even start).
    pub id: Option<String>,
    /// What it did, e.g. `install acme`.
    pub what: String,
    /// Its result.
    pub result: TaskResult,
    /// Why it failed, or its warnings.
    pub message: Option<String>,
}

/// What an apply did.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Every task, in the order they finished.
    pub tasks: Vec<TaskOutcome>,
}

impl ApplyReport {
    /// Whether any task failed.
    pub fn failed(&self) -> bool {
        self.tasks.iter().any(|t| t.result == TaskResult::Failed)
    }
}

struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(show: bool, total: usize) -> Progress {
        let bar = (show && total > 0).then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {pos}/{len} {wide_msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Progress { bar }
    }
    fn started(&self, what: &str) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
        }
    }
    fn finished(&self, o: &TaskOutcome) {
        if let Some(b) = &self.bar {
            b.println(format!("{:<8} {}", o.result.as_str(), o.what));
            b.inc(1);
        }
    }
    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Carries out `plan`. Blocked and noop items are skipped. Platform builds
/// run first; site tasks then run up to `opts.parallel` at once; platform
/// deletions run last, once the sites have left.
pub fn apply(plan: &Plan, inv: &Inventory, servers: &Servers, opts: &ApplyOptions) -> ApplyReport {
    let builds: Vec<&PlatformPlan> = plan
        .platforms
        .iter()
        .filter(|p| p.action == PlatformAction::Build && !p.blocked)
        .collect();
    let deletes: Vec<&PlatformPlan> = plan
        .platforms
        .iter()
        .filter(|p| p.action == PlatformAction::Delete && !p.blocked)
        .collect();
    let site_tasks: Vec<&SitePlan> = plan
        .sites
        .iter()
        .filter(|s| s.action != SiteAction::Noop && !s.blocked)
        .collect();
    let progress = Progress::new(
        opts.progress,
        builds.len() + deletes.len() + site_tasks.len(),
    );
    let report = Mutex::new(ApplyReport::default());
    let record = |o: TaskOutcome| {
        progress.finished(&o);
        report.lock().expect("report lock").tasks.push(o);
    };

    for p in &builds {
        if opts.cancelled() {
            break;
        }
        let what = format!("build {}", p.name);
        progress.started(&what);
        record(run_platform_task(servers, &what, |srv| {
            build_platform(inv, srv, p, opts)
        }));
    }
    let failed_builds: Vec<PlatformName> = report
        .lock()
        .expect("report lock")
        .tasks
        .iter()
        .filter(|t| t.result == TaskResult::Failed)
        .filter_map(|t| {
            t.what
                .strip_prefix("build ")
                .and_then(|n| PlatformName::new(n).ok())
        })
        .collect();

    // Creates first, then clones (whose sources may be among the creates),
    // then everything else: each site is touched by one task only.
    let mut waves: [Vec<&SitePlan>; 2] = [vec![], vec![]];
    for s in site_tasks {
        waves[(s.action == SiteAction::Clone) as usize].push(s);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.parallel.clamp(1, 64))
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let limit = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    for wave in waves {
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for s in wave {
                let what = format!("{} {}", s.action.as_str(), s.name);
                if let Some(to) =
                    s.to.as_ref()
                        .filter(|t| failed_builds.contains(&t.platform))
                {
                    record(TaskOutcome {
                        id: None,
                        what,
                        result: TaskResult::Failed,
                        message: Some(format!("platform {} failed to build", to.platform)),
                    });
                    continue;
                }
                let permit = limit.clone().acquire_owned().await.expect("semaphore open");
                if opts.cancelled() {
                    break;
                }
                progress.started(&what);
                let (s, inv, servers, opts) =
                    (s.clone(), inv.clone(), servers.clone(), opts.clone());
                set.spawn_blocking(move || {
                    let _permit = permit;
                    run_site_task(&s, &inv, &servers, &opts, what)
                });
            }
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(o) => record(o),
                    Err(e) => record(TaskOutcome {
                        id: None,
                        what: "site task".into(),
                        result: TaskResult::Failed,
                        message: Some(format!("task panicked: {e}")),
                    }),
                }
            }
        });
    }

    for p in &deletes {
        if opts.cancelled() {
            break;
        }
        let what = format!("delete platform {}", p.name);
        progress.started(&what);
        record(run_platform_task(servers, &what, |srv| {
            delete_platform(srv, p, opts)
        }));
    }
    progress.done();
    report.into_inner().expect("report lock")
}

fn run_platform_task(
    servers: &Servers,
    what: &str,
    f: impl FnOnce(&Servers) -> Result<TaskOutcome, ServerError>,
) -> TaskOutcome {
    f(servers).unwrap_or_else(|e| TaskOutcome {
        id: None,
        what: what.into(),
        result: TaskResult::Failed,
        message: Some(e.to_string()),
    })
}

/// Runs `body` as the steps of `run`; on failure runs `undo`, marks the task
/// failed and keeps its log.
fn execute(
    mut run: TaskRun,
    what: String,
    body: impl FnOnce(&mut TaskRun) -> Result<Vec<String>, StepError>,
    undo: impl FnOnce(&mut TaskRun),
) -> TaskOutcome {
    let id = Some(run.rec.id.clone());
    match body(&mut run) {
        Ok(warnings) => {
            let result = if warnings.is_empty() {
                TaskResult::Success
            } else {
                TaskResult::Warning
            };
            for w in &warnings {
                run.log(format!("warning: {w}"));
            }
            let _ = run.finish(result);
            TaskOutcome {
                id,
                what,
                result,
                message: (!warnings.is_empty()).then(|| warnings.join("; ")),
            }
        }
        Err(e) => {
            tracing::warn!(task = %run.rec.id, "{e}; rolling back");
            run.log(format!("error: {e}"));
            let _ = run.end("failed");
            undo(&mut run);
            let _ = run.finish(TaskResult::Failed);
            TaskOutcome {
                id,
                what,
                result: TaskResult::Failed,
                message: Some(e.to_string()),
            }
        }
    }
}

/// Runs one named step: journals its start and end, and names it in errors.
pub fn step<T, E: std::fmt::Display>(
    run: &mut TaskRun,
    name: &str,
    f: impl FnOnce(&mut TaskRun) -> Result<T, E>,
) -> Result<T, StepError> {
    let serr = |message: String| StepError {
        step: name.into(),
        message,
    };
    run.begin(name)
        .map_err(|e| serr(format!("cannot write the task journal: {e}")))?;
    crate::failpoint::hit(name).map_err(serr)?;
    let v = f(run).map_err(|e| serr(e.to_string()))?;
    run.end("done")
        .map_err(|e| serr(format!("cannot write the task journal: {e}")))?;
    Ok(v)
}

fn build_platform(
    inv: &Inventory,
    servers: &Servers,
    p: &PlatformPlan,
    opts: &ApplyOptions,
) -> Result<TaskOutcome, ServerError> {
    let srv = servers.get(&p.server)?;
    let what = format!("build {}", p.name);
    let mut run = TaskRun::start(
        &srv.tasks_dir(),
        TaskKind::Build,
        None,
        Some(p.name.clone()),
    )
    .map_err(crate::server::io_err(&srv.tasks_dir()))?;
    run.rec.commit = opts.commit.clone();
    let spec = inv
        .platforms
        .get(&p.name)
        .ok_or_else(|| ServerError::Invalid(format!("platform {} is not declared", p.name)))?;
    Ok(execute(
        run,
        what,
        |run| {
            let src = step(run, "read-source", |_| spec.codebase.clone())?;
            if p.source_hash.as_deref() != Some(src.hash.as_str()) {
                return Err(StepError {
                    step: "read-source".into(),
                    message: "the source changed since the plan was made; plan again".into(),
                });
            }
            step(run, "copy-codebase", |run| {
                run.log(format!("building from {}", spec.source.describe()));
                let rec = PlatformRecord {
                    name: p.name.clone(),
                    source: spec.source.describe(),
                    source_hash: src.hash.clone(),
                };
                srv.build_platform(&p.name, &src.dir, &rec)
            })?;
            step(run, "scan-packages", |run| {
                let dir = srv.platform_dir(&p.name);
                let cb = codebase::Codebase::scan(&dir, &dir).map_err(|d| {
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                })?;
                run.log(format!("{} packages", cb.packages.len()));
                Ok::<_, String>(())
            })?;
            Ok(vec![])
        },
        |_| {},
    ))
}

fn delete_platform(
    servers: &Servers,
    p: &PlatformPlan,
    opts: &ApplyOptions,
) -> Result<TaskOutcome, ServerError> {
    let srv = servers.get(&p.server)?;
    let mut run = TaskRun::start(
        &srv.tasks_dir(),
        TaskKind::DeletePlatform,
        None,
        Some(p.name.clone()),
    )
    .map_err(crate::server::io_err(&srv.tasks_dir()))?;
    run.rec.commit = opts.commit.clone();
    Ok(execute(
        run,
        format!("delete platform {}", p.name),
        |run| {
            step(run, "check-empty", |_| {
                let sites = srv.platform_dir(&p.name).join("sites");
                let n = std::fs::read_dir(&sites).map(|d| d.count()).unwrap_or(0);
                if n > 0 {
                    Err(format!("{n} site(s) still live on it"))
                } else {
                    Ok(())
                }
            })?;
            step(run, "remove", |_| srv.delete_platform(&p.name))?;
            Ok(vec![])
        },
        |_| {},
    ))
}

/// The server a site on `platform` lives on.
fn server_for<'a>(
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

fn run_site_task(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> TaskOutcome {
    let fail = |message: String| TaskOutcome {
        id: None,
        what: what.clone(),
        result: TaskResult::Failed,
        message: Some(message),
    };
    match s.action {
        SiteAction::Create => match install(s, inv, servers, opts, what.clone()) {
            Ok(o) => o,
            Err(e) => fail(e.to_string()),
        },
        other => fail(format!(
            "carrying out `{}` is not supported yet",
            other.as_str()
        )),
    }
}

/// A fresh database name for a site: its name and a random suffix, so a
/// migration's new database never collides with the old one.
pub fn new_db_name(site: &Name) -> String {
    use rand::Rng;
    format!(
        "{}_{:08x}",
        site.as_str().replace('-', "_"),
        rand::rng().random::<u32>()
    )
}

/// Writes a site's files directory, settings (0600) and vhost.
pub fn write_site_files(
    srv: &LocalServer,
    cfg: &SiteConfig,
    password: &render::Secret,
) -> Result<(), ServerError> {
    let dir = srv.site_dir(&cfg.platform, &cfg.domain);
    let files = dir.join("files");
    fsutil::create_dir_all(&files).map_err(crate::server::io_err(&files))?;
    let sp = srv.settings_path(cfg);
    fsutil::write_private(&sp, render::settings_file(cfg, password).as_bytes())
        .map_err(crate::server::io_err(&sp))?;
    write_vhost(srv, cfg)
}

/// Renders and writes a site's vhost.
pub fn write_vhost(srv: &LocalServer, cfg: &SiteConfig) -> Result<(), ServerError> {
    let vp = srv.vhost_path(&cfg.domain);
    fsutil::write_atomic(&vp, render::vhost(cfg).as_bytes()).map_err(crate::server::io_err(&vp))
}

fn install(
    s: &SitePlan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    what: String,
) -> Result<TaskOutcome, ServerError> {
    let mut cfg = s
        .config
        .clone()
        .ok_or_else(|| ServerError::Invalid("the plan has no settings for the site".into()))?;
    let srv = server_for(inv, servers, &cfg.platform)?;
    let mut run = TaskRun::start(
        &srv.tasks_dir(),
        TaskKind::Install,
        Some(s.name.clone()),
        None,
    )
    .map_err(crate::server::io_err(&srv.tasks_dir()))?;
    run.rec.to = s.to.clone();
    run.rec.commit = opts.commit.clone();
    let db_name = new_db_name(&s.name);
    cfg.db_name = Some(db_name.clone());
    let site_dir = srv.site_dir(&cfg.platform, &cfg.domain);
    let vhost = srv.vhost_path(&cfg.domain);
    Ok(execute(
        run,
        what,
        |run| {
            step(run, "check-target", |_| {
                if site_dir.exists() {
                    return Err(format!("{} exists already", site_dir.display()));
                }
                if vhost.exists() {
                    return Err(format!("a vhost for {} exists already", cfg.domain));
                }
                Ok(())
            })?;
            let creds = step(run, "create-database", |run| {
                run.note("created_db", db_name.clone())
                    .map_err(|e| e.to_string())?;
                srv.db().create(&db_name).map_err(|e| e.to_string())
            })?;
            step(run, "install-packages", |run| {
                let pdir = srv.platform_dir(&cfg.platform);
                let cb = codebase::Codebase::scan(&pdir, &pdir).map_err(|d| {
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                })?;
                let order = cb.install_set(&cfg.profile)?;
                let mut db = srv.db().open(&db_name, &creds).map_err(|e| e.to_string())?;
                db.create_core_tables().map_err(|e| e.to_string())?;
                for (k, v) in [
                    ("site_name", cfg.site.to_string()),
                    ("base_url", cfg.base_url()),
                    ("file_directory_path", cfg.file_directory_path()),
                    ("maintenance_mode", "0".into()),
                ] {
                    db.set_variable(k, &v).map_err(|e| e.to_string())?;
                }
                for name in &order {
                    let p = &cb.packages[name];
                    let sql_path = codebase::install_sql_path(&pdir, name);
                    let sql = match std::fs::read_to_string(&sql_path) {
                        Ok(s) => s,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                        Err(e) => return Err(format!("{}: {e}", sql_path.display())),
                    };
                    let sp = SitePackage {
                        kind: p.kind,
                        enabled: true,
                        version: p.version.clone(),
                        schema: p.schema(),
                    };
                    db.apply_package_sql(&sql, name, &sp)
                        .map_err(|e| format!("installing {name}: {e}"))?;
                    run.log(format!(
                        "installed {name} {} at schema {}",
                        p.version,
                        p.schema()
                    ));
                }
                Ok(())
            })?;
            step(run, "write-settings", |run| {
                run.note("created_site_dir", site_dir.display().to_string())
                    .map_err(|e| e.to_string())?;
                write_site_files(srv, &cfg, &creds.password).map_err(|e| e.to_string())
            })?;
            Ok(vec![])
        },
        |run| {
            // Undo in reverse: only what this task created.
            if run.rec.journal.contains_key("created_site_dir") {
                let _ = fsutil::remove_file_if_exists(&vhost);
                let _ = fsutil::remove_tree_if_exists(&site_dir);
            }
            if run.rec.journal.contains_key("created_db") {
                let _ = srv.db().drop_database(&db_name);
            }
            run.log("rolled back: database, site directory and vhost removed");
        },
    ))
}
