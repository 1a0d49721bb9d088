//! Fleet-scale benchmarks of hoist against the tools a user would otherwise
//! use (issue 6), measured back to back in the same run on the same data.
//!
//! ```sh
//! cargo bench --bench fleet                       # every scenario, 3 runs each
//! cargo bench --bench fleet -- --runs 5 --only offline,backup
//! cargo bench --bench fleet -- --only restore --restore-mb 50
//! ```
//!
//! Between scenarios the suite syncs and waits 31 s (see `remove_scenario`).
//!
//! Scenarios: `offline`, `live`, `big` (backup, migrate, rename of a site
//! with 500 MB of files and a 100 MB database), `parallel` (200 small
//! migrations, parallel 1 against 2), `status-commit`, `watch`, `restore`
//! (a site whose database is `--restore-mb` MB, or `HOIST_BENCH_RESTORE_MB`,
//! 500 by default, of small log rows: loading its dump against
//! `sqlite3 new.db < dump.sql`), `waves` (300 small migrations in three
//! rollout waves with `bake_s: 0` against the same in one wave),
//! `watch-memory` (the resident memory of `hoist watch` over `--passes`
//! reconcile passes, 20,000 by default, back to back),
//! `drupal-scan` (real Drupal trees, see `drupal.rs`), `live-mysql`
//! (live `plan` over 1,000 sites on one MariaDB, see `mysql.rs`),
//! `mysql-big` (backup, restore, migrate and rename of a site with a
//! `--mysql-mb` MB MariaDB database, 1024 by default, and half that in
//! files), `ssh-live` (live `plan` over 900 sites on three servers
//! reached over SSH, see `ssh.rs`), `ssh-big` (a site with 500 MB of
//! files and a 200 MB database moved from one ssh server to another).
//! The MariaDB and ssh scenarios start their own servers and need
//! `/usr/sbin` on PATH. Data is
//! generated under a temporary directory (`HOIST_BENCH_DIR` to choose
//! where) and removed at the end (`--keep` keeps it). Each figure is the
//! median of `--runs` runs (at least 5 for `parallel` and `watch`); hoist
//! and its baseline alternate run by run.
//! The result table is printed at the end, in Markdown.

mod drupal;
mod drupal_live;
mod drupal_migrate;
mod gen;
mod mysql;
mod ssh;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gen::Shape;

const HOIST: &str = env!("CARGO_BIN_EXE_hoist");

struct Args {
    runs: usize,
    only: Option<Vec<String>>,
    keep: bool,
    restore_mb: usize,
    passes: u64,
    mysql_mb: usize,
}

fn args() -> Args {
    let mut a = Args {
        runs: 3,
        only: None,
        keep: false,
        restore_mb: std::env::var("HOIST_BENCH_RESTORE_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500),
        passes: WATCH_PASSES,
        mysql_mb: 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(3).max(1),
            "--only" => a.only = it.next().map(|v| v.split(',').map(String::from).collect()),
            "--keep" => a.keep = true,
            "--restore-mb" => {
                a.restore_mb = it.next().and_then(|v| v.parse().ok()).unwrap_or(500).max(1)
            }
            "--passes" => {
                a.passes = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(WATCH_PASSES)
                    .max(100)
            }
            "--mysql-mb" => {
                a.mysql_mb = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1024)
                    .max(1)
            }
            // `cargo bench` passes `--bench`; filters are not used.
            _ => {}
        }
    }
    a
}

/// One line of the result table.
struct Row {
    scenario: String,
    hoist: String,
    baseline: String,
    ratio: String,
    target: String,
    met: bool,
}

/// What one child process took.
struct Measured {
    wall: Duration,
    /// Peak resident set of the child, in KiB.
    maxrss_kb: i64,
    code: i32,
}

/// Runs `cmd` to completion with stdout and stderr to files in `logs`,
/// measuring its wall time and (with `wait4`) its own peak memory.
fn measure(cmd: &mut Command, logs: &Path, what: &str) -> Measured {
    let out = File::create(logs.join(format!("{what}.out"))).unwrap();
    let err = File::create(logs.join(format!("{what}.err"))).unwrap();
    cmd.stdout(Stdio::from(out)).stderr(Stdio::from(err));
    let t = Instant::now();
    // Reaped by `wait4` below, which also gives its own rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut status = 0;
    // SAFETY: plain zeroed POD struct for the kernel to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `ru` outlive the call.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let wall = t.elapsed();
    assert!(rc > 0, "wait4 failed for {what}");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Measured {
        wall,
        maxrss_kb: ru.ru_maxrss,
        code,
    }
}

fn hoist(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(HOIST);
    c.arg("-C").arg(dir).args(args);
    c.env_remove("HOIST_HOST_ROOT")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    c
}

/// Runs hoist and insists on exit code `code`.
fn hoist_ok(dir: &Path, args: &[&str], logs: &Path, what: &str, code: i32) -> Measured {
    let m = measure(&mut hoist(dir, args), logs, what);
    if m.code != code {
        let err = std::fs::read_to_string(logs.join(format!("{what}.err"))).unwrap_or_default();
        let out = std::fs::read_to_string(logs.join(format!("{what}.out"))).unwrap_or_default();
        panic!(
            "hoist {args:?} exited {} (wanted {code})\n{}\n{}",
            m.code,
            tail(&out),
            tail(&err)
        );
    }
    m
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn sh(cmd: &str, logs: &Path, what: &str) -> Measured {
    let m = measure(Command::new("sh").arg("-c").arg(cmd), logs, what);
    assert_eq!(m.code, 0, "{cmd} failed: see {}", logs.display());
    m
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn fmt_runs(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[fleet] {}", msg.as_ref());
}

fn main() {
    let a = args();
    let want = |s: &str| a.only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    let base_parent = std::env::var_os("HOIST_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base_parent).unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("hoist-fleet-")
        .tempdir_in(&base_parent)
        .unwrap();
    let base = tmp.path().to_path_buf();
    say(format!(
        "data under {}; {} run(s) per scenario",
        base.display(),
        a.runs
    ));
    let mut rows: Vec<Row> = Vec::new();
    let t0 = Instant::now();
    if want("offline") || want("status-commit") {
        let dir = base.join("offline");
        let inv = offline_fleet(&dir);
        if want("offline") {
            rows.extend(offline(&inv, &dir, a.runs));
        }
        if want("status-commit") {
            rows.extend(status_commit(&inv, &dir, a.runs));
        }
        remove_scenario(&dir, a.keep);
    }
    if want("live") {
        let dir = base.join("live");
        rows.extend(live(&dir, a.runs));
        remove_scenario(&dir, a.keep);
    }
    if want("live-mysql") {
        let dir = base.join("live-mysql");
        rows.extend(mysql::live(&dir, a.runs));
        remove_scenario(&dir, a.keep);
    }
    if want("mysql-big") {
        let dir = base.join("mysql-big");
        rows.extend(mysql::big(&dir, a.runs, a.mysql_mb));
        remove_scenario(&dir, a.keep);
    }
    if want("ssh-live") {
        let dir = base.join("ssh-live");
        rows.extend(ssh::live(&dir, a.runs));
        remove_scenario(&dir, a.keep);
    }
    if want("ssh-big") {
        let dir = base.join("ssh-big");
        rows.extend(ssh::big(&dir, a.runs));
        remove_scenario(&dir, a.keep);
    }
    if want("big") {
        let dir = base.join("big");
        rows.extend(big(&dir, a.runs));
        remove_scenario(&dir, a.keep);
    }
    if want("restore") {
        let dir = base.join("restore");
        rows.extend(restore(&dir, a.runs, a.restore_mb));
        remove_scenario(&dir, a.keep);
    }
    if want("parallel") || want("watch") {
        let dir = base.join("parallel");
        let p2 = parallel_fleet(&dir);
        if want("parallel") {
            // Two short runs a pair, on a shared disk: more pairs steady
            // the median.
            rows.extend(parallel(&dir, a.runs.max(5)));
        }
        if want("watch") {
            rows.extend(watch(&p2, &dir, a.runs.max(5)));
        }
        remove_scenario(&dir, a.keep);
    }
    if want("waves") {
        let dir = base.join("waves");
        rows.extend(waves(&dir, a.runs.max(5)));
        remove_scenario(&dir, a.keep);
    }
    if want("watch-memory") {
        let dir = base.join("watch-memory");
        rows.extend(watch_memory(&dir, a.passes));
        remove_scenario(&dir, a.keep);
    }
    if want("drupal-live") {
        let dir = base.join("drupal-live");
        rows.extend(drupal_live::run(&dir, a.runs));
        remove(&dir, a.keep);
    }
    if want("drupal-migrate") {
        let dir = base.join("drupal-migrate");
        rows.extend(drupal_migrate::run(&dir));
        remove(&dir, a.keep);
    }
    if want("drupal-scan") {
        let dir = base.join("drupal");
        rows.extend(drupal::run(&dir, a.runs));
        remove(&dir, a.keep);
    }
    if a.keep {
        let kept = tmp.keep();
        say(format!("kept {}", kept.display()));
    }
    say(format!("done in {:.0} s", t0.elapsed().as_secs_f64()));
    println!("\n| scenario | hoist | baseline (same run) | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.hoist,
            r.baseline,
            r.ratio,
            r.target,
            if r.met { "yes" } else { "**no**" }
        );
    }
}

/// Deletes a scenario's data as soon as it is done (the big site alone is
/// gigabytes), unless `--keep` asked to look at it afterwards.
fn remove(dir: &Path, keep: bool) {
    if keep {
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            say(format!("cannot remove {}: {e}", dir.display()));
        }
    }
}

/// [`remove`]s a scenario's data, then lets the disk settle, so the next
/// scenario is not measured on the aftermath of this one: the deleted
/// gigabytes are flushed and discarded, and ext4 (without a journal, as on
/// the machine in BENCHMARKS.md) stops skipping the deleted inodes when it
/// makes new files, 30 s after the deletion.
fn remove_scenario(dir: &Path, keep: bool) {
    remove(dir, keep);
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(SETTLE);
}

/// How long [`remove_scenario`] waits after a scenario's data is gone.
const SETTLE: Duration = Duration::from_secs(31);

fn logs_dir(dir: &Path) -> PathBuf {
    let l = dir.join("logs");
    std::fs::create_dir_all(&l).unwrap();
    l
}

// ---------------------------------------------------------------------------
// plan --offline, 10,000 sites over 50 platforms of 200 packages

const OFFLINE: Shape = Shape {
    sites: 10_000,
    platforms: 50,
    packages: 200,
    site_modules: 18,
};

/// The offline fleet: inventory, codebases and status files of every site,
/// committed; one site in a hundred is moved up a platform in the working
/// tree, so the plan has migrations to show.
fn offline_fleet(dir: &Path) -> PathBuf {
    let inv = dir.join("inv");
    let t = Instant::now();
    gen::write_inventory(&inv, &OFFLINE, 2);
    let set = gen::status_set(&inv, &OFFLINE, 0);
    gen::write_status_plain(&inv, &set);
    for i in (0..OFFLINE.sites).step_by(100) {
        let p = i % OFFLINE.platforms;
        if p + 1 < OFFLINE.platforms {
            std::fs::write(
                inv.join("sites")
                    .join(format!("{}.yaml", gen::site_name(i))),
                gen::site_yaml(i, p + 1),
            )
            .unwrap();
        }
    }
    gen::git_init(&inv);
    say(format!(
        "offline fleet: {} sites, {} platforms x {} packages, {} files, generated in {:.1} s",
        OFFLINE.sites,
        OFFLINE.platforms,
        OFFLINE.packages,
        gen::all_files(&inv, &[".git"]).len(),
        t.elapsed().as_secs_f64()
    ));
    inv
}

fn offline(inv: &Path, dir: &Path, runs: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let files = gen::all_files(inv, &[".git"]);
    let list = dir.join("files.list");
    let mut buf = Vec::new();
    for f in &files {
        buf.extend_from_slice(f.as_os_str().as_encoded_bytes());
        buf.push(0);
    }
    std::fs::write(&list, buf).unwrap();
    let cat = format!("xargs -0 cat < {} > /dev/null", list.display());
    // Warm the page cache for both.
    hoist_ok(inv, &["plan", "--offline"], &logs, "offline-warm", 0);
    sh(&cat, &logs, "cat-warm");
    let (mut h, mut b, mut rss) = (vec![], vec![], vec![]);
    for r in 0..runs {
        let m = hoist_ok(
            inv,
            &["plan", "--offline"],
            &logs,
            &format!("offline-{r}"),
            0,
        );
        h.push(secs(m.wall));
        rss.push(m.maxrss_kb as f64 / 1024.0);
        b.push(secs(sh(&cat, &logs, &format!("cat-{r}")).wall));
    }
    let out = std::fs::read_to_string(logs.join("offline-0.out")).unwrap();
    let summary = out
        .lines()
        .rev()
        .find(|l| l.starts_with("Plan:"))
        .unwrap_or("");
    say(format!(
        "plan --offline: hoist {} s, cat {} s, peak {} MB; {summary}",
        fmt_runs(&h),
        fmt_runs(&b),
        fmt_runs(&rss)
    ));
    let (h, b, rss) = (median(&mut h), median(&mut b), median(&mut rss));
    vec![
        Row {
            scenario: format!(
                "`plan --offline`, 10,000 sites, 50 platforms x 200 packages ({} files): wall",
                files.len()
            ),
            hoist: format!("{h:.2} s"),
            baseline: format!("`cat` {b:.2} s"),
            ratio: format!("{:.1}x", h / b),
            target: "<= 1 s".into(),
            met: h <= 1.0,
        },
        Row {
            scenario: "`plan --offline`: peak memory (child's ru_maxrss)".into(),
            hoist: format!("{rss:.0} MB"),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "<= 200 MB".into(),
            met: rss <= 200.0,
        },
    ]
}

// ---------------------------------------------------------------------------
// status commit of 10,000 changed status files

fn status_commit(inv: &Path, dir: &Path, runs: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let a = dir.join("repo-hoist");
    let b = dir.join("repo-git");
    sh(
        &format!(
            "cp -a {0} {1} && cp -a {0} {2}",
            inv.display(),
            a.display(),
            b.display()
        ),
        &logs,
        "copy-repos",
    );
    let author = hoist::inventory::Author {
        name: "hoist".into(),
        email: "hoist@localhost".into(),
    };
    // Per run: hoist's write and commit, the baseline's write and add+commit.
    let (mut hw, mut hc, mut gw, mut gc) = (vec![], vec![], vec![], vec![]);
    for r in 0..runs {
        // Every site's last task changed: 10,000 changed files.
        let set = gen::status_set(inv, &OFFLINE, r as u32 + 1);
        let files = set.files();
        let msg = hoist::status::commit_message(None, &set);
        let t = Instant::now();
        let changed = hoist::status::write(&a, &files).unwrap();
        hw.push(secs(t.elapsed()));
        let t = Instant::now();
        let c = hoist::gitops::commit_status(&a, &files, &author, &msg).unwrap();
        hc.push(secs(t.elapsed()));
        assert!(c.is_some() && changed.len() >= OFFLINE.sites);
        let t = Instant::now();
        gen::write_status_plain(&b, &set);
        gw.push(secs(t.elapsed()));
        let m1 = sh(
            &format!("cd {} && git add -A", b.display()),
            &logs,
            &format!("git-add-{r}"),
        );
        let m2 = sh(
            &format!(
                "cd {} && git -c user.name=hoist -c user.email=hoist@localhost commit -q -m 'status {r}'",
                b.display()
            ),
            &logs,
            &format!("git-commit-{r}"),
        );
        gc.push(secs(m1.wall + m2.wall));
    }
    let sum = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a + b).collect::<Vec<_>>();
    let (mut ht, mut gt) = (sum(&hw, &hc), sum(&gw, &gc));
    say(format!(
        "status commit: hoist commit {} s, git add+commit {} s; writing the files first: hoist {} s, plain writes {} s",
        fmt_runs(&hc),
        fmt_runs(&gc),
        fmt_runs(&hw),
        fmt_runs(&gw)
    ));
    let (c_h, c_g) = (median(&mut hc), median(&mut gc));
    let (t_h, t_g) = (median(&mut ht), median(&mut gt));
    vec![
        Row {
            scenario: "status commit of 10,000 changed status files, from the same changed tree (library: `gitops::commit_status`)".into(),
            hoist: format!("{c_h:.2} s"),
            baseline: format!("`git add -A && git commit` {c_g:.2} s"),
            ratio: format!("{:.2}", c_h / c_g),
            target: "<= 1.0".into(),
            met: c_h <= c_g,
        },
        Row {
            scenario: "the same, with writing the 10,000 files first (`status::write`, atomic replace; the baseline writes them in place)".into(),
            hoist: format!("{t_h:.2} s"),
            baseline: format!("write + `git add -A && git commit` {t_g:.2} s"),
            ratio: format!("{:.2}", t_h / t_g),
            target: "<= 1.0".into(),
            met: t_h <= t_g,
        },
    ]
}

// ---------------------------------------------------------------------------
// live plan, 1,000 installed sites

const LIVE: Shape = Shape {
    sites: 1_000,
    platforms: 10,
    packages: 50,
    site_modules: 18,
};

fn live(dir: &Path, runs: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    gen::write_inventory(&inv, &LIVE, 2);
    gen::git_init(&inv);
    let m = hoist_ok(&inv, &["apply", "--yes"], &logs, "live-install", 0);
    say(format!(
        "live fleet: {} sites installed on {} platforms x {} packages by `hoist apply` in {:.1} s",
        LIVE.sites,
        LIVE.platforms,
        LIVE.packages,
        secs(m.wall)
    ));
    hoist_ok(&inv, &["plan"], &logs, "live-warm", 0);
    let mut h = vec![];
    for r in 0..runs {
        h.push(secs(
            hoist_ok(&inv, &["plan"], &logs, &format!("live-{r}"), 0).wall,
        ));
    }
    let out = std::fs::read_to_string(logs.join("live-0.out")).unwrap();
    say(format!(
        "live plan: {} s; {}",
        fmt_runs(&h),
        out.lines().last().unwrap_or("")
    ));
    let h = median(&mut h);
    vec![Row {
        scenario:
            "live `plan`, 1,000 installed sites (SQLite databases) on 10 platforms x 50 packages"
                .into(),
        hoist: format!("{h:.2} s"),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "<= 3 s".into(),
        met: h <= 3.0,
    }]
}

// ---------------------------------------------------------------------------
// backup, migrate and rename of a site with 500 MB of files and a 100 MB database

const BIG: Shape = Shape {
    sites: 1,
    platforms: 2,
    packages: 20,
    site_modules: 8,
};

/// Where the site lives now: its directory and database file, from the
/// settings file on the server.
fn locate(host: &Path) -> (PathBuf, PathBuf) {
    for p in std::fs::read_dir(host.join("platforms")).unwrap().flatten() {
        let sites = p.path().join("sites");
        if let Some(s) = std::fs::read_dir(&sites)
            .into_iter()
            .flatten()
            .flatten()
            .next()
        {
            let text = std::fs::read_to_string(s.path().join("settings.yaml")).unwrap();
            let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            let db = v["database"]["name"].as_str().unwrap().to_string();
            return (
                s.path(),
                host.join("databases").join(format!("{db}.sqlite")),
            );
        }
    }
    panic!("no site under {}", host.display());
}

fn du_mb(p: &Path) -> f64 {
    gen::all_files(p, &[])
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>() as f64
        / 1e6
}

fn commit_site(inv: &Path, yaml: &str, msg: &str) {
    std::fs::write(inv.join("sites").join("site-00000.yaml"), yaml).unwrap();
    gen::git(inv, &["commit", "-q", "-am", msg]);
}

fn big(dir: &Path, runs: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    let host = inv.join(".hoist-host");
    gen::write_inventory(&inv, &BIG, 2);
    gen::git_init(&inv);
    hoist_ok(&inv, &["apply", "--yes"], &logs, "big-install", 0);
    let (site_dir, db) = locate(&host);
    let t = Instant::now();
    gen::fill_big_site(&site_dir, &gen::domain(0), &db, 500, 100);
    say(format!(
        "big site: {:.0} MB of files, {:.0} MB database, made in {:.1} s",
        du_mb(&site_dir.join("files")),
        std::fs::metadata(&db).unwrap().len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    let work = dir.join("floor");
    let backups = host.join("backups").join("site-00000");
    // The floor's operations, on the site as it is now.
    let floor = |r: usize, with_restore: bool| -> (f64, Vec<f64>) {
        let (site_dir, db) = locate(&host);
        remove(&work, false);
        std::fs::create_dir_all(work.join("x")).unwrap();
        let parent = site_dir.parent().unwrap();
        let name = site_dir.file_name().unwrap().to_str().unwrap();
        let mut parts = vec![
            secs(
                sh(
                    &format!(
                        "tar -czf {} -C {} {name}",
                        work.join("site.tar.gz").display(),
                        parent.display()
                    ),
                    &logs,
                    &format!("tar-c-{r}"),
                )
                .wall,
            ),
            secs(
                sh(
                    &format!(
                        "sqlite3 {} .dump > {}",
                        db.display(),
                        work.join("dump.sql").display()
                    ),
                    &logs,
                    &format!("dump-{r}"),
                )
                .wall,
            ),
        ];
        if with_restore {
            parts.push(secs(
                sh(
                    &format!(
                        "tar -xzf {} -C {}",
                        work.join("site.tar.gz").display(),
                        work.join("x").display()
                    ),
                    &logs,
                    &format!("tar-x-{r}"),
                )
                .wall,
            ));
            parts.push(secs(
                sh(
                    &format!(
                        "sqlite3 {} < {}",
                        work.join("new.sqlite").display(),
                        work.join("dump.sql").display()
                    ),
                    &logs,
                    &format!("load-{r}"),
                )
                .wall,
            ));
        }
        remove(&work, false);
        (parts.iter().sum(), parts)
    };

    // Backup.
    let (mut h, mut b) = (vec![], vec![]);
    for r in 0..runs {
        let m = hoist_ok(
            &inv,
            &["backup", "site-00000"],
            &logs,
            &format!("backup-{r}"),
            0,
        );
        if r == 0 {
            // GNU tar reads what hoist wrote.
            sh(
                &format!("tar -tzf {}/*.tar.gz > /dev/null", backups.display()),
                &logs,
                "tar-t",
            );
        }
        remove(&backups, false);
        h.push(secs(m.wall));
        let (t, parts) = floor(r, false);
        say(format!(
            "backup run {r}: hoist {:.2} s, tar -czf + .dump {parts:.2?}",
            secs(m.wall)
        ));
        b.push(t);
    }
    say(format!(
        "backup: hoist {} s, baseline {} s",
        fmt_runs(&h),
        fmt_runs(&b)
    ));
    let (hb, bb) = (median(&mut h), median(&mut b));
    let mut rows = vec![Row {
        scenario: "backup of a site with 500 MB of files (half compressible) and a 100 MB database (`hoist backup`)".into(),
        hoist: format!("{hb:.2} s"),
        baseline: format!("`tar -czf` + `sqlite3 .dump` {bb:.2} s"),
        ratio: format!("{:.2}", hb / bb),
        target: "<= 1.0".into(),
        met: hb <= bb,
    }];

    // Migrate, back and forth between the two platforms.
    let (mut h, mut b) = (vec![], vec![]);
    for r in 0..runs {
        let (t, parts) = floor(r, true);
        b.push(t);
        commit_site(
            &inv,
            &gen::site_yaml(0, (r + 1) % 2),
            &format!("migrate {r}"),
        );
        let m = hoist_ok(&inv, &["apply", "--yes"], &logs, &format!("migrate-{r}"), 0);
        remove(&backups, false);
        h.push(secs(m.wall));
        say(format!(
            "migrate run {r}: hoist {:.2} s, floor {parts:.2?}",
            secs(m.wall)
        ));
    }
    say(format!(
        "migrate: hoist {} s, floor {} s",
        fmt_runs(&h),
        fmt_runs(&b)
    ));
    let (hm, bm) = (median(&mut h), median(&mut b));
    rows.push(Row {
        scenario: "migrate of that site to another platform (`hoist apply`)".into(),
        hoist: format!("{hm:.2} s"),
        baseline: format!("floor: `tar -czf` + `.dump` + `tar -xzf` + load {bm:.2} s"),
        ratio: format!("{:.2}", hm / bm),
        target: "<= 1.3".into(),
        met: hm <= 1.3 * bm,
    });

    // Rename on the same platform, back and forth between two domains.
    let plat = if runs % 2 == 1 { 1 } else { 0 };
    let mut h = vec![];
    for r in 0..runs {
        let yaml = gen::site_yaml(0, plat).replace(
            "domain: site-00000.example.com",
            &format!("domain: renamed-{}.example.com", r % 2),
        );
        commit_site(&inv, &yaml, &format!("rename {r}"));
        let m = hoist_ok(&inv, &["apply", "--yes"], &logs, &format!("rename-{r}"), 0);
        remove(&backups, false);
        h.push(secs(m.wall));
    }
    say(format!("rename: hoist {} s", fmt_runs(&h)));
    let hr = median(&mut h);
    rows.push(Row {
        scenario: "rename of that site on the same platform (`hoist apply`)".into(),
        hoist: format!("{hr:.2} s"),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "< 1 s".into(),
        met: hr < 1.0,
    });
    rows
}

// ---------------------------------------------------------------------------
// restore of a site with a large database of small rows (issue 11)

fn restore(dir: &Path, runs: usize, db_mb: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    let host = inv.join(".hoist-host");
    gen::write_inventory(&inv, &BIG, 2);
    gen::git_init(&inv);
    hoist_ok(&inv, &["apply", "--yes"], &logs, "restore-install", 0);
    let (_, db) = locate(&host);
    let t = Instant::now();
    gen::fill_log_rows(&db, db_mb);
    let count = |db: &Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM watchdog", [], |r| r.get(0))
            .unwrap()
    };
    let rows_made = count(&db);
    hoist_ok(&inv, &["backup", "site-00000"], &logs, "restore-backup", 0);
    let backups = host.join("backups").join("site-00000");
    let archive = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    // The very dump hoist loads, as a plain file for the baseline.
    let work = dir.join("floor");
    std::fs::create_dir_all(&work).unwrap();
    sh(
        &format!(
            "tar -xzf {} -C {} database.sql",
            backups.join(&archive).display(),
            work.display()
        ),
        &logs,
        "restore-dump",
    );
    let dump = work.join("database.sql");
    say(format!(
        "restore: {rows_made} rows, a {:.0} MB database, a {:.0} MB dump, made in {:.1} s",
        std::fs::metadata(&db).unwrap().len() as f64 / 1e6,
        std::fs::metadata(&dump).unwrap().len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    let (mut h, mut whole, mut b) = (vec![], vec![], vec![]);
    for r in 0..runs {
        let since = task_stamp();
        let m = hoist_ok(
            &inv,
            &["restore", "site-00000", &archive],
            &logs,
            &format!("restore-{r}"),
            0,
        );
        // Only the archive restored from stays (a restore backs up the
        // present state first).
        for e in std::fs::read_dir(&backups).unwrap().flatten() {
            if e.file_name() != archive.as_str() {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
        let rec = hoist::task::list(&hoist::task::TasksDir::local(&host.join("tasks")))
            .into_iter()
            .rfind(|t| t.kind == hoist::task::TaskKind::Restore && t.id.as_str() >= since.as_str())
            .expect("the restore's task record");
        let load_ms = rec
            .steps
            .iter()
            .find(|s| s.name == "extract")
            .and_then(|s| s.millis)
            .expect("the extract step's time");
        assert_eq!(count(&locate(&host).1), rows_made, "every row restored");
        let new = work.join("new.sqlite");
        let _ = std::fs::remove_file(&new);
        let base = sh(
            &format!("sqlite3 {} < {}", new.display(), dump.display()),
            &logs,
            &format!("restore-sqlite3-{r}"),
        );
        assert_eq!(count(&new), rows_made, "sqlite3 loaded every row");
        std::fs::remove_file(&new).unwrap();
        say(format!(
            "restore run {r}: hoist load {:.2} s (whole task {:.2} s), sqlite3 {:.2} s",
            load_ms as f64 / 1e3,
            secs(m.wall),
            secs(base.wall)
        ));
        h.push(load_ms as f64 / 1e3);
        whole.push(secs(m.wall));
        b.push(secs(base.wall));
    }
    say(format!(
        "restore: hoist load {} s, whole task {} s, sqlite3 {} s",
        fmt_runs(&h),
        fmt_runs(&whole),
        fmt_runs(&b)
    ));
    let (hl, hw, bl) = (median(&mut h), median(&mut whole), median(&mut b));
    vec![Row {
        scenario: format!(
            "restore of a site with a {db_mb} MB database of {rows_made} small rows: loading its dump (`hoist restore`, step `extract`: gunzip, untar, SHA-256, load; whole task with its backup first {hw:.2} s)"
        ),
        hoist: format!("{hl:.2} s"),
        baseline: format!("`sqlite3 new.db < dump.sql` {bl:.2} s"),
        ratio: format!("{:.2}", hl / bl),
        target: "<= 1.5".into(),
        met: hl <= 1.5 * bl,
    }]
}

// ---------------------------------------------------------------------------
// 200 small site migrations, parallel 1 against parallel 2

const SMALL: Shape = Shape {
    sites: 200,
    platforms: 2,
    packages: 20,
    site_modules: 8,
};

/// 200 small sites installed on platform 0, in two identical copies: `p1`
/// (parallel: 1) and `p2` (parallel: 2). Returns `p2`'s inventory.
fn parallel_fleet(dir: &Path) -> PathBuf {
    let logs = logs_dir(dir);
    let p1 = dir.join("p1");
    let mut shape = SMALL;
    shape.platforms = 2;
    gen::write_inventory(&p1, &shape, 1);
    // Every site on platform 0.
    for i in 0..shape.sites {
        std::fs::write(
            p1.join("sites").join(format!("{}.yaml", gen::site_name(i))),
            gen::site_yaml(i, 0),
        )
        .unwrap();
    }
    gen::git_init(&p1);
    let m = hoist_ok(&p1, &["apply", "--yes"], &logs, "small-install", 0);
    say(format!(
        "small fleet: {} sites installed in {:.1} s",
        shape.sites,
        secs(m.wall)
    ));
    let p2 = dir.join("p2");
    sh(
        &format!("cp -a {} {}", p1.display(), p2.display()),
        &logs,
        "copy-p2",
    );
    std::fs::write(p2.join("hoist.yaml"), gen::settings(2)).unwrap();
    gen::git(&p2, &["commit", "-q", "-am", "parallel 2"]);
    p2
}

/// Moves every site of the inventory to `platform` in one commit.
fn move_all(inv: &Path, platform: usize) {
    for i in 0..SMALL.sites {
        std::fs::write(
            inv.join("sites")
                .join(format!("{}.yaml", gen::site_name(i))),
            gen::site_yaml(i, platform),
        )
        .unwrap();
    }
    gen::git(inv, &["commit", "-q", "-am", "move"]);
}

/// From the task records of the last apply: first start to last finish.
fn task_span(inv: &Path, since: &str) -> f64 {
    let mut first = None;
    let mut last = None;
    let fmt = &time::format_description::well_known::Rfc3339;
    for t in hoist::task::list(&hoist::task::TasksDir::local(
        &inv.join(".hoist-host").join("tasks"),
    )) {
        if t.id.as_str() < since {
            continue;
        }
        let s = time::OffsetDateTime::parse(&t.started, fmt).unwrap();
        let f = time::OffsetDateTime::parse(t.finished.as_deref().unwrap(), fmt).unwrap();
        first = Some(first.map_or(s, |x: time::OffsetDateTime| x.min(s)));
        last = Some(last.map_or(f, |x: time::OffsetDateTime| x.max(f)));
    }
    (last.unwrap() - first.unwrap()).as_seconds_f64()
}

fn task_stamp() -> String {
    let n = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}",
        n.year(),
        n.month() as u8,
        n.day(),
        n.hour(),
        n.minute(),
        n.second(),
        n.millisecond()
    )
}

fn parallel(dir: &Path, runs: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let (p1, p2) = (dir.join("p1"), dir.join("p2"));
    let (mut w1, mut w2, mut s1, mut s2) = (vec![], vec![], vec![], vec![]);
    for r in 0..runs {
        let target = (r + 1) % 2;
        for (inv, w, s, name) in [(&p1, &mut w1, &mut s1, "p1"), (&p2, &mut w2, &mut s2, "p2")] {
            move_all(inv, target);
            let since = task_stamp();
            let m = hoist_ok(inv, &["apply", "--yes"], &logs, &format!("{name}-{r}"), 0);
            let out = std::fs::read_to_string(logs.join(format!("{name}-{r}.out"))).unwrap();
            assert!(
                out.contains(&format!("Apply complete: {} success", SMALL.sites)),
                "{}",
                tail(&out)
            );
            w.push(secs(m.wall));
            s.push(task_span(inv, &since));
            remove(&inv.join(".hoist-host").join("backups"), false);
        }
    }
    say(format!(
        "200 migrations: parallel 1 {} s (tasks {} s), parallel 2 {} s (tasks {} s)",
        fmt_runs(&w1),
        fmt_runs(&s1),
        fmt_runs(&w2),
        fmt_runs(&s2)
    ));
    let (w1, w2, s1, s2) = (
        median(&mut w1),
        median(&mut w2),
        median(&mut s1),
        median(&mut s2),
    );
    vec![
        Row {
            scenario: "200 small site migrations (`hoist apply`, whole command)".into(),
            hoist: format!("parallel 2: {w2:.2} s"),
            baseline: format!("parallel 1: {w1:.2} s"),
            ratio: format!("speedup {:.2}x", w1 / w2),
            target: ">= 1.6x".into(),
            met: w1 / w2 >= 1.6,
        },
        Row {
            scenario: "200 small site migrations: the tasks alone (first task start to last task end, from the task records)".into(),
            hoist: format!("parallel 2: {s2:.2} s"),
            baseline: format!("parallel 1: {s1:.2} s"),
            ratio: format!("speedup {:.2}x", s1 / s2),
            target: ">= 1.6x".into(),
            met: s1 / s2 >= 1.6,
        },
    ]
}

// ---------------------------------------------------------------------------
// 300 small site migrations in three rollout waves against one wave

const WAVES_SITES: usize = 300;

/// `rollout:` of the waves scenario: 10%, then 40% of the rest, then the
/// rest, with no bake (what is measured is the rollout's own cost: the
/// waits between waves and the health gate).
const WAVES_ROLLOUT: &str = "rollout:\n  waves:\n    - { name: canary, select: { percent: 10 } }\n    - { name: early, select: { percent: 40 } }\n    - { name: rest }\n  bake_s: 0\n  failure_budget: { max_failed: 0 }\n";

fn move_n(inv: &Path, n: usize, platform: usize) {
    for i in 0..n {
        std::fs::write(
            inv.join("sites")
                .join(format!("{}.yaml", gen::site_name(i))),
            gen::site_yaml(i, platform),
        )
        .unwrap();
    }
    gen::git(inv, &["commit", "-q", "-am", "move"]);
}

/// What the wave boundaries of the last waved apply cost, from its task
/// records (in ms, summed over the boundaries): `gap`, from the last task
/// of a wave ending to the first of the next starting (the gate, the bake
/// and the next wave's start), and `drain`, from the wave's second-to-last
/// task ending to its last (the time a worker of two waits for the other).
fn wave_boundaries(inv: &Path, since: &str) -> (f64, f64) {
    let fmt = &time::format_description::well_known::Rfc3339;
    let mut waves: Vec<(String, Vec<(time::OffsetDateTime, time::OffsetDateTime)>)> = Vec::new();
    let mut tasks = hoist::task::list(&hoist::task::TasksDir::local(
        &inv.join(".hoist-host").join("tasks"),
    ));
    tasks.retain(|t| t.id.as_str() >= since);
    tasks.sort_by(|a, b| a.started.cmp(&b.started));
    for t in tasks {
        let s = time::OffsetDateTime::parse(&t.started, fmt).unwrap();
        let f = time::OffsetDateTime::parse(t.finished.as_deref().unwrap(), fmt).unwrap();
        let w = t.wave.clone().unwrap_or_default();
        match waves.iter_mut().find(|(n, _)| *n == w) {
            Some((_, v)) => v.push((s, f)),
            None => waves.push((w, vec![(s, f)])),
        }
    }
    let (mut gap, mut drain) = (0.0, 0.0);
    for pair in waves.windows(2) {
        let mut ends: Vec<_> = pair[0].1.iter().map(|t| t.1).collect();
        ends.sort();
        let last = *ends.last().unwrap();
        let next = pair[1].1.iter().map(|t| t.0).min().unwrap();
        gap += (next - last).as_seconds_f64() * 1000.0;
        if ends.len() >= 2 {
            drain += (last - ends[ends.len() - 2]).as_seconds_f64() * 1000.0;
        }
    }
    (gap, drain)
}

/// 300 small sites on platform 0, twice: `plain` (no rollout) and `waved`
/// (three waves); each run moves both fleets to the other platform.
fn waves(dir: &Path, runs: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let (plain, waved) = (dir.join("plain"), dir.join("waved"));
    let mut shape = SMALL;
    shape.sites = WAVES_SITES;
    // Both fleets made the same way, each installed by its own apply: a
    // copy (`cp -a`) of an installed fleet lays its files out otherwise on
    // disk, and its tasks ran slower than the original's whatever the
    // waves (see BENCHMARKS.md).
    for inv in [&plain, &waved] {
        gen::write_inventory(inv, &shape, 2);
        for i in 0..shape.sites {
            std::fs::write(
                inv.join("sites")
                    .join(format!("{}.yaml", gen::site_name(i))),
                gen::site_yaml(i, 0),
            )
            .unwrap();
        }
        gen::git_init(inv);
        let name = inv.file_name().unwrap().to_string_lossy().into_owned();
        let m = hoist_ok(
            inv,
            &["apply", "--yes"],
            &logs,
            &format!("{name}-install"),
            0,
        );
        say(format!(
            "waves fleet {name}: {} sites installed in {:.1} s",
            shape.sites,
            secs(m.wall)
        ));
    }
    std::fs::write(
        waved.join("hoist.yaml"),
        format!("{}{WAVES_ROLLOUT}", gen::settings(2)),
    )
    .unwrap();
    gen::git(&waved, &["commit", "-q", "-am", "three waves"]);
    let (mut wp, mut ww) = (vec![], vec![]);
    let (mut sp, mut sw, mut gaps, mut drains) = (vec![], vec![], vec![], vec![]);
    for r in 0..runs {
        let target = (r + 1) % 2;
        // Each side goes first every other run: a run is slowed by the
        // files the one before it deleted (see BENCHMARKS.md, Machine).
        let mut pair = [(&plain, &mut wp, "plain"), (&waved, &mut ww, "waved")];
        if r % 2 == 1 {
            pair.reverse();
        }
        for (inv, w, name) in pair {
            move_n(inv, WAVES_SITES, target);
            let since = task_stamp();
            let m = hoist_ok(inv, &["apply", "--yes"], &logs, &format!("{name}-{r}"), 0);
            if name == "waved" {
                sw.push(task_span(inv, &since));
                let (g, d) = wave_boundaries(inv, &since);
                gaps.push(g);
                drains.push(d);
            } else {
                sp.push(task_span(inv, &since));
            }
            let out = std::fs::read_to_string(logs.join(format!("{name}-{r}.out"))).unwrap();
            assert!(
                out.contains(&format!("Apply complete: {WAVES_SITES} success")),
                "{}",
                tail(&out)
            );
            w.push(secs(m.wall));
            remove(&inv.join(".hoist-host").join("backups"), false);
        }
    }
    say(format!(
        "300 migrations: one wave {} s, three waves {} s",
        fmt_runs(&wp),
        fmt_runs(&ww)
    ));
    say(format!(
        "task phase: one wave {} s, three waves {} s; wave boundaries (2 a run): gap {} ms, drain {} ms",
        fmt_runs(&sp),
        fmt_runs(&sw),
        fmt_runs(&gaps),
        fmt_runs(&drains)
    ));
    let (p, w) = (median(&mut wp), median(&mut ww));
    let (tp, tw) = (median(&mut sp), median(&mut sw));
    let (g, d) = (median(&mut gaps), median(&mut drains));
    vec![
        rollout_overhead_row(
            "300 small site migrations in 3 rollout waves, `bake_s: 0` (`hoist apply`, whole command)",
            format!("3 waves: {w:.2} s"),
            format!("no rollout: {p:.2} s"),
            w / p - 1.0,
        ),
        rollout_overhead_row(
            "the same, task phase only (first task start to last task end, from the task records)",
            format!("3 waves: {tw:.2} s"),
            format!("no rollout: {tp:.2} s"),
            tw / tp - 1.0,
        ),
        rollout_overhead_row(
            "what the 2 wave boundaries of a run cost, from the task records: the gate and the next wave's start (gap), a worker waiting for the wave's last task (drain)",
            format!("gap {g:.1} ms, drain {d:.1} ms"),
            format!("no rollout: {p:.2} s in all"),
            (g + d) / (p * 1000.0),
        ),
    ]
}

/// A row of the rollout scenario: what rollout waves add (`extra`, a
/// share of the run without them: 0.05 is +5%), whose target is < +10%.
fn rollout_overhead_row(scenario: &str, hoist: String, baseline: String, extra: f64) -> Row {
    Row {
        scenario: scenario.into(),
        hoist,
        baseline,
        ratio: format!("{:+.1}%", extra * 100.0),
        target: "< +10%".into(),
        met: extra < 0.10,
    }
}

// ---------------------------------------------------------------------------
// watch's memory over many reconcile passes

/// Passes of the `watch-memory` scenario by default: about a quarter of a
/// day's at the default 1 s interval, run back to back.
const WATCH_PASSES: u64 = 20_000;

/// Sites of the `watch-memory` fleet: each pass observes them all.
const WATCH_MEMORY_SITES: usize = 20;

/// The resident set of process `pid` now, in KiB (`VmRSS`).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `hoist watch --interval-ms 1 --max-cycles N` on 20 installed sites,
/// its resident memory sampled every 200 ms (`logs/watch-memory-rss.csv`:
/// seconds, KiB). Flat: what it holds in the last tenth of the run is what
/// it held in the second (after allocator pools and caches filled), within
/// 5%, comparing each tenth's median.
fn watch_memory(dir: &Path, passes: u64) -> Vec<Row> {
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    let mut shape = SMALL;
    shape.sites = WATCH_MEMORY_SITES;
    gen::write_inventory(&inv, &shape, 2);
    for i in 0..shape.sites {
        std::fs::write(
            inv.join("sites")
                .join(format!("{}.yaml", gen::site_name(i))),
            gen::site_yaml(i, 0),
        )
        .unwrap();
    }
    gen::git_init(&inv);
    hoist_ok(&inv, &["apply", "--yes"], &logs, "watch-memory-install", 0);
    let max = passes.to_string();
    let mut child = hoist(&inv, &["watch", "--interval-ms", "1", "--max-cycles", &max])
        // Warnings only: a log line per pass would measure the log, not
        // the daemon.
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            File::create(logs.join("watch-memory.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let t = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        // Zero until the child has exec'd hoist.
        if let Some(kb) = rss_kb(child.id()).filter(|kb| *kb > 0) {
            samples.push((t.elapsed().as_secs_f64(), kb));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let wall = t.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "watch exited {status}: see {}",
        logs.display()
    );
    assert!(samples.len() >= 20, "watch ended too soon to sample");
    std::fs::write(
        logs.join("watch-memory-rss.csv"),
        samples
            .iter()
            .map(|(s, kb)| format!("{s:.1},{kb}\n"))
            .collect::<String>(),
    )
    .unwrap();
    // The median of each tenth of the run (a single sample moves with
    // whatever the pass was doing when it was taken).
    let tenths: Vec<f64> = (0..10)
        .map(|k| {
            let n = samples.len();
            let mut w: Vec<f64> = samples[n * k / 10..n * (k + 1) / 10]
                .iter()
                .map(|s| s.1 as f64 / 1024.0)
                .collect();
            median(&mut w)
        })
        .collect();
    let (tenth, half, end) = (tenths[1], tenths[5], tenths[9]);
    let peak = samples.iter().map(|s| s.1).max().unwrap() as f64 / 1024.0;
    let growth = (end / tenth - 1.0) * 100.0;
    say(format!(
        "watch: {passes} passes in {wall:.0} s ({:.1} ms a pass); RSS medians by tenth of the run {} MB, peak {peak:.1} MB",
        wall * 1000.0 / passes as f64,
        tenths.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(" "),
    ));
    vec![Row {
        scenario: format!(
            "`watch` resident memory over {passes} reconcile passes ({WATCH_MEMORY_SITES} sites, `--interval-ms 1`, {:.1} ms a pass)",
            wall * 1000.0 / passes as f64
        ),
        hoist: format!("RSS (median of each tenth of the run) {tenth:.1} MB in the second tenth, {half:.1} MB in the sixth, {end:.1} MB in the last (peak {peak:.1} MB)"),
        baseline: "-".into(),
        ratio: format!("{growth:+.1}% from the second tenth to the last"),
        target: "flat (< +5%)".into(),
        met: growth < 5.0,
    }]
}

// ---------------------------------------------------------------------------
// watch: a commit landing in the watched tree to the first task starting

fn watch(inv: &Path, dir: &Path, runs: usize) -> Vec<Row> {
    let logs = logs_dir(dir);
    let err = logs.join("watch.err");
    let mut child = hoist(inv, &["watch", "--log-format", "json"])
        .env("RUST_LOG", "hoist=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let count = |pat: &str| {
        std::fs::read_to_string(&err)
            .unwrap_or_default()
            .matches(pat)
            .count()
    };
    let wait_for = |what: &str, pred: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !pred() {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "watch: timed out waiting for {what}; see {}",
                err.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("the first pass", &|| {
        count("nothing to do") + count("status committed") >= 1
    });
    let tasks = inv.join(".hoist-host").join("tasks");
    let fmt = &time::format_description::well_known::Rfc3339;
    let mut lat = vec![];
    for r in 0..runs {
        let site = gen::site_name(r * 7 % SMALL.sites);
        let path = inv.join("sites").join(format!("{site}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let before: std::collections::BTreeSet<_> = std::fs::read_dir(&tasks)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let commits = count("status committed");
        // The commit: an alias added, so the site is re-verified.
        let t0 = time::OffsetDateTime::now_utc();
        std::fs::write(
            &path,
            text.replace("aliases: [", &format!("aliases: [alias-{r}.example.org, ")),
        )
        .unwrap();
        gen::git(inv, &["commit", "-q", "-am", &format!("alias for {site}")]);
        wait_for("the verify task", &|| {
            std::fs::read_dir(&tasks).unwrap().flatten().any(|e| {
                !before.contains(&e.file_name()) && e.file_name().to_string_lossy().contains(&site)
            })
        });
        let rec = hoist::task::list(&hoist::task::TasksDir::local(&tasks))
            .into_iter()
            .find(|t| {
                t.site.as_ref().map(|s| s.as_str()) == Some(site.as_str())
                    && !before.contains(std::ffi::OsStr::new(&format!("{}.json", t.id)))
            })
            .unwrap();
        let started = time::OffsetDateTime::parse(&rec.started, fmt).unwrap();
        lat.push((started - t0).as_seconds_f64());
        wait_for("the pass to end", &|| count("status committed") > commits);
        std::thread::sleep(Duration::from_millis(300));
    }
    // SAFETY: signals the daemon this benchmark started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    say(format!(
        "watch: commit to first task start {} s",
        fmt_runs(&lat)
    ));
    let l = median(&mut lat);
    vec![Row {
        scenario: format!("`watch`: a commit in the watched tree to the first task starting (200 sites, debounce 500 ms, median of {runs})"),
        hoist: format!("{l:.2} s"),
        baseline: "-".into(),
        ratio: "-".into(),
        target: "<= 1 s".into(),
        met: l <= 1.0,
    }]
}
