//! The `drupal` application kind (spec section 3b), its pure half: telling
//! Drupal 7 from Drupal 8+, finding a codebase's extensions with their
//! versions, schemas and post-updates as Drupal finds them ([`scan`]),
//! Drupal's order of versions ([`version`]), a site's state from rows of
//! its database ([`state`], with the SQL that fetches them), and the
//! compatibility rules of spec section 5 for Drupal ([`compat`]).
//!
//! The imperative half for Drupal 7 is [`runner`] (install, updatedb,
//! maintenance, status and cache-clear on a real site through php-cli, with
//! hoist's own PHP script) and [`settings`] (a site's `settings.php`, a pure
//! render).
//!
//! Nothing else here runs PHP: info files are parsed ([`info`]), PHP sources are
//! read as text ([`php`]) and PHP-serialized database values are decoded by
//! a strict reader of our own ([`unserialize`]).
//!
//! The functions line up with an application-kind trait: `detect` is
//! [`scan::detect`], `scan` is [`DrupalCodebase::scan`] (then
//! [`DrupalCodebase::resolve`] for a site's profile), `version_order` is
//! [`version::version_order`], and reading a site's state is
//! [`state::Queries`] for the SQL, then [`state::d7_state`] or
//! [`state::d8_state`] over the rows ([`state::read_sqlite`] does both on
//! SQLite).

pub mod compat;
pub mod info;
pub mod model;
pub mod php;
pub mod runner;
pub mod scan;
pub mod settings;
pub mod state;
pub mod unserialize;
pub mod version;

pub use compat::{compare, DrupalComparison, DrupalVerdict, ExtensionVerdict};
pub use scan::{
    detect, Core, DrupalCodebase, Extension, ExtensionKind, Generation, Origin, Resolved,
    ScanOptions,
};
pub use state::{SiteExtension, SiteState};
pub use version::{version_order, DrupalVersion};
