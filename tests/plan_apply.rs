//! `hoist plan`, `apply` (builds and installs), `compare` and the exit codes
//! of spec section 6, on a copy of the example inventory, through the binary.

//!
//! The apply runs on both stacks (`tests/common/stack.rs`): on mysql+nginx
//! rows are read from each site's MariaDB database and every site answers
//! 200 with its own name. The rest is about planning, which reads the
//! servers the same way whatever their kind: embedded only.

mod common;
mod services;
#[macro_use]
#[path = "common/stack.rs"]
mod stack;

use common::{assert_same, assert_valid_plan, settings_of, site, snapshot, verdict, Fixture};
use stack::Env;

#[test]
fn plan_before_apply_builds_and_creates() {
    let f = Fixture::example();
    let plan = f.plan_json(&[], 0);
    assert_valid_plan(&plan);
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["mode"], "live");
    assert_eq!(plan["summary"]["platforms"]["build"], 4);
    assert_eq!(plan["summary"]["sites"]["create"], 5);
    assert_eq!(plan["summary"]["blocked"], 0);
    let acme = site(&plan, "acme");
    assert_eq!(acme["action"], "create");
    assert_eq!(acme["to"]["platform"], "shop-1-1");
    assert_eq!(verdict(acme, "core")["verdict"], "install");
    assert_eq!(verdict(acme, "core")["target_schema"], 3);
    assert!(acme["diff"]
        .as_str()
        .unwrap()
        .contains("+++ b/vhosts/acme.example.com.conf"));
    // planning observes only: no server was made
    assert!(!f.host().exists());
    // with --detailed-exitcode, changes mean exit 2
    f.ok(&["plan", "--detailed-exitcode"], 2);
}

on_both_stacks! {
    fn apply_installs_then_a_second_apply_changes_nothing(stack) {
        let Some(f) = Env::example(stack) else { return };
        let r = f.apply();
        assert!(
            r.stdout.contains("Apply complete: 9 success"),
            "{}",
            r.all()
        );

        // Every site is installed for real: database rows, settings, vhost.
        let acme = settings_of(&f, "shop-1-1", "acme.example.com").0;
        let core = f.query(
            &acme,
            "SELECT schema_version, version, enabled FROM system WHERE name='core'",
        );
        assert_eq!(core, ["3\t1.1.0\t1"]);
        let n = f.query(&acme, "SELECT count(*) FROM system");
        assert_eq!(
            n, ["5"],
            "standard installs core, node, blog, shop_theme and itself"
        );
        assert_eq!(
            f.var(&acme, "file_directory_path").as_deref(),
            Some("sites/acme.example.com/files")
        );
        // the package's own tables exist
        f.query(&acme, "SELECT count(*) FROM blog_posts");
        let chess = settings_of(&f, "shop-1-1", "chess.example.org").0;
        let polls = f.query(&chess, "SELECT enabled FROM system WHERE name='legacy_polls'");
        assert_eq!(polls, ["1"]);

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(
            f.host()
                .join("platforms/shop-1-1/sites/acme.example.com/settings.yaml"),
        )
        .unwrap()
        .permissions()
        .mode();
        assert_eq!(mode & 0o777, 0o600);
        let vhost = f.vhost("acme.example.com").unwrap();
        assert!(
            vhost.contains("server_name acme.example.com www.acme.example.com;"),
            "{vhost}"
        );

        // Plan now says there is nothing to do, and a second apply changes nothing.
        let plan = f.plan_json(&["--detailed-exitcode"], 0);
        assert_valid_plan(&plan);
        assert_eq!(plan["summary"]["changes"], 0);
        assert!(plan["sites"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["action"] == "noop"));
        let before = snapshot(&f.host());
        let state = f.state();
        let r = f.apply();
        assert!(r.stdout.contains("nothing to do"), "{}", r.all());
        assert_same(
            &before,
            &snapshot(&f.host()),
            "the second apply changed the server",
        );
        assert_eq!(state, f.state(), "the second apply changed a database or vhost");
    }
}

#[test]
fn editing_a_sites_platform_plans_a_migration_with_verdicts() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let plan = f.plan_json(&["--detailed-exitcode"], 2);
    assert_valid_plan(&plan);
    let acme = site(&plan, "acme");
    assert_eq!(acme["action"], "migrate");
    assert_eq!(acme["blocked"], false);
    assert_eq!(acme["from"]["platform"], "shop-1-1");
    assert_eq!(acme["to"]["platform"], "shop-2-0");
    assert_eq!(verdict(acme, "core")["verdict"], "upgrade");
    assert_eq!(verdict(acme, "core")["pending"], serde_json::json!([4, 5]));
    assert_eq!(verdict(acme, "blog")["verdict"], "version-downgrade");
    assert_eq!(verdict(acme, "blog")["severity"], "warning");
    let diff = acme["diff"].as_str().unwrap();
    assert!(
        diff.contains("-platform: shop-1-1\n+platform: shop-2-0"),
        "{diff}"
    );
    assert!(diff.contains("+    root platforms/shop-2-0;"), "{diff}");
    assert_eq!(plan["summary"]["sites"]["migrate"], 1);
    assert_eq!(plan["summary"]["sites"]["noop"], 4);

    // --strict makes the version-downgrade warning block: exit 1.
    let strict = f.plan_json(&["--strict", "--detailed-exitcode"], 1);
    assert_eq!(site(&strict, "acme")["blocked"], true);
    assert_eq!(strict["summary"]["blocked"], 1);
}

#[test]
fn a_schema_downgrade_blocks_and_exits_1() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-1-0");
    let plan = f.plan_json(&["--detailed-exitcode"], 1);
    let acme = site(&plan, "acme");
    assert_eq!(acme["blocked"], true);
    assert_eq!(verdict(acme, "core")["verdict"], "schema-downgrade");
    assert_eq!(verdict(acme, "core")["severity"], "error");
    assert!(acme["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().contains("core: schema downgrade")));
    // a blocked apply changes nothing on the site
    let before = snapshot(&f.host().join("platforms/shop-1-1/sites"));
    let r = f.ok(&["apply", "--yes"], 1);
    assert!(r.stdout.contains("BLOCKED"), "{}", r.all());
    assert_same(
        &before,
        &snapshot(&f.host().join("platforms/shop-1-1/sites")),
        "a blocked apply changed the site",
    );
}

#[test]
fn a_missing_profile_is_caught_before_planning() {
    // The profile rule of section 5 is also an inventory check: moving a
    // community site to a platform without that profile does not validate.
    let f = Fixture::example();
    f.apply();
    f.set_site("chess-club", "platform", "shop-2-1");
    let r = f.ok(&["plan"], 1);
    assert!(
        r.stderr
            .contains("sites/chess-club.yaml:6:10: unknown profile community on platform shop-2-1"),
        "{}",
        r.all()
    );
}

#[test]
fn site_filter_plans_only_the_named_sites() {
    let f = Fixture::example();
    let plan = f.plan_json(&["--site", "acme", "--site", "dental"], 0);
    let names: Vec<&str> = plan["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "dental"]);
    let platforms: Vec<&str> = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        platforms,
        ["shop-1-1", "shop-2-0"],
        "only the platforms those sites need"
    );
    let r = f.run(&["plan", "--site", "nosuch"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no site nosuch"), "{}", r.all());
    // apply --site installs only those
    f.ok(&["apply", "--yes", "--site", "dental"], 0);
    assert!(f
        .host()
        .join("platforms/shop-2-0/sites/dental.example.net")
        .is_dir());
    assert!(!f.host().join("platforms/shop-1-1").exists());
}

#[test]
fn text_and_markdown_formats() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let text = f.ok(&["plan"], 0).stdout;
    assert!(!text.contains('\x1b'), "no colour off a terminal");
    assert!(
        text.contains("acme") && text.contains("migrate") && text.contains("Plan: 1 migrate"),
        "{text}"
    );
    assert!(
        text.contains("blog: version downgrade 1.3.0 -> 1.2.0"),
        "{text}"
    );
    let md = f.ok(&["plan", "--format", "markdown"], 0).stdout;
    assert!(md.starts_with("## hoist plan"), "{md}");
    assert!(md.contains("| sites | `migrate` | 1 |"), "{md}");
    assert!(
        md.contains("<details><summary>⚠️ <b>acme</b>: <code>migrate</code>"),
        "{md}"
    );
    assert!(
        md.contains("| core | `upgrade` | 3 | 5 | 1.1.0 → 2.0.0 | 4, 5 |"),
        "{md}"
    );
    assert!(md.contains("```diff\n"), "{md}");
    // unchanged sites get no section
    assert!(!md.contains("<b>bakery</b>"), "{md}");
}

#[test]
fn saved_plan_goes_to_out_file_and_passwords_never_show() {
    let f = Fixture::example();
    f.apply();
    f.set_site(
        "acme",
        "aliases",
        "[www.acme.example.com, shop.acme.example.com]",
    );
    let out = f.tmp.path().join("plan.json");
    let r = f.ok(&["plan", "--out", out.to_str().unwrap()], 0);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_valid_plan(&saved);
    assert_eq!(site(&saved, "acme")["action"], "verify");
    // No password from any settings file appears in any output.
    let mut outputs = vec![r.stdout, std::fs::read_to_string(&out).unwrap()];
    outputs.push(f.ok(&["plan", "--format", "markdown"], 0).stdout);
    for entry in walk(&f.host().join("platforms")) {
        if entry.ends_with("settings.yaml") {
            let text = std::fs::read_to_string(&entry).unwrap();
            let pw = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("password: "))
                .unwrap()
                .trim_matches('"')
                .to_string();
            assert!(pw.len() >= 20);
            for o in &outputs {
                assert!(!o.contains(&pw), "a password leaked into plan output");
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            v.extend(walk(&e.path()));
        } else {
            v.push(e.path());
        }
    }
    v
}

#[test]
fn apply_without_yes_off_a_terminal_refuses() {
    let f = Fixture::example();
    let r = f
        .cmd(&["apply"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--yes"));
    assert!(!f.host().join("platforms").exists(), "nothing was built");
}

#[test]
fn compare_lists_every_platform_and_marks_the_forbidden_one() {
    let f = Fixture::example();
    f.apply();
    let out = f.ok(&["compare", "acme"], 0).stdout;
    let row = |p: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(p))
            .unwrap_or_else(|| panic!("no row {p}: {out}"))
            .to_string()
    };
    assert!(row("shop-1-0").ends_with("not allowed"), "{out}");
    assert!(row("shop-1-1").ends_with("current"), "{out}");
    assert!(row("shop-2-0").ends_with("allowed"), "{out}");
    assert!(row("shop-2-1").ends_with("allowed"), "{out}");
    // counts: shop-2-1 upgrades core, node and blog
    let r21 = row("shop-2-1");
    let cols: Vec<&str> = r21.split_whitespace().collect();
    assert_eq!(&cols[1..4], ["3", "0", "0"], "{out}");

    // Package by package, across the example every verdict appears.
    let mut seen = std::collections::BTreeSet::new();
    for (s, p) in [
        ("acme", "shop-1-0"),
        ("acme", "shop-2-0"),
        ("chess-club", "shop-2-0"),
        ("chess-club", "shop-1-1"),
        ("dental", "shop-2-1"),
    ] {
        let r = f.run(&["compare", s, p]);
        for v in [
            "same",
            "upgrade",
            "missing",
            "schema-downgrade",
            "version-downgrade",
        ] {
            if r.stdout
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some(v))
            {
                seen.insert(v);
            }
        }
    }
    assert_eq!(seen.len(), 5, "every verdict of the table shows: {seen:?}");
    let r = f.ok(&["compare", "acme", "shop-1-0"], 1);
    assert!(
        r.stdout.contains("acme may not move to shop-1-0"),
        "{}",
        r.all()
    );
    let r = f.ok(&["compare", "chess-club", "shop-2-1"], 1);
    assert!(
        r.stdout
            .contains("profile community is missing on shop-2-1"),
        "{}",
        r.all()
    );
    let r = f.ok(&["compare", "acme", "shop-2-0"], 0);
    assert!(
        r.stdout.contains("acme may move to shop-2-0"),
        "{}",
        r.all()
    );
    let r = f.run(&["compare", "ghost"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("ghost is not installed"), "{}", r.all());
}

#[test]
fn a_changed_source_under_live_sites_is_an_error() {
    let f = Fixture::example();
    f.apply();
    f.write("codebases/shop-1-1-extra.txt", "x");
    f.write("codebases/shop-1.1/packages/core/README", "changed");
    let plan = f.plan_json(&[], 1);
    let p = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "shop-1-1")
        .unwrap();
    assert_eq!(p["blocked"], true);
    assert!(
        p["errors"][0]
            .as_str()
            .unwrap()
            .contains("platforms are immutable"),
        "{p}"
    );
}

#[test]
fn a_changed_source_with_no_site_on_it_is_rebuilt() {
    let f = Fixture::example();
    common::copy_dir(
        &f.inv().join("codebases/shop-2.1"),
        &f.inv().join("codebases/spare"),
    );
    f.write(
        "platforms/spare.yaml",
        "source: { path: codebases/spare }\n",
    );
    f.apply();
    f.write("codebases/spare/packages/core/README", "changed");
    let plan = f.plan_json(&["--detailed-exitcode"], 2);
    let p = plan["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "spare")
        .unwrap();
    assert_eq!(p["action"], "build");
    assert_eq!(p["blocked"], false);
    f.apply();
    assert_eq!(
        std::fs::read_to_string(f.host().join("platforms/spare/packages/core/README")).unwrap(),
        "changed"
    );
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn undeclared_sites_are_unmanaged_and_left_alone() {
    let f = Fixture::example();
    f.apply();
    std::fs::remove_file(f.inv().join("sites/eatery.yaml")).unwrap();
    let plan = f.plan_json(&["--detailed-exitcode"], 0);
    let s = site(&plan, "eatery");
    assert_eq!(s["action"], "noop");
    assert_eq!(s["unmanaged"], true);
    // a new site may not take its domain while it is still served
    f.write(
        "sites/newbie.yaml",
        "domain: eatery.example.com\nplatform: shop-2-1\n",
    );
    let plan = f.plan_json(&[], 1);
    assert!(site(&plan, "newbie")["errors"][0]
        .as_str()
        .unwrap()
        .contains("still served by site eatery"));
}

#[test]
fn a_platform_whose_source_cannot_be_read_is_unknown_and_blocks_its_sites() {
    let f = Fixture::example();
    f.apply();
    f.write(
        "platforms/shop-3-0.yaml",
        "source: { git: https://example.org/shop.git, ref: v3.0.0 }\n",
    );
    // validate holds every source to being readable
    let r = f.ok(&["validate"], 1);
    assert!(
        r.stderr
            .contains("platforms/shop-3-0.yaml:1:16: git sources are not supported yet"),
        "{}",
        r.all()
    );
    // planning reports the platform and blocks only what needs it
    f.set_site("acme", "platform", "shop-3-0");
    f.write(
        "sites/newbie.yaml",
        "domain: newbie.example.com\nplatform: shop-3-0\n",
    );
    for extra in [&[][..], &["--offline"][..]] {
        let plan = f.plan_json(extra, 1);
        let p = plan["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "shop-3-0")
            .unwrap();
        assert_eq!(
            (p["action"].as_str(), p["blocked"].as_bool()),
            (Some("build"), Some(true)),
            "{p}"
        );
        assert!(
            p["errors"][0]
                .as_str()
                .unwrap()
                .contains("not supported yet"),
            "{p}"
        );
        for s in ["acme", "newbie"] {
            let e = site(&plan, s);
            assert_eq!(e["blocked"], true, "{extra:?} {s}: {e}");
            assert!(
                e["errors"]
                    .to_string()
                    .contains("platform shop-3-0 is unknown"),
                "{extra:?}: {e}"
            );
        }
        assert_eq!(site(&plan, "bakery")["action"], "noop");
    }
    // apply carries out nothing for them, and says why
    let r = f.ok(&["apply", "--yes"], 1);
    assert!(r.stdout.contains("BLOCKED"), "{}", r.all());
    assert!(f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.com")
        .is_dir());
}

/// Writes `plan` with `edit` applied to a new file and returns its path.
fn edited(
    f: &Fixture,
    plan: &serde_json::Value,
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let mut p = plan.clone();
    edit(&mut p);
    let path = f.tmp.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&p).unwrap()).unwrap();
    path.to_str().unwrap().to_string()
}

fn site_mut<'a>(plan: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    plan["sites"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["name"] == name)
        .unwrap()
}

/// Applies a saved plan that must be refused: exit 1, every `said` in the
/// message, nothing changed on the server.
fn refused(f: &Fixture, file: &str, said: &[&str]) {
    let before = common::server_state(f);
    let r = f.run(&["apply", "--yes", file]);
    assert_eq!(r.code, 1, "{}", r.all());
    for s in said {
        assert!(r.stderr.contains(s), "{s:?} not said: {}", r.all());
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.all());
    let diff = common::state_diff(&before, &common::server_state(f));
    assert!(diff.is_empty(), "{file} changed the server: {diff:?}");
}

#[test]
fn an_edited_saved_plan_is_refused_and_nothing_from_it_is_carried_out() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let out = f.tmp.path().join("plan.json");
    f.ok(&["plan", "--out", out.to_str().unwrap()], 0);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();

    // noop -> delete: a declared site, prune off
    let file = edited(&f, &plan, "delete.json", |p| {
        let s = site_mut(p, "bakery");
        s["action"] = "delete".into();
        s["to"] = serde_json::Value::Null;
    });
    refused(
        &f,
        &file,
        &[
            "does not match a fresh plan",
            "site bakery: the saved plan says delete (from bakery.example.com on shop-1-0, to -), a fresh plan says noop",
        ],
    );
    // the migration's target changed
    let file = edited(&f, &plan, "target.json", |p| {
        site_mut(p, "acme")["to"]["platform"] = "shop-2-1".into();
    });
    refused(
        &f,
        &file,
        &["site acme: the saved plan says migrate (from acme.example.com on shop-1-1, to acme.example.com on shop-2-1), a fresh plan says migrate (from acme.example.com on shop-1-1, to acme.example.com on shop-2-0)"],
    );
    // a site added to the file
    let file = edited(&f, &plan, "added.json", |p| {
        let mut ghost = site_mut(p, "acme").clone();
        ghost["name"] = "ghost".into();
        ghost["action"] = "create".into();
        ghost["from"] = serde_json::Value::Null;
        p["sites"].as_array_mut().unwrap().push(ghost);
    });
    refused(
        &f,
        &file,
        &[
            "site ghost: the saved plan says create",
            "a fresh plan says nothing",
        ],
    );
    // a platform build slipped in
    let file = edited(&f, &plan, "platform.json", |p| {
        p["platforms"][0]["action"] = "build".into();
    });
    refused(&f, &file, &["platform shop-1-0: the saved plan says build"]);

    // malformed, hostile or huge files: a clear error, no panic
    let cut = f.tmp.path().join("cut.json");
    let whole = std::fs::read_to_string(&out).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    refused(&f, cut.to_str().unwrap(), &["is not a hoist plan", "line"]);
    let deep = f.tmp.path().join("deep.json");
    std::fs::write(&deep, "[".repeat(1_000_000)).unwrap();
    refused(&f, deep.to_str().unwrap(), &["is not a hoist plan"]);
    let bad_name = edited(&f, &plan, "name.json", |p| {
        site_mut(p, "acme")["name"] = "../../etc".into();
    });
    refused(
        &f,
        &bad_name,
        &["is not a hoist plan: invalid name \"../../etc\"", "line 7"],
    );
    let huge = f.tmp.path().join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(hoist::plan::saved::MAX_BYTES + 1)
        .unwrap();
    refused(&f, huge.to_str().unwrap(), &["a hoist plan is at most"]);

    // the unedited plan is carried out
    f.ok(&["apply", "--yes", out.to_str().unwrap()], 0);
    assert!(f
        .host()
        .join("platforms/shop-2-0/sites/acme.example.com")
        .is_dir());
    f.plan_json(&["--detailed-exitcode"], 0);
}

#[test]
fn a_saved_plan_with_a_blocked_flag_flipped_is_refused() {
    let f = Fixture::example();
    f.apply();
    // dental's move is blocked (a schema downgrade); eatery's disable is not
    f.set_site("dental", "platform", "shop-1-0");
    f.set_site("eatery", "enabled", "false");
    let out = f.tmp.path().join("plan.json");
    f.ok(&["plan", "--out", out.to_str().unwrap()], 1);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(site(&plan, "dental")["blocked"], true);
    let file = edited(&f, &plan, "unblocked.json", |p| {
        let s = site_mut(p, "dental");
        s["blocked"] = false.into();
        s["errors"] = serde_json::json!([]);
    });
    refused(
        &f,
        &file,
        &["site dental: the saved plan says migrate (from dental.example.net on shop-2-0, to dental.example.net on shop-1-0), a fresh plan says migrate (from dental.example.net on shop-2-0, to dental.example.net on shop-1-0), blocked"],
    );
    // unedited, the plan carries out what is not blocked and exits 1
    let r = f.ok(&["apply", "--yes", out.to_str().unwrap()], 1);
    assert!(r.stdout.contains("disable eatery"), "{}", r.all());
    assert!(f
        .host()
        .join("platforms/shop-2-0/sites/dental.example.net")
        .is_dir());
}

#[test]
fn a_saved_plan_for_some_sites_is_checked_against_those_sites() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    f.set_site("eatery", "enabled", "false");
    let out = f.tmp.path().join("plan.json");
    f.ok(
        &["plan", "--site", "acme", "--out", out.to_str().unwrap()],
        0,
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_valid_plan(&saved);
    assert_eq!(saved["selected"], serde_json::json!(["acme"]));
    let r = f.run(&["apply", "--yes", "--site", "eatery", out.to_str().unwrap()]);
    assert_eq!(
        r.code,
        1,
        "a usage error: --site with a saved plan: {}",
        r.all()
    );
    f.ok(&["apply", "--yes", out.to_str().unwrap()], 0);
    assert!(f
        .host()
        .join("platforms/shop-2-0/sites/acme.example.com")
        .is_dir());
    // eatery was not in the reviewed plan: still enabled
    assert_eq!(site(&f.plan_json(&[], 0), "eatery")["action"], "disable");
}

/// The example fleet plus `n` sites on shop-1-1 (as their status files
/// say) that the inventory moves to shop-2-0, the first `blocked` of them
/// to shop-1-0 instead (a schema downgrade): planned offline.
fn big_fleet(n: usize, blocked: usize) -> Fixture {
    let f = Fixture::example();
    f.apply();
    let template = f.read("status/sites/acme.yaml");
    for i in 0..n {
        let name = format!("m-{i:03}");
        f.write(
            &format!("status/sites/{name}.yaml"),
            &template.replace("acme", &name),
        );
        let target = if i < blocked { "shop-1-0" } else { "shop-2-0" };
        f.write(
            &format!("sites/{name}.yaml"),
            &format!(
                "domain: {name}.example.com\naliases: [www.{name}.example.com]\nplatform: {target}\nprofile: standard\n"
            ),
        );
    }
    f
}

#[test]
fn a_big_markdown_plan_fits_a_pull_request_comment() {
    let f = big_fleet(320, 12);
    let plan = f.plan_json(&["--offline"], 1);
    assert_eq!(plan["summary"]["sites"]["migrate"], 320);
    assert_eq!(plan["summary"]["blocked"], 12);
    let md = f
        .ok(&["plan", "--offline", "--format", "markdown"], 1)
        .stdout;
    let chars = md.chars().count();
    assert!(chars <= 65_000, "{chars} characters");
    assert!(chars > 50_000, "the room is used: {chars} characters");
    // summary first
    assert!(md.starts_with("## hoist plan"), "{md}");
    let table = md.find("| sites | `migrate` | 320 |").expect("summary row");
    // then the blocked sites with their reasons, every one of them
    let blocked = md
        .find("### ⛔ Blocked sites (12)")
        .expect("blocked section");
    assert!(table < blocked);
    for i in 0..12 {
        let item = format!("- **m-{i:03}** `migrate` m-{i:03}.example.com on shop-1-1 -&gt; m-{i:03}.example.com on shop-1-0\n  - blog: schema downgrade");
        assert!(md.contains(&item), "{item} in {md}");
    }
    // then the site sections, blocked first, as many as fit
    let first = md.find("<details>").expect("site sections");
    assert!(blocked < first);
    assert!(md[first..].starts_with("<details><summary>⛔ <b>m-000</b>"));
    let shown = md.matches("<details>").count();
    assert!(shown > 12 && shown < 320, "{shown} sections");
    // and what was left out, and where everything is
    let note = md.lines().last().unwrap();
    assert!(
        note.contains(&format!("{} of 320 site sections", 320 - shown))
            && note.contains("--out FILE")
            && note.contains("has everything"),
        "{note}"
    );
    assert_eq!(
        md.matches("</details>").count(),
        shown,
        "whole sections only"
    );
    // the same inputs, the same comment
    assert_eq!(
        md,
        f.ok(&["plan", "--offline", "--format", "markdown"], 1)
            .stdout
    );
}

#[test]
fn the_text_plan_hides_noop_lines_unless_asked() {
    let f = big_fleet(3, 1);
    let text = f.ok(&["plan", "--offline"], 1).stdout;
    assert!(text.contains("m-001") && text.contains("m-000"), "{text}");
    for quiet in ["acme", "bakery", "chess-club", "dental", "eatery"] {
        assert!(!text.contains(quiet), "{quiet} shown: {text}");
    }
    assert!(
        text.contains("(5 site(s) with nothing to do not shown; --show-noop lists them)"),
        "{text}"
    );
    let all = f.ok(&["plan", "--offline", "--show-noop"], 1).stdout;
    for quiet in ["acme", "bakery", "chess-club", "dental", "eatery"] {
        let line = all
            .lines()
            .find(|l| l.split_whitespace().next() == Some(quiet))
            .unwrap_or_else(|| panic!("no {quiet} line: {all}"));
        assert!(line.contains("noop"), "{line}");
    }
    assert!(
        all.contains("shop-1-0") && !all.contains("not shown"),
        "{all}"
    );

    // apply prints the same plan, with the same flag
    let g = Fixture::example();
    g.apply();
    g.set_site("acme", "platform", "shop-1-0"); // blocked: nothing is done
    let r = g.ok(&["apply", "--yes"], 1);
    assert!(
        r.stdout.contains("acme") && !r.stdout.contains("bakery"),
        "{}",
        r.all()
    );
    let r = g.ok(&["apply", "--yes", "--show-noop"], 1);
    assert!(r.stdout.contains("bakery"), "{}", r.all());
}
