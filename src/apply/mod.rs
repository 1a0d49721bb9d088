//! Carrying out a plan: one task per changed platform or site, platform
//! builds first, then site tasks up to `policy.parallel` at once, each step
//! recorded in the task's journal and undone on failure.

mod cutover;
mod recover;
mod site;
mod update;

pub use recover::{recover, Recovered};

pub use site::{backup_now, new_db_name, restore, restored_from};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::codebase;
use crate::inventory::Inventory;
use crate::names::PlatformName;
use crate::plan::{Plan, PlatformAction, PlatformPlan, SiteAction, SitePlan};
use crate::server::{PlatformRecord, ServerError, Servers};
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
    /// Once set (on SIGINT or SIGTERM), no further task starts, and each
    /// running one stops after its running step: undone, or, past its
    /// point of no return, finished.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl ApplyOptions {
    /// Whether hoist was asked to stop.
    pub fn cancelled(&self) -> bool {
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
    let record = |o: TaskOutcome, done: Done| {
        progress.finished(&o);
        tell(inv, opts, &o, &done);
        report.lock().expect("report lock").tasks.push(o);
    };

    for p in &builds {
        if opts.cancelled() {
            break;
        }
        let what = format!("build {}", p.name);
        progress.started(&what);
        let done = Done::platform("build");
        record(
            run_platform_task(servers, &what, |srv| build_platform(inv, srv, p, opts)),
            done,
        );
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
    // Each wave on `parallel` worker threads taking the next task in
    // order; they borrow the inventory and servers, so starting a task
    // copies nothing.
    let workers = opts.parallel.clamp(1, 64);
    for wave in waves {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || loop {
            if opts.cancelled() {
                break;
            }
            let Some(s) = wave.get(next.fetch_add(1, Ordering::SeqCst)) else {
                break;
            };
            let what = format!("{} {}", s.action.as_str(), s.name);
            if let Some(to) =
                s.to.as_ref()
                    .filter(|t| failed_builds.contains(&t.platform))
            {
                record(
                    TaskOutcome {
                        id: None,
                        what,
                        result: TaskResult::Failed,
                        message: Some(format!("platform {} failed to build", to.platform)),
                    },
                    Done::site(s),
                );
                continue;
            }
            progress.started(&what);
            let done = Done::site(s);
            let run = std::panic::AssertUnwindSafe(|| site::run(s, inv, servers, opts, what));
            record(
                std::panic::catch_unwind(run).unwrap_or_else(|_| TaskOutcome {
                    id: None,
                    what: format!("{} {}", s.action.as_str(), s.name),
                    result: TaskResult::Failed,
                    message: Some("the task panicked".into()),
                }),
                done,
            );
        };
        std::thread::scope(|scope| {
            for _ in 1..workers.min(wave.len()) {
                scope.spawn(work);
            }
            work();
        });
    }

    for p in &deletes {
        if opts.cancelled() {
            break;
        }
        let what = format!("delete platform {}", p.name);
        progress.started(&what);
        let done = Done::platform("delete-platform");
        record(
            run_platform_task(servers, &what, |srv| delete_platform(srv, p, opts)),
            done,
        );
    }
    progress.done();
    report.into_inner().expect("report lock")
}

/// What a finished task was about, for its webhook and metrics.
struct Done<'a> {
    /// The `kind` label: the site action, `build` or `delete-platform`.
    kind: &'a str,
    /// The site's plan, for a site task.
    site: Option<&'a SitePlan>,
    /// When the task started.
    started: std::time::Instant,
}

impl<'a> Done<'a> {
    fn site(s: &'a SitePlan) -> Done<'a> {
        Done {
            kind: s.action.as_str(),
            site: Some(s),
            started: std::time::Instant::now(),
        }
    }
    fn platform(kind: &'a str) -> Done<'a> {
        Done {
            kind,
            site: None,
            started: std::time::Instant::now(),
        }
    }
}

/// Tells the metrics and the webhooks how a task ended. Neither can delay
/// or fail the apply: metrics are a map update, webhooks are queued.
fn tell(inv: &Inventory, opts: &ApplyOptions, o: &TaskOutcome, done: &Done) {
    crate::metrics::global().record_task(done.kind, o.result.as_str(), done.started.elapsed());
    let event = match o.result {
        TaskResult::Failed => crate::notify::Event::TaskFailed,
        TaskResult::Success | TaskResult::Warning => crate::notify::Event::TaskSucceeded,
        TaskResult::Running => return,
    };
    let notice = crate::notify::Notice {
        site: done.site.map(|s| s.name.to_string()),
        task: o.id.clone(),
        what: Some(o.what.clone()),
        result: Some(o.result.as_str().to_string()),
        from: done.site.and_then(|s| s.from.clone()),
        to: done.site.and_then(|s| s.to.clone()),
        message: o.message.clone(),
        inventory_commit: opts.commit.clone(),
        ..crate::notify::Notice::new(event)
    };
    crate::notify::emit(&inv.settings.notify, &notice);
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
/// failed and keeps its log. What the undo could not do (its `Err`) is
/// added to the task's message: an undo that fails is never silent.
pub(crate) fn execute(
    mut run: TaskRun,
    what: String,
    body: impl FnOnce(&mut TaskRun) -> Result<Vec<String>, StepError>,
    undo: impl FnOnce(&mut TaskRun) -> Result<(), String>,
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
            journal_trouble(&mut run, "its result", |r| r.finish(result));
            TaskOutcome {
                id,
                what,
                result,
                message: (!warnings.is_empty()).then(|| warnings.join("; ")),
            }
        }
        Err(e) => {
            tracing::warn!(
                site = run.rec.site.as_ref().map(|s| s.as_str()),
                task = %run.rec.id,
                step = %e.step,
                error = %e.message,
                "rolling back"
            );
            run.log(format!("error: {e}"));
            journal_trouble(&mut run, "the failed step", |r| r.end("failed"));
            let undone = undo(&mut run);
            // Past the point of no return the undo finishes the task: the
            // new state is live, so the task is done, with a problem.
            let result = if committed(&run) {
                TaskResult::Warning
            } else {
                TaskResult::Failed
            };
            journal_trouble(&mut run, "its result", |r| r.finish(result));
            let message = match undone {
                Ok(()) => e.to_string(),
                Err(u) => format!("{e}; {u}"),
            };
            TaskOutcome {
                id,
                what,
                result,
                message: Some(crate::task::quote(&message)),
            }
        }
    }
}

/// Why a step did not start after SIGINT or SIGTERM.
pub const INTERRUPTED: &str = "hoist was interrupted (SIGINT or SIGTERM): not started";

/// Whether the task passed its point of no return: from there on it is
/// finished forward, never undone.
fn committed(run: &TaskRun) -> bool {
    run.rec.journal.contains_key(site::key::COMMITTED)
}

/// Says so when the journal could not take `what`. The task's outcome is
/// still reported; the record stays `running` under its second name, and
/// the next hoist on the server recovers it from what it does hold.
fn journal_trouble(
    run: &mut TaskRun,
    what: &str,
    write: impl FnOnce(&mut TaskRun) -> std::io::Result<()>,
) {
    if let Err(e) = write(run) {
        tracing::error!(task = %run.rec.id, "the task journal could not record {what}: {e}");
    }
}

/// Runs one named step: journals its start and end, and names it in errors.
/// Once hoist is asked to stop ([`TaskRun::cancelled`]), a task that has
/// not committed starts no further step: it fails, and is undone.
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
    // Asked to stop: the step before this one has finished; what follows
    // is the undo, or, past the point of no return, the finish.
    if run.cancelled() && !committed(run) {
        return Err(serr(INTERRUPTED.into()));
    }
    crate::failpoint::pause(name, || run.cancelled());
    crate::failpoint::hit(name, crate::failpoint::When::Before).map_err(serr)?;
    // Site, task and step are fields of the event, never words of its
    // message, so `--log-format json` can be filtered on them.
    let site = run.rec.site.as_ref().map(|s| s.as_str().to_owned());
    let platform = run.rec.platform.as_ref().map(|p| p.as_str().to_owned());
    let task = run.rec.id.clone();
    tracing::info!(site, platform, task, step = name, "step started");
    let v = f(run).map_err(|e| serr(crate::task::quote(&e.to_string())));
    let v = v.and_then(|v| {
        crate::failpoint::hit(name, crate::failpoint::When::After).map_err(serr)?;
        Ok(v)
    });
    match &v {
        Ok(_) => tracing::info!(site, platform, task, step = name, "step done"),
        Err(e) => {
            tracing::warn!(site, platform, task, step = name, error = %e.message, "step failed")
        }
    }
    let v = v?;
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
        |rec| rec.commit = opts.commit.clone(),
    )
    .map_err(crate::server::io_err(&srv.tasks_dir()))?;
    run.cancel_on(opts.cancel.clone());
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
        |_| Ok(()),
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
        |rec| rec.commit = opts.commit.clone(),
    )
    .map_err(crate::server::io_err(&srv.tasks_dir()))?;
    run.cancel_on(opts.cancel.clone());
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
        |_| Ok(()),
    ))
}
