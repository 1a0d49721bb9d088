//! `<root>/rollout.json` on each server: the last rollout, with the
//! inventory commit it ran from and, when it halted, why and where. The
//! status files show a halt from it, and `watch` reads it so as not to
//! retry a halted rollout on the same commit (spec section 9).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::apply::rollout::{Halt, RolloutReport};
use crate::fsutil;
use crate::server::Servers;

/// The file's name under a server root.
pub const FILE: &str = "rollout.json";

/// The last rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// The inventory commit it ran from.
    pub commit: Option<String>,
    /// When it ended (RFC 3339).
    pub at: String,
    /// What it did, wave by wave, and the halt.
    #[serde(flatten)]
    pub report: RolloutReport,
}

impl RolloutRecord {
    /// The halt, when the rollout of `commit` halted.
    pub fn halted_on(&self, commit: Option<&str>) -> Option<&Halt> {
        self.report
            .halted
            .as_ref()
            .filter(|_| self.commit.as_deref() == commit)
    }
}

/// Writes `rec` under every server root. A failure is logged, never fatal:
/// the tasks' own records stay the truth about the sites.
pub fn write(servers: &Servers, rec: &RolloutRecord) {
    let bytes = match serde_json::to_vec_pretty(rec) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot encode the rollout record: {e}");
            return;
        }
    };
    for root in servers.roots() {
        let path = root.join(FILE);
        if let Err(e) = fsutil::write_private(&path, &bytes) {
            tracing::error!("cannot write {}: {e}", path.display());
        }
    }
}

/// Reads one server root's record.
pub fn read_at(root: &Path) -> Option<RolloutRecord> {
    let bytes = std::fs::read(root.join(FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The newest record of any server.
pub fn read(servers: &Servers) -> Option<RolloutRecord> {
    servers
        .roots()
        .iter()
        .filter_map(|r| read_at(r))
        .max_by(|a, b| a.at.cmp(&b.at))
}
