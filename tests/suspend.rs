//! `suspend:` (spec sections 2, 6, 7) through the real binary: a suspended
//! site or server is planned as `noop` with its reason, who and until when,
//! and nothing that changes things touches it.

mod common;
use common::{server_state, site, state_diff, Fixture};

/// The example inventory, installed.
fn installed() -> Fixture {
    let f = Fixture::example();
    f.apply();
    f
}

/// Rewrites a site file with a `suspend:` block added.
fn suspend_site(f: &Fixture, name: &str, block: &str) {
    let rel = format!("sites/{name}.yaml");
    let text = f.read(&rel);
    f.write(&rel, &format!("{text}suspend:\n{block}"));
}

/// A status file (`status/<kind>s/<name>.yaml`) as JSON, checked against
/// its schema (`schema/status-<kind>.schema.json`).
fn status_file(f: &Fixture, kind: &str, name: &str) -> serde_json::Value {
    let text = f.read(&format!("status/{kind}s/{name}.yaml"));
    let v: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let schema = std::fs::read_to_string(format!(
        "{}/schema/status-{kind}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let schema = jsonschema::draft202012::new(&serde_json::from_str(&schema).unwrap()).unwrap();
    let errors: Vec<String> = schema.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{kind} {name}: {errors:?}\n{text}");
    v
}

const AUDIT: &str = "  reason: \"client audit: *do not* touch <b>\"\n  by: ops@example.org\n  until: 2099-01-31T00:00:00Z\n";

#[test]
fn a_suspended_site_whose_platform_changed_is_shown_but_not_migrated() {
    let f = installed();
    f.set_site("acme", "platform", "shop-2-0");
    suspend_site(&f, "acme", AUDIT);
    let before = server_state(&f);

    let plan = f.plan_json(&["--detailed-exitcode"], 0);
    let acme = site(&plan, "acme");
    assert_eq!(acme["action"], "noop", "{acme}");
    let held = &acme["suspended"];
    assert_eq!(held["reason"], "client audit: *do not* touch <b>");
    assert_eq!(held["by"], "ops@example.org");
    assert_eq!(held["until"], "2099-01-31T00:00:00Z");
    assert_eq!(held["would"], "migrate");
    assert_eq!(held["server"], serde_json::Value::Null);
    assert_eq!(site(&plan, "bakery")["suspended"], serde_json::Value::Null);
    common::assert_valid_plan(&plan);

    let text = f.ok(&["plan"], 0).stdout;
    assert!(
        text.contains(
            "suspended: client audit: *do not* touch <b> (by ops@example.org), until 2099-01-31T00:00:00Z; would migrate"
        ),
        "{text}"
    );
    let md = f.ok(&["plan", "--format", "markdown"], 0).stdout;
    assert!(md.contains("### ⏸️ Suspended (1)"), "{md}");
    assert!(
        md.contains("&#42;do not&#42; touch &lt;b&gt;") && !md.contains("<b>\n"),
        "markdown escapes the reason: {md}"
    );

    let r = f.apply();
    assert!(!r.stdout.contains("migrate"), "{}", r.all());
    assert_eq!(state_diff(&before, &server_state(&f)), Vec::<String>::new());
    assert!(
        f.read("status/sites/acme.yaml").contains("sync: suspended"),
        "{}",
        f.read("status/sites/acme.yaml")
    );
    let held = &status_file(&f, "site", "acme")["suspended"];
    assert_eq!(held["reason"], "client audit: *do not* touch <b>", "{held}");
    assert_eq!(held["by"], "ops@example.org");
    assert_eq!(held["until"], "2099-01-31T00:00:00Z");
    assert_eq!(held["would"], "migrate");
    assert!(status_file(&f, "site", "bakery").get("suspended").is_none());
    let status = f.ok(&["status"], 0).stdout;
    let line = status.lines().find(|l| l.contains("acme")).unwrap();
    assert!(line.contains("suspended"), "{status}");
    assert!(
        status.contains(
            "  acme: suspended: client audit: *do not* touch <b> (by ops@example.org), until 2099-01-31T00:00:00Z; would migrate"
        ),
        "{status}"
    );

    // Restore would overwrite it: refused. A backup only reads it.
    let r = f.run(&["restore", "acme"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("restore refused"), "{}", r.all());
    assert_eq!(state_diff(&before, &server_state(&f)), Vec::<String>::new());
    f.ok(&["backup", "acme"], 0);

    // Once `until` has passed, the migration goes ahead.
    let text = f
        .read("sites/acme.yaml")
        .replace("2099-01-31", "2020-01-31");
    f.write("sites/acme.yaml", &text);
    let plan = f.plan_json(&[], 0);
    assert_eq!(site(&plan, "acme")["action"], "migrate");
    assert_eq!(site(&plan, "acme")["suspended"], serde_json::Value::Null);
}

#[test]
fn watch_reports_a_suspended_sites_drift_and_leaves_it() {
    let f = installed();
    suspend_site(&f, "bakery", "  reason: handed over to the client\n");
    // Self-heal on (it is off by default), so that leaving the site alone
    // is the suspension's doing.
    let settings = f
        .read("hoist.yaml")
        .replace("self_heal: false", "self_heal: true");
    assert!(settings.contains("self_heal: true"), "{settings}");
    f.write("hoist.yaml", &settings);
    // Behind hoist's back: its vhost is removed.
    let vhost = f.host().join("vhosts/bakery.example.com.conf");
    std::fs::remove_file(&vhost).unwrap();
    let w = f.run(&["watch", "--once"]);
    assert_eq!(w.code, 0, "{}", w.all());
    assert!(
        !vhost.exists(),
        "a suspended site was repaired: {}",
        w.all()
    );
    assert!(
        w.stderr
            .contains("site bakery is out of sync but left alone")
            && w.stderr.contains("handed over to the client"),
        "{}",
        w.all()
    );
    // The same site unsuspended is put back.
    let text = f.read("sites/bakery.yaml");
    let text = text.split("suspend:").next().unwrap().to_string();
    f.write("sites/bakery.yaml", &text);
    f.ok(&["watch", "--once"], 0);
    assert!(vhost.exists());
}

#[test]
fn a_suspended_server_holds_back_every_site_and_build_on_it() {
    let f = installed();
    let settings = f.read("hoist.yaml").replace(
        "local: { kind: local, root: .hoist-host }",
        "local: { kind: local, root: .hoist-host, suspend: { reason: datacenter move, by: ops } }",
    );
    f.write("hoist.yaml", &settings);
    f.set_site("acme", "platform", "shop-2-1");
    let before = server_state(&f);
    let plan = f.plan_json(&["--detailed-exitcode"], 0);
    for s in plan["sites"].as_array().unwrap() {
        assert_eq!(s["action"], "noop", "{s}");
        assert_eq!(s["suspended"]["server"], "local", "{s}");
        assert_eq!(s["suspended"]["reason"], "datacenter move", "{s}");
    }
    assert_eq!(site(&plan, "acme")["suspended"]["would"], "migrate");
    f.apply();
    assert_eq!(state_diff(&before, &server_state(&f)), Vec::<String>::new());
    for s in ["acme", "bakery"] {
        let held = &status_file(&f, "site", s)["suspended"];
        assert_eq!(held["server"], "local", "{s}: {held}");
        assert_eq!(held["reason"], "datacenter move", "{s}: {held}");
        assert_eq!(held["by"], "ops", "{s}: {held}");
        assert_eq!(held["until"], serde_json::Value::Null, "{s}: {held}");
    }
    let built = &status_file(&f, "platform", "shop-1-0")["suspended"];
    assert_eq!(built["server"], "local", "{built}");
    let status = f.ok(&["status"], 0).stdout;
    assert!(
        status.contains("  platform shop-1-0: suspended with server local: datacenter move (by ops), until further notice"),
        "{status}"
    );
}

#[test]
fn a_bad_suspension_is_an_error_where_it_is_written() {
    let f = Fixture::example();
    suspend_site(&f, "acme", "  reason: audit\n  until: next tuesday\n");
    suspend_site(&f, "bakery", "  reason: \"  \"\n");
    let r = f.run(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let out = r.all();
    let line = out
        .lines()
        .find(|l| l.contains("sites/acme.yaml:"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("sites/acme.yaml:9:10:") && line.contains("RFC 3339"),
        "{out}"
    );
    assert!(
        out.contains("sites/bakery.yaml:") && out.contains("suspend.reason must say why"),
        "{out}"
    );
    // Reason is required at all.
    let f = Fixture::example();
    suspend_site(&f, "acme", "  by: ops\n");
    assert_eq!(f.run(&["validate"]).code, 1);
}
