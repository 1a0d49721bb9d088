//! Health checks (spec sections 1 and 8): one HTTP request to a site
//! through its web server, with the site's own Host header. Plain HTTP to
//! the web server's `check_url` on this machine or its network, so a small
//! client of our own does it: a request line, a Host header, the status
//! line and at most [`BODY_CAP`] bytes of body read back.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::reach::Reach;
use crate::inventory::HealthCheck;

/// The most of a body read to look for `expect_text`.
pub const BODY_CAP: usize = 1 << 20;

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Health {
    /// The site answered as expected.
    Passed {
        /// The status it answered.
        status: u16,
        /// How long it took.
        ms: u64,
    },
    /// It did not.
    Failed {
        /// Why, for the task log and the status file.
        reason: String,
    },
    /// Nothing serves the site (web kind `file`): nothing to ask.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl Health {
    /// Whether the site may go on: passed or skipped.
    pub fn ok(&self) -> bool {
        !matches!(self, Health::Failed { .. })
    }

    /// One line for the task log.
    pub fn describe(&self, host: &str, path: &str) -> String {
        match self {
            Health::Passed { status, ms } => {
                format!("health check http://{host}{path}: {status} in {ms} ms")
            }
            Health::Failed { reason } => {
                format!("health check http://{host}{path} failed: {reason}")
            }
            Health::Skipped { reason } => format!("health check skipped: {reason}"),
        }
    }
}

/// Sends `check` for `host` to `base` (`http://address:port`).
pub fn probe(reach: &dyn Reach, base: &str, host: &str, check: &HealthCheck) -> Health {
    let started = Instant::now();
    match request(reach, base, host, check) {
        Ok((status, body)) => {
            let ms = started.elapsed().as_millis() as u64;
            if status != check.expect_status {
                return Health::Failed {
                    reason: format!("answered {status}, expected {}", check.expect_status),
                };
            }
            if let Some(text) = &check.expect_text {
                if !contains(&body, text.as_bytes()) {
                    return Health::Failed {
                        reason: format!("the page does not contain {text:?}"),
                    };
                }
            }
            Health::Passed { status, ms }
        }
        Err(reason) => Health::Failed { reason },
    }
}

/// GETs `path` from `base` with Host `host`: the status and the body.
pub fn get(
    reach: &dyn Reach,
    base: &str,
    host: &str,
    path: &str,
    timeout_s: u64,
) -> Result<(u16, Vec<u8>), String> {
    let how = HealthCheck {
        path: path.into(),
        timeout_s,
        ..HealthCheck::default()
    };
    request(reach, base, host, &how)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The address part of `http://address[:port][/]`.
fn authority(base: &str) -> Result<&str, String> {
    base.strip_prefix("http://")
        .map(|r| r.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| format!("check_url {base:?} is not http://ADDRESS:PORT"))
}

fn request(
    reach: &dyn Reach,
    base: &str,
    host: &str,
    check: &HealthCheck,
) -> Result<(u16, Vec<u8>), String> {
    let auth = authority(base)?;
    let with_port = if auth
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        auth.to_owned()
    } else {
        format!("{auth}:80")
    };
    let timeout = Duration::from_secs(check.timeout_s.max(1));
    let mut s = reach.connect(&with_port, timeout)?;
    let req = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: hoist-health\r\nConnection: close\r\n\r\n",
        check.path
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{auth}: {e}"))?;
    let mut buf = Vec::new();
    s.take((BODY_CAP + 16 * 1024) as u64)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{auth}: no answer within {}s: {e}", timeout.as_secs()))?;
    parse_response(&buf)
}

/// The status and body of an HTTP/1.x response.
fn parse_response(buf: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the answer has no complete header")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => Ok((code, buf[end + 4..].to_vec())),
        _ => Err(format!("not an HTTP answer: {status_line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_strictly() {
        assert_eq!(
            parse_response(b"HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\nbody").unwrap(),
            (503, b"body".to_vec())
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }

    #[test]
    fn check_urls_are_http_authorities() {
        assert_eq!(
            authority("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(authority("http://127.0.0.1/").unwrap(), "127.0.0.1");
        assert!(authority("https://x").is_err());
        assert!(authority("http://x/y").is_err());
    }

    #[test]
    fn a_closed_port_fails_the_check() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let h = probe(
            &crate::driver::reach::Here,
            &format!("http://127.0.0.1:{port}"),
            "a.example",
            &HealthCheck::default(),
        );
        assert!(!h.ok(), "{h:?}");
    }
}
