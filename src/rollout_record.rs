//! `<root>/rollout.json` on each server: the last rollout, with the
//! inventory commit it ran from and, when it halted, why and where. The
//! status files show a halt from it, and `watch` reads it so as not to
//! retry a halted rollout on the same commit (spec section 9).

use serde::{Deserialize, Serialize};

use crate::apply::rollout::{Halt, RolloutReport};
use crate::driver::host::{HostPath, WriteMode};
use crate::server::{LocalServer, Servers};

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

/// Writes `rec` under every server root, through its host. A failure is
/// logged, never fatal: the tasks' own records stay the truth about the
/// sites.
pub fn write(servers: &Servers, rec: &RolloutRecord) {
    let bytes = match serde_json::to_vec_pretty(rec) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot encode the rollout record: {e}");
            return;
        }
    };
    for srv in servers.by_name.values() {
        let written =
            HostPath::new(FILE).and_then(|p| srv.host().write(&p, &bytes, WriteMode::Private));
        if let Err(e) = written {
            tracing::error!(server = %srv.name(), "cannot write the rollout record: {e}");
        }
    }
}

/// Reads one server's record.
pub fn read_at(srv: &LocalServer) -> Option<RolloutRecord> {
    let bytes = srv.host().read(&HostPath::new(FILE).ok()?).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// The newest record of any server.
pub fn read(servers: &Servers) -> Option<RolloutRecord> {
    servers
        .by_name
        .values()
        .filter_map(read_at)
        .max_by(|a, b| a.at.cmp(&b.at))
}
