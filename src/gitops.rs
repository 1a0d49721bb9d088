//! The inventory as a git repository: which commit the desired state came
//! from, reading the inventory at another commit without touching the
//! working tree, committing status files, pushing them, and following an
//! upstream branch.
//!
//! Local object work (trees, commits, the index, checkouts) uses libgit2.
//! Network work (fetch, push) runs the `git` command: it speaks every
//! transport and credential helper the operator has set up, and it reports
//! a remote's refusal (a hook, a protected branch) as the server said it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use git2::{Commit, ObjectType, Oid, Repository, Signature, Tree};

use crate::inventory::Author;

/// The directory of status files inside the inventory (spec section 7).
pub const STATUS_DIR: &str = "status";

/// A git failure.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// libgit2 failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The inventory is not in a git repository, or not where it must be.
    #[error("{0}")]
    NotARepo(String),
    /// A ref does not name a commit.
    #[error("{0}")]
    BadRef(String),
    /// The remote refused the push for a reason other than having moved
    /// on (a hook, a protected branch): reported, never retried.
    #[error("the push of status to {remote} was rejected: {message}")]
    PushRejected {
        /// The remote.
        remote: String,
        /// What git and the server said.
        message: String,
    },
    /// The remote kept moving on while hoist rebuilt its status commit.
    #[error("the push of status to {remote} still failed after {tries} tries: the branch keeps moving; the next apply pushes again")]
    PushGaveUp {
        /// The remote.
        remote: String,
        /// How many pushes were tried.
        tries: u32,
    },
    /// A `git` command failed.
    #[error("{0}")]
    Command(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GitError + '_ {
    move |source| GitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The commit checked out in the inventory, when it is the root of a git
/// repository.
pub fn head_commit(dir: &Path) -> Option<String> {
    let repo = git2::Repository::open(dir).ok()?;
    let head = repo.head().ok()?;
    head.peel_to_commit().ok().map(|c| c.id().to_string())
}

/// The repository whose working tree's root is `dir`, if any. Status
/// commits are made only there: an inventory in a subdirectory of some
/// larger repository is not hoist's to commit to.
pub fn open_root(dir: &Path) -> Option<Repository> {
    let repo = Repository::open(dir).ok()?;
    let wd = repo.workdir()?.canonicalize().ok()?;
    (dir.canonicalize().ok()? == wd).then_some(repo)
}

/// Where `dir` lies inside the working tree of `repo` ("" at its root).
fn prefix_in(repo: &Repository, dir: &Path) -> Result<PathBuf, GitError> {
    let wd = repo
        .workdir()
        .ok_or_else(|| GitError::NotARepo("the repository has no working tree".into()))?
        .canonicalize()
        .map_err(io_err(dir))?;
    let d = dir.canonicalize().map_err(io_err(dir))?;
    d.strip_prefix(&wd)
        .map(Path::to_path_buf)
        .map_err(|_| GitError::NotARepo(format!("{} is outside its repository", dir.display())))
}

/// The inventory's tree in `commit`: the subtree at `prefix`.
fn inventory_tree<'r>(
    repo: &'r Repository,
    commit: &Commit<'r>,
    prefix: &Path,
) -> Result<Option<Tree<'r>>, GitError> {
    let tree = commit.tree()?;
    if prefix.as_os_str().is_empty() {
        return Ok(Some(tree));
    }
    match tree.get_path(prefix) {
        Ok(e) if e.kind() == Some(ObjectType::Tree) => Ok(Some(repo.find_tree(e.id())?)),
        _ => Ok(None),
    }
}

/// The entries of the inventory's tree other than `status/`: what the
/// desired state is made of.
fn desired_entries(
    repo: &Repository,
    commit: &Commit<'_>,
    prefix: &Path,
) -> Result<Vec<(Vec<u8>, Oid)>, GitError> {
    Ok(inventory_tree(repo, commit, prefix)?
        .map(|t| {
            t.iter()
                .filter(|e| e.name_bytes() != STATUS_DIR.as_bytes())
                .map(|e| (e.name_bytes().to_vec(), e.id()))
                .collect()
        })
        .unwrap_or_default())
}

/// The inventory commit a state was made from: `commit`, or, when it only
/// added status files, the newest ancestor that changed the inventory
/// itself. Hoist's own status commits thus never count as a new inventory
/// commit, so writing status cannot make the status change again.
pub fn inventory_commit(repo: &Repository, commit: Oid, prefix: &Path) -> Result<Oid, GitError> {
    let mut c = repo.find_commit(commit)?;
    for _ in 0..10_000 {
        if c.parent_count() != 1 {
            break;
        }
        // A shallow clone (CI) may lack the parent: stop there.
        let Ok(p) = c.parent(0) else { break };
        if desired_entries(repo, &c, prefix)? != desired_entries(repo, &p, prefix)? {
            break;
        }
        c = p;
    }
    Ok(c.id())
}

/// The inventory commit of the working tree in `dir`: its HEAD, hoist's
/// status commits skipped. None outside a repository or before a first
/// commit.
pub fn working_commit(dir: &Path) -> Option<String> {
    let repo = Repository::discover(dir).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    let prefix = prefix_in(&repo, dir).ok()?;
    inventory_commit(&repo, head.id(), &prefix)
        .ok()
        .map(|o| o.to_string())
}

/// The inventory as it is in a commit, written out as files.
#[derive(Debug, Clone)]
pub struct RefTree {
    /// Where the commit's inventory was written.
    pub dir: PathBuf,
    /// The inventory commit (see [`inventory_commit`]).
    pub commit: String,
}

/// Why the inventory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The inventory has problems (every one is listed).
    #[error("{0}")]
    Invalid(crate::diag::Diagnostics),
    /// The commit could not be read.
    #[error(transparent)]
    Git(#[from] GitError),
}

/// Loads the inventory in `dir`: from its working tree, or with
/// `reference` from that commit of its repository (the working tree is
/// not touched). Either way `root` is `dir` (server roots are relative to
/// it) and `commit` is the inventory commit it came from.
pub fn load_inventory(
    dir: &Path,
    reference: Option<&str>,
    sources: crate::inventory::Sources,
) -> Result<crate::inventory::Inventory, LoadError> {
    match reference {
        None => {
            let mut inv = crate::inventory::load_with(dir, sources).map_err(LoadError::Invalid)?;
            inv.commit = working_commit(dir);
            Ok(inv)
        }
        Some(r) => {
            let t = extract(dir, r)?;
            let mut inv =
                crate::inventory::load_with(&t.dir, sources).map_err(LoadError::Invalid)?;
            inv.root = dir.to_path_buf();
            inv.commit = Some(t.commit);
            Ok(inv)
        }
    }
}

/// How many extracted commits are kept.
const KEEP_TREES: usize = 8;

/// Writes the inventory at `reference` (a branch, tag, commit, `HEAD~1`...)
/// out of the repository that holds `dir`, without touching the working
/// tree: into `.git/hoist/trees/<commit>`, where it stays for the next use
/// (a commit's content never changes).
pub fn extract(dir: &Path, reference: &str) -> Result<RefTree, GitError> {
    let repo = Repository::discover(dir).map_err(|e| {
        GitError::NotARepo(format!(
            "--ref needs the inventory in a git repository: {}",
            e.message()
        ))
    })?;
    let commit = repo
        .revparse_single(reference)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| {
            GitError::BadRef(format!(
                "--ref {reference} does not name a commit: {}",
                e.message()
            ))
        })?;
    let prefix = prefix_in(&repo, dir)?;
    let tree = inventory_tree(&repo, &commit, &prefix)?.ok_or_else(|| {
        GitError::BadRef(format!(
            "commit {} has no directory {}",
            commit.id(),
            prefix.display()
        ))
    })?;
    let normalized = inventory_commit(&repo, commit.id(), &prefix)?.to_string();
    let trees = repo.path().join("hoist").join("trees");
    let key = format!("{}-{}", commit.id(), &tree.id().to_string()[..12]);
    let dest = trees.join(&key);
    if !dest.is_dir() {
        crate::fsutil::create_dir_all(&trees).map_err(io_err(&trees))?;
        let tmp = trees.join(format!(".tmp-{key}-{}", std::process::id()));
        crate::fsutil::remove_tree_if_exists(&tmp).map_err(io_err(&tmp))?;
        write_tree(&repo, &tree, &tmp)?;
        if let Err(e) = std::fs::rename(&tmp, &dest) {
            // Another hoist extracted it at the same moment: use theirs.
            let _ = crate::fsutil::remove_tree_if_exists(&tmp);
            if !dest.is_dir() {
                return Err(io_err(&dest)(e));
            }
        }
        prune_trees(&trees, &dest);
    }
    Ok(RefTree {
        dir: dest,
        commit: normalized,
    })
}

fn write_tree(repo: &Repository, tree: &Tree<'_>, dir: &Path) -> Result<(), GitError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    for e in tree.iter() {
        let Ok(name) = e.name() else { continue };
        if name == ".git" || name.contains('/') {
            continue;
        }
        let path = dir.join(name);
        match e.kind() {
            Some(ObjectType::Tree) => write_tree(repo, &repo.find_tree(e.id())?, &path)?,
            Some(ObjectType::Blob) => {
                let blob = repo.find_blob(e.id())?;
                if e.filemode() == 0o120000 {
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    std::os::unix::fs::symlink(target, &path).map_err(io_err(&path))?;
                } else {
                    std::fs::write(&path, blob.content()).map_err(io_err(&path))?;
                    if e.filemode() == 0o100755 {
                        let p = std::fs::Permissions::from_mode(0o755);
                        std::fs::set_permissions(&path, p).map_err(io_err(&path))?;
                    }
                }
            }
            // Submodules are not part of an inventory.
            _ => {}
        }
    }
    Ok(())
}

fn prune_trees(trees: &Path, keep: &Path) {
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(trees)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(KEEP_TREES);
    for (_, d) in dirs.into_iter().take(excess) {
        if d != keep {
            let _ = crate::fsutil::remove_tree_if_exists(&d);
        }
    }
}

/// Builds a tree of nested directories from `files` (paths with `/`).
fn build_tree(repo: &Repository, files: &BTreeMap<String, Vec<u8>>) -> Result<Oid, GitError> {
    let mut here: BTreeMap<&str, Oid> = BTreeMap::new();
    let mut sub: BTreeMap<&str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for (path, data) in files {
        match path.split_once('/') {
            Some((d, rest)) => {
                sub.entry(d).or_default().insert(rest.into(), data.clone());
            }
            None => {
                here.insert(path, repo.blob(data)?);
            }
        }
    }
    let mut tb = repo.treebuilder(None)?;
    for (name, oid) in here {
        tb.insert(name, oid, 0o100644)?;
    }
    for (name, files) in sub {
        tb.insert(name, build_tree(repo, &files)?, 0o040000)?;
    }
    Ok(tb.write()?)
}

/// `base` with its `status` entry replaced by `status` (removed when None).
fn with_status(
    repo: &Repository,
    base: Option<&Tree<'_>>,
    status: Option<Oid>,
) -> Result<Oid, GitError> {
    let mut tb = repo.treebuilder(base)?;
    match status {
        Some(oid) => {
            tb.insert(STATUS_DIR, oid, 0o040000)?;
        }
        None => {
            if tb.get(STATUS_DIR)?.is_some() {
                tb.remove(STATUS_DIR)?;
            }
        }
    }
    Ok(tb.write()?)
}

/// The tip's `status/` tree with the `owned` paths taken from `ours` (the
/// status tree of the local commit): present there, written; absent,
/// removed. Every other file stays as the tip has it.
fn overlay_status(
    repo: &Repository,
    tip: &Tree<'_>,
    ours: Option<Oid>,
    owned: &BTreeSet<String>,
) -> Result<Option<Oid>, GitError> {
    let subtree = |tree: Option<&Tree<'_>>, name: &str| -> Result<Option<Tree<'_>>, GitError> {
        match tree.and_then(|t| t.get_name(name)) {
            Some(e) if e.kind() == Some(git2::ObjectType::Tree) => {
                Ok(Some(repo.find_tree(e.id())?))
            }
            _ => Ok(None),
        }
    };
    let tip_status = subtree(Some(tip), STATUS_DIR)?;
    let our_status = match ours {
        Some(o) => Some(repo.find_tree(o)?),
        None => None,
    };
    let mut top = repo.treebuilder(tip_status.as_ref())?;
    let subs: BTreeSet<&str> = owned
        .iter()
        .filter_map(|p| p.split_once('/').map(|(d, _)| d))
        .collect();
    for sub in subs {
        let theirs = subtree(tip_status.as_ref(), sub)?;
        let mine = subtree(our_status.as_ref(), sub)?;
        let mut tb = repo.treebuilder(theirs.as_ref())?;
        for file in owned
            .iter()
            .filter_map(|p| p.strip_prefix(sub)?.strip_prefix('/'))
        {
            match mine.as_ref().and_then(|t| t.get_name(file)) {
                Some(e) => {
                    tb.insert(file, e.id(), e.filemode())?;
                }
                None => {
                    if tb.get(file)?.is_some() {
                        tb.remove(file)?;
                    }
                }
            }
        }
        if tb.is_empty() {
            if top.get(sub)?.is_some() {
                top.remove(sub)?;
            }
        } else {
            let oid = tb.write()?;
            top.insert(sub, oid, 0o040000)?;
        }
    }
    Ok(if top.is_empty() {
        None
    } else {
        Some(top.write()?)
    })
}

fn signature(author: &Author) -> Result<Signature<'static>, GitError> {
    Ok(Signature::now(&author.name, &author.email)?)
}

/// Commits the status files `files` (paths under `status/`, with their
/// content) in the repository rooted at `dir`, on top of HEAD: the commit's
/// tree is HEAD's with the `status/` subtree replaced, so nothing else of
/// the working tree or the index is committed. The index entries of
/// `status/` are updated to match. Returns None, committing nothing, when
/// the status is what HEAD has already.
pub fn commit_status(
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    author: &Author,
    message: &str,
) -> Result<Option<Oid>, GitError> {
    let repo = open_root(dir).ok_or_else(|| {
        GitError::NotARepo(format!(
            "{} is not the root of a git repository",
            dir.display()
        ))
    })?;
    let head = match repo.head() {
        Ok(h) => Some(h.peel_to_commit()?),
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
        Err(e) => return Err(e.into()),
    };
    let base = head.as_ref().map(|c| c.tree()).transpose()?;
    // New objects (10,000 blobs when every site's status changed) are made
    // in memory and written as one pack, not as one loose file each.
    let odb = repo.odb()?;
    let mempack = odb.add_new_mempack_backend(1000)?;
    let made = (|| {
        let status = if files.is_empty() {
            None
        } else {
            Some(build_tree(&repo, files)?)
        };
        let tree_id = with_status(&repo, base.as_ref(), status)?;
        if base.as_ref().map(|t| t.id()) == Some(tree_id) || (base.is_none() && status.is_none()) {
            return Ok::<_, GitError>(None);
        }
        let tree = repo.find_tree(tree_id)?;
        let sig = signature(author)?;
        let parents: Vec<&Commit<'_>> = head.iter().collect();
        Ok(Some(
            repo.commit(None, &sig, &sig, message, &tree, &parents)?,
        ))
    })();
    let mut pack = git2::Buf::new();
    let dumped = mempack.dump(&repo, &mut pack);
    mempack.reset()?;
    dumped?;
    let made = made?;
    // A pack's object count is the big-endian u32 at bytes 8..12.
    if pack.len() >= 12 && pack[8..12] != [0, 0, 0, 0] {
        use std::io::Write;
        let mut w = odb.packwriter()?;
        w.write_all(&pack)
            .map_err(|e| GitError::Command(format!("writing a pack: {e}")))?;
        w.commit()?;
    }
    // The index first: whoever sees the new HEAD sees a clean `status/`.
    sync_status_index(&repo, dir, files)?;
    let Some(oid) = made else {
        return Ok(None);
    };
    advance_head(&repo, oid, head.as_ref().map(|c| c.id()), message)?;
    Ok(Some(oid))
}

/// Moves HEAD (its branch, or HEAD itself when detached) from `old` to
/// `new`, refusing when it moved meanwhile, as `git commit` would.
fn advance_head(
    repo: &Repository,
    new: Oid,
    old: Option<Oid>,
    message: &str,
) -> Result<(), GitError> {
    let subject = message.lines().next().unwrap_or("");
    let log = if old.is_some() {
        format!("commit: {subject}")
    } else {
        format!("commit (initial): {subject}")
    };
    let head = repo.find_reference("HEAD")?;
    let target = head
        .symbolic_target()
        .map_err(|_| GitError::NotARepo("HEAD names a branch that is not UTF-8".into()))?;
    match (target, old) {
        (Some(branch), Some(old)) => {
            repo.reference_matching(branch, new, true, old, &log)?;
        }
        (Some(branch), None) => {
            repo.reference(branch, new, false, &log)?;
        }
        (None, _) => repo.set_head_detached(new)?,
    }
    Ok(())
}

/// Makes the index's entries under `status/` those of `files`, leaving
/// every other entry (a user's staged work) alone. Writes only when they
/// differ, and waits out another git holding the index lock.
fn sync_status_index(
    repo: &Repository,
    dir: &Path,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(), GitError> {
    let want: BTreeMap<Vec<u8>, Oid> = files
        .iter()
        .map(|(rel, data)| {
            Ok((
                format!("{STATUS_DIR}/{rel}").into_bytes(),
                Oid::hash_object(ObjectType::Blob, data)?,
            ))
        })
        .collect::<Result<_, git2::Error>>()?;
    let prefix = format!("{STATUS_DIR}/").into_bytes();
    let mut last = None;
    for _ in 0..50 {
        let mut index = repo.index()?;
        index.read(true)?;
        let have: BTreeMap<Vec<u8>, Oid> = index
            .iter()
            .filter(|e| e.path.starts_with(&prefix))
            .map(|e| (e.path.clone(), e.id))
            .collect();
        if have == want {
            return Ok(());
        }
        index.remove_dir(Path::new(STATUS_DIR), 0)?;
        // Entries made from the blob ids already known and the files' stat
        // data, as `add_path` would, without reading and hashing each file
        // again (10,000 of them at fleet scale).
        for (path, id) in &want {
            let rel = String::from_utf8_lossy(path).into_owned();
            let Ok(m) = std::fs::symlink_metadata(dir.join(&rel)) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            index.add(&index_entry(path.clone(), *id, &m))?;
        }
        match index.write() {
            Ok(()) => return Ok(()),
            Err(e) if e.code() == git2::ErrorCode::Locked => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(40));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .map(GitError::Git)
        .unwrap_or_else(|| GitError::Command("the index stayed locked by another git".into())))
}

/// An index entry for a regular file with blob `id` and stat data `m`.
fn index_entry(path: Vec<u8>, id: Oid, m: &std::fs::Metadata) -> git2::IndexEntry {
    use std::os::unix::fs::MetadataExt;
    let t = |s: i64, ns: i64| git2::IndexTime::new(s as i32, ns as u32);
    git2::IndexEntry {
        ctime: t(m.ctime(), m.ctime_nsec()),
        mtime: t(m.mtime(), m.mtime_nsec()),
        dev: m.dev() as u32,
        ino: m.ino() as u32,
        mode: if m.mode() & 0o111 != 0 {
            0o100755
        } else {
            0o100644
        },
        uid: m.uid(),
        gid: m.gid(),
        file_size: m.len() as u32,
        id,
        flags: (path.len().min(0xfff)) as u16,
        flags_extended: 0,
        path,
    }
}

/// The branch HEAD is on, and where it is pushed to on `remote`: its
/// upstream branch when it has one there, else the same name.
fn push_target(repo: &Repository, remote: &str) -> Result<(String, String), GitError> {
    let head = repo.head()?;
    if !head.is_branch() {
        return Err(GitError::NotARepo(
            "HEAD is detached: check out a branch to push status to".into(),
        ));
    }
    let branch = head
        .shorthand()
        .map_err(|_| GitError::NotARepo("the branch name is not UTF-8".into()))?
        .to_string();
    let cfg = repo.config()?;
    let up_remote = cfg.get_string(&format!("branch.{branch}.remote")).ok();
    let merge = cfg.get_string(&format!("branch.{branch}.merge")).ok();
    let dst = match (up_remote, merge) {
        (Some(r), Some(m)) if r == remote => {
            m.strip_prefix("refs/heads/").unwrap_or(&m).to_string()
        }
        _ => branch.clone(),
    };
    Ok((branch, dst))
}

/// The branch HEAD is on and its upstream: remote name and branch on the
/// remote. None when HEAD is detached or the branch tracks nothing remote.
pub fn upstream(dir: &Path) -> Option<(String, String)> {
    let repo = open_root(dir)?;
    let head = repo.head().ok()?;
    if !head.is_branch() {
        return None;
    }
    let branch = head.shorthand().ok()?.to_string();
    let cfg = repo.config().ok()?;
    let remote = cfg.get_string(&format!("branch.{branch}.remote")).ok()?;
    if remote == "." {
        return None;
    }
    let merge = cfg.get_string(&format!("branch.{branch}.merge")).ok()?;
    let b = merge
        .strip_prefix("refs/heads/")
        .unwrap_or(&merge)
        .to_string();
    Some((remote, b))
}

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, GitError> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| GitError::Command(format!("cannot run git: {e}")))
}

/// Fetches `branch` of `remote` into `refs/remotes/<remote>/<branch>` and
/// returns the commit it points at.
pub fn fetch(dir: &Path, remote: &str, branch: &str) -> Result<Oid, GitError> {
    let tracking = format!("refs/remotes/{remote}/{branch}");
    let spec = format!("+refs/heads/{branch}:{tracking}");
    let out = git(dir, &["fetch", "--quiet", "--no-tags", remote, &spec])?;
    if !out.status.success() {
        return Err(GitError::Command(format!(
            "git fetch {remote} {branch} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let repo = Repository::discover(dir)?;
    let oid = repo.refname_to_id(&tracking)?;
    Ok(oid)
}

enum PushResult {
    Done,
    Behind,
}

fn push_once(dir: &Path, remote: &str, oid: Oid, dst: &str) -> Result<PushResult, GitError> {
    let spec = format!("{oid}:refs/heads/{dst}");
    let out = git(dir, &["push", "--porcelain", remote, &spec])?;
    if out.status.success() {
        return Ok(PushResult::Done);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Porcelain: `!\t<src>:<dst>\t[rejected] (fetch first)` when the remote
    // moved on; `[remote rejected] (<reason>)` when the server refused.
    let flag = stdout.lines().find(|l| l.starts_with('!'));
    if let Some(l) = flag {
        if l.contains("[rejected]") && (l.contains("fetch first") || l.contains("non-fast-forward"))
        {
            return Ok(PushResult::Behind);
        }
        // Another push (another server's watcher) moved the branch between
        // the server's check and its update: the same race, lost later.
        if l.contains("[remote rejected]")
            && l.contains("failed to update ref")
            && stderr.contains("cannot lock ref")
            && stderr.contains("but expected")
        {
            return Ok(PushResult::Behind);
        }
    }
    let mut msg: Vec<String> = flag
        .and_then(|l| l.split('\t').nth(2))
        .map(|s| vec![s.trim().to_string()])
        .unwrap_or_default();
    msg.extend(
        stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("To ") && !l.starts_with("hint:"))
            .map(String::from),
    );
    Err(GitError::PushRejected {
        remote: remote.into(),
        message: if msg.is_empty() {
            format!("git push exited with {}", out.status)
        } else {
            msg.join("; ")
        },
    })
}

/// How a status push went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The local commit was pushed as it was.
    AsIs(String),
    /// The remote had moved on: the status commit was rebuilt on its tip
    /// and pushed after this many tries.
    Rebuilt {
        /// The commit pushed.
        commit: String,
        /// Pushes tried.
        tries: u32,
    },
    /// The remote already had this status.
    UpToDate,
}

/// How many times a status push is tried before giving up.
pub const PUSH_TRIES: u32 = 5;

/// Pushes HEAD (a status commit) to `remote`. When the remote moved on,
/// fetches it, rebuilds the status commit on its tip (the status files are
/// hoist's alone: its tree with `status/` replaced, no merge of anyone's
/// files), and tries again, up to [`PUSH_TRIES`] times with a growing,
/// jittered pause. A refusal by the server is an error. After a rebuilt
/// push the local branch follows the remote when that is safe
/// ([`follow`]).
///
/// `owned`: the status paths (`sites/NAME.yaml`, `platforms/NAME.yaml`)
/// this run owns when it is scoped to one server; a rebuilt commit then
/// takes the tip's status files and replaces only those, so watchers of
/// different servers pushing at once never overwrite each other's files.
/// None: every status file is this run's.
pub fn push_status(
    dir: &Path,
    remote: &str,
    owned: Option<&BTreeSet<String>>,
) -> Result<Pushed, GitError> {
    use rand::Rng;
    let repo = open_root(dir).ok_or_else(|| {
        GitError::NotARepo(format!(
            "{} is not the root of a git repository",
            dir.display()
        ))
    })?;
    let (branch, dst) = push_target(&repo, remote)?;
    let local = repo.head()?.peel_to_commit()?;
    let message = local.message().unwrap_or("hoist: status").to_string();
    let status = local.tree()?.get_name(STATUS_DIR).map(|e| e.id());
    let mut oid = local.id();
    let mut rebuilt = false;
    for attempt in 1..=PUSH_TRIES {
        match push_once(dir, remote, oid, &dst)? {
            PushResult::Done => {
                // The remote-tracking ref follows what was pushed.
                let _ = repo.reference(
                    &format!("refs/remotes/{remote}/{dst}"),
                    oid,
                    true,
                    "hoist: status pushed",
                );
                if !rebuilt {
                    return Ok(Pushed::AsIs(oid.to_string()));
                }
                if let Err(e) = follow(dir, oid) {
                    tracing::warn!(
                        "status pushed, but the local branch {branch} stays where it was: {e}"
                    );
                }
                return Ok(Pushed::Rebuilt {
                    commit: oid.to_string(),
                    tries: attempt,
                });
            }
            PushResult::Behind if attempt < PUSH_TRIES => {
                let pause = 100u64 << attempt.min(6);
                let jitter = rand::rng().random_range(0..=pause / 2);
                std::thread::sleep(Duration::from_millis(pause + jitter));
                let tip = fetch(dir, remote, &dst)?;
                let tip = repo.find_commit(tip)?;
                let tip_tree = tip.tree()?;
                let status = match owned {
                    None => status,
                    Some(owned) => overlay_status(&repo, &tip_tree, status, owned)?,
                };
                let tree = with_status(&repo, Some(&tip_tree), status)?;
                if tree == tip_tree.id() {
                    return Ok(Pushed::UpToDate);
                }
                let tree = repo.find_tree(tree)?;
                let sig = local.author().to_owned();
                oid = repo.commit(None, &sig, &sig, &message, &tree, &[&tip])?;
                rebuilt = true;
                tracing::info!(
                    remote,
                    attempt,
                    "the remote moved on: status rebuilt on {}",
                    tip.id()
                );
            }
            PushResult::Behind => {}
        }
    }
    Err(GitError::PushGaveUp {
        remote: remote.into(),
        tries: PUSH_TRIES,
    })
}

/// Whether the branch HEAD is on has commits that `remote` does not (as
/// far as the last fetch or push knows): a status commit whose push failed
/// earlier is pushed with the next one.
pub fn ahead_of(dir: &Path, remote: &str) -> bool {
    let Some(repo) = open_root(dir) else {
        return false;
    };
    let Ok((_, dst)) = push_target(&repo, remote) else {
        return false;
    };
    let (Ok(head), Ok(theirs)) = (
        repo.refname_to_id("HEAD"),
        repo.refname_to_id(&format!("refs/remotes/{remote}/{dst}")),
    ) else {
        return false;
    };
    head != theirs && repo.graph_descendant_of(head, theirs).unwrap_or(false)
}

/// How following an upstream commit went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The branch is there already (or ahead, with commits to push).
    UpToDate,
    /// The branch and working tree moved to the commit.
    Moved,
    /// The branch has commits of its own besides status: left alone.
    Diverged,
    /// The working tree has uncommitted changes: left alone.
    Dirty(Vec<String>),
}

/// Whether `c` changed nothing but status files.
fn status_only(repo: &Repository, c: &Commit<'_>) -> Result<bool, GitError> {
    if c.parent_count() != 1 {
        return Ok(false);
    }
    let p = c.parent(0)?;
    Ok(desired_entries(repo, c, Path::new(""))? == desired_entries(repo, &p, Path::new(""))?)
}

/// The paths with uncommitted changes, `status/` (hoist's) and untracked
/// files aside.
pub fn dirty_paths(repo: &Repository) -> Result<Vec<String>, GitError> {
    changed_paths(repo, Path::new(""), false, &[])
}

/// The paths (relative to the repository's root) under `prefix` with
/// changes not committed: staged, modified, and with `untracked` new files
/// git does not ignore. Hoist's own `status/` is left out, and so is
/// anything under `skip` (absolute, canonical: server roots).
fn changed_paths(
    repo: &Repository,
    prefix: &Path,
    untracked: bool,
    skip: &[PathBuf],
) -> Result<Vec<String>, GitError> {
    let mut opts = git2::StatusOptions::new();
    // A new directory is one entry: its files are not walked (a server
    // root inside the inventory holds a fleet's worth).
    opts.include_untracked(untracked)
        .recurse_untracked_dirs(false)
        .exclude_submodules(true);
    if !prefix.as_os_str().is_empty() {
        opts.pathspec(prefix).disable_pathspec_match(true);
    }
    let status = prefix.join(STATUS_DIR);
    let wd = repo.workdir().and_then(|w| w.canonicalize().ok());
    let st = repo.statuses(Some(&mut opts))?;
    Ok(st
        .iter()
        .filter_map(|e| e.path().ok().map(String::from))
        .filter(|p| !Path::new(p).starts_with(&status))
        .filter(|p| {
            wd.as_ref()
                .is_none_or(|w| !skip.iter().any(|r| w.join(p).starts_with(r)))
        })
        .collect())
}

/// What of the inventory in `dir` is not committed: the paths (relative to
/// the repository's root) with staged or unstaged changes and the new files
/// git does not ignore, `status/` and anything under `skip` (canonical
/// server roots) aside. Empty outside a repository.
pub fn uncommitted(dir: &Path, skip: &[PathBuf]) -> Result<Vec<String>, GitError> {
    let Ok(repo) = Repository::discover(dir) else {
        return Ok(vec![]);
    };
    let prefix = prefix_in(&repo, dir)?;
    changed_paths(&repo, &prefix, true, skip)
}

/// The inventory commit (see [`inventory_commit`]) that `reference` (a
/// branch, tag, `HEAD`...) names in the repository holding `dir`.
pub fn reference_commit(dir: &Path, reference: &str) -> Result<String, GitError> {
    let repo = Repository::discover(dir)?;
    let c = repo.revparse_single(reference)?.peel_to_commit()?;
    Ok(inventory_commit(&repo, c.id(), &prefix_in(&repo, dir)?)?.to_string())
}

/// Whether the inventory in `dir` is committed: its repository's HEAD
/// names a commit that holds the inventory's directory. (An inventory
/// never added to the repository it happens to lie in, a home directory
/// under git say, is not.)
pub fn is_committed(dir: &Path) -> bool {
    let Ok(repo) = Repository::discover(dir) else {
        return false;
    };
    let (Ok(head), Ok(prefix)) = (repo.head(), prefix_in(&repo, dir)) else {
        return false;
    };
    let held = head
        .peel_to_commit()
        .ok()
        .and_then(|c| inventory_tree(&repo, &c, &prefix).ok().flatten())
        .is_some();
    held
}

/// The files whose change moves the inventory's committed state: HEAD and
/// the branches (loose or packed), in the git directory and the common one
/// (they differ in a linked worktree). Canonical paths.
#[derive(Debug, Clone, Default)]
pub struct RefFiles {
    /// The repository's git directory.
    pub git_dir: Option<PathBuf>,
    /// Where the branches are (the same but in a linked worktree).
    pub common_dir: Option<PathBuf>,
}

impl RefFiles {
    /// The ref files of the repository holding `dir` (none outside one).
    pub fn of(dir: &Path) -> RefFiles {
        let Ok(repo) = Repository::discover(dir) else {
            return RefFiles::default();
        };
        RefFiles {
            git_dir: repo.path().canonicalize().ok(),
            common_dir: repo.commondir().canonicalize().ok(),
        }
    }

    /// Whether a change of `path` may have moved HEAD or a branch.
    pub fn contains(&self, path: &Path) -> bool {
        let at = |d: &Option<PathBuf>| d.as_ref().and_then(|d| path.strip_prefix(d).ok());
        if at(&self.git_dir).is_some_and(|r| r == Path::new("HEAD")) {
            return true;
        }
        at(&self.common_dir).is_some_and(|r| {
            r == Path::new("packed-refs")
                || (r.starts_with("refs/heads") && r.extension().is_none_or(|e| e != "lock"))
        })
    }
}

/// Moves the branch HEAD is on, and the working tree, to `target`: when it
/// is a fast-forward, or when the branch's own commits are all status
/// commits (they are rewritten from observation anyway). Never when the
/// working tree has uncommitted changes: a user's edits are not
/// overwritten.
pub fn follow(dir: &Path, target: Oid) -> Result<Followed, GitError> {
    let repo = open_root(dir).ok_or_else(|| {
        GitError::NotARepo(format!(
            "{} is not the root of a git repository",
            dir.display()
        ))
    })?;
    let head = repo.head()?;
    let branch = head
        .name()
        .map_err(|_| GitError::NotARepo("the branch name is not UTF-8".into()))?
        .to_string();
    let h = head.peel_to_commit()?.id();
    if h == target || repo.graph_descendant_of(h, target)? {
        return Ok(Followed::UpToDate);
    }
    if !repo.graph_descendant_of(target, h)? {
        let mut walk = repo.revwalk()?;
        walk.push(h)?;
        walk.hide(target)?;
        for oid in walk {
            if !status_only(&repo, &repo.find_commit(oid?)?)? {
                return Ok(Followed::Diverged);
            }
        }
    }
    let dirty = dirty_paths(&repo)?;
    if !dirty.is_empty() {
        return Ok(Followed::Dirty(dirty));
    }
    // Status files are hoist's own and rewritten after each pass: put back
    // HEAD's, so that they never stand in the way of the checkout.
    let mut co = git2::build::CheckoutBuilder::new();
    co.force().path(STATUS_DIR);
    repo.checkout_head(Some(&mut co))?;
    let obj = repo.find_object(target, None)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.safe();
    repo.checkout_tree(&obj, Some(&mut co))?;
    if head.is_branch() {
        repo.reference(&branch, target, true, "hoist: follow upstream")?;
    } else {
        repo.set_head_detached(target)?;
    }
    Ok(Followed::Moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repository) {
        let d = tempfile::tempdir().unwrap();
        let r = Repository::init(d.path()).unwrap();
        (d, r)
    }

    #[test]
    fn build_tree_nests_paths() {
        let (_d, r) = repo();
        let mut files = BTreeMap::new();
        files.insert("sites/a.yaml".to_string(), b"a".to_vec());
        files.insert("platforms/p.yaml".to_string(), b"p".to_vec());
        let t = r.find_tree(build_tree(&r, &files).unwrap()).unwrap();
        assert!(t.get_path(Path::new("sites/a.yaml")).is_ok());
        assert!(t.get_path(Path::new("platforms/p.yaml")).is_ok());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn ref_files_are_head_and_the_branches() {
        let (d, _r) = repo();
        let refs = RefFiles::of(d.path());
        let g = d.path().canonicalize().unwrap().join(".git");
        for yes in ["HEAD", "refs/heads/main", "refs/heads/a/b", "packed-refs"] {
            assert!(refs.contains(&g.join(yes)), "{yes}");
        }
        for no in [
            "refs/heads/main.lock",
            "index",
            "logs/HEAD",
            "refs/remotes/origin/main",
            "hoist/trees/x",
        ] {
            assert!(!refs.contains(&g.join(no)), "{no}");
        }
        assert!(!refs.contains(&g.parent().unwrap().join("HEAD")));
    }

    /// Commits an empty `hoist.yaml` (staged too) as a user would.
    fn first_commit(d: &Path, r: &Repository) -> Oid {
        let sig = Signature::now("t", "t@t").unwrap();
        std::fs::write(d.join("hoist.yaml"), "").unwrap();
        let mut idx = r.index().unwrap();
        idx.add_path(Path::new("hoist.yaml")).unwrap();
        idx.write().unwrap();
        let t = r.find_tree(idx.write_tree().unwrap()).unwrap();
        r.commit(Some("HEAD"), &sig, &sig, "user", &t, &[]).unwrap()
    }

    #[test]
    fn uncommitted_leaves_status_and_server_roots_out() {
        let (d, r) = repo();
        first_commit(d.path(), &r);
        assert!(uncommitted(d.path(), &[]).unwrap().is_empty());
        for f in [
            "hoist.yaml",
            "sites/new.yaml",
            "status/sites/a.yaml",
            "host/x",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "changed").unwrap();
        }
        let host = d.path().join("host").canonicalize().unwrap();
        let mut got = uncommitted(d.path(), &[host]).unwrap();
        got.sort();
        assert_eq!(got, vec!["hoist.yaml", "sites/"]);
        // An inventory never committed is read from its working tree.
        assert!(is_committed(d.path()));
        assert!(!is_committed(&d.path().join("sites")));
    }

    #[test]
    fn status_commits_do_not_count_as_inventory_commits() {
        let (d, r) = repo();
        let c1 = first_commit(d.path(), &r);
        let mut files = BTreeMap::new();
        files.insert("sites/a.yaml".to_string(), b"a".to_vec());
        let author = Author::default();
        let c2 = commit_status(d.path(), &files, &author, "hoist: status").unwrap();
        let c2 = c2.expect("a status commit");
        assert_ne!(c1, c2);
        assert_eq!(inventory_commit(&r, c2, Path::new("")).unwrap(), c1);
        // The same status again commits nothing.
        assert_eq!(
            commit_status(d.path(), &files, &author, "again").unwrap(),
            None
        );
    }
}
