//! The plan: a pure function from the desired state (the inventory) and the
//! actual state (an observation) to the actions that bring one to the other,
//! under the compatibility rules. No I/O happens here.

pub mod format;
pub mod saved;
pub mod waves;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::codebase::Codebase;
use crate::compat::{self, Comparison, PackageVerdict, SitePackage};
use crate::inventory::{Inventory, SiteSpec, Suspension};
use crate::names::{Domain, Name, PlatformName, SiteName};
use crate::observe::{Actual, ObservedSite};
use crate::render::{self, SiteConfig};

/// The version of the JSON plan format.
pub const FORMAT_VERSION: u32 = 1;

/// Why a task on a Drupal 8+ platform or site is refused (spec 3b).
pub const DRUPAL8_APPLY: &str =
    "apply for Drupal 8 and later needs drush: not supported yet (plan, compare and status work)";

/// Why apply refuses to act on `cb`, a Drupal 8+ codebase; none for
/// embedded and Drupal 7 codebases, which apply carries out
/// ([`crate::driver::app`]).
pub fn drupal_apply_refusal(cb: &Codebase) -> Option<&'static str> {
    let core = cb.drupal.as_ref()?;
    match core.generation() {
        crate::drupal::Generation::Drupal7 => None,
        crate::drupal::Generation::Drupal8Plus => Some(DRUPAL8_APPLY),
    }
}

/// What happens to a site (spec section 6, fixed names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SiteAction {
    /// Install a new site.
    #[serde(rename = "create")]
    Create,
    /// Make a new site as a copy of another.
    #[serde(rename = "clone")]
    Clone,
    /// Move onto another platform.
    #[serde(rename = "migrate")]
    Migrate,
    /// Change the domain on the same platform.
    #[serde(rename = "rename")]
    Rename,
    /// Move onto another platform under a new domain.
    #[serde(rename = "migrate+rename")]
    MigrateRename,
    /// Run pending updates on the platform the site already lives on.
    #[serde(rename = "update")]
    Update,
    /// Serve a disabled site again.
    #[serde(rename = "enable")]
    Enable,
    /// Serve a 'site disabled' page.
    #[serde(rename = "disable")]
    Disable,
    /// Re-render settings and vhost (aliases changed, or drift).
    #[serde(rename = "verify")]
    Verify,
    /// Remove a site no longer declared (prune only).
    #[serde(rename = "delete")]
    Delete,
    /// Nothing to do.
    #[serde(rename = "noop")]
    Noop,
}

impl SiteAction {
    /// Every action, in report order.
    pub const ALL: [SiteAction; 11] = [
        SiteAction::Create,
        SiteAction::Clone,
        SiteAction::Migrate,
        SiteAction::Rename,
        SiteAction::MigrateRename,
        SiteAction::Update,
        SiteAction::Enable,
        SiteAction::Disable,
        SiteAction::Verify,
        SiteAction::Delete,
        SiteAction::Noop,
    ];

    /// The fixed name.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteAction::Create => "create",
            SiteAction::Clone => "clone",
            SiteAction::Migrate => "migrate",
            SiteAction::Rename => "rename",
            SiteAction::MigrateRename => "migrate+rename",
            SiteAction::Update => "update",
            SiteAction::Enable => "enable",
            SiteAction::Disable => "disable",
            SiteAction::Verify => "verify",
            SiteAction::Delete => "delete",
            SiteAction::Noop => "noop",
        }
    }
}

/// What happens to a platform (spec section 6, fixed names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformAction {
    /// Build it from its source.
    Build,
    /// Remove it (prune only, no site left on it).
    Delete,
    /// Nothing to do.
    Noop,
}

impl PlatformAction {
    /// Every action, in report order.
    pub const ALL: [PlatformAction; 3] = [
        PlatformAction::Build,
        PlatformAction::Delete,
        PlatformAction::Noop,
    ];

    /// The fixed name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformAction::Build => "build",
            PlatformAction::Delete => "delete",
            PlatformAction::Noop => "noop",
        }
    }
}

/// Where a site is: a platform and a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The platform.
    pub platform: PlatformName,
    /// The domain.
    pub domain: Domain,
    /// The server, named when a site moves between two (absent otherwise,
    /// so every other plan and task record reads as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Name>,
}

/// Why hoist leaves a site or platform alone (spec section 6): its own
/// `suspend:` or its server's, and what it would do otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    /// Why.
    pub reason: String,
    /// Who suspended it.
    pub by: Option<String>,
    /// When it ends (RFC 3339); none: until the key is removed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<time::OffsetDateTime>,
    /// Set when the suspension is its server's, not its own.
    pub server: Option<Name>,
    /// The action it would have without the suspension (none: nothing).
    pub would: Option<String>,
}

impl Suspended {
    fn new(s: &Suspension, server: Option<&Name>) -> Suspended {
        Suspended {
            reason: s.reason.clone(),
            by: s.by.clone(),
            until: s.until,
            server: server.cloned(),
            would: None,
        }
    }

    /// One line for people: who, why, until when.
    pub fn describe(&self) -> String {
        let mut out = match &self.server {
            Some(srv) => format!("suspended with server {srv}: {}", self.reason),
            None => format!("suspended: {}", self.reason),
        };
        if let Some(by) = &self.by {
            out.push_str(&format!(" (by {by})"));
        }
        match self.until.and_then(|u| {
            u.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }) {
            Some(u) => out.push_str(&format!(", until {u}")),
            None => out.push_str(", until further notice"),
        }
        if let Some(w) = &self.would {
            out.push_str(&format!("; would {w}"));
        }
        out
    }
}

/// The plan for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformPlan {
    /// The platform.
    pub name: PlatformName,
    /// What happens to it.
    pub action: PlatformAction,
    /// Whether the action cannot be carried out.
    pub blocked: bool,
    /// The server it is on.
    pub server: Name,
    /// Its source, described (none when it is not declared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source hash it will be built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_hash: Option<String>,
    /// It exists on the server but is not declared (and prune is off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmanaged: bool,
    /// What blocks it.
    pub errors: Vec<String>,
    /// What is worth a look.
    pub warnings: Vec<String>,
    /// Its server is suspended: nothing is done to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Suspended>,
}

/// The plan for one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SitePlan {
    /// The site.
    pub name: SiteName,
    /// What happens to it.
    pub action: SiteAction,
    /// Whether the action cannot be carried out.
    pub blocked: bool,
    /// Where it is now (none when it does not exist yet).
    pub from: Option<Endpoint>,
    /// Where it will be (none when it is deleted).
    pub to: Option<Endpoint>,
    /// For a clone: the source site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_from: Option<SiteName>,
    /// It exists but is not declared (and prune is off).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unmanaged: bool,
    /// Package verdicts against the target platform.
    pub packages: Vec<PackageVerdict>,
    /// What blocks it.
    pub errors: Vec<String>,
    /// What is worth a look (blocking under strict).
    pub warnings: Vec<String>,
    /// The unified diff of its settings (redacted) and vhost.
    pub diff: String,
    /// What the site will look like: the settings to render after the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<SiteConfig>,
    /// The fingerprint of the site's observed state the plan was made on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// It (or its server) is suspended: the action is `noop`, and this says
    /// why and what it would do otherwise.
    #[serde(default)]
    pub suspended: Option<Suspended>,
    /// The rollout wave its task runs in (spec section 9); none when it has
    /// nothing to do, is blocked, or `hoist.yaml` has no `rollout:`.
    #[serde(default)]
    pub wave: Option<String>,
}

/// Where the plan's desired state came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRef {
    /// The inventory directory.
    pub path: String,
    /// The inventory commit, when it is a git repository.
    pub commit: Option<String>,
}

/// Live (observed from servers) or offline (from status files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Observed from the servers.
    Live,
    /// Read from the status files.
    Offline,
}

/// Counts per action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Sites per action name (every action listed, zeros included).
    pub sites: BTreeMap<String, usize>,
    /// Platforms per action name.
    pub platforms: BTreeMap<String, usize>,
    /// Sites and platforms whose action is blocked.
    pub blocked: usize,
    /// Sites and platforms with an action other than noop.
    pub changes: usize,
    /// The rollout's waves in order, each with its number of site tasks
    /// (empty without `rollout:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveCount>,
}

/// One wave of the rollout and how many site tasks it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveCount {
    /// The wave's name.
    pub name: String,
    /// Its site tasks.
    pub sites: usize,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Where the desired state came from.
    pub inventory: InventoryRef,
    /// Live or offline.
    pub mode: Mode,
    /// Whether warnings were treated as blocking.
    pub strict: bool,
    /// The sites it was asked for (`--site`); empty: every site. A saved
    /// plan is checked against a fresh plan of the same sites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selected: Vec<SiteName>,
    /// The fingerprint of the whole observation the plan was made on.
    pub observed: String,
    /// Counts.
    pub summary: Summary,
    /// Per platform.
    pub platforms: Vec<PlatformPlan>,
    /// Per site.
    pub sites: Vec<SitePlan>,
}

impl Plan {
    /// Whether anything is blocked.
    pub fn blocked(&self) -> bool {
        self.summary.blocked > 0
    }
    /// Whether anything would change.
    pub fn has_changes(&self) -> bool {
        self.summary.changes > 0
    }
}

/// What the plan is asked for.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Treat warnings as blocking (`--strict` or `policy.strict`).
    pub strict: bool,
    /// Delete undeclared sites and platforms (`policy.prune`).
    pub prune: bool,
    /// Plan only these sites (empty: all).
    pub only: Vec<SiteName>,
    /// Live or offline.
    pub mode: Mode,
    /// Where the inventory came from.
    pub inventory: InventoryRef,
    /// The time suspensions are judged at: passed in, so that the plan
    /// stays a pure function.
    pub now: time::OffsetDateTime,
}

/// Computes the plan. Pure: the same inputs give the same plan.
pub fn plan(inv: &Inventory, actual: &Actual, opts: &PlanOptions) -> Plan {
    let selected = |s: &SiteName| opts.only.is_empty() || opts.only.contains(s);

    // Where each declared platform's codebase is, once built: the desired
    // codebase when its source is readable, else what is built.
    let mut codebases: BTreeMap<&PlatformName, &Codebase> = BTreeMap::new();
    for (name, p) in &actual.platforms {
        codebases.insert(name, &p.codebase);
    }
    for (name, spec) in &inv.platforms {
        if let Ok(src) = &spec.codebase {
            codebases.insert(name, &src.codebase);
        }
    }

    // Each declared site is planned on its own; at fleet scale, on every core.
    let declared: Vec<(&SiteName, &SiteSpec)> = inv
        .sites
        .iter()
        .filter(|(name, _)| selected(name))
        .collect();
    let mut sites: Vec<SitePlan> =
        crate::par::map(&declared, |(name, spec)| match actual.sites.get(*name) {
            Some(obs) => plan_existing(spec, obs, actual, &codebases, inv),
            None => plan_new(inv, spec, actual, &codebases),
        });
    for (name, obs) in &actual.sites {
        if inv.sites.contains_key(name) || !selected(name) {
            continue;
        }
        let from = Some(Endpoint {
            platform: obs.platform().clone(),
            domain: obs.domain().clone(),
            server: None,
        });
        let (action, unmanaged, diff) = if opts.prune {
            (
                SiteAction::Delete,
                false,
                render::site_diff(Some(&obs.config), None),
            )
        } else {
            (SiteAction::Noop, true, String::new())
        };
        let warnings = if unmanaged {
            vec!["the site exists but is not declared in the inventory; it is left alone (set policy.prune to delete it)".into()]
        } else {
            vec![]
        };
        sites.push(SitePlan {
            name: name.clone(),
            action,
            blocked: false,
            from,
            to: None,
            clone_from: None,
            unmanaged,
            packages: vec![],
            errors: vec![],
            warnings,
            diff,
            config: None,
            observed: actual.site_fingerprint(name),
            suspended: None,
            wave: None,
        });
    }
    check_domain_claims(&mut sites, actual);
    refuse_drupal_apply(&mut sites, &codebases);
    for s in &mut sites {
        suspend_site(s, inv, actual, opts.now);
    }
    sites.sort_by(|a, b| a.name.cmp(&b.name));

    let platforms = plan_platforms(inv, actual, &sites, opts);
    // A site moving onto a platform whose build is blocked is blocked too.
    let blocked_platforms: BTreeSet<&PlatformName> = platforms
        .iter()
        .filter(|p| p.blocked && p.action == PlatformAction::Build)
        .map(|p| &p.name)
        .collect();
    for s in sites.iter_mut().filter(|s| s.suspended.is_none()) {
        if let Some(to) = &s.to {
            let moves = s.from.as_ref().is_none_or(|f| f.platform != to.platform);
            if moves && blocked_platforms.contains(&to.platform) {
                s.errors
                    .push(format!("platform {} cannot be built", to.platform));
                s.blocked = true;
            }
        }
    }
    // Under strict, compatibility warnings block too.
    for s in sites.iter_mut().filter(|s| s.suspended.is_none()) {
        if opts.strict
            && s.packages
                .iter()
                .any(|p| p.severity == compat::Severity::Warning)
        {
            s.blocked = true;
        }
    }

    assign_waves(&mut sites, inv);

    let mut summary = Summary::default();
    for a in SiteAction::ALL {
        summary.sites.insert(a.as_str().into(), 0);
    }
    for a in PlatformAction::ALL {
        summary.platforms.insert(a.as_str().into(), 0);
    }
    for s in &sites {
        *summary.sites.entry(s.action.as_str().into()).or_default() += 1;
        summary.blocked += s.blocked as usize;
        summary.changes += (s.action != SiteAction::Noop) as usize;
    }
    if let Some(r) = &inv.settings.rollout {
        summary.waves = r
            .waves
            .iter()
            .map(|w| WaveCount {
                name: w.name.clone(),
                sites: sites
                    .iter()
                    .filter(|s| s.wave.as_deref() == Some(w.name.as_str()))
                    .count(),
            })
            .collect();
    }
    for p in &platforms {
        *summary
            .platforms
            .entry(p.action.as_str().into())
            .or_default() += 1;
        summary.blocked += p.blocked as usize;
        summary.changes += (p.action != PlatformAction::Noop) as usize;
    }

    Plan {
        format_version: FORMAT_VERSION,
        inventory: opts.inventory.clone(),
        mode: opts.mode,
        strict: opts.strict,
        selected: opts.only.clone(),
        observed: actual.fingerprint(),
        summary,
        platforms,
        sites,
    }
}

/// Blocks every change to a site on, or moving onto, a Drupal platform,
/// with the reason: apply cannot carry it out yet (spec 3b). The plan still
/// shows what the change would be, verdicts included.
fn refuse_drupal_apply(sites: &mut [SitePlan], codebases: &BTreeMap<&PlatformName, &Codebase>) {
    for s in sites.iter_mut().filter(|s| s.action != SiteAction::Noop) {
        let ends = s.from.iter().chain(&s.to);
        let why: BTreeSet<&str> = ends
            .filter_map(|e| codebases.get(&e.platform))
            .filter_map(|cb| drupal_apply_refusal(cb))
            .collect();
        if !why.is_empty() {
            s.errors.extend(why.into_iter().map(String::from));
            s.blocked = true;
        }
    }
}

/// Names each runnable site's wave ([`waves::assign`]). A site that no
/// wave selects is blocked: it would otherwise never run, silently.
fn assign_waves(sites: &mut [SitePlan], inv: &Inventory) {
    let Some(rollout) = &inv.settings.rollout else {
        return;
    };
    let none = BTreeMap::new();
    let runnable: Vec<waves::Candidate> = sites
        .iter()
        .filter(|s| s.action != SiteAction::Noop && !s.blocked)
        .map(|s| waves::Candidate {
            name: &s.name,
            labels: inv.sites.get(&s.name).map_or(&none, |sp| &sp.labels),
        })
        .collect();
    let got: BTreeMap<SiteName, usize> = waves::assign(rollout, &runnable)
        .into_iter()
        .map(|(n, w)| (n.clone(), w))
        .collect();
    for s in sites
        .iter_mut()
        .filter(|s| s.action != SiteAction::Noop && !s.blocked)
    {
        match got.get(&s.name) {
            Some(&w) => s.wave = Some(rollout.waves[w].name.clone()),
            None => {
                s.errors.push(
                    "no rollout wave selects it (a last wave without `select` takes every site left)"
                        .into(),
                );
                s.blocked = true;
            }
        }
    }
}

/// The suspension of a server that holds at `now`.
fn server_suspension(
    inv: &Inventory,
    server: &Name,
    now: time::OffsetDateTime,
) -> Option<Suspended> {
    let s = inv.settings.servers.get(server)?.suspend()?;
    s.active(now).then(|| Suspended::new(s, Some(server)))
}

/// Holds a planned action back: what it would do is kept in `s.would`, what
/// would block it becomes a warning (it blocks nothing while nothing runs).
fn hold(
    action: Option<&str>,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
    mut s: Suspended,
) -> Suspended {
    s.would = action.map(str::to_string);
    warnings.extend(errors.drain(..).map(|e| format!("once resumed: {e}")));
    s
}

/// The suspension that holds for site `name` at `now`: its own, or that of
/// the server it lives on (`here`, when it exists) or that of its declared
/// platform. The one rule for the plan and for `hoist restore`.
pub fn site_suspension(
    inv: &Inventory,
    name: &SiteName,
    here: Option<&Name>,
    now: time::OffsetDateTime,
) -> Option<Suspended> {
    let spec = inv.sites.get(name);
    let own = spec
        .and_then(|s| s.suspend.as_ref())
        .filter(|s| s.active(now))
        .map(|s| Suspended::new(s, None));
    let there = spec
        .and_then(|s| inv.platforms.get(&s.platform))
        .map(|p| &p.server);
    own.or_else(|| {
        here.into_iter()
            .chain(there)
            .find_map(|srv| server_suspension(inv, srv, now))
    })
}

/// Makes a site `noop` when a suspension holds for it at `now`.
fn suspend_site(p: &mut SitePlan, inv: &Inventory, actual: &Actual, now: time::OffsetDateTime) {
    let here = actual.sites.get(&p.name).map(|o| &o.server);
    let Some(s) = site_suspension(inv, &p.name, here, now) else {
        return;
    };
    let would = (p.action != SiteAction::Noop).then(|| p.action.as_str());
    p.suspended = Some(hold(would, &mut p.errors, &mut p.warnings, s));
    p.action = SiteAction::Noop;
    p.blocked = false;
}

/// Makes a platform `noop` when its server is suspended at `now`.
fn suspend_platform(p: &mut PlatformPlan, inv: &Inventory, now: time::OffsetDateTime) {
    let Some(s) = server_suspension(inv, &p.server, now) else {
        return;
    };
    let would = (p.action != PlatformAction::Noop).then(|| p.action.as_str());
    p.suspended = Some(hold(would, &mut p.errors, &mut p.warnings, s));
    p.action = PlatformAction::Noop;
}

fn desired_config(inv: &Inventory, spec: &SiteSpec, db_name: Option<String>) -> SiteConfig {
    let (db_driver, db_address) = match inv.settings.databases.get(&spec.database) {
        Some(crate::inventory::DatabaseConfig::Mysql(m)) => {
            (crate::render::DbDriver::Mysql, Some(m.address()))
        }
        _ => (crate::render::DbDriver::Sqlite, None),
    };
    SiteConfig {
        site: spec.name.clone(),
        domain: spec.domain.clone(),
        aliases: spec.aliases.clone(),
        platform: spec.platform.clone(),
        profile: spec.profile.clone(),
        enabled: spec.enabled,
        db_server: spec.database.clone(),
        db_driver,
        db_address,
        db_name,
    }
}

fn comparison_result(plan: &mut SitePlan, c: Comparison) {
    plan.packages = c.packages;
    plan.errors.extend(c.errors);
    plan.warnings.extend(c.warnings);
}

fn plan_existing(
    spec: &SiteSpec,
    obs: &ObservedSite,
    actual: &Actual,
    codebases: &BTreeMap<&PlatformName, &Codebase>,
    inv: &Inventory,
) -> SitePlan {
    let moves = spec.platform != *obs.platform();
    let renames = spec.domain != *obs.domain();
    // A site whose `database:` names another server moves there as Aegir's
    // migrate does: a new database on that server holding a copy of its
    // rows (dump and load), the old one dropped once the new site serves.
    let rehomes = spec.database != obs.config.db_server;
    // A migrate compares with its target and runs the updates there; any
    // other task stays on the site's own platform.
    let own = if moves {
        None
    } else {
        own_platform_check(obs, actual)
    };
    let action = match (moves, renames) {
        (true, true) => SiteAction::MigrateRename,
        (true, false) => SiteAction::Migrate,
        (false, true) => SiteAction::Rename,
        (false, false) if rehomes => SiteAction::Migrate,
        (false, false) => {
            let c = &obs.config;
            if spec.enabled && !c.enabled {
                SiteAction::Enable
            } else if !spec.enabled && c.enabled {
                SiteAction::Disable
            } else if spec.aliases != c.aliases || !obs.drift.is_empty() {
                SiteAction::Verify
            } else if own.is_some() {
                SiteAction::Update
            } else {
                SiteAction::Noop
            }
        }
    };
    // A migration gets a new database; anything else keeps its own.
    let db_name = if moves || renames || rehomes {
        None
    } else {
        obs.config.db_name.clone()
    };
    let after = desired_config(inv, spec, db_name);
    // A move between servers names both (the plan shows them).
    let dest = inv.platforms.get(&spec.platform).map(|p| p.server.clone());
    let across = dest.filter(|d| *d != obs.server);
    let mut p = SitePlan {
        name: spec.name.clone(),
        action,
        blocked: false,
        from: Some(Endpoint {
            platform: obs.platform().clone(),
            domain: obs.domain().clone(),
            server: across.as_ref().map(|_| obs.server.clone()),
        }),
        to: Some(Endpoint {
            platform: spec.platform.clone(),
            domain: spec.domain.clone(),
            server: across,
        }),
        clone_from: None,
        unmanaged: false,
        packages: vec![],
        errors: vec![],
        warnings: obs.drift.clone(),
        diff: if action == SiteAction::Noop {
            String::new()
        } else {
            render::site_diff(Some(&obs.config), Some(&after))
        },
        config: Some(after),
        observed: actual.site_fingerprint(&spec.name),
        suspended: None,
        wave: None,
    };
    if spec.profile != obs.config.profile {
        p.errors.push(format!(
            "the profile cannot change after install: the site was installed with {}, the inventory says {}",
            obs.config.profile, spec.profile
        ));
    }
    if rehomes && p.config.as_ref().map(|c| c.db_driver) != Some(obs.config.db_driver) {
        p.errors.push(format!(
            "moving a site from a {} database server ({}) to a {} one ({}) is not supported: its rows move by dump and load, between servers of one kind",
            obs.config.db_driver.as_str(),
            obs.config.db_server,
            p.config.as_ref().map_or("other", |c| c.db_driver.as_str()),
            spec.database
        ));
    }
    p.errors.extend(sqlite_on_ssh(inv, spec));
    if moves {
        match codebases.get(&spec.platform) {
            Some(target) => {
                let current = codebases.get(obs.platform()).copied();
                let c = compat::compare_with(
                    &obs.packages,
                    &obs.drupal,
                    &obs.config.profile,
                    current,
                    &spec.platform,
                    target,
                );
                comparison_result(&mut p, c);
            }
            None => p.errors.push(unknown_platform(inv, &spec.platform)),
        }
    }
    if let Some(c) = own {
        match action {
            // Each runs the updates where the site lives (a rename or a
            // move to another database server in its deploy), so what
            // blocks them blocks the task.
            SiteAction::Update | SiteAction::Rename => comparison_result(&mut p, c),
            SiteAction::Migrate if !moves => comparison_result(&mut p, c),
            // Settings and vhost first; the updates are the next apply's.
            _ => p.warnings.push(format!(
                "against its own platform {}: {}; the next apply plans an `update` once this change is done",
                c.target,
                c.packages
                    .iter()
                    .filter(|v| v.verdict != compat::Verdict::Same
                        && v.verdict != compat::Verdict::Disabled)
                    .map(|v| v.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
    p.blocked = !p.errors.is_empty();
    p
}

/// A site compared with the platform it lives on, as built (the codebase
/// whose update files would run): `Some` when an update would run or the
/// site is ahead of its platform (a `schema-downgrade`, which blocks as for
/// a migrate). None when nothing is pending, or the platform is not built.
fn own_platform_check(obs: &ObservedSite, actual: &Actual) -> Option<Comparison> {
    let built = &actual.platforms.get(obs.platform())?.codebase;
    // Versions are measured against the site's own record: the platform
    // it lives on is the target.
    let c = compat::compare_with(
        &obs.packages,
        &obs.drupal,
        &obs.config.profile,
        Some(built).filter(|b| b.drupal.is_some()),
        obs.platform(),
        built,
    );
    (c.upgrades() > 0 || !c.errors.is_empty()).then_some(c)
}

/// Why site `spec` cannot have its database where the inventory puts it:
/// SQLite keeps its files under a local server's root, and its platform's
/// server is reached over ssh.
fn sqlite_on_ssh(inv: &Inventory, spec: &SiteSpec) -> Option<String> {
    let server = &inv.platforms.get(&spec.platform)?.server;
    let ssh = matches!(
        inv.settings.servers.get(server),
        Some(crate::inventory::ServerConfig::Ssh { .. })
    );
    let sqlite = matches!(
        inv.settings.databases.get(&spec.database),
        Some(crate::inventory::DatabaseConfig::Sqlite)
    );
    (ssh && sqlite).then(|| {
        format!(
            "its database server {} is SQLite, which keeps its files on a local server; server {server} is reached over ssh: use a mysql database server for its sites",
            spec.database
        )
    })
}

fn plan_new(
    inv: &Inventory,
    spec: &SiteSpec,
    actual: &Actual,
    codebases: &BTreeMap<&PlatformName, &Codebase>,
) -> SitePlan {
    let after = desired_config(inv, spec, None);
    let mut p = SitePlan {
        name: spec.name.clone(),
        action: if spec.clone_from.is_some() {
            SiteAction::Clone
        } else {
            SiteAction::Create
        },
        blocked: false,
        from: None,
        to: Some(Endpoint {
            platform: spec.platform.clone(),
            domain: spec.domain.clone(),
            server: None,
        }),
        clone_from: spec.clone_from.clone(),
        unmanaged: false,
        packages: vec![],
        errors: vec![],
        warnings: vec![],
        diff: render::site_diff(None, Some(&after)),
        config: Some(after),
        observed: None,
        suspended: None,
        wave: None,
    };
    if let Some(u) = actual.unreadable(&spec.name, &spec.domain) {
        p.errors.push(format!(
            "a site directory {} on {} exists but cannot be read ({}); nothing is done to it until it can",
            u.domain, u.platform, u.error
        ));
        p.blocked = true;
        return p;
    }
    let Some(target) = codebases.get(&spec.platform) else {
        p.errors.push(unknown_platform(inv, &spec.platform));
        p.blocked = true;
        return p;
    };
    p.errors.extend(sqlite_on_ssh(inv, spec));
    match &spec.clone_from {
        None => match compat::install_verdicts(target, &spec.profile) {
            Ok(v) => p.packages = v,
            Err(e) => p.errors.push(e),
        },
        Some(src) => {
            // The source's packages: observed, or what its own install will give.
            let mut extras = compat::SiteExtras::default();
            let (packages, profile, current): (Result<BTreeMap<_, SitePackage>, String>, _, _) =
                match actual.sites.get(src) {
                    Some(o) => {
                        extras = o.drupal.clone();
                        (
                            Ok(o.packages.clone()),
                            o.config.profile.clone(),
                            codebases.get(o.platform()).copied(),
                        )
                    }
                    None => match inv.sites.get(src) {
                        Some(s) if s.clone_from.is_none() => {
                            let cb = codebases.get(&s.platform).copied();
                            let pk = cb
                                .ok_or_else(|| unknown_platform(inv, &s.platform))
                                .and_then(|cb| compat::fresh_install(cb, &s.profile));
                            (pk, s.profile.clone(), cb)
                        }
                        _ => (
                            Err(format!(
                                "clone source {src} is not installed yet; apply again once it is"
                            )),
                            spec.profile.clone(),
                            None,
                        ),
                    },
                };
            match packages {
                Ok(pk) => {
                    if profile != spec.profile {
                        p.errors.push(format!(
                            "a clone keeps its source's profile ({profile}); the inventory says {}",
                            spec.profile
                        ));
                    }
                    let c = compat::compare_with(
                        &pk,
                        &extras,
                        &profile,
                        current,
                        &spec.platform,
                        target,
                    );
                    comparison_result(&mut p, c);
                }
                Err(e) => p.errors.push(e),
            }
        }
    }
    p.blocked = !p.errors.is_empty();
    p
}

/// Why a platform's codebase is unknown, for the sites that need it.
fn unknown_platform(inv: &Inventory, name: &PlatformName) -> String {
    let why = inv
        .platforms
        .get(name)
        .and_then(|p| p.codebase.as_ref().err())
        .map(|e| format!(" ({e})"))
        .unwrap_or_default();
    format!("platform {name} is unknown: it is not built, and its source cannot be read here{why}")
}

/// A site may not take a domain or alias that another site keeps after the
/// plan (an undeclared site that stays, say).
fn check_domain_claims(sites: &mut [SitePlan], actual: &Actual) {
    let mut kept: BTreeMap<Domain, SiteName> = BTreeMap::new();
    for s in sites.iter() {
        if s.unmanaged {
            if let Some(o) = actual.sites.get(&s.name) {
                kept.insert(o.domain().clone(), s.name.clone());
                for a in &o.config.aliases {
                    kept.insert(a.clone(), s.name.clone());
                }
            }
        }
    }
    for s in sites.iter_mut() {
        let Some(cfg) = &s.config else { continue };
        let mine = std::iter::once(&cfg.domain).chain(&cfg.aliases);
        let clashes: Vec<String> = mine
            .filter_map(|d| {
                kept.get(d)
                    .filter(|o| **o != s.name)
                    .map(|o| format!("{d} is still served by site {o}"))
            })
            .collect();
        if !clashes.is_empty() {
            s.errors.extend(clashes);
            s.blocked = true;
        }
    }
}

fn plan_platforms(
    inv: &Inventory,
    actual: &Actual,
    sites: &[SitePlan],
    opts: &PlanOptions,
) -> Vec<PlatformPlan> {
    // Which platforms have a site on them after the plan, and which are
    // needed by a selected site's move.
    let mut kept: BTreeSet<&PlatformName> = BTreeSet::new();
    for s in sites {
        if let Some(to) = &s.to {
            kept.insert(&to.platform);
        }
        if s.unmanaged || s.blocked || s.suspended.is_some() {
            if let Some(from) = &s.from {
                kept.insert(&from.platform);
            }
        }
    }
    for u in &actual.unreadable_sites {
        kept.insert(&u.platform);
    }
    // Observed sites that the plan does not cover (filtered out by --site)
    // stay where they are.
    let planned: BTreeSet<&SiteName> = sites.iter().map(|s| &s.name).collect();
    for (name, o) in &actual.sites {
        if !planned.contains(name) {
            kept.insert(o.platform());
        }
    }
    let needed: BTreeSet<&PlatformName> = sites
        .iter()
        .filter_map(|s| s.to.as_ref().map(|t| &t.platform))
        .collect();
    // Unreadable site directories count: their data lives there too.
    let sites_on = |p: &PlatformName| {
        actual.sites.values().filter(|s| s.platform() == p).count()
            + actual
                .unreadable_sites
                .iter()
                .filter(|u| &u.platform == p)
                .count()
    };

    let mut out = Vec::new();
    for (name, spec) in &inv.platforms {
        if !opts.only.is_empty() && !needed.contains(name) {
            continue;
        }
        let observed = actual.platforms.get(name);
        let mut p = PlatformPlan {
            name: name.clone(),
            action: PlatformAction::Noop,
            blocked: false,
            server: spec.server.clone(),
            source: Some(spec.source.describe()),
            source_hash: spec.codebase.as_ref().ok().map(|c| c.hash.clone()),
            unmanaged: false,
            errors: vec![],
            warnings: vec![],
            suspended: None,
        };
        match (&spec.codebase, observed) {
            (Err(e), None) => {
                p.action = PlatformAction::Build;
                p.errors.push(e.clone());
            }
            (Err(e), Some(_)) => p.warnings.push(format!(
                "its source cannot be read ({e}); the built platform is kept"
            )),
            (Ok(src), None) => match actual.broken_platforms.get(name) {
                None => p.action = PlatformAction::Build,
                Some(b) => {
                    let n = sites_on(name);
                    if n == 0 || b.source_hash.as_deref() == Some(src.hash.as_str()) {
                        p.action = PlatformAction::Build;
                        p.warnings.push(format!(
                            "the built platform cannot be read ({}); it is rebuilt from its unchanged source, keeping the {n} site(s) on it",
                            b.error
                        ));
                    } else {
                        p.errors.push(format!(
                            "the built platform cannot be read ({}) and its source is not the one it was built from, while {n} site(s) live on it; repair it by hand",
                            b.error
                        ));
                    }
                }
            },
            (Ok(src), Some(o)) => {
                if o.server != spec.server {
                    p.errors.push(format!(
                        "it is built on server {}, the inventory says {}",
                        o.server, spec.server
                    ));
                } else if o.source_hash != src.hash {
                    let n = sites_on(name);
                    if n > 0 {
                        p.errors.push(format!(
                            "its source changed while {n} site(s) live on it: platforms are immutable; declare a new platform and migrate the sites"
                        ));
                    } else {
                        p.action = PlatformAction::Build;
                        p.warnings.push(
                            "its source changed; no site lives on it, so it is rebuilt".into(),
                        );
                    }
                }
            }
        }
        if p.action == PlatformAction::Build {
            if let Some(why) = spec
                .codebase
                .as_ref()
                .ok()
                .and_then(|src| drupal_apply_refusal(&src.codebase))
            {
                p.errors.push(why.to_string());
            }
        }
        suspend_platform(&mut p, inv, opts.now);
        p.blocked = !p.errors.is_empty();
        out.push(p);
    }
    if opts.only.is_empty() {
        for (name, o) in &actual.platforms {
            if inv.platforms.contains_key(name) {
                continue;
            }
            let mut p = PlatformPlan {
                name: name.clone(),
                action: PlatformAction::Noop,
                blocked: false,
                server: o.server.clone(),
                source: Some(o.source.clone()),
                source_hash: None,
                unmanaged: false,
                errors: vec![],
                warnings: vec![],
                suspended: None,
            };
            if !opts.prune {
                p.unmanaged = true;
                p.warnings.push("the platform exists but is not declared; it is left alone (set policy.prune to delete it)".into());
            } else if kept.contains(name) {
                p.errors
                    .push("it is not declared, but sites still live on it".into());
            } else {
                p.action = PlatformAction::Delete;
            }
            suspend_platform(&mut p, inv, opts.now);
            p.blocked = !p.errors.is_empty();
            out.push(p);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The names of sites and platforms a plan would change, for messages.
pub fn changed_names(plan: &Plan) -> Vec<String> {
    let mut v: Vec<String> = plan
        .platforms
        .iter()
        .filter(|p| p.action != PlatformAction::Noop)
        .map(|p| format!("platform {}", p.name))
        .collect();
    v.extend(
        plan.sites
            .iter()
            .filter(|s| s.action != SiteAction::Noop)
            .map(|s| format!("site {}", s.name)),
    );
    v
}

#[cfg(test)]
mod tests {
    //! The plan as a pure function: inventories and observations built in
    //! memory, no file touched.
    use super::*;
    use crate::codebase::{Package, PackageKind};
    use crate::inventory::{PlatformSpec, Settings, Source, SourceCodebase};
    use crate::names::PackageName;
    use crate::observe::{BrokenPlatform, ObservedPlatform, UnreadableSite};
    use std::path::PathBuf;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }
    fn pk(s: &str) -> PackageName {
        PackageName::new(s).unwrap()
    }
    fn d(s: &str) -> Domain {
        Domain::new(s).unwrap()
    }

    /// A codebase with `core` at `core_schema` and the `standard` profile.
    fn codebase(core_version: &str, core_schema: u32) -> Codebase {
        let core = Package::embedded(
            pk("core"),
            PackageKind::Library,
            semver::Version::parse(core_version).unwrap(),
            (1..=core_schema).collect(),
        );
        let mut standard = Package::embedded(
            pk("standard"),
            PackageKind::Profile,
            semver::Version::new(1, 0, 0),
            vec![],
        );
        standard.depends = vec![pk("core")];
        standard.install = vec![pk("core")];
        Codebase {
            packages: [core, standard]
                .into_iter()
                .map(|p| (p.name.clone(), p))
                .collect(),
            drupal: None,
        }
    }

    struct World {
        inv: Inventory,
        actual: Actual,
    }

    impl World {
        /// Platforms v1 (core 1.0.0, schema 1) and v2 (core 2.0.0, schema 3),
        /// both declared and built; nothing else.
        fn new() -> World {
            let mut inv = Inventory {
                root: PathBuf::from("/inventory"),
                settings: Settings::default(),
                platforms: BTreeMap::new(),
                sites: BTreeMap::new(),
                commit: None,
            };
            let mut actual = Actual::default();
            for (name, v, schema) in [("v1", "1.0.0", 1), ("v2", "2.0.0", 3)] {
                let cb = codebase(v, schema);
                inv.platforms.insert(
                    n(name),
                    PlatformSpec {
                        name: n(name),
                        source: Source::Path {
                            path: PathBuf::from(name),
                        },
                        server: n("local"),
                        kind: None,
                        codebase: Ok(SourceCodebase {
                            dir: PathBuf::from(name),
                            codebase: cb.clone(),
                            hash: format!("hash-{name}"),
                        }),
                    },
                );
                actual.platforms.insert(
                    n(name),
                    ObservedPlatform {
                        name: n(name),
                        server: n("local"),
                        source: format!("path {name}"),
                        source_hash: format!("hash-{name}"),
                        codebase: cb,
                    },
                );
            }
            World { inv, actual }
        }

        fn declare(&mut self, site: &str, domain: &str, platform: &str) -> &mut SiteSpec {
            self.inv.sites.insert(
                n(site),
                SiteSpec {
                    name: n(site),
                    domain: d(domain),
                    aliases: vec![],
                    platform: n(platform),
                    profile: pk("standard"),
                    database: n("default"),
                    enabled: true,
                    clone_from: None,
                    suspend: None,
                    labels: Default::default(),
                    health: Default::default(),
                },
            );
            self.inv.sites.get_mut(&n(site)).unwrap()
        }

        /// A site installed on `platform` with that platform's packages.
        fn install(&mut self, site: &str, domain: &str, platform: &str) {
            let cb = &self.actual.platforms[&n(platform)].codebase;
            let packages = compat::fresh_install(cb, &pk("standard")).unwrap();
            self.actual.sites.insert(
                n(site),
                ObservedSite {
                    config: SiteConfig {
                        site: n(site),
                        domain: d(domain),
                        aliases: vec![],
                        platform: n(platform),
                        profile: pk("standard"),
                        enabled: true,
                        db_server: n("default"),
                        db_driver: Default::default(),
                        db_address: None,
                        db_name: Some(format!("{site}_db")),
                    },
                    server: n("local"),
                    packages,
                    drupal: Default::default(),
                    maintenance: false,
                    drift: vec![],
                },
            );
        }

        fn plan(&self, strict: bool, prune: bool, only: &[&str]) -> Plan {
            let opts = PlanOptions {
                strict,
                prune,
                only: only.iter().map(|s| n(s)).collect(),
                mode: Mode::Live,
                inventory: InventoryRef {
                    path: "/inventory".into(),
                    commit: None,
                },
                now: time::macros::datetime!(2026-12-01 00:00 UTC),
            };
            plan(&self.inv, &self.actual, &opts)
        }
    }

    fn site<'a>(p: &'a Plan, name: &str) -> &'a SitePlan {
        p.sites.iter().find(|s| s.name.as_str() == name).unwrap()
    }
    fn platform<'a>(p: &'a Plan, name: &str) -> &'a PlatformPlan {
        p.platforms
            .iter()
            .find(|s| s.name.as_str() == name)
            .unwrap()
    }

    #[test]
    fn a_declared_site_that_does_not_exist_is_created() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v2");
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!((a.action, a.blocked), (SiteAction::Create, false));
        assert!(a
            .packages
            .iter()
            .all(|v| v.verdict == compat::Verdict::Install));
        assert!(a.diff.contains("+++ b/vhosts/a.example.com.conf"));
        assert_eq!(p.summary.sites["create"], 1);
        assert_eq!(p.summary.changes, 1);
        assert!(p.has_changes() && !p.blocked());
    }

    #[test]
    fn what_is_in_sync_is_a_noop() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v1");
        w.install("a", "a.example.com", "v1");
        let p = w.plan(false, false, &[]);
        assert_eq!(site(&p, "a").action, SiteAction::Noop);
        assert!(site(&p, "a").diff.is_empty());
        assert!(p.platforms.iter().all(|p| p.action == PlatformAction::Noop));
        assert!(!p.has_changes());
    }

    #[test]
    fn a_changed_platform_is_a_migration_with_verdicts() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v2");
        w.install("a", "a.example.com", "v1");
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!(a.action, SiteAction::Migrate);
        let core = a
            .packages
            .iter()
            .find(|v| v.name.as_str() == "core")
            .unwrap();
        assert_eq!(
            (core.verdict, core.pending.clone()),
            (compat::Verdict::Upgrade, vec![2, 3])
        );
        assert_eq!(a.from.as_ref().unwrap().platform.as_str(), "v1");
        assert_eq!(a.to.as_ref().unwrap().platform.as_str(), "v2");
        assert!(
            a.diff.contains("-platform: v1\n+platform: v2"),
            "{}",
            a.diff
        );
        assert!(
            a.config.as_ref().unwrap().db_name.is_none(),
            "a migration gets a new database"
        );
    }

    #[test]
    fn moving_back_is_a_blocked_schema_downgrade() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v1");
        w.install("a", "a.example.com", "v2");
        let p = w.plan(false, false, &[]);
        assert!(site(&p, "a").blocked);
        assert_eq!(p.summary.blocked, 1);
        assert!(p.blocked());
    }

    #[test]
    fn rename_and_both_at_once() {
        let mut w = World::new();
        w.declare("a", "new.example.com", "v1");
        w.install("a", "a.example.com", "v1");
        w.declare("b", "b2.example.com", "v2");
        w.install("b", "b.example.com", "v1");
        let p = w.plan(false, false, &[]);
        assert_eq!(site(&p, "a").action, SiteAction::Rename);
        assert_eq!(site(&p, "b").action, SiteAction::MigrateRename);
    }

    #[test]
    fn another_database_server_is_a_migrate_of_one_kind_only() {
        let mut w = World::new();
        let db =
            |yaml: &str| serde_yaml::from_str::<crate::inventory::DatabaseConfig>(yaml).unwrap();
        w.inv
            .settings
            .databases
            .insert(n("lite"), db("{kind: sqlite}"));
        w.inv
            .settings
            .databases
            .insert(n("maria"), db("{kind: mysql, admin_password_env: PW}"));
        w.declare("a", "a.example.com", "v1").database = n("lite");
        w.install("a", "a.example.com", "v1");
        w.declare("b", "b.example.com", "v1").database = n("maria");
        w.install("b", "b.example.com", "v1");
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!(a.action, SiteAction::Migrate);
        assert!(!a.blocked, "{:?}", a.errors);
        assert_eq!(a.from, a.to, "neither platform nor domain changes");
        let cfg = a.config.as_ref().unwrap();
        assert_eq!(
            (cfg.db_server.as_str(), cfg.db_name.as_ref()),
            ("lite", None)
        );
        assert!(a.diff.contains("+  server: lite"), "{}", a.diff);
        let b = site(&p, "b");
        assert!(b.blocked);
        assert!(
            b.errors[0].contains("from a sqlite database server (default) to a mysql one (maria)"),
            "{:?}",
            b.errors
        );
    }

    #[test]
    fn a_move_to_another_server_names_both() {
        let mut w = World::new();
        w.inv.platforms.get_mut(&n("v2")).unwrap().server = n("web2");
        w.declare("a", "a.example.com", "v2");
        w.install("a", "a.example.com", "v1");
        w.declare("b", "b.example.com", "v1");
        w.install("b", "b.example.com", "v1");
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!(a.action, SiteAction::Migrate);
        assert!(!a.blocked, "{:?}", a.errors);
        assert_eq!(a.from.as_ref().unwrap().server, Some(n("local")));
        assert_eq!(a.to.as_ref().unwrap().server, Some(n("web2")));
        // A site that stays on its server names none.
        let b = site(&p, "b");
        assert_eq!(b.from.as_ref().unwrap().server, None);
    }

    #[test]
    fn a_sqlite_site_on_an_ssh_server_is_blocked_with_why() {
        let mut w = World::new();
        w.inv.settings.servers.insert(
            n("web2"),
            crate::inventory::ServerConfig::Ssh {
                host: "web2.example.org".into(),
                port: 22,
                user: None,
                root: "/srv/hoist".into(),
                known_hosts: "ssh/known_hosts".into(),
                identity_file: None,
                suspend: None,
                web: Default::default(),
            },
        );
        w.inv.platforms.get_mut(&n("v2")).unwrap().server = n("web2");
        w.declare("a", "a.example.com", "v2");
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert!(a.blocked);
        assert!(
            a.errors[0].contains("SQLite, which keeps its files on a local server"),
            "{:?}",
            a.errors
        );
    }

    #[test]
    fn enable_disable_and_verify() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v1").enabled = false;
        w.install("a", "a.example.com", "v1");
        w.declare("b", "b.example.com", "v1").aliases = vec![d("www.b.example.com")];
        w.install("b", "b.example.com", "v1");
        w.declare("c", "c.example.com", "v1");
        w.install("c", "c.example.com", "v1");
        w.actual.sites.get_mut(&n("c")).unwrap().drift =
            vec!["its vhost was edited by hand".into()];
        let p = w.plan(false, false, &[]);
        assert_eq!(site(&p, "a").action, SiteAction::Disable);
        assert_eq!(site(&p, "b").action, SiteAction::Verify);
        let diff = &site(&p, "b").diff;
        assert!(diff.contains("+aliases: [www.b.example.com]"), "{diff}");
        assert!(
            diff.contains("+    server_name b.example.com www.b.example.com;"),
            "{diff}"
        );
        assert_eq!(site(&p, "c").action, SiteAction::Verify);
        w.actual.sites.get_mut(&n("a")).unwrap().config.enabled = false;
        w.inv.sites.get_mut(&n("a")).unwrap().enabled = true;
        assert_eq!(
            site(&w.plan(false, false, &[]), "a").action,
            SiteAction::Enable
        );
    }

    #[test]
    fn undeclared_sites_are_unmanaged_or_deleted_with_prune() {
        let mut w = World::new();
        w.install("gone", "gone.example.com", "v1");
        let p = w.plan(false, false, &[]);
        let g = site(&p, "gone");
        assert_eq!((g.action, g.unmanaged), (SiteAction::Noop, true));
        let p = w.plan(false, true, &[]);
        assert_eq!(site(&p, "gone").action, SiteAction::Delete);
        assert!(site(&p, "gone").diff.contains("+++ /dev/null"));
    }

    #[test]
    fn an_unmanaged_site_keeps_its_domain() {
        let mut w = World::new();
        w.install("old", "shop.example.com", "v1");
        w.declare("new", "shop.example.com", "v2");
        let p = w.plan(false, false, &[]);
        let s = site(&p, "new");
        assert!(
            s.blocked && s.errors[0].contains("still served by site old"),
            "{:?}",
            s.errors
        );
    }

    #[test]
    fn platforms_are_built_kept_rebuilt_or_blocked() {
        let mut w = World::new();
        w.actual.platforms.remove(&n("v2"));
        assert_eq!(
            platform(&w.plan(false, false, &[]), "v2").action,
            PlatformAction::Build
        );

        let mut w = World::new();
        w.actual.platforms.get_mut(&n("v1")).unwrap().source_hash = "other".into();
        // no site on it: rebuilt
        assert_eq!(
            platform(&w.plan(false, false, &[]), "v1").action,
            PlatformAction::Build
        );
        // a site on it: platforms are immutable
        w.declare("a", "a.example.com", "v1");
        w.install("a", "a.example.com", "v1");
        let p = w.plan(false, false, &[]);
        assert!(platform(&p, "v1").blocked, "{:?}", platform(&p, "v1"));

        // undeclared: unmanaged, or deleted with prune once no site is left
        let mut w = World::new();
        w.inv.platforms.remove(&n("v1"));
        assert!(platform(&w.plan(false, false, &[]), "v1").unmanaged);
        assert_eq!(
            platform(&w.plan(false, true, &[]), "v1").action,
            PlatformAction::Delete
        );
        w.install("a", "a.example.com", "v1");
        w.declare("a", "a.example.com", "v2");
        // the site leaves v1 in the same plan: v1 can go after it
        assert_eq!(
            platform(&w.plan(false, true, &[]), "v1").action,
            PlatformAction::Delete
        );
    }

    #[test]
    fn a_damaged_platform_is_rebuilt_only_from_its_unchanged_source() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v1");
        w.install("a", "a.example.com", "v1");
        w.actual.platforms.remove(&n("v1"));
        w.actual.broken_platforms.insert(
            n("v1"),
            BrokenPlatform {
                server: n("local"),
                source_hash: Some("hash-v1".into()),
                error: "damaged".into(),
            },
        );
        let p = w.plan(false, false, &[]);
        assert_eq!(
            (platform(&p, "v1").action, platform(&p, "v1").blocked),
            (PlatformAction::Build, false)
        );
        w.actual
            .broken_platforms
            .get_mut(&n("v1"))
            .unwrap()
            .source_hash = Some("other".into());
        assert!(platform(&w.plan(false, false, &[]), "v1").blocked);
    }

    #[test]
    fn an_unreadable_site_is_never_taken_for_absent() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v1");
        w.actual.unreadable_sites.push(UnreadableSite {
            platform: n("v1"),
            domain: d("a.example.com"),
            site: None,
            error: "database is locked".into(),
        });
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert!(
            a.blocked && a.errors[0].contains("database is locked"),
            "{:?}",
            a.errors
        );
    }

    #[test]
    fn clones_compare_with_their_source() {
        let mut w = World::new();
        w.declare("src", "src.example.com", "v2");
        w.install("src", "src.example.com", "v2");
        w.declare("copy", "copy.example.com", "v1").clone_from = Some(n("src"));
        let p = w.plan(false, false, &[]);
        let c = site(&p, "copy");
        assert_eq!(c.action, SiteAction::Clone);
        assert!(c.blocked, "cloning a v2 site onto v1 is a schema downgrade");
        // a source not installed yet: compared with what its install will give
        let mut w = World::new();
        w.declare("src", "src.example.com", "v1");
        w.declare("copy", "copy.example.com", "v2").clone_from = Some(n("src"));
        let p = w.plan(false, false, &[]);
        let c = site(&p, "copy");
        assert!(!c.blocked, "{:?}", c.errors);
        assert!(c
            .packages
            .iter()
            .any(|v| v.verdict == compat::Verdict::Upgrade));
    }

    #[test]
    fn strict_makes_warnings_block_and_site_filters_narrow() {
        let mut w = World::new();
        // v2 lacks a package the site has enabled: a `missing` warning
        w.declare("a", "a.example.com", "v2");
        w.install("a", "a.example.com", "v1");
        w.actual.sites.get_mut(&n("a")).unwrap().packages.insert(
            pk("extra"),
            compat::SitePackage {
                kind: PackageKind::Module,
                enabled: true,
                version: semver::Version::new(1, 0, 0).into(),
                schema: 0,
            },
        );
        assert!(!site(&w.plan(false, false, &[]), "a").blocked);
        assert!(site(&w.plan(true, false, &[]), "a").blocked);
        w.declare("b", "b.example.com", "v1");
        let p = w.plan(false, false, &["b"]);
        assert_eq!(p.sites.len(), 1);
        assert_eq!(
            p.platforms
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["v1"]
        );
    }

    /// Sets the schema the site has applied of `core`, as a restore of an
    /// older backup would.
    fn set_core_schema(w: &mut World, site: &str, schema: u32) {
        let s = w.actual.sites.get_mut(&n(site)).unwrap();
        s.packages.get_mut(&pk("core")).unwrap().schema = schema;
    }

    #[test]
    fn a_site_behind_its_own_platform_is_updated_where_it_is() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v2");
        w.install("a", "a.example.com", "v2");
        set_core_schema(&mut w, "a", 1);
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!((a.action, a.blocked), (SiteAction::Update, false));
        assert_eq!(a.from, a.to, "it stays where it is");
        let core = a.packages.iter().find(|v| v.name == pk("core")).unwrap();
        assert_eq!(
            (core.verdict, core.pending.clone()),
            (compat::Verdict::Upgrade, vec![2, 3])
        );
        assert_eq!(
            a.config.as_ref().unwrap().db_name.as_deref(),
            Some("a_db"),
            "an update keeps the site's database"
        );
        assert_eq!((p.summary.sites["update"], p.summary.changes), (1, 1));
        assert!(changed_names(&p).contains(&"site a".to_string()));
    }

    #[test]
    fn a_site_behind_that_also_moves_is_just_a_migrate() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v2");
        w.install("a", "a.example.com", "v1");
        set_core_schema(&mut w, "a", 0);
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!(a.action, SiteAction::Migrate);
        let core = a.packages.iter().find(|v| v.name == pk("core")).unwrap();
        assert_eq!(core.pending, vec![1, 2, 3], "the migrate runs them all");
        assert_eq!(p.summary.sites["update"], 0);
    }

    #[test]
    fn a_site_ahead_of_its_own_platform_is_a_blocked_update() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v1");
        w.install("a", "a.example.com", "v1");
        set_core_schema(&mut w, "a", 3);
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!((a.action, a.blocked), (SiteAction::Update, true));
        assert!(a.errors[0].contains("schema downgrade"), "{:?}", a.errors);
        assert!(p.blocked());
    }

    #[test]
    fn a_rename_shows_the_updates_it_runs_and_a_verify_defers_them() {
        let mut w = World::new();
        w.declare("a", "new.example.com", "v2");
        w.install("a", "a.example.com", "v2");
        set_core_schema(&mut w, "a", 2);
        w.declare("b", "b.example.com", "v2").aliases = vec![d("www.b.example.com")];
        w.install("b", "b.example.com", "v2");
        set_core_schema(&mut w, "b", 2);
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!(a.action, SiteAction::Rename);
        assert!(a.packages.iter().any(|v| v.pending == vec![3]), "{a:?}");
        let b = site(&p, "b");
        assert_eq!(b.action, SiteAction::Verify);
        assert!(
            b.warnings[0].contains("core: upgrade") && b.warnings[0].contains("`update`"),
            "{:?}",
            b.warnings
        );
        // once verified, the update is what is left
        w.actual.sites.get_mut(&n("b")).unwrap().config.aliases = vec![d("www.b.example.com")];
        assert_eq!(
            site(&w.plan(false, false, &[]), "b").action,
            SiteAction::Update
        );
    }

    #[test]
    fn updates_come_from_the_platform_as_built_not_its_changed_source() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v1");
        w.install("a", "a.example.com", "v1");
        // the source now has updates the built platform lacks
        if let Ok(src) = &mut w.inv.platforms.get_mut(&n("v1")).unwrap().codebase {
            src.codebase = codebase("1.1.0", 3);
            src.hash = "changed".into();
        }
        let p = w.plan(false, false, &[]);
        assert_eq!(site(&p, "a").action, SiteAction::Noop);
        assert!(platform(&p, "v1").blocked, "platforms are immutable");
    }

    fn suspension(until: Option<time::OffsetDateTime>) -> Suspension {
        Suspension {
            reason: "the client's audit".into(),
            by: Some("ops@example.org".into()),
            until,
        }
    }

    #[test]
    fn a_suspended_site_is_a_noop_that_says_what_it_would_do() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v2").suspend = Some(suspension(Some(
            time::macros::datetime!(2027-01-31 00:00 UTC),
        )));
        w.install("a", "a.example.com", "v1");
        let p = w.plan(false, false, &[]);
        let a = site(&p, "a");
        assert_eq!((a.action, a.blocked), (SiteAction::Noop, false));
        let s = a.suspended.as_ref().unwrap();
        assert_eq!(
            (
                s.reason.as_str(),
                s.by.as_deref(),
                s.would.as_deref(),
                &s.server
            ),
            (
                "the client's audit",
                Some("ops@example.org"),
                Some("migrate"),
                &None
            )
        );
        assert_eq!(
            s.describe(),
            "suspended: the client's audit (by ops@example.org), until 2027-01-31T00:00:00Z; would migrate"
        );
        assert!(!p.has_changes(), "{:?}", changed_names(&p));
        // Its platform stays even under prune: the site is still on it.
        w.inv.platforms.remove(&n("v1"));
        let p = w.plan(false, true, &[]);
        assert_eq!(platform(&p, "v1").action, PlatformAction::Noop);
        assert!(platform(&p, "v1").blocked, "undeclared with a site on it");
    }

    #[test]
    fn what_would_block_a_suspended_site_blocks_nothing() {
        let mut w = World::new();
        // Back onto v1 would be a schema downgrade.
        w.declare("a", "a.example.com", "v1").suspend = Some(suspension(None));
        w.install("a", "a.example.com", "v2");
        let p = w.plan(true, false, &[]);
        let a = site(&p, "a");
        assert!(!a.blocked && !p.blocked(), "{:?}", a.errors);
        assert!(a.warnings.iter().any(|m| m.starts_with("once resumed:")));
        assert!(a
            .suspended
            .as_ref()
            .unwrap()
            .describe()
            .contains("until further notice"));
    }

    #[test]
    fn a_suspension_that_has_ended_holds_nothing_back() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v2").suspend = Some(suspension(Some(
            time::macros::datetime!(2026-11-30 23:59 UTC),
        )));
        w.install("a", "a.example.com", "v1");
        let a = w.plan(false, false, &[]);
        let a = site(&a, "a");
        assert_eq!((a.action, &a.suspended), (SiteAction::Migrate, &None));
    }

    #[test]
    fn a_suspended_server_holds_back_its_sites_and_platforms() {
        let mut w = World::new();
        let srv = w.inv.settings.servers.get_mut(&n("local")).unwrap();
        let crate::inventory::ServerConfig::Local { suspend, .. } = srv else {
            unreachable!("the test's server is local")
        };
        *suspend = Some(suspension(None));
        w.declare("a", "a.example.com", "v2");
        w.install("a", "a.example.com", "v1");
        w.declare("new", "new.example.com", "v1");
        w.actual.platforms.remove(&n("v2"));
        let p = w.plan(false, false, &[]);
        for (name, would) in [("a", "migrate"), ("new", "create")] {
            let s = site(&p, name);
            let held = s.suspended.as_ref().unwrap();
            assert_eq!(
                (s.action, held.server.as_ref(), held.would.as_deref()),
                (SiteAction::Noop, Some(&n("local")), Some(would))
            );
        }
        let v2 = platform(&p, "v2");
        assert_eq!(v2.action, PlatformAction::Noop, "its build waits");
        assert_eq!(
            v2.suspended.as_ref().unwrap().would.as_deref(),
            Some("build")
        );
        assert!(!p.has_changes());
    }

    #[test]
    fn the_same_inputs_give_the_same_plan() {
        let mut w = World::new();
        w.declare("a", "a.example.com", "v2");
        w.install("a", "a.example.com", "v1");
        assert_eq!(w.plan(false, false, &[]), w.plan(false, false, &[]));
        assert_eq!(w.plan(false, false, &[]).observed, w.actual.fingerprint());
    }
}
