//! Paths on a remote host, checked before they are sent anywhere.
//!
//! A [`RemotePath`] is absolute, normalised (no `.` components, no repeated
//! or trailing `/`), and never holds `..` or a NUL. [`RemotePath::join`]
//! takes a relative path and so can only go down: whatever is joined onto a
//! server's root stays under it. This is the lexical half of confinement;
//! the remote scripts check the other half (no symbolic link leads out of
//! the root) on the host itself, where the links are.

use std::fmt;

/// Why a remote path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not starting with `/` where an absolute path is needed.
    #[error("remote path {0:?} is not absolute")]
    Relative(String),
    /// Starting with `/` where a path relative to a root is needed.
    #[error("remote path {0:?} is absolute where a path inside a root is needed")]
    Absolute(String),
    /// A `..` component, which could climb out of a root.
    #[error("remote path {0:?} contains '..'")]
    DotDot(String),
    /// A NUL byte, which no remote command line can carry.
    #[error("remote path {0:?} contains a NUL byte")]
    Nul(String),
    /// Nothing to join, or a root of `/` itself.
    #[error("remote path {0:?} is empty")]
    Empty(String),
    /// A path given for an operation lies outside the server's root.
    #[error("remote path {path} is outside the root {root}")]
    Outside {
        /// The refused path.
        path: String,
        /// The server's root.
        root: String,
    },
}

/// An absolute, normalised path on a remote host, free of `..` and NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemotePath(String);

/// The components of `s`, refusing `..` and NUL; `.` and empty ones
/// (from `//` or a trailing `/`) are dropped.
fn components(s: &str) -> Result<Vec<&str>, PathError> {
    if s.contains('\0') {
        return Err(PathError::Nul(s.into()));
    }
    let mut out = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathError::DotDot(s.into())),
            c => out.push(c),
        }
    }
    Ok(out)
}

impl RemotePath {
    /// An absolute path; refuses relative paths, `..` and NUL.
    pub fn new(s: &str) -> Result<RemotePath, PathError> {
        if !s.starts_with('/') {
            return Err(PathError::Relative(s.into()));
        }
        let parts = components(s)?;
        Ok(RemotePath(format!("/{}", parts.join("/"))))
    }

    /// `self` with the relative path `rel` below it. Refuses an absolute
    /// `rel`, `..`, NUL and an empty `rel`: the result is always strictly
    /// inside `self`.
    pub fn join(&self, rel: &str) -> Result<RemotePath, PathError> {
        if rel.starts_with('/') {
            return Err(PathError::Absolute(rel.into()));
        }
        let parts = components(rel)?;
        if parts.is_empty() {
            return Err(PathError::Empty(rel.into()));
        }
        let mut out = self.0.clone();
        for p in parts {
            if !out.ends_with('/') {
                out.push('/');
            }
            out.push_str(p);
        }
        Ok(RemotePath(out))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `/` itself.
    pub fn is_filesystem_root(&self) -> bool {
        self.0 == "/"
    }

    /// The directory holding this path (`/` for `/`).
    pub fn parent(&self) -> RemotePath {
        match self.0.rfind('/') {
            Some(0) | None => RemotePath("/".into()),
            Some(i) => RemotePath(self.0[..i].into()),
        }
    }

    /// The last component (empty for `/`).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Whether `self` is `root` or below it (component-wise: `/srv/a` is
    /// not below `/srv/ab`).
    pub fn is_within(&self, root: &RemotePath) -> bool {
        root.0 == "/"
            || self.0 == root.0
            || (self.0.starts_with(&root.0) && self.0.as_bytes().get(root.0.len()) == Some(&b'/'))
    }

    /// Ok when `self` is within `root`, else [`PathError::Outside`].
    pub fn check_within(&self, root: &RemotePath) -> Result<(), PathError> {
        if self.is_within(root) {
            Ok(())
        } else {
            Err(PathError::Outside {
                path: self.0.clone(),
                root: root.0.clone(),
            })
        }
    }

    /// A sibling named `.<name>.<tag>.<suffix>`, for staging a write next
    /// to its target (same directory, so the final rename is atomic).
    pub fn staging_sibling(&self, tag: &str, suffix: &str) -> RemotePath {
        let parent = self.parent();
        let name = format!(".{}.{tag}.{suffix}", self.file_name());
        // `name` has no '/' (file_name has none, tag and suffix are ours)
        // and cannot be "..", so the join cannot fail.
        match parent.join(&name) {
            Ok(p) => p,
            Err(_) => RemotePath(format!("{}/{name}", parent.0)),
        }
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RemotePath {
        RemotePath::new(s).unwrap()
    }

    #[test]
    fn new_normalises_and_refuses() {
        assert_eq!(p("/srv//hoist/./a/").as_str(), "/srv/hoist/a");
        assert_eq!(p("/").as_str(), "/");
        assert!(matches!(
            RemotePath::new("srv"),
            Err(PathError::Relative(_))
        ));
        assert!(matches!(RemotePath::new(""), Err(PathError::Relative(_))));
        assert!(matches!(
            RemotePath::new("/srv/../etc"),
            Err(PathError::DotDot(_))
        ));
        assert!(matches!(
            RemotePath::new("/srv/a\0b"),
            Err(PathError::Nul(_))
        ));
    }

    #[test]
    fn join_only_goes_down() {
        let root = p("/srv/hoist");
        assert_eq!(
            root.join("platforms/a b").unwrap().as_str(),
            "/srv/hoist/platforms/a b"
        );
        assert_eq!(p("/").join("etc").unwrap().as_str(), "/etc");
        assert!(matches!(root.join("../etc"), Err(PathError::DotDot(_))));
        assert!(matches!(
            root.join("a/../../etc"),
            Err(PathError::DotDot(_))
        ));
        assert!(matches!(root.join("/etc"), Err(PathError::Absolute(_))));
        assert!(matches!(root.join(""), Err(PathError::Empty(_))));
        assert!(matches!(root.join("./"), Err(PathError::Empty(_))));
        assert!(matches!(root.join("a\0"), Err(PathError::Nul(_))));
        // `...` and `..x` are ordinary names.
        assert_eq!(root.join("...").unwrap().as_str(), "/srv/hoist/...");
        assert_eq!(root.join("..x").unwrap().as_str(), "/srv/hoist/..x");
    }

    #[test]
    fn within_is_component_wise() {
        let root = p("/srv/a");
        assert!(p("/srv/a").is_within(&root));
        assert!(p("/srv/a/b").is_within(&root));
        assert!(!p("/srv/ab").is_within(&root));
        assert!(!p("/srv").is_within(&root));
        assert!(p("/anything").is_within(&p("/")));
        assert!(matches!(
            p("/etc").check_within(&root),
            Err(PathError::Outside { .. })
        ));
    }

    #[test]
    fn parent_name_and_sibling() {
        assert_eq!(p("/srv/a/b").parent().as_str(), "/srv/a");
        assert_eq!(p("/srv").parent().as_str(), "/");
        assert_eq!(p("/srv/a/b").file_name(), "b");
        assert_eq!(
            p("/srv/a/b c").staging_sibling("hoist-tmp", "x1").as_str(),
            "/srv/a/.b c.hoist-tmp.x1"
        );
    }
}
