//! Hostile input: a bounded fuzz of the inventory loader (no panic, ever),
//! symlinks in a site's files that no pipeline follows, and untrusted pull
//! requests that `plan --offline` reads without running or leaving anything.

mod common;
use common::{assert_same, git, snapshot, Fixture};

/// A small deterministic generator (xorshift); the seed is in every message.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const NASTY: &[&str] = &[
    "..",
    "/",
    "\0",
    "\u{202e}",
    "ѕ",
    "A",
    "{",
    "}",
    "[",
    "]",
    ":",
    "- ",
    "&a ",
    "*a",
    "!!binary ",
    "? ",
    "|",
    ">",
    "\"",
    "'",
    "#",
    "\t",
    "\n",
    "~",
    "null",
    "true",
    "1e999",
    "-1",
    "0x10",
    "<<: *a",
    "\u{feff}",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
];

fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 => b.insert(at.min(b.len()), rng.next() as u8),
            1 => {
                let n = NASTY[rng.below(NASTY.len())];
                b.splice(at..at, n.bytes());
            }
            2 if !b.is_empty() => {
                let end = (at + rng.below(16)).min(b.len());
                b.drain(at.min(b.len())..end);
            }
            3 => {
                let line = b.iter().take(at).rev().take_while(|c| **c != b'\n').count();
                let copy: Vec<u8> = b[at - line..at].to_vec();
                b.splice(at..at, copy);
            }
            _ => {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] = b[i].wrapping_add(1 + rng.below(200) as u8);
                }
            }
        }
    }
    b
}

/// Feeds mutations of `originals` to `parse` for `HOIST_FUZZ_SECS` (8 by
/// default): no panic ever, and every refusal has a non-empty message.
fn fuzz(
    what: &str,
    originals: &[(&str, String)],
    parse: impl Fn(usize, &[u8]) -> Result<(), Vec<String>> + std::panic::RefUnwindSafe,
) {
    let secs: u64 = std::env::var("HOIST_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("HOIST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let mut rng = Rng(seed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let (mut runs, mut rejected) = (0u64, 0u64);
    std::panic::set_hook(Box::new(|_| {}));
    while std::time::Instant::now() < deadline {
        let i = rng.below(originals.len());
        let bytes = mutate(&mut rng, &originals[i].1);
        match std::panic::catch_unwind(|| parse(i, &bytes)) {
            Err(_) => {
                let _ = std::panic::take_hook();
                panic!(
                    "{what} panicked on a mutation of {} (seed {seed}, run {runs}): {:?}",
                    originals[i].0,
                    String::from_utf8_lossy(&bytes)
                );
            }
            Ok(Err(lines)) => {
                rejected += 1;
                assert!(!lines.is_empty());
                for line in &lines {
                    assert!(!line.is_empty() && !line.contains("panicked"), "{line}");
                }
            }
            Ok(Ok(())) => {}
        }
        runs += 1;
    }
    let _ = std::panic::take_hook();
    assert!(runs > 50, "only {runs} runs in {secs}s");
    assert!(
        rejected > 0,
        "no mutation was rejected in {runs} runs: the fuzzer is not biting"
    );
    eprintln!("fuzzed {what} {runs} times ({rejected} rejected), seed {seed}");
}

fn lines(d: &[impl ToString]) -> Vec<String> {
    d.iter().map(|d| d.to_string()).collect()
}

#[test]
fn the_loader_never_panics_on_mutated_inventories() {
    let f = Fixture::example();
    let files = [
        "hoist.yaml",
        "sites/acme.yaml",
        "sites/chess-club.yaml",
        "platforms/shop-2-0.yaml",
        "codebases/shop-2.0/packages/blog/package.yaml",
    ];
    let originals: Vec<(&str, String)> = files.iter().map(|p| (*p, f.read(p))).collect();
    fuzz("the loader", &originals, |i, bytes| {
        let path = f.inv().join(files[i]);
        std::fs::write(&path, bytes).unwrap();
        let r = hoist::inventory::load(&f.inv());
        std::fs::write(&path, &originals[i].1).unwrap();
        r.map(|_| ()).map_err(|d| lines(&d.0))
    });
}

#[test]
fn status_files_and_backup_manifests_never_panic_when_mutated() {
    use std::path::Path;
    let f = Fixture::example();
    f.apply();
    f.ok(&["backup", "acme"], 0);
    let archive = common::backup_archives(&f, "acme").remove(0);
    let manifest =
        hoist::backup::read_manifest(&hoist::driver::host::OnHost::local(&archive)).unwrap();
    let originals = vec![
        ("status/sites/acme.yaml", f.read("status/sites/acme.yaml")),
        (
            "status/platforms/shop-1-1.yaml",
            f.read("status/platforms/shop-1-1.yaml"),
        ),
        (
            hoist::backup::MANIFEST,
            serde_yaml::to_string(&manifest).unwrap(),
        ),
    ];
    let scratch = f.tmp.path().join("fuzzed.tar.gz");
    fuzz("the status and manifest parsers", &originals, |i, bytes| {
        let text = String::from_utf8_lossy(bytes);
        match i {
            0 => hoist::status::parse_site(&text, Path::new(originals[0].0), "acme")
                .map(|s| {
                    // what `hoist status` shows of it
                    if let Some(t) = &s.last_task {
                        let _ = hoist::names::prefix(&t.started, 16);
                    }
                })
                .map_err(|d| lines(&d)),
            1 => hoist::status::parse_platform(&text, Path::new(originals[1].0), "shop-1-1")
                .map(|_| ())
                .map_err(|d| lines(&d)),
            _ => {
                let mut out = tar::Builder::new(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::fast(),
                ));
                let mut h = tar::Header::new_gnu();
                h.set_path(hoist::backup::MANIFEST).unwrap();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o600);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                out.append(&h, bytes).unwrap();
                std::fs::write(&scratch, out.into_inner().unwrap().finish().unwrap()).unwrap();
                hoist::backup::read_manifest(&hoist::driver::host::OnHost::local(&scratch))
                    .map(|_| ())
                    .map_err(|e| vec![e.to_string()])
            }
        }
    });
}

#[test]
fn symlinks_out_of_a_site_are_never_followed() {
    let f = Fixture::example();
    f.apply();
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "OUTSIDE-MARKER-7f3a").unwrap();
    let files = f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.com/files");
    std::os::unix::fs::symlink(&outside, files.join("dir-out")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), files.join("file-out")).unwrap();
    std::os::unix::fs::symlink("../../../../../../outside", files.join("relative-out")).unwrap();
    let before = snapshot(&outside);
    // migrate, rename, clone, then delete: each copies, moves or removes the site
    f.set_site("acme", "platform", "shop-2-0");
    f.apply();
    f.set_site("acme", "domain", "acme.example.org");
    f.apply();
    f.write(
        "sites/copy.yaml",
        "domain: copy.example.com\nplatform: shop-2-1\nclone_from: acme\n",
    );
    f.apply();
    f.write(
        "hoist.yaml",
        &f.read("hoist.yaml").replace("prune: false", "prune: true"),
    );
    std::fs::remove_file(f.inv().join("sites/copy.yaml")).unwrap();
    f.apply();
    assert_same(
        &before,
        &snapshot(&outside),
        "something outside the site changed",
    );
    // the moved site still has its links as links, not copies of their targets
    let moved = f
        .host()
        .join("platforms/shop-2-0/sites/acme.example.org/files");
    for l in ["dir-out", "file-out"] {
        assert!(
            std::fs::symlink_metadata(moved.join(l))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{l}"
        );
    }
    // no backup holds the outside content
    for dir in ["acme", "copy"] {
        for e in std::fs::read_dir(f.host().join("backups").join(dir))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.gz"))
        {
            let mut gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(e.path()).unwrap());
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut gz, &mut all).unwrap();
            assert!(
                !all.windows(19).any(|w| w == b"OUTSIDE-MARKER-7f3a"),
                "{} holds outside content",
                e.path().display()
            );
        }
    }
}

#[test]
fn an_untrusted_pull_request_is_planned_without_running_or_reading_outside() {
    let f = Fixture::example();
    f.apply();
    // The pull request: SQL that would write outside if it ran, symlinks to
    // files outside the repository, and a symlinked status directory.
    let planted = f.tmp.path().join("planted.db");
    common::copy_dir(
        &f.inv().join("codebases/shop-2.1"),
        &f.inv().join("codebases/shop-2.2"),
    );
    f.write(
        "platforms/shop-2-2.yaml",
        "source: { path: codebases/shop-2.2 }\n",
    );
    f.write(
        "codebases/shop-2.2/packages/core/updates/7.sql",
        &format!(
            "ATTACH DATABASE '{}' AS x; CREATE TABLE x.t (a);",
            planted.display()
        ),
    );
    f.set_site("acme", "platform", "shop-2-2");
    let offline = f.ok(&["plan", "--offline", "--format", "json"], 0).json();
    let acme = common::site(&offline, "acme");
    assert_eq!(acme["action"], "migrate");
    assert_eq!(
        common::verdict(acme, "core")["pending"],
        serde_json::json!([4, 5, 6, 7]),
        "the new platform is scanned, not run"
    );
    assert!(
        !planted.exists(),
        "offline planning ran SQL from the pull request"
    );

    let secret = f.tmp.path().join("host-secret.yaml");
    std::fs::write(&secret, "domain: leaked.example.com\nplatform: shop-1-0\n").unwrap();
    std::os::unix::fs::symlink(&secret, f.inv().join("sites/leak.yaml")).unwrap();
    std::fs::remove_file(
        f.inv()
            .join("codebases/shop-2.2/packages/blog/package.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        &secret,
        f.inv()
            .join("codebases/shop-2.2/packages/blog/package.yaml"),
    )
    .unwrap();
    let r = f.run(&["plan", "--offline"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("sites/leak.yaml: not a regular file"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr
            .contains("packages/blog/package.yaml: not a regular file"),
        "{}",
        r.all()
    );
    assert!(
        !r.stdout.contains("leaked.example.com") && !r.stderr.contains("leaked.example.com"),
        "read outside: {}",
        r.all()
    );

    // a symlinked status directory is refused, not followed
    let g = Fixture::example();
    git(&g.inv(), &["init", "-q", "-b", "main"]);
    git(&g.inv(), &["add", "-A"]);
    git(&g.inv(), &["commit", "-qm", "inventory"]);
    let elsewhere = g.tmp.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("sites")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, g.inv().join("status")).unwrap();
    let r = g.run(&["plan", "--offline"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("status: not a directory of the inventory"),
        "{}",
        r.all()
    );
    assert!(!g.host().exists(), "offline planning touched a server");
}

/// What a pull request can put into a status file's free text: a heading,
/// a mention, a link, HTML, a code fence, and terminal escapes (clear the
/// screen, an OSC 8 hyperlink, a bidi override, an 8-bit CSI).
const HOSTILE: &str = r#"# Heading\n@octocat [link](https://evil.example) <img src=x onerror=alert(1)> ```\n\e[2J\e]8;;https://evil.example\aclick\e]8;;\a \u202Ereversed \x9b31m | cell"#;
/// The same, as it reads once YAML has unescaped it.
const HOSTILE_TEXT: &str = "# Heading\n@octocat [link](https://evil.example) <img src=x onerror=alert(1)> ```\n\x1b[2J\x1b]8;;https://evil.example\x07click\x1b]8;;\x07 \u{202e}reversed \u{9b}31m | cell";

/// Whether `s` has a byte a terminal would act on: ESC, another C0 control
/// than a line break or tab, DEL, a C1 control or a bidi control.
fn has_terminal_control(s: &str) -> bool {
    s.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// Every fence is closed by a fence at least as long before the end.
fn fences_balance(md: &str) -> bool {
    let mut open: Option<usize> = None;
    for line in md.lines() {
        let ticks = line.chars().take_while(|c| *c == '`').count();
        match open {
            None if ticks >= 3 => open = Some(ticks),
            Some(n) if ticks >= n && line.trim_end().chars().all(|c| c == '`') => open = None,
            _ => {}
        }
    }
    open.is_none()
}

#[test]
fn status_files_are_untrusted_text_in_every_output() {
    let f = Fixture::example();
    f.apply();
    // The pull request edits the status files: free text in a drift
    // message, the database name (it shows in the settings diff) and a
    // task's start time.
    let text = f.read("status/sites/acme.yaml");
    let evil = text
        .replace(
            "  maintenance: false",
            &format!("  maintenance: false\n  drift:\n  - \"{HOSTILE}\""),
        )
        .replace(
            "    name: acme_",
            "    name: \"acme ````\\n# db @octocat \\e[2J <b>x</b>\"\n    x: acme_",
        )
        .lines()
        .filter(|l| !l.trim_start().starts_with("x: acme_"))
        .map(|l| {
            if l.trim_start().starts_with("started:") {
                "  started: \"\\e[2J\\e]8;;https://evil.example\\a\\u202Eévil\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(evil, text);
    f.write("status/sites/acme.yaml", &evil);
    f.set_site("acme", "platform", "shop-2-0");

    let md = f
        .ok(&["plan", "--offline", "--format", "markdown"], 0)
        .stdout;
    assert!(md.contains("<b>acme</b>: <code>migrate</code>"), "{md}");
    assert!(md.contains("&#35; Heading"), "the drift is shown: {md}");
    for line in md.lines() {
        assert!(
            !line.starts_with('#') || line.starts_with("## hoist plan") || line.starts_with("### "),
            "a heading from the status file: {line}"
        );
    }
    let prose: String = {
        // outside fenced blocks, nothing renders as markup or notifies
        let mut out = String::new();
        let mut fence: Option<usize> = None;
        for line in md.lines() {
            let ticks = line.chars().take_while(|c| *c == '`').count();
            match fence {
                None if ticks >= 3 => fence = Some(ticks),
                Some(n) if ticks >= n => fence = None,
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
                Some(_) => {}
            }
        }
        out
    };
    for raw in [
        "@octocat",
        "](",
        "[link]",
        "<img",
        "https://evil",
        "```",
        "| cell",
        "\u{202e}",
    ] {
        assert!(!prose.contains(raw), "{raw:?} in the markdown:\n{md}");
    }
    assert!(!has_terminal_control(&md), "{md:?}");
    assert!(fences_balance(&md), "an unbalanced fence:\n{md}");
    assert!(
        md.contains("-  name: \"acme ````\\n# db @octocat \\u001b[2J <b>x</b>\"\n"),
        "the diff is shown verbatim inside its fence: {md}"
    );

    let plan_text = f.ok(&["plan", "--offline"], 0).stdout;
    assert!(
        plan_text.contains("warning: # Heading @octocat"),
        "{plan_text}"
    );
    assert!(!has_terminal_control(&plan_text), "{plan_text:?}");
    let status = f.ok(&["status"], 0).stdout;
    assert!(status.contains("acme"), "{status}");
    assert!(!has_terminal_control(&status), "{status:?}");

    // JSON keeps the exact strings.
    let json = f.plan_json(&["--offline"], 0);
    let acme = common::site(&json, "acme");
    assert!(
        acme["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == HOSTILE_TEXT),
        "{acme}"
    );
    assert!(
        acme["diff"]
            .as_str()
            .unwrap()
            .contains("# db @octocat \\u001b[2J <b>x</b>"),
        "{acme}"
    );
}

/// Runs `args` and checks it fails cleanly: exit 1, no panic, and a line
/// of stderr or stdout holding `needle`.
fn refused(f: &Fixture, args: &[&str], needle: &str) {
    let r = f.run(args);
    assert_eq!(r.code, 1, "{args:?}: {}", r.all());
    assert!(!r.all().contains("panicked"), "{}", r.all());
    assert!(
        r.all().lines().any(|l| l.contains(needle)),
        "no line with {needle:?} in:\n{}",
        r.all()
    );
}

#[test]
fn deeply_nested_files_are_refused_at_the_depth_limit() {
    let f = Fixture::example();
    // 80,000 levels in 160 KB and a million in 1 MB: libyaml alone took 5 s
    // and over 25 minutes on these; the guard stops at level 33.
    f.write(
        "sites/acme.yaml",
        &format!("domain: {}", "[ ".repeat(80_000)),
    );
    // the root mapping is level 1: the 32nd `[` (column 9 + 2 * 31) is level 33
    refused(
        &f,
        &["validate"],
        "sites/acme.yaml:1:71: nesting deeper than 32 levels",
    );
    f.write(
        "sites/acme.yaml",
        &format!("domain: {}", "[".repeat(1_000_000)),
    );
    refused(
        &f,
        &["validate"],
        "sites/acme.yaml:1:40: nesting deeper than 32 levels",
    );
    f.write(
        "sites/acme.yaml",
        &format!(
            "domain: a.com\nplatform: shop-1-0\nlabels: {}",
            "{a: ".repeat(50_000)
        ),
    );
    refused(
        &f,
        &["validate"],
        "sites/acme.yaml:3:133: nesting deeper than 32 levels",
    );
    // block mappings, nested by indentation: labels' value (k1, line 4) is
    // level 2, so k32 on line 35 is level 33
    let mut block = String::from("domain: a.com\nplatform: shop-1-0\nlabels:\n");
    for i in 1..60 {
        block.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
    }
    f.write("sites/acme.yaml", &block);
    refused(
        &f,
        &["validate"],
        "sites/acme.yaml:35:65: nesting deeper than 32 levels",
    );
    // the same rule for the settings and a codebase's package.yaml
    let g = Fixture::example();
    g.write("hoist.yaml", &format!("policy: {}", "[".repeat(100)));
    refused(
        &g,
        &["validate"],
        "hoist.yaml:1:40: nesting deeper than 32 levels",
    );
    let g = Fixture::example();
    g.write(
        "codebases/shop-2.0/packages/blog/package.yaml",
        &format!("name: {}", "{".repeat(100)),
    );
    refused(
        &g,
        &["validate"],
        "codebases/shop-2.0/packages/blog/package.yaml:1:38: nesting deeper than 32 levels",
    );
}

#[test]
fn a_byte_order_mark_is_read_as_nothing() {
    let f = Fixture::example();
    for p in [
        "hoist.yaml",
        "sites/acme.yaml",
        "platforms/shop-2-0.yaml",
        "codebases/shop-2.0/packages/blog/package.yaml",
    ] {
        f.write(p, &format!("\u{feff}{}", f.read(p)));
    }
    let r = f.run(&["validate"]);
    assert_eq!(r.code, 0, "{}", r.all());
    f.apply();
    // status files too
    let st = f.inv().join("status/sites/acme.yaml");
    let text = std::fs::read_to_string(&st).unwrap();
    std::fs::write(&st, format!("\u{feff}{text}")).unwrap();
    let r = f.run(&["status"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("acme.example.com"), "{}", r.all());
}

#[test]
fn status_files_with_odd_text_never_panic() {
    let f = Fixture::example();
    f.apply();
    let st = f.inv().join("status/sites/acme.yaml");
    let text = std::fs::read_to_string(&st).unwrap();
    let started = text
        .lines()
        .find(|l| l.trim_start().starts_with("started:"))
        .unwrap_or_else(|| panic!("no start time in {text}"));
    // a multibyte character across byte 16 of the time shown
    let odd = started.split_once(':').unwrap().0.to_string() + ": \"2026-01-31T12:0é日本\"";
    std::fs::write(&st, text.replace(started, &odd)).unwrap();
    let r = f.run(&["status"]);
    assert!(!r.all().contains("panicked"), "{}", r.all());
    assert!(r.code == 0 || r.code == 1, "{}", r.all());
    if r.code == 0 {
        assert!(r.stdout.contains("install 2026-01-31T12:0"), "{}", r.all());
    }
    // and a status file nested too deep is refused like any other file
    std::fs::write(&st, format!("site: acme\nsync: {}", "[".repeat(200_000))).unwrap();
    refused(
        &f,
        &["status"],
        "status/sites/acme.yaml:2:38: nesting deeper than 32 levels",
    );
}
