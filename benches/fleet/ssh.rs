//! Scenarios on servers reached over SSH (issue 14), each server a real
//! sshd on loopback started by the tests' harness (`tests/services`,
//! `Sshd`), its databases on a real MariaDB: `ssh-live`, a live `plan`
//! over 900 sites on three ssh servers; `ssh-big`, a site with 500 MB of
//! files and a 200 MB database moved from one ssh server to another.
//!
//! The "remote" hosts are this machine, so a server's root is a directory
//! under the bench dir that the scenario can also look at directly.

use std::path::{Path, PathBuf};

use super::mysql::{self, services::Sshd, MariaDb};
use super::{fmt_runs, gen, hoist_ok, logs_dir, median, say, secs, sh, tail, Row};
use gen::Shape;

/// `s` quoted for `sh -c` (paths of the sshd harness have a space).
fn q(s: impl AsRef<std::ffi::OsStr>) -> String {
    format!("'{}'", s.as_ref().to_string_lossy().replace('\'', r"'\''"))
}

/// An `ssh` client command line to `s`, with its own connection (no
/// multiplexing), checked against its known_hosts only, never prompting;
/// `-n` (stdin from /dev/null) unless `stdin`.
fn ssh_to(s: &Sshd, stdin: bool) -> String {
    format!(
        "ssh{} -o BatchMode=yes -o {} -o GlobalKnownHostsFile=/dev/null \
         -o ControlPath=none -i {} -p {} {}@{}",
        if stdin { "" } else { " -n" },
        // ssh splits this option's value at spaces unless it is quoted.
        q(format!(
            "UserKnownHostsFile=\"{}\"",
            s.known_hosts.display()
        )),
        q(&s.identity_file),
        s.port,
        s.user,
        s.host
    )
}

/// One `kind: ssh` server of a `hoist.yaml` (under `servers:`).
fn server_yaml(name: &str, s: &Sshd, root: &Path) -> String {
    format!(
        "  {name}:\n    kind: ssh\n    host: {}\n    port: {}\n    user: {}\n    \
         root: {}\n    known_hosts: {}\n    identity_file: {}\n",
        s.host,
        s.port,
        s.user,
        root.display(),
        s.known_hosts.display(),
        s.identity_file.display()
    )
}

/// `hoist.yaml` for a fleet on the ssh servers `servers` (name, sshd,
/// root), its databases on `db`, web kind `file` (the default: vhosts
/// under each server's root), no status commit.
fn settings(servers: &[(String, Sshd, PathBuf)], db: &MariaDb, parallel: usize) -> String {
    let mut y = String::from("servers:\n");
    for (name, s, root) in servers {
        y.push_str(&server_yaml(name, s, root));
    }
    y.push_str("databases:\n");
    y.push_str(&mysql::services::mysql_database_yaml("maria", db));
    y.push_str(&format!(
        "defaults: {{ server: {}, database: maria }}\n\
         policy: {{ parallel: {parallel}, keep_backups: 2 }}\n\
         status: {{ commit: false }}\n",
        servers[0].0
    ));
    y
}

/// Starts an sshd for each of `names` and makes a root directory for
/// each under `dir`, or says why the scenario is skipped.
fn start_servers(dir: &Path, names: &[&str]) -> Option<Vec<(String, Sshd, PathBuf)>> {
    // Sessions get an empty home: the account is this machine's root,
    // whose ~/.bashrc (which bash runs for every command sshd starts)
    // may do anything, and here runs `pyenv init` (about 100 processes,
    // 110 ms a session). That is the test machine's, not what hoist
    // costs: a server's hoist account has a shell that starts at once.
    // The baselines' sessions get the same.
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut out = Vec::new();
    for name in names {
        let Some(s) = Sshd::start_with(&format!("SetEnv HOME=\"{}\"", home.display())) else {
            say("OpenSSH's sshd is not installed (or not on PATH: add /usr/sbin): the ssh scenarios are skipped");
            return None;
        };
        let root = dir.join(format!("root-{name}"));
        std::fs::create_dir_all(&root).unwrap();
        out.push((name.to_string(), s, root));
    }
    Some(out)
}

/// An inventory of `shape` on MariaDB `db` (see [`mysql::write_inventory`])
/// whose platform `p` is on ssh server `servers[server_of(p)]`, committed.
fn write_inventory(
    inv: &Path,
    shape: &Shape,
    db: &MariaDb,
    servers: &[(String, Sshd, PathBuf)],
    server_of: impl Fn(usize) -> usize,
    parallel: usize,
) {
    mysql::write_inventory(inv, shape, db, parallel);
    std::fs::write(inv.join("hoist.yaml"), settings(servers, db, parallel)).unwrap();
    for p in 0..shape.platforms {
        let name = gen::platform_name(p);
        std::fs::write(
            inv.join("platforms").join(format!("{name}.yaml")),
            format!(
                "source: {{ path: codebases/{name} }}\nserver: {}\n",
                servers[server_of(p)].0
            ),
        )
        .unwrap();
    }
    gen::git(inv, &["commit", "-q", "-am", "platforms on ssh servers"]);
}

// ---------------------------------------------------------------------------
// ssh-live: a live plan over 900 sites on three ssh servers

/// 900 sites over 3 platforms: the generator puts site `i` on platform
/// `i % 3`, so each platform, and so each server, has 300.
const LIVE: Shape = Shape {
    sites: 900,
    platforms: 3,
    packages: 2,
    site_modules: 0,
};

const LIVE_SERVERS: [&str; 3] = ["web0", "web1", "web2"];

/// Installs 900 sites on three ssh servers (300 each, one platform each)
/// and times a live `hoist plan` against reading the same servers' files
/// with plain `ssh`: one connection per site `cat`ing its settings file,
/// site after site; and one connection per server `cat`ing all its sites'
/// settings files and vhosts, server after server.
pub fn live(dir: &Path, runs: usize) -> Vec<Row> {
    let Some(servers) = start_servers(dir, &LIVE_SERVERS) else {
        return vec![];
    };
    // Unsynced: only the install writes to it, and only the plan (which
    // reads) is measured.
    let Some(db) = MariaDb::start_unsynced() else {
        say("MariaDB is not installed: the ssh scenarios are skipped");
        return vec![];
    };
    let logs = logs_dir(dir);
    let inv = dir.join("inv");
    write_inventory(&inv, &LIVE, &db, &servers, |p| p, 4);
    let m = hoist_ok(&inv, &["apply", "--yes"], &logs, "ssh-live-install", 0);
    let out = std::fs::read_to_string(logs.join("ssh-live-install.out")).unwrap();
    assert!(
        // A build task per platform, an install per site.
        out.contains(&format!(
            "Apply complete: {} success",
            LIVE.platforms + LIVE.sites
        )),
        "{}",
        tail(&out)
    );
    let install = secs(m.wall);
    say(format!(
        "ssh-live fleet: {} sites on 3 ssh servers installed by `hoist apply` (parallel 4) in {install:.1} s",
        LIVE.sites
    ));

    // Every site's settings file, by server: what the baselines read.
    let mut per_site = String::new();
    let mut per_server = Vec::new();
    for (p, (_, s, root)) in servers.iter().enumerate() {
        let sites = root
            .join("platforms")
            .join(gen::platform_name(p))
            .join("sites");
        let mut n = 0;
        for e in std::fs::read_dir(&sites).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            per_site.push_str(&format!(
                "{} cat {} >/dev/null || exit 1\n",
                ssh_to(s, false),
                q(q(e.path().join("settings.yaml")))
            ));
            n += 1;
        }
        assert_eq!(n, LIVE.sites / 3, "300 sites on {}", root.display());
        // The remote shell expands the globs: one connection, one `cat`.
        per_server.push(format!(
            "{} {} >/dev/null",
            ssh_to(s, false),
            q(format!(
                "cd {} && cat platforms/*/sites/*/settings.yaml vhosts/*.conf",
                q(root)
            ))
        ));
    }
    let site_script = dir.join("per-site.sh");
    std::fs::write(&site_script, format!("set -e\n{per_site}")).unwrap();
    let site_cmd = format!("sh {}", q(&site_script));
    let server_cmd = per_server.join(" && ");

    hoist_ok(&inv, &["plan"], &logs, "ssh-live-warm", 0);
    sh(&server_cmd, &logs, "ssh-live-per-server-warm");
    let (mut h, mut bs, mut bp) = (vec![], vec![], vec![]);
    for r in 0..runs {
        // Each side goes first every other run.
        let mut order = [0, 1, 2];
        if r % 2 == 1 {
            order.reverse();
        }
        for k in order {
            match k {
                0 => h.push(secs(
                    hoist_ok(&inv, &["plan"], &logs, &format!("ssh-live-{r}"), 0).wall,
                )),
                1 => bs.push(secs(
                    sh(&server_cmd, &logs, &format!("ssh-live-per-server-{r}")).wall,
                )),
                _ => bp.push(secs(
                    sh(&site_cmd, &logs, &format!("ssh-live-per-site-{r}")).wall,
                )),
            }
        }
    }
    let out = std::fs::read_to_string(logs.join("ssh-live-0.out")).unwrap();
    say(format!(
        "ssh-live plan: {} s; one ssh per server: {} s; one ssh per site: {} s; {}",
        fmt_runs(&h),
        fmt_runs(&bs),
        fmt_runs(&bp),
        out.lines().last().unwrap_or("")
    ));
    let (hr, bsr, bpr) = (fmt_runs(&h), fmt_runs(&bs), fmt_runs(&bp));
    let (h, bs, bp) = (median(&mut h), median(&mut bs), median(&mut bp));
    vec![Row {
            scenario: format!(
                "live `plan`, 900 installed sites on 3 ssh servers, 300 each (web kind `file`), databases on one MariaDB (installed by `hoist apply`, parallel 4, in {install:.0} s)"
            ),
            hoist: format!("{h:.2} s [{hr}]"),
            baseline: format!(
                "one `ssh HOST cat` per site settings file, in sequence: {bp:.2} s [{bpr}]; \
                 one `ssh HOST 'cat */settings.yaml vhosts/*'` per server, in sequence: {bs:.2} s [{bsr}]"
            ),
            ratio: format!("{:.2}x per site, {:.2}x per server", h / bp, h / bs),
            target: "<= 3 s".into(),
            met: h <= 3.0,
        }]
}

// ---------------------------------------------------------------------------
// ssh-big: a site with 500 MB of files and a 200 MB database moved between
// two ssh servers

const SITE: &str = "site-00000";

/// MB of the site's database.
const BIG_DB_MB: usize = 200;

/// The site's files: a few big ones and many smaller ones (count, bytes
/// each), 500 MB in all: what a site's uploads look like, and what
/// makes a file-by-file copy pay per file.
const BIG_FILES: [(usize, usize); 3] = [(4, 64 << 20), (200, 1 << 20), (440, 100 << 10)];

/// Writes [`BIG_FILES`] into `dir` (half prose, half incompressible
/// bytes, in 16 subdirectories). Returns the bytes written.
fn fill_files(dir: &Path) -> u64 {
    let mut rng = gen::Rng::new(7);
    let mut total = 0u64;
    let mut i = 0;
    for (count, size) in BIG_FILES {
        for _ in 0..count {
            let sub = dir.join(format!("d{:02}", i % 16));
            std::fs::create_dir_all(&sub).unwrap();
            let body = if i % 2 == 0 {
                rng.text(size)
            } else {
                rng.bytes(size)
            };
            std::fs::write(sub.join(format!("f{i:05}.bin")), body).unwrap();
            total += size as u64;
            i += 1;
        }
    }
    total
}

/// Where the site lives now: the index of its server, its directory and
/// its database.
fn locate(roots: &[PathBuf]) -> (usize, PathBuf, String) {
    for (k, root) in roots.iter().enumerate() {
        if let Some((dir, name)) = mysql::find_site(root) {
            return (k, dir, name);
        }
    }
    panic!("the site is on no server");
}

/// A site of 500 MB of files and a 200 MB database on ssh server A, moved
/// to B (and, run after run, back: up a platform each time, the platforms
/// alternating between the servers, so every run moves the same site the
/// same way) by `hoist apply`, against the floor in the same run: `ssh A
/// tar -c | ssh B tar -x` of its directory, and `mariadb-dump | mariadb`
/// of its database into a new one.
pub fn big(dir: &Path, runs: usize) -> Vec<Row> {
    let Some(servers) = start_servers(dir, &["web-a", "web-b"]) else {
        return vec![];
    };
    let Some(db) = mysql::start() else {
        return vec![];
    };
    let logs = logs_dir(dir);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let inv = dir.join("inv");
    // Platform p on A when p is even, on B when odd; run r moves the site
    // from platform r to r + 1. The generator puts it on platform 0.
    let shape = Shape {
        sites: 1,
        platforms: runs + 1,
        packages: 2,
        site_modules: 0,
    };
    write_inventory(&inv, &shape, &db, &servers, |p| p % 2, 2);
    hoist_ok(&inv, &["apply", "--yes"], &logs, "ssh-big-install", 0);
    let roots: Vec<PathBuf> = servers.iter().map(|s| s.2.clone()).collect();
    let (k, site_dir, name) = locate(&roots);
    assert_eq!(k, 0, "installed on A");
    mysql::fill_db(&db, &name, BIG_DB_MB, &work, &logs);
    let bytes = fill_files(&site_dir.join("files"));
    let files: usize = BIG_FILES.iter().map(|f| f.0).sum();
    say(format!(
        "ssh-big: {SITE} with {BIG_DB_MB} MB of rows in {name} and {:.0} MB in {files} files",
        bytes as f64 / 1e6
    ));
    let cnf = q(&db.admin_defaults_file);
    let (client, dump) = (q(&db.client), q(&db.dump));

    let (mut h, mut deploy, mut backup, mut down) = (vec![], vec![], vec![], vec![]);
    // The floor, and its files part alone.
    let (mut fl, mut ff) = (vec![], vec![]);
    for r in 0..runs {
        let (from, _, _) = locate(&roots);
        let to = 1 - from;
        assert_eq!(
            from,
            r % 2,
            "run {r} moves the site from the server it is on"
        );
        // The floor: the directory streamed from the server the site is on
        // to the other by two ssh clients, the database dumped into a new
        // one on the same server. When it runs after hoist's move, that
        // is the other way, from the moved copy: the same work.
        let time_floor = |fl: &mut Vec<f64>, ff: &mut Vec<f64>| {
            let (from, site_dir, name) = locate(&roots);
            let to = 1 - from;
            let copy_dir = roots[to].join("floor-copy");
            let files = format!(
                "{src} tar -c -C {site} . | {dst} {mk}",
                src = ssh_to(&servers[from].1, false),
                dst = ssh_to(&servers[to].1, true),
                site = q(q(&site_dir)),
                mk = q(format!("mkdir {d} && tar -x -C {d}", d = q(&copy_dir))),
            );
            let database = format!(
                "echo 'CREATE DATABASE floor_copy' | {client} --defaults-extra-file={cnf} \
                 && {dump} --defaults-extra-file={cnf} --single-transaction {name} \
                 | {client} --defaults-extra-file={cnf} floor_copy"
            );
            let clean = format!(
                "rm -rf {} && echo 'DROP DATABASE IF EXISTS floor_copy' | {client} --defaults-extra-file={cnf}",
                q(&copy_dir)
            );
            // The floor's two parts one after the other, as hoist's deploy
            // step does them; timed apart to show where its time goes.
            let f = secs(sh(&files, &logs, &format!("ssh-big-floor-files-{r}")).wall);
            let d = secs(sh(&database, &logs, &format!("ssh-big-floor-db-{r}")).wall);
            sh(&clean, &logs, &format!("ssh-big-floor-clean-{r}"));
            fl.push(f + d);
            ff.push(f);
        };
        // Each side goes first every other run.
        if r % 2 == 0 {
            time_floor(&mut fl, &mut ff);
        }
        mysql::commit_site(&inv, &gen::site_yaml(0, r + 1), "move");
        let m = hoist_ok(&inv, &["apply", "--yes"], &logs, &format!("ssh-big-{r}"), 0);
        let out = std::fs::read_to_string(logs.join(format!("ssh-big-{r}.out"))).unwrap();
        assert!(out.contains("migrate"), "{}", tail(&out));
        // The task's record stays on the server the site left.
        let rec = mysql::last_task(&roots[from], hoist::task::TaskKind::Migrate);
        h.push(secs(m.wall));
        deploy.push(mysql::step_ms(&rec, "deploy") as f64 / 1000.0);
        backup.push(mysql::step_ms(&rec, "backup") as f64 / 1000.0);
        down.push(mysql::span_ms(&rec, "maintenance-on", "maintenance-off") as f64 / 1000.0);
        if r % 2 == 1 {
            time_floor(&mut fl, &mut ff);
        }
        let (now, _, _) = locate(&roots);
        assert_eq!(now, to, "run {r} moved the site");
    }
    say(format!(
        "ssh-big migrate: whole apply {} s (deploy step {} s, backup step {} s, 503 for {} s); floor {} s (its files part {} s)",
        fmt_runs(&h),
        fmt_runs(&deploy),
        fmt_runs(&backup),
        fmt_runs(&down),
        fmt_runs(&fl),
        fmt_runs(&ff)
    ));
    let (hr, dr, flr) = (fmt_runs(&h), fmt_runs(&deploy), fmt_runs(&fl));
    let (h, d, b, w, f, fm) = (
        median(&mut h),
        median(&mut deploy),
        median(&mut backup),
        median(&mut down),
        median(&mut fl),
        median(&mut ff),
    );
    let floor_text = format!(
        "`ssh A tar -c | ssh B tar -x` ({fm:.2} s) + `mariadb-dump | mariadb`: {f:.2} s [{flr}]"
    );
    vec![
        Row {
            scenario: format!(
                "migrate of a site with {:.0} MB in {files} files and a {BIG_DB_MB} MB database from one ssh server to another (`hoist apply`, whole command; its backup step {b:.2} s, 503 for {w:.2} s)",
                bytes as f64 / 1e6
            ),
            hoist: format!("{h:.2} s [{hr}]"),
            baseline: floor_text.clone(),
            ratio: format!("{:.2}", h / f),
            target: "<= 1.3".into(),
            met: h / f <= 1.3,
        },
        Row {
            scenario: "the same, step `deploy` only (the database copied, the files streamed A to B), from the task record".into(),
            hoist: format!("{d:.2} s [{dr}]"),
            baseline: floor_text,
            ratio: format!("{:.2}", d / f),
            target: "<= 1.3".into(),
            met: d / f <= 1.3,
        },
    ]
}
