//! Shared test harness: a copy of the example inventory in a temporary
//! directory, a server root beside it, and the real `hoist` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The result of one `hoist` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
    /// Stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.all()))
    }
}

/// An inventory and a server root in a temporary directory.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
}

impl Fixture {
    /// A copy of `example-inventory/`.
    pub fn example() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("example-inventory"),
            &tmp.path().join("inv"),
        );
        Fixture { tmp }
    }

    /// A copy of this fixture (inventory and server), for trying many
    /// things from the same starting point.
    pub fn duplicate(&self) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(self.tmp.path(), tmp.path());
        Fixture { tmp }
    }

    /// The inventory directory.
    pub fn inv(&self) -> PathBuf {
        self.tmp.path().join("inv")
    }

    /// The local server's root.
    pub fn host(&self) -> PathBuf {
        self.tmp.path().join("host")
    }

    /// A `hoist` command on this fixture, with no colours and no inherited
    /// host root.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
        c.arg("-C")
            .arg(self.inv())
            .arg("--host-root")
            .arg(self.host());
        c.args(args);
        c.env_remove("HOIST_HOST_ROOT")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1");
        c
    }

    /// Runs `hoist` with `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("hoist runs"))
    }

    /// Runs `hoist` and asserts the exit code.
    pub fn ok(&self, args: &[&str], code: i32) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, code, "hoist {args:?}: {}", r.all());
        r
    }

    /// Writes a file of the inventory.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.inv().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// Reads a file of the inventory.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.inv().join(rel)).unwrap()
    }

    /// Changes `key: value` in a site file (the line must exist).
    pub fn set_site(&self, site: &str, key: &str, value: &str) {
        let rel = format!("sites/{site}.yaml");
        let text = self.read(&rel);
        let mut found = false;
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key}:")) {
                    found = true;
                    format!("{key}: {value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        let mut out = out.join("\n");
        if !found {
            out.push_str(&format!("\n{key}: {value}"));
        }
        out.push('\n');
        self.write(&rel, &out);
    }

    /// Applies and asserts success.
    pub fn apply(&self) -> Run {
        self.ok(&["apply", "--yes"], 0)
    }

    /// `plan --format json` with its exit code checked.
    pub fn plan_json(&self, extra: &[&str], code: i32) -> serde_json::Value {
        let mut args = vec!["plan", "--format", "json"];
        args.extend_from_slice(extra);
        self.ok(&args, code).json()
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_dir(&e.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), dest).unwrap();
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every file under `dir` with its content hash, for "nothing changed" checks.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let mut out = std::collections::BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if rel == ".hoist.lock" {
                continue; // holds the pid of the last holder
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(base, &p, out);
            } else if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else {
                let d = Sha256::digest(std::fs::read(&p).unwrap());
                out.insert(rel, format!("{d:x}"));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// The site entry of a JSON plan.
pub fn site<'a>(plan: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    plan["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no site {name} in plan"))
}

/// The verdict of one package in a site's plan entry.
pub fn verdict<'a>(site: &'a serde_json::Value, pkg: &str) -> &'a serde_json::Value {
    site["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pkg)
        .unwrap_or_else(|| panic!("no package {pkg}: {site}"))
}

/// Asserts two snapshots are equal, printing only what differs.
pub fn assert_same(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
    what: &str,
) {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} -> {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(diff.is_empty(), "{what}:\n{}", diff.join("\n"));
}
