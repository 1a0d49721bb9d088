//! What hoist writes for a site: its settings file and its vhost, rendered
//! from a [`SiteConfig`] by pure functions, so that a plan can show the
//! unified diff of before and after without touching a server.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{Domain, Name, PackageName, PlatformName, SiteName};

/// A database password. It never prints: `Debug` and `Display` show stars,
/// and it is written out only by [`settings_file`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    /// The password itself, for the database driver and the settings file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// The text shown where a password stands in anything but the settings file.
pub const REDACTED: &str = "********";

/// Everything a site's settings and vhost are rendered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteConfig {
    /// The site's stable name.
    pub site: SiteName,
    /// Its primary domain.
    pub domain: Domain,
    /// Further domains.
    pub aliases: Vec<Domain>,
    /// The platform it lives on.
    pub platform: PlatformName,
    /// Its install profile.
    pub profile: PackageName,
    /// Whether the vhost serves the site or a 'site disabled' page.
    pub enabled: bool,
    /// Its database server.
    pub db_server: Name,
    /// The driver of its database server.
    #[serde(default)]
    pub db_driver: DbDriver,
    /// Its database (and database user) name, when known: a plan shows a
    /// placeholder for a database an apply has yet to create.
    pub db_name: Option<String>,
}

/// The driver of a database server, as settings files name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbDriver {
    /// The embedded SQLite server.
    #[default]
    Sqlite,
    /// MariaDB or MySQL.
    Mysql,
}

impl DbDriver {
    /// Its name in settings files.
    pub fn as_str(self) -> &'static str {
        match self {
            DbDriver::Sqlite => "sqlite",
            DbDriver::Mysql => "mysql",
        }
    }

    /// The user of database `db`: its name, except on MySQL when longer
    /// than MySQL 8's 32 characters: then its first 23 and its last 9
    /// (hoist's names end in a random `_xxxxxxxx`, so users stay distinct).
    pub fn user_for(self, db: &str) -> String {
        match self {
            DbDriver::Mysql if db.len() > 32 && db.is_ascii() => {
                format!("{}{}", &db[..23], &db[db.len() - 9..])
            }
            _ => db.to_owned(),
        }
    }
}

impl SiteConfig {
    /// The site's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.domain)
    }
    /// Where its files live, relative to the platform (Drupal's
    /// `file_directory_path`).
    pub fn file_directory_path(&self) -> String {
        format!("sites/{}/files", self.domain)
    }
    /// The settings file's path, relative to the server root.
    pub fn settings_path(&self) -> String {
        format!(
            "platforms/{}/sites/{}/settings.yaml",
            self.platform, self.domain
        )
    }
    /// The vhost's path, relative to the server root.
    pub fn vhost_path(&self) -> String {
        format!("vhosts/{}.conf", self.domain)
    }
}

/// The settings file as written on the server (mode 0600), password included.
pub fn settings_file(cfg: &SiteConfig, password: &Secret) -> String {
    settings(cfg, password.expose())
}

/// The settings file with the password redacted: what plans and logs show.
pub fn settings_redacted(cfg: &SiteConfig) -> String {
    settings(cfg, REDACTED)
}

fn settings(cfg: &SiteConfig, password: &str) -> String {
    let db = cfg.db_name.as_deref().unwrap_or("(created on apply)");
    let aliases: Vec<String> = cfg.aliases.iter().map(|a| a.to_string()).collect();
    let q = |s: &str| serde_json::to_string(s).expect("strings serialize");
    format!(
        "# Managed by hoist: edits are overwritten. Keep this file private (0600).\n\
         site: {site}\n\
         domain: {domain}\n\
         aliases: [{aliases}]\n\
         platform: {platform}\n\
         profile: {profile}\n\
         enabled: {enabled}\n\
         base_url: {base_url}\n\
         file_directory_path: {fdp}\n\
         database:\n  \
           driver: {driver}\n  \
           server: {server}\n  \
           name: {db}\n  \
           user: {user}\n  \
           password: {password}\n",
        site = cfg.site,
        domain = cfg.domain,
        aliases = aliases.join(", "),
        platform = cfg.platform,
        profile = cfg.profile,
        enabled = cfg.enabled,
        base_url = cfg.base_url(),
        fdp = cfg.file_directory_path(),
        server = cfg.db_server,
        driver = cfg.db_driver.as_str(),
        user = q(&cfg.db_driver.user_for(db)),
        db = q(db),
        password = q(password),
    )
}

/// The settings file as read back: what observation parses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// The site's stable name.
    pub site: SiteName,
    /// Its primary domain.
    pub domain: Domain,
    /// Further domains.
    pub aliases: Vec<Domain>,
    /// The platform it lives on.
    pub platform: PlatformName,
    /// Its install profile.
    pub profile: PackageName,
    /// Whether it is served.
    pub enabled: bool,
    /// Its base URL.
    pub base_url: String,
    /// Its files directory, relative to the platform.
    pub file_directory_path: String,
    /// How to reach its database.
    pub database: DatabaseSettings,
}

/// The `database:` part of a settings file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The driver of the database server.
    pub driver: DbDriver,
    /// The database server's name in `hoist.yaml`.
    pub server: Name,
    /// The database name.
    pub name: String,
    /// The database user.
    pub user: String,
    /// The user's password.
    pub password: Secret,
}

impl SettingsFile {
    /// The config this file was rendered from.
    pub fn config(&self) -> SiteConfig {
        SiteConfig {
            site: self.site.clone(),
            domain: self.domain.clone(),
            aliases: self.aliases.clone(),
            platform: self.platform.clone(),
            profile: self.profile.clone(),
            enabled: self.enabled,
            db_server: self.database.server.clone(),
            db_driver: self.database.driver,
            db_name: Some(self.database.name.clone()),
        }
    }
}

/// The web server config of a site: it serves the platform's code for the
/// site's domain and aliases, or a 'site disabled' page. Paths are relative
/// to the server root, so the text is the same on every host.
pub fn vhost(cfg: &SiteConfig) -> String {
    let mut names = vec![cfg.domain.to_string()];
    names.extend(cfg.aliases.iter().map(|a| a.to_string()));
    let body = if cfg.enabled {
        format!(
            "    root platforms/{platform};\n    \
             set $hoist_site_dir sites/{domain};\n    \
             location / {{\n        try_files $uri /index.php?$query_string;\n    }}\n",
            platform = cfg.platform,
            domain = cfg.domain
        )
    } else {
        "    # The site is disabled in the inventory (enabled: false).\n    \
         location / {\n        return 503 'site disabled';\n    }\n"
            .to_string()
    };
    format!(
        "# Managed by hoist: site {site} on platform {platform}.\n\
         server {{\n    listen 80;\n    server_name {names};\n{body}}}\n",
        site = cfg.site,
        platform = cfg.platform,
        names = names.join(" "),
    )
}

/// The unified diff of a site's settings (redacted) and vhost between two
/// configs; either side may be absent (a new or a deleted site). Empty when
/// nothing differs.
pub fn site_diff(before: Option<&SiteConfig>, after: Option<&SiteConfig>) -> String {
    let mut out = String::new();
    type Render = fn(&SiteConfig) -> String;
    let parts: [(Render, Render); 2] = [
        (settings_redacted, SiteConfig::settings_path),
        (vhost, SiteConfig::vhost_path),
    ];
    for (render, path) in parts {
        let a = before.map(render).unwrap_or_default();
        let b = after.map(render).unwrap_or_default();
        if a == b {
            continue;
        }
        let pa = before
            .map(|c| format!("a/{}", path(c)))
            .unwrap_or_else(|| "/dev/null".into());
        let pb = after
            .map(|c| format!("b/{}", path(c)))
            .unwrap_or_else(|| "/dev/null".into());
        let d = similar::TextDiff::from_lines(&a, &b);
        out.push_str(
            &d.unified_diff()
                .context_radius(3)
                .header(&pa, &pb)
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SiteConfig {
        SiteConfig {
            site: Name::new("acme").unwrap(),
            domain: Domain::new("acme.example.com").unwrap(),
            aliases: vec![Domain::new("www.acme.example.com").unwrap()],
            platform: Name::new("shop-1-1").unwrap(),
            profile: PackageName::new("standard").unwrap(),
            enabled: true,
            db_server: Name::new("default").unwrap(),
            db_name: Some("acme_0a1b2c".into()),
            db_driver: DbDriver::default(),
        }
    }

    #[test]
    fn settings_round_trip_through_the_parser() {
        let text = settings_file(&cfg(), &Secret::new("s3cr\"et".into()));
        let parsed: SettingsFile = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed.config(), cfg());
        assert_eq!(parsed.database.password.expose(), "s3cr\"et");
        assert_eq!(parsed.file_directory_path, "sites/acme.example.com/files");
    }

    #[test]
    fn redacted_settings_hold_no_password() {
        let text = settings_redacted(&cfg());
        assert!(text.contains(REDACTED));
        assert_eq!(format!("{:?}", Secret::new("pw".into())), REDACTED);
    }

    #[test]
    fn disabled_vhost_serves_a_disabled_page() {
        let mut c = cfg();
        assert!(vhost(&c).contains("root platforms/shop-1-1;"));
        assert!(vhost(&c).contains("server_name acme.example.com www.acme.example.com;"));
        c.enabled = false;
        assert!(vhost(&c).contains("site disabled"));
        assert!(!vhost(&c).contains("root "));
    }

    #[test]
    fn diff_shows_a_migration() {
        let a = cfg();
        let mut b = cfg();
        b.platform = Name::new("shop-2-0").unwrap();
        b.db_name = None;
        let d = site_diff(Some(&a), Some(&b));
        assert!(
            d.contains("--- a/platforms/shop-1-1/sites/acme.example.com/settings.yaml"),
            "{d}"
        );
        assert!(
            d.contains("+++ b/platforms/shop-2-0/sites/acme.example.com/settings.yaml"),
            "{d}"
        );
        assert!(
            d.contains("-platform: shop-1-1\n+platform: shop-2-0"),
            "{d}"
        );
        assert!(d.contains("+    root platforms/shop-2-0;"), "{d}");
        assert_eq!(site_diff(Some(&a), Some(&a)), "");
        assert!(site_diff(None, Some(&a)).contains("--- /dev/null"));
    }
}
