//! Tasks: one operation on a site or platform, recorded on the server in
//! `<root>/tasks/<id>.json` with its steps, timings, result and log. The
//! record is rewritten (atomically, synced) when each step starts and ends,
//! so it doubles as the journal a later run recovers from.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::fsutil;
use crate::names::{Name, SiteName};
use crate::plan::Endpoint;

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Build a platform.
    Build,
    /// Remove a platform.
    DeletePlatform,
    /// Install a new site.
    Install,
    /// Clone a site.
    Clone,
    /// Move a site to another platform.
    Migrate,
    /// Change a site's domain.
    Rename,
    /// Both.
    MigrateRename,
    /// Enable a site.
    Enable,
    /// Disable a site.
    Disable,
    /// Re-render a site's settings and vhost.
    Verify,
    /// Delete a site.
    Delete,
    /// Back a site up.
    Backup,
    /// Restore a site from a backup.
    Restore,
}

impl TaskKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Build => "build",
            TaskKind::DeletePlatform => "delete-platform",
            TaskKind::Install => "install",
            TaskKind::Clone => "clone",
            TaskKind::Migrate => "migrate",
            TaskKind::Rename => "rename",
            TaskKind::MigrateRename => "migrate+rename",
            TaskKind::Enable => "enable",
            TaskKind::Disable => "disable",
            TaskKind::Verify => "verify",
            TaskKind::Delete => "delete",
            TaskKind::Backup => "backup",
            TaskKind::Restore => "restore",
        }
    }
}

/// How a task ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskResult {
    /// Still running, or killed while running (recovery looks at these).
    Running,
    /// Done.
    Success,
    /// Done, with something worth a look (a package disabled, say).
    Warning,
    /// Failed and rolled back.
    Failed,
}

impl TaskResult {
    /// The result's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskResult::Running => "running",
            TaskResult::Success => "success",
            TaskResult::Warning => "warning",
            TaskResult::Failed => "failed",
        }
    }
}

/// One step of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name (`backup`, `deploy`, ...).
    pub name: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// How long it took, once finished.
    pub millis: Option<u64>,
    /// `running`, `done`, `failed`, or `undone` after a rollback.
    pub state: String,
}

/// A task's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Unique, sortable by start time.
    pub id: String,
    /// What it does.
    pub kind: TaskKind,
    /// The site it works on.
    pub site: Option<SiteName>,
    /// The platform it works on (builds).
    pub platform: Option<Name>,
    /// Where the site was.
    pub from: Option<Endpoint>,
    /// Where the site goes.
    pub to: Option<Endpoint>,
    /// When it started.
    pub started: String,
    /// When it ended.
    pub finished: Option<String>,
    /// How it ended.
    pub result: TaskResult,
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
    /// The backup it took, a path relative to the server root.
    pub backup: Option<String>,
    /// The inventory commit it was applied from.
    pub commit: Option<String>,
    /// What happened, line by line.
    pub log: Vec<String>,
    /// Set when a later hoist finished or undid the task after it was
    /// interrupted: what recovery did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
    /// Facts a rollback or a recovery needs (the database a deploy created,
    /// say). Never a secret.
    #[serde(default)]
    pub journal: serde_json::Map<String, serde_json::Value>,
}

/// Now, as RFC 3339 UTC.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// A task being carried out: its record, and where the record is kept.
pub struct TaskRun {
    /// The record.
    pub rec: TaskRecord,
    path: PathBuf,
    step_start: Option<Instant>,
}

impl TaskRun {
    /// Starts a task and writes its first record.
    pub fn start(
        tasks_dir: &Path,
        kind: TaskKind,
        site: Option<SiteName>,
        platform: Option<Name>,
    ) -> std::io::Result<TaskRun> {
        use rand::Rng;
        let now_t = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}",
            now_t.year(),
            now_t.month() as u8,
            now_t.day(),
            now_t.hour(),
            now_t.minute(),
            now_t.second(),
            now_t.millisecond()
        );
        let target = site
            .as_ref()
            .map(|s| s.to_string())
            .or_else(|| platform.as_ref().map(|p| p.to_string()))
            .unwrap_or_default();
        let id = format!(
            "{stamp}-{}-{target}-{:04x}",
            kind.as_str().replace('+', "-"),
            rand::rng().random::<u16>()
        );
        let path = tasks_dir.join(format!("{id}.json"));
        let run = TaskRun {
            rec: TaskRecord {
                id,
                kind,
                site,
                platform,
                from: None,
                to: None,
                started: now(),
                finished: None,
                result: TaskResult::Running,
                steps: vec![],
                backup: None,
                commit: None,
                log: vec![],
                recovered: None,
                journal: Default::default(),
            },
            path,
            step_start: None,
        };
        run.save()?;
        Ok(run)
    }

    /// Takes up a task record found on the server again (crash recovery).
    pub fn resume(tasks_dir: &Path, rec: TaskRecord) -> TaskRun {
        let path = tasks_dir.join(format!("{}.json", rec.id));
        TaskRun {
            rec,
            path,
            step_start: None,
        }
    }

    /// Writes the record, synced.
    pub fn save(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.rec).map_err(std::io::Error::other)?;
        fsutil::write_atomic(&self.path, &json)
    }

    /// Adds a line to the log (and to tracing).
    pub fn log(&mut self, line: impl Into<String>) {
        let line = line.into();
        tracing::info!(task = %self.rec.id, "{line}");
        self.rec.log.push(format!("{} {line}", now()));
    }

    /// Records a fact for rollback and recovery, and saves.
    pub fn note(&mut self, key: &str, value: impl Into<serde_json::Value>) -> std::io::Result<()> {
        self.rec.journal.insert(key.into(), value.into());
        self.save()
    }

    /// Marks step `name` as started, and saves.
    pub fn begin(&mut self, name: &str) -> std::io::Result<()> {
        self.rec.steps.push(StepRecord {
            name: name.into(),
            started: now(),
            millis: None,
            state: "running".into(),
        });
        self.step_start = Some(Instant::now());
        self.log(format!("step {name}: started"));
        self.save()
    }

    /// Marks the running step as ended in `state`, and saves.
    pub fn end(&mut self, state: &str) -> std::io::Result<()> {
        let ms = self
            .step_start
            .take()
            .map(|s| s.elapsed().as_millis() as u64);
        if let Some(s) = self.rec.steps.last_mut() {
            s.millis = ms;
            s.state = state.into();
            let name = s.name.clone();
            self.log(format!("step {name}: {state}"));
        }
        self.save()
    }

    /// Ends the task with `result`, and saves.
    pub fn finish(&mut self, result: TaskResult) -> std::io::Result<()> {
        self.rec.result = result;
        self.rec.finished = Some(now());
        self.log(format!("task {}", result.as_str()));
        self.save()
    }
}

/// The task records of a server whose raw text passes `keep`, parsed,
/// oldest first. Unreadable or foreign files are skipped.
fn read_records(tasks_dir: &Path, keep: impl Fn(&[u8]) -> bool) -> Vec<TaskRecord> {
    let mut v: Vec<TaskRecord> = std::fs::read_dir(tasks_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(".json") && !n.starts_with('.'))
        })
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter(|b| keep(b))
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    v.sort_by(|a: &TaskRecord, b| a.id.cmp(&b.id));
    v
}

/// Every task record on a server, oldest first.
pub fn list(tasks_dir: &Path) -> Vec<TaskRecord> {
    read_records(tasks_dir, |_| true)
}

/// The task records on a server still marked running (those a killed
/// hoist left), oldest first. Every hoist command looks for them, so records
/// are parsed only when their text says `running` somewhere: a server with
/// thousands of finished tasks is not parsed whole each time.
pub fn running(tasks_dir: &Path) -> Vec<TaskRecord> {
    let mut v = read_records(tasks_dir, |b| b.windows(9).any(|w| w == b"\"running\""));
    v.retain(|t| t.result == TaskResult::Running);
    v
}

/// One task's record, by id (or a unique prefix of one).
pub fn find(tasks_dir: &Path, id: &str) -> Result<TaskRecord, String> {
    let all = list(tasks_dir);
    let hits: Vec<&TaskRecord> = all.iter().filter(|t| t.id == id).collect();
    let hits = if hits.is_empty() {
        all.iter().filter(|t| t.id.starts_with(id)).collect()
    } else {
        hits
    };
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!("no task {id:?}; `hoist tasks` lists them")),
        many => Err(format!(
            "{id:?} matches {} tasks; give more of the id",
            many.len()
        )),
    }
}
