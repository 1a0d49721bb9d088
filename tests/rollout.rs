//! Rollouts (spec section 9) through the real binary: a fleet migrating in
//! three waves where chosen sites of the second wave fail. The canary wave
//! passes; the failing wave halts at its budget and its succeeded sites
//! are put back byte for byte; later waves are untouched; the apply exits
//! 1; the status files show the halt; `watch` does not retry it on the same
//! commit. Needs the `failpoints` feature (per-site failpoints
//! `step@site`), as the other fault tests do.
#![cfg(feature = "failpoints")]

mod common;
use std::collections::BTreeMap;

use common::{git, rows_hex, settings_of, site, snapshot, tasks, Fixture};

const FLEET: [&str; 9] = [
    "f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08", "f09",
];
const EARLY: [&str; 4] = ["f02", "f03", "f04", "f05"];
const REST: [&str; 4] = ["f06", "f07", "f08", "f09"];

const ROLLOUT: &str = "rollout:
  waves:
    - { name: canary, select: { sites: [f01] } }
    - { name: early,  select: { labels: { tier: basic } } }
    - { name: rest }
  bake_s: 0
  failure_budget: { max_failed: 1 }
  on_failure: rollback-wave
";

fn domain(s: &str) -> String {
    format!("{s}.example.com")
}

fn write_site(f: &Fixture, s: &str, platform: &str) {
    let labels = if EARLY.contains(&s) {
        "labels: { tier: basic }\n"
    } else {
        ""
    };
    f.write(
        &format!("sites/{s}.yaml"),
        &format!(
            "domain: {}\nplatform: {platform}\nprofile: standard\n{labels}",
            domain(s)
        ),
    );
}

fn commit(f: &Fixture, msg: &str) -> String {
    git(&f.inv(), &["add", "-A"]);
    git(&f.inv(), &["commit", "-qm", msg]);
    git(&f.inv(), &["rev-parse", "HEAD"]).trim().to_string()
}

/// The example inventory in git with nine more sites on shop-1-0, each with
/// a file and a row of its own, and the rollout in `hoist.yaml`.
fn fleet() -> Fixture {
    let f = Fixture::example();
    for s in FLEET {
        write_site(&f, s, "shop-1-0");
    }
    git(&f.inv(), &["init", "-q"]);
    commit(&f, "fleet");
    f.apply();
    for s in FLEET {
        let dir = f
            .host()
            .join(format!("platforms/shop-1-0/sites/{}", domain(s)));
        std::fs::write(dir.join("files/upload.bin"), [0u8, 0xff, b'\n', 1, 2]).unwrap();
        let (db, _) = settings_of(&f, "shop-1-0", &domain(s));
        let c =
            rusqlite::Connection::open(f.host().join(format!("databases/{db}.sqlite"))).unwrap();
        c.execute(
            "INSERT INTO variables(name, value) VALUES ('owner', ?1)",
            [format!("{s} \u{e9}\0x")],
        )
        .unwrap();
    }
    let settings = f.read("hoist.yaml");
    f.write("hoist.yaml", &format!("{settings}{ROLLOUT}"));
    commit(&f, "rollout");
    f
}

/// What "the site as it was" means: every file of its directory but the
/// settings (which name its database), its vhost, and every row of its
/// database, byte for byte.
fn site_state(f: &Fixture, s: &str, platform: &str) -> BTreeMap<String, String> {
    let dir = f
        .host()
        .join(format!("platforms/{platform}/sites/{}", domain(s)));
    let mut out: BTreeMap<String, String> = snapshot(&dir)
        .into_iter()
        .filter(|(k, _)| k != "settings.yaml")
        .collect();
    out.insert(
        "vhost".into(),
        std::fs::read_to_string(f.host().join(format!("vhosts/{}.conf", domain(s)))).unwrap(),
    );
    let (db, _) = settings_of(f, platform, &domain(s));
    let c = rusqlite::Connection::open(f.host().join(format!("databases/{db}.sqlite"))).unwrap();
    for (t, rows) in rows_hex(&c) {
        out.insert(format!("table {t}"), rows.join("\n"));
    }
    out
}

fn tasks_of(f: &Fixture, s: &str) -> Vec<serde_json::Value> {
    tasks(f).into_iter().filter(|t| t["site"] == s).collect()
}

/// The entries of a backup archive (tar.gz) by path, with their bytes.
fn archive(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(gz).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.insert(name, bytes);
    }
    out
}

/// Asserts that the task `t` (a rollback or a restore) took a backup of
/// the site as the rollout left it, on `platform`, before putting it back:
/// its files and its rows (`owner`, when given) are in it.
fn backed_up_first(f: &Fixture, t: &serde_json::Value, platform: &str, owner: Option<&str>) {
    let rel = t["backup"]
        .as_str()
        .unwrap_or_else(|| panic!("no backup: {t}"));
    let entries = archive(&f.host().join(rel));
    let manifest = String::from_utf8_lossy(&entries["hoist-backup.yaml"]).into_owned();
    assert!(
        manifest.contains(&format!("platform: {platform}")),
        "{manifest}"
    );
    assert!(
        entries.keys().any(|k| k.starts_with("site/")),
        "{:?}",
        entries.keys()
    );
    if let Some(owner) = owner {
        assert!(
            entries["site/files/upload.bin"] == [0u8, 0xff, b'\n', 1, 2],
            "{t}"
        );
        let dump = String::from_utf8_lossy(&entries["database.sql"]).into_owned();
        assert!(dump.contains(owner), "{dump}");
    }
}

#[test]
fn a_failing_wave_halts_at_its_budget_and_is_put_back_while_later_waves_are_untouched() {
    let f = fleet();
    for s in FLEET {
        write_site(&f, s, "shop-2-0");
    }
    let head = commit(&f, "security release: the fleet to shop-2-0");
    let before: BTreeMap<&str, _> = FLEET
        .iter()
        .map(|s| (*s, site_state(&f, s, "shop-1-0")))
        .collect();
    let tasks_before: BTreeMap<&str, usize> =
        FLEET.iter().map(|s| (*s, tasks_of(&f, s).len())).collect();

    // The plan shows each site's wave.
    let plan = f.plan_json(&[], 0);
    common::assert_valid_plan(&plan);
    assert_eq!(site(&plan, "f01")["wave"], "canary");
    for s in EARLY {
        assert_eq!(site(&plan, s)["wave"], "early", "{s}");
    }
    for s in REST {
        assert_eq!(site(&plan, s)["wave"], "rest", "{s}");
    }
    assert_eq!(site(&plan, "acme")["wave"], serde_json::Value::Null);

    // In the early wave, f03's switch fails (its task undoes itself) and
    // f04 migrates but fails its check after the bake: two failures, one
    // allowed.
    let out = f.with_failpoint(&["apply", "--yes"], "switch@f03,rollout-check@f04");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(stdout.contains("Rollout HALTED"), "{all}");
    assert!(stdout.contains("wave early"), "{all}");

    // The canary passed and stays migrated.
    assert!(
        f.host()
            .join("platforms/shop-2-0/sites/f01.example.com")
            .is_dir(),
        "{all}"
    );
    assert!(!f
        .host()
        .join("platforms/shop-1-0/sites/f01.example.com")
        .exists());

    // The early wave is back exactly as it was: f03 by its own undo, the
    // others by a rollback task each.
    for s in EARLY {
        assert!(
            !f.host()
                .join(format!("platforms/shop-2-0/sites/{}", domain(s)))
                .exists(),
            "{s} left a copy on shop-2-0: {all}"
        );
        common::assert_same(&before[s], &site_state(&f, s, "shop-1-0"), s);
    }
    for s in ["f02", "f04", "f05"] {
        let t = tasks_of(&f, s);
        let last = t.last().unwrap();
        assert_eq!(last["kind"], "rollback", "{s}: {last}");
        assert_eq!(last["result"], "success", "{s}: {last}");
        assert_eq!(last["wave"], "early");
        // The site as the rollout left it was backed up first: anything
        // written to it since its migrate is not lost.
        let migrate = &t[t.len() - 2];
        assert_eq!(migrate["kind"], "migrate");
        assert_ne!(last["backup"], migrate["backup"], "{s}");
        backed_up_first(&f, last, "shop-2-0", Some(s));
    }
    let f03 = tasks_of(&f, "f03");
    assert_eq!(f03.last().unwrap()["result"], "failed");

    // The rest wave never started.
    for s in REST {
        assert_eq!(tasks_of(&f, s).len(), tasks_before[s], "{s} was touched");
        common::assert_same(&before[s], &site_state(&f, s, "shop-1-0"), s);
    }

    // Recorded with its commit, in the status files and by `status`.
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.host().join("rollout.json")).unwrap()).unwrap();
    assert_eq!(rec["commit"], head.as_str());
    assert_eq!(rec["halted"]["wave"], "early");
    let st = f.read("status/sites/f03.yaml");
    assert!(
        st.contains("halted_wave: early") && st.contains("site: failed"),
        "{st}"
    );
    let st = f.read("status/sites/f04.yaml");
    assert!(st.contains("site: failed"), "{st}");
    let st = f.read("status/sites/f05.yaml");
    assert!(st.contains("site: put-back"), "{st}");
    let st = f.read("status/sites/f07.yaml");
    assert!(st.contains("site: not-started"), "{st}");
    assert!(!f.read("status/sites/f01.yaml").contains("halted_wave"));
    let status = f.ok(&["status"], 0).stdout;
    assert!(status.contains("Rollout HALTED in wave early"), "{status}");

    // `watch` does not retry it on the same commit.
    let n = tasks(&f).len();
    let w = f.run(&["watch", "--once"]);
    assert_eq!(w.code, 1, "{}", w.all());
    assert!(w.all().contains("not retried"), "{}", w.all());
    assert_eq!(tasks(&f).len(), n, "watch started tasks: {}", w.all());

    // A new commit is a new rollout: with nothing failing, it completes.
    let text = f
        .read("hoist.yaml")
        .replace("bake_s: 0", "bake_s: 0 # again");
    f.write("hoist.yaml", &text);
    commit(&f, "roll out again");
    let r = f.run(&["apply", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for s in FLEET {
        assert!(
            f.host()
                .join(format!("platforms/shop-2-0/sites/{}", domain(s)))
                .is_dir(),
            "{s}: {}",
            r.all()
        );
    }
    assert!(!f.read("status/sites/f07.yaml").contains("halted_wave"));
}

#[test]
fn with_halt_only_the_succeeded_sites_stay_and_a_site_no_wave_selects_is_blocked() {
    let f = fleet();
    let text = f
        .read("hoist.yaml")
        .replace("on_failure: rollback-wave", "on_failure: halt")
        .replace("    - { name: rest }\n", "");
    f.write("hoist.yaml", &text);
    for s in FLEET {
        write_site(&f, s, "shop-2-0");
    }
    commit(&f, "no rest wave");
    let plan = f.plan_json(&[], 1);
    for s in REST {
        let p = site(&plan, s);
        assert_eq!(p["blocked"], true, "{p}");
        assert!(p["errors"][0]
            .as_str()
            .unwrap()
            .contains("no rollout wave selects it"));
    }
    let text = f.ok(&["plan"], 1).stdout;
    assert!(
        text.contains("[wave canary]") && text.contains("Waves: canary 1, early 4"),
        "{text}"
    );
    let md = f.ok(&["plan", "--format", "markdown"], 1).stdout;
    assert!(
        md.contains("| early | 4 |") && md.contains("(wave early)"),
        "{md}"
    );

    let out = f.with_failpoint(&["apply", "--yes"], "switch@f02,switch@f05");
    let all = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("left as is  f03"), "{all}");
    // Halted, nothing put back: f03 and f04 stay on the new platform.
    for s in ["f03", "f04"] {
        assert!(f
            .host()
            .join(format!("platforms/shop-2-0/sites/{}", domain(s)))
            .is_dir());
    }
    assert!(!tasks(&f).iter().any(|t| t["kind"] == "rollback"));
}

/// Issue 15 item 5: with `--log-format json` each step's event carries its
/// wave as a field beside the site, task and step, not in its message.
#[test]
fn json_logs_carry_each_steps_wave_as_a_field() {
    let f = fleet();
    for s in FLEET {
        write_site(&f, s, "shop-2-0");
    }
    commit(&f, "to shop-2-0");
    let out = f
        .cmd(&["--log-format", "json", "apply", "--yes"])
        .env("RUST_LOG", "info")
        .output()
        .expect("hoist runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    let wave_of = |site: &str| -> Vec<String> {
        // Each step event names its task by the id of the site's migrate.
        let migrates: Vec<serde_json::Value> = tasks_of(&f, site)
            .into_iter()
            .filter(|t| t["kind"] == "migrate")
            .collect();
        assert_eq!(migrates.len(), 1, "{site}: {migrates:?}");
        let id = migrates[0]["id"].as_str().unwrap();
        events
            .iter()
            .filter(|e| e["fields"]["site"] == site && e["fields"]["step"].is_string())
            .map(|e| {
                let m = e["fields"]["message"].as_str().unwrap();
                assert!(!m.contains("wave"), "the wave is in the message: {e}");
                assert_eq!(e["fields"]["task"], id, "{site}: {e}");
                assert!(!m.contains(id), "the task is in the message: {e}");
                e["fields"]["wave"].as_str().unwrap_or("(none)").to_string()
            })
            .collect()
    };
    for (site, wave) in [("f01", "canary"), ("f03", "early"), ("f08", "rest")] {
        let waves = wave_of(site);
        assert!(!waves.is_empty(), "no step events of {site}: {stderr}");
        assert!(waves.iter().all(|w| w == wave), "{site}: {waves:?}");
    }
    let started: Vec<&str> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "wave started")
        .map(|e| e["fields"]["wave"].as_str().unwrap())
        .collect();
    assert_eq!(started, ["canary", "early", "rest"]);
}

/// `rollback-wave` puts back an update and a delete too: the updated site
/// from its update's backup (its present state backed up first), the
/// deleted one made again from its delete's backup, each exactly as it
/// was.
/// The example installed, then acme behind its platform (an update
/// pending) and bakery no longer declared (with prune: a delete), in one
/// wave that halts at the first failure. Returns both sites' states before.
fn update_and_delete() -> (Fixture, BTreeMap<String, String>, BTreeMap<String, String>) {
    let f = Fixture::example();
    f.apply();
    common::put_acme_behind(&f);
    let acme_before = site_state(&f, "acme", "shop-2-0");
    let bakery_before = site_state(&f, "bakery", "shop-1-0");
    std::fs::remove_file(f.inv().join("sites/bakery.yaml")).unwrap();
    let text = f.read("hoist.yaml").replace("prune: false", "prune: true");
    f.write(
        "hoist.yaml",
        &format!(
            "{text}rollout:\n  waves:\n    - {{ name: first }}\n  bake_s: 0\n  \
             failure_budget: {{ max_failed: 0 }}\n  on_failure: rollback-wave\n"
        ),
    );
    let plan = f.plan_json(&[], 0);
    assert_eq!(site(&plan, "acme")["action"], "update");
    assert_eq!(site(&plan, "bakery")["action"], "delete");
    assert_eq!(site(&plan, "bakery")["wave"], "first");
    (f, acme_before, bakery_before)
}

#[test]
fn a_halted_waves_update_and_delete_are_put_back() {
    let (f, acme_before, bakery_before) = update_and_delete();
    // acme's updates run and pass, then its check after the bake fails.
    let out = f.with_failpoint(&["apply", "--yes"], "rollout-check@acme");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("Rollout HALTED"), "{all}");

    let acme = tasks_of(&f, "acme");
    let (update, back) = (&acme[acme.len() - 2], &acme[acme.len() - 1]);
    assert_eq!(update["kind"], "update", "{update}");
    assert_eq!(update["result"], "success", "{update}");
    assert_eq!(back["kind"], "restore", "{back}");
    assert_eq!(back["result"], "success", "{back}");
    backed_up_first(&f, back, "shop-2-0", None);
    common::assert_same(&acme_before, &site_state(&f, "acme", "shop-2-0"), "acme");

    let bakery = tasks_of(&f, "bakery");
    let (delete, back) = (&bakery[bakery.len() - 2], &bakery[bakery.len() - 1]);
    assert_eq!(delete["kind"], "delete", "{delete}");
    assert_eq!(delete["result"], "success", "{delete}");
    assert_eq!(back["kind"], "rollback", "{back}");
    assert_eq!(back["result"], "success", "{back}");
    common::assert_same(
        &bakery_before,
        &site_state(&f, "bakery", "shop-1-0"),
        "bakery",
    );
    // The site put back is served and observed where it was.
    let st = f.ok(&["status", "--live"], 0).stdout;
    let line = st.lines().find(|l| l.starts_with("bakery ")).unwrap();
    assert!(line.contains("shop-1-0"), "{st}");
}

#[test]
fn a_deleted_sites_put_back_killed_before_its_switch_is_undone_by_the_next_hoist() {
    let (f, _, _) = update_and_delete();
    let out = f.with_failpoint(
        &["apply", "--yes"],
        "rollout-check@acme,settings@bakery:abort",
    );
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(tasks_of(&f, "bakery").pop().unwrap()["result"], "running");
    f.ok(&["status", "--live"], 0);
    let rb = tasks_of(&f, "bakery").pop().unwrap();
    assert_eq!(rb["kind"], "rollback", "{rb}");
    assert_eq!(rb["result"], "failed", "{rb}");
    assert!(
        rb["recovered"].as_str().unwrap().contains("rolled back"),
        "{rb}"
    );
    // bakery stays deleted, as its delete left it: what the put-back
    // made (its directory, its database, anything staged) is gone.
    assert!(!f
        .host()
        .join("platforms/shop-1-0/sites/bakery.example.com")
        .exists());
    assert!(!f.host().join("vhosts/bakery.example.com.conf").exists());
    let dbs: Vec<String> = std::fs::read_dir(f.host().join("databases"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bakery"))
        .collect();
    assert!(dbs.is_empty(), "{dbs:?}");
    for e in std::fs::read_dir(f.host().join("platforms/shop-1-0/sites"))
        .unwrap()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.starts_with('.'), "left over: {n}");
    }
}

/// The fleet moved to shop-2-0 in one commit, then applied with the early
/// wave failing (f03's switch, f04's check) and `point` armed too.
fn halted_with(point: &str) -> (Fixture, BTreeMap<&'static str, BTreeMap<String, String>>) {
    let f = fleet();
    for s in FLEET {
        write_site(&f, s, "shop-2-0");
    }
    commit(&f, "to shop-2-0");
    let before = EARLY
        .iter()
        .map(|s| (*s, site_state(&f, s, "shop-1-0")))
        .collect();
    let out = f.with_failpoint(
        &["apply", "--yes"],
        &format!("switch@f03,rollout-check@f04,{point}"),
    );
    assert_ne!(out.status.code(), Some(0));
    (f, before)
}

/// Where a site's directory is: exactly one of the two platforms.
fn lives_on(f: &Fixture, s: &str) -> &'static str {
    let on = |p: &str| {
        f.host()
            .join(format!("platforms/{p}/sites/{}", domain(s)))
            .is_dir()
    };
    match (on("shop-1-0"), on("shop-2-0")) {
        (true, false) => "shop-1-0",
        (false, true) => "shop-2-0",
        both => panic!("{s} on both or neither platform: {both:?}"),
    }
}

/// Nothing an extraction or a copy left beside the site directories.
fn no_leftovers(f: &Fixture) {
    for p in ["shop-1-0", "shop-2-0"] {
        let dir = f.host().join(format!("platforms/{p}/sites"));
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.starts_with('.'), "left over: {}", e.path().display());
        }
    }
}

#[test]
fn a_rollback_killed_before_its_switch_is_undone_by_the_next_hoist() {
    let (f, _) = halted_with("settings@f02:abort");
    let rb = tasks_of(&f, "f02");
    assert_eq!(rb.last().unwrap()["kind"], "rollback");
    assert_eq!(rb.last().unwrap()["result"], "running");
    // The next hoist that takes the lock recovers it.
    f.ok(&["status", "--live"], 0);
    let rb = tasks_of(&f, "f02").pop().unwrap();
    assert_eq!(rb["kind"], "rollback");
    assert_eq!(rb["result"], "failed", "{rb}");
    assert!(
        rb["recovered"].as_str().unwrap().contains("rolled back"),
        "{rb}"
    );
    // f02 is where the migration put it, online, its half-restored copy
    // and database gone.
    assert_eq!(lives_on(&f, "f02"), "shop-2-0");
    let (db, _) = settings_of(&f, "shop-2-0", &domain("f02"));
    assert_eq!(common::maintenance_of(&f, &db), "0");
    let dbs = std::fs::read_dir(f.host().join("databases"))
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("f02_") && n.ends_with(".sqlite")
        })
        .count();
    assert_eq!(dbs, 1, "one database for f02");
    no_leftovers(&f);
}

#[test]
fn a_rollback_killed_after_its_switch_is_finished_by_the_next_hoist() {
    let (f, before) = halted_with("remove-new@f02:abort");
    f.ok(&["status", "--live"], 0);
    let rb = tasks_of(&f, "f02").pop().unwrap();
    assert_eq!(rb["kind"], "rollback");
    assert_eq!(rb["result"], "success", "{rb}");
    assert_eq!(lives_on(&f, "f02"), "shop-1-0");
    common::assert_same(&before["f02"], &site_state(&f, "f02", "shop-1-0"), "f02");
    no_leftovers(&f);
}

/// A wave selected by a percentage: that share of the sites left (rounded
/// up) is picked the same way in the plan and in the apply, the waves run
/// in order (every task of the percentage wave has ended before the next
/// wave's first starts), and each task record names its wave.
#[test]
fn a_percentage_wave_takes_its_share_of_the_sites_left_and_runs_before_the_next() {
    let f = fleet();
    let text = f.read("hoist.yaml").replace(
        "    - { name: early,  select: { labels: { tier: basic } } }\n",
        "    - { name: half,   select: { percent: 50 } }\n",
    );
    f.write("hoist.yaml", &text);
    for s in FLEET {
        write_site(&f, s, "shop-2-0");
    }
    commit(&f, "the fleet to shop-2-0, half of it first");
    let plan = f.plan_json(&[], 0);
    let wave_of =
        |plan: &serde_json::Value, s: &str| site(plan, s)["wave"].as_str().map(String::from);
    let half: Vec<&str> = FLEET
        .into_iter()
        .filter(|s| wave_of(&plan, s).as_deref() == Some("half"))
        .collect();
    // Eight sites are left after the canary: half of them, 4.
    assert_eq!(half.len(), 4, "{plan}");
    assert_eq!(wave_of(&plan, "f01").as_deref(), Some("canary"));
    let rest: Vec<&str> = FLEET
        .into_iter()
        .filter(|s| wave_of(&plan, s).as_deref() == Some("rest"))
        .collect();
    assert_eq!(rest.len(), 4, "{plan}");
    // The same pick on every plan.
    let again = f.plan_json(&[], 0);
    for s in FLEET {
        assert_eq!(wave_of(&again, s), wave_of(&plan, s), "{s}");
    }

    f.ok(&["apply", "--yes"], 0);
    let parse = |t: &serde_json::Value, k: &str| {
        time::OffsetDateTime::parse(
            t[k].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let migrate_of = |s: &str| {
        tasks_of(&f, s)
            .into_iter()
            .rfind(|t| t["kind"] == "migrate")
            .unwrap_or_else(|| panic!("{s} has no migrate task"))
    };
    for s in FLEET {
        let t = migrate_of(s);
        assert_eq!(t["result"], "success", "{t}");
        assert_eq!(
            t["wave"].as_str().map(String::from),
            wave_of(&plan, s),
            "{t}"
        );
    }
    let half_ended = half
        .iter()
        .map(|s| parse(&migrate_of(s), "finished"))
        .max()
        .unwrap();
    let rest_began = rest
        .iter()
        .map(|s| parse(&migrate_of(s), "started"))
        .min()
        .unwrap();
    assert!(half_ended <= rest_began, "{half_ended} > {rest_began}");
}

/// `rollback-wave` puts back renames and a migrate+rename too: the early
/// wave renames three sites in place and moves a fourth to a new platform
/// under a new name; one rename fails its switch and another its check
/// after the bake, so the wave halts, and every site of it is back under
/// its old name, on its old platform, byte for byte, with no copy left
/// under the new name.
#[test]
fn a_halted_waves_renames_are_put_back_under_their_old_names() {
    let f = fleet();
    let new_domain = |s: &str| format!("{s}.example.org");
    for s in EARLY {
        let platform = if s == "f05" { "shop-2-0" } else { "shop-1-0" };
        f.write(
            &format!("sites/{s}.yaml"),
            &format!(
                "domain: {}\nplatform: {platform}\nprofile: standard\nlabels: {{ tier: basic }}\n",
                new_domain(s)
            ),
        );
    }
    commit(&f, "the basic tier moves to example.org");
    let before: BTreeMap<&str, _> = EARLY
        .iter()
        .map(|s| (*s, site_state(&f, s, "shop-1-0")))
        .collect();
    let plan = f.plan_json(&[], 0);
    for s in ["f02", "f03", "f04"] {
        assert_eq!(site(&plan, s)["action"], "rename", "{s}");
    }
    assert_eq!(site(&plan, "f05")["action"], "migrate+rename");

    let out = f.with_failpoint(&["apply", "--yes"], "switch@f03,rollout-check@f04");
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("Rollout HALTED"), "{all}");
    for s in EARLY {
        for p in ["shop-1-0", "shop-2-0"] {
            assert!(
                !f.host()
                    .join(format!("platforms/{p}/sites/{}", new_domain(s)))
                    .exists(),
                "{s} is still under its new name on {p}: {all}"
            );
        }
        assert!(
            !f.host()
                .join(format!("vhosts/{}.conf", new_domain(s)))
                .exists(),
            "{s}'s new vhost stayed: {all}"
        );
        common::assert_same(&before[s], &site_state(&f, s, "shop-1-0"), s);
    }
    for s in ["f02", "f04", "f05"] {
        let last = tasks_of(&f, s).pop().unwrap();
        assert_eq!(last["kind"], "rollback", "{s}: {last}");
        assert_eq!(last["result"], "success", "{s}: {last}");
    }
}
