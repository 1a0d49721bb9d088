//! Webhook notifications (spec section 10): a signed JSON POST per event,
//! delivered in the background so that a slow or dead receiver never delays
//! or fails a task.
//!
//! Each configured webhook gets a delivery thread with a bounded queue: an
//! emit never blocks (when the queue is full the oldest event is dropped and
//! counted). A delivery is tried [`RetryPolicy::tries`] times with
//! exponential backoff and jitter, each try bounded by connect and read
//! timeouts. At process exit [`Notifier::flush`] waits at most
//! [`FLUSH_WAIT`] for what is queued; anything left is logged as abandoned.
//!
//! The body is signed: `X-Hoist-Signature: sha256=<hex HMAC-SHA256 of the
//! exact body>`, with the secret read from the webhook's `secret_env` at
//! each delivery. Neither the secret nor the webhook's path (which may hold
//! a token) is ever logged or sent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

pub use crate::inventory::webhooks::{Event, NotifySettings, Webhook};
use crate::plan::Endpoint;

/// How long the process waits at exit for queued deliveries.
pub const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Events queued per webhook before the oldest is dropped.
pub const QUEUE_CAP: usize = 1000;

/// How a delivery is retried and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub tries: u32,
    /// The wait before the second try; each further wait doubles, and each
    /// is jittered down to between half and all of it.
    pub base: Duration,
    /// Connecting to the receiver.
    pub connect_timeout: Duration,
    /// Sending the body and reading the answer.
    pub io_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            tries: 5,
            base: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `done` (1-based), before jitter.
    pub fn backoff(&self, done: u32) -> Duration {
        self.base
            .saturating_mul(1 << done.saturating_sub(1).min(16))
    }
}

/// What happened: the fields of the JSON body other than the delivery's
/// own (`delivery`, `timestamp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The event.
    pub event: Event,
    /// The site, when the event is about one.
    pub site: Option<String>,
    /// The task id, when a task ran.
    pub task: Option<String>,
    /// What the task did (`migrate acme`, `build shop-2-1`).
    pub what: Option<String>,
    /// The task's result (`success`, `warning`, `failed`).
    pub result: Option<String>,
    /// Where the site was.
    pub from: Option<Endpoint>,
    /// Where it was to go.
    pub to: Option<Endpoint>,
    /// Why it failed, its warnings, or what drifted.
    pub message: Option<String>,
    /// The inventory commit.
    pub inventory_commit: Option<String>,
}

impl Notice {
    /// A notice of `event` with every other field empty.
    pub fn new(event: Event) -> Notice {
        Notice {
            event,
            site: None,
            task: None,
            what: None,
            result: None,
            from: None,
            to: None,
            message: None,
            inventory_commit: None,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    delivery: &'a str,
    timestamp: &'a str,
    #[serde(flatten)]
    notice: &'a Notice,
}

/// The exact JSON body of one delivery.
pub fn payload(notice: &Notice, delivery: &str, timestamp: &str) -> Vec<u8> {
    serde_json::to_vec(&Body {
        delivery,
        timestamp,
        notice,
    })
    .expect("a notice serializes")
}

/// The `X-Hoist-Signature` value of `body`: `sha256=<hex HMAC-SHA256>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `header` is the signature of `body` under `secret`, compared in
/// constant time (for receivers written in Rust, and the tests).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = unhex(hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn delivery_id() -> String {
    use rand::Rng;
    let v: u128 = rand::rng().random();
    format!("{v:032x}")
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// How one try ended.
enum Try {
    Delivered,
    /// Worth another try (a 5xx, 408, 429, or no answer).
    Retry(String),
    /// Not worth another (another 4xx, no secret).
    GiveUp(String),
}

struct Job {
    event: Event,
    body: Vec<u8>,
    delivery: String,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// A job is being delivered (taken off the queue, not finished).
    busy: bool,
}

/// One webhook's queue and delivery thread.
struct Worker {
    hook: Webhook,
    policy: RetryPolicy,
    queue: Mutex<Queue>,
    /// Signalled when a job is queued and when the worker goes idle.
    changed: Condvar,
    dropped: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl Worker {
    fn spawn(hook: Webhook, policy: RetryPolicy) -> Arc<Worker> {
        let w = Arc::new(Worker {
            hook,
            policy,
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let me = w.clone();
        // A detached thread: it lives as long as the process, and exit
        // only waits for it through `flush`.
        let spawned = std::thread::Builder::new()
            .name("hoist-webhook".into())
            .spawn(move || me.run());
        if let Err(e) = spawned {
            tracing::error!(webhook = %w.hook.shown(), "cannot start the webhook thread: {e}");
        }
        w
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A poisoned queue is still a queue: delivery must go on.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job without ever blocking on the receiver.
    fn push(&self, job: Job) {
        let mut q = self.lock();
        if q.jobs.len() >= QUEUE_CAP {
            if let Some(old) = q.jobs.pop_front() {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    webhook = %self.hook.shown(),
                    event = old.event.as_str(),
                    dropped = n,
                    "webhook queue full: the oldest event was dropped"
                );
            }
        }
        q.jobs.push_back(job);
        drop(q);
        self.changed.notify_all();
    }

    fn run(&self) {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(self.policy.connect_timeout)
            .timeout_read(self.policy.io_timeout)
            .timeout_write(self.policy.io_timeout)
            .redirects(0)
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .build();
        loop {
            let job = {
                let mut q = self.lock();
                loop {
                    if let Some(j) = q.jobs.pop_front() {
                        q.busy = true;
                        break j;
                    }
                    q.busy = false;
                    self.changed.notify_all();
                    q = self.changed.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.deliver(&agent, &job);
        }
    }

    fn deliver(&self, agent: &ureq::Agent, job: &Job) {
        let mut last = String::new();
        for done in 0..self.policy.tries.max(1) {
            if done > 0 {
                std::thread::sleep(jittered(self.policy.backoff(done)));
            }
            match self.try_once(agent, job) {
                Try::Delivered => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(webhook = %self.hook.shown(), event = job.event.as_str(), delivery = %job.delivery, "webhook delivered");
                    return;
                }
                Try::GiveUp(why) => {
                    last = why;
                    break;
                }
                Try::Retry(why) => {
                    tracing::debug!(webhook = %self.hook.shown(), try_ = done + 1, "webhook try failed: {why}");
                    last = why;
                }
            }
        }
        self.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            webhook = %self.hook.shown(),
            event = job.event.as_str(),
            delivery = %job.delivery,
            "webhook not delivered: {last}"
        );
    }

    fn try_once(&self, agent: &ureq::Agent, job: &Job) -> Try {
        // Read at each delivery, so a rotated secret is picked up; its
        // value goes nowhere but into the MAC.
        let secret = match std::env::var(&self.hook.secret_env) {
            Ok(s) if !s.is_empty() => s,
            _ => {
                return Try::GiveUp(format!(
                    "the environment variable {} (secret_env) is not set",
                    self.hook.secret_env
                ))
            }
        };
        let r = agent
            .post(&self.hook.url)
            .set("Content-Type", "application/json")
            .set("X-Hoist-Event", job.event.as_str())
            .set("X-Hoist-Delivery", &job.delivery)
            .set(
                "X-Hoist-Signature",
                &signature(secret.as_bytes(), &job.body),
            )
            .send_bytes(&job.body);
        match r {
            Ok(resp) if (200..300).contains(&resp.status()) => Try::Delivered,
            Ok(resp) => Try::GiveUp(format!("the receiver answered {}", resp.status())),
            Err(ureq::Error::Status(code, _)) if code >= 500 || code == 408 || code == 429 => {
                Try::Retry(format!("the receiver answered {code}"))
            }
            Err(ureq::Error::Status(code, _)) => {
                Try::GiveUp(format!("the receiver answered {code}"))
            }
            // A transport error names the URL: say only what kind it was.
            Err(ureq::Error::Transport(t)) => Try::Retry(format!("{:?}", t.kind())),
        }
    }

    /// Waits until this worker has nothing queued or in hand, or until
    /// `deadline`; returns how many jobs are left.
    fn wait_idle(&self, deadline: Instant) -> usize {
        let mut q = self.lock();
        loop {
            let left = q.jobs.len() + q.busy as usize;
            let now = Instant::now();
            if left == 0 || now >= deadline {
                return left;
            }
            q = self
                .changed
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// `d` scaled by a random factor in [0.5, 1]: "equal jitter", so that many
/// daemons retrying one receiver do not do it in step.
fn jittered(d: Duration) -> Duration {
    use rand::Rng;
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Counts of what a notifier did, for tests and the exit log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Deliveries a receiver accepted.
    pub delivered: u64,
    /// Deliveries given up after their tries.
    pub failed: u64,
    /// Events dropped from a full queue.
    pub dropped: u64,
}

/// Delivers notices to webhooks; cheap to share. Workers are started on
/// first use of each webhook, so an inventory that adds one mid-daemon is
/// served without a restart.
pub struct Notifier {
    policy: RetryPolicy,
    workers: Mutex<Vec<Arc<Worker>>>,
}

impl Notifier {
    /// A notifier with its own retry policy (tests use a short base).
    pub fn new(policy: RetryPolicy) -> Notifier {
        Notifier {
            policy,
            workers: Mutex::new(Vec::new()),
        }
    }

    fn worker(&self, hook: &Webhook) -> Arc<Worker> {
        let mut ws = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = ws.iter().find(|w| &w.hook == hook) {
            return w.clone();
        }
        let w = Worker::spawn(hook.clone(), self.policy);
        ws.push(w.clone());
        w
    }

    /// Sends `notice` to every webhook of `settings` that wants its event.
    /// Never blocks on a receiver; never fails.
    pub fn emit(&self, settings: &NotifySettings, notice: &Notice) {
        for hook in settings
            .webhooks
            .iter()
            .filter(|h| h.events.contains(&notice.event))
        {
            let delivery = delivery_id();
            let body = payload(notice, &delivery, &now_rfc3339());
            self.worker(hook).push(Job {
                event: notice.event,
                body,
                delivery,
            });
        }
    }

    /// Waits at most `wait` for every queued delivery to end; returns how
    /// many were still queued or in hand when it gave up.
    pub fn flush(&self, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        let ws: Vec<Arc<Worker>> = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ws.iter().map(|w| w.wait_idle(deadline)).sum()
    }

    /// What was delivered, given up and dropped so far.
    pub fn counts(&self) -> Counts {
        let ws = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        ws.iter().fold(Counts::default(), |c, w| Counts {
            delivered: c.delivered + w.delivered.load(Ordering::Relaxed),
            failed: c.failed + w.failed.load(Ordering::Relaxed),
            dropped: c.dropped + w.dropped.load(Ordering::Relaxed),
        })
    }
}

/// The process's notifier, used by `apply` and `watch`.
pub fn global() -> &'static Notifier {
    static GLOBAL: OnceLock<Notifier> = OnceLock::new();
    GLOBAL.get_or_init(|| Notifier::new(RetryPolicy::default()))
}

/// Flushes the process's notifier before exit, waiting at most
/// [`FLUSH_WAIT`], and logs what could not be delivered in that time.
pub fn flush_at_exit() {
    let Some(n) = GLOBAL_STARTED.get().map(|_| global()) else {
        return;
    };
    let left = n.flush(FLUSH_WAIT);
    if left > 0 {
        tracing::warn!(
            left,
            "exiting with {left} webhook delivery(ies) unfinished after {}s",
            FLUSH_WAIT.as_secs()
        );
    }
}

/// Set once anything was emitted, so that exit does not start a notifier
/// just to flush it.
static GLOBAL_STARTED: OnceLock<()> = OnceLock::new();

/// Sends `notice` through the process's notifier (see [`Notifier::emit`]).
pub fn emit(settings: &NotifySettings, notice: &Notice) {
    if settings.webhooks.is_empty() {
        return;
    }
    GLOBAL_STARTED.get_or_init(|| ());
    global().emit(settings, notice);
}

/// The drift last reported per site, so that a drift the daemon only
/// reports (self-heal off) is told once, not at every pass.
fn reported_drift() -> std::sync::MutexGuard<'static, std::collections::HashMap<String, String>> {
    static REPORTED: OnceLock<Mutex<std::collections::HashMap<String, String>>> = OnceLock::new();
    REPORTED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Called by the watch loop when it finds `site` changed behind hoist's
/// back: a `drift` event saying what changed (`detail`). `observed` is the
/// fingerprint of what the servers hold: the same drift seen again (same
/// detail, same fingerprint) is not told again until [`drift_cleared`].
pub fn drift(
    settings: &NotifySettings,
    site: &str,
    detail: &str,
    observed: Option<&str>,
    commit: Option<&str>,
) {
    let key = format!("{detail}\n{}", observed.unwrap_or(""));
    if reported_drift().insert(site.to_string(), key.clone()) == Some(key) {
        return;
    }
    emit(
        settings,
        &Notice {
            site: Some(site.to_string()),
            message: Some(detail.to_string()),
            inventory_commit: commit.map(str::to_string),
            ..Notice::new(Event::Drift)
        },
    );
}

/// Called by the watch loop when `site` is seen synced: a later drift of
/// it is news again.
pub fn drift_cleared(site: &str) {
    reported_drift().remove(site);
}

/// For the rollout: a `rollout-halted` event, with why it halted.
pub fn rollout_halted(settings: &NotifySettings, why: &str, commit: Option<&str>) {
    emit(
        settings,
        &Notice {
            message: Some(why.to_string()),
            inventory_commit: commit.map(str::to_string),
            ..Notice::new(Event::RolloutHalted)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe".
        let s = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &s));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &s));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &s));
        assert!(!verify(b"Jefe", b"x", "sha256=zz"));
        assert!(!verify(b"Jefe", b"x", "md5=00"));
    }

    #[test]
    fn payload_names_every_field() {
        let n = Notice {
            site: Some("acme".into()),
            task: Some("t1".into()),
            what: Some("migrate acme".into()),
            result: Some("failed".into()),
            from: Some(Endpoint {
                platform: crate::names::PlatformName::new("shop-1").unwrap(),
                domain: crate::names::Domain::new("acme.example.com").unwrap(),
                server: None,
            }),
            to: None,
            message: Some("step backup: disk full".into()),
            inventory_commit: Some("abc123".into()),
            ..Notice::new(Event::TaskFailed)
        };
        let body = payload(&n, "d1", "2026-01-01T00:00:00Z");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["event"], "task-failed");
        assert_eq!(v["delivery"], "d1");
        assert_eq!(v["timestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(v["site"], "acme");
        assert_eq!(v["task"], "t1");
        assert_eq!(v["result"], "failed");
        assert_eq!(v["from"]["platform"], "shop-1");
        assert_eq!(v["from"]["domain"], "acme.example.com");
        assert!(v["to"].is_null());
        assert_eq!(v["message"], "step backup: disk full");
        assert_eq!(v["inventory_commit"], "abc123");
    }

    #[test]
    fn backoff_doubles_and_jitter_stays_within_half() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=4).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800]);
        for _ in 0..100 {
            let j = jittered(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn emit_without_webhooks_starts_nothing() {
        let n = Notifier::new(RetryPolicy::default());
        n.emit(&NotifySettings::default(), &Notice::new(Event::Drift));
        assert_eq!(n.flush(Duration::ZERO), 0);
        assert!(n.workers.lock().unwrap().is_empty());
    }

    #[test]
    fn full_queue_drops_the_oldest_and_counts() {
        // A worker never started: push alone fills the queue.
        let w = Worker {
            hook: Webhook {
                url: "http://127.0.0.1:9/".into(),
                events: vec![Event::Drift],
                secret_env: "X".into(),
            },
            policy: RetryPolicy::default(),
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        };
        for i in 0..QUEUE_CAP + 3 {
            w.push(Job {
                event: Event::Drift,
                body: vec![],
                delivery: i.to_string(),
            });
        }
        assert_eq!(w.dropped.load(Ordering::Relaxed), 3);
        let q = w.lock();
        assert_eq!(q.jobs.len(), QUEUE_CAP);
        assert_eq!(q.jobs.front().unwrap().delivery, "3");
    }
}
