//! The fleet generator of the benchmarks (not a user command): synthetic
//! inventories of N sites over P platforms of K packages each, their
//! codebases on disk, status files written with hoist's own types and
//! renderer, and big sites (files and database) for the backup scenarios.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hoist::codebase::PackageKind;
use hoist::compat::SitePackage;
use hoist::names::{Domain, Name, PackageName};
use hoist::plan::Endpoint;
use hoist::status::{
    DatabaseStatus, LastTask, ObservedPlatformStatus, ObservedSiteStatus, PlatformPackage,
    PlatformStatus, SiteStatus, StatusSet, SyncState,
};
use hoist::task::{TaskKind, TaskResult};

/// The shape of a generated fleet.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Sites.
    pub sites: usize,
    /// Platforms.
    pub platforms: usize,
    /// Packages per platform.
    pub packages: usize,
    /// Modules a site's profile installs (besides `core` and the profile).
    pub site_modules: usize,
}

pub fn platform_name(i: usize) -> String {
    format!("shop-{i:03}")
}

pub fn site_name(i: usize) -> String {
    format!("site-{i:05}")
}

pub fn domain(i: usize) -> String {
    format!("site-{i:05}.example.com")
}

fn module_name(j: usize) -> String {
    format!("mod_{j:03}")
}

/// The number of updates (the schema) a package has on platform `p`: it
/// grows with the platform, so moving up a platform runs updates.
fn updates_of(p: usize, j: usize) -> u32 {
    if j.is_multiple_of(2) {
        1 + (p / 10) as u32
    } else {
        0
    }
}

fn version_of(p: usize, j: usize) -> String {
    format!("1.{}.{}", p, j % 3)
}

/// Writes the codebase of platform `p` into `dir`: `core` (library),
/// `standard` (profile installing `site_modules` modules), and modules up
/// to `packages` in all, with install SQL and numbered updates.
pub fn write_codebase(dir: &Path, p: usize, shape: &Shape) {
    let pk = dir.join("packages");
    let modules = shape.packages.saturating_sub(2);
    let installs: Vec<String> = std::iter::once("core".to_string())
        .chain((0..shape.site_modules.min(modules)).map(module_name))
        .collect();
    let write_pkg = |name: &str, kind: &str, deps: &[&str], install: &[String], j: usize| {
        let d = pk.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut y = format!(
            "name: {name}\nkind: {kind}\nversion: {}\ndescription: \"Package {name} of platform {p}.\"\ndepends: [{}]\n",
            version_of(p, j),
            deps.join(", ")
        );
        if !install.is_empty() {
            y.push_str(&format!("install: [{}]\n", install.join(", ")));
        }
        std::fs::write(d.join("package.yaml"), y).unwrap();
        if kind == "module" || kind == "library" {
            std::fs::write(
                d.join("install.sql"),
                format!(
                    "CREATE TABLE {name}_data (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value TEXT, changed INTEGER NOT NULL DEFAULT 0);\n\
                     CREATE INDEX {name}_data_name ON {name}_data (name);\n\
                     INSERT INTO {name}_data (name, value) VALUES ('installed', '{name}'), ('schema', '{}');\n",
                    updates_of(p, j)
                ),
            )
            .unwrap();
            let n = updates_of(p, j);
            if n > 0 {
                let u = d.join("updates");
                std::fs::create_dir_all(&u).unwrap();
                for k in 1..=n {
                    std::fs::write(
                        u.join(format!("{k}.sql")),
                        format!(
                            "INSERT INTO {name}_data (name, value) VALUES ('update', '{k}');\n"
                        ),
                    )
                    .unwrap();
                }
            }
        }
    };
    write_pkg("core", "library", &[], &[], 0);
    write_pkg("standard", "profile", &["core"], &installs, 1);
    for j in 0..modules {
        write_pkg(&module_name(j), "module", &["core"], &[], j);
    }
}

/// `hoist.yaml` with the given parallelism.
pub fn settings(parallel: usize) -> String {
    format!(
        "servers:\n  local: {{ kind: local, root: .hoist-host }}\n\
         policy: {{ parallel: {parallel}, keep_backups: 2 }}\n\
         status:\n  commit: true\n  author: {{ name: hoist, email: hoist@localhost }}\n"
    )
}

pub fn site_yaml(i: usize, platform: usize) -> String {
    format!(
        "domain: {}\nplatform: {}\nprofile: standard\naliases: [www.{}]\n",
        domain(i),
        platform_name(platform),
        domain(i)
    )
}

/// Writes an inventory of `shape` into `root`: site `i` is on platform
/// `i % platforms`. Returns nothing; names come from the functions above.
pub fn write_inventory(root: &Path, shape: &Shape, parallel: usize) {
    std::fs::create_dir_all(root.join("platforms")).unwrap();
    std::fs::create_dir_all(root.join("sites")).unwrap();
    std::fs::write(root.join("hoist.yaml"), settings(parallel)).unwrap();
    std::fs::write(root.join(".gitignore"), ".hoist-host/\n").unwrap();
    for p in 0..shape.platforms {
        let name = platform_name(p);
        write_codebase(&root.join("codebases").join(&name), p, shape);
        std::fs::write(
            root.join("platforms").join(format!("{name}.yaml")),
            format!("source: {{ path: codebases/{name} }}\n"),
        )
        .unwrap();
    }
    for i in 0..shape.sites {
        std::fs::write(
            root.join("sites").join(format!("{}.yaml", site_name(i))),
            site_yaml(i, i % shape.platforms),
        )
        .unwrap();
    }
}

fn n(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// The status files of `shape` as if every site were installed and synced,
/// built with hoist's types (so `plan --offline` reads them as its own).
/// `stamp` varies the last task's times, to make changed versions.
pub fn status_set(root: &Path, shape: &Shape, stamp: u32) -> StatusSet {
    let mut set = StatusSet::default();
    let modules = shape.packages.saturating_sub(2);
    for p in 0..shape.platforms {
        let name = platform_name(p);
        let dir = root.join("codebases").join(&name);
        let mut packages = BTreeMap::new();
        let mut add = |pkg: &str, kind, j: usize, depends: Vec<&str>, install: Vec<String>| {
            let updates: Vec<u32> = (1..=updates_of(p, j)).collect();
            packages.insert(
                PackageName::new(pkg).unwrap(),
                PlatformPackage {
                    kind,
                    version: version_of(p, j).parse().unwrap(),
                    schema: updates.last().copied().unwrap_or(0),
                    depends: depends
                        .into_iter()
                        .map(|d| PackageName::new(d).unwrap())
                        .collect(),
                    install: install
                        .iter()
                        .map(|d| PackageName::new(d).unwrap())
                        .collect(),
                    updates,
                    min_schema: 0,
                    hidden: false,
                    last_removed: None,
                    last_removed_unreadable: None,
                    post_updates: vec![],
                    removed_post_updates: vec![],
                },
            );
        };
        let installs: Vec<String> = std::iter::once("core".to_string())
            .chain((0..shape.site_modules.min(modules)).map(module_name))
            .collect();
        add("core", PackageKind::Library, 0, vec![], vec![]);
        add("standard", PackageKind::Profile, 1, vec!["core"], installs);
        for j in 0..modules {
            add(
                &module_name(j),
                PackageKind::Module,
                j,
                vec!["core"],
                vec![],
            );
        }
        set.platforms.insert(
            n(&name),
            PlatformStatus {
                platform: n(&name),
                sync: SyncState::Synced,
                inventory_commit: None,
                observed: Some(ObservedPlatformStatus {
                    server: n("local"),
                    source: format!("path codebases/{name}"),
                    source_hash: hoist::codebase::tree_hash(&dir).unwrap(),
                    packages,
                    drupal: None,
                }),
                errors: vec![],
                warnings: vec![],
                last_task: None,
                suspended: None,
            },
        );
    }
    for i in 0..shape.sites {
        let p = i % shape.platforms;
        let pname = platform_name(p);
        let mut packages = BTreeMap::new();
        let mut add = |pkg: String, kind, j: usize| {
            packages.insert(
                PackageName::new(&pkg).unwrap(),
                SitePackage {
                    kind,
                    enabled: true,
                    version: version_of(p, j).parse().unwrap(),
                    schema: updates_of(p, j),
                },
            );
        };
        add("core".into(), PackageKind::Library, 0);
        add("standard".into(), PackageKind::Profile, 1);
        for j in 0..shape.site_modules.min(modules) {
            add(module_name(j), PackageKind::Module, j);
        }
        let dom = Domain::new(&domain(i)).unwrap();
        let at = Endpoint {
            platform: n(&pname),
            domain: dom.clone(),
            server: None,
        };
        let started = format!(
            "2025-01-{:02}T10:{:02}:{:02}Z",
            1 + stamp % 28,
            i % 60,
            stamp % 60
        );
        set.sites.insert(
            n(&site_name(i)),
            SiteStatus {
                site: n(&site_name(i)),
                sync: SyncState::Synced,
                inventory_commit: None,
                desired: Some(at.clone()),
                observed: Some(ObservedSiteStatus {
                    server: n("local"),
                    platform: n(&pname),
                    domain: dom.clone(),
                    aliases: vec![Domain::new(&format!("www.{}", domain(i))).unwrap()],
                    profile: PackageName::new("standard").unwrap(),
                    enabled: true,
                    database: DatabaseStatus {
                        server: n("default"),
                        driver: Default::default(),
                        address: None,
                        name: Some(format!("site_{i:05}_{:08x}", i * 2654435761 % (1 << 32))),
                    },
                    maintenance: false,
                    drift: vec![],
                    packages,
                    drupal: Default::default(),
                }),
                errors: vec![],
                warnings: vec![],
                rollout: None,
                suspended: None,
                last_task: Some(LastTask {
                    id: format!(
                        "20250101T100000.000-install-{}-{:04x}",
                        site_name(i),
                        stamp % 65536
                    ),
                    kind: TaskKind::Install,
                    from: None,
                    to: Some(at),
                    result: TaskResult::Success,
                    started: started.clone(),
                    finished: Some(started),
                    backup: None,
                    commit: None,
                    recovered: None,
                }),
            },
        );
    }
    set
}

/// Writes every status file of `set` under `root/status` (plainly: this is
/// set-up, not what is measured).
pub fn write_status_plain(root: &Path, set: &StatusSet) -> BTreeMap<String, Vec<u8>> {
    let files = set.files();
    for (rel, data) in &files {
        let p = root.join("status").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    files
}

/// Runs git in `dir` with a fixed identity and no user configuration.
pub fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Bench User",
            "-c",
            "user.email=bench@hoist.test",
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
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Makes `dir` a repository with everything committed.
pub fn git_init(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "inventory"]);
}

/// A fast deterministic generator (xorshift64*), for data that must be
/// made quickly, not securely.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
    /// About `len` bytes of English-like text (compresses like prose:
    /// about 3:1 with gzip).
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "the",
            "site",
            "platform",
            "module",
            "content",
            "user",
            "page",
            "migrate",
            "of",
            "and",
            "to",
            "a",
            "in",
            "is",
            "that",
            "for",
            "it",
            "with",
            "as",
            "was",
            "on",
            "database",
            "files",
            "theme",
            "update",
            "shop",
            "order",
            "product",
            "price",
            "customer",
            "cart",
            "checkout",
            "review",
            "rating",
            "blog",
            "post",
            "comment",
            "forum",
            "topic",
            "reply",
            "search",
            "index",
            "cache",
            "session",
            "account",
            "profile",
            "settings",
            "permission",
            "role",
            "menu",
            "block",
            "region",
            "view",
            "field",
            "node",
            "revision",
            "taxonomy",
            "term",
            "vocabulary",
            "image",
            "style",
            "Lorem",
            "ipsum",
            "dolor",
            "sit",
            "amet",
            "consectetur",
            "adipiscing",
            "elit",
            "sed",
            "do",
            "eiusmod",
            "tempor",
            "incididunt",
            "ut",
            "labore",
            "et",
            "dolore",
            "magna",
            "aliqua",
            "Ut",
            "enim",
            "ad",
            "minim",
            "veniam",
            "quis",
            "nostrud",
        ];
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            let r = self.next();
            v.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
            v.push(match (r >> 32) % 14 {
                0 => b'.',
                1 => b',',
                2 => b'\n',
                _ => b' ',
            });
            if (r >> 40).is_multiple_of(97) {
                // Numbers and ids, as real pages have.
                v.extend_from_slice(format!("{} ", (r >> 8) % 100_000).as_bytes());
            }
        }
        v.truncate(len);
        v
    }
}

/// Fills an installed site with `files_mb` MB of files (half prose, half
/// random bytes, 1 MB each, in nested directories) and `db_mb` MB of
/// database rows (content revisions of prose, 4/5; cached pages of random
/// bytes, 1/5; and a `files` row per file). `db_file` is the site's SQLite
/// database file.
pub fn fill_big_site(site_dir: &Path, domain: &str, db_file: &Path, files_mb: usize, db_mb: usize) {
    let mut rng = Rng::new(42);
    let files = site_dir.join("files");
    let mut paths = Vec::new();
    for k in 0..files_mb {
        let sub = files.join(format!("{:04}/{:02}", 2020 + k % 5, 1 + k % 12));
        std::fs::create_dir_all(&sub).unwrap();
        let (name, data) = if k % 2 == 0 {
            (format!("page-{k:05}.html"), rng.text(1 << 20))
        } else {
            (format!("image-{k:05}.jpg"), rng.bytes(1 << 20))
        };
        let p = sub.join(&name);
        std::fs::write(&p, data).unwrap();
        paths.push(p.strip_prefix(site_dir).unwrap().to_path_buf());
    }
    let mut conn = rusqlite::Connection::open(db_file).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "CREATE TABLE content_revisions (vid INTEGER PRIMARY KEY, nid INTEGER NOT NULL, uid INTEGER NOT NULL, title TEXT NOT NULL, body TEXT, timestamp INTEGER NOT NULL);
         CREATE INDEX content_revisions_nid ON content_revisions (nid);",
    )
    .unwrap();
    {
        let mut st = tx.prepare("INSERT INTO files (path) VALUES (?1)").unwrap();
        for p in &paths {
            st.execute([format!("sites/{domain}/{}", p.display())])
                .unwrap();
        }
        let text_rows = db_mb * 4 * 1024 / 5 / 2; // 2 KiB each
        let mut st = tx
            .prepare("INSERT INTO content_revisions (nid, uid, title, body, timestamp) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for r in 0..text_rows {
            let title = String::from_utf8(rng.text(40)).unwrap();
            let body = String::from_utf8(rng.text(2048)).unwrap();
            st.execute(rusqlite::params![
                (r / 3) as i64,
                (r % 50) as i64,
                title,
                body,
                1_600_000_000 + r as i64
            ])
            .unwrap();
        }
        let blob_rows = db_mb * 1024 / 5 / 10; // 10 KiB each
        let mut st = tx
            .prepare("INSERT INTO cache_page (cid, data, expire) VALUES (?1, ?2, 0)")
            .unwrap();
        for r in 0..blob_rows {
            st.execute(rusqlite::params![
                format!("page:/node/{r}"),
                rng.bytes(10 << 10)
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Every regular file under `dir` (symlinks not followed), for `cat`.
pub fn all_files(dir: &Path, skip: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name();
            if skip.iter().any(|s| name == *s) {
                continue;
            }
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Fills a site's database with about `db_mb` MB of log-like rows (about
/// 250 bytes each: ids, prose with quotes, PHP-serialized variables, one in
/// eight holding NUL bytes as protected properties do, REALs, small BLOBs
/// and NULLs): many small rows, the shape that made a restore quadratic.
pub fn fill_log_rows(db_file: &Path, db_mb: usize) {
    let mut rng = Rng::new(7);
    let mut conn = rusqlite::Connection::open(db_file).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute_batch(
        "CREATE TABLE watchdog (wid INTEGER PRIMARY KEY, uid INTEGER NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL, variables TEXT, severity INTEGER NOT NULL, location TEXT, score REAL, data BLOB, timestamp INTEGER NOT NULL);
         CREATE INDEX watchdog_type ON watchdog (type);",
    )
    .unwrap();
    {
        let mut st = tx
            .prepare("INSERT INTO watchdog (uid, type, message, variables, severity, location, score, data, timestamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .unwrap();
        let types = ["php", "cron", "user", "content", "access denied"];
        let mut bytes = 0usize;
        let mut r = 0u64;
        while bytes < db_mb << 20 {
            let x = rng.next();
            let mut message = rng.text(60 + (x % 60) as usize);
            if x.is_multiple_of(5) {
                message.extend_from_slice(b" it's");
            }
            let title = rng.text(20);
            let mut vars = format!(
                "a:2:{{s:6:\"%title\";s:{}:\"{}\";s:4:\"%uid\";i:{};}}",
                title.len(),
                String::from_utf8_lossy(&title),
                x % 1000
            )
            .into_bytes();
            if x.is_multiple_of(8) {
                vars = b"O:8:\"stdClass\":1:{s:7:\"\0*\0name\";s:4:\"test\";}".to_vec();
            }
            let data = (x.is_multiple_of(3)).then(|| rng.bytes(16));
            let location = format!("https://example.com/node/{}?page={}", x % 100_000, r % 7);
            bytes += message.len() + vars.len() + location.len() + 60;
            st.execute(rusqlite::params![
                (x % 50) as i64,
                types[(x % 5) as usize],
                String::from_utf8(message).unwrap(),
                // TEXT bytes as they are (NULs included), not through &str.
                rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(&vars)),
                (x % 8) as i64,
                location,
                (!x.is_multiple_of(7)).then_some((x % 1_000_000) as f64 / 7.0),
                data,
                1_600_000_000 + r as i64
            ])
            .unwrap();
            r += 1;
        }
    }
    tx.commit().unwrap();
}
