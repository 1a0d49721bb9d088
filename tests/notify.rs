//! Webhooks (spec section 10) against a real HTTP receiver on 127.0.0.1:
//! signed bodies, retries, and a receiver that never answers.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::Fixture;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "s3cr3t-webhook-key-7f1c";

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
    /// Checks the signature independently of hoist's own code.
    fn signed_with(&self, secret: &str) -> bool {
        let Some(hex) = self
            .header("X-Hoist-Signature")
            .and_then(|h| h.strip_prefix("sha256="))
        else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&self.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        want == hex
    }
}

/// How the receiver answers the n-th request (0-based).
#[derive(Clone, Copy)]
enum Answer {
    /// Answer 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Accept the connection, read the request, never answer.
    Never,
}

/// A receiver on an ephemeral port: each request is sent on the channel.
/// Connections it does not answer are kept open for the test's life.
fn receiver(answer: Answer) -> (String, mpsc::Receiver<Received>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/hoist?token=path-secret",
        l.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let Some(req) = read_request(&mut conn) else {
                continue;
            };
            let status = match answer {
                Answer::FailFirst(k) if n < k => Some("500 Internal Server Error"),
                Answer::FailFirst(_) => Some("200 OK"),
                Answer::Never => None,
            };
            if tx.send(req).is_err() {
                return;
            }
            match status {
                Some(s) => {
                    let _ = conn.write_all(
                        format!("HTTP/1.1 {s}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .as_bytes(),
                    );
                }
                None => held.push(conn),
            }
        }
    });
    (url, rx)
}

fn read_request(conn: &mut TcpStream) -> Option<Received> {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        headers,
        body: buf[head_end..head_end + len].to_vec(),
    })
}

fn with_webhook(f: &Fixture, url: &str, events: &str) {
    let mut yaml = f.read("hoist.yaml");
    yaml.push_str(&format!(
        "notify:\n  webhooks:\n    - url: {url}\n      events: [{events}]\n      secret_env: HOIST_TEST_WEBHOOK_SECRET\n"
    ));
    f.write("hoist.yaml", &yaml);
}

/// `apply --yes` with every site's create failing at create-database.
fn failing_apply(f: &Fixture) -> common::Run {
    let o = f
        .cmd(&["apply", "--yes"])
        .env("HOIST_TEST_WEBHOOK_SECRET", SECRET)
        .env("HOIST_FAILPOINT", "create-database")
        .output()
        .unwrap();
    common::Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The count before ` failed` in `Apply complete: ...`.
fn failed_count(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Apply complete:"))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    line.split(", ")
        .find_map(|p| {
            p.trim_start_matches("Apply complete: ")
                .strip_suffix(" failed")
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_failed_task_is_posted_signed_and_without_the_secret() {
    let (url, rx) = receiver(Answer::FailFirst(0));
    let f = Fixture::example();
    with_webhook(&f, &url, "task-failed");
    let r = failing_apply(&f);
    assert_eq!(r.code, 1, "{}", r.all());
    let failed = failed_count(&r.stdout);
    assert!(failed >= 1, "{}", r.all());
    let mut sites = Vec::new();
    for _ in 0..failed {
        let req = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no webhook for every failed task: {}", r.all()));
        assert!(req.signed_with(SECRET), "bad signature: {req:?}");
        assert!(!req.signed_with("another secret"));
        let raw = String::from_utf8_lossy(&req.body);
        assert!(!raw.contains(SECRET), "the secret is in the body: {raw}");
        for (k, v) in &req.headers {
            assert!(!v.contains(SECRET), "the secret is in header {k}");
        }
        assert_eq!(req.header("X-Hoist-Event"), Some("task-failed"));
        let v = req.json();
        assert_eq!(v["event"], "task-failed", "{v}");
        assert_eq!(v["result"], "failed", "{v}");
        assert_eq!(req.header("X-Hoist-Delivery"), v["delivery"].as_str());
        assert!(v["task"].is_string(), "{v}");
        assert!(v["timestamp"].is_string(), "{v}");
        assert!(v["to"]["platform"].is_string(), "{v}");
        assert!(v["from"].is_null(), "a create comes from nowhere: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("create-database"),
            "{v}"
        );
        assert!(v.get("inventory_commit").is_some(), "{v}");
        sites.push(v["site"].as_str().unwrap().to_string());
    }
    // One event per failed task, each naming its own site; and no event
    // for the platform builds that succeeded (not subscribed).
    sites.sort();
    sites.dedup();
    assert_eq!(sites.len(), failed, "{sites:?}");
    // No more: hoist has exited, and it waits at exit for each delivery's
    // answer, which the receiver gives only once the request is queued.
    assert!(rx.try_recv().is_err());
    // Neither the secret nor the receiver's path is in any output.
    assert!(!r.all().contains(SECRET));
    assert!(!r.all().contains("path-secret"), "{}", r.all());
}

#[test]
fn a_receiver_failing_twice_gets_the_event_on_the_third_try() {
    use hoist::notify::{Event, Notice, Notifier, NotifySettings, RetryPolicy, Webhook};
    let (url, rx) = receiver(Answer::FailFirst(2));
    // Unique to this test; read by the delivery thread.
    std::env::set_var("HOIST_TEST_RETRY_SECRET", SECRET);
    let n = Notifier::new(RetryPolicy {
        base: Duration::from_millis(20),
        ..RetryPolicy::default()
    });
    let settings = NotifySettings {
        webhooks: vec![Webhook {
            url,
            events: vec![Event::Drift],
            secret_env: "HOIST_TEST_RETRY_SECRET".into(),
        }],
    };
    let notice = Notice {
        site: Some("acme".into()),
        message: Some("vhost removed".into()),
        ..Notice::new(Event::Drift)
    };
    n.emit(&settings, &notice);
    // An event not subscribed to is not sent.
    n.emit(&settings, &Notice::new(Event::TaskSucceeded));
    assert_eq!(n.flush(Duration::from_secs(60)), 0, "delivery did not end");
    let got: Vec<Received> = rx.try_iter().collect();
    assert_eq!(got.len(), 3, "{got:?}");
    for r in &got {
        assert!(r.signed_with(SECRET));
        assert_eq!(r.body, got[0].body, "every try sends the same body");
        assert_eq!(r.json()["event"], "drift");
        assert_eq!(r.json()["site"], "acme");
    }
    let c = n.counts();
    assert_eq!((c.delivered, c.failed, c.dropped), (1, 0, 0));
}

#[test]
fn a_receiver_that_never_answers_does_not_hold_up_the_apply() {
    let (url, rx) = receiver(Answer::Never);
    let f = Fixture::example();
    with_webhook(&f, &url, "task-failed, task-succeeded");
    // The same apply without a webhook, for the expected outcome.
    let plain = Fixture::example();
    let want = failing_apply(&plain);

    // `output()` returns only once the apply has exited, while the
    // receiver still holds its first connection unanswered.
    let r = failing_apply(&f);
    assert_eq!(r.code, want.code, "{}", r.all());
    assert_eq!(failed_count(&r.stdout), failed_count(&want.stdout));
    let summary = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("Apply complete:"))
            .map(str::to_string)
    };
    assert_eq!(summary(&r.stdout), summary(&want.stdout), "{}", r.all());
    // The webhook was tried: the receiver took the request and never
    // answered it.
    let req = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the receiver got a request");
    assert!(req.signed_with(SECRET));
    // The tasks' records are as without a webhook.
    let t = common::last_task(&f);
    assert_eq!(t["result"], common::last_task(&plain)["result"]);
}

#[test]
fn bad_notify_settings_are_reported_where_they_are() {
    let f = Fixture::example();
    let mut yaml = f.read("hoist.yaml");
    yaml.push_str(
        "notify:\n  webhooks:\n    - url: ftp://hooks.example.org/x\n      events: [task-failed, exploded]\n      secret_env: OK_NAME\n    - url: https://hooks.example.org/y\n      events: [drift]\n      secret_env: \"not a name\"\n",
    );
    f.write("hoist.yaml", &yaml);
    let r = f.ok(&["validate"], 1);
    let out = r.all();
    let base = yaml.lines().count() - 8; // the line before `notify:`
    assert!(
        out.contains(&format!("hoist.yaml:{}:", base + 3))
            && out.contains("\"ftp://hooks.example.org/x\" is not an http:// or https:// URL"),
        "{out}"
    );
    assert!(
        out.contains(&format!("hoist.yaml:{}:", base + 4)) && out.contains("exploded"),
        "{out}"
    );
    assert!(
        out.contains(&format!("hoist.yaml:{}:", base + 8))
            && out.contains("is not an environment variable name"),
        "{out}"
    );
}

#[test]
fn a_secret_written_inline_is_refused_without_being_echoed() {
    for (hook, line) in [
        (
            "    - url: https://hooks.example.org/x\n      events: [drift]\n      secret_env: S\n      secret: hunter2-inline\n",
            4,
        ),
        (
            "    - url: https://bob:hunter2-inline@hooks.example.org/x\n      events: [drift]\n      secret_env: S\n",
            1,
        ),
    ] {
        let f = Fixture::example();
        let mut yaml = f.read("hoist.yaml");
        let base = yaml.lines().count() + 2;
        yaml.push_str("notify:\n  webhooks:\n");
        yaml.push_str(hook);
        f.write("hoist.yaml", &yaml);
        let r = f.ok(&["validate"], 1);
        let out = r.all();
        assert!(
            out.contains(&format!("hoist.yaml:{}:", base + line))
                && out.contains("a secret written inline"),
            "{out}"
        );
        assert!(!out.contains("hunter2"), "the secret is echoed: {out}");
    }
}

#[test]
fn notify_null_and_absent_are_no_webhooks() {
    let f = Fixture::example();
    let mut yaml = f.read("hoist.yaml");
    yaml.push_str("notify: null\n");
    f.write("hoist.yaml", &yaml);
    f.ok(&["validate"], 0);
}

mod gitops_common;

#[test]
fn watch_tells_a_drift_once_while_it_only_reports_it() {
    use gitops_common::{example, hoist_cmd, init_repo, settings, wait_until};
    let (url, rx) = receiver(Answer::FailFirst(0));
    let tmp = tempfile::tempdir().unwrap();
    let inv = tmp.path().join("inv");
    example(&inv);
    let mut yaml = settings(None, false, 1, 100);
    yaml.push_str(&format!(
        "notify:\n  webhooks:\n    - url: {url}\n      events: [drift]\n      secret_env: HOIST_TEST_WEBHOOK_SECRET\n"
    ));
    std::fs::write(inv.join("hoist.yaml"), yaml).unwrap();
    init_repo(&inv);
    let log = tmp.path().join("watch.log");
    let mut child = hoist_cmd(&inv, &["watch"])
        .env("HOIST_TEST_WEBHOOK_SECRET", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let passes = || {
        read_log()
            .lines()
            .filter(|l| l.contains(": pass ") && l.contains(" done"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(120), || passes() >= 1),
        "{}",
        read_log()
    );
    // Behind hoist's back: the bakery site is removed.
    let host = inv.join(".hoist-host");
    std::fs::remove_dir_all(host.join("platforms/shop-1-0/sites/bakery.example.com")).unwrap();
    std::fs::remove_file(host.join("vhosts/bakery.example.com.conf")).unwrap();
    let got = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no drift event: {}", read_log()));
    assert!(got.signed_with(SECRET));
    let v = got.json();
    assert_eq!(v["event"], "drift", "{v}");
    assert_eq!(v["site"], "bakery", "{v}");
    assert!(v["inventory_commit"].is_string(), "{v}");
    // Three more passes see the same drift: it is not told again.
    let seen = passes();
    assert!(
        wait_until(Duration::from_secs(60), || passes() >= seen + 3),
        "{}",
        read_log()
    );
    assert!(rx.try_recv().is_err(), "the same drift was told twice");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_halted_rollout_is_posted_signed_once() {
    let (url, rx) = receiver(Answer::FailFirst(0));
    let f = Fixture::example();
    with_webhook(&f, &url, "rollout-halted");
    let mut yaml = f.read("hoist.yaml");
    yaml.push_str(
        "rollout:\n  waves:\n    - { name: everyone }\n  failure_budget: { max_failed: 1 }\n",
    );
    f.write("hoist.yaml", &yaml);
    // Every create fails: far over the budget of one.
    let r = failing_apply(&f);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stdout.contains("Rollout HALTED"), "{}", r.all());
    let req = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no rollout-halted webhook: {}", r.all()));
    assert!(req.signed_with(SECRET), "bad signature: {req:?}");
    assert_eq!(req.header("X-Hoist-Event"), Some("rollout-halted"));
    let v = req.json();
    assert_eq!(v["event"], "rollout-halted", "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("halted in wave everyone"), "{v}");
    assert!(!String::from_utf8_lossy(&req.body).contains(SECRET));
    // Once per halt, not once per failed task (hoist has exited: every
    // request it made is queued, see above).
    assert!(rx.try_recv().is_err());
}
