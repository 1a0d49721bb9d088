//! `hoist watch`: a daemon that keeps the servers where the inventory says.
//!
//! It applies committed inventory only: in a git repository it reads the
//! inventory from HEAD's commit (or `--ref`), never from the working tree,
//! so that the status it commits describes exactly the commit it names. An
//! uncommitted edit is reported (a warning, once per change), never applied.
//!
//! It reconciles (observe, plan, apply, write and commit status) when HEAD
//! or its branch moves to a new inventory commit (a commit, a checkout),
//! when the branch's upstream moves (fetched on an interval with jitter,
//! followed only onto a clean working tree), on a change of the working
//! tree when the inventory is not in git (notify, debounced; `status/`,
//! server roots and git-ignored paths never count), and on a timer, to
//! catch drift. Its own status commits never trigger a pass: the inventory
//! commit skips them ([`gitops::inventory_commit`]), so the branch moving
//! to one is not a new inventory commit. Every pass ends with an info line
//! `pass N done`, for whoever waits for the daemon.
//!
//! Failed tasks are retried with exponential backoff, at most
//! [`MAX_ATTEMPTS`] times per inventory commit. The server locks are held
//! for the daemon's whole life: one reconciler per server. SIGINT and
//! SIGTERM stop it cleanly: the running step finishes, the running task is
//! undone (or finished, past its point of no return), no new one starts,
//! status is written, and it exits 0. Further signals are ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::apply::{self, ApplyOptions};
use crate::gitops::{self, Followed, GitError, LoadError};
use crate::inventory::{Inventory, SiteSpec};
use crate::names::{Name, SiteName};
use crate::plan::{self, Mode, PlanOptions, PlatformAction, SiteAction};
use crate::scope::{Scope, ScopeError};
use crate::server::{ServerError, ServerLock, Servers};
use crate::status::{self, SyncState};
use crate::task::TaskResult;

/// How many times a failing task is tried at one inventory commit.
pub const MAX_ATTEMPTS: u32 = 3;

/// How the daemon is run.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The inventory directory.
    pub dir: PathBuf,
    /// `--host-root`.
    pub host_root: Option<PathBuf>,
    /// `--ref`: read the inventory from this ref at each pass, not from
    /// the working tree.
    pub git_ref: Option<String>,
    /// One pass, then exit.
    pub once: bool,
    /// Exit after this many passes (for tests).
    pub max_cycles: Option<u64>,
    /// The timer between passes, overriding `watch.interval` (for the
    /// memory benchmark, which runs a day's passes in minutes).
    pub interval_ms: Option<u64>,
    /// `--server`: reconcile only this server's share of the inventory
    /// ([`Scope`]): a fleet runs one watcher per server.
    pub server: Option<Name>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The inventory could not be loaded at start.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A server could not be locked (another hoist holds it).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The repository could not be read.
    #[error(transparent)]
    Git(#[from] GitError),
    /// `--server` names no server of the inventory.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The runtime or the file watcher failed.
    #[error("{0}")]
    Runtime(String),
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassOutcome {
    /// Tasks run.
    pub tasks: usize,
    /// Tasks failed.
    pub failed: usize,
    /// Sites and platforms blocked (each reported with its reasons).
    pub blocked: usize,
    /// The pass could not finish (bad inventory, status not written or
    /// not pushed).
    pub error: bool,
    /// The rollout halted in this pass, or was held back because it had
    /// halted on this commit.
    pub halted: bool,
}

#[derive(Debug)]
struct Failure {
    commit: Option<String>,
    attempts: u32,
    next: Instant,
    reported: bool,
}

struct Daemon {
    opts: WatchOptions,
    cancel: Arc<AtomicBool>,
    /// The locks held, by host (its label), each with its host: an ssh
    /// server's lock lives as long as the connection it was taken over.
    locks: BTreeMap<String, (ServerLock, Arc<dyn crate::driver::host::Host>)>,
    /// Each site's declaration when it was last seen synced: a later
    /// difference with the servers under the same declaration is drift.
    applied: BTreeMap<SiteName, SiteSpec>,
    failures: HashMap<String, Failure>,
    first: bool,
    /// Read the inventory from HEAD (the inventory is in git, no `--ref`).
    committed_only: bool,
    /// The inventory commit of the last pass.
    last_commit: Option<String>,
    /// Passes done.
    passes: u64,
    /// The uncommitted paths last reported.
    dirty: Vec<String>,
    /// The blocked platforms and sites last reported (kind and name), with
    /// their reasons.
    blocked: BTreeMap<(&'static str, String), String>,
    /// The server roots (canonical): never part of the inventory.
    roots: Vec<PathBuf>,
    /// The servers of the last pass and the declarations they were made
    /// from: kept while those stay the same, so an ssh server's connection
    /// (and the lock held through it) lives from pass to pass.
    servers: Option<(ServersKey, Servers)>,
}

/// What a [`Servers`] is made from.
type ServersKey = (
    BTreeMap<Name, crate::inventory::ServerConfig>,
    BTreeMap<Name, crate::inventory::DatabaseConfig>,
);

impl Daemon {
    /// The commit the inventory is read from, if not the working tree.
    fn reference(&self) -> Option<&str> {
        match &self.opts.git_ref {
            Some(r) => Some(r),
            None => self.committed_only.then_some("HEAD"),
        }
    }

    /// Loads the inventory and narrows it to `--server`'s share.
    fn load(&self) -> Result<(Inventory, Scope), WatchError> {
        let inv = gitops::load_inventory(
            &self.opts.dir,
            self.reference(),
            crate::inventory::Sources::MayBeUnknown,
        )?;
        Ok(match &self.opts.server {
            Some(server) => {
                // Where each site was last seen: the status files are what
                // the watchers of the other servers share with this one.
                let last_seen = status::read(&inv.root)
                    .map(|set| set.last_seen())
                    .unwrap_or_default();
                Scope::narrow(inv, server, &last_seen)?
            }
            None => (inv, Scope::All),
        })
    }

    /// Reports uncommitted changes of the inventory, once per change of
    /// what is uncommitted: they are not applied.
    fn report_dirty(&mut self) {
        if !self.committed_only {
            return;
        }
        let dirty = match gitops::uncommitted(&self.opts.dir, &self.roots) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("cannot tell whether the working tree is clean: {e}");
                return;
            }
        };
        if dirty == self.dirty {
            return;
        }
        if dirty.is_empty() {
            tracing::info!("the working tree is clean again");
        } else {
            tracing::warn!(
                paths = %dirty.join(","),
                "the working tree has uncommitted changes ({}): not applied; hoist applies the committed inventory only (commit them to apply them)",
                dirty.join(", ")
            );
        }
        self.dirty = dirty;
    }

    /// Reports each blocked site and platform with its reasons, at warn
    /// level with the name as a field: every pass with `--once`, else when
    /// they change.
    fn report_blocked(&mut self, plan: &plan::Plan) -> usize {
        let platforms = plan.platforms.iter().filter(|p| p.blocked);
        let sites = plan.sites.iter().filter(|s| s.blocked);
        let now: BTreeMap<(&'static str, String), String> = platforms
            .map(|p| (("platform", p.name.to_string()), p.errors.join("; ")))
            .chain(sites.map(|s| (("site", s.name.to_string()), s.errors.join("; "))))
            .collect();
        for (key @ (kind, name), why) in &now {
            if !self.opts.once && self.blocked.get(key) == Some(why) {
                continue;
            }
            if *kind == "site" {
                tracing::warn!(site = %name, "site {name} is blocked: {why}");
            } else {
                tracing::warn!(platform = %name, "platform {name} is blocked: {why}");
            }
        }
        let n = now.len();
        self.blocked = now;
        n
    }

    /// The servers of `inv`: those of the last pass while hoist.yaml
    /// declares the same ones and all were reached.
    fn servers(&mut self, inv: &Inventory) -> Servers {
        let key = (inv.settings.servers.clone(), inv.settings.databases.clone());
        if let Some((k, s)) = &self.servers {
            if *k == key && s.unreachable.is_empty() {
                return s.clone();
            }
        }
        let s = Servers::from_inventory(inv, self.opts.host_root.as_deref());
        self.servers = Some((key, s.clone()));
        s
    }

    /// Locks every server not locked yet (hoist.yaml may add one), and
    /// recovers the tasks a killed hoist left running on it.
    fn lock(&mut self, servers: &Servers) -> Result<(), ServerError> {
        // A lock lost with its connection is let go and taken again (with
        // a recovery, as any newly taken lock): another hoist may have
        // worked on the server meanwhile.
        self.locks
            .retain(|label, (_, host)| match host.check_lock() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("{label}: {e}; taking it again");
                    false
                }
            });
        let mut new = Vec::new();
        for s in servers.by_name.values() {
            if let std::collections::btree_map::Entry::Vacant(e) =
                self.locks.entry(s.host().label())
            {
                e.insert((s.lock()?, s.host_arc()));
                new.push(s);
            }
        }
        // Holding the locks makes this daemon the one to finish or undo
        // what a killed hoist left running on those servers; all of them
        // are held by now, for a move between two of them.
        for s in new {
            for r in crate::apply::recover(s, servers) {
                tracing::warn!(task = %r.id, result = r.result.as_str(), "recovered an interrupted task: {}", r.message);
            }
        }
        Ok(())
    }

    /// Seeds what was applied from the status files of an earlier run: the
    /// declaration at the commit of a site's last successful task (or at
    /// the commit it was last seen synced) is what was applied. Without this, a restarted daemon would
    /// take every drift for a change of the inventory and put it back even
    /// with self-heal off.
    fn remember_applied(&mut self) {
        let Ok(set) = status::read(&self.opts.dir) else {
            return;
        };
        let mut at: BTreeMap<String, Option<Inventory>> = BTreeMap::new();
        for (name, s) in &set.sites {
            // The declaration a successful task applied; else, for a site
            // that needed no task, the one it was last seen synced with.
            let done = s
                .last_task
                .as_ref()
                .filter(|t| matches!(t.result, TaskResult::Success | TaskResult::Warning));
            let commit = match (
                done.and_then(|t| t.commit.as_ref()),
                s.sync,
                &s.inventory_commit,
            ) {
                (Some(c), _, _) => c,
                (None, SyncState::Synced, Some(c)) => c,
                _ => continue,
            };
            let inv = at.entry(commit.clone()).or_insert_with(|| {
                gitops::load_inventory(
                    &self.opts.dir,
                    Some(commit),
                    crate::inventory::Sources::MayBeUnknown,
                )
                .ok()
            });
            if let Some(spec) = inv.as_ref().and_then(|i| i.sites.get(name)) {
                self.applied.insert(name.clone(), spec.clone());
            }
        }
        // Sites with no such record still count as changed declarations.
        self.first = false;
    }

    /// Whether the task for `key` may run now, given its past failures.
    fn may_run(&mut self, key: &str, commit: &Option<String>, now: Instant) -> bool {
        let Some(f) = self.failures.get_mut(key) else {
            return true;
        };
        if &f.commit != commit {
            // A new inventory commit deserves fresh attempts.
            self.failures.remove(key);
            return true;
        }
        if f.attempts >= MAX_ATTEMPTS {
            if !f.reported {
                tracing::error!(
                    target_name = key,
                    attempts = f.attempts,
                    "{key} failed {} times at this inventory commit; not retried until the inventory changes",
                    f.attempts
                );
                f.reported = true;
            }
            return false;
        }
        if now < f.next {
            tracing::debug!("{key}: waiting for its retry");
            return false;
        }
        true
    }

    fn record_failure(&mut self, key: String, commit: &Option<String>, base: Duration) {
        let f = self.failures.entry(key.clone()).or_insert(Failure {
            commit: commit.clone(),
            attempts: 0,
            next: Instant::now(),
            reported: false,
        });
        f.attempts += 1;
        let wait = base.saturating_mul(1 << (f.attempts - 1).min(10));
        f.next = Instant::now() + wait;
        if f.attempts < MAX_ATTEMPTS {
            tracing::warn!(
                "{key} failed (attempt {}); retried in {}s at the earliest",
                f.attempts,
                wait.as_secs()
            );
        }
    }

    /// One reconcile ([`Daemon::reconcile`]), then the line that says it is
    /// done.
    fn pass(&mut self, reason: &str) -> PassOutcome {
        let out = self.reconcile(reason);
        self.passes += 1;
        tracing::info!(
            pass = self.passes,
            reason,
            tasks = out.tasks,
            failed = out.failed,
            blocked = out.blocked,
            error = out.error,
            "pass {} done",
            self.passes
        );
        out
    }

    /// Load, observe, plan, apply what may run, record status.
    fn reconcile(&mut self, reason: &str) -> PassOutcome {
        let mut out = PassOutcome::default();
        let (mut inv, scope) = match self.load() {
            Ok(i) => i,
            Err(WatchError::Load(LoadError::Invalid(d))) => {
                for p in &d.0 {
                    tracing::error!("{p}");
                }
                tracing::error!(
                    "the inventory has {} problem(s); nothing was changed",
                    d.0.len()
                );
                out.error = true;
                return out;
            }
            Err(e) => {
                tracing::error!("cannot read the inventory: {e}");
                out.error = true;
                return out;
            }
        };
        self.last_commit = inv.commit.clone();
        let servers = self.servers(&inv);
        if !servers.unreachable.is_empty() {
            let last_seen = status::read(&inv.root)
                .map(|set| set.last_seen())
                .unwrap_or_default();
            for m in servers.hold_unreachable(&mut inv, &last_seen) {
                tracing::error!("{m}");
            }
            out.error = true;
        }
        self.roots = servers.roots();
        self.report_dirty();
        if let Err(e) = self.lock(&servers) {
            tracing::error!("{e}");
            out.error = true;
            return out;
        }
        let actual = scope.actual(servers.observe());
        for p in &actual.problems {
            tracing::warn!("{p}");
        }
        let commit = inv.commit.clone();
        let opts = PlanOptions {
            strict: inv.settings.policy.strict,
            prune: inv.settings.policy.prune,
            only: vec![],
            mode: Mode::Live,
            inventory: plan::InventoryRef {
                path: inv.root.display().to_string(),
                commit: commit.clone(),
            },
            now: time::OffsetDateTime::now_utc(),
        };
        let plan = plan::plan(&inv, &actual, &opts);
        out.blocked = self.report_blocked(&plan);
        let self_heal = inv.settings.policy.self_heal;
        let now = Instant::now();
        let mut todo = plan.clone();
        let mut sites = std::mem::take(&mut todo.sites);
        sites.retain(|s| {
            if let Some(held) = &s.suspended {
                // Self-heal or not: a suspended site's drift is only told.
                if held.would.is_some() {
                    tracing::warn!(site = %s.name, "site {} is out of sync but left alone: {}", s.name, held.describe());
                }
            }
            if s.action == SiteAction::Noop || s.blocked {
                return true;
            }
            let declared_changed = self.first || self.applied.get(&s.name) != inv.sites.get(&s.name);
            if !declared_changed {
                crate::notify::drift(&inv.settings.notify, s.name.as_str(), &drift_detail(s), s.observed.as_deref(), commit.as_deref());
            }
            if !declared_changed && !self_heal {
                tracing::warn!(
                    site = %s.name,
                    "site {} changed behind hoist's back ({}): out-of-sync; self-heal is off, so it is only reported",
                    s.name,
                    if s.warnings.is_empty() { s.action.as_str().to_string() } else { s.warnings.join("; ") }
                );
                return false;
            }
            if !declared_changed {
                tracing::warn!(site = %s.name, "site {} drifted: putting it back ({})", s.name, s.action.as_str());
            }
            self.may_run(&format!("site {}", s.name), &commit, now)
        });
        todo.sites = sites;
        let mut platforms = std::mem::take(&mut todo.platforms);
        platforms.retain(|p| {
            p.action == PlatformAction::Noop
                || p.blocked
                || self.may_run(&format!("platform {}", p.name), &commit, now)
        });
        todo.platforms = platforms;
        let runnable = todo
            .sites
            .iter()
            .any(|s| s.action != SiteAction::Noop && !s.blocked)
            || todo
                .platforms
                .iter()
                .any(|p| p.action != PlatformAction::Noop && !p.blocked);
        // A rollout that halted on this commit is not retried: the
        // failures that halted it would only recur. A new commit is a new
        // rollout (and `hoist apply` can always be run by hand).
        let halted = crate::rollout_record::read(&servers)
            .and_then(|r| r.halted_on(commit.as_deref()).map(|h| h.wave.clone()));
        if let Some(wave) = halted.as_ref().filter(|_| runnable) {
            out.halted = true;
            crate::metrics::global().set_rollout_halted(true);
            tracing::warn!(
                commit = commit.as_deref().unwrap_or("-"),
                wave = %wave,
                "the rollout of this inventory commit halted in wave {wave}: it is not retried on this commit; push a new commit to roll out again"
            );
        }
        if runnable && halted.is_none() && !self.cancel.load(Ordering::SeqCst) {
            tracing::info!(
                reason,
                commit = commit.as_deref().unwrap_or("-"),
                "reconciling: {}",
                plan::changed_names(&todo).join(", ")
            );
            let aopts = ApplyOptions {
                parallel: inv.settings.policy.parallel,
                progress: false,
                commit: commit.clone(),
                cancel: Some(self.cancel.clone()),
            };
            let report = apply::apply(&todo, &inv, &servers, &aopts);
            out.halted = report.halted().is_some();
            let base = Duration::from_secs(inv.settings.watch.interval.max(1));
            for t in &report.tasks {
                out.tasks += 1;
                // `what` is "<action> <name>", "build <name>" or
                // "delete platform <name>": the name is its last word.
                let name = t.what.rsplit(' ').next().unwrap_or_default();
                let kind = if t.what.starts_with("build ") || t.what.starts_with("delete platform ")
                {
                    "platform"
                } else {
                    "site"
                };
                let key = format!("{kind} {name}");
                match t.result {
                    TaskResult::Failed => {
                        out.failed += 1;
                        tracing::error!(
                            task = t.id.as_deref().unwrap_or("-"),
                            "{} failed: {}",
                            t.what,
                            t.message.as_deref().unwrap_or("")
                        );
                        self.record_failure(key, &commit, base);
                    }
                    r => {
                        tracing::info!(
                            task = t.id.as_deref().unwrap_or("-"),
                            result = r.as_str(),
                            "{}",
                            t.what
                        );
                        self.failures.remove(&key);
                    }
                }
            }
        } else {
            tracing::debug!(reason, "nothing to do");
        }
        match status::record(&inv, &servers, &scope) {
            Ok(r) => {
                crate::metrics::global().record_sites(r.set.sites.values().map(|s| s.sync));
                for (name, s) in &r.set.sites {
                    match (s.sync, inv.sites.get(name)) {
                        (SyncState::Synced, Some(spec)) => {
                            crate::notify::drift_cleared(name.as_str());
                            self.applied.insert(name.clone(), spec.clone());
                        }
                        (_, None) => {
                            self.applied.remove(name);
                        }
                        _ => {}
                    }
                }
                if let Some(c) = &r.commit {
                    tracing::info!(commit = %c, "status committed ({} file(s) changed)", r.changed.len());
                }
                if let Some(p) = &r.pushed {
                    tracing::info!("status pushed: {p:?}");
                }
            }
            Err(e) => {
                tracing::error!("status: {e}");
                out.error = true;
            }
        }
        self.first = false;
        out
    }
}

/// What drifted on a site, for the `drift` webhook.
fn drift_detail(s: &plan::SitePlan) -> String {
    if s.warnings.is_empty() {
        format!("changed behind hoist's back: {} needed", s.action.as_str())
    } else {
        s.warnings.join("; ")
    }
}

/// A change the file watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    /// A file of the inventory's working tree.
    WorkTree(PathBuf),
    /// HEAD or a branch (a commit, a checkout; hoist's own status commits
    /// too, which the commit check then tells apart).
    Refs,
}

/// What a changed path is to the daemon, if anything.
fn classify(
    root: &Path,
    path: &Path,
    ignored: &[PathBuf],
    refs: &gitops::RefFiles,
    repo: Option<&git2::Repository>,
) -> Option<Change> {
    if refs.contains(path) {
        return Some(Change::Refs);
    }
    let rel = path.strip_prefix(root).ok()?;
    let first = rel.components().next().map(|c| c.as_os_str().to_owned());
    if first.is_none_or(|f| f == ".git" || f == gitops::STATUS_DIR) {
        return None;
    }
    if ignored.iter().any(|i| path.starts_with(i)) {
        return None;
    }
    if repo.is_some_and(|r| r.is_path_ignored(rel).unwrap_or(false)) {
        return None;
    }
    Some(Change::WorkTree(path.to_path_buf()))
}

fn start_watcher(
    dir: &Path,
    ignored: Vec<PathBuf>,
    tx: tokio::sync::mpsc::UnboundedSender<Change>,
) -> Result<notify::RecommendedWatcher, WatchError> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let root = dir
        .canonicalize()
        .map_err(|e| WatchError::Runtime(format!("{}: {e}", dir.display())))?;
    let r2 = root.clone();
    let repo = gitops::open_root(&root);
    let refs = gitops::RefFiles::of(&root);
    let cannot = |d: &Path, e: notify::Error| {
        WatchError::Runtime(format!("cannot watch {}: {e}", d.display()))
    };
    // Outside the working tree (an inventory in a subdirectory, a linked
    // worktree), the git directories are watched too.
    let mut dirs = vec![root.clone()];
    for d in [&refs.git_dir, &refs.common_dir].into_iter().flatten() {
        if !dirs.iter().any(|w| d.starts_with(w)) {
            dirs.push(d.clone());
        }
    }
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        // Reads (hoist's own, too) are not changes.
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        if let Some(c) = ev
            .paths
            .iter()
            .find_map(|p| classify(&r2, p, &ignored, &refs, repo.as_ref()))
        {
            let _ = tx.send(c);
        }
    })
    .map_err(|e| cannot(&root, e))?;
    for d in &dirs {
        w.watch(d, RecursiveMode::Recursive)
            .map_err(|e| cannot(d, e))?;
    }
    Ok(w)
}

/// Runs the daemon until SIGINT or SIGTERM (or `--once`, `--max-cycles`).
/// Returns the process exit code.
pub fn run(opts: WatchOptions) -> Result<u8, WatchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| WatchError::Runtime(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run_async(opts))
}

fn jittered(secs: u64) -> Duration {
    use rand::Rng;
    let base = Duration::from_secs(secs.max(1));
    // ±20%, so that many daemons do not fetch in step.
    let j = rand::rng().random_range(0.8..1.2);
    base.mul_f64(j)
}

async fn run_async(opts: WatchOptions) -> Result<u8, WatchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let cancel = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| WatchError::Runtime(format!("cannot handle SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| WatchError::Runtime(format!("cannot handle SIGINT: {e}")))?;
    {
        let (cancel, stop) = (cancel.clone(), stop.clone());
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let sig = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                if first {
                    tracing::info!("{sig}: stopping: the running step finishes, the running task is undone (or finished past its point of no return), no new task starts");
                    cancel.store(true, Ordering::SeqCst);
                    stop.notify_one();
                    first = false;
                } else {
                    tracing::warn!(
                        "{sig}: already stopping; ignored so that nothing is left half done"
                    );
                }
            }
        });
    }

    let mut daemon = Daemon {
        opts: opts.clone(),
        cancel: cancel.clone(),
        locks: BTreeMap::new(),
        applied: BTreeMap::new(),
        failures: HashMap::new(),
        first: true,
        committed_only: opts.git_ref.is_none() && gitops::is_committed(&opts.dir),
        last_commit: None,
        passes: 0,
        dirty: vec![],
        blocked: BTreeMap::new(),
        roots: vec![],
        servers: None,
    };
    let (inv, _) = daemon.load()?;
    let servers = daemon.servers(&inv);
    daemon.lock(&servers)?;
    daemon.remember_applied();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
    let _watcher = if opts.once {
        None
    } else {
        Some(start_watcher(&opts.dir, servers.roots(), tx)?)
    };
    let upstream = if opts.once {
        None
    } else {
        gitops::upstream(&opts.dir)
    };
    tracing::info!(
        inventory = %opts.dir.display(),
        upstream = upstream.as_ref().map(|(r, b)| format!("{r}/{b}")).unwrap_or_else(|| "-".into()),
        "watching"
    );

    let mut reason = "start";
    let mut any_error = false;
    let mut next_fetch = tokio::time::Instant::now();
    let mut last_refused: Option<git2::Oid> = None;
    loop {
        let (d, outcome) = tokio::task::spawn_blocking(move || {
            let mut d = daemon;
            let o = d.pass(reason);
            (d, o)
        })
        .await
        .map_err(|e| WatchError::Runtime(format!("the reconcile pass panicked: {e}")))?;
        daemon = d;
        crate::metrics::record_pass(outcome.failed, outcome.error);
        any_error |= outcome.error || outcome.failed > 0;
        if opts.once {
            // Anything blocked or failed is a reason to look: exit 1.
            return Ok(
                if outcome.error || outcome.failed > 0 || outcome.blocked > 0 || outcome.halted {
                    1
                } else {
                    0
                },
            );
        }
        if cancel.load(Ordering::SeqCst) || opts.max_cycles.is_some_and(|m| daemon.passes >= m) {
            break;
        }
        // The settings may have changed with the inventory.
        let ws = daemon
            .load()
            .map(|(i, _)| i.settings.watch)
            .unwrap_or_default();
        let timer = tokio::time::sleep(opts.interval_ms.map_or(
            Duration::from_secs(ws.interval.max(1)),
            Duration::from_millis,
        ));
        tokio::pin!(timer);
        let next = loop {
            tokio::select! {
                biased;
                _ = stop.notified() => break None,
                _ = &mut timer => break Some("timer"),
                _ = tokio::time::sleep_until(next_fetch), if upstream.is_some() => {
                    next_fetch = tokio::time::Instant::now() + jittered(ws.fetch_interval);
                    let (remote, branch) = upstream.clone().expect("checked");
                    let dir = opts.dir.clone();
                    let r = tokio::task::spawn_blocking(move || {
                        let tip = gitops::fetch(&dir, &remote, &branch)?;
                        Ok::<_, GitError>((tip, gitops::follow(&dir, tip)?))
                    })
                    .await;
                    match r {
                        Ok(Ok((_, Followed::Moved))) => {
                            tracing::info!("the upstream branch moved on: working tree updated");
                            break Some("upstream");
                        }
                        Ok(Ok((_, Followed::UpToDate))) => {}
                        Ok(Ok((tip, refused))) => {
                            if last_refused != Some(tip) {
                                match refused {
                                    Followed::Dirty(paths) => tracing::warn!(
                                        "the upstream branch moved on, but the working tree has uncommitted changes ({}); not updating it",
                                        paths.join(", ")
                                    ),
                                    _ => tracing::warn!(
                                        "the upstream branch moved on, but the local branch has commits of its own; not updating it"
                                    ),
                                }
                                last_refused = Some(tip);
                            }
                        }
                        Ok(Err(e)) => tracing::warn!("fetch: {e}"),
                        Err(e) => tracing::error!("fetch panicked: {e}"),
                    }
                }
                Some(c) = rx.recv() => {
                    tracing::debug!(change = ?c, "changed");
                    let (mut refs, mut tree) = (c == Change::Refs, c != Change::Refs);
                    let quiet = Duration::from_millis(ws.debounce_ms);
                    // Gather the burst: wait until nothing changed for `quiet`.
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(quiet) => break,
                            Some(c) = rx.recv() => {
                                refs |= c == Change::Refs;
                                tree |= c != Change::Refs;
                            }
                        }
                    }
                    let Some(reference) = daemon.reference().map(String::from) else {
                        // No commit to read: the working tree is the inventory.
                        if tree {
                            break Some("change");
                        }
                        continue;
                    };
                    if tree {
                        daemon.report_dirty();
                    }
                    if refs {
                        let dir = opts.dir.clone();
                        let r = reference.clone();
                        let now = tokio::task::spawn_blocking(move || gitops::reference_commit(&dir, &r)).await;
                        match now {
                            Ok(Ok(c)) if daemon.last_commit.as_ref() != Some(&c) => {
                                tracing::info!(commit = %c, "{reference} moved to a new inventory commit");
                                break Some("commit");
                            }
                            Ok(Ok(_)) => tracing::debug!("{reference} moved, but not to a new inventory commit: no pass"),
                            Ok(Err(e)) => tracing::warn!("cannot read {reference}: {e}"),
                            Err(e) => tracing::error!("reading {reference} panicked: {e}"),
                        }
                    }
                }
            }
        };
        match next {
            Some(r) if !cancel.load(Ordering::SeqCst) => reason = r,
            _ => break,
        }
    }
    tracing::info!(passes = daemon.passes, "stopped");
    let _ = any_error;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_classified_by_where_they_are() {
        let root = Path::new("/inv");
        let refs = gitops::RefFiles {
            git_dir: Some("/inv/.git".into()),
            common_dir: Some("/inv/.git".into()),
        };
        let ignored = vec![PathBuf::from("/inv/.hoist-host")];
        let c = |p: &str| classify(root, Path::new(p), &ignored, &refs, None);
        assert_eq!(
            c("/inv/sites/a.yaml"),
            Some(Change::WorkTree("/inv/sites/a.yaml".into()))
        );
        assert_eq!(c("/inv/.git/HEAD"), Some(Change::Refs));
        assert_eq!(c("/inv/.git/refs/heads/main"), Some(Change::Refs));
        for none in [
            "/inv/.git/index",
            "/inv/.git/objects/ab/cdef",
            "/inv/status/sites/a.yaml",
            "/inv/.hoist-host/tasks/x.json",
            "/inv",
            "/elsewhere/sites/a.yaml",
        ] {
            assert_eq!(c(none), None, "{none}");
        }
    }
}
