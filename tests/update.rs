//! `update`: a site whose schema is behind the platform it lives on (an
//! older backup restored, say) is planned as `update` with its pending
//! update numbers, updated in place by `apply`, and then in sync.

mod common;
use common::{put_acme_behind, settings_of, site, tasks, verdict, Fixture};

fn acme_db(f: &Fixture) -> rusqlite::Connection {
    let (db, _) = settings_of(f, "shop-2-0", "acme.example.com");
    rusqlite::Connection::open(f.host().join(format!("databases/{db}.sqlite"))).unwrap()
}

fn schema_of(c: &rusqlite::Connection, pkg: &str) -> i64 {
    c.query_row(
        "SELECT schema_version FROM system WHERE name = ?1",
        [pkg],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_site_behind_its_platform_is_planned_and_applied_as_an_update() {
    let f = Fixture::example();
    f.apply();
    let dir = f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.com/files");
    std::fs::write(dir.join("a.txt"), "kept").unwrap();
    put_acme_behind(&f);
    let c = acme_db(&f);
    c.execute(
        "INSERT INTO files (path) VALUES ('sites/acme.example.com/files/a.txt')",
        [],
    )
    .unwrap();
    assert_eq!(schema_of(&c, "core"), 3, "the restore put acme behind");
    drop(c);

    // `status` (from the status files the restore wrote) and `plan` say so
    let st = f.ok(&["status"], 0).stdout;
    let line = st.lines().find(|l| l.starts_with("acme ")).unwrap();
    assert!(line.contains("out-of-sync"), "{st}");
    let plan = f.plan_json(&["--detailed-exitcode"], 2);
    let acme = site(&plan, "acme");
    assert_eq!(acme["action"], "update", "{acme}");
    assert_eq!(acme["blocked"], false);
    assert_eq!(acme["from"], acme["to"]);
    assert_eq!(verdict(acme, "core")["verdict"], "upgrade");
    assert_eq!(verdict(acme, "core")["pending"], serde_json::json!([4, 5]));
    assert_eq!(verdict(acme, "node")["pending"], serde_json::json!([2]));
    assert_eq!(plan["summary"]["sites"]["update"], 1);
    let text = f.ok(&["plan"], 0).stdout;
    assert!(
        text.contains("update") && text.contains("core: upgrade 1.1.0 -> 2.0.0, updates 4, 5"),
        "{text}"
    );

    let r = f.apply();
    assert!(r.stdout.contains("success  update acme"), "{}", r.all());
    let c = acme_db(&f);
    assert_eq!((schema_of(&c, "core"), schema_of(&c, "node")), (5, 2));
    let aliases: i64 = c
        .query_row("SELECT count(*) FROM core_path_alias", [], |r| r.get(0))
        .expect("core update 5 made its table");
    assert!(aliases >= 0);
    let path: String = c
        .query_row("SELECT path FROM files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(path, "sites/acme.example.com/files/a.txt");
    let m: String = c
        .query_row(
            "SELECT value FROM variables WHERE name='maintenance_mode'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(m, "0", "online");
    assert_eq!(
        std::fs::read_to_string(
            f.host()
                .join("platforms/shop-2-0/sites/acme.example.com/files/a.txt")
        )
        .unwrap(),
        "kept"
    );

    let t = tasks(&f).pop().unwrap();
    assert_eq!(
        (t["kind"].as_str(), t["result"].as_str()),
        (Some("update"), Some("success"))
    );
    let steps: Vec<&str> = common::names(&t["steps"]);
    assert_eq!(
        steps,
        [
            "observe",
            "maintenance-on",
            "backup",
            "keep-copy",
            "update",
            "clear-caches",
            "maintenance-off",
            "health-check",
            "remove-copy"
        ]
    );
    let log = t["log"].to_string();
    assert!(
        log.contains("applied update 4 of core")
            && log.contains("applied update 5 of core")
            && log.contains("applied update 2 of node")
            && log.contains("health check skipped"),
        "{log}"
    );
    assert!(
        f.host().join(t["backup"].as_str().unwrap()).is_file(),
        "backup kept"
    );
    let leftovers: Vec<_> = std::fs::read_dir(f.host().join("databases"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // in sync now, by the plan and by the status files
    f.plan_json(&["--detailed-exitcode"], 0);
    let st = f.ok(&["status"], 0).stdout;
    let line = st.lines().find(|l| l.starts_with("acme ")).unwrap();
    assert!(line.contains("synced") && line.contains("update"), "{st}");
}
