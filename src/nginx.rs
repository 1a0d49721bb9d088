//! Renders one site's nginx vhost (`<conf_dir>/<domain>.conf`) for the web
//! kind `nginx`. Pure: the text depends only on [`Vhost`], so the same input
//! always gives the same bytes and a plan can diff them.
//!
//! Quoting: every path and address is written as an nginx double-quoted
//! string with `"` and `\` escaped, so spaces, `;`, `{` and `#` are literal.
//! nginx has no escape for `$` (it interpolates variables in `root`,
//! `fastcgi_pass` and `fastcgi_param` values), nor a safe way to carry control
//! characters, so a value holding either is refused rather than rewritten.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::names::Domain;

/// Whether `l` is a `listen` hoist writes: a port or `address:port` (IPv6
/// in brackets), nothing nginx could read as more.
pub fn valid_listen(l: &str) -> bool {
    !l.is_empty()
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:[]-".contains(&b))
        && l.rsplit(':')
            .next()
            .is_some_and(|p| p.parse::<u16>().is_ok())
}

/// The suffix of a site's preview name: `<domain>.hoist-preview`.
pub const PREVIEW_SUFFIX: &str = "hoist-preview";

/// The FastCGI parameter naming the site's directory under the platform
/// (`sites/<domain>`): PHP reads it from `$_SERVER`, since under a preview
/// name the Host header does not say which site is served.
pub const SITE_DIR_PARAM: &str = "HOIST_SITE_DIR";

/// Seconds a client is told to wait during maintenance (`Retry-After`).
pub const RETRY_AFTER_S: u32 = 120;

/// The status of a disabled site: 403, not 410, because `enabled: false` is
/// reversible; 410 tells caches and crawlers the site is gone for good.
pub const DISABLED_STATUS: u16 = 403;

/// What a vhost serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VhostState {
    /// The site's code, under its domain and aliases.
    Live,
    /// 503 with `Retry-After` for every request (during a task).
    Maintenance,
    /// A 'site disabled' page ([`DISABLED_STATUS`]) for every request.
    Disabled,
    /// The site's code under `name` only (not its domain or aliases), so a
    /// health check reaches a new copy before any visitor does.
    Preview {
        /// The preview server name, usually [`preview_name`] of the domain.
        name: Domain,
    },
}

/// One site's vhost, as the renderer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vhost {
    /// The site's domain.
    pub domain: Domain,
    /// Further names the site answers to.
    pub aliases: Vec<Domain>,
    /// The `listen` argument: a port (`80`) or `address:port`.
    pub listen: String,
    /// The document root: the absolute path of the platform directory.
    pub root: PathBuf,
    /// Where php-fpm listens: `unix:/path` or `host:port`.
    pub php_fpm: String,
    /// The site's directory relative to the root (`sites/<domain>`).
    pub site_dir: String,
    /// What to serve.
    pub state: VhostState,
}

/// Why a vhost cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VhostError {
    /// A value nginx would misread.
    #[error("vhost of {domain}: {field} {value:?} {reason}")]
    Unsafe {
        /// The site's domain.
        domain: String,
        /// Which input.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The preview name of a domain: `<domain>.hoist-preview`.
pub fn preview_name(domain: &Domain) -> Result<Domain, crate::names::NameError> {
    Domain::new(&format!("{domain}.{PREVIEW_SUFFIX}"))
}

/// The settings files of a site, never served: answered 404 as if absent.
const SETTINGS_FILES: &str = r"settings\.(yaml|php)";

/// The CGI/1.1 parameters, written out rather than `include fastcgi_params`
/// so the vhost does not depend on where a distribution keeps that file or on
/// nginx's `-p` prefix.
const FASTCGI_PARAMS: [(&str, &str); 17] = [
    ("QUERY_STRING", "$query_string"),
    ("REQUEST_METHOD", "$request_method"),
    ("CONTENT_TYPE", "$content_type"),
    ("CONTENT_LENGTH", "$content_length"),
    ("SCRIPT_NAME", "$fastcgi_script_name"),
    ("REQUEST_URI", "$request_uri"),
    ("DOCUMENT_URI", "$document_uri"),
    ("DOCUMENT_ROOT", "$document_root"),
    ("SERVER_PROTOCOL", "$server_protocol"),
    ("REQUEST_SCHEME", "$scheme"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/$nginx_version"),
    ("REMOTE_ADDR", "$remote_addr"),
    ("REMOTE_PORT", "$remote_port"),
    ("SERVER_ADDR", "$server_addr"),
    ("SERVER_PORT", "$server_port"),
    ("SERVER_NAME", "$server_name"),
];

/// Quotes `value` as an nginx double-quoted string, or refuses it (see the
/// module doc).
pub fn quote(value: &str) -> Result<String, &'static str> {
    if value.contains('$') {
        return Err("holds '$', which nginx would read as a variable");
    }
    if value.chars().any(char::is_control) {
        return Err("holds a control character");
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

impl Vhost {
    fn unsafe_value(&self, field: &'static str, value: &str, reason: &'static str) -> VhostError {
        VhostError::Unsafe {
            domain: self.domain.to_string(),
            field,
            value: value.to_string(),
            reason,
        }
    }

    fn quoted(&self, field: &'static str, value: &str) -> Result<String, VhostError> {
        quote(value).map_err(|r| self.unsafe_value(field, value, r))
    }

    /// `listen`: a port or `address:port` (IPv6 in brackets), nothing else.
    fn listen(&self) -> Result<&str, VhostError> {
        let l = self.listen.as_str();
        if valid_listen(l) {
            Ok(l)
        } else {
            Err(self.unsafe_value("listen", l, "is not a port or address:port"))
        }
    }

    fn root(&self) -> Result<String, VhostError> {
        let r = self.root.to_str().unwrap_or_default();
        if r.is_empty() || !self.root.is_absolute() {
            return Err(self.unsafe_value(
                "root",
                &self.root.to_string_lossy(),
                "is not an absolute UTF-8 path",
            ));
        }
        self.quoted("root", r)
    }

    fn php_fpm(&self) -> Result<String, VhostError> {
        let p = self.php_fpm.as_str();
        let ok = match p.strip_prefix("unix:") {
            Some(path) => Path::new(path).is_absolute(),
            None => p.rsplit_once(':').is_some_and(|(h, port)| {
                !h.is_empty() && !h.contains('/') && port.parse::<u16>().is_ok()
            }),
        };
        if !ok {
            return Err(self.unsafe_value("php_fpm", p, "is not unix:/absolute/path or host:port"));
        }
        self.quoted("php_fpm", p)
    }

    fn site_dir(&self) -> Result<String, VhostError> {
        let d = self.site_dir.as_str();
        let p = Path::new(d);
        let inside = !d.is_empty()
            && p.is_relative()
            && p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            return Err(self.unsafe_value(
                "site_dir",
                d,
                "is not a relative path inside the platform",
            ));
        }
        self.quoted("site_dir", d)
    }

    /// The server names this state answers to.
    fn server_names(&self) -> String {
        match &self.state {
            VhostState::Preview { name } => name.to_string(),
            _ => std::iter::once(&self.domain)
                .chain(&self.aliases)
                .map(Domain::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The text of `<conf_dir>/<domain>.conf`.
    pub fn render(&self) -> Result<String, VhostError> {
        let listen = self.listen()?;
        // Checked in every state: a vhost that renders in maintenance
        // must render when it goes live again.
        let root = self.root()?;
        let fpm = self.php_fpm()?;
        let site_dir = self.site_dir()?;
        let (what, body) = match &self.state {
            VhostState::Live => ("live", self.code(&root, &fpm, &site_dir, None)),
            VhostState::Preview { .. } => (
                "preview",
                self.code(&root, &fpm, &site_dir, Some(&self.domain)),
            ),
            VhostState::Maintenance => (
                "maintenance",
                format!(
                    "    default_type text/html;\n    \
                     add_header Retry-After {RETRY_AFTER_S} always;\n    \
                     return 503 \"{}\";\n",
                    page("Down for maintenance", "Please try again in a few minutes.")
                ),
            ),
            VhostState::Disabled => (
                "disabled",
                format!(
                    "    default_type text/html;\n    \
                     return {DISABLED_STATUS} \"{}\";\n",
                    page("Site disabled", "This site is disabled.")
                ),
            ),
        };
        Ok(format!(
            "# Managed by hoist: {domain} ({what}).\n\
             server {{\n    \
             listen {listen};\n    \
             server_name {names};\n\
             {body}}}\n",
            domain = self.domain,
            names = self.server_names(),
        ))
    }

    /// The body of a server that runs the site's PHP code. `host`, for a
    /// preview, is the Host the code sees: the site's own domain rather
    /// than the preview name, since an application may choose its site by
    /// it (Drupal's `sites/<domain>`).
    fn code(&self, root: &str, fpm: &str, site_dir: &str, host: Option<&Domain>) -> String {
        let mut params = String::new();
        for (k, v) in FASTCGI_PARAMS {
            // The values are fixed above: variables meant as variables.
            let _ = writeln!(params, "        fastcgi_param {k} \"{v}\";");
        }
        if let Some(h) = host {
            // A domain is letters, digits, dots and dashes: nothing to quote.
            let _ = writeln!(params, "        fastcgi_param HTTP_HOST \"{h}\";");
        }
        format!(
            "    root {root};\n    \
             index index.php;\n    \
             location ~ /\\.(?!well-known/) {{\n        return 404;\n    }}\n    \
             location ~ (^|/){SETTINGS_FILES}$ {{\n        return 404;\n    }}\n    \
             location / {{\n        try_files $uri /index.php?$query_string;\n    }}\n    \
             location ~ \\.php$ {{\n        \
             try_files $fastcgi_script_name =404;\n        \
             fastcgi_pass {fpm};\n\
             {params}        \
             fastcgi_param SCRIPT_FILENAME \"$document_root$fastcgi_script_name\";\n        \
             fastcgi_param HTTP_PROXY \"\";\n        \
             fastcgi_param {SITE_DIR_PARAM} {site_dir};\n    \
             }}\n"
        )
    }
}

/// A small fixed HTML page (no input in it, so nothing to escape; no `"`,
/// `\` or `$`, so it is a valid nginx string as is).
fn page(title: &str, text: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p></body></html>\\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::new(s).unwrap()
    }

    fn site(state: VhostState) -> Vhost {
        Vhost {
            domain: d("shop.example.com"),
            aliases: vec![d("www.shop.example.com")],
            listen: "80".into(),
            root: PathBuf::from("/srv/hoist/platforms/shop-2-1"),
            php_fpm: "unix:/run/php/php8.2-fpm.sock".into(),
            site_dir: "sites/shop.example.com".into(),
            state,
        }
    }

    const PARAMS: &str = "        fastcgi_param QUERY_STRING \"$query_string\";
        fastcgi_param REQUEST_METHOD \"$request_method\";
        fastcgi_param CONTENT_TYPE \"$content_type\";
        fastcgi_param CONTENT_LENGTH \"$content_length\";
        fastcgi_param SCRIPT_NAME \"$fastcgi_script_name\";
        fastcgi_param REQUEST_URI \"$request_uri\";
        fastcgi_param DOCUMENT_URI \"$document_uri\";
        fastcgi_param DOCUMENT_ROOT \"$document_root\";
        fastcgi_param SERVER_PROTOCOL \"$server_protocol\";
        fastcgi_param REQUEST_SCHEME \"$scheme\";
        fastcgi_param GATEWAY_INTERFACE \"CGI/1.1\";
        fastcgi_param SERVER_SOFTWARE \"nginx/$nginx_version\";
        fastcgi_param REMOTE_ADDR \"$remote_addr\";
        fastcgi_param REMOTE_PORT \"$remote_port\";
        fastcgi_param SERVER_ADDR \"$server_addr\";
        fastcgi_param SERVER_PORT \"$server_port\";
        fastcgi_param SERVER_NAME \"$server_name\";
";

    fn code_golden(header: &str, names: &str) -> String {
        format!(
            "# Managed by hoist: shop.example.com ({header}).
server {{
    listen 80;
    server_name {names};
    root \"/srv/hoist/platforms/shop-2-1\";
    index index.php;
    location ~ /\\.(?!well-known/) {{
        return 404;
    }}
    location ~ (^|/)settings\\.(yaml|php)$ {{
        return 404;
    }}
    location / {{
        try_files $uri /index.php?$query_string;
    }}
    location ~ \\.php$ {{
        try_files $fastcgi_script_name =404;
        fastcgi_pass \"unix:/run/php/php8.2-fpm.sock\";
{PARAMS}        fastcgi_param SCRIPT_FILENAME \"$document_root$fastcgi_script_name\";
        fastcgi_param HTTP_PROXY \"\";
        fastcgi_param HOIST_SITE_DIR \"sites/shop.example.com\";
    }}
}}
"
        )
    }

    #[test]
    fn live_golden() {
        assert_eq!(
            site(VhostState::Live).render().unwrap(),
            code_golden("live", "shop.example.com www.shop.example.com")
        );
    }

    #[test]
    fn preview_answers_only_its_own_name() {
        let name = preview_name(&d("shop.example.com")).unwrap();
        assert_eq!(name.as_str(), "shop.example.com.hoist-preview");
        assert_eq!(
            site(VhostState::Preview { name }).render().unwrap(),
            code_golden("preview", "shop.example.com.hoist-preview").replace(
                "        fastcgi_param SCRIPT_FILENAME",
                "        fastcgi_param HTTP_HOST \"shop.example.com\";\n        fastcgi_param SCRIPT_FILENAME"
            )
        );
    }

    #[test]
    fn maintenance_golden() {
        assert_eq!(
            site(VhostState::Maintenance).render().unwrap(),
            "# Managed by hoist: shop.example.com (maintenance).
server {
    listen 80;
    server_name shop.example.com www.shop.example.com;
    default_type text/html;
    add_header Retry-After 120 always;
    return 503 \"<!DOCTYPE html><html><head><title>Down for maintenance</title></head>\
<body><h1>Down for maintenance</h1><p>Please try again in a few minutes.</p></body></html>\\n\";
}
"
        );
    }

    #[test]
    fn disabled_golden() {
        assert_eq!(
            site(VhostState::Disabled).render().unwrap(),
            "# Managed by hoist: shop.example.com (disabled).
server {
    listen 80;
    server_name shop.example.com www.shop.example.com;
    default_type text/html;
    return 403 \"<!DOCTYPE html><html><head><title>Site disabled</title></head>\
<body><h1>Site disabled</h1><p>This site is disabled.</p></body></html>\\n\";
}
"
        );
    }

    #[test]
    fn render_is_deterministic() {
        let v = site(VhostState::Live);
        assert_eq!(v.render(), v.clone().render());
    }

    #[test]
    fn quote_escapes_quotes_and_backslashes_and_keeps_the_rest() {
        assert_eq!(quote("/a b;c{d}#e").unwrap(), "\"/a b;c{d}#e\"");
        assert_eq!(quote(r#"/a"b\c"#).unwrap(), r#""/a\"b\\c""#);
        assert_eq!(quote("").unwrap(), "\"\"");
    }

    #[test]
    fn quote_refuses_dollar_and_control_characters() {
        assert!(quote("/srv/$host").is_err());
        assert!(quote("/srv/a\nb").is_err());
        assert!(quote("/srv/a\0b").is_err());
    }

    #[test]
    fn root_with_space_and_quote_is_escaped() {
        let mut v = site(VhostState::Live);
        v.root = PathBuf::from("/srv/my \"host\"; x\\y");
        let text = v.render().unwrap();
        assert!(
            text.contains("    root \"/srv/my \\\"host\\\"; x\\\\y\";\n"),
            "{text}"
        );
    }

    #[test]
    fn bad_inputs_are_refused_with_the_field_named() {
        type Change = fn(&mut Vhost);
        let cases: [(&str, Change); 9] = [
            ("root", |v| v.root = PathBuf::from("/srv/$document_root")),
            ("root", |v| v.root = PathBuf::from("relative/platform")),
            ("php_fpm", |v| v.php_fpm = "unix:/run/$x.sock".into()),
            ("php_fpm", |v| v.php_fpm = "unix:relative.sock".into()),
            ("php_fpm", |v| v.php_fpm = "9000".into()),
            ("listen", |v| v.listen = "80; include /etc/passwd".into()),
            ("listen", |v| v.listen = "127.0.0.1:http".into()),
            ("site_dir", |v| v.site_dir = "../escape".into()),
            ("site_dir", |v| v.site_dir = "/abs".into()),
        ];
        for (field, change) in cases {
            // In every state: a value unsafe live is unsafe in maintenance.
            for state in [VhostState::Live, VhostState::Maintenance] {
                let mut v = site(state);
                change(&mut v);
                match v.render() {
                    Err(VhostError::Unsafe { field: f, .. }) => assert_eq!(f, field, "{v:?}"),
                    Ok(t) => panic!("accepted {v:?}:\n{t}"),
                }
            }
        }
    }

    #[test]
    fn good_listen_and_fpm_forms_are_accepted() {
        for (listen, fpm) in [
            ("127.0.0.1:8080", "127.0.0.1:9000"),
            ("[::1]:80", "localhost:9000"),
            ("8080", "unix:/run/php fpm/a;b.sock"),
        ] {
            let mut v = site(VhostState::Live);
            v.listen = listen.into();
            v.php_fpm = fpm.into();
            let text = v.render().unwrap();
            assert!(text.contains(&format!("    listen {listen};\n")), "{text}");
            assert!(text.contains(&format!("fastcgi_pass \"{fpm}\";")), "{text}");
        }
    }
}
