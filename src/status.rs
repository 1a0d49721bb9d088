//! Status files (spec section 7): `status/sites/<name>.yaml` and
//! `status/platforms/<name>.yaml` in the inventory, hoist's mirror of
//! reality. Each holds the observed state (enough for `plan --offline` to
//! rebuild the [`Actual`] a live plan would see), the inventory commit last
//! applied, the sync state and the last task. Never a secret: a site's
//! database password lives only in its settings file on the server.
//!
//! Building, rendering and parsing them is pure; [`write()`], [`read`] and
//! [`record`] are the shell around it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codebase::{Codebase, DrupalCore, Package, PackageKind};
use crate::compat::{SiteExtras, SitePackage};
use crate::diag::Diagnostic;
use crate::fsutil;
use crate::gitops::{self, GitError, Pushed, STATUS_DIR};
use crate::inventory::document::{self, Schema};
use crate::inventory::Inventory;
use crate::names::{Domain, Name, PackageName, PlatformName, SiteName};
use crate::observe::{Actual, ObservedPlatform, ObservedSite};
use crate::plan::{self, Endpoint, Mode, Plan, PlanOptions, PlatformAction, SiteAction};
use crate::render::SiteConfig;
use crate::scope::Scope;
use crate::server::Servers;
use crate::task::{self, TaskKind, TaskRecord, TaskResult};
use crate::version::Version;

/// Whether a site or platform is where the inventory says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    /// As the inventory says.
    Synced,
    /// Changes are pending, or it changed behind hoist's back.
    OutOfSync,
    /// The plan may not carry out its change.
    Blocked,
    /// Its last task failed.
    Failed,
    /// It exists but is not declared.
    Unmanaged,
    /// It (or its server) is suspended: hoist leaves it alone.
    Suspended,
}

impl SyncState {
    /// The fixed name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::OutOfSync => "out-of-sync",
            SyncState::Blocked => "blocked",
            SyncState::Failed => "failed",
            SyncState::Unmanaged => "unmanaged",
            SyncState::Suspended => "suspended",
        }
    }

    /// The state of a plan item with this shape and last task.
    fn of(
        suspended: bool,
        unmanaged: bool,
        blocked: bool,
        noop: bool,
        last: Option<TaskResult>,
    ) -> SyncState {
        if suspended {
            SyncState::Suspended
        } else if unmanaged {
            SyncState::Unmanaged
        } else if blocked {
            SyncState::Blocked
        } else if last == Some(TaskResult::Running) {
            // A task left unfinished (killed, or still going): what it
            // observed is no proof the change is done.
            SyncState::OutOfSync
        } else if noop {
            SyncState::Synced
        } else if last == Some(TaskResult::Failed) {
            SyncState::Failed
        } else {
            SyncState::OutOfSync
        }
    }
}

/// The sync state of a site from its plan (made after the last apply) and
/// its last task.
pub fn site_sync(s: &plan::SitePlan, last: Option<TaskResult>) -> SyncState {
    SyncState::of(
        s.suspended.is_some(),
        s.unmanaged,
        s.blocked,
        s.action == SiteAction::Noop,
        last,
    )
}

/// A task as a status file tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastTask {
    /// The task's id, for `hoist log`.
    pub id: String,
    /// What it did.
    pub kind: TaskKind,
    /// Where the site was.
    #[serde(default)]
    pub from: Option<Endpoint>,
    /// Where the site went.
    #[serde(default)]
    pub to: Option<Endpoint>,
    /// How it ended.
    pub result: TaskResult,
    /// When it started.
    pub started: String,
    /// When it ended.
    #[serde(default)]
    pub finished: Option<String>,
    /// The backup it took, relative to the server root.
    #[serde(default)]
    pub backup: Option<String>,
    /// The inventory commit it was applied from.
    #[serde(default)]
    pub commit: Option<String>,
    /// What recovery did, when the task was interrupted and a later hoist
    /// finished or undid it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

impl LastTask {
    /// How the task ended, as far as its record shows: a task with no end
    /// time never finished (it was killed, or is still going), whatever
    /// result it claims.
    pub fn result(&self) -> TaskResult {
        if self.finished.is_none() {
            TaskResult::Running
        } else {
            self.result
        }
    }

    /// The result for people: an unfinished task is never a success, and
    /// one a later hoist finished or undid after a kill says so.
    pub fn shown_result(&self) -> String {
        match (self.result(), &self.recovered) {
            (TaskResult::Running, _) => "unfinished".into(),
            (r, Some(_)) => format!("{} (recovered)", r.as_str()),
            (r, None) => r.as_str().into(),
        }
    }
}

impl From<&TaskRecord> for LastTask {
    fn from(t: &TaskRecord) -> Self {
        LastTask {
            id: t.id.clone(),
            kind: t.kind,
            from: t.from.clone(),
            to: t.to.clone(),
            result: t.result,
            started: t.started.clone(),
            finished: t.finished.clone(),
            backup: t.backup.clone(),
            commit: t.commit.clone(),
            recovered: t.recovered.clone(),
        }
    }
}

/// A site's database, as far as a status file may tell: no credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseStatus {
    /// The database server.
    pub server: Name,
    /// Its driver (absent: `sqlite`, as older hoists wrote).
    #[serde(default, skip_serializing_if = "is_sqlite")]
    pub driver: crate::render::DbDriver,
    /// Where a `mysql` server listens, as the site's settings say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The database's name.
    pub name: Option<String>,
}

fn is_sqlite(d: &crate::render::DbDriver) -> bool {
    *d == crate::render::DbDriver::Sqlite
}

/// A site as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedSiteStatus {
    /// The server it lives on.
    pub server: Name,
    /// The platform it lives on.
    pub platform: PlatformName,
    /// Its domain.
    pub domain: Domain,
    /// Its aliases.
    pub aliases: Vec<Domain>,
    /// Its install profile.
    pub profile: PackageName,
    /// Whether it is served.
    pub enabled: bool,
    /// Its database.
    pub database: DatabaseStatus,
    /// Whether it is in maintenance mode.
    pub maintenance: bool,
    /// Ways it differs from what hoist wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Its packages.
    pub packages: BTreeMap<PackageName, SitePackage>,
    /// A Drupal site's post-updates and hidden extensions.
    #[serde(default, skip_serializing_if = "SiteExtras::is_empty")]
    pub drupal: SiteExtras,
}

/// `status/sites/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteStatus {
    /// The site.
    pub site: SiteName,
    /// Its sync state.
    pub sync: SyncState,
    /// The inventory commit last applied.
    pub inventory_commit: Option<String>,
    /// Where the inventory puts it (none when undeclared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Endpoint>,
    /// What was observed (none when not installed).
    pub observed: Option<ObservedSiteStatus>,
    /// What blocks its change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What is worth a look.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Its last task.
    pub last_task: Option<LastTask>,
    /// Set when the last rollout halted and this site was part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<SiteRollout>>,
    /// Set while it (or its server) is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Box<plan::Suspended>>,
}

/// A site's part in a halted rollout (spec section 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteRollout {
    /// Always `halted`: a rollout that ended well leaves nothing to say.
    pub state: String,
    /// The inventory commit the rollout ran from.
    pub commit: Option<String>,
    /// The wave that halted.
    pub halted_wave: String,
    /// What became of this site: `failed`, `put-back`, `left-as-is` or
    /// `not-started`.
    pub site: String,
    /// Why the rollout halted.
    pub reason: String,
}

/// A package of a built platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformPackage {
    /// Module, theme, profile or library.
    pub kind: PackageKind,
    /// Its version.
    pub version: Version,
    /// Its schema version (the highest update), for people reading.
    pub schema: u32,
    /// What it depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<PackageName>,
    /// For a profile: what it installs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub install: Vec<PackageName>,
    /// Its update numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<u32>,
    /// Drupal: the schema a fresh install records, when above the updates.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_schema: u32,
    /// Drupal: hidden in its info file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// Drupal: what `hook_update_last_removed()` returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_removed: Option<u32>,
    /// Drupal: why `hook_update_last_removed()` could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_removed_unreadable: Option<String>,
    /// Drupal 8+: its post-updates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_updates: Vec<String>,
    /// Drupal 8+: the post-updates it removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_post_updates: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A platform as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedPlatformStatus {
    /// The server it is built on.
    pub server: Name,
    /// Its source, described.
    pub source: String,
    /// The source's hash when it was built.
    pub source_hash: String,
    /// Its packages.
    pub packages: BTreeMap<PackageName, PlatformPackage>,
    /// A Drupal platform's core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drupal: Option<DrupalCore>,
}

/// `status/platforms/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformStatus {
    /// The platform.
    pub platform: PlatformName,
    /// Its sync state.
    pub sync: SyncState,
    /// The inventory commit last applied.
    pub inventory_commit: Option<String>,
    /// What was observed (none when not built).
    pub observed: Option<ObservedPlatformStatus>,
    /// What blocks its change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What is worth a look.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Its last task.
    pub last_task: Option<LastTask>,
    /// Set while it (or its server) is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<Box<plan::Suspended>>,
}

/// Every status file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSet {
    /// Per site.
    pub sites: BTreeMap<SiteName, SiteStatus>,
    /// Per platform.
    pub platforms: BTreeMap<PlatformName, PlatformStatus>,
}

fn observed_site(o: &ObservedSite) -> ObservedSiteStatus {
    ObservedSiteStatus {
        server: o.server.clone(),
        platform: o.config.platform.clone(),
        domain: o.config.domain.clone(),
        aliases: o.config.aliases.clone(),
        profile: o.config.profile.clone(),
        enabled: o.config.enabled,
        database: DatabaseStatus {
            server: o.config.db_server.clone(),
            driver: o.config.db_driver,
            address: o.config.db_address.clone(),
            name: o.config.db_name.clone(),
        },
        maintenance: o.maintenance,
        drift: o.drift.clone(),
        packages: o.packages.clone(),
        drupal: o.drupal.clone(),
    }
}

fn observed_platform(o: &ObservedPlatform) -> ObservedPlatformStatus {
    ObservedPlatformStatus {
        server: o.server.clone(),
        source: o.source.clone(),
        source_hash: o.source_hash.clone(),
        packages: o
            .codebase
            .packages
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    PlatformPackage {
                        kind: p.kind,
                        version: p.version.clone(),
                        schema: p.schema(),
                        depends: p.depends.clone(),
                        install: p.install.clone(),
                        updates: p.updates.clone(),
                        min_schema: p.min_schema,
                        hidden: p.hidden,
                        last_removed: p.last_removed,
                        last_removed_unreadable: p.last_removed_unreadable.clone(),
                        post_updates: p.post_updates.clone(),
                        removed_post_updates: p.removed_post_updates.clone(),
                    },
                )
            })
            .collect(),
        drupal: o.codebase.drupal.clone(),
    }
}

/// The status of everything in `plan` (a full plan, made on `actual` after
/// the apply), with the last task of each from `tasks` (oldest first).
pub fn build(
    plan: &Plan,
    actual: &Actual,
    tasks: &[TaskRecord],
    commit: Option<&str>,
) -> StatusSet {
    // The last task of each site and platform, in one pass.
    let mut of_site = HashMap::new();
    let mut of_platform = HashMap::new();
    for t in tasks {
        match (&t.site, &t.platform) {
            (Some(s), _) => of_site.insert(s.clone(), LastTask::from(t)),
            (None, Some(p)) => of_platform.insert(p.clone(), LastTask::from(t)),
            (None, None) => None,
        };
    }
    assemble(plan, actual, &of_site, &of_platform, |_, _| {
        commit.map(String::from)
    })
}

/// The status of everything in `plan`, made on `actual`, with the last
/// task of each site and platform by name, and the inventory commit each
/// status names (`commit(is_site, name)`: a site and a platform may share
/// a name).
fn assemble(
    plan: &Plan,
    actual: &Actual,
    of_site: &HashMap<Name, LastTask>,
    of_platform: &HashMap<Name, LastTask>,
    commit: impl Fn(bool, &Name) -> Option<String>,
) -> StatusSet {
    let mut set = StatusSet::default();
    for s in &plan.sites {
        let last = of_site.get(&s.name);
        set.sites.insert(
            s.name.clone(),
            SiteStatus {
                site: s.name.clone(),
                sync: site_sync(s, last.map(LastTask::result)),
                inventory_commit: commit(true, &s.name),
                desired: (!s.unmanaged).then(|| s.to.clone()).flatten(),
                observed: actual.sites.get(&s.name).map(observed_site),
                errors: s.errors.clone(),
                warnings: s.warnings.clone(),
                last_task: last.cloned(),
                rollout: None,
                suspended: s.suspended.clone().map(Box::new),
            },
        );
    }
    for p in &plan.platforms {
        let last = of_platform.get(&p.name);
        set.platforms.insert(
            p.name.clone(),
            PlatformStatus {
                platform: p.name.clone(),
                sync: SyncState::of(
                    p.suspended.is_some(),
                    p.unmanaged,
                    p.blocked,
                    p.action == PlatformAction::Noop,
                    last.map(LastTask::result),
                ),
                inventory_commit: commit(false, &p.name),
                observed: actual.platforms.get(&p.name).map(observed_platform),
                errors: p.errors.clone(),
                warnings: p.warnings.clone(),
                last_task: last.cloned(),
                suspended: p.suspended.clone().map(Box::new),
            },
        );
    }
    set
}

/// The options a status is planned with: the inventory's own policy, the
/// whole inventory.
fn plan_options(inv: &Inventory, mode: Mode) -> PlanOptions {
    PlanOptions {
        strict: inv.settings.policy.strict,
        prune: inv.settings.policy.prune,
        only: vec![],
        mode,
        inventory: plan::InventoryRef {
            path: inv.root.display().to_string(),
            commit: inv.commit.clone(),
        },
        now: time::OffsetDateTime::now_utc(),
    }
}

/// The status of the inventory `inv` as it is now, from what the status
/// files `recorded` observed: the plan of `inv` against that observation
/// (as `plan --offline` makes it), each site's and platform's state from
/// its plan and its recorded last task. A site declared since is
/// out-of-sync, one no longer declared unmanaged (or out-of-sync under
/// prune), and so is every change not applied yet. Pure: nothing is
/// written. Returns the plan with it, for what is pending.
pub fn current(inv: &Inventory, recorded: &StatusSet) -> (Plan, StatusSet) {
    let actual = recorded.actual();
    let plan = plan::plan(inv, &actual, &plan_options(inv, Mode::Offline));
    let last = |m: &mut HashMap<Name, LastTask>, name: &Name, t: &Option<LastTask>| {
        if let Some(t) = t {
            m.insert(name.clone(), t.clone());
        }
    };
    let (mut of_site, mut of_platform) = (HashMap::new(), HashMap::new());
    for (n, s) in &recorded.sites {
        last(&mut of_site, n, &s.last_task);
    }
    for (n, p) in &recorded.platforms {
        last(&mut of_platform, n, &p.last_task);
    }
    let mut set = assemble(&plan, &actual, &of_site, &of_platform, |site, n| {
        if site {
            recorded.sites.get(n)?.inventory_commit.clone()
        } else {
            recorded.platforms.get(n)?.inventory_commit.clone()
        }
    });
    for (n, s) in &mut set.sites {
        s.rollout = recorded.sites.get(n).and_then(|r| r.rollout.clone());
    }
    (plan, set)
}

impl StatusSet {
    /// Notes on each site of a halted rollout what became of it.
    pub fn mark_halt(&mut self, rec: &crate::rollout_record::RolloutRecord) {
        let Some(h) = &rec.report.halted else {
            return;
        };
        let parts = h
            .failures
            .iter()
            .map(|f| (&f.site, "failed"))
            .chain(h.rolled_back.iter().map(|(s, _)| (s, "put-back")))
            .chain(h.left.iter().map(|s| (s, "left-as-is")))
            .chain(h.not_started.iter().map(|s| (s, "not-started")));
        for (site, what) in parts {
            if let Some(st) = self.sites.get_mut(site) {
                // A failed site also put back (a failed check) says failed.
                if st.rollout.is_some() {
                    continue;
                }
                st.rollout = Some(Box::new(SiteRollout {
                    state: "halted".into(),
                    commit: rec.commit.clone(),
                    halted_wave: h.wave.clone(),
                    site: what.into(),
                    reason: h.describe(),
                }));
            }
        }
    }

    /// The halt the status files record, if any: (wave, commit, reason).
    pub fn halt(&self) -> Option<&SiteRollout> {
        self.sites.values().find_map(|s| s.rollout.as_deref())
    }

    /// Keeps the inventory commit of every status that `prev` already
    /// had apart from that commit: a file then names the commit that last
    /// changed its site or platform, and an inventory commit rewrites only
    /// the status files of what it changed.
    pub fn carry_commits(&mut self, prev: &StatusSet) {
        for (name, s) in &mut self.sites {
            if let Some(p) = prev.sites.get(name) {
                let mut same = p.clone();
                same.inventory_commit = s.inventory_commit.clone();
                if &same == s {
                    s.inventory_commit = p.inventory_commit.clone();
                }
            }
        }
        for (name, s) in &mut self.platforms {
            if let Some(p) = prev.platforms.get(name) {
                let mut same = p.clone();
                same.inventory_commit = s.inventory_commit.clone();
                if &same == s {
                    s.inventory_commit = p.inventory_commit.clone();
                }
            }
        }
    }

    /// The observed state the status files record: what `plan --offline`
    /// plans against, equal to the observation they were written from.
    pub fn actual(&self) -> Actual {
        let mut a = Actual::default();
        for (name, s) in &self.sites {
            let Some(o) = &s.observed else { continue };
            a.sites.insert(
                name.clone(),
                ObservedSite {
                    config: SiteConfig {
                        site: name.clone(),
                        domain: o.domain.clone(),
                        aliases: o.aliases.clone(),
                        platform: o.platform.clone(),
                        profile: o.profile.clone(),
                        enabled: o.enabled,
                        db_server: o.database.server.clone(),
                        db_driver: o.database.driver,
                        db_address: o.database.address.clone(),
                        db_name: o.database.name.clone(),
                    },
                    server: o.server.clone(),
                    packages: o.packages.clone(),
                    drupal: o.drupal.clone(),
                    maintenance: o.maintenance,
                    drift: o.drift.clone(),
                },
            );
        }
        for (name, p) in &self.platforms {
            let Some(o) = &p.observed else { continue };
            let packages = o
                .packages
                .iter()
                .map(|(n, p)| {
                    (
                        n.clone(),
                        Package {
                            name: n.clone(),
                            kind: p.kind,
                            version: p.version.clone(),
                            depends: p.depends.clone(),
                            install: p.install.clone(),
                            updates: p.updates.clone(),
                            min_schema: p.min_schema,
                            hidden: p.hidden,
                            last_removed: p.last_removed,
                            last_removed_unreadable: p.last_removed_unreadable.clone(),
                            post_updates: p.post_updates.clone(),
                            removed_post_updates: p.removed_post_updates.clone(),
                        },
                    )
                })
                .collect();
            a.platforms.insert(
                name.clone(),
                ObservedPlatform {
                    name: name.clone(),
                    server: o.server.clone(),
                    source: o.source.clone(),
                    source_hash: o.source_hash.clone(),
                    codebase: Codebase {
                        packages,
                        drupal: o.drupal.clone(),
                    },
                },
            );
        }
        a
    }

    /// Every file, by path under `status/`, rendered.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for (n, s) in &self.sites {
            out.insert(format!("sites/{n}.yaml"), render_site(s).into_bytes());
        }
        for (n, p) in &self.platforms {
            out.insert(
                format!("platforms/{n}.yaml"),
                render_platform(p).into_bytes(),
            );
        }
        out
    }

    /// The server each site was observed on.
    pub fn last_seen(&self) -> BTreeMap<SiteName, Name> {
        self.sites
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.observed.as_ref()?.server.clone())))
            .collect()
    }

    /// How many sites are in each sync state.
    pub fn site_counts(&self) -> BTreeMap<SyncState, usize> {
        let mut m = BTreeMap::new();
        for s in self.sites.values() {
            *m.entry(s.sync).or_default() += 1;
        }
        m
    }
}

const HEADER: &str = "# Written by hoist after each apply: what it observed and did. Do not edit;\n# hoist rewrites this file. `hoist plan --offline` plans from it.\n";

/// A site's status file.
pub fn render_site(s: &SiteStatus) -> String {
    format!(
        "{HEADER}{}",
        serde_yaml::to_string(s).expect("status serializes")
    )
}

/// A platform's status file.
pub fn render_platform(p: &PlatformStatus) -> String {
    format!(
        "{HEADER}{}",
        serde_yaml::to_string(p).expect("status serializes")
    )
}

/// Parses a site's status file (`shown` names it in messages); its name
/// must match `stem`.
pub fn parse_site(text: &str, shown: &Path, stem: &str) -> Result<SiteStatus, Vec<Diagnostic>> {
    let doc = document::parse(text, shown, Schema::StatusSite)?;
    let s: SiteStatus = doc.decode(shown).map_err(|d| vec![d])?;
    if s.site.as_str() != stem {
        return Err(vec![Diagnostic::at(
            shown,
            doc.positions.value("/site"),
            format!("the file is for site {}, but is named {stem}", s.site),
        )]);
    }
    Ok(s)
}

/// Parses a platform's status file (see [`parse_site`]).
pub fn parse_platform(
    text: &str,
    shown: &Path,
    stem: &str,
) -> Result<PlatformStatus, Vec<Diagnostic>> {
    let doc = document::parse(text, shown, Schema::StatusPlatform)?;
    let p: PlatformStatus = doc.decode(shown).map_err(|d| vec![d])?;
    if p.platform.as_str() != stem {
        return Err(vec![Diagnostic::at(
            shown,
            doc.positions.value("/platform"),
            format!(
                "the file is for platform {}, but is named {stem}",
                p.platform
            ),
        )]);
    }
    Ok(p)
}

/// A failure reading or writing status.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// A status file could not be written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Committing or pushing failed.
    #[error(transparent)]
    Git(#[from] GitError),
}

fn yaml_files(dir: &Path) -> Vec<(String, PathBuf)> {
    // A symlinked status directory could lead out of the repository.
    if !crate::inventory::document::is_real_dir(dir) {
        return Vec::new();
    }
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.to_string();
            let stem = n.strip_suffix(".yaml")?.to_string();
            (!n.starts_with('.')).then(|| (stem, e.path()))
        })
        .collect();
    v.sort();
    v
}

enum Parsed {
    Site(Name, Box<SiteStatus>),
    Platform(Name, Box<PlatformStatus>),
}

/// Reads the status files of the inventory in `dir`: none yet is an empty
/// set. Every problem is reported.
pub fn read(dir: &Path) -> Result<StatusSet, Vec<Diagnostic>> {
    let mut set = StatusSet::default();
    let mut diags = Vec::new();
    let base = dir.join(STATUS_DIR);
    if std::fs::symlink_metadata(&base).is_ok() && !crate::inventory::document::is_real_dir(&base) {
        diags.push(Diagnostic::at(
            Path::new(STATUS_DIR),
            None,
            "not a directory of the inventory (symlinks are not followed)",
        ));
    }
    for (kind, sub) in [
        (Schema::StatusSite, "sites"),
        (Schema::StatusPlatform, "platforms"),
    ] {
        let d = base.join(sub);
        if std::fs::symlink_metadata(&d).is_ok() && !crate::inventory::document::is_real_dir(&d) {
            diags.push(Diagnostic::at(
                &Path::new(STATUS_DIR).join(sub),
                None,
                "not a directory of the inventory (symlinks are not followed)",
            ));
        }
        // Read and parsed in parallel: 10,000 files at fleet scale.
        let files = yaml_files(&d);
        let parsed = crate::par::map(&files, |(stem, path)| {
            let shown = Path::new(STATUS_DIR).join(sub).join(format!("{stem}.yaml"));
            let text = crate::inventory::document::read_text(path, &shown)?;
            let Ok(name) = Name::new(stem) else {
                return Err(vec![Diagnostic::at(&shown, None, "bad file name")]);
            };
            Ok(if kind == Schema::StatusSite {
                Parsed::Site(name, Box::new(parse_site(&text, &shown, stem)?))
            } else {
                Parsed::Platform(name, Box::new(parse_platform(&text, &shown, stem)?))
            })
        });
        for p in parsed {
            match p {
                Ok(Parsed::Site(name, s)) => {
                    set.sites.insert(name, *s);
                }
                Ok(Parsed::Platform(name, p)) => {
                    set.platforms.insert(name, *p);
                }
                Err(mut d) => diags.append(&mut d),
            }
        }
    }
    if diags.is_empty() {
        Ok(set)
    } else {
        Err(diags)
    }
}

/// Writes `files` (paths under `status/`) into the inventory in `dir`:
/// only files whose content changed, and removes the status files of
/// sites and platforms that no longer exist. Returns the paths changed.
pub fn write(dir: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<String>, StatusError> {
    let base = dir.join(STATUS_DIR);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StatusError::Io { path, source }
    };
    // Never write through a symlink: status/ (or a part of it) made a link
    // by a pull request could point anywhere on the host.
    for d in [base.clone(), base.join("sites"), base.join("platforms")] {
        if std::fs::symlink_metadata(&d).is_ok() && !crate::inventory::document::is_real_dir(&d) {
            return Err(StatusError::Io {
                path: d,
                source: std::io::Error::other(
                    "not a directory of the inventory (symlinks are not followed)",
                ),
            });
        }
    }
    let mut changed = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for (rel, data) in files {
        let path = base.join(rel);
        if std::fs::read(&path).ok().as_deref() == Some(data.as_slice()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            if dirs.insert(parent.to_path_buf()) {
                fsutil::create_dir_all(parent).map_err(io(parent))?;
            }
        }
        // Atomic for readers, but not synced file by file: status files
        // are derived (rewritten from the servers by every apply), the
        // status commit is their record, and 10,000 fsyncs took longer than
        // `git add -A && git commit` of the same files.
        fsutil::write_replace(&path, data).map_err(io(&path))?;
        changed.push(format!("{STATUS_DIR}/{rel}"));
    }
    for d in &dirs {
        fsutil::sync_dir(d).map_err(io(d))?;
    }
    for sub in ["sites", "platforms"] {
        for (stem, path) in yaml_files(&base.join(sub)) {
            let rel = format!("{sub}/{stem}.yaml");
            if !files.contains_key(&rel) {
                fsutil::remove_file_if_exists(&path).map_err(io(&path))?;
                changed.push(format!("{STATUS_DIR}/{rel}"));
            }
        }
    }
    Ok(changed)
}

/// Adds to `files` (this run's status files) the status files in `dir`
/// that `scope` does not own, byte for byte, so writing and committing
/// `files` leaves them as they are; returns the paths this run owns: its
/// own files and the stale ones it may remove. A file that does not parse
/// is not this run's to judge: kept.
fn keep_others(
    dir: &Path,
    scope: &Scope,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> BTreeSet<String> {
    let mut owned: BTreeSet<String> = files.keys().cloned().collect();
    let base = dir.join(STATUS_DIR);
    for sub in ["sites", "platforms"] {
        for (stem, path) in yaml_files(&base.join(sub)) {
            let rel = format!("{sub}/{stem}.yaml");
            if owned.contains(&rel) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let shown = Path::new(STATUS_DIR).join(&rel);
            let mine = match (sub, Name::new(&stem)) {
                ("sites", Ok(n)) => parse_site(&text, &shown, &stem)
                    .is_ok_and(|s| scope.owns_site(&n, s.observed.as_ref().map(|o| &o.server))),
                (_, Ok(n)) => parse_platform(&text, &shown, &stem)
                    .is_ok_and(|p| scope.owns_platform(&n, p.observed.as_ref().map(|o| &o.server))),
                _ => false,
            };
            if mine {
                owned.insert(rel);
            } else {
                files.insert(rel, bytes);
            }
        }
    }
    owned
}

/// Puts back into `files`, byte for byte, the status files of what was
/// last seen on a server that could not be reached this time: not seeing
/// it there says nothing about it, so its last status stands.
fn keep_unreachable(
    dir: &Path,
    unreachable: &BTreeMap<Name, String>,
    files: &mut BTreeMap<String, Vec<u8>>,
) {
    let base = dir.join(STATUS_DIR);
    for sub in ["sites", "platforms"] {
        for (stem, path) in yaml_files(&base.join(sub)) {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let rel = format!("{sub}/{stem}.yaml");
            let shown = Path::new(STATUS_DIR).join(&rel);
            let seen_on = match sub {
                "sites" => parse_site(&text, &shown, &stem)
                    .ok()
                    .and_then(|s| s.observed.map(|o| o.server)),
                _ => parse_platform(&text, &shown, &stem)
                    .ok()
                    .and_then(|p| p.observed.map(|o| o.server)),
            };
            if seen_on.is_some_and(|n| unreachable.contains_key(&n)) {
                files.insert(rel, bytes);
            }
        }
    }
}

/// What [`record`] did.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The status written.
    pub set: StatusSet,
    /// The status files whose content changed on disk.
    pub changed: Vec<String>,
    /// The status commit made, if any.
    pub commit: Option<String>,
    /// How the push went, when one was made.
    pub pushed: Option<Pushed>,
}

/// The message of a status commit.
pub fn commit_message(commit: Option<&str>, set: &StatusSet) -> String {
    let subject = match commit {
        Some(c) => format!(
            "hoist: status after applying {}",
            crate::names::prefix(c, 12)
        ),
        None => "hoist: status (the inventory has no commit yet)".to_string(),
    };
    let counts: Vec<String> = set
        .site_counts()
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let mut body = String::new();
    if let Some(c) = commit {
        body.push_str(&format!("Applied inventory commit {c}.\n"));
    }
    body.push_str(&format!(
        "Sites: {}.\n",
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    ));
    format!("{subject}\n\n{body}")
}

/// The newest task record of each site and platform on every server,
/// oldest first: what [`build`] reads the last tasks from.
pub fn last_tasks(servers: &Servers) -> Vec<TaskRecord> {
    let mut tasks: Vec<TaskRecord> = servers
        .by_name
        .values()
        .flat_map(|s| task::latest(&s.tasks()))
        .collect();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    tasks
}

/// After an apply (or a reconcile pass): observes the servers afresh,
/// writes the status files of the inventory `inv`, and, when its directory
/// is the root of a git repository and `status.commit` is on, commits them
/// (touching `status/` only, never empty) and pushes to `status.push`.
///
/// A run scoped to one server ([`Scope::Server`]) writes and commits only
/// that server's status files: the others are kept as they are, and its
/// push, when rebuilt on a tip another server's watcher moved, replaces
/// only its own files there.
pub fn record(inv: &Inventory, servers: &Servers, scope: &Scope) -> Result<Recorded, StatusError> {
    let actual = scope.actual(servers.observe());
    let plan = plan::plan(inv, &actual, &plan_options(inv, Mode::Live));
    let tasks = last_tasks(servers);
    let mut set = build(&plan, &actual, &tasks, inv.commit.as_deref());
    if let Some(rec) = crate::rollout_record::read(servers) {
        set.mark_halt(&rec);
    }
    // Unreadable old status files are simply replaced.
    if let Ok(prev) = read(&inv.root) {
        set.carry_commits(&prev);
    }
    let mut files = set.files();
    if !servers.unreachable.is_empty() {
        keep_unreachable(&inv.root, &servers.unreachable, &mut files);
    }
    let owned = match scope {
        Scope::All => None,
        Scope::Server(_) => Some(keep_others(&inv.root, scope, &mut files)),
    };
    let changed = write(&inv.root, &files)?;
    let mut out = Recorded {
        set,
        changed,
        commit: None,
        pushed: None,
    };
    let st = &inv.settings.status;
    if !st.commit || gitops::open_root(&inv.root).is_none() {
        return Ok(out);
    }
    let msg = commit_message(inv.commit.as_deref(), &out.set);
    out.commit = gitops::commit_status(&inv.root, &files, &st.author, &msg)?.map(|o| o.to_string());
    if let Some(remote) = &st.push {
        if out.commit.is_some() || gitops::ahead_of(&inv.root, remote) {
            out.pushed = Some(gitops::push_status(&inv.root, remote, owned.as_ref())?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::SitePlan;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    fn sample_actual() -> Actual {
        let mut a = Actual::default();
        let mut pk = BTreeMap::new();
        pk.insert(
            PackageName::new("core").unwrap(),
            SitePackage {
                kind: PackageKind::Module,
                enabled: true,
                version: semver::Version::new(1, 1, 0).into(),
                schema: 3,
            },
        );
        a.sites.insert(
            n("acme"),
            ObservedSite {
                config: SiteConfig {
                    site: n("acme"),
                    domain: Domain::new("acme.example.com").unwrap(),
                    aliases: vec![Domain::new("www.acme.example.com").unwrap()],
                    platform: n("shop-1-1"),
                    profile: PackageName::new("standard").unwrap(),
                    enabled: false,
                    db_server: n("default"),
                    db_driver: Default::default(),
                    db_address: None,
                    db_name: Some("acme_0badf00d".into()),
                },
                server: n("local"),
                packages: pk,
                drupal: Default::default(),
                maintenance: false,
                drift: vec!["its vhost is missing".into()],
            },
        );
        let mut cb = Codebase::default();
        cb.packages.insert(
            PackageName::new("core").unwrap(),
            Package::embedded(
                PackageName::new("core").unwrap(),
                PackageKind::Module,
                semver::Version::new(1, 1, 0),
                vec![1, 2, 3],
            ),
        );
        a.platforms.insert(
            n("shop-1-1"),
            ObservedPlatform {
                name: n("shop-1-1"),
                server: n("local"),
                source: "path codebases/shop-1.1".into(),
                source_hash: "abc123".into(),
                codebase: cb,
            },
        );
        a
    }

    fn site_plan(name: &str, action: SiteAction, blocked: bool, unmanaged: bool) -> SitePlan {
        SitePlan {
            name: n(name),
            action,
            blocked,
            from: None,
            to: None,
            clone_from: None,
            unmanaged,
            packages: vec![],
            errors: vec![],
            warnings: vec![],
            diff: String::new(),
            config: None,
            observed: None,
            suspended: None,
            wave: None,
        }
    }

    fn plan_of(sites: Vec<SitePlan>) -> Plan {
        Plan {
            format_version: plan::FORMAT_VERSION,
            inventory: plan::InventoryRef {
                path: ".".into(),
                commit: None,
            },
            mode: Mode::Live,
            strict: false,
            selected: vec![],
            observed: String::new(),
            summary: Default::default(),
            platforms: vec![plan::PlatformPlan {
                name: n("shop-1-1"),
                action: PlatformAction::Noop,
                blocked: false,
                server: n("local"),
                source: None,
                source_hash: None,
                unmanaged: false,
                errors: vec![],
                warnings: vec![],
                suspended: None,
            }],
            sites,
        }
    }

    #[test]
    fn sync_states_follow_plan_and_last_task() {
        let noop = site_plan("a", SiteAction::Noop, false, false);
        assert_eq!(site_sync(&noop, None), SyncState::Synced);
        let pending = site_plan("a", SiteAction::Verify, false, false);
        assert_eq!(site_sync(&pending, None), SyncState::OutOfSync);
        assert_eq!(
            site_sync(&pending, Some(TaskResult::Failed)),
            SyncState::Failed
        );
        let blocked = site_plan("a", SiteAction::Migrate, true, false);
        assert_eq!(
            site_sync(&blocked, Some(TaskResult::Failed)),
            SyncState::Blocked
        );
        let un = site_plan("a", SiteAction::Noop, false, true);
        assert_eq!(site_sync(&un, None), SyncState::Unmanaged);
        let mut held = site_plan("a", SiteAction::Noop, false, false);
        held.suspended = Some(plan::Suspended {
            reason: "audit".into(),
            by: None,
            until: None,
            server: None,
            would: Some("migrate".into()),
        });
        assert_eq!(
            site_sync(&held, Some(TaskResult::Failed)),
            SyncState::Suspended
        );
        // a task left unfinished proves nothing done
        assert_eq!(
            site_sync(&noop, Some(TaskResult::Running)),
            SyncState::OutOfSync
        );
    }

    #[test]
    fn a_task_with_no_end_is_unfinished_whatever_it_claims() {
        let mut t = LastTask {
            id: "t".into(),
            kind: TaskKind::Update,
            from: None,
            to: None,
            result: TaskResult::Success,
            started: "2026-01-01T00:00:00Z".into(),
            finished: None,
            backup: None,
            commit: None,
            recovered: None,
        };
        assert_eq!(
            (t.result(), t.shown_result().as_str()),
            (TaskResult::Running, "unfinished")
        );
        t.finished = Some("2026-01-01T00:01:00Z".into());
        assert_eq!(t.shown_result(), "success");
        t.recovered = Some("finished: the task had committed".into());
        assert_eq!(t.shown_result(), "success (recovered)");
    }

    #[test]
    fn status_files_round_trip_to_the_same_actual() {
        let actual = sample_actual();
        let plan = plan_of(vec![site_plan("acme", SiteAction::Verify, false, false)]);
        let set = build(&plan, &actual, &[], Some(&"a".repeat(40)));
        let files = set.files();
        assert_eq!(files.len(), 2);
        let site_text = String::from_utf8(files["sites/acme.yaml"].clone()).unwrap();
        assert!(site_text.contains("sync: out-of-sync"), "{site_text}");
        let back = parse_site(&site_text, Path::new("status/sites/acme.yaml"), "acme").unwrap();
        let plat_text = String::from_utf8(files["platforms/shop-1-1.yaml"].clone()).unwrap();
        let pback = parse_platform(&plat_text, Path::new("x.yaml"), "shop-1-1").unwrap();
        let mut again = StatusSet::default();
        again.sites.insert(n("acme"), back);
        again.platforms.insert(n("shop-1-1"), pback);
        assert_eq!(again, set);
        assert_eq!(again.actual(), actual);
        assert_eq!(again.actual().fingerprint(), actual.fingerprint());
    }

    #[test]
    fn an_unchanged_status_keeps_the_commit_that_last_changed_it() {
        let actual = sample_actual();
        let plan = plan_of(vec![site_plan("acme", SiteAction::Noop, false, false)]);
        let old = build(&plan, &actual, &[], Some("1111"));
        let mut new = build(&plan, &actual, &[], Some("2222"));
        new.carry_commits(&old);
        assert_eq!(
            new.sites[&n("acme")].inventory_commit.as_deref(),
            Some("1111")
        );
        assert_eq!(new, old);
        // A change of state takes the new commit.
        let plan2 = plan_of(vec![site_plan("acme", SiteAction::Verify, false, false)]);
        let mut changed = build(&plan2, &actual, &[], Some("2222"));
        changed.carry_commits(&old);
        assert_eq!(
            changed.sites[&n("acme")].inventory_commit.as_deref(),
            Some("2222")
        );
    }

    #[test]
    fn a_status_file_for_another_name_or_with_unknown_keys_is_refused() {
        let actual = sample_actual();
        let plan = plan_of(vec![site_plan("acme", SiteAction::Noop, false, false)]);
        let set = build(&plan, &actual, &[], None);
        let text = String::from_utf8(set.files()["sites/acme.yaml"].clone()).unwrap();
        let e = parse_site(&text, Path::new("status/sites/other.yaml"), "other").unwrap_err();
        assert!(e[0].message.contains("named other"), "{:?}", e);
        let bad = format!("{text}password: hunter2\n");
        assert!(parse_site(&bad, Path::new("x.yaml"), "acme").is_err());
        assert!(parse_site("site: [", Path::new("x.yaml"), "acme").is_err());
    }

    #[test]
    fn the_commit_message_names_the_applied_commit() {
        let set = StatusSet::default();
        let c = "0123456789abcdef0123456789abcdef01234567";
        let m = commit_message(Some(c), &set);
        assert!(m.starts_with("hoist: status after applying 0123456789ab\n\n"));
        assert!(m.contains(c));
    }
}
