//! Reading a Drupal site's state from its SQLite database: the thin I/O
//! half of [`crate::drupal::state`], for observation.

use rusqlite::OptionalExtension;

use super::{DbError, SiteDb};
use crate::drupal::state::{maintenance_from, maintenance_sql, read_sqlite, SiteState};
use crate::drupal::Generation;

impl SiteDb {
    /// The site's extensions, schemas and post-updates, read as Drupal
    /// `generation` keeps them (tables without a prefix).
    pub fn drupal_state(&self, generation: Generation) -> Result<SiteState, DbError> {
        read_sqlite(&self.conn, generation, "").map_err(|e| DbError::Corrupt {
            db: self.name.clone(),
            msg: e.to_string(),
        })
    }

    /// Whether the site is in maintenance mode: Drupal 7's
    /// `maintenance_mode` variable, Drupal 8+'s `system.maintenance_mode`
    /// state. A value that cannot be read counts as off.
    pub fn drupal_maintenance(&self, generation: Generation) -> Result<bool, DbError> {
        let value: Option<Vec<u8>> = self
            .conn
            .query_row(maintenance_sql(generation), [], |r| {
                Ok(match r.get_ref(0)? {
                    rusqlite::types::ValueRef::Blob(b) | rusqlite::types::ValueRef::Text(b) => {
                        b.to_vec()
                    }
                    _ => Vec::new(),
                })
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(maintenance_from(value.as_deref()))
    }
}
