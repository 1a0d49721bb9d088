//! What an undo could not do ([`Undo`]): every part of an undo runs
//! whatever befell the others.

use std::path::{Path, PathBuf};

use super::steps::{drop_db, live_site, restore_maintenance};
use super::{path_of, txt};
use crate::apply::cutover;
use crate::journal::Place;
use crate::plan::Endpoint;
use crate::server::{LocalServer, SETTINGS_FILE};
use crate::task::TaskRecord;

/// What an undo could not do. Every part of an undo runs whatever befell
/// the others, and the site is taken out of maintenance only when all of
/// them worked: a site half put back stays in maintenance, and the task
/// says what failed.
#[derive(Default)]
pub(in crate::apply) struct Undo {
    failed: Vec<String>,
}

impl Undo {
    /// Notes `r`'s failure, if it failed, as a failure of `what`.
    pub(in crate::apply) fn check<E: std::fmt::Display>(&mut self, what: &str, r: Result<(), E>) {
        if let Err(e) = r {
            self.failed.push(format!("{what}: {e}"));
        }
    }

    /// Ends the undo: the site is taken out of maintenance (as it was
    /// before the task) when every part worked.
    pub(in crate::apply) fn online(
        mut self,
        srv: &LocalServer,
        at: &Endpoint,
        rec: &TaskRecord,
    ) -> Result<(), String> {
        if self.failed.is_empty() {
            self.check(
                "taking the site out of maintenance",
                restore_maintenance(srv, at, rec),
            );
            if self.failed.is_empty() {
                cutover::check_after_undo(srv, &at.domain, rec);
            }
        }
        self.done()
    }

    /// Moves the site directory `from` (where the task put it) back to
    /// `to`, unless something took `to` meanwhile: then it stays.
    pub(in crate::apply) fn move_back(&mut self, srv: &LocalServer, from: &Path, to: &Path) {
        let back = if srv.exists_at(to) {
            Err(format!("{} exists", to.display()))
        } else {
            crate::failpoint::hit("undo-move-back", crate::failpoint::When::Before)
                .and_then(|()| srv.rename_at(from, to).map_err(txt))
        };
        self.check(
            &format!("moving the site directory back from {}", from.display()),
            back,
        );
    }

    /// Puts back the settings a task saved ([`save_old_settings`]) as
    /// the settings of the site directory `dir`.
    pub(in crate::apply) fn settings_back(
        &mut self,
        srv: &LocalServer,
        rec: &TaskRecord,
        dir: &Path,
    ) {
        let saved = self.place(srv, "the saved settings", &rec.journal.saved_settings);
        if let Some(saved) = saved.filter(|p| srv.exists_at(p)) {
            self.check(
                "putting back the old settings",
                srv.rename_at(&saved, &dir.join(SETTINGS_FILE)),
            );
        }
    }

    /// Renders the application's own settings of the site at `at` again
    /// from its `settings.yaml` (as put back), for its own database.
    pub(in crate::apply) fn app_settings_back(&mut self, srv: &LocalServer, at: &Endpoint) {
        let r = srv
            .read_settings(&at.platform, &at.domain)
            .map_err(txt)
            .and_then(|(settings, _)| {
                let (app, site) = live_site(srv, &settings)?;
                app.write_settings(&site, &settings.config())
            });
        self.check("putting back the application's settings", r);
    }

    /// Where a journaled place is on `srv`; a place it refuses is a
    /// failure of the undo (named `what`).
    pub(in crate::apply) fn place(
        &mut self,
        srv: &LocalServer,
        what: &str,
        p: &Option<Place>,
    ) -> Option<PathBuf> {
        match path_of(srv, p) {
            Ok(p) => p,
            Err(e) => {
                self.failed.push(format!("{what}: {e}"));
                None
            }
        }
    }

    pub(in crate::apply) fn done(self) -> Result<(), String> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            Err(self.failed.join("; "))
        }
    }
}

/// Drops the database the task created, if it did.
pub(in crate::apply) fn drop_new_db(u: &mut Undo, srv: &LocalServer, rec: &TaskRecord) {
    if let Some(db) = &rec.journal.new_db {
        u.check("dropping the new database", drop_db(srv, db));
    }
}
