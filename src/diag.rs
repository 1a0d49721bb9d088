//! Diagnostics: problems found in user input, each with the file and, where
//! one exists, the line and column, printed as `file:line:col: message`.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one input file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// The file, as the user named it (relative to the inventory where possible).
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a position.
    pub pos: Option<(usize, usize)>,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl Diagnostic {
    /// A problem at a position in `file`.
    pub fn at(file: &Path, pos: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// A non-empty list of problems, the error of a load that found any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
