//! Tasks: one operation on a site or platform, recorded on the server in
//! `<root>/tasks/<id>.json` with its steps, timings, result and log. It
//! doubles as the journal a later run recovers from.
//!
//! # How the record is written
//!
//! A running task's file is a journal: the record as it started (pretty
//! JSON), then the record again, in compact JSON on one line, each time it
//! changed. The last whole record is the one that counts, so a line torn by
//! a crash is ignored. A line is appended and synced whenever a fact an
//! undo needs is noted ([`TaskRun::note`]) and when the task ends. Steps
//! starting and ending ride along with the next such line, or are appended
//! on their own, not synced, once the file is [`STEP_WRITE_INTERVAL`]
//! behind. A finished task's file stays a journal ending in its final
//! record: replacing it by that record alone would cost a new file and
//! free the old one's blocks (a discard, on some disks) for every task.
//!
//! Why not rewrite the file each time: a record replaced (a new file and a
//! rename) and synced twice per step cost a small migration about 60
//! fsyncs and 30 new files, and creating files in the one tasks directory
//! is what made parallel tasks queue behind each other.
//!
//! # Finding the tasks a crash left running
//!
//! Every hoist command looks for them first, and a server keeps thousands
//! of finished records. So a running task's file has a second name,
//! `<id>.running` (a hard link: no new inode, and the first sync of the
//! directory carries it), removed once the final record is synced.
//! [`running`] reads the records those names point at, not every record.
//! A tasks directory is known to follow this (the file [`MARKED`] says
//! so) once recovery has ended every task it found running
//! ([`Leftovers::tidy`]); until then, [`running`] reads every record, as
//! hoist did before.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::driver::host::{Host, HostError, HostPath, LocalHost, WriteMode};
use crate::journal::Journal;
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
    /// Run pending updates on the platform the site lives on.
    Update,
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
    /// Put a site of a halted rollout wave back where it was before its
    /// task, from that task's backup (spec section 9).
    Rollback,
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
            TaskKind::Update => "update",
            TaskKind::Enable => "enable",
            TaskKind::Disable => "disable",
            TaskKind::Verify => "verify",
            TaskKind::Delete => "delete",
            TaskKind::Backup => "backup",
            TaskKind::Restore => "restore",
            TaskKind::Rollback => "rollback",
        }
    }

    /// Every kind.
    pub const ALL: [TaskKind; 15] = [
        TaskKind::Build,
        TaskKind::DeletePlatform,
        TaskKind::Install,
        TaskKind::Clone,
        TaskKind::Migrate,
        TaskKind::Rename,
        TaskKind::MigrateRename,
        TaskKind::Update,
        TaskKind::Enable,
        TaskKind::Disable,
        TaskKind::Verify,
        TaskKind::Delete,
        TaskKind::Backup,
        TaskKind::Restore,
        TaskKind::Rollback,
    ];

    /// The kind as it stands in a task id (`+` is not used in file names).
    fn in_id(self) -> String {
        self.as_str().replace('+', "-")
    }

    /// Whether tasks of this kind work on a platform rather than a site.
    fn on_platform(self) -> bool {
        matches!(self, TaskKind::Build | TaskKind::DeletePlatform)
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
    /// The rollout wave it ran in, when `hoist.yaml` has a `rollout:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<String>,
    /// What happened, line by line.
    pub log: Vec<String>,
    /// Set when a later hoist finished or undid the task after it was
    /// interrupted: what recovery did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
    /// Facts a rollback or a recovery needs (the database a deploy created,
    /// say). Never a secret.
    #[serde(default)]
    pub journal: Journal,
}

/// Now, as RFC 3339 UTC.
pub fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The most bytes a line of a task's log may hold: tasks hold messages,
/// not data, and an error that quotes what it failed on (a whole dump, say)
/// is cut here.
pub const MAX_LINE: usize = 480;

/// `text`, cut to at most [`MAX_LINE`] bytes (at a character boundary)
/// with an ellipsis and the count of bytes left out: how a task records a
/// message, so a record stays small whatever an error quotes.
pub fn quote(text: &str) -> String {
    if text.len() <= MAX_LINE {
        return text.to_string();
    }
    let mut end = MAX_LINE - 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// The second name of a running task's record file: `<id>.running`.
const RUNNING: &str = ".running";

/// In a tasks directory, says every running task there has its
/// `<id>.running` name (see the module's docs).
pub const MARKED: &str = ".running-names";

/// A server's tasks directory, reached through the server's host: the
/// journal is made durable on the host where the site's files are.
#[derive(Clone, Debug)]
pub struct TasksDir {
    host: Arc<dyn Host>,
    dir: HostPath,
}

impl TasksDir {
    /// The directory `dir` on `host`.
    pub fn new(host: Arc<dyn Host>, dir: HostPath) -> TasksDir {
        TasksDir { host, dir }
    }

    /// A directory on this machine (tests, tools).
    pub fn local(dir: &Path) -> TasksDir {
        TasksDir::new(
            Arc::new(LocalHost::new(dir.to_path_buf())),
            HostPath::root(),
        )
    }

    /// The directory as its host names it, for messages.
    pub fn display(&self) -> String {
        self.host.display(&self.dir)
    }

    /// Whether the directory exists.
    pub fn exists(&self) -> bool {
        self.host.is_dir(&self.dir)
    }

    /// Gives the directory, when it exists, mode 0700 (one an older
    /// hoist made may be open to others).
    pub fn make_private(&self) -> Result<(), HostError> {
        if self.exists() {
            self.host.mkdir(&self.dir, true)
        } else {
            Ok(())
        }
    }

    /// The file `name` in it.
    fn file(&self, name: &str) -> Result<HostPath, HostError> {
        self.dir.join(name)
    }

    /// The names in it (none when it cannot be listed), hidden ones left out.
    fn names(&self) -> Vec<String> {
        self.host
            .list(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// The bytes of the file `name`; `None` when it cannot be read.
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        self.host.read(&self.file(name).ok()?).ok().flatten()
    }

    /// The record with id `id`, read whole (no prefix matching).
    pub fn record(&self, id: &str) -> Option<TaskRecord> {
        self.read(&format!("{id}.json")).and_then(|b| parse(&b))
    }
}

fn running_name(tasks: &TasksDir, id: &str) -> Result<HostPath, HostError> {
    tasks.file(&format!("{id}{RUNNING}"))
}

/// How far the record on disk may lag behind the steps of a running task:
/// a long step shows up in `hoist tasks` within this time, and a crash in
/// the middle of one names it.
pub const STEP_WRITE_INTERVAL: Duration = Duration::from_millis(200);

/// A task being carried out: its record, and where the record is kept.
pub struct TaskRun {
    /// The record.
    pub rec: TaskRecord,
    tasks: TasksDir,
    path: HostPath,
    step_start: Option<Instant>,
    /// When the record was last written.
    written: Instant,
    /// Whether this run has written the record's file (it appends to it
    /// from then on).
    file: bool,
    /// Whether the file and its directory entry have been synced.
    durable: bool,
    /// Set when hoist is asked to stop: no further step starts.
    cancel: Option<Arc<AtomicBool>>,
}

impl TaskRun {
    /// Starts a task and writes its first record, synced, once `init` has
    /// filled in what else the record says from the start.
    pub fn start(
        tasks: &TasksDir,
        kind: TaskKind,
        site: Option<SiteName>,
        platform: Option<Name>,
        init: impl FnOnce(&mut TaskRecord),
    ) -> Result<TaskRun, HostError> {
        let mut run = Self::start_noted(tasks, kind, site, platform, init)?;
        run.make_durable()?;
        Ok(run)
    }

    /// [`TaskRun::start`] for a task that notes a fact before every change it
    /// makes (site tasks): its first record is written but not synced; the
    /// first [`TaskRun::note`] syncs it, before anything has changed.
    pub fn start_noted(
        tasks: &TasksDir,
        kind: TaskKind,
        site: Option<SiteName>,
        platform: Option<Name>,
        init: impl FnOnce(&mut TaskRecord),
    ) -> Result<TaskRun, HostError> {
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
            kind.in_id(),
            rand::rng().random::<u16>()
        );
        let path = tasks.file(&format!("{id}.json"))?;
        let mut run = TaskRun {
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
                wave: None,
                log: vec![],
                recovered: None,
                journal: Default::default(),
            },
            tasks: tasks.clone(),
            path,
            step_start: None,
            written: Instant::now(),
            file: false,
            durable: false,
            cancel: None,
        };
        init(&mut run.rec);
        // Records are private (mode 0600 in a 0700 directory): their logs
        // quote errors, and paths and names of the server.
        let host = &tasks.host;
        host.mkdir(&tasks.dir, true)?;
        // The second name is made first and the record's name linked to it:
        // a kill between the two leaves a `.running` name with no record,
        // and one after them an empty record under both names, each of
        // which the next recovery finds by that name and removes
        // ([`leftovers`]); a record made first and killed before its second
        // name would be found by nothing. The names share one inode, synced
        // with their directory entries by the same sync. Only the name
        // counts ([`running`] reads `<id>.json`), so where hard links are
        // not supported an empty file stands in.
        let marker = running_name(tasks, &run.rec.id)?;
        host.create_new(&marker, b"")?;
        let made = match host.link(&marker, &run.path) {
            Err(e) if !exists(&e) => host.create_new(&run.path, b""),
            other => other,
        };
        if let Err(e) = made {
            // A record of that id exists (or could not be made): only the
            // second name made here goes.
            if let Err(r) = host.remove_file(&marker) {
                tracing::warn!("cannot remove {}: {r}", host.display(&marker));
            }
            return Err(e);
        }
        // Written in place: until this record exists the task has done
        // nothing, so a torn one is harmless. One that could not be
        // written (a full disk) is removed now, or by the next recovery,
        // which finds it by its second name ([`leftovers`]).
        if let Err(e) = run.pretty().and_then(|b| host.append(&run.path, &b, false)) {
            return Err(discard(tasks, &run.path, &marker, e));
        }
        run.file = true;
        Ok(run)
    }

    /// Takes up a task record found on the server again (crash recovery).
    pub fn resume(tasks: &TasksDir, rec: TaskRecord) -> Result<TaskRun, HostError> {
        let path = tasks.file(&format!("{}.json", rec.id))?;
        Ok(TaskRun {
            rec,
            tasks: tasks.clone(),
            path,
            step_start: None,
            written: Instant::now(),
            file: false,
            durable: true,
            cancel: None,
        })
    }

    /// Syncs the record's file and, the first time, its directory entry.
    fn make_durable(&mut self) -> Result<(), HostError> {
        if !self.file {
            return Ok(());
        }
        self.tasks.host.append(&self.path, b"", true)?;
        self.sync_entry()
    }

    /// Syncs the directory entry of the record's file, the first time: its
    /// data is synced by the append that calls this.
    fn sync_entry(&mut self) -> Result<(), HostError> {
        if !self.durable {
            self.tasks.host.sync_dir(&self.tasks.dir)?;
            self.durable = true;
        }
        Ok(())
    }

    /// Writes the record, synced.
    pub fn save(&mut self) -> Result<(), HostError> {
        self.write(true)
    }

    fn pretty(&self) -> Result<Vec<u8>, HostError> {
        let mut json = serde_json::to_vec_pretty(&self.rec).map_err(|e| self.unwritable(e))?;
        json.push(b'\n');
        Ok(json)
    }

    /// A record that cannot be serialised (not expected: it is plain data).
    fn unwritable(&self, e: serde_json::Error) -> HostError {
        HostError::Io {
            path: self.tasks.host.display(&self.path),
            source: std::io::Error::other(e),
        }
    }

    /// Appends the record to the journal file. A run that took up a record
    /// found on the server (recovery) first replaces the file by the record
    /// alone, so a torn line a crash left never comes before a new one.
    fn write(&mut self, synced: bool) -> Result<(), HostError> {
        let host = &self.tasks.host;
        if self.file {
            let mut line = serde_json::to_vec(&self.rec).map_err(|e| self.unwritable(e))?;
            line.push(b'\n');
            // One append writes and, when asked, syncs the line.
            host.append(&self.path, &line, synced)?;
            if synced {
                self.sync_entry()?;
            }
        } else {
            host.write(&self.path, &self.pretty()?, WriteMode::Private)?;
            self.file = true;
        }
        self.written = Instant::now();
        Ok(())
    }

    /// Writes the record for a step change: only when the one on disk is
    /// [`STEP_WRITE_INTERVAL`] old, and not synced (no undo depends on it).
    fn save_step(&mut self) -> Result<(), HostError> {
        if self.written.elapsed() >= STEP_WRITE_INTERVAL {
            self.write(false)?;
        }
        Ok(())
    }

    /// Makes the run stop at its next step once `flag` is set (SIGINT,
    /// SIGTERM): see [`crate::apply::step`].
    pub fn cancel_on(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.cancel = flag;
    }

    /// Whether hoist was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Adds a line to the log (and to tracing).
    pub fn log(&mut self, line: impl Into<String>) {
        let line = quote(&line.into());
        tracing::info!(task = %self.rec.id, "{line}");
        self.rec.log.push(format!("{} {line}", now()));
    }

    /// Records facts that are written with the next save: for facts that
    /// only a later, noted action makes matter (the next [`TaskRun::note`]
    /// carries them to disk before that action).
    pub fn remember(&mut self, fact: impl FnOnce(&mut Journal)) {
        fact(&mut self.rec.journal);
    }

    /// Records facts for rollback and recovery, and saves.
    pub fn note(&mut self, fact: impl FnOnce(&mut Journal)) -> Result<(), HostError> {
        fact(&mut self.rec.journal);
        self.save()
    }

    /// Marks step `name` as started: written with the next note, or on its
    /// own, unsynced, once the file is [`STEP_WRITE_INTERVAL`] behind.
    pub fn begin(&mut self, name: &str) -> Result<(), HostError> {
        self.rec.steps.push(StepRecord {
            name: name.into(),
            started: now(),
            millis: None,
            state: "running".into(),
        });
        self.step_start = Some(Instant::now());
        self.log(format!("step {name}: started"));
        self.save_step()
    }

    /// Marks the running step as ended in `state`, written as
    /// [`TaskRun::begin`] is.
    pub fn end(&mut self, state: &str) -> Result<(), HostError> {
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
        self.save_step()
    }

    /// Ends the task with `result`, and saves (synced); then the record
    /// loses its `.running` name, unsynced: one that a crash brings back
    /// points at a record [`running`] sees is finished.
    pub fn finish(&mut self, result: TaskResult) -> Result<(), HostError> {
        self.rec.result = result;
        self.rec.finished = Some(now());
        self.log(format!("task {}", result.as_str()));
        self.save()?;
        self.tasks
            .host
            .remove_file(&running_name(&self.tasks, &self.rec.id)?)
    }
}

/// Whether `e` says the file exists already.
fn exists(e: &HostError) -> bool {
    matches!(e, HostError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
}

/// Removes a record that could not be written, and its second name, and
/// returns the error that stopped it (with the removal's, if that failed
/// too: then recovery removes them).
fn discard(tasks: &TasksDir, record: &HostPath, marker: &HostPath, e: HostError) -> HostError {
    let host = &tasks.host;
    match host
        .remove_file(marker)
        .and_then(|()| host.remove_file(record))
    {
        Ok(()) => e,
        Err(r) => HostError::Io {
            path: host.display(record),
            source: std::io::Error::other(format!(
                "{e}; the unwritten record stays until the next recovery: {r}"
            )),
        },
    }
}

/// A record file's record: the last whole one in its journal (see the
/// module's docs); `None` when there is none.
pub fn parse(bytes: &[u8]) -> Option<TaskRecord> {
    // The records after the first are compact, one per line: the last
    // whole one is found from the end, without parsing those before it.
    for line in bytes.rsplit(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if line.first() != Some(&b'{') {
            break; // the first, pretty record
        }
        if let Ok(rec) = serde_json::from_slice::<TaskRecord>(line) {
            return Some(rec);
        }
    }
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<TaskRecord>()
        .map_while(Result::ok)
        .last()
}

/// Every task record on a server, oldest first. Unreadable or foreign
/// files are skipped.
pub fn list(tasks: &TasksDir) -> Vec<TaskRecord> {
    let mut v: Vec<TaskRecord> = tasks
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .filter_map(|n| tasks.read(&n))
        .filter_map(|b| parse(&b))
        .collect();
    v.sort_by(|a: &TaskRecord, b| a.id.cmp(&b.id));
    v
}

/// What a task works on: a site, or a platform (their names may be alike).
type Target = (bool, String);

/// The targets a task file's name can stand for: its id is
/// `<stamp>-<kind>-<target>-<4 hex>`, and a kind and a name can both hold
/// `-` (`migrate-rename-x` is a migrate of `rename-x` or a migrate+rename
/// of `x`), so there may be two. None for a name of another form.
fn targets_in_name(name: &str) -> Vec<Target> {
    const STAMP: usize = "20260101T000000.000-".len();
    let Some(rest) = name
        .strip_suffix(".json")
        .and_then(|n| n.get(STAMP..))
        .and_then(|n| n.get(..n.len().checked_sub(5)?))
    else {
        return vec![];
    };
    TaskKind::ALL
        .iter()
        .filter_map(|k| {
            let t = rest.strip_prefix(&k.in_id())?.strip_prefix('-')?;
            Some((k.on_platform(), t.to_string()))
        })
        .collect()
}

/// The newest record of each site and of each platform on a server,
/// oldest first: what status files tell. File names are read newest first,
/// and a record is parsed only when its name can stand for a site or
/// platform not met yet, so a server's long history costs a directory
/// listing, not a parse of every record. Records that are unreadable are
/// skipped, as [`list`] skips them.
pub fn latest(tasks: &TasksDir) -> Vec<TaskRecord> {
    let mut names: Vec<String> = tasks
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut met = std::collections::HashSet::<Target>::new();
    let mut out = Vec::new();
    for name in names {
        let candidates = targets_in_name(&name);
        if !candidates.is_empty() && candidates.iter().all(|t| met.contains(t)) {
            continue;
        }
        let Some(rec) = tasks.read(&name).and_then(|b| parse(&b)) else {
            continue;
        };
        let target = match (&rec.site, &rec.platform) {
            (Some(s), _) => (false, s.to_string()),
            (None, Some(p)) => (true, p.to_string()),
            (None, None) => continue,
        };
        if met.insert(target) {
            out.push(rec);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The task records on a server still marked running (those a killed
/// hoist left), oldest first. Every hoist command looks for them, so only
/// the records with a `.running` name are read (see the module's docs).
pub fn running(tasks: &TasksDir) -> Vec<TaskRecord> {
    leftovers(tasks).running
}

/// What a crash may have left in a tasks directory, from one listing of it.
pub struct Leftovers {
    /// The records still marked running, oldest first.
    pub running: Vec<TaskRecord>,
    /// `.running` names of records that are not running (a crash came
    /// between a task's end and their removal).
    stale: Vec<HostPath>,
    /// Record files that hold no whole record: never written, as a full
    /// disk or a kill right after their creation leaves them. Their task
    /// had done nothing.
    unwritten: Vec<HostPath>,
    /// Whether the directory is marked ([`MARKED`]).
    marked: bool,
}

/// What a record file holds, as [`leftovers`] sees it.
enum Found {
    Running(Box<TaskRecord>),
    Unwritten,
    Other,
}

/// Lists `tasks_dir` once: the records its `.running` names point at
/// when it is marked, else every record whose text says `running` (as
/// an older hoist left them).
pub fn leftovers(tasks: &TasksDir) -> Leftovers {
    let marked = tasks
        .file(MARKED)
        .and_then(|m| tasks.host.exists(&m))
        .unwrap_or(false);
    let names = tasks.names();
    let read = |name: &str| {
        let Some(b) = tasks.read(name) else {
            return Found::Other;
        };
        if b.iter().all(u8::is_ascii_whitespace) {
            return Found::Unwritten;
        }
        if !b.windows(9).any(|w| w == b"\"running\"") {
            return Found::Other;
        }
        match parse(&b) {
            Some(r) if r.result == TaskResult::Running => Found::Running(Box::new(r)),
            Some(_) => Found::Other,
            // Running, by its text, but not one whole record: its first
            // write was cut short.
            None => Found::Unwritten,
        }
    };
    let records: Vec<String> = if marked {
        names
            .iter()
            .filter_map(|n| n.strip_suffix(RUNNING))
            .map(|id| format!("{id}.json"))
            .collect()
    } else {
        names
            .iter()
            .filter(|n| n.ends_with(".json"))
            .cloned()
            .collect()
    };
    let mut running = Vec::new();
    let mut unwritten = Vec::new();
    for name in records {
        match read(&name) {
            Found::Running(r) => running.push(*r),
            Found::Unwritten => unwritten.extend(tasks.file(&name).ok()),
            Found::Other => {}
        }
    }
    running.sort_by(|a, b| a.id.cmp(&b.id));
    let stale = names
        .iter()
        .filter_map(|n| Some((n, n.strip_suffix(RUNNING)?)))
        .filter(|(_, id)| !running.iter().any(|r| r.id == *id))
        .filter_map(|(n, _)| tasks.file(n).ok())
        .collect();
    Leftovers {
        running,
        stale,
        unwritten,
        marked,
    }
}

impl Leftovers {
    /// After recovery (holding the server's lock): removes the record files
    /// that were never written and the stale `.running` names, and, when
    /// `all_ended` (recovery ended every running task), marks the
    /// directory as one whose running tasks all have such a name. Returns
    /// the records it removed.
    pub fn tidy(self, tasks: &TasksDir, all_ended: bool) -> Result<Vec<String>, HostError> {
        for path in self.unwritten.iter().chain(&self.stale) {
            tasks.host.remove_file(path)?;
        }
        if all_ended && !self.marked && tasks.exists() {
            tasks.host.write(
                &tasks.file(MARKED)?,
                b"every running task here has an <id>.running name\n",
                WriteMode::Private,
            )?;
        }
        Ok(self
            .unwritten
            .iter()
            .map(|p| tasks.host.display(p))
            .collect())
    }
}

/// One task's record, by id (or a unique prefix of one).
pub fn find(tasks: &TasksDir, id: &str) -> Result<TaskRecord, String> {
    let all = list(tasks);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn at(d: &Path) -> TasksDir {
        TasksDir::local(d)
    }

    fn file_of(dir: &Path) -> PathBuf {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "json"))
            .unwrap()
    }

    #[test]
    fn a_task_file_is_a_journal_whose_last_whole_record_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = TaskRun::start(&at(dir.path()), TaskKind::Backup, None, None, |r| {
            r.commit = Some("abc".into())
        })
        .unwrap();
        let path = file_of(dir.path());
        let first = std::fs::read(&path).unwrap();
        assert_eq!(parse(&first).unwrap().commit.as_deref(), Some("abc"));

        run.begin("one").unwrap();
        run.note(|j| j.restored_from = Some("fact".into())).unwrap();
        run.end("done").unwrap();
        let journal = std::fs::read(&path).unwrap();
        assert!(journal.starts_with(&first), "appended, not rewritten");
        let rec = parse(&journal).unwrap();
        assert_eq!(rec.journal.restored_from.as_deref(), Some("fact"));
        assert_eq!(rec.steps[0].state, "running", "the note carried the step");
        assert_eq!(running(&at(dir.path())).len(), 1);

        // A crash tearing the last line leaves the record before it.
        let mut torn = journal.clone();
        torn.extend_from_slice(b"{\"id\": \"half");
        assert_eq!(parse(&torn).unwrap(), rec);
        std::fs::write(&path, &torn).unwrap();
        // A resumed task starts its file anew from the record it took up,
        // so the torn line is gone before anything is appended.
        let mut resumed =
            TaskRun::resume(&at(dir.path()), running(&at(dir.path())).remove(0)).unwrap();
        resumed.note(|j| j.committed = true).unwrap();
        resumed.begin("two").unwrap();
        resumed.finish(TaskResult::Success).unwrap();
        let done = std::fs::read(&path).unwrap();
        assert!(
            !done.windows(5).any(|w| w == b"\"half"),
            "the torn line went"
        );
        let records: Vec<TaskRecord> = serde_json::Deserializer::from_slice(&done)
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("whole records only");
        let rec = records.last().unwrap().clone();
        assert_eq!(rec.result, TaskResult::Success);
        assert!(rec.journal.committed);
        assert_eq!(rec.steps.len(), 2);
        assert_eq!(parse(&done), Some(rec.clone()));
        assert!(running(&at(dir.path())).is_empty());
        assert_eq!(list(&at(dir.path())), vec![rec]);

        // A task that ends without a crash keeps its journal too.
        let mut plain =
            TaskRun::start(&at(dir.path()), TaskKind::Verify, None, None, |_| {}).unwrap();
        let plain_path = dir.path().join(format!("{}.json", plain.rec.id));
        let start = std::fs::read(&plain_path).unwrap();
        plain.finish(TaskResult::Failed).unwrap();
        let end = std::fs::read(&plain_path).unwrap();
        assert!(end.starts_with(&start));
        assert_eq!(parse(&end).unwrap().result, TaskResult::Failed);
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn running_tasks_are_found_by_their_running_name_once_the_directory_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Before any mark: a running record without the name (as an older
        // hoist left it) is found by reading every record, and the
        // directory is not marked while it runs.
        let tidy = |all_ended| {
            leftovers(&at(d)).tidy(&at(d), all_ended).unwrap();
        };
        let mut old = TaskRun::start(&at(d), TaskKind::Backup, None, None, |_| {}).unwrap();
        std::fs::remove_file(d.join(format!("{}.running", old.rec.id))).unwrap();
        assert_eq!(running(&at(d)).len(), 1);
        // One with the name is found once, not once per name.
        let mut new = TaskRun::start(&at(d), TaskKind::Verify, None, None, |_| {}).unwrap();
        assert_eq!(running(&at(d)).len(), 2);
        tidy(false);
        assert!(!d.join(MARKED).exists());
        assert!(names_in(d).contains(&format!("{}.running", new.rec.id)));
        old.finish(TaskResult::Failed).unwrap();
        new.finish(TaskResult::Failed).unwrap();
        tidy(true);
        assert!(d.join(MARKED).exists(), "{:?}", names_in(d));

        // Marked: the running name is what is read...
        let mut run = TaskRun::start(&at(d), TaskKind::Backup, None, None, |_| {}).unwrap();
        let name = format!("{}.running", run.rec.id);
        assert!(names_in(d).contains(&name));
        assert_eq!(running(&at(d))[0].id, run.rec.id);
        // ...so a running record without it is not found any more.
        std::fs::rename(d.join(&name), d.join("aside")).unwrap();
        assert!(running(&at(d)).is_empty());
        std::fs::rename(d.join("aside"), d.join(&name)).unwrap();

        // The end of the task removes the name; one a crash brought back
        // names a finished record: not running, and tidied away.
        run.finish(TaskResult::Success).unwrap();
        assert!(!names_in(d).contains(&name));
        assert!(running(&at(d)).is_empty());
        std::fs::hard_link(d.join(format!("{}.json", run.rec.id)), d.join(&name)).unwrap();
        assert!(running(&at(d)).is_empty());
        tidy(true);
        assert!(!names_in(d).contains(&name));
        assert_eq!(list(&at(d)).len(), 3, "the .running names are no records");
    }

    #[test]
    fn latest_parses_only_the_newest_record_of_each_site_and_platform() {
        let scratch = tempfile::tempdir().unwrap();
        let template = TaskRun::start(&at(scratch.path()), TaskKind::Migrate, None, None, |_| {})
            .unwrap()
            .rec;
        let dir = tempfile::tempdir().unwrap();
        let put = |stamp: &str, kind: TaskKind, site: Option<&str>, platform: Option<&str>| {
            let mut rec = template.clone();
            let target = site.or(platform).unwrap();
            rec.id = format!("{stamp}-{}-{target}-00aa", kind.in_id());
            rec.kind = kind;
            rec.site = site.map(|s| SiteName::new(s).unwrap());
            rec.platform = platform.map(|p| Name::new(p).unwrap());
            let path = dir.path().join(format!("{}.json", rec.id));
            std::fs::write(path, serde_json::to_vec(&rec).unwrap()).unwrap();
            rec.id
        };
        let old_x = put("20260101T000000.000", TaskKind::Install, Some("x"), None);
        let new_x = put(
            "20260102T000000.000",
            TaskKind::MigrateRename,
            Some("x"),
            None,
        );
        // Its name reads as a migrate+rename of x too: still found.
        let rx = put(
            "20260101T120000.000",
            TaskKind::Migrate,
            Some("rename-x"),
            None,
        );
        let px = put("20260103T000000.000", TaskKind::Build, None, Some("x"));
        let y = put("20260101T000000.000", TaskKind::Install, Some("y"), None);
        // Older records of a site met already are never read: garbage there
        // changes nothing. A newest record that does not parse is skipped.
        std::fs::write(dir.path().join(format!("{old_x}.json")), b"garbage").unwrap();
        std::fs::write(
            dir.path().join("20260105T000000.000-install-y-00bb.json"),
            b"{\"torn",
        )
        .unwrap();
        let ids: Vec<String> = latest(&at(dir.path())).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![y, rx, new_x, px]);
        assert_eq!(
            targets_in_name("20260102T000000.000-migrate-rename-x-00aa.json"),
            vec![(false, "rename-x".to_string()), (false, "x".to_string())]
        );
        assert!(targets_in_name("notes.json").is_empty());
    }

    #[test]
    fn quote_cuts_long_text_at_a_character_boundary() {
        assert_eq!(quote("short"), "short");
        let exact = "x".repeat(MAX_LINE);
        assert_eq!(quote(&exact), exact);
        let long = "é".repeat(1 << 20);
        let q = quote(&long);
        assert!(q.len() <= MAX_LINE, "{}", q.len());
        assert!(q.starts_with("éé") && q.contains("… ("), "{q}");
        let kept = q.split('…').next().unwrap().len();
        assert!(
            q.ends_with(&format!("({} more bytes)", long.len() - kept)),
            "{q}"
        );
    }

    #[test]
    fn records_are_private_and_a_directory_made_before_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("tasks");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut run = TaskRun::start(&at(&d), TaskKind::Backup, None, None, |_| {}).unwrap();
        run.log("x".repeat(1 << 20));
        run.finish(TaskResult::Failed).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d), 0o700);
        let file = file_of(&d);
        assert_eq!(mode(&file), 0o600);
        assert!(std::fs::metadata(&file).unwrap().len() < 16 << 10);
    }

    #[test]
    fn records_never_written_are_leftovers_that_tidy_removes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Unmarked: an empty record is found by reading every record.
        std::fs::write(d.join("20260101T000000.000-backup-a-0001.json"), b"").unwrap();
        let gone = leftovers(&at(d)).tidy(&at(d), true).unwrap();
        assert_eq!(
            gone,
            vec![d
                .join("20260101T000000.000-backup-a-0001.json")
                .display()
                .to_string()]
        );
        assert!(d.join(MARKED).exists());
        // Marked: by its second name, made before its first write; an
        // empty one, and one whose first record was cut short.
        let empty = d.join("20260101T000000.000-backup-a-0002.json");
        std::fs::write(&empty, b"").unwrap();
        std::fs::hard_link(&empty, d.join("20260101T000000.000-backup-a-0002.running")).unwrap();
        let torn = d.join("20260101T000000.000-backup-a-0003.json");
        std::fs::write(&torn, b"{\n  \"id\": \"x\",\n  \"result\": \"running\"").unwrap();
        std::fs::hard_link(&torn, d.join("20260101T000000.000-backup-a-0003.running")).unwrap();
        // A finished record is not touched, nor foreign text.
        let mut done = TaskRun::start(&at(d), TaskKind::Backup, None, None, |_| {}).unwrap();
        done.finish(TaskResult::Success).unwrap();
        std::fs::write(d.join("notes.json"), b"mine").unwrap();
        let left = leftovers(&at(d));
        assert!(left.running.is_empty());
        let mut gone = left.tidy(&at(d), true).unwrap();
        gone.sort();
        assert_eq!(
            gone,
            vec![empty.display().to_string(), torn.display().to_string()]
        );
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                MARKED.to_string(),
                format!("{}.json", done.rec.id),
                "notes.json".to_string()
            ]
        );
    }

    #[test]
    fn a_running_name_whose_record_was_never_made_is_tidied_away() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Marked, then a kill between the second name and the record.
        leftovers(&at(d)).tidy(&at(d), true).unwrap();
        let lone = d.join("20260101T000000.000-backup-a-0004.running");
        std::fs::write(&lone, b"").unwrap();
        assert!(running(&at(d)).is_empty());
        leftovers(&at(d)).tidy(&at(d), true).unwrap();
        assert!(!lone.exists(), "{:?}", names_in(d));
        // A record id met again is refused, and the record kept.
        let run = TaskRun::start(&at(d), TaskKind::Backup, None, None, |_| {}).unwrap();
        let path = d.join(format!("{}.json", run.rec.id));
        let kept = std::fs::read(&path).unwrap();
        std::fs::remove_file(d.join(format!("{}.running", run.rec.id))).unwrap();
        let tasks = at(d);
        let marker = running_name(&tasks, &run.rec.id).unwrap();
        tasks.host.create_new(&marker, b"").unwrap();
        let e = tasks.host.link(
            &marker,
            &tasks.file(&format!("{}.json", run.rec.id)).unwrap(),
        );
        assert!(e.as_ref().is_err_and(exists), "{e:?}");
        assert_eq!(std::fs::read(&path).unwrap(), kept);
    }

    #[test]
    fn step_changes_alone_wait_for_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        // A site task's first record is written (not yet synced) at once.
        let mut run =
            TaskRun::start_noted(&at(dir.path()), TaskKind::Backup, None, None, |_| {}).unwrap();
        let path = file_of(dir.path());
        assert_eq!(parse(&std::fs::read(&path).unwrap()).unwrap(), run.rec);
        let size = || std::fs::metadata(&path).unwrap().len();
        let at_start = size();
        run.begin("quick").unwrap();
        run.end("done").unwrap();
        // (Checked only when this thread was not held up past the interval.)
        if run.written.elapsed() < STEP_WRITE_INTERVAL {
            assert_eq!(size(), at_start, "not written yet");
        }
        std::thread::sleep(STEP_WRITE_INTERVAL);
        run.begin("slow").unwrap();
        let rec = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(rec.steps.len(), 2);
        assert_eq!(rec.steps[1].state, "running");
        run.finish(TaskResult::Success).unwrap();
        let rec = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(rec.steps[1].state, "running", "finish saves what it has");
        assert!(rec.finished.is_some());
    }
}
