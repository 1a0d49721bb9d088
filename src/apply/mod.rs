//! Carrying out a plan: one task per changed platform or site, platform
//! builds first, then site tasks up to `policy.parallel` at once per server, each step
//! recorded in the task's journal and undone on failure.

mod cutover;
mod recover;
mod rollback;
pub mod rollout;
mod site;
mod update;

pub use rollout::{HealthGate, WebGate};

pub use recover::{recover, Recovered};

pub use cutover::health_of;
pub use site::{backup_now, new_db_name, restore, restored_from};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::inventory::Inventory;
use crate::names::{Name, PlatformName};
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
    /// Site tasks at once on each server.
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
    /// The waves, when `hoist.yaml` has a `rollout:`.
    pub rollout: Option<rollout::RolloutReport>,
}

impl ApplyReport {
    /// Whether any task failed.
    pub fn failed(&self) -> bool {
        self.tasks.iter().any(|t| t.result == TaskResult::Failed)
    }

    /// Why the rollout halted, when it did.
    pub fn halted(&self) -> Option<&rollout::Halt> {
        self.rollout.as_ref().and_then(|r| r.halted.as_ref())
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
                    "{spinner} {prefix}[{bar:30}] {pos}/{len} {wide_msg}",
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
    /// A wave starts: its name, its sites and the budget left, above the
    /// bar and in its prefix.
    fn wave(&self, name: &str, sites: &[&SitePlan], left: usize) {
        if let Some(b) = &self.bar {
            let names: Vec<&str> = sites.iter().map(|s| s.name.as_str()).collect();
            b.println(format!(
                "wave {name}: {} site(s): {} (failure budget left: {left})",
                sites.len(),
                crate::text::clip(&names.join(", "), 200)
            ));
            b.set_prefix(format!("wave {name} (budget left {left}) "));
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
    apply_gated(plan, inv, servers, opts, &WebGate { inv, servers })
}

/// [`apply`], with the health checks after each rollout wave asked of
/// `gate`.
pub fn apply_gated(
    plan: &Plan,
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    gate: &dyn HealthGate,
) -> ApplyReport {
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

    let rollout_cfg = inv.settings.rollout.as_ref();
    let waves = rollout::group(plan, rollout_cfg);
    let total: usize = waves.iter().map(|w| w.sites.len()).sum();
    let mut budget = rollout::Budget::new(
        &rollout_cfg
            .map(|r| r.failure_budget.clone())
            .unwrap_or_default(),
        total,
    );
    let mut report_waves = Vec::new();
    let mut halted = None;
    for (i, wave) in waves.iter().enumerate() {
        if opts.cancelled() {
            break;
        }
        let name = wave.name.clone().unwrap_or_default();
        let _span = tracing::info_span!("wave", wave = %name).entered();
        if rollout_cfg.is_some() {
            progress.wave(&name, &wave.sites, budget.left());
            tracing::info!(wave = %name, sites = wave.sites.len(), budget_left = budget.left(), "wave started");
        }
        let outcomes = run_sites(
            &wave.sites,
            &failed_builds,
            inv,
            servers,
            opts,
            &progress,
            &record,
        );
        let Some(r) = rollout_cfg else {
            continue;
        };
        // An empty wave has nothing to bake; an interrupted one is not
        // judged (its tasks did not all run).
        if wave.sites.is_empty() || opts.cancelled() {
            continue;
        }
        rollout::bake(r.bake_s, || opts.cancelled());
        let (failures, _checks) = rollout::failures(&outcomes, gate);
        for f in &failures {
            tracing::warn!(wave = %name, site = %f.site, "wave failure: {}", f.why);
        }
        budget.failed += failures.len();
        report_waves.push((name.clone(), wave.sites.len(), failures.len()));
        tracing::info!(wave = %name, failed = failures.len(), budget_left = budget.left(), "wave done");
        if !budget.exceeded() {
            continue;
        }
        let mut halt = rollout::Halt {
            wave: name.clone(),
            budget: budget.describe(),
            failures: failures.clone(),
            rolled_back: vec![],
            left: vec![],
            not_started: waves[i + 1..]
                .iter()
                .flat_map(|w| w.sites.iter().map(|s| s.name.clone()))
                .collect(),
        };
        tracing::error!(wave = %name, "{}", halt.describe());
        let succeeded: Vec<&(&SitePlan, TaskOutcome)> = outcomes
            .iter()
            .filter(|(_, o)| o.result != TaskResult::Failed)
            .collect();
        if r.on_failure == crate::inventory::rollout::OnFailure::RollbackWave && !opts.cancelled() {
            let backs = put_back(&succeeded, inv, servers, opts, &progress, &record);
            for (site, o) in backs {
                match o {
                    Some(o) if o.result != TaskResult::Failed => {
                        halt.rolled_back.push((site, o.result.as_str().to_string()))
                    }
                    _ => halt.left.push(site),
                }
            }
        } else {
            halt.left = succeeded.iter().map(|(s, _)| s.name.clone()).collect();
        }
        halted = Some(halt);
        break;
    }
    if rollout_cfg.is_some() && total > 0 {
        let r = rollout::RolloutReport {
            waves: report_waves,
            halted: halted.clone(),
        };
        crate::rollout_record::write(
            servers,
            &crate::rollout_record::RolloutRecord {
                commit: opts.commit.clone(),
                at: crate::task::now(),
                report: r.clone(),
            },
        );
        crate::metrics::global().set_rollout_halted(halted.is_some());
        if let Some(h) = &halted {
            crate::notify::rollout_halted(
                &inv.settings.notify,
                &h.describe(),
                opts.commit.as_deref(),
            );
        }
        report.lock().expect("report lock").rollout = Some(r);
    }

    for p in &deletes {
        // A halted rollout leaves sites where they were: their old
        // platforms stay.
        if opts.cancelled() || halted.is_some() {
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

/// Runs one wave's site tasks, `opts.parallel` at once on each server
/// (servers side by side): creates first, then clones (whose sources may
/// be among the creates), then the rest, each site touched by one task
/// only. Returns each task's outcome.
fn run_sites<'a>(
    sites: &[&'a SitePlan],
    failed_builds: &[PlatformName],
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    progress: &Progress,
    record: &(dyn Fn(TaskOutcome, Done) + Sync),
) -> Vec<(&'a SitePlan, TaskOutcome)> {
    let mut groups: [Vec<&SitePlan>; 2] = [vec![], vec![]];
    for s in sites {
        groups[(s.action == SiteAction::Clone) as usize].push(s);
    }
    let outcomes = Mutex::new(Vec::new());
    // Each group, per server, on `parallel` worker threads taking the next
    // task in order; they borrow the inventory and servers, so starting a
    // task copies nothing.
    let workers = opts.parallel.clamp(1, 64);
    for group in groups {
        let mut by_server: BTreeMap<Option<&Name>, Vec<&'a SitePlan>> = BTreeMap::new();
        for s in group {
            by_server.entry(server_of(s, inv)).or_default().push(s);
        }
        let work = |queue: &[&'a SitePlan], next: &AtomicUsize| loop {
            if opts.cancelled() {
                break;
            }
            let Some(s) = queue.get(next.fetch_add(1, Ordering::SeqCst)) else {
                break;
            };
            let what = format!("{} {}", s.action.as_str(), s.name);
            let (o, done) = if let Some(to) =
                s.to.as_ref()
                    .filter(|t| failed_builds.contains(&t.platform))
            {
                let o = TaskOutcome {
                    id: None,
                    what,
                    result: TaskResult::Failed,
                    message: Some(format!("platform {} failed to build", to.platform)),
                };
                (o, Done::site(s))
            } else {
                // A test holds chosen sites' tasks here to see which run
                // side by side.
                crate::failpoint::hold(&format!("task-{}", s.name));
                // Timed from here, where the task starts: the duration
                // histogram is of the task, not of its bookkeeping.
                let done = Done::site(s);
                progress.started(&what);
                let run = std::panic::AssertUnwindSafe(|| site::run(s, inv, servers, opts, what));
                let o = std::panic::catch_unwind(run).unwrap_or_else(|_| TaskOutcome {
                    id: None,
                    what: format!("{} {}", s.action.as_str(), s.name),
                    result: TaskResult::Failed,
                    message: Some("the task panicked".into()),
                });
                (o, done)
            };
            outcomes
                .lock()
                .expect("outcomes lock")
                .push((*s, o.clone()));
            record(o, done);
        };
        let queues: Vec<(Vec<&'a SitePlan>, AtomicUsize)> = by_server
            .into_values()
            .map(|q| (q, AtomicUsize::new(0)))
            .collect();
        std::thread::scope(|scope| {
            for (queue, next) in &queues {
                for _ in 0..workers.min(queue.len()) {
                    scope.spawn(|| work(queue, next));
                }
            }
        });
    }
    outcomes.into_inner().expect("outcomes lock")
}

/// The server a site task works on: its target platform's, else its
/// source platform's (None when neither is declared).
fn server_of<'a>(s: &SitePlan, inv: &'a Inventory) -> Option<&'a Name> {
    [s.to.as_ref(), s.from.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|e| inv.platforms.get(&e.platform).map(|p| &p.server))
}

/// Puts back each succeeded site of a halted wave (`rollback-wave`),
/// `opts.parallel` at once. Returns, per site, its rollback's outcome (none
/// when its task has no rollback).
fn put_back(
    succeeded: &[&(&SitePlan, TaskOutcome)],
    inv: &Inventory,
    servers: &Servers,
    opts: &ApplyOptions,
    progress: &Progress,
    record: &(dyn Fn(TaskOutcome, Done) + Sync),
) -> Vec<(crate::names::SiteName, Option<TaskOutcome>)> {
    let out = Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        while let Some((s, o)) = succeeded.get(next.fetch_add(1, Ordering::SeqCst)).copied() {
            let kind = match s.action {
                SiteAction::Migrate => TaskKind::Migrate,
                SiteAction::Rename => TaskKind::Rename,
                SiteAction::MigrateRename => TaskKind::MigrateRename,
                SiteAction::Update => TaskKind::Update,
                SiteAction::Delete => TaskKind::Delete,
                _ => TaskKind::Verify,
            };
            let back = match (&o.id, rollback::can_put_back(kind)) {
                (Some(id), true) => {
                    let what = format!("rollback {}", s.name);
                    progress.started(&what);
                    let started = std::time::Instant::now();
                    let b =
                        rollback::put_back(kind, s, id, inv, servers, opts).unwrap_or_else(|e| {
                            TaskOutcome {
                                id: None,
                                what,
                                result: TaskResult::Failed,
                                message: Some(e.to_string()),
                            }
                        });
                    // An update is put back by a restore task, the rest by
                    // a rollback task: metrics count the task that ran.
                    let ran = match kind {
                        TaskKind::Update => TaskKind::Restore,
                        _ => TaskKind::Rollback,
                    };
                    record(
                        b.clone(),
                        Done {
                            kind: ran.as_str(),
                            site: Some(s),
                            started,
                        },
                    );
                    Some(b)
                }
                _ => {
                    tracing::warn!(site = %s.name, "{} cannot be put back automatically: it is left as its task made it", o.what);
                    None
                }
            };
            out.lock()
                .expect("put back lock")
                .push((s.name.clone(), back));
        }
    };
    let workers = opts.parallel.clamp(1, 64);
    std::thread::scope(|scope| {
        for _ in 1..workers.min(succeeded.len()) {
            scope.spawn(work);
        }
        work();
    });
    let mut v = out.into_inner().expect("put back lock");
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
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
    /// A site task starting now: call it where the task starts.
    fn site(s: &'a SitePlan) -> Done<'a> {
        Done {
            kind: s.action.as_str(),
            site: Some(s),
            started: std::time::Instant::now(),
        }
    }
    /// A platform task starting now: call it where the task starts.
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
            // An undo waiting for a database server leaves the task
            // running: the next hoist's recovery retries it.
            if !(run.rec.journal.undo_waits && undone.is_err()) {
                journal_trouble(&mut run, "its result", |r| r.finish(result));
            }
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
    run.rec.journal.committed
}

/// Says so when the journal could not take `what`. The task's outcome is
/// still reported; the record stays `running` under its second name, and
/// the next hoist on the server recovers it from what it does hold.
fn journal_trouble(
    run: &mut TaskRun,
    what: &str,
    write: impl FnOnce(&mut TaskRun) -> Result<(), crate::driver::host::HostError>,
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
    // Site, task and step are fields of the event, never words of its
    // message, so `--log-format json` can be filtered on them.
    let site = run.rec.site.as_ref().map(|s| s.as_str().to_owned());
    crate::failpoint::hit_at(name, site.as_deref(), crate::failpoint::When::Before)
        .map_err(serr)?;
    let platform = run.rec.platform.as_ref().map(|p| p.as_str().to_owned());
    let task = run.rec.id.clone();
    let wave = run.rec.wave.clone();
    tracing::info!(site, platform, task, wave, step = name, "step started");
    let v = f(run).map_err(|e| serr(crate::task::quote(&e.to_string())));
    let v = v.and_then(|v| {
        crate::failpoint::hit_at(name, site.as_deref(), crate::failpoint::When::After)
            .map_err(serr)?;
        Ok(v)
    });
    match &v {
        Ok(_) => tracing::info!(site, platform, task, wave, step = name, "step done"),
        Err(e) => {
            tracing::warn!(site, platform, task, wave, step = name, error = %e.message, "step failed")
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
        &srv.tasks(),
        TaskKind::Build,
        None,
        Some(p.name.clone()),
        |rec| rec.commit = opts.commit.clone(),
    )?;
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
                    codebase: Some(src.codebase.clone()),
                };
                srv.build_platform(&p.name, &src.dir, &rec)
            })?;
            step(run, "scan-packages", |run| {
                // Whatever its kind (embedded or Drupal), as observing it will.
                let cb = srv.built_codebase(&p.name).map_err(|e| e.to_string())?;
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
        &srv.tasks(),
        TaskKind::DeletePlatform,
        None,
        Some(p.name.clone()),
        |rec| rec.commit = opts.commit.clone(),
    )?;
    run.cancel_on(opts.cancel.clone());
    Ok(execute(
        run,
        format!("delete platform {}", p.name),
        |run| {
            step(run, "check-empty", |_| {
                let n = srv.hosted_entries(&p.name).len();
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
