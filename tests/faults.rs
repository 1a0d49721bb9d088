//! Faults that are not crashes: a full disk, a database that refuses, a
//! corrupt backup, a platform damaged or removed behind hoist's back. Each
//! ends with a clear message and the site online as before, nothing lost.

mod common;
use common::{assert_same, snapshot, Fixture};
use std::os::unix::process::CommandExt;

fn site_dir(f: &Fixture, p: &str, d: &str) -> std::path::PathBuf {
    f.host().join(format!("platforms/{p}/sites/{d}"))
}

fn db_path(f: &Fixture, p: &str, d: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(site_dir(f, p, d).join("settings.yaml")).unwrap();
    let db = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("name:"))
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string();
    f.host().join(format!("databases/{db}.sqlite"))
}

fn rows(path: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut out = vec![];
    for t in ["system", "variables", "files", "blog_posts"] {
        let mut stmt = c.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let n = stmt.column_count();
        let mut v: Vec<String> = stmt
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v.sort();
        out.extend(v.into_iter().map(|r| format!("{t}: {r}")));
    }
    out
}

/// Runs `hoist apply --yes` with a 1 MiB file-size limit: writes beyond it
/// fail as on a full disk.
fn apply_on_a_full_disk(f: &Fixture) -> (Option<i32>, String) {
    let mut cmd = f.cmd(&["apply", "--yes"]);
    // SAFETY: setrlimit in the child between fork and exec touches no memory
    // of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn full_disk_case(content: Vec<u8>, failing_step: &str) {
    let f = Fixture::example();
    f.apply();
    std::fs::write(
        site_dir(&f, "shop-1-1", "acme.example.com").join("files/big.bin"),
        &content,
    )
    .unwrap();
    f.set_site("acme", "platform", "shop-2-0");
    let files = snapshot(&site_dir(&f, "shop-1-1", "acme.example.com"));
    let before = rows(&db_path(&f, "shop-1-1", "acme.example.com"));
    let (code, stdout) = apply_on_a_full_disk(&f);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("failed   migrate acme")
            && stdout.contains(&format!("step {failing_step}")),
        "{stdout}"
    );
    assert!(stdout.contains("File too large"), "a clear cause: {stdout}");
    assert_same(
        &files,
        &snapshot(&site_dir(&f, "shop-1-1", "acme.example.com")),
        "the site's files changed",
    );
    assert_eq!(
        before,
        rows(&db_path(&f, "shop-1-1", "acme.example.com")),
        "the site's rows changed"
    );
    assert!(
        !site_dir(&f, "shop-2-0", "acme.example.com").exists(),
        "the half-made copy is gone"
    );
    let archives = common::backup_archives(&f, "acme").len();
    assert_eq!(
        archives,
        (failing_step != "backup") as usize,
        "a backup is kept when made, none half-written left"
    );
    // without the limit, the same apply succeeds
    f.apply();
    assert!(site_dir(&f, "shop-2-0", "acme.example.com")
        .join("files/big.bin")
        .exists());
}

#[test]
fn a_full_disk_during_the_backup_fails_the_task_and_keeps_the_site() {
    // 4 MiB of incompressible bytes: the archive outgrows the limit.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let random: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    full_disk_case(random, "backup");
}

#[test]
fn a_full_disk_during_the_deploy_fails_the_task_and_keeps_the_site() {
    // 4 MiB that compresses well: the backup fits, the copy does not.
    full_disk_case(b"hoist ".repeat(700_000), "deploy");
}

#[test]
fn a_database_that_refuses_blocks_the_site_and_touches_nothing() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let host = snapshot(&f.host());
    let holder = rusqlite::Connection::open(db_path(&f, "shop-1-1", "acme.example.com")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let r = f.run(&["apply", "--yes"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("database is locked"),
        "the operator sees why: {}",
        r.all()
    );
    assert!(
        r.stdout.contains("cannot be read") && r.stdout.contains("BLOCKED"),
        "{}",
        r.all()
    );
    holder.execute_batch("ROLLBACK;").unwrap();
    let after: std::collections::BTreeMap<String, String> = snapshot(&f.host())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("tasks"))
        .collect();
    let host: std::collections::BTreeMap<String, String> = host
        .into_iter()
        .filter(|(k, _)| !k.starts_with("tasks"))
        .collect();
    assert_same(&host, &after, "a refused database changed the server");
    // once the database answers again, the migration goes through
    f.apply();
    assert!(site_dir(&f, "shop-2-0", "acme.example.com").is_dir());
}

#[test]
fn a_corrupt_or_truncated_backup_is_refused_on_restore() {
    let f = Fixture::example();
    f.apply();
    f.ok(&["backup", "acme"], 0);
    let archive = common::backup_archives(&f, "acme").remove(0);
    let bytes = std::fs::read(&archive).unwrap();
    let files = snapshot(&site_dir(&f, "shop-1-1", "acme.example.com"));
    let before = rows(&db_path(&f, "shop-1-1", "acme.example.com"));
    for (what, data) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("corrupt", {
            let mut b = bytes.clone();
            let mid = b.len() / 2;
            for x in &mut b[mid..mid + 64] {
                *x ^= 0x5a;
            }
            b
        }),
    ] {
        std::fs::write(&archive, &data).unwrap();
        let r = f.run(&[
            "restore",
            "acme",
            archive.file_name().unwrap().to_str().unwrap(),
        ]);
        assert_eq!(r.code, 1, "{what}: {}", r.all());
        assert!(
            r.stdout.contains("failed   restore acme"),
            "{what}: {}",
            r.all()
        );
        assert!(
            r.stdout
                .contains(archive.file_name().unwrap().to_str().unwrap()),
            "{what}: the archive is named: {}",
            r.all()
        );
        assert_same(
            &files,
            &snapshot(&site_dir(&f, "shop-1-1", "acme.example.com")),
            what,
        );
        assert_eq!(
            before,
            rows(&db_path(&f, "shop-1-1", "acme.example.com")),
            "{what}"
        );
        let leftovers: Vec<_> = std::fs::read_dir(f.host().join("platforms/shop-1-1/sites"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }
}

#[test]
fn a_target_platform_removed_behind_hoists_back_is_rebuilt() {
    let f = Fixture::example();
    f.apply();
    let out = f.tmp.path().join("plan.json");
    f.set_site("acme", "platform", "shop-2-1");
    f.ok(&["plan", "--out", out.to_str().unwrap()], 0);
    std::fs::remove_dir_all(f.host().join("platforms/shop-2-1/packages")).unwrap();
    // the saved plan was made on a platform that is gone: refused
    let r = f.run(&["apply", "--yes", out.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("stale"), "{}", r.all());
    // a fresh plan repairs the platform (its source is unchanged), keeping eatery on it
    let eatery = snapshot(&site_dir(&f, "shop-2-1", "eatery.example.com"));
    let plan = f.plan_json(&[], 0);
    let p = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "shop-2-1")
        .unwrap();
    assert_eq!(p["action"], "build", "{p}");
    f.apply();
    assert_same(
        &eatery,
        &snapshot(&site_dir(&f, "shop-2-1", "eatery.example.com")),
        "the site on the rebuilt platform changed",
    );
    assert!(site_dir(&f, "shop-2-1", "acme.example.com").is_dir());
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn a_damaged_platform_with_a_changed_source_is_never_rebuilt_under_its_sites() {
    let f = Fixture::example();
    f.apply();
    std::fs::remove_dir_all(f.host().join("platforms/shop-1-0/packages/core")).unwrap();
    f.write("codebases/shop-1.0/packages/core/README", "changed");
    let plan = f.plan_json(&[], 1);
    let p = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "shop-1-0")
        .unwrap();
    assert_eq!(p["blocked"], true, "{p}");
    let before = snapshot(&site_dir(&f, "shop-1-0", "bakery.example.com"));
    f.ok(&["apply", "--yes"], 1);
    assert_same(
        &before,
        &snapshot(&site_dir(&f, "shop-1-0", "bakery.example.com")),
        "bakery changed",
    );
}
