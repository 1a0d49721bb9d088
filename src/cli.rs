//! The command line: argument parsing, loading, and turning library results
//! into output and exit codes (spec section 6). Context is added to errors
//! here, at the edge.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::apply::{self, ApplyOptions};
use crate::compat;
use crate::diag::Diagnostic;
use crate::inventory::Inventory;
use crate::names::{Name, SiteName};
use crate::observe::Actual;
use crate::plan::{self, format, Mode, Plan, PlanOptions};
use crate::server::Servers;
use crate::status;
use crate::task::{self, TaskResult};
use crate::text;

/// Exit code: success, nothing to do, or all done.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error, a blocked plan, or a failed task.
pub const EXIT_ERROR: u8 = 1;
/// Exit code (only with `--detailed-exitcode`): the plan has changes, none blocked.
pub const EXIT_CHANGES: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "hoist",
    version,
    about = "Keeps a fleet of hosted websites where a git repository says they should be"
)]
struct Cli {
    /// The inventory directory.
    #[arg(short = 'C', global = true, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// Overrides the root directory of the `local` server.
    #[arg(long, global = true, env = "HOIST_HOST_ROOT", value_name = "DIR")]
    host_root: Option<PathBuf>,
    /// Log format on stderr (levels through RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Read the inventory from this commit (branch, tag, sha) of its git
    /// repository instead of the working tree, which is left untouched.
    #[arg(long = "ref", global = true, value_name = "REF")]
    git_ref: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum PlanFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load and check the inventory; print every problem.
    Validate,
    /// Observe, diff and print the plan.
    Plan {
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Also save the plan as JSON, for `hoist apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Observe from the status files alone; touch no server.
        #[arg(long)]
        offline: bool,
        /// Plan only this site (repeatable).
        #[arg(long = "site", value_name = "NAME")]
        sites: Vec<String>,
        /// Treat compatibility warnings as blocking.
        #[arg(long)]
        strict: bool,
        /// Exit 2 when the plan has changes and none is blocked.
        #[arg(long)]
        detailed_exitcode: bool,
        /// In the text plan, also list what has nothing to do.
        #[arg(long)]
        show_noop: bool,
    },
    /// Re-observe, then carry out the plan (or a saved one).
    Apply {
        /// A plan saved with `hoist plan --out`: carried out only if
        /// planning afresh gives the same actions.
        planfile: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Apply only this site (repeatable; a saved plan names its own).
        #[arg(long = "site", value_name = "NAME", conflicts_with = "planfile")]
        sites: Vec<String>,
        /// Treat compatibility warnings as blocking.
        #[arg(long)]
        strict: bool,
        /// In the printed plan, also list what has nothing to do.
        #[arg(long)]
        show_noop: bool,
    },
    /// Compare a site with every platform, or with one package by package.
    Compare {
        /// The site.
        site: String,
        /// One platform to compare with in detail.
        platform: Option<String>,
    },
    /// A table of sites: domain, platform, sync state, last task and result.
    Status {
        /// Compute it from the servers instead of the status files.
        #[arg(long)]
        live: bool,
    },
    /// Run as a daemon: reconcile on inventory changes, on a timer and on drift.
    Watch {
        /// Reconcile once, then exit (1 when anything failed or is blocked).
        #[arg(long)]
        once: bool,
        /// Exit after this many reconcile passes.
        #[arg(long, hide = true, value_name = "N")]
        max_cycles: Option<u64>,
        /// The timer between passes in milliseconds, instead of
        /// `watch.interval` seconds (for the memory benchmark).
        #[arg(long, hide = true, value_name = "MS")]
        interval_ms: Option<u64>,
        /// Serve Prometheus metrics at http://ADDR/metrics (port 0: any
        /// free port, logged as `metrics listening on ADDR`).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
        /// Reconcile only the platforms and sites of this server, and
        /// commit only their status files: one watcher per server, all
        /// pulling the same inventory and pushing to the same remote.
        #[arg(long, value_name = "NAME")]
        server: Option<String>,
    },
    /// Back a site up.
    Backup {
        /// The site.
        site: String,
    },
    /// A site's backups, newest first: size, the task that made each, and
    /// whether it is whole.
    Backups {
        /// The site.
        site: String,
    },
    /// Restore a site from a backup (the newest by default).
    Restore {
        /// The site.
        site: String,
        /// The backup file name.
        backup: Option<String>,
    },
    /// Task history, of all sites or one.
    Tasks {
        /// Only this site's tasks.
        site: Option<String>,
    },
    /// One task's record and log.
    Log {
        /// The task id (or a unique prefix).
        task: String,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    // The daemon tells what it does; one-shot commands only warn.
    let level = if matches!(cli.command, Command::Watch { .. }) {
        "info"
    } else {
        "warn"
    };
    init_logging(cli.log_format, level);
    let outcome = run(&cli);
    // Webhooks queued by this run get a short, bounded time to go out.
    crate::notify::flush_at_exit();
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints clap's message and picks the exit code: 0 for `--help` and
/// `--version`, 1 for a usage error. Never clap's own 2: CI reads 2 as
/// "the plan has changes" (`--detailed-exitcode`).
fn usage_error(e: &clap::Error) -> ExitCode {
    // A closed stdout or stderr cannot be reported anywhere else.
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::from(EXIT_OK)
    }
}

fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(color_on(&std::io::stderr())).init(),
    }
}

/// Colours only on a terminal, and never with `NO_COLOR` set.
fn color_on(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Validate => validate(cli),
        Command::Plan {
            format,
            out,
            offline,
            sites,
            strict,
            detailed_exitcode,
            show_noop,
        } => cmd_plan(
            cli,
            *format,
            out.as_deref(),
            *offline,
            sites,
            *strict,
            *detailed_exitcode,
            *show_noop,
        ),
        Command::Apply {
            planfile,
            yes,
            sites,
            strict,
            show_noop,
        } => cmd_apply(cli, planfile.as_deref(), *yes, sites, *strict, *show_noop),
        Command::Compare { site, platform } => cmd_compare(cli, site, platform.as_deref()),
        Command::Status { live } => cmd_status(cli, *live),
        Command::Tasks { site } => cmd_tasks(cli, site.as_deref()),
        Command::Log { task } => cmd_log(cli, task),
        Command::Watch {
            once,
            max_cycles,
            interval_ms,
            metrics,
            server,
        } => {
            // Held for the daemon's life: dropping it stops the server.
            let _metrics = match metrics {
                Some(addr) => Some(serve_metrics(addr)?),
                None => None,
            };
            cmd_watch(cli, *once, *max_cycles, *interval_ms, server.as_deref())
        }
        Command::Backup { site } => cmd_backup(cli, site),
        Command::Backups { site } => cmd_backups(cli, site),
        Command::Restore { site, backup } => cmd_restore(cli, site, backup.as_deref()),
    }
}

/// Loads the inventory (from `--ref` when given), printing every problem to
/// stderr on failure.
fn load(cli: &Cli) -> Result<Inventory, u8> {
    load_at(cli, cli.git_ref.as_deref())
}

/// [`load`] from `reference` (a commit) or, with None, the working tree.
fn load_at(cli: &Cli, reference: Option<&str>) -> Result<Inventory, u8> {
    // `validate` holds every source to being readable; planning treats a
    // source it cannot read as an unknown platform and blocks what needs it.
    // An offline plan (a pull request's, say) reads only what the
    // inventory holds: an absolute source outside it is left unread.
    let sources = match cli.command {
        Command::Validate => crate::inventory::Sources::Required,
        Command::Plan { offline: true, .. } => crate::inventory::Sources::InsideOnly,
        _ => crate::inventory::Sources::MayBeUnknown,
    };
    match crate::gitops::load_inventory(&cli.dir, reference, sources) {
        Ok(inv) => Ok(inv),
        Err(crate::gitops::LoadError::Git(e)) => {
            eprintln!("error: {e}");
            Err(EXIT_ERROR)
        }
        Err(crate::gitops::LoadError::Invalid(diags)) => {
            let mut err = std::io::stderr().lock();
            for d in &diags.0 {
                let _ = writeln!(err, "{d}");
            }
            let _ = writeln!(
                err,
                "error: the inventory has {} problem(s); nothing was changed",
                diags.0.len()
            );
            Err(EXIT_ERROR)
        }
    }
}

/// Loads the inventory a command that commits status carries out (spec
/// section 7: hoist applies committed inventory only when it commits
/// status). In a repository whose status is committed, an uncommitted edit
/// is not applied: the inventory is read from HEAD's commit instead, and
/// the edit named on stderr. Elsewhere, the working tree (or `--ref`).
fn load_committed(cli: &Cli) -> Result<Inventory, u8> {
    use crate::gitops;
    if cli.git_ref.is_some()
        || gitops::open_root(&cli.dir).is_none()
        || !gitops::is_committed(&cli.dir)
    {
        return load(cli);
    }
    // Server roots are known only once loaded: the cheap question first.
    match gitops::uncommitted(&cli.dir, &[]) {
        Ok(d) if d.is_empty() => return load(cli),
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_ERROR);
        }
    }
    let inv = match load_at(cli, Some("HEAD")) {
        Ok(inv) if inv.settings.status.commit => inv,
        // Status is not committed: the working tree it is.
        Ok(_) => return load(cli),
        Err(code) => {
            eprintln!("error: those are problems of the committed inventory (HEAD), which hoist applies since it commits status; commit a fix");
            return Err(code);
        }
    };
    let roots = Servers::local_roots(&inv, cli.host_root.as_deref());
    match gitops::uncommitted(&cli.dir, &roots) {
        Ok(d) if d.is_empty() => {}
        Ok(d) => eprintln!(
            "warning: uncommitted changes are not applied ({}): hoist commits status, so it applies the committed inventory ({}); commit them to apply them",
            d.join(", "),
            inv.commit.as_deref().map(|c| &c[..c.len().min(12)]).unwrap_or("HEAD")
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_ERROR);
        }
    }
    Ok(inv)
}

fn validate(cli: &Cli) -> Result<u8> {
    match load(cli) {
        Ok(inv) => {
            println!(
                "ok: {} platform(s), {} site(s)",
                inv.platforms.len(),
                inv.sites.len()
            );
            Ok(EXIT_OK)
        }
        Err(code) => Ok(code),
    }
}

fn site_names(names: &[String]) -> Result<Vec<SiteName>> {
    names
        .iter()
        .map(|n| Name::new(n).with_context(|| format!("--site {n}")))
        .collect()
}

fn inventory_ref(inv: &Inventory) -> plan::InventoryRef {
    plan::InventoryRef {
        path: inv.root.display().to_string(),
        commit: inv.commit.clone(),
    }
}

fn make_plan(
    inv: &Inventory,
    actual: &Actual,
    only: Vec<SiteName>,
    strict: bool,
    mode: Mode,
) -> Plan {
    let opts = PlanOptions {
        strict: strict || inv.settings.policy.strict,
        prune: inv.settings.policy.prune,
        only,
        mode,
        inventory: inventory_ref(inv),
        now: time::OffsetDateTime::now_utc(),
    };
    plan::plan(inv, actual, &opts)
}

fn check_sites_known(inv: &Inventory, actual: &Actual, only: &[SiteName]) -> Result<()> {
    for s in only {
        if !inv.sites.contains_key(s) && !actual.sites.contains_key(s) {
            bail!("no site {s}: it is neither declared nor installed");
        }
    }
    Ok(())
}

/// Takes every server's lock and recovers tasks a killed hoist left
/// running. The locks are held for as long as the returned guards live.
fn lock_and_recover(servers: &Servers) -> Result<Vec<crate::server::ServerLock>> {
    let locks = servers.lock_all()?;
    recover(servers);
    Ok(locks)
}

/// For commands that only read: recover when no other hoist is working on
/// a server (one that is recovers on its own), then let go. A server with
/// no task records has nothing to recover and is not touched at all.
fn recover_if_idle(servers: &Servers) {
    for srv in servers.by_name.values().filter(|s| s.tasks().exists()) {
        if let Ok(lock) = srv.lock() {
            // Only this server is held: a move to another one waits for an
            // apply, which holds both.
            report_recovered(srv, &Servers::default());
            drop(lock);
        }
    }
}

fn report_recovered(srv: &crate::server::LocalServer, held: &Servers) {
    for r in apply::recover(srv, held) {
        eprintln!(
            "recovered interrupted task {} ({}): {}",
            text::line(&r.id),
            r.result.as_str(),
            text::line(&r.message)
        );
    }
}

fn recover(servers: &Servers) {
    for srv in servers.by_name.values() {
        report_recovered(srv, servers);
    }
}

fn print_problems(actual: &Actual) {
    for p in &actual.problems {
        eprintln!("warning: {}", text::line(&p.to_string()));
    }
}

#[allow(clippy::too_many_arguments)] // one per flag of `hoist plan`
fn cmd_plan(
    cli: &Cli,
    fmt: PlanFormat,
    out: Option<&Path>,
    offline: bool,
    sites: &[String],
    strict: bool,
    detailed: bool,
    show_noop: bool,
) -> Result<u8> {
    // Offline, the status files are read while the inventory loads: at
    // fleet scale each is tens of thousands of files. (With --ref both read
    // one extracted tree, which is extracted once, first.)
    let started = std::time::Instant::now();
    let (inv, status) = if offline && cli.git_ref.is_none() {
        std::thread::scope(|s| {
            let status = s.spawn(|| read_offline_status(cli));
            let inv = load(cli);
            (
                inv,
                Some(status.join().expect("the status reader panicked")),
            )
        })
    } else {
        (load(cli), None)
    };
    let mut inv = match inv {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    tracing::debug!(ms = started.elapsed().as_millis(), "inventory loaded");
    let only = site_names(sites)?;
    let mut unreachable = false;
    let (actual, mode) = if offline {
        let status = match status {
            Some(s) => s,
            None => read_offline_status(cli),
        };
        (offline_actual(status)?, Mode::Offline)
    } else {
        let servers = connect(cli, &mut inv);
        unreachable = !servers.unreachable.is_empty();
        recover_if_idle(&servers);
        (servers.observe(), Mode::Live)
    };
    tracing::debug!(ms = started.elapsed().as_millis(), "state observed");
    print_problems(&actual);
    check_sites_known(&inv, &actual, &only)?;
    let plan = make_plan(&inv, &actual, only, strict, mode);
    tracing::debug!(ms = started.elapsed().as_millis(), "planned");
    if let Some(path) = out {
        std::fs::write(path, format::json(&plan))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let text = match fmt {
        PlanFormat::Text => format::text(
            &plan,
            &format::Style::new(color_on(&std::io::stdout())),
            show_noop,
        ),
        PlanFormat::Markdown => format::markdown(&plan),
        PlanFormat::Json => format::json(&plan),
    };
    print!("{text}");
    let code = if plan.blocked() || unreachable {
        EXIT_ERROR
    } else if detailed && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    };
    // The process ends here: freeing a fleet's worth of small allocations
    // one by one only delays the exit (by a tenth of a second at 10,000
    // sites). The operating system takes the memory back at once.
    std::mem::forget((inv, actual, plan));
    Ok(code)
}

/// The observed state as the status files record it: from the working
/// tree's `status/`, or the `--ref` commit's. No server is touched.
fn read_offline_status(cli: &Cli) -> Result<Result<Actual, Vec<Diagnostic>>> {
    let dir = match &cli.git_ref {
        Some(r) => crate::gitops::extract(&cli.dir, r)?.dir,
        None => cli.dir.clone(),
    };
    Ok(status::read(&dir).map(|set| set.actual()))
}

/// The observed state from [`read_offline_status`], or its problems
/// reported.
fn offline_actual(status: Result<Result<Actual, Vec<Diagnostic>>>) -> Result<Actual> {
    match status? {
        Ok(actual) => Ok(actual),
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            bail!(
                "the status files have {} problem(s): they are hoist's own; run `hoist apply` to rewrite them",
                diags.len()
            )
        }
    }
}

/// Writes, commits and pushes the status files after an apply; reports
/// what it did on stdout.
/// The servers of `inv`, connected. Whatever is on a server that cannot
/// be reached is held in `inv` (left alone, the plan says why), and each
/// such server is reported as an error.
fn connect(cli: &Cli, inv: &mut Inventory) -> Servers {
    let servers = Servers::from_inventory(inv, cli.host_root.as_deref());
    if !servers.unreachable.is_empty() {
        let last_seen = status::read(&inv.root)
            .map(|set| set.last_seen())
            .unwrap_or_default();
        for m in servers.hold_unreachable(inv, &last_seen) {
            eprintln!("error: {}", crate::text::line(&m));
        }
    }
    servers
}

/// The servers of `inv`, connected, each unreachable one said on stderr
/// (for commands that read or act on one site: what is there is not seen).
fn servers_told(cli: &Cli, inv: &Inventory) -> Servers {
    let servers = Servers::from_inventory(inv, cli.host_root.as_deref());
    for (n, why) in &servers.unreachable {
        eprintln!("error: server {n} cannot be reached: {}", text::line(why));
    }
    servers
}

fn write_status(inv: &Inventory, servers: &Servers) -> Result<()> {
    let r = status::record(inv, servers, &crate::scope::Scope::All).context(
        "the apply is done, but its status could not be recorded (it is written again by the next apply)",
    )?;
    if let Some(c) = &r.commit {
        println!("Status committed: {}", crate::names::prefix(c, 12));
    }
    match &r.pushed {
        Some(crate::gitops::Pushed::Rebuilt { tries, .. }) => println!(
            "Status pushed to {} (rebuilt on the remote's new tip, {tries} tries).",
            inv.settings.status.push.as_deref().unwrap_or("?")
        ),
        Some(_) => println!(
            "Status pushed to {}.",
            inv.settings.status.push.as_deref().unwrap_or("?")
        ),
        None => {}
    }
    Ok(())
}

/// From here on SIGINT and SIGTERM stop the command's tasks cleanly (after
/// any prompt: there, they simply end the process, nothing changed).
fn interrupt_handler() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    crate::interrupt::install().context("cannot handle SIGINT and SIGTERM")
}

fn confirm(prompt: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("not on a terminal, so no one can confirm: run `hoist apply --yes`");
    }
    eprint!("{prompt} [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Reads a saved plan, refusing a file too big to be one before reading
/// it.
fn read_saved_plan(path: &Path) -> Result<Plan> {
    use std::io::Read;
    let shown = || format!("the saved plan {}", path.display());
    let file = std::fs::File::open(path).with_context(shown)?;
    let size = file.metadata().with_context(shown)?.len();
    if size > plan::saved::MAX_BYTES {
        return Err(plan::saved::SavedPlanError::TooBig { size }).with_context(shown);
    }
    // A pipe or device reports no size: read one byte past the limit.
    let mut bytes = Vec::new();
    file.take(plan::saved::MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(shown)?;
    plan::saved::parse(&bytes).with_context(shown)
}

fn cmd_apply(
    cli: &Cli,
    planfile: Option<&Path>,
    yes: bool,
    sites: &[String],
    strict: bool,
    show_noop: bool,
) -> Result<u8> {
    let mut inv = match load_committed(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    let only = site_names(sites)?;
    // Read before any lock is taken: a bad file is refused at once.
    let saved = planfile
        .map(|p| read_saved_plan(p).map(|s| (p, s)))
        .transpose()?;
    let servers = connect(cli, &mut inv);
    let unreachable = !servers.unreachable.is_empty();
    let _locks = lock_and_recover(&servers)?;
    let actual = servers.observe();
    print_problems(&actual);
    // What is carried out is always a fresh plan; a saved one only decides
    // whether it may be.
    let plan = match saved {
        Some((path, saved)) => {
            let fresh = make_plan(
                &inv,
                &actual,
                saved.selected.clone(),
                saved.strict || strict,
                Mode::Live,
            );
            if let Err(refusal) = plan::saved::check(&saved, &fresh) {
                bail!(
                    "the saved plan {} is refused: {refusal}\nNothing was changed; run `hoist plan --out FILE` again.",
                    path.display()
                );
            }
            fresh
        }
        None => {
            check_sites_known(&inv, &actual, &only)?;
            make_plan(&inv, &actual, only, strict, Mode::Live)
        }
    };
    let st = format::Style::new(color_on(&std::io::stdout()));
    if !plan.has_changes() && !plan.blocked() {
        println!("{}", format::summary_line(&plan));
        write_status(&inv, &servers)?;
        return Ok(if unreachable { EXIT_ERROR } else { EXIT_OK });
    }
    print!("{}", format::text(&plan, &st, show_noop));
    if !yes && plan.has_changes() && !confirm("Carry out this plan?")? {
        println!("Nothing was changed.");
        return Ok(EXIT_ERROR);
    }
    preflight(&inv, &servers)?;
    let opts = ApplyOptions {
        parallel: inv.settings.policy.parallel,
        progress: std::io::stderr().is_terminal(),
        commit: plan.inventory.commit.clone(),
        cancel: Some(interrupt_handler()?),
    };
    let report = apply::apply(&plan, &inv, &servers, &opts);
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for t in &report.tasks {
        *counts.entry(t.result.as_str()).or_default() += 1;
        print_outcome(t);
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let blocked = if plan.blocked() {
        format!(", {} blocked and left alone", plan.summary.blocked)
    } else {
        String::new()
    };
    println!(
        "Apply complete: {}{blocked}",
        if summary.is_empty() {
            "no tasks".into()
        } else {
            summary.join(", ")
        }
    );
    if let Some(h) = report.halted() {
        print_halt(h);
    }
    write_status(&inv, &servers)?;
    if opts.cancelled() {
        eprintln!(
            "hoist: interrupted: no new task was started; `hoist apply` carries out the rest"
        );
    }
    Ok(
        if report.failed()
            || report.halted().is_some()
            || plan.blocked()
            || opts.cancelled()
            || unreachable
        {
            EXIT_ERROR
        } else {
            EXIT_OK
        },
    )
}

/// Says why and where a rollout halted, and what became of its sites.
fn print_halt(h: &apply::rollout::Halt) {
    println!("Rollout HALTED: {}", crate::text::line(&h.describe()));
    for f in &h.failures {
        println!("  failed      {}: {}", f.site, crate::text::line(&f.why));
    }
    for (s, r) in &h.rolled_back {
        println!("  put back    {s} ({r})");
    }
    for s in &h.left {
        println!("  left as is  {s}");
    }
    if !h.not_started.is_empty() {
        let names: Vec<&str> = h.not_started.iter().map(|s| s.as_str()).collect();
        println!(
            "  not started ({}): {}",
            names.len(),
            crate::text::clip(&names.join(", "), 400)
        );
    }
    println!("`hoist watch` does not retry it on this inventory commit; a new commit, or `hoist apply`, does.");
}

#[allow(clippy::print_literal)] // aligned table headers read best as arguments
fn cmd_compare(cli: &Cli, site: &str, platform: Option<&str>) -> Result<u8> {
    let inv = match load(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    let site = Name::new(site)?;
    let servers = servers_told(cli, &inv);
    recover_if_idle(&servers);
    let actual = servers.observe();
    let obs = actual
        .sites
        .get(&site)
        .with_context(|| format!("site {site} is not installed; nothing to compare"))?;
    let current = actual.platforms.get(obs.platform()).map(|p| &p.codebase);
    let mut targets: std::collections::BTreeMap<Name, &crate::codebase::Codebase> =
        std::collections::BTreeMap::new();
    for (n, p) in &actual.platforms {
        targets.insert(n.clone(), &p.codebase);
    }
    for (n, p) in &inv.platforms {
        if let Ok(src) = &p.codebase {
            targets.insert(n.clone(), &src.codebase);
        }
    }
    println!(
        "Site {site} ({}) is on {} with profile {}.",
        obs.domain(),
        obs.platform(),
        obs.config.profile
    );
    match platform {
        None => {
            println!(
                "\n  {:<20} {:>8} {:>8} {:>6}  {}",
                "PLATFORM", "UPGRADES", "WARNINGS", "ERRORS", "MOVE"
            );
            for (name, cb) in &targets {
                let c = compat::compare_with(
                    &obs.packages,
                    &obs.drupal,
                    &obs.config.profile,
                    current,
                    name,
                    cb,
                );
                let status = if name == obs.platform() {
                    "current"
                } else if c.blocked(inv.settings.policy.strict) {
                    "not allowed"
                } else {
                    "allowed"
                };
                println!(
                    "  {:<20} {:>8} {:>8} {:>6}  {status}",
                    name.as_str(),
                    c.upgrades(),
                    c.warnings.len(),
                    c.errors.len()
                );
            }
            Ok(EXIT_OK)
        }
        Some(p) => {
            let pname = Name::new(p)?;
            let cb = targets.get(&pname).with_context(|| {
                format!("no platform {pname}: it is neither declared nor built")
            })?;
            let c = compat::compare_with(
                &obs.packages,
                &obs.drupal,
                &obs.config.profile,
                current,
                &pname,
                cb,
            );
            println!("Compared with {pname}:\n");
            println!(
                "  {:<16} {:<10} {:<18} {:>6} {:>6}  {:<17} {}",
                "PACKAGE", "KIND", "VERDICT", "SITE", "TARGET", "VERSION", "UPDATES"
            );
            for v in &c.packages {
                let opt = |o: Option<u32>| o.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
                let ver = format!(
                    "{} -> {}",
                    v.current_version
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    v.target_version
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                let pend = v
                    .pending
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                println!(
                    "  {:<16} {:<10} {:<18} {:>6} {:>6}  {:<17} {pend}",
                    v.name.as_str(),
                    v.kind.as_str(),
                    v.verdict.as_str(),
                    opt(v.site_schema),
                    opt(v.target_schema),
                    text::line(&ver)
                );
            }
            for e in &c.errors {
                println!("error: {}", text::line(e));
            }
            for w in &c.warnings {
                println!("warning: {}", text::line(w));
            }
            let blocked = c.blocked(inv.settings.policy.strict);
            println!(
                "\n{}",
                if blocked {
                    format!("{site} may not move to {pname}.")
                } else {
                    format!("{site} may move to {pname}.")
                }
            );
            Ok(if blocked { EXIT_ERROR } else { EXIT_OK })
        }
    }
}

fn cmd_status(cli: &Cli, live: bool) -> Result<u8> {
    let inv = match load(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    // Against the inventory as it is now, never as it was at the last
    // apply: observed live, or from what the status files recorded (as
    // `plan --offline` does). Nothing is written.
    let (plan, set) = if live {
        let servers = servers_told(cli, &inv);
        recover_if_idle(&servers);
        let actual = servers.observe();
        print_problems(&actual);
        let plan = make_plan(&inv, &actual, vec![], false, Mode::Live);
        let tasks = status::last_tasks(&servers);
        let mut set = status::build(&plan, &actual, &tasks, inv.commit.as_deref());
        if let Some(rec) = crate::rollout_record::read(&servers) {
            set.mark_halt(&rec);
        }
        (plan, set)
    } else {
        let dir = match &cli.git_ref {
            Some(r) => crate::gitops::extract(&cli.dir, r)?.dir,
            None => cli.dir.clone(),
        };
        let recorded = match status::read(&dir) {
            Ok(set) => set,
            Err(diags) => {
                for d in &diags {
                    eprintln!("{d}");
                }
                bail!("the status files have {} problem(s)", diags.len());
            }
        };
        if recorded.sites.is_empty() && recorded.platforms.is_empty() {
            eprintln!("No status files yet: `hoist apply` writes them; `hoist status --live` asks the servers.");
        }
        status::current(&inv, &recorded)
    };
    if set.sites.is_empty() {
        println!("No sites declared or observed.");
        return Ok(EXIT_OK);
    }
    let pending: std::collections::HashMap<&SiteName, plan::SiteAction> =
        plan.sites.iter().map(|s| (&s.name, s.action)).collect();
    println!(
        "{:<20} {:<28} {:<12} {:<12} {:<15} {:<24} RESULT",
        "SITE", "DOMAIN", "PLATFORM", "SYNC", "PENDING", "LAST TASK"
    );
    for (name, s) in &set.sites {
        let domain = s
            .observed
            .as_ref()
            .map(|o| o.domain.to_string())
            .or_else(|| s.desired.as_ref().map(|d| d.domain.to_string()))
            .unwrap_or_else(|| "-".into());
        let platform = s
            .observed
            .as_ref()
            .map(|o| o.platform.to_string())
            .unwrap_or_else(|| "(absent)".into());
        let todo = pending
            .get(name)
            .filter(|a| **a != plan::SiteAction::Noop)
            .map(|a| a.as_str())
            .unwrap_or("-");
        let last = s.last_task.as_ref();
        // The status files are text a pull request may edit: the started
        // time especially is any string.
        println!(
            "{:<20} {:<28} {:<12} {:<12} {:<15} {:<24} {}",
            name.as_str(),
            text::line(&domain),
            text::line(&platform),
            s.sync.as_str(),
            todo,
            last.map(|t| format!(
                "{} {}",
                t.kind.as_str(),
                text::line(&t.started).chars().take(16).collect::<String>()
            ))
            .unwrap_or_else(|| "-".into()),
            last.map(|t| t.shown_result()).unwrap_or_else(|| "-".into()),
        );
    }
    // Who suspended what, why and until when: the table only says
    // `suspended`.
    let held: Vec<(String, &plan::Suspended)> = set
        .sites
        .iter()
        .filter_map(|(n, s)| Some((n.to_string(), s.suspended.as_deref()?)))
        .chain(
            set.platforms
                .iter()
                .filter_map(|(n, p)| Some((format!("platform {n}"), p.suspended.as_deref()?))),
        )
        .collect();
    if !held.is_empty() {
        println!("\nSuspended:");
        for (name, s) in held {
            println!("  {name}: {}", text::line(&s.describe()));
        }
    }
    if let Some(h) = set.halt() {
        println!(
            "\nRollout HALTED in wave {} (inventory commit {}): {}",
            text::line(&h.halted_wave),
            h.commit
                .as_deref()
                .map(|c| crate::names::prefix(c, 12))
                .unwrap_or("-"),
            text::line(&h.reason)
        );
    }
    Ok(EXIT_OK)
}

fn serve_metrics(addr: &str) -> Result<crate::metrics::Handle> {
    let h = crate::metrics::serve(addr, crate::metrics::global().clone())?;
    tracing::info!("metrics listening on {}", h.local_addr());
    Ok(h)
}

fn cmd_watch(
    cli: &Cli,
    once: bool,
    max_cycles: Option<u64>,
    interval_ms: Option<u64>,
    server: Option<&str>,
) -> Result<u8> {
    let server = server
        .map(crate::names::Name::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--server: {e}"))?;
    let opts = crate::watch::WatchOptions {
        server,
        interval_ms,
        dir: cli.dir.clone(),
        host_root: cli.host_root.clone(),
        git_ref: cli.git_ref.clone(),
        once,
        max_cycles,
    };
    match crate::watch::run(opts) {
        Ok(code) => Ok(code),
        Err(crate::watch::WatchError::Load(crate::gitops::LoadError::Invalid(diags))) => {
            for d in &diags.0 {
                eprintln!("{d}");
            }
            bail!(
                "hoist watch cannot start: the inventory has {} problem(s)",
                diags.0.len()
            )
        }
        Err(e) => Err(e).context("hoist watch cannot start"),
    }
}

#[allow(clippy::print_literal)] // aligned table headers read best as arguments
fn cmd_tasks(cli: &Cli, site: Option<&str>) -> Result<u8> {
    let inv = match load(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    let servers = servers_told(cli, &inv);
    let site = site.map(Name::new).transpose()?;
    println!(
        "{:<48} {:<15} {:<14} {:<9} {}",
        "TASK", "KIND", "TARGET", "RESULT", "STARTED"
    );
    for s in servers.by_name.values() {
        for t in task::list(&s.tasks()) {
            if site.as_ref().is_some_and(|n| t.site.as_ref() != Some(n)) {
                continue;
            }
            let target = t
                .site
                .as_ref()
                .or(t.platform.as_ref())
                .map(|n| n.to_string())
                .unwrap_or_default();
            println!(
                "{:<48} {:<15} {:<14} {:<9} {}",
                text::line(&t.id),
                t.kind.as_str(),
                text::line(&target),
                t.result.as_str(),
                text::line(&t.started)
            );
        }
    }
    Ok(EXIT_OK)
}

fn cmd_log(cli: &Cli, id: &str) -> Result<u8> {
    let inv = match load(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    let servers = servers_told(cli, &inv);
    let mut err = None;
    for s in servers.by_name.values() {
        match task::find(&s.tasks(), id) {
            Ok(t) => {
                println!(
                    "task {}\nkind: {}\nresult: {}\nstarted: {}\nfinished: {}",
                    text::line(&t.id),
                    t.kind.as_str(),
                    t.result.as_str(),
                    text::line(&t.started),
                    text::line(t.finished.as_deref().unwrap_or("-"))
                );
                if let Some(b) = &t.backup {
                    println!("backup: {}", text::line(b));
                }
                println!("steps:");
                for st in &t.steps {
                    println!(
                        "  {:<20} {:<8} {}",
                        text::line(&st.name),
                        text::line(&st.state.to_string()),
                        st.millis.map(|m| format!("{m} ms")).unwrap_or_default()
                    );
                }
                println!("log:");
                for l in &t.log {
                    println!("  {}", text::line(l));
                }
                return Ok(EXIT_OK);
            }
            Err(e) => err = Some(e),
        }
    }
    bail!(err.unwrap_or_else(|| format!("no task {id:?}")))
}

/// Refuses an apply whose database servers cannot be reached with their
/// admin login, before any task starts.
fn preflight(inv: &Inventory, servers: &Servers) -> anyhow::Result<()> {
    let used: Vec<&Name> = inv.sites.values().map(|s| &s.database).collect();
    let failed: Vec<String> = servers
        .by_name
        .values()
        .flat_map(|srv| srv.drivers().preflight(used.iter().copied()))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!(
            "{}\nNothing was changed: hoist checks every database server before it starts.",
            failed.join("\n")
        )
    }
}

fn print_outcome(t: &apply::TaskOutcome) {
    let msg = t
        .message
        .as_deref()
        .map(|m| format!(": {}", text::line(m)))
        .unwrap_or_default();
    let id =
        t.id.as_deref()
            .map(|i| format!(" [{}]", text::line(i)))
            .unwrap_or_default();
    println!("{:<8} {}{id}{msg}", t.result.as_str(), text::line(&t.what));
}

fn cmd_backup(cli: &Cli, site: &str) -> Result<u8> {
    let inv = match load_committed(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    let site = Name::new(site)?;
    let servers = servers_told(cli, &inv);
    let _locks = lock_and_recover(&servers)?;
    let t = apply::backup_now(
        &inv,
        &servers,
        &site,
        crate::gitops::head_commit(&inv.root),
        Some(interrupt_handler()?),
    )?;
    print_outcome(&t);
    write_status(&inv, &servers)?;
    if let Some(b) = find_task(&servers, t.id.as_deref()).and_then(|r| r.backup) {
        println!("backup: {}", text::line(&b));
    }
    Ok(if t.result == TaskResult::Failed {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

fn cmd_restore(cli: &Cli, site: &str, backup: Option<&str>) -> Result<u8> {
    let inv = match load_committed(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    let site = Name::new(site)?;
    // A suspended site is left alone: a restore would overwrite it. A
    // backup (allowed) only reads it.
    if let Some(s) = plan::site_suspension(&inv, &site, None, time::OffsetDateTime::now_utc()) {
        bail!(
            "site {site} is {}: restore refused; remove or end the suspension first",
            text::line(&s.describe())
        );
    }
    let servers = servers_told(cli, &inv);
    let _locks = lock_and_recover(&servers)?;
    let t = apply::restore(
        &servers,
        &site,
        &apply::health_of(&inv, &site),
        backup,
        crate::gitops::head_commit(&inv.root),
        Some(interrupt_handler()?),
    )?;
    print_outcome(&t);
    write_status(&inv, &servers)?;
    if let Some(rec) = find_task(&servers, t.id.as_deref()) {
        if let Some(from) = apply::restored_from(&rec) {
            println!("restored from: {from}");
        }
        if let Some(b) = &rec.backup {
            println!("backup of the state before: {b}");
        }
    }
    Ok(if t.result == TaskResult::Failed {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

/// The record of task `id`, on whichever server holds it.
fn find_task(servers: &Servers, id: Option<&str>) -> Option<task::TaskRecord> {
    let id = id?;
    servers
        .by_name
        .values()
        .find_map(|s| task::find(&s.tasks(), id).ok())
}

/// A size in bytes for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[allow(clippy::print_literal)] // aligned table headers read best as arguments
fn cmd_backups(cli: &Cli, site: &str) -> Result<u8> {
    let inv = match load(cli) {
        Ok(i) => i,
        Err(c) => return Ok(c),
    };
    let site = Name::new(site)?;
    let servers = servers_told(cli, &inv);
    recover_if_idle(&servers);
    let mut rows = Vec::new();
    for srv in servers.by_name.values() {
        let listed = crate::backup::inspect(srv, &site);
        if listed.is_empty() {
            continue;
        }
        // Each task record names the backup it took.
        let makers: std::collections::HashMap<String, String> = task::list(&srv.tasks())
            .into_iter()
            .filter_map(|t| Some((t.backup?, t.id)))
            .collect();
        for l in listed {
            let rel = l.info.path.strip_prefix(srv.root()).unwrap_or(&l.info.path);
            let made_by = makers.get(&rel.display().to_string()).cloned();
            rows.push((l, made_by));
        }
    }
    if rows.is_empty() {
        println!("{site} has no backups.");
        return Ok(EXIT_OK);
    }
    println!(
        "{:<56} {:>10}  {:<48} {}",
        "BACKUP (newest first)", "SIZE", "MADE BY TASK", "WHOLE"
    );
    for (l, made_by) in rows {
        println!(
            "{:<56} {:>10}  {:<48} {}",
            l.info.file_name,
            human_size(l.info.bytes),
            made_by.as_deref().unwrap_or("-"),
            match &l.problem {
                None => "yes".to_string(),
                Some(p) => format!("no: {}", task::quote(p)),
            }
        );
    }
    Ok(EXIT_OK)
}
