//! Prometheus metrics (spec section 10): a registry the apply and the watch
//! daemon record into, rendered in the text exposition format (0.0.4), and
//! a small HTTP server for `hoist watch --metrics ADDR`.
//!
//! The registry is one mutex over plain maps: recording is a few map
//! updates per task or pass, and a scrape renders under the same lock, so
//! it always sees a consistent snapshot (a pass's sites all at once).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::status::SyncState;

/// Upper bounds (seconds) of the task duration histogram: tasks take from
/// a second (a verify) to an hour (a large migrate).
pub const DURATION_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Every sync state, so that `hoist_sites` shows zeros too.
const SYNC_STATES: [SyncState; 6] = [
    SyncState::Synced,
    SyncState::OutOfSync,
    SyncState::Blocked,
    SyncState::Failed,
    SyncState::Unmanaged,
    SyncState::Suspended,
];

#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    /// Observations per bucket (not cumulative), one more for +Inf.
    counts: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += v;
    }
}

#[derive(Debug, Default)]
struct State {
    sites: BTreeMap<String, u64>,
    tasks: BTreeMap<(String, String), u64>,
    durations: BTreeMap<String, Histogram>,
    reconciles: BTreeMap<String, u64>,
    last_reconcile: Option<f64>,
    rollout_halted: bool,
}

/// The metrics of one process.
#[derive(Debug, Default)]
pub struct Registry {
    state: Mutex<State>,
}

/// How a reconcile pass ended, the `result` label of
/// `hoist_reconciles_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassResult {
    /// Every task it ran succeeded (or there was none).
    Success,
    /// A task failed.
    Failed,
    /// The pass could not finish (bad inventory, status not written).
    Error,
}

impl PassResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PassResult::Success => "success",
            PassResult::Failed => "failed",
            PassResult::Error => "error",
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Metrics are advisory: a panic elsewhere must not stop them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One task ended: `kind` is its action (`create`, `migrate`, `build`,
    /// ...), `result` its result.
    pub fn record_task(&self, kind: &str, result: &str, took: Duration) {
        let mut s = self.lock();
        *s.tasks.entry((kind.into(), result.into())).or_default() += 1;
        s.durations
            .entry(kind.into())
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// The sites by sync state after a pass; replaces the previous counts.
    pub fn record_sites(&self, states: impl IntoIterator<Item = SyncState>) {
        let mut counts: BTreeMap<String, u64> = SYNC_STATES
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        for st in states {
            *counts.entry(st.as_str().to_string()).or_default() += 1;
        }
        self.lock().sites = counts;
    }

    /// A reconcile pass ended at `unix_seconds`.
    pub fn record_reconcile(&self, result: PassResult, unix_seconds: f64) {
        let mut s = self.lock();
        *s.reconciles.entry(result.as_str().into()).or_default() += 1;
        s.last_reconcile = Some(unix_seconds);
    }

    /// Whether the current rollout is halted.
    pub fn set_rollout_halted(&self, halted: bool) {
        self.lock().rollout_halted = halted;
    }

    /// The whole registry in the Prometheus text format, from one snapshot.
    pub fn render(&self) -> String {
        let s = self.lock();
        let mut out = String::new();
        family(
            &mut out,
            "hoist_sites",
            "gauge",
            "Sites by sync state against the current inventory.",
        );
        for (state, n) in &s.sites {
            sample(&mut out, "hoist_sites", &[("sync_state", state)], *n as f64);
        }
        family(
            &mut out,
            "hoist_tasks_total",
            "counter",
            "Tasks ended, by kind and result.",
        );
        for ((kind, result), n) in &s.tasks {
            sample(
                &mut out,
                "hoist_tasks_total",
                &[("kind", kind), ("result", result)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "hoist_task_duration_seconds",
            "histogram",
            "How long tasks took, by kind.",
        );
        for (kind, h) in &s.durations {
            let mut cumulative = 0u64;
            for (i, le) in DURATION_BUCKETS.iter().enumerate() {
                cumulative += h.counts[i];
                sample(
                    &mut out,
                    "hoist_task_duration_seconds_bucket",
                    &[("kind", kind), ("le", &number(*le))],
                    cumulative as f64,
                );
            }
            cumulative += h.counts[DURATION_BUCKETS.len()];
            sample(
                &mut out,
                "hoist_task_duration_seconds_bucket",
                &[("kind", kind), ("le", "+Inf")],
                cumulative as f64,
            );
            sample(
                &mut out,
                "hoist_task_duration_seconds_sum",
                &[("kind", kind)],
                h.sum,
            );
            sample(
                &mut out,
                "hoist_task_duration_seconds_count",
                &[("kind", kind)],
                cumulative as f64,
            );
        }
        family(
            &mut out,
            "hoist_reconciles_total",
            "counter",
            "Reconcile passes of hoist watch, by result.",
        );
        for (result, n) in &s.reconciles {
            sample(
                &mut out,
                "hoist_reconciles_total",
                &[("result", result)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "hoist_last_reconcile_timestamp_seconds",
            "gauge",
            "When the last reconcile pass ended, in Unix seconds.",
        );
        if let Some(t) = s.last_reconcile {
            sample(&mut out, "hoist_last_reconcile_timestamp_seconds", &[], t);
        }
        family(
            &mut out,
            "hoist_rollout_halted",
            "gauge",
            "1 while the current rollout is halted, else 0.",
        );
        sample(
            &mut out,
            "hoist_rollout_halted",
            &[],
            if s.rollout_halted { 1.0 } else { 0.0 },
        );
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape(help, false));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v, true));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// Escapes a label value (`\`, `"`, newline) or HELP text (`\`, newline).
pub fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as Prometheus writes it: integers without a fraction.
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

/// The process's registry, which `apply` and `watch` record into.
pub fn global() -> &'static Arc<Registry> {
    static GLOBAL: OnceLock<Arc<Registry>> = OnceLock::new();
    GLOBAL.get_or_init(|| Arc::new(Registry::new()))
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be parsed or resolved.
    #[error("bad metrics address {addr}: {message}")]
    Address {
        /// The address given.
        addr: String,
        /// Why.
        message: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The largest request head read; anything longer is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 32;
/// A client must send its request and take the answer within this.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running metrics server; stopped when dropped.
pub struct Handle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Handle {
    /// The address it listens on (the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Serves `registry` at `http://ADDR/metrics` on a thread; each connection
/// on its own thread (at most `MAX_CONNECTIONS`), with read and write
/// timeouts, so a slow client never holds up another.
pub fn serve(addr: &str, registry: Arc<Registry>) -> Result<Handle, MetricsError> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| MetricsError::Address {
            addr: addr.into(),
            message: e.to_string(),
        })?
        .next()
        .ok_or_else(|| MetricsError::Address {
            addr: addr.into(),
            message: "it resolves to no address".into(),
        })?;
    let listener = TcpListener::bind(sock).map_err(|source| MetricsError::Bind {
        addr: addr.into(),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| MetricsError::Bind {
        addr: addr.into(),
        source,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("hoist-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::SeqCst);
                    continue; // dropped: closed at once
                }
                let (registry, mine) = (registry.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name("hoist-metrics-conn".into())
                    .spawn(move || {
                        answer(conn, &registry);
                        mine.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    // The thread never ran: give its slot back here.
                    active.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!("metrics: cannot start a connection thread");
                }
            }
        })
        .map_err(|source| MetricsError::Bind {
            addr: addr.into(),
            source,
        })?;
    Ok(Handle { addr: local, stop })
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    TooLarge,
}

/// Routes a request head (pure, for the unit tests).
fn route(head: &[u8]) -> Route {
    if head.len() > MAX_REQUEST {
        return Route::TooLarge;
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    match (method, path) {
        (Some("GET"), Some("/metrics")) => Route::Metrics { head_only: false },
        (Some("HEAD"), Some("/metrics")) => Route::Metrics { head_only: true },
        _ => Route::NotFound,
    }
}

fn answer(mut conn: TcpStream, registry: &Registry) {
    let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    // Read up to the end of the head, and at most one byte past the limit.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() <= MAX_REQUEST {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let (status, ctype, body, head_only) = match route(&head) {
        Route::Metrics { head_only } => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render(),
            head_only,
        ),
        Route::NotFound => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
            false,
        ),
        Route::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            "request too large\n".to_string(),
            false,
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes());
    if !head_only {
        let _ = conn.write_all(body.as_bytes());
    }
    let _ = conn.flush();
}

/// Records one reconcile pass of `hoist watch` into the process's registry.
pub fn record_pass(failed: usize, error: bool) {
    let result = if error {
        PassResult::Error
    } else if failed > 0 {
        PassResult::Failed
    } else {
        PassResult::Success
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    global().record_reconcile(result, now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_registry_renders_every_family() {
        let r = Registry::new();
        let text = r.render();
        for name in [
            "hoist_sites",
            "hoist_tasks_total",
            "hoist_task_duration_seconds",
            "hoist_reconciles_total",
            "hoist_last_reconcile_timestamp_seconds",
            "hoist_rollout_halted",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
        }
        assert!(text.ends_with("hoist_rollout_halted 0\n"), "{text}");
    }

    #[test]
    fn golden_text() {
        let r = Registry::new();
        r.record_sites([SyncState::Synced, SyncState::Synced, SyncState::Failed]);
        r.record_task("create", "success", Duration::from_millis(700));
        r.record_task("create", "success", Duration::from_secs(2));
        r.record_task("create", "failed", Duration::from_secs(4000));
        r.record_reconcile(PassResult::Failed, 1_700_000_000.5);
        r.set_rollout_halted(true);
        let want = "\
# HELP hoist_sites Sites by sync state against the current inventory.
# TYPE hoist_sites gauge
hoist_sites{sync_state=\"blocked\"} 0
hoist_sites{sync_state=\"failed\"} 1
hoist_sites{sync_state=\"out-of-sync\"} 0
hoist_sites{sync_state=\"suspended\"} 0
hoist_sites{sync_state=\"synced\"} 2
hoist_sites{sync_state=\"unmanaged\"} 0
# HELP hoist_tasks_total Tasks ended, by kind and result.
# TYPE hoist_tasks_total counter
hoist_tasks_total{kind=\"create\",result=\"failed\"} 1
hoist_tasks_total{kind=\"create\",result=\"success\"} 2
# HELP hoist_task_duration_seconds How long tasks took, by kind.
# TYPE hoist_task_duration_seconds histogram
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"0.5\"} 0
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"1\"} 1
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"2.5\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"5\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"10\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"30\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"60\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"120\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"300\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"600\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"1800\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"3600\"} 2
hoist_task_duration_seconds_bucket{kind=\"create\",le=\"+Inf\"} 3
hoist_task_duration_seconds_sum{kind=\"create\"} 4002.7
hoist_task_duration_seconds_count{kind=\"create\"} 3
# HELP hoist_reconciles_total Reconcile passes of hoist watch, by result.
# TYPE hoist_reconciles_total counter
hoist_reconciles_total{result=\"failed\"} 1
# HELP hoist_last_reconcile_timestamp_seconds When the last reconcile pass ended, in Unix seconds.
# TYPE hoist_last_reconcile_timestamp_seconds gauge
hoist_last_reconcile_timestamp_seconds 1700000000.5
# HELP hoist_rollout_halted 1 while the current rollout is halted, else 0.
# TYPE hoist_rollout_halted gauge
hoist_rollout_halted 1
";
        assert_eq!(r.render(), want);
    }

    #[test]
    fn every_sync_state_is_zero_filled() {
        // The match has no wildcard, so a new state fails to compile here
        // until it is listed (and then this test checks it is in the list).
        let listed = |st: SyncState| match st {
            SyncState::Synced
            | SyncState::OutOfSync
            | SyncState::Blocked
            | SyncState::Failed
            | SyncState::Unmanaged
            | SyncState::Suspended => SYNC_STATES.contains(&st),
        };
        for st in [
            SyncState::Synced,
            SyncState::OutOfSync,
            SyncState::Blocked,
            SyncState::Failed,
            SyncState::Unmanaged,
            SyncState::Suspended,
        ] {
            assert!(listed(st), "{} is not zero-filled", st.as_str());
        }
        let r = Registry::new();
        r.record_sites([SyncState::Synced]);
        let text = r.render();
        assert!(
            text.contains("hoist_sites{sync_state=\"suspended\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let r = Registry::new();
        r.record_task("a\\b\"c\nd", "ok", Duration::ZERO);
        let text = r.render();
        assert!(
            text.contains("hoist_tasks_total{kind=\"a\\\\b\\\"c\\nd\",result=\"ok\"} 1\n"),
            "{text}"
        );
        assert_eq!(escape("x\\y\nz\"", false), "x\\\\y\\nz\"");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_count() {
        let r = Registry::new();
        for ms in [1u64, 600, 900, 3_000, 45_000, 10_000_000] {
            r.record_task("migrate", "success", Duration::from_millis(ms));
        }
        let text = r.render();
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("hoist_task_duration_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), DURATION_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        assert_eq!(*buckets.last().unwrap(), 6);
        assert_eq!(buckets[0], 1); // 1 ms <= 0.5 s
        assert_eq!(buckets[1], 3); // 0.6 s and 0.9 s <= 1 s
        assert!(text.contains("hoist_task_duration_seconds_count{kind=\"migrate\"} 6\n"));
    }

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b""), Route::NotFound);
        assert_eq!(route(&vec![b'a'; MAX_REQUEST + 1]), Route::TooLarge);
    }
}
