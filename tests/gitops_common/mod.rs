//! Shared helpers of the gitops integration tests: the real `hoist` binary, real
//! git repositories (set up with the `git` command) and the example
//! inventory copied into a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const HOIST: &str = env!("CARGO_BIN_EXE_hoist");

/// Copies a directory tree (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".hoist-host" || name == ".git" {
            continue;
        }
        let t = e.file_type().unwrap();
        if t.is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else if t.is_file() {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// The example inventory, copied to `dir`.
pub fn example(dir: &Path) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("example-inventory"),
        dir,
    );
}

/// `hoist.yaml` with the given status push remote, self-heal and watch
/// timings (seconds, seconds, milliseconds).
pub fn settings(push: Option<&str>, self_heal: bool, interval: u64, debounce_ms: u64) -> String {
    format!(
        "servers:\n  local: {{ kind: local, root: .hoist-host }}\n\
         policy: {{ parallel: 2, self_heal: {self_heal} }}\n\
         status:\n  commit: true\n  push: {}\n  author: {{ name: Hoist Bot, email: bot@hoist.test }}\n\
         watch: {{ interval: {interval}, fetch_interval: 1, debounce_ms: {debounce_ms} }}\n",
        push.unwrap_or("null")
    )
}

/// Runs git in `dir`, panicking on failure; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_out(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs git in `dir` with a fixed identity and no user configuration.
pub fn git_out(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test User",
            "-c",
            "user.email=user@test",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C")
        .output()
        .unwrap()
}

/// Makes `dir` a repository with everything in it committed.
pub fn init_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "inventory"]);
}

/// The example inventory with `hoist.yaml` as given, committed in a new
/// repository at `<tmp>/inv`.
pub fn inventory_repo(tmp: &Path, hoist_yaml: &str) -> PathBuf {
    let inv = tmp.join("inv");
    example(&inv);
    std::fs::write(inv.join("hoist.yaml"), hoist_yaml).unwrap();
    init_repo(&inv);
    inv
}

/// Writes (does not commit) `sites/fresh.yaml` in `dir`: a new site on
/// shop-2-1.
pub fn write_fresh_site(dir: &Path) {
    std::fs::write(
        dir.join("sites/fresh.yaml"),
        "domain: fresh.example.com\nplatform: shop-2-1\n",
    )
    .unwrap();
}

/// A hoist command with `args` in the inventory `dir`, with no user git
/// configuration, colours or inherited host root.
pub fn hoist_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(HOIST);
    c.arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("HOIST_HOST_ROOT")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    c
}

/// Runs hoist with `args` in the inventory `dir`.
pub fn hoist(dir: &Path, args: &[&str]) -> Output {
    hoist_cmd(dir, args).output().unwrap()
}

/// Runs hoist and asserts its exit code; returns stdout.
pub fn hoist_ok(dir: &Path, args: &[&str], code: i32) -> String {
    let out = hoist(dir, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "hoist {args:?}: stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A bare remote holding the example inventory (with `hoist.yaml` as
/// given), pushed from a seed clone. Returns the remote's path.
pub fn remote_with_inventory(tmp: &Path, hoist_yaml: &str) -> PathBuf {
    remote_with_seed(tmp, |seed| {
        std::fs::write(seed.join("hoist.yaml"), hoist_yaml).unwrap()
    })
}

/// A bare remote holding the example inventory as `edit` leaves it,
/// pushed from a seed clone at `<tmp>/seed`. Returns the remote's path.
pub fn remote_with_seed(tmp: &Path, edit: impl FnOnce(&Path)) -> PathBuf {
    let remote = tmp.join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare", "-b", "main"]);
    let seed = tmp.join("seed");
    example(&seed);
    edit(&seed);
    init_repo(&seed);
    git(&seed, &["remote", "add", "origin", &url(&remote)]);
    git(&seed, &["push", "-q", "-u", "origin", "main"]);
    remote
}

/// The file:// URL of a path.
pub fn url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Clones `remote` into `dir`.
pub fn clone(remote: &Path, dir: &Path) {
    let parent = dir.parent().unwrap();
    git(
        parent,
        &["clone", "-q", &url(remote), dir.to_str().unwrap()],
    );
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every commit of `rev` in `repo` (a work tree or a bare repository):
/// (sha, author name, author email, subject).
pub fn commits(repo: &Path, rev: &str) -> Vec<(String, String, String, String)> {
    git(repo, &["log", "--format=%H%x09%an%x09%ae%x09%s", rev])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].into(), f[1].into(), f[2].into(), f[3].into())
        })
        .collect()
}

/// The paths a commit changed.
pub fn changed_paths(repo: &Path, sha: &str) -> Vec<String> {
    git(
        repo,
        &[
            "diff-tree",
            "--no-commit-id",
            "--name-only",
            "-r",
            "--root",
            sha,
        ],
    )
    .lines()
    .map(String::from)
    .collect()
}

/// Asserts that every commit by hoist in `rev` changes something, only
/// under `status/`, with the configured author and a message naming the
/// inventory commit it applied (its first parent's inventory).
pub fn assert_status_commits_sound(repo: &Path, rev: &str) -> usize {
    let all = commits(repo, rev);
    let mut n = 0;
    for (sha, name, email, subject) in &all {
        if name != "Hoist Bot" && name != "hoist" {
            continue;
        }
        n += 1;
        if name == "Hoist Bot" {
            assert_eq!(email, "bot@hoist.test");
        }
        let paths = changed_paths(repo, sha);
        assert!(!paths.is_empty(), "status commit {sha} is empty");
        for p in &paths {
            assert!(p.starts_with("status/"), "status commit {sha} touches {p}");
        }
        let short = subject
            .strip_prefix("hoist: status after applying ")
            .unwrap_or_else(|| panic!("unexpected subject {subject:?}"));
        // The named commit is an ancestor that is not a status commit.
        let named = git(repo, &["rev-parse", short]).trim().to_string();
        let author = git(repo, &["log", "-1", "--format=%an", &named]);
        assert!(!author.contains("Hoist Bot") && author.trim() != "hoist");
        let anc = git_out(repo, &["merge-base", "--is-ancestor", &named, sha]);
        assert!(anc.status.success(), "{named} is not an ancestor of {sha}");
    }
    let fsck = git_out(repo, &["fsck", "--strict", "--no-progress"]);
    assert!(
        fsck.status.success(),
        "git fsck: {}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    n
}

/// The database passwords of every site on the server at `host_root`,
/// read from their settings files.
pub fn passwords(host_root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(platforms) = std::fs::read_dir(host_root.join("platforms")) else {
        return out;
    };
    for p in platforms.flatten() {
        for s in std::fs::read_dir(p.path().join("sites"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(s.path().join("settings.yaml")).unwrap();
            for l in text.lines() {
                if let Some(v) = l.trim().strip_prefix("password:") {
                    out.push(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    out
}
