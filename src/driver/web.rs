//! The web-server seam: what serves a server's sites. `file` renders
//! vhosts under `<root>/vhosts/` that nothing serves (the embedded
//! default; health checks are skipped); `nginx` writes real vhosts to its
//! `conf_dir`, runs its `test` before every `reload`, and checks sites
//! through `check_url` with their own Host header.

use std::path::PathBuf;

use std::sync::Arc;

use super::health::{self, Health};
use super::host::{Host, HostPath, WriteMode};
use super::reach::{Here, Reach};
use crate::inventory::{HealthCheck, NginxConfig};
use crate::names::Domain;
use crate::nginx::{self, Vhost, VhostState};
use crate::render::{self, SiteConfig};

/// Why a web server step failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A vhost file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A vhost could not be rendered.
    #[error(transparent)]
    Render(#[from] nginx::VhostError),
    /// The configuration test failed: nothing was reloaded.
    #[error("`{command}` failed, so nginx was not reloaded: {output}")]
    TestFailed {
        /// The command.
        command: String,
        /// What it said.
        output: String,
    },
    /// The reload failed.
    #[error("`{command}` failed: {output}")]
    ReloadFailed {
        /// The command.
        command: String,
        /// What it said.
        output: String,
    },
    /// A name that cannot be a vhost's.
    #[error("{0}")]
    Invalid(String),
}

/// The server name of hoist's generation vhost (`.invalid` never resolves,
/// so no visitor can ask for it).
pub const GENERATION_HOST: &str = "hoist-generation.invalid";
/// Its file in `conf_dir`.
const GENERATION_FILE: &str = "hoist-generation.conf";
/// Held while nginx is tested, reloaded and waited for, and while a vhost
/// file is written or removed: nginx reads `conf_dir` by a glob, then opens
/// each file, so a file removed by one task while another's test or reload
/// reads the directory fails that test (`open() ... No such file`).
static ACTIVATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// How long only the new generation must answer before a reload counts as
/// done (see [`NginxWeb::wait_generation`]).
const RELOAD_SETTLE: std::time::Duration = std::time::Duration::from_millis(400);
/// How long a reload may take to be served.
const RELOAD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Which vhost of a site: the one visitors reach, or its preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// Under the site's domain and aliases.
    Site,
    /// Under `<domain>.hoist-preview` only: the new copy of a migrate,
    /// checked before any visitor reaches it.
    Preview,
}

/// What serves a server's sites.
pub trait WebServer: Send + Sync {
    /// `file` or `nginx`.
    fn kind(&self) -> &'static str;
    /// This web server reading its vhosts from `host` instead (a snapshot
    /// of the server's files, for observing); `None`: its vhosts are not
    /// among the server's files.
    fn through(&self, _host: Arc<dyn Host>) -> Option<Arc<dyn WebServer>> {
        None
    }
    /// The vhost of `cfg` as it should be (live or disabled); pure.
    fn render(&self, cfg: &SiteConfig, which: Which) -> Result<String, WebError>;
    /// The vhost file of `domain`, as it is.
    fn read(&self, domain: &Domain, which: Which) -> Result<Option<String>, WebError>;
    /// Writes (or with `None` removes) the vhost file of `domain`. Not
    /// served until [`WebServer::activate`].
    fn write(&self, domain: &Domain, which: Which, text: Option<&str>) -> Result<(), WebError>;
    /// Makes the web server serve what is written: test, then reload. A
    /// failed test reloads nothing.
    fn activate(&self) -> Result<(), WebError>;
    /// Checks `domain` (or its preview) as `check` says.
    fn check(&self, domain: &Domain, which: Which, check: &HealthCheck) -> Health;
}

/// Web kind `file`: vhosts rendered under `<root>/vhosts/` on the
/// server's host, served by nothing.
pub struct FileWeb {
    host: Arc<dyn Host>,
}

impl FileWeb {
    /// The file web server of the server whose files are on `host`.
    pub fn new(host: Arc<dyn Host>) -> FileWeb {
        FileWeb { host }
    }

    fn path(domain: &Domain) -> Result<HostPath, WebError> {
        HostPath::new("vhosts")
            .and_then(|d| d.join(&format!("{domain}.conf")))
            .map_err(|e| WebError::Invalid(e.to_string()))
    }

    fn read_file(&self, domain: &Domain) -> Result<Option<String>, WebError> {
        let p = Self::path(domain)?;
        let invalid = |e: String| WebError::Invalid(format!("{}: {e}", self.host.display(&p)));
        match self.host.read(&p).map_err(|e| invalid(e.to_string()))? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| invalid("not UTF-8".into())),
        }
    }

    fn write_file(&self, domain: &Domain, text: Option<&str>) -> Result<(), WebError> {
        let p = Self::path(domain)?;
        let done = match text {
            Some(t) => self.host.write(&p, t.as_bytes(), WriteMode::Atomic),
            None => self.host.remove_file(&p),
        };
        done.map_err(|e| WebError::Invalid(format!("{}: {e}", self.host.display(&p))))
    }
}

/// A web server hoist cannot drive where it is declared: it renders (so
/// plans and observations work) and refuses every change with why.
pub struct Unavailable {
    kind: &'static str,
    why: String,
}

impl Unavailable {
    /// A `kind` web server refused for `why`.
    pub fn new(kind: &'static str, why: String) -> Unavailable {
        Unavailable { kind, why }
    }
}

impl WebServer for Unavailable {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn render(&self, cfg: &SiteConfig, _which: Which) -> Result<String, WebError> {
        Ok(render::vhost(cfg))
    }
    fn read(&self, _domain: &Domain, _which: Which) -> Result<Option<String>, WebError> {
        Err(WebError::Invalid(self.why.clone()))
    }
    fn write(&self, _d: &Domain, _w: Which, _t: Option<&str>) -> Result<(), WebError> {
        Err(WebError::Invalid(self.why.clone()))
    }
    fn activate(&self) -> Result<(), WebError> {
        Err(WebError::Invalid(self.why.clone()))
    }
    fn check(&self, _domain: &Domain, _which: Which, _check: &HealthCheck) -> Health {
        Health::Failed {
            reason: self.why.clone(),
        }
    }
}

impl WebServer for FileWeb {
    fn kind(&self) -> &'static str {
        "file"
    }
    fn through(&self, host: Arc<dyn Host>) -> Option<Arc<dyn WebServer>> {
        Some(Arc::new(FileWeb::new(host)))
    }
    fn render(&self, cfg: &SiteConfig, _which: Which) -> Result<String, WebError> {
        Ok(render::vhost(cfg))
    }
    fn read(&self, domain: &Domain, which: Which) -> Result<Option<String>, WebError> {
        match which {
            Which::Site => self.read_file(domain),
            Which::Preview => Ok(None),
        }
    }
    fn write(&self, domain: &Domain, which: Which, text: Option<&str>) -> Result<(), WebError> {
        match which {
            Which::Site => self.write_file(domain, text),
            // Nothing serves a preview: there is nothing to write.
            Which::Preview => Ok(()),
        }
    }
    fn activate(&self) -> Result<(), WebError> {
        Ok(())
    }
    fn check(&self, _domain: &Domain, _which: Which, _check: &HealthCheck) -> Health {
        Health::Skipped {
            reason: "web kind file serves nothing".into(),
        }
    }
}

/// Web kind `nginx` with php-fpm.
pub struct NginxWeb {
    root: PathBuf,
    config: NginxConfig,
    /// Its `conf_dir`, as a host rooted there.
    conf: Arc<dyn Host>,
    /// Where it runs: its commands and health checks.
    reach: Arc<dyn Reach>,
}

impl NginxWeb {
    /// The nginx of this machine for the server rooted at `root`
    /// (platforms live under it).
    pub fn new(root: PathBuf, config: NginxConfig) -> NginxWeb {
        let conf = Arc::new(super::host::LocalHost::new(config.conf_dir.clone()));
        NginxWeb::over(root, config, conf, Arc::new(Here))
    }

    /// The nginx of a server rooted at `root`, its vhosts written through
    /// `conf` (rooted at its `conf_dir`), its commands run and its health
    /// checks started through `reach`.
    pub fn over(
        root: PathBuf,
        config: NginxConfig,
        conf: Arc<dyn Host>,
        reach: Arc<dyn Reach>,
    ) -> NginxWeb {
        NginxWeb {
            root,
            config,
            conf,
            reach,
        }
    }

    fn name(domain: &Domain, which: Which) -> Result<Domain, WebError> {
        match which {
            Which::Site => Ok(domain.clone()),
            Which::Preview => {
                nginx::preview_name(domain).map_err(|e| WebError::Invalid(e.to_string()))
            }
        }
    }

    fn path(domain: &Domain, which: Which) -> Result<HostPath, WebError> {
        HostPath::new(&format!("{}.conf", Self::name(domain, which)?))
            .map_err(|e| WebError::Invalid(e.to_string()))
    }

    /// Reads the file `p` of its `conf_dir` (none: missing).
    fn read_conf(&self, p: &HostPath) -> Result<Option<String>, WebError> {
        let invalid = |e: String| WebError::Invalid(format!("{}: {e}", self.conf.display(p)));
        match self.conf.read(p).map_err(|e| invalid(e.to_string()))? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| invalid("not UTF-8".into())),
        }
    }

    /// Writes (or with `None` removes) the file `p` of its `conf_dir`.
    fn write_conf(&self, p: &HostPath, text: Option<&str>) -> Result<(), WebError> {
        let done = match text {
            Some(t) => self.conf.write(p, t.as_bytes(), WriteMode::Atomic),
            None => self.conf.remove_file(p),
        };
        done.map_err(|e| WebError::Invalid(format!("{}: {e}", self.conf.display(p))))
    }

    /// Writes hoist's generation vhost: it answers [`GENERATION_HOST`] with
    /// a token new at every activation, so [`Self::wait_generation`] can
    /// tell when a reload has taken effect.
    fn write_generation(&self) -> Result<String, WebError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = format!("{}-{nanos}-{seq}", std::process::id());
        let text = format!(
            "# Managed by hoist: tells hoist when nginx has loaded its vhosts.\n\
             server {{\n    listen {listen};\n    server_name {GENERATION_HOST};\n    \
             default_type text/plain;\n    return 200 \"{token}\";\n}}\n",
            listen = self.config.listen,
        );
        let path = HostPath::new(GENERATION_FILE).map_err(|e| WebError::Invalid(e.to_string()))?;
        self.write_conf(&path, Some(&text))?;
        Ok(token)
    }

    /// Waits until nginx serves the generation `token` and only it:
    /// `nginx -s reload` returns before the new workers run, and nginx's
    /// master lets the old workers accept connections for a while (100 ms
    /// in nginx 1.22) after the new ones start, so a check sent at once
    /// could reach a worker that does not know the new vhosts. The token
    /// must be the only answer for [`RELOAD_SETTLE`].
    fn wait_generation(&self, token: &str) -> Result<(), WebError> {
        let started = std::time::Instant::now();
        let mut streak: Option<std::time::Instant> = None;
        let mut last = String::new();
        while started.elapsed() < RELOAD_DEADLINE {
            match health::get(
                self.reach.as_ref(),
                &self.config.check_url,
                GENERATION_HOST,
                "/",
                5,
            ) {
                Ok((200, body)) if body == token.as_bytes() => {
                    let since = *streak.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= RELOAD_SETTLE {
                        return Ok(());
                    }
                }
                Ok((status, _)) => {
                    streak = None;
                    last = format!("answered {status} with an older generation");
                }
                Err(e) => {
                    streak = None;
                    last = e;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(WebError::ReloadFailed {
            command: self.config.reload.clone(),
            output: format!(
                "nginx did not serve the new configuration within {}s ({last})",
                RELOAD_DEADLINE.as_secs()
            ),
        })
    }
}

impl WebServer for NginxWeb {
    fn kind(&self) -> &'static str {
        "nginx"
    }
    fn render(&self, cfg: &SiteConfig, which: Which) -> Result<String, WebError> {
        let state = match which {
            Which::Preview => VhostState::Preview {
                name: Self::name(&cfg.domain, which)?,
            },
            Which::Site if cfg.enabled => VhostState::Live,
            Which::Site => VhostState::Disabled,
        };
        let v = Vhost {
            domain: cfg.domain.clone(),
            aliases: cfg.aliases.clone(),
            listen: self.config.listen.to_string(),
            root: self.root.join("platforms").join(cfg.platform.as_str()),
            php_fpm: self.config.php_fpm.clone(),
            site_dir: format!("sites/{}", cfg.domain),
            state,
        };
        Ok(v.render()?)
    }
    fn read(&self, domain: &Domain, which: Which) -> Result<Option<String>, WebError> {
        self.read_conf(&Self::path(domain, which)?)
    }
    fn write(&self, domain: &Domain, which: Which, text: Option<&str>) -> Result<(), WebError> {
        let path = Self::path(domain, which)?;
        let _one = ACTIVATING.lock().unwrap_or_else(|e| e.into_inner());
        self.write_conf(&path, text)
    }
    fn activate(&self) -> Result<(), WebError> {
        // One activation at a time: nginx coalesces reload signals, and a
        // task must wait for the generation it asked for.
        let _one = ACTIVATING.lock().unwrap_or_else(|e| e.into_inner());
        let token = self.write_generation()?;
        self.reach
            .run(&self.config.test)
            .map_err(|output| WebError::TestFailed {
                command: self.config.test.clone(),
                output,
            })?;
        self.reach
            .run(&self.config.reload)
            .map_err(|output| WebError::ReloadFailed {
                command: self.config.reload.clone(),
                output,
            })?;
        self.wait_generation(&token)
    }
    fn check(&self, domain: &Domain, which: Which, check: &HealthCheck) -> Health {
        match Self::name(domain, which) {
            Ok(host) => health::probe(
                self.reach.as_ref(),
                &self.config.check_url,
                host.as_str(),
                check,
            ),
            Err(e) => Health::Failed {
                reason: e.to_string(),
            },
        }
    }
}
