//! The Drupal 7 runner: one operation on one real site, carried out by
//! php-cli with hoist's own PHP script (`runner.php`, embedded here).
//!
//! `php -r` gets only a short loader on its command line. On stdin it reads
//! the runner's length, the runner, then the request, which may hold the
//! database and administrator passwords: nothing secret is ever in a
//! process's arguments or environment. The runner answers with one JSON
//! object on stdout. A run that outlives its timeout is killed (its whole
//! process group) and reported as such.
//!
//! Building requests ([`request_json`]) and reading answers
//! ([`parse_answer`]) are pure; [`Php`] is the narrow I/O seam.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::settings::Database;
use crate::driver::host::Host;
use crate::render::{Secret, REDACTED};

/// hoist's PHP runner, compiled into the binary.
pub const RUNNER_PHP: &str = include_str!("runner.php");

/// What `php -r` runs: reads the runner (its length on the first line of
/// stdin), then runs it; the runner reads the rest of stdin as its request.
const LOADER: &str = "$n = (int) fgets(STDIN); $s = stream_get_contents(STDIN, $n); \
                      if (strlen($s) !== $n) { fwrite(STDERR, 'hoist: runner truncated'); exit(3); } \
                      eval('?>' . $s);";

/// The runner's default time limit: a big site's updates take minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The operations the runner knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Install the site with Drupal's installer.
    Install(Box<Install>),
    /// Run pending `hook_update_N`.
    Updatedb,
    /// Set the `maintenance_mode` variable on or off.
    Maintenance(bool),
    /// Report core version, profile, maintenance and module schemas.
    Status,
    /// `drupal_flush_all_caches()`.
    CacheClear,
    /// Rewrite `sites/<from>/` to the site's own directory wherever Drupal
    /// 7 stores paths (after a rename).
    FixPaths {
        /// The old site directory (a plain domain).
        from: String,
    },
}

impl Operation {
    /// The operation's name, as in the request and in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Install(_) => "install",
            Operation::Updatedb => "updatedb",
            Operation::Maintenance(true) => "maintenance on",
            Operation::Maintenance(false) => "maintenance off",
            Operation::Status => "status",
            Operation::CacheClear => "cache-clear",
            Operation::FixPaths { .. } => "fix-paths",
        }
    }

    fn secrets(&self) -> Vec<&Secret> {
        match self {
            Operation::Install(i) => {
                let mut s = vec![&i.account_pass];
                s.extend(i.database.password());
                s
            }
            _ => Vec::new(),
        }
    }
}

/// What an install needs besides the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// The install profile, such as `standard` or `minimal`.
    pub profile: String,
    /// The site's name.
    pub site_name: String,
    /// The site's e-mail address.
    pub site_mail: String,
    /// The first user's name.
    pub account_name: String,
    /// The first user's e-mail address.
    pub account_mail: String,
    /// The first user's password.
    pub account_pass: Secret,
    /// The database, as the site's settings.php names it.
    pub database: Database,
}

/// A Drupal 7 site: a release tree and a directory under its `sites/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The Drupal root (absolute).
    pub root: PathBuf,
    /// The site's directory under `sites/`, its primary domain.
    pub dir: String,
}

impl Site {
    /// A site in `root` under `sites/<dir>`.
    pub fn new(root: impl Into<PathBuf>, dir: impl Into<String>) -> Site {
        Site {
            root: root.into(),
            dir: dir.into(),
        }
    }

    /// The URL the runner makes Drupal see, so that Drupal picks
    /// `sites/<dir>` and derives its base URL from it.
    pub fn url(&self) -> String {
        format!("http://{}/index.php", self.dir)
    }

    fn describe(&self) -> String {
        format!("{} in {}", self.dir, self.root.display())
    }
}

/// Why a runner operation failed. Each variant names the operation and the
/// site; none holds a password.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The request could not be built.
    #[error("drupal {op} on {site}: bad request: {reason}")]
    Request {
        /// Operation name.
        op: &'static str,
        /// The site.
        site: String,
        /// What is wrong.
        reason: String,
    },
    /// php could not be started or talked to.
    #[error("drupal {op} on {site}: cannot run {program}: {source}")]
    Spawn {
        /// Operation name.
        op: &'static str,
        /// The site.
        site: String,
        /// The php program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// php ran longer than allowed and was killed.
    #[error("drupal {op} on {site}: php did not finish within {after:?} and was killed")]
    Timeout {
        /// Operation name.
        op: &'static str,
        /// The site.
        site: String,
        /// The time limit.
        after: Duration,
    },
    /// php ended without a readable answer.
    #[error("drupal {op} on {site}: php gave no answer ({status}): {detail}")]
    NoAnswer {
        /// Operation name.
        op: &'static str,
        /// The site.
        site: String,
        /// How php ended.
        status: String,
        /// The end of what it printed.
        detail: String,
    },
    /// The runner reported a failure.
    #[error("drupal {op} on {site}: {message}")]
    Failed {
        /// Operation name.
        op: &'static str,
        /// The site.
        site: String,
        /// Drupal's or the runner's message.
        message: String,
    },
    /// An update function failed; the updates before it are done.
    #[error("drupal updatedb on {site}: {module}_update_{number} failed: {message}")]
    UpdateFailed {
        /// The site.
        site: String,
        /// The module whose update failed.
        module: String,
        /// The update's number.
        number: u32,
        /// Drupal's message.
        message: String,
        /// The updates that ran to completion before it.
        done: Vec<UpdateRan>,
    },
}

/// One update that ran to completion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UpdateRan {
    /// The module.
    pub module: String,
    /// The update's number.
    pub number: u32,
    /// Its doc comment, as update.php shows it.
    #[serde(default)]
    pub description: String,
    /// How many times it was called (more than 1 for a multi-pass update).
    pub passes: u32,
    /// What it returned, if anything.
    #[serde(default)]
    pub message: String,
}

/// An enabled module's schema on the site and in the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ModuleSchema {
    /// `system.schema_version`.
    pub schema: i64,
    /// The highest `hook_update_N` in the code (0 when none).
    pub code_schema: i64,
}

/// A site's state as the runner reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Status {
    /// The code's core version (`VERSION`).
    pub core: String,
    /// The `install_profile` variable.
    pub profile: Option<String>,
    /// The `site_name` variable.
    pub site_name: Option<String>,
    /// The `maintenance_mode` variable.
    pub maintenance: bool,
    /// Enabled modules by name.
    pub modules: BTreeMap<String, ModuleSchema>,
}

impl Status {
    /// Modules whose code has updates the database has not run.
    pub fn pending(&self) -> Vec<(&str, i64, i64)> {
        self.modules
            .iter()
            .filter(|(_, m)| m.code_schema > m.schema)
            .map(|(n, m)| (n.as_str(), m.schema, m.code_schema))
            .collect()
    }
}

/// What updatedb did.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UpdateReport {
    /// Each update run, in order.
    pub updates: Vec<UpdateRan>,
    /// The state afterwards.
    pub status: Status,
}

/// What a maintenance switch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct MaintenanceChange {
    /// `maintenance_mode` before.
    pub was: bool,
    /// `maintenance_mode` after.
    pub now: bool,
}

/// A site directory name that is a plain domain, never a path.
fn plain_dir(dir: &str) -> bool {
    !dir.is_empty()
        && !dir.starts_with(['.', '-'])
        && !dir.contains("..")
        && dir
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// The request for `op` on `site`, as the runner reads it on stdin. Holds
/// passwords for an install: it goes to php's stdin only.
pub fn request_json(site: &Site, op: &Operation) -> Result<Vec<u8>, RunnerError> {
    let bad = |reason: String| RunnerError::Request {
        op: op.name(),
        site: site.describe(),
        reason,
    };
    if !site.root.is_absolute() {
        return Err(bad(format!("{} is not absolute", site.root.display())));
    }
    if !plain_dir(&site.dir) {
        return Err(bad(format!("{:?} is not a plain domain", site.dir)));
    }
    let root = site
        .root
        .to_str()
        .ok_or_else(|| bad("the root is not UTF-8".into()))?;
    let mut req = serde_json::json!({
        "root": root,
        "site": site.dir,
        "url": site.url(),
    });
    match op {
        Operation::Install(i) => {
            req["op"] = "install".into();
            req["install"] = serde_json::json!({
                "profile": i.profile,
                "site_name": i.site_name,
                "site_mail": i.site_mail,
                "account_name": i.account_name,
                "account_mail": i.account_mail,
                "account_pass": i.account_pass.expose(),
                "database": i.database.to_json(),
            });
        }
        Operation::Updatedb => req["op"] = "updatedb".into(),
        Operation::Maintenance(on) => {
            req["op"] = "maintenance".into();
            req["on"] = (*on).into();
        }
        Operation::Status => req["op"] = "status".into(),
        Operation::CacheClear => req["op"] = "cache-clear".into(),
        Operation::FixPaths { from } => {
            if !plain_dir(from) {
                return Err(bad(format!("{from:?} is not a plain domain")));
            }
            req["op"] = "fix-paths".into();
            req["from"] = from.as_str().into();
        }
    }
    serde_json::to_vec(&req).map_err(|e| bad(e.to_string()))
}

/// Replaces each secret in `text` by stars.
fn scrub(text: &str, secrets: &[&Secret]) -> String {
    secrets
        .iter()
        .filter(|s| !s.expose().is_empty())
        .fold(text.to_string(), |t, s| t.replace(s.expose(), REDACTED))
}

/// The last `max` characters of `text`, trimmed.
fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().rev().nth(max) {
        Some((at, _)) => format!("…{}", &text[at..]),
        None => text.to_string(),
    }
}

/// How php ended and what it printed.
pub type PhpOutput = crate::driver::program::ProgramOutput;

/// Reads the runner's answer: the JSON object on stdout, `ok` or not.
pub fn parse_answer(
    site: &Site,
    op: &Operation,
    out: &PhpOutput,
) -> Result<serde_json::Value, RunnerError> {
    let secrets = op.secrets();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let no_answer = |detail: String| RunnerError::NoAnswer {
        op: op.name(),
        site: site.describe(),
        status: out.status.to_string(),
        detail: scrub(&detail, &secrets),
    };
    let answer: serde_json::Value = match serde_json::from_str(stdout.trim()) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let detail = if stdout.trim().is_empty() {
                tail(&stderr, 2000)
            } else {
                format!("stdout: {}", tail(&stdout, 2000))
            };
            return Err(no_answer(detail));
        }
    };
    if answer["ok"] == serde_json::Value::Bool(true) {
        return Ok(answer);
    }
    let message = answer["error"]
        .as_str()
        .map(|m| scrub(m, &secrets))
        .unwrap_or_else(|| "the runner failed without a message".into());
    if let Some(failed) = answer.get("failed") {
        let module = failed["module"].as_str().unwrap_or_default().to_string();
        let number = failed["number"].as_u64().unwrap_or_default() as u32;
        let done = serde_json::from_value(answer["updates"].clone()).unwrap_or_default();
        return Err(RunnerError::UpdateFailed {
            site: site.describe(),
            module,
            number,
            message: failed["message"]
                .as_str()
                .map(|m| scrub(m, &secrets))
                .unwrap_or(message),
            done,
        });
    }
    Err(RunnerError::Failed {
        op: op.name(),
        site: site.describe(),
        message,
    })
}

/// Reads a typed answer out of the runner's JSON.
fn typed<T: for<'de> Deserialize<'de>>(
    site: &Site,
    op: &Operation,
    value: serde_json::Value,
) -> Result<T, RunnerError> {
    serde_json::from_value(value).map_err(|e| RunnerError::NoAnswer {
        op: op.name(),
        site: site.describe(),
        status: "exit status 0".into(),
        detail: format!("unexpected answer: {e}"),
    })
}

/// Runs php-cli: the I/O seam of the runner.
pub trait Php {
    /// Runs `php -r <loader>` with `stdin`, killing it after `timeout`.
    /// `Ok(None)` means it was killed for the timeout.
    fn run(&self, stdin: Vec<u8>, timeout: Duration) -> std::io::Result<Option<PhpOutput>>;
    /// The program, for errors.
    fn program(&self) -> String;
}

/// php-cli on this machine.
#[derive(Debug, Clone)]
pub struct LocalPhp {
    /// The `php` program.
    pub program: PathBuf,
}

impl Default for LocalPhp {
    fn default() -> Self {
        LocalPhp {
            program: PathBuf::from("php"),
        }
    }
}

impl Php for LocalPhp {
    fn run(&self, stdin: Vec<u8>, timeout: Duration) -> std::io::Result<Option<PhpOutput>> {
        crate::driver::program::run_local(self.program.as_os_str(), &php_args(), stdin, timeout)
    }

    fn program(&self) -> String {
        self.program.display().to_string()
    }
}

/// php-cli on a server's host, from its `PATH` (this machine's, or a
/// remote one's over ssh), run through [`Host::run_program`].
pub struct HostPhp<'a> {
    /// The host the site's files are on.
    pub host: &'a dyn Host,
}

impl Php for HostPhp<'_> {
    fn run(&self, stdin: Vec<u8>, timeout: Duration) -> std::io::Result<Option<PhpOutput>> {
        self.host
            .run_program(OsStr::new("php"), &php_args(), stdin, timeout)
            .map_err(std::io::Error::other)
    }

    fn program(&self) -> String {
        format!("php on {}", self.host.label())
    }
}

/// php's arguments: the loader, with Drupal's notices sent to stderr,
/// never into the answer.
fn php_args() -> [&'static OsStr; 6] {
    [
        OsStr::new("-d"),
        OsStr::new("display_errors=stderr"),
        OsStr::new("-d"),
        OsStr::new("log_errors=0"),
        OsStr::new("-r"),
        OsStr::new(LOADER),
    ]
}

/// Runs the Drupal 7 runner through a [`Php`].
#[derive(Debug, Clone)]
pub struct Runner<P: Php = LocalPhp> {
    php: P,
    timeout: Duration,
}

impl Runner<LocalPhp> {
    /// A runner with php-cli from `PATH` and the default timeout.
    pub fn local() -> Self {
        Runner::new(LocalPhp::default())
    }
}

impl<P: Php> Runner<P> {
    /// A runner over `php`, with the default timeout.
    pub fn new(php: P) -> Self {
        Runner {
            php,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same runner with another time limit per operation.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `op` on `site` and returns the runner's answer (`ok` true).
    pub fn run(&self, site: &Site, op: &Operation) -> Result<serde_json::Value, RunnerError> {
        let request = request_json(site, op)?;
        let mut stdin = format!("{}\n", RUNNER_PHP.len()).into_bytes();
        stdin.extend_from_slice(RUNNER_PHP.as_bytes());
        stdin.extend_from_slice(&request);
        let out = self
            .php
            .run(stdin, self.timeout)
            .map_err(|source| RunnerError::Spawn {
                op: op.name(),
                site: site.describe(),
                program: self.php.program(),
                source,
            })?
            .ok_or_else(|| RunnerError::Timeout {
                op: op.name(),
                site: site.describe(),
                after: self.timeout,
            })?;
        parse_answer(site, op, &out)
    }

    /// Installs the site with Drupal's installer. Its `settings.php` must
    /// already be rendered (with the same database), so that the salt is
    /// hoist's from the start.
    pub fn install(&self, site: &Site, install: Install) -> Result<Status, RunnerError> {
        let op = Operation::Install(Box::new(install));
        let answer = self.run(site, &op)?;
        typed(site, &op, answer)
    }

    /// Runs every pending update in order, then flushes all caches.
    pub fn updatedb(&self, site: &Site) -> Result<UpdateReport, RunnerError> {
        let op = Operation::Updatedb;
        let answer = self.run(site, &op)?;
        typed(site, &op, answer)
    }

    /// Sets Drupal 7's `maintenance_mode` variable.
    pub fn maintenance(&self, site: &Site, on: bool) -> Result<MaintenanceChange, RunnerError> {
        let op = Operation::Maintenance(on);
        let answer = self.run(site, &op)?;
        typed(site, &op, answer)
    }

    /// The site's core version, profile, maintenance mode and schemas.
    pub fn status(&self, site: &Site) -> Result<Status, RunnerError> {
        let op = Operation::Status;
        let answer = self.run(site, &op)?;
        typed(site, &op, answer)
    }

    /// Rewrites the paths under `sites/<from>/` that the site's database
    /// holds to `sites/<site.dir>/`; returns how many rows changed by
    /// table and column.
    pub fn fix_paths(&self, site: &Site, from: &str) -> Result<BTreeMap<String, u64>, RunnerError> {
        let op = Operation::FixPaths { from: from.into() };
        let answer = self.run(site, &op)?;
        typed(site, &op, answer["changed"].clone())
    }

    /// Flushes all of Drupal's caches (and rebuilds its registry).
    pub fn cache_clear(&self, site: &Site) -> Result<(), RunnerError> {
        self.run(site, &Operation::CacheClear).map(|_| ())
    }
}
