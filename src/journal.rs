//! A task's journal: the facts its undo, its finish and crash recovery
//! read back from the task's record alone. Each fact is typed, and each
//! place names the server it is on ([`Place`]) and each database its
//! database server ([`DbRef`]), so a fact is never read against the wrong
//! root or server.
//!
//! A fact is written before the action that makes it matter (see
//! [`crate::task::TaskRun::note`]): an undo that finds a fact whose thing
//! was never made finds nothing to remove.
//!
//! Records written by older hoists stay readable: a database fact may be a
//! bare name (always on the SQLite server `default` then) and a place an
//! absolute path (on the server whose tasks directory holds the record).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::driver::db::DbRef;
use crate::driver::health::Health;
use crate::driver::host::HostPath;
use crate::inventory::HealthCheck;
use crate::names::{Domain, Name};

/// A place in a server's root that a task made, moved or saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Place {
    /// `path` under the root of server `server`.
    On {
        /// The server's name in `hoist.yaml`.
        server: Name,
        /// The path under its root.
        path: HostPath,
    },
    /// An absolute path, as older hoists journaled it: on the server whose
    /// tasks directory holds the record.
    Legacy(PathBuf),
}

/// The facts of one task. Every field is absent until the task records
/// it; the names are those the record's JSON uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Journal {
    /// Set once maintenance was switched on: the value the site's
    /// `maintenance_mode` had before (`None`: unset).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub maintenance_prev: Option<Option<String>>,
    /// The site's database when the task started.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "db")]
    pub old_db: Option<DbRef>,
    /// The database the task creates (an undo drops it).
    #[serde(
        rename = "created_db",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "db"
    )]
    pub new_db: Option<DbRef>,
    /// The server a site moves to, when it is not the task's: the record
    /// stays on the server the site leaves, and its undo and finish need
    /// both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_server: Option<crate::names::Name>,
    /// The site directory the task makes or copies (an undo removes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_dir: Option<Place>,
    /// The site directory was moved (a rename on the same platform, or a
    /// put-back of one): an undo moves it back.
    #[serde(skip_serializing_if = "is_false")]
    pub moved_dir: bool,
    /// The old database whose tables a rename moved, at once and without
    /// copying a row, into `new_db`; noted before the move. An undo moves
    /// them back, sets back what the rename edited, and only then drops
    /// the new database.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "db")]
    pub tables_moved: Option<DbRef>,
    /// The variables a rename edits in the moved tables, as they were
    /// before (`None`: unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vars_before_move: Option<BTreeMap<String, Option<String>>>,
    /// Only in records of older hoists, whose rename on the same platform
    /// moved the old database's file to the new database and edited it
    /// there: an undo moves it back and loads it from the task's backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_moved: Option<serde_json::Value>,
    /// Where the old settings were saved before being overwritten.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saved_settings: Option<Place>,
    /// Set once the site's vhost may be replaced: its content before
    /// (`None`: there was none).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub old_vhost: Option<Option<String>>,
    /// Where a delete moved the site directory (its trash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trashed_dir: Option<Place>,
    /// Where a restore extracts the backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted_dir: Option<Place>,
    /// Where a restore moves the present site directory aside.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aside_dir: Option<Place>,
    /// Set once a restore swapped the extracted directory into place.
    #[serde(skip_serializing_if = "is_false")]
    pub swapped: bool,
    /// Set once the new site is live: from here on a task finishes
    /// forward.
    #[serde(skip_serializing_if = "is_false")]
    pub committed: bool,
    /// The backup a restore chose, relative to the server root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// Set when the undo did not start because a database server it needs
    /// did not answer: the task stays `running`, and the next hoist that
    /// takes the server's lock retries the undo.
    #[serde(skip_serializing_if = "is_false")]
    pub undo_waits: bool,
    /// The copy of the database an update keeps for its undo (named by the
    /// database it is a copy of).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "db")]
    pub kept_copy: Option<DbRef>,
    /// The domain whose preview vhost the cutover wrote (an undo removes
    /// it).
    #[serde(rename = "preview_vhost", skip_serializing_if = "Option::is_none")]
    pub preview: Option<Domain>,
    /// The last health check's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// How the site is checked: asked again after an undo put it back.
    #[serde(rename = "health_check", skip_serializing_if = "Option::is_none")]
    pub health_how: Option<HealthCheck>,
}

impl Journal {
    /// Every database a fact names (each with its server): what an undo may
    /// need to reach.
    pub fn databases(&self) -> impl Iterator<Item = &DbRef> {
        [
            &self.old_db,
            &self.new_db,
            &self.tables_moved,
            &self.kept_copy,
        ]
        .into_iter()
        .flatten()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A field that is present, whatever its value (`null` included): for the
/// facts whose `None` inside means "there was none".
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A database fact: a [`DbRef`], or a bare name from an older hoist's
/// record (always on the SQLite server `default`).
fn db<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DbRef>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Ref(DbRef),
        Bare(String),
    }
    Ok(Some(match Either::deserialize(d)? {
        Either::Ref(r) => r,
        Either::Bare(name) => DbRef {
            server: Name::new("default").expect("valid"),
            name,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn a_journal_round_trips_and_absent_differs_from_none() {
        let j = Journal {
            maintenance_prev: Some(None),
            new_db: Some(DbRef {
                server: name("db2"),
                name: "acme_1234".into(),
            }),
            copied_dir: Some(Place::On {
                server: name("web2"),
                path: HostPath::new("platforms/p/sites/acme.example.com").unwrap(),
            }),
            committed: true,
            ..Journal::default()
        };
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains(r#""maintenance_prev":null"#), "{text}");
        assert!(text.contains(r#""created_db":{"server":"db2""#), "{text}");
        assert!(!text.contains("old_vhost"), "absent facts stay out: {text}");
        assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
        assert_eq!(
            serde_json::from_str::<Journal>("{}")
                .unwrap()
                .maintenance_prev,
            None
        );
    }

    #[test]
    fn older_records_are_read() {
        let j: Journal = serde_json::from_str(
            r#"{"old_db":"acme","created_db":"acme_1","copied_dir":"/srv/hoist/platforms/p/sites/a",
                "db_moved":true,"backup":"backups/acme/x.tar.gz","old_vhost":null}"#,
        )
        .unwrap();
        assert_eq!(j.old_db.unwrap().server, name("default"));
        assert_eq!(j.new_db.unwrap().name, "acme_1");
        assert_eq!(
            j.copied_dir,
            Some(Place::Legacy("/srv/hoist/platforms/p/sites/a".into()))
        );
        assert!(j.db_moved.is_some());
        assert_eq!(j.old_vhost, Some(None));
    }

    #[test]
    fn a_place_outside_its_root_is_refused() {
        serde_json::from_str::<Journal>(r#"{"trashed_dir":{"server":"web2","path":"../../etc"}}"#)
            .unwrap_err();
    }
}
