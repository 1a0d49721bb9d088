//! A failure at every step of every site task, made on demand with
//! failpoints (`cargo test --features failpoints`): the site must be exactly
//! as before — same rows and files byte for byte, same settings and vhost,
//! online — the task `failed` with its log, and any backup taken kept. Each
//! test runs on both stacks (`tests/common/stack.rs`); on mysql+nginx every
//! site must also answer as before (200 with its own name) after each
//! failure.
#![cfg(feature = "failpoints")]

mod common;
mod services;
#[macro_use]
#[path = "common/stack.rs"]
mod stack;

use common::{last_task, put_acme_behind, state_diff as diff, Fixture, MOVE_STEPS};
use stack::{Env, Stack};

fn backup_count(f: &Fixture, site: &str) -> usize {
    common::backup_archives(f, site).len()
}

/// Prepares the example on `stack` (applied, with content), lets `change`
/// edit the inventory, then fails each step before and after its work,
/// putting the servers back to the same starting point before each try.
fn fail_every_step(
    stack: Stack,
    name: &str,
    site: &str,
    steps: &[&str],
    change: impl Fn(&Fixture),
) {
    let Some((env, start)) = Env::prepared(stack, change) else {
        return;
    };
    let backups_before = backup_count(&env, site);
    let summary_before = env.plan_json(&[], 0)["summary"].clone();
    let mut problems = Vec::new();
    let points = steps.iter().flat_map(|step| {
        // A point inside a step fires only before what follows it.
        let hows: &[&str] = if step.ends_with("-inside") {
            &["error"]
        } else {
            &["error", "after"]
        };
        hows.iter().map(move |how| format!("{step}:{how}"))
    });
    env.try_each(&start, points, |fp| {
        let r = env.with_failpoint(&["apply", "--yes"], &fp);
        let out = String::from_utf8_lossy(&r.stdout);
        if r.status.code() != Some(1) {
            problems.push(format!("{fp}: exit {:?}\n{out}", r.status.code()));
            return;
        }
        let t = last_task(&env);
        if t["result"] != "failed" || !t["log"].to_string().contains("rolled back") {
            problems.push(format!("{fp}: task {} {}", t["result"], t["log"]));
        }
        let d = diff(&start.state, &env.state());
        if !d.is_empty() {
            problems.push(format!("{fp}: not as before: {d:?}"));
        }
        let served = env.served();
        if served != start.served {
            problems.push(format!(
                "{fp}: not served as before: {served:?}, was {:?}",
                start.served
            ));
        }
        // the backup, once taken, is kept
        let took = t["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "backup" && (s["state"] == "done" || fp == "backup:after"));
        if took && backup_count(&env, site) != backups_before + 1 {
            problems.push(format!("{fp}: the backup was not kept"));
        }
        // and the site plans exactly as before: the same action again
        if env.plan_json(&[], 0)["summary"] != summary_before {
            problems.push(format!("{fp}: the plan changed after rollback"));
        }
    });
    assert!(
        problems.is_empty(),
        "{name} on {stack:?}:\n{}",
        problems.join("\n")
    );
}

on_both_stacks! {
    fn migrate_rolls_back_at_every_step(stack) {
        fail_every_step(stack, "migrate", "acme", MOVE_STEPS, |f| {
            f.set_site("acme", "platform", "shop-2-0")
        });
    }
}

on_both_stacks! {
    fn rename_rolls_back_at_every_step(stack) {
        let steps = stack.rename_steps(MOVE_STEPS);
        fail_every_step(stack, "rename", "acme", &steps, |f| {
            f.set_site("acme", "domain", "acme.example.org")
        });
    }
}

on_both_stacks! {
    fn migrate_rename_rolls_back_at_every_step(stack) {
        fail_every_step(stack, "migrate+rename", "bakery", MOVE_STEPS, |f| {
            f.set_site("bakery", "platform", "shop-2-1");
            f.set_site("bakery", "domain", "bakery.example.org");
        });
    }
}

on_both_stacks! {
    fn database_server_move_rolls_back_at_every_step(stack) {
        // A migrate onto the site's own platform and domain: its rows move
        // to another database server by dump and load.
        let other = match stack {
            Stack::Embedded => None,
            Stack::MysqlNginx => match services::MariaDb::start() {
                Some(db) => Some(db),
                None => return,
            },
        };
        fail_every_step(stack, "migrate", "acme", MOVE_STEPS, |f| {
            stack::declare_other_database_server(f, other.as_ref());
            f.set_site("acme", "database", "other");
        });
    }
}

on_both_stacks! {
    fn clone_rolls_back_at_every_step(stack) {
        fail_every_step(stack, "clone", "acme", common::CLONE_STEPS, common::add_clone_of_acme);
    }
}

on_both_stacks! {
    fn delete_rolls_back_at_every_step(stack) {
        fail_every_step(stack, "delete", "eatery", common::DELETE_STEPS, common::prune_eatery);
    }
}

on_both_stacks! {
    fn install_rolls_back_at_every_step(stack) {
        fail_every_step(stack, "install", "newbie", common::INSTALL_STEPS, common::add_newbie);
    }
}

on_both_stacks! {
    fn enable_disable_verify_roll_back(stack) {
        fail_every_step(
            stack,
            "disable",
            "eatery",
            &["observe", "write-settings", "write-vhost"],
            |f| f.set_site("eatery", "enabled", "false"),
        );
        fail_every_step(
            stack,
            "verify",
            "eatery",
            &["observe", "write-settings", "write-vhost"],
            |f| f.set_site("eatery", "aliases", "[w.eatery.example.com]"),
        );
    }
}

/// The update's steps up to its commit point; `remove-copy` follows it.
const UPDATE_STEPS: &[&str] = &[
    "observe",
    "maintenance-on",
    "backup",
    "keep-copy",
    "update",
    "clear-caches",
    "health-check",
    "maintenance-off",
];

on_both_stacks! {
    fn update_rolls_back_at_every_step(stack) {
        // `update-inside` fails between two updates, the first one applied:
        // the kept copy, not the updated file, must be what comes back.
        let mut steps = UPDATE_STEPS.to_vec();
        steps.push("update-inside");
        fail_every_step(stack, "update", "acme", &steps, put_acme_behind);
    }
}

#[test]
fn a_failure_removing_the_old_copy_is_a_warning_not_a_rollback() {
    let f = Fixture::example();
    f.apply();
    f.set_site("acme", "platform", "shop-2-0");
    let r = f.with_failpoint(&["apply", "--yes"], "remove-old");
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{out}");
    assert!(
        out.contains("warning  migrate acme") && out.contains("old copy could not be removed"),
        "{out}"
    );
    assert!(
        f.host()
            .join("platforms/shop-2-0/sites/acme.example.com")
            .is_dir(),
        "the site is live on the target"
    );
}

/// An undo that fails is never silent: the task fails with the undo's
/// failure in its message and log, and the site stays in maintenance
/// rather than online half put back.
#[test]
fn an_undo_that_fails_is_reported_and_the_site_stays_in_maintenance() {
    let f = Fixture::example();
    f.apply();
    let (db, _) = common::settings_of(&f, "shop-1-1", "acme.example.com");
    f.set_site("acme", "domain", "acme.example.org");
    let r = f.with_failpoint(&["apply", "--yes"], "verify:error,undo-move-back");
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(1), "{out}");
    assert!(
        out.contains("failed   rename acme")
            && out.contains("ROLLING BACK FAILED")
            && out.contains("failpoint undo-move-back"),
        "{out}"
    );
    let t = last_task(&f);
    assert_eq!(t["result"], "failed");
    assert!(
        t["log"].to_string().contains("ROLLING BACK FAILED"),
        "{}",
        t["log"]
    );
    assert_eq!(common::maintenance_of(&f, &db), "1", "left in maintenance");
    // Its data is all there: the directory where the move left it.
    assert!(f
        .host()
        .join("platforms/shop-1-1/sites/acme.example.org/files")
        .is_dir());
}
