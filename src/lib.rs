//! hoist keeps a fleet of hosted websites where a git repository says they
//! should be: it loads an inventory of platforms and sites, observes what the
//! servers hold, plans migrations, renames, installs and deletions under the
//! package-compatibility rules, and carries them out with a safe, journaled
//! pipeline.
//!
//! The crate is split like Terraform: a pure functional core
//! ([`inventory`] → desired state, [`observe`] → actual state, [`compat`],
//! [`plan`], [`render`]) and an imperative shell ([`server`], [`ssh`], [`db`],
//! [`apply`], [`backup`], [`task`], [`gitops`], [`status`], [`watch`], [`notify`], [`metrics`], [`cli`]).
//! The core is unit-tested without I/O; the shell through the real binary.

#![warn(missing_docs)]

pub mod apply;
pub mod backup;
pub mod cli;
pub mod codebase;
pub mod compat;
pub mod db;
pub mod diag;
pub mod driver;
pub mod drupal;
pub mod failpoint;
pub mod fsutil;
pub mod gitops;
pub mod interrupt;
pub mod inventory;
pub mod journal;
pub mod kind;
pub mod metrics;
pub mod mysql;
pub mod names;
pub mod nginx;
pub mod notify;
pub mod observe;
pub mod par;
pub mod plan;
pub mod render;
pub mod rollout_record;
pub mod scope;
pub mod server;
pub mod ssh;
pub mod status;
pub mod task;
pub mod text;
pub mod version;
pub mod watch;
pub mod yaml;
