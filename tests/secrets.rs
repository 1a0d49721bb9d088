//! Database passwords are generated per site and live only in the site's
//! settings (mode 0600) and the database server. This test drives a whole
//! life — install, migrate, rename, clone, backup, restore, delete — with
//! every log on, and then searches every output, log line, task record,
//! status file, commit and backup for every password ever generated.

mod common;
use common::{git, Fixture};
use std::collections::BTreeSet;
use std::path::Path;

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            walk(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

/// Every password in the settings files on the server now, and checks the
/// settings files are private.
fn harvest(f: &Fixture, seen: &mut BTreeSet<String>) {
    use std::os::unix::fs::PermissionsExt;
    let mut files = vec![];
    walk(&f.host().join("platforms"), &mut files);
    for p in files
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "settings.yaml"))
    {
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o077,
            0,
            "{} is readable by others",
            p.display()
        );
        let text = std::fs::read_to_string(p).unwrap();
        let pw = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("password:"))
            .unwrap()
            .trim()
            .trim_matches('"')
            .to_string();
        assert!(pw.len() >= 24, "a weak password in {}", p.display());
        seen.insert(pw);
    }
}

#[test]
fn no_password_reaches_any_output_log_record_status_commit_or_backup() {
    let f = Fixture::example();
    git(&f.inv(), &["init", "-q", "-b", "main"]);
    git(&f.inv(), &["add", "-A"]);
    git(&f.inv(), &["commit", "-qm", "inventory"]);
    let mut outputs: Vec<String> = vec![];
    let mut passwords = BTreeSet::new();
    let mut run = |f: &Fixture, args: &[&str], passwords: &mut BTreeSet<String>| {
        for (fmt, level) in [("text", "trace"), ("json", "debug")] {
            let mut all = vec!["--log-format", fmt];
            all.extend_from_slice(args);
            let o = f.cmd(&all).env("RUST_LOG", level).output().unwrap();
            outputs.push(String::from_utf8_lossy(&o.stdout).into_owned());
            outputs.push(String::from_utf8_lossy(&o.stderr).into_owned());
            harvest(f, passwords);
            if args[0] != "apply" && args[0] != "plan" && args[0] != "compare" {
                break; // tasks that change things run once
            }
        }
    };
    let commit = |f: &Fixture, msg: &str| {
        git(
            &f.inv(),
            &["add", "-A", "sites", "platforms", "codebases", "hoist.yaml"],
        );
        git(&f.inv(), &["commit", "-qm", msg]);
    };
    run(&f, &["apply", "--yes"], &mut passwords);
    f.set_site("acme", "platform", "shop-2-0");
    commit(&f, "migrate acme");
    run(&f, &["plan"], &mut passwords);
    run(&f, &["plan", "--format", "json"], &mut passwords);
    run(&f, &["plan", "--format", "markdown"], &mut passwords);
    run(&f, &["apply", "--yes"], &mut passwords);
    f.set_site("acme", "domain", "acme.example.org");
    f.write(
        "sites/copy.yaml",
        "domain: copy.example.com\nplatform: shop-2-1\nclone_from: bakery\n",
    );
    commit(&f, "rename acme, clone bakery");
    run(&f, &["apply", "--yes"], &mut passwords);
    run(&f, &["backup", "acme"], &mut passwords);
    run(&f, &["restore", "acme"], &mut passwords);
    f.write(
        "hoist.yaml",
        &f.read("hoist.yaml").replace("prune: false", "prune: true"),
    );
    std::fs::remove_file(f.inv().join("sites/copy.yaml")).unwrap();
    commit(&f, "prune the copy");
    run(&f, &["apply", "--yes"], &mut passwords);
    run(&f, &["compare", "acme"], &mut passwords);
    run(&f, &["status"], &mut passwords);
    run(&f, &["status", "--live"], &mut passwords);
    run(&f, &["tasks"], &mut passwords);
    run(
        &f,
        &["plan", "--offline", "--format", "json"],
        &mut passwords,
    );
    let ids: Vec<String> = f
        .ok(&["tasks"], 0)
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    for id in &ids {
        run(&f, &["log", id], &mut passwords);
    }
    assert!(
        passwords.len() >= 8,
        "every new database has its own password: {}",
        passwords.len()
    );

    // Everything that is not the settings files or the database server.
    let mut haystacks: Vec<(String, Vec<u8>)> = outputs
        .into_iter()
        .enumerate()
        .map(|(i, o)| (format!("output {i}"), o.into_bytes()))
        .collect();
    let mut files = vec![];
    walk(&f.host(), &mut files);
    walk(&f.inv(), &mut files);
    for p in files {
        let name = p.display().to_string();
        if name.ends_with("settings.yaml") && name.contains("/platforms/")
            || name.contains("/databases/")
            || name.contains("/.git/")
        {
            continue;
        }
        let mut bytes = std::fs::read(&p).unwrap();
        if name.ends_with(".tar.gz") {
            let mut all = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
                &mut all,
            )
            .unwrap();
            bytes = all;
        }
        haystacks.push((name, bytes));
    }
    haystacks.push((
        "git history".into(),
        git(&f.inv(), &["log", "-p", "--all", "--format=%H %an %s"]).into_bytes(),
    ));
    let status_files = f.inv().join("status/sites");
    assert!(status_files.is_dir(), "status files were written");
    assert!(ids.len() >= 12, "tasks were recorded: {}", ids.len());
    let mut leaks = vec![];
    for pw in &passwords {
        for (name, hay) in &haystacks {
            if hay.windows(pw.len()).any(|w| w == pw.as_bytes()) {
                leaks.push(name.clone());
            }
        }
    }
    assert!(leaks.is_empty(), "a password leaked into: {leaks:?}");
}
