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

    /// Runs `hoist` with `args` and failpoint `point` armed (`step:how`;
    /// the binary must be built with the `failpoints` feature).
    #[allow(dead_code)] // not every test file uses failpoints
    pub fn with_failpoint(&self, args: &[&str], point: &str) -> std::process::Output {
        self.cmd(args)
            .env("HOIST_FAILPOINT", point)
            .output()
            .expect("hoist runs")
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

/// Runs git in `dir` with a fixed identity, asserting success; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A site's database name and password, from its settings file.
pub fn settings_of(f: &Fixture, platform: &str, domain: &str) -> (String, String) {
    let text = std::fs::read_to_string(
        f.host()
            .join(format!("platforms/{platform}/sites/{domain}/settings.yaml")),
    )
    .unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(k))
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string()
    };
    (get("name:"), get("password:"))
}

fn show(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        other => format!("{other:?}"),
    }
}

/// A value as its exact bytes in hex, with its type.
fn hex_value(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef as V;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match v {
        V::Null => "null".to_string(),
        V::Integer(v) => format!("i:{}", hex(&v.to_be_bytes())),
        V::Real(v) => format!("r:{}", hex(&v.to_bits().to_be_bytes())),
        V::Text(b) => format!("t:{}", hex(b)),
        V::Blob(b) => format!("b:{}", hex(b)),
    }
}

/// Every row of every table of an open database, sorted: what "the same
/// database" means.
pub fn rows(c: &rusqlite::Connection) -> std::collections::BTreeMap<String, Vec<String>> {
    rows_by(c, show)
}

/// [`rows`] with every value as its exact bytes in hex: what
/// "byte-identical rows" means.
pub fn rows_hex(c: &rusqlite::Connection) -> std::collections::BTreeMap<String, Vec<String>> {
    rows_by(c, hex_value)
}

/// The `maintenance_mode` variable of database `db` on the fixture's server.
pub fn maintenance_of(f: &Fixture, db: &str) -> String {
    rusqlite::Connection::open(f.host().join(format!("databases/{db}.sqlite")))
        .unwrap()
        .query_row(
            "SELECT value FROM variables WHERE name='maintenance_mode'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn rows_by(
    c: &rusqlite::Connection,
    show: fn(rusqlite::types::ValueRef<'_>) -> String,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for t in tables {
        let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut v: Vec<String> = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| show(r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v.sort();
        out.insert(t, v);
    }
    out
}

/// Files and database rows of a server.
pub type State = (
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeMap<String, Vec<String>>,
);

/// Everything on the server that an undone task must leave as it was:
/// every file (task records, backups, the trash and the lock aside) and every
/// row of every database (SQLite files change bytes when a row is set and
/// reset, so databases are compared by rows).
pub fn server_state(f: &Fixture) -> State {
    let files = snapshot(&f.host())
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with("tasks/")
                && !k.starts_with("backups/")
                && !k.ends_with(".sqlite")
                && k != "trash/"
        })
        .collect();
    let mut dbs = std::collections::BTreeMap::new();
    // No `databases/` when the sites' databases live on a MySQL server.
    for e in std::fs::read_dir(f.host().join("databases"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(db) = name.strip_suffix(".sqlite") {
            for (t, r) in rows(&rusqlite::Connection::open(e.path()).unwrap()) {
                dbs.insert(format!("{db}.{t}"), r);
            }
        }
    }
    (files, dbs)
}

/// What differs between two server states, in words.
pub fn state_diff(a: &State, b: &State) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = a.0.keys().chain(b.0.keys()).collect();
    for k in keys {
        if a.0.get(k) != b.0.get(k) {
            out.push(format!(
                "file {k}: {} -> {}",
                a.0.contains_key(k),
                b.0.contains_key(k)
            ));
        }
    }
    let keys: std::collections::BTreeSet<&String> = a.1.keys().chain(b.1.keys()).collect();
    for k in keys {
        if a.1.get(k) != b.1.get(k) {
            out.push(format!("table {k} differs"));
        }
    }
    out
}

/// Every task record on the fixture's server, oldest first.
pub fn tasks(f: &Fixture) -> Vec<serde_json::Value> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(f.host().join("tasks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    // Through hoist's own reader: a running task's file is a journal of
    // records, the last whole one counting.
    v.iter()
        .map(|p| {
            let rec = hoist::task::parse(&std::fs::read(p).unwrap())
                .unwrap_or_else(|| panic!("{} holds no task record", p.display()));
            serde_json::to_value(rec).unwrap()
        })
        .collect()
}

/// The newest task record.
pub fn last_task(f: &Fixture) -> serde_json::Value {
    tasks(f).pop().expect("a task was recorded")
}

/// The named steps of a migrate, rename or migrate+rename, in order, up to
/// its point of no return; `remove-old` follows it.
pub const MOVE_STEPS: &[&str] = &[
    "observe",
    "check-target",
    "maintenance-on",
    "backup",
    "deploy",
    "update",
    "fix-paths",
    "clear-caches",
    "verify",
    "maintenance-off",
];

/// The named steps of a clone, in order (it has no point of no return:
/// the source is only read).
pub const CLONE_STEPS: &[&str] = &[
    "observe",
    "check-target",
    "backup",
    "deploy",
    "update",
    "fix-paths",
    "clear-caches",
    "verify",
];

/// Declares `copy`, a clone of acme on shop-2-1.
pub fn add_clone_of_acme(f: &Fixture) {
    f.write(
        "sites/copy.yaml",
        "domain: copy.example.com\nplatform: shop-2-1\nclone_from: acme\n",
    );
}

/// The named steps of an install, in order.
pub const INSTALL_STEPS: &[&str] = &[
    "check-target",
    "create-database",
    "install-packages",
    "write-settings",
];

/// Declares `newbie`, a new site on shop-2-1.
pub fn add_newbie(f: &Fixture) {
    f.write(
        "sites/newbie.yaml",
        "domain: newbie.example.com\nplatform: shop-2-1\n",
    );
}

/// The named steps of a delete, in order, up to its point of no return;
/// `drop-database` and `empty-trash` follow it.
pub const DELETE_STEPS: &[&str] = &[
    "observe",
    "backup",
    "maintenance-on",
    "remove-vhost",
    "remove-site",
];

/// Turns pruning on and removes eatery from the inventory: a delete.
pub fn prune_eatery(f: &Fixture) {
    f.write(
        "hoist.yaml",
        &f.read("hoist.yaml").replace("prune: false", "prune: true"),
    );
    std::fs::remove_file(f.inv().join("sites/eatery.yaml")).unwrap();
}

/// The named steps of a restore, in order, up to its point of no return;
/// `remove-old` follows it.
pub const RESTORE_STEPS: &[&str] = &[
    "observe",
    "choose-backup",
    "maintenance-on",
    "backup",
    "deploy",
    "extract",
    "swap",
    "fix-paths",
    "clear-caches",
    "maintenance-off",
    "health-check",
];

/// Puts acme behind its platform, as an operator restoring an old backup
/// does: acme is migrated from shop-1-1 to shop-2-0, then the backup that
/// migration took (of acme on shop-1-1) is restored where it now lives.
/// Acme is then on shop-2-0 with shop-1-1's schema: core at 3 of 5, node
/// at 1 of 2.
pub fn put_acme_behind(f: &Fixture) {
    f.set_site("acme", "platform", "shop-2-0");
    f.apply();
    let migrate = tasks(f)
        .into_iter()
        .rev()
        .find(|t| t["kind"] == "migrate")
        .expect("acme was migrated");
    let backup = migrate["backup"]
        .as_str()
        .expect("the migrate took a backup");
    let name = backup.rsplit('/').next().unwrap();
    f.ok(&["restore", "acme", name], 0);
}

/// Every value of every row of table `table`, exactly: its type, its bytes
/// in hex (`SELECT typeof(c), hex(c)`), and for a REAL also its IEEE bits
/// (hex() of a REAL is its text, which hides `-0.0` and rounding). Rows in
/// rowid order.
pub fn exact_rows(c: &rusqlite::Connection, table: &str) -> Vec<Vec<String>> {
    let cols: Vec<String> = c
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let select: Vec<String> = cols
        .iter()
        .map(|col| format!("typeof(\"{col}\"), hex(\"{col}\"), \"{col}\""))
        .collect();
    let mut stmt = c
        .prepare(&format!(
            "SELECT {} FROM \"{table}\" ORDER BY rowid",
            select.join(", ")
        ))
        .unwrap();
    stmt.query_map([], |r| {
        Ok((0..cols.len())
            .map(|i| {
                let ty: String = r.get(3 * i).unwrap();
                let hex: String = r.get(3 * i + 1).unwrap();
                match r.get_ref(3 * i + 2).unwrap() {
                    rusqlite::types::ValueRef::Real(f) => {
                        format!("{ty}:{hex}:{:016x}", f.to_bits())
                    }
                    _ => format!("{ty}:{hex}"),
                }
            })
            .collect())
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// `schema/plan.schema.json`, compiled.
pub fn plan_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/plan.schema.json"
    ))
    .unwrap();
    jsonschema::draft202012::new(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Asserts that a JSON plan matches its schema.
pub fn assert_valid_plan(plan: &serde_json::Value) {
    let v = plan_schema();
    let errors: Vec<String> = v
        .iter_errors(plan)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "plan does not match schema/plan.schema.json: {errors:#?}"
    );
}

/// The backup archives of `site`, by name (newer names sort later); not
/// the sequence counter or temporary files that share their directory.
pub fn backup_archives(f: &Fixture, site: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(f.host().join("backups").join(site))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.ends_with(".tar.gz") && !n.starts_with('.')
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
