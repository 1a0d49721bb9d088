//! The inventory as a git repository: which commit the desired state came
//! from. (Status commits and the watch loop build on this.)

use std::path::Path;

/// The commit checked out in the inventory, when it is the root of a git
/// repository.
pub fn head_commit(dir: &Path) -> Option<String> {
    let repo = git2::Repository::open(dir).ok()?;
    let head = repo.head().ok()?;
    head.peel_to_commit().ok().map(|c| c.id().to_string())
}
