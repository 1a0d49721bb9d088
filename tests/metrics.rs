//! `hoist watch --metrics`: Prometheus text served by the real daemon,
//! scraped concurrently while it reconciles.

mod gitops_common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use gitops_common::*;

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, metrics: &str) -> Daemon {
    let log = dir.with_extension("watch.log");
    let child = hoist_cmd(dir, &["watch", "--metrics", metrics])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Daemon { child, log }
}

/// A GET over a fresh connection: status code and body.
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full response");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (code, ctype, body.to_string())
}

/// Parses exposition text strictly: every family has HELP and TYPE before
/// its samples, every sample line is `name{labels} value`. Returns each
/// sample line's series (name and labels) with its value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::BTreeSet::new();
    let mut helped = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let name = p.next().unwrap().to_string();
            let kind = p.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helped.contains(&name), "TYPE before HELP: {line}");
            typed.insert(name);
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let v: f64 = value
            .parse()
            .or_else(|_| {
                if value == "+Inf" {
                    Ok(f64::INFINITY)
                } else {
                    Err(())
                }
            })
            .unwrap_or_else(|_| panic!("bad value: {line:?}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "sample before its TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
        }
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "repeated series: {line}"
        );
    }
    out
}

/// Each finished install task's duration in seconds, from its record's
/// `started` and `finished`, by site.
fn install_seconds(tasks: &Path) -> BTreeMap<String, f64> {
    let at = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    };
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(tasks).unwrap().flatten() {
        if e.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Some(rec) = hoist::task::parse(&std::fs::read(e.path()).unwrap()) else {
            continue;
        };
        if rec.kind != hoist::task::TaskKind::Install {
            continue;
        }
        let finished = rec.finished.as_deref().expect("the pass has ended");
        let took = (at(finished) - at(&rec.started)).as_seconds_f64();
        out.insert(rec.site.expect("a site task").to_string(), took);
    }
    out
}

#[test]
fn watch_serves_metrics_that_parse_under_concurrent_scrapes() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    std::fs::write(inv.join("hoist.yaml"), settings(None, true, 1, 100)).unwrap();
    // acme's install does real work for a while (a big recursive query),
    // so that its create task lasts measurably longer than its bookkeeping.
    let sql = inv.join("codebases/shop-1.1/packages/core/install.sql");
    let mut text = std::fs::read_to_string(&sql).unwrap();
    text.push_str("\nCREATE TABLE slow_probe AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) SELECT count(*) AS n FROM c;\n");
    std::fs::write(&sql, text).unwrap();
    init_repo(&inv);
    let d = start(&inv, "127.0.0.1:0");

    let mut addr = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            if let Some(rest) = d.log().split("metrics listening on ").nth(1) {
                addr = rest.split_whitespace().next().unwrap().to_string();
                true
            } else {
                false
            }
        }),
        "no listening address logged: {}",
        d.log()
    );

    // The first pass has ended once it is counted.
    let mut m = BTreeMap::new();
    assert!(
        wait_until(Duration::from_secs(120), || {
            let (code, _, body) = get(&addr, "/metrics");
            assert_eq!(code, 200);
            m = parse(&body);
            m.keys().any(|k| k.starts_with("hoist_reconciles_total{"))
        }),
        "no pass counted: {}",
        d.log()
    );
    let sites = std::fs::read_dir(inv.join("sites")).unwrap().count() as f64;
    assert_eq!(m["hoist_sites{sync_state=\"synced\"}"], sites, "{m:?}");
    assert_eq!(m["hoist_sites{sync_state=\"failed\"}"], 0.0);
    // Every state is there, zeros too, so that an alert on one has a series.
    assert_eq!(m["hoist_sites{sync_state=\"suspended\"}"], 0.0, "{m:?}");
    assert!(
        m["hoist_reconciles_total{result=\"success\"}"] >= 1.0,
        "{m:?}"
    );
    assert!(m["hoist_last_reconcile_timestamp_seconds"] > 1.6e9, "{m:?}");
    assert_eq!(m["hoist_rollout_halted"], 0.0);
    // The first pass built the platforms and created every site.
    let created = m["hoist_tasks_total{kind=\"create\",result=\"success\"}"];
    assert!(created >= 1.0, "{m:?}");
    assert_eq!(
        m["hoist_task_duration_seconds_count{kind=\"create\"}"],
        m["hoist_task_duration_seconds_bucket{kind=\"create\",le=\"+Inf\"}"]
    );
    assert!(m["hoist_task_duration_seconds_count{kind=\"create\"}"] >= created);
    // Each create is timed from its start: the histogram's sum is at least
    // the tasks' own recorded durations (a timer started at the task's end
    // would give microseconds).
    let recorded = install_seconds(&inv.join(".hoist-host/tasks"));
    let acme = recorded["acme"];
    assert!(acme > 0.05, "acme's install was not slow: {recorded:?}");
    let total: f64 = recorded.values().sum();
    let sum = m["hoist_task_duration_seconds_sum{kind=\"create\"}"];
    // 1 ms a task for the wall clock against the monotonic one.
    assert!(
        sum + 0.001 * recorded.len() as f64 >= total,
        "sum {sum} below the recorded {recorded:?}"
    );
    assert!(m.contains_key("hoist_tasks_total{kind=\"build\",result=\"success\"}"));

    // A client that connects and says nothing holds up no one.
    let _idle = TcpStream::connect(&addr).unwrap();
    // Scrapes from several threads at once, while passes go on: each
    // answer is whole and parses, and counters never go back.
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut last = 0.0;
                for _ in 0..10 {
                    let (code, ctype, body) = get(&addr, "/metrics");
                    assert_eq!(code, 200);
                    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
                    let m = parse(&body);
                    let n: f64 = m
                        .iter()
                        .filter(|(k, _)| k.starts_with("hoist_reconciles_total{"))
                        .map(|(_, v)| v)
                        .sum();
                    assert!(n >= last, "the pass count went back");
                    last = n;
                    let total: f64 = m
                        .iter()
                        .filter(|(k, _)| k.starts_with("hoist_sites{"))
                        .map(|(_, v)| v)
                        .sum();
                    assert_eq!(total, sites, "an inconsistent snapshot: {m:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a scrape thread failed");
    }
    assert_eq!(get(&addr, "/").0, 404);
    assert_eq!(get(&addr, "/metricsx").0, 404);
}

#[test]
fn a_bad_metrics_address_stops_watch_with_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    init_repo(&inv);
    let out = hoist(&inv, &["watch", "--once", "--metrics", "not an address"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad metrics address not an address"), "{err}");
}

/// A rollout that halts in the daemon says so in `hoist_rollout_halted`,
/// and stays halted (not retried) on the same commit.
#[cfg(feature = "failpoints")]
#[test]
fn a_halted_rollout_sets_the_gauge() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    std::fs::write(
        inv.join("hoist.yaml"),
        format!(
            "{}rollout:\n  waves:\n    - {{ name: everyone }}\n",
            settings(None, false, 1, 100)
        ),
    )
    .unwrap();
    init_repo(&inv);
    let log = inv.with_extension("watch.log");
    let child = hoist_cmd(&inv, &["watch", "--metrics", "127.0.0.1:0"])
        .env("HOIST_FAILPOINT", "create-database")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon { child, log };
    let mut addr = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            if let Some(rest) = d.log().split("metrics listening on ").nth(1) {
                addr = rest.split_whitespace().next().unwrap().to_string();
                true
            } else {
                false
            }
        }),
        "no listening address logged: {}",
        d.log()
    );
    // Every create fails: the budget (none by default) is spent at once.
    assert!(
        wait_until(Duration::from_secs(120), || {
            let (_, _, body) = get(&addr, "/metrics");
            parse(&body).get("hoist_rollout_halted") == Some(&1.0)
        }),
        "the gauge never said halted: {}",
        d.log()
    );
    // The next passes hold it back instead of retrying it.
    assert!(
        wait_until(Duration::from_secs(120), || d.log().contains("not retried")),
        "{}",
        d.log()
    );
    let (_, _, body) = get(&addr, "/metrics");
    assert_eq!(parse(&body)["hoist_rollout_halted"], 1.0);
}
