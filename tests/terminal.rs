//! On a terminal, hoist colours its plan (never with NO_COLOR) and shows
//! progress while it applies. `script` gives the binary a real
//! pseudo-terminal.

mod common;
use common::Fixture;

fn on_a_terminal(f: &Fixture, env: &str, args: &str) -> String {
    let cmd = format!(
        "env {env} {} -C {} --host-root {} {args}",
        env!("CARGO_BIN_EXE_hoist"),
        f.inv().display(),
        f.host().display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .expect("script(1) runs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_plan_is_coloured_on_a_terminal_unless_no_color() {
    let f = Fixture::example();
    let coloured = on_a_terminal(&f, "TERM=xterm", "plan");
    assert!(
        coloured.contains("\x1b[32m+\x1b[0m shop-1-0"),
        "{coloured:?}"
    );
    let plain = on_a_terminal(&f, "NO_COLOR=1", "plan");
    assert!(
        plain.contains("+ shop-1-0") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}

#[test]
fn apply_shows_progress_on_a_terminal_and_not_in_a_pipe() {
    let f = Fixture::example();
    let out = on_a_terminal(&f, "TERM=xterm", "apply --yes");
    assert!(out.contains("Apply complete: 9 success"), "{out:?}");
    assert!(
        out.contains("/9"),
        "a progress bar counting the 9 tasks: {out:?}"
    );
    let g = Fixture::example();
    let piped = g.ok(&["apply", "--yes"], 0);
    assert!(
        !piped.stdout.contains("/9") && !piped.stderr.contains("/9"),
        "{}",
        piped.all()
    );
}

/// Issue 15: in a rollout, the progress on a terminal names each wave as it
/// starts, with its sites and the failure budget left (acme, in the canary,
/// fails its check after the bake: one of two failures spent).
#[cfg(feature = "failpoints")]
#[test]
fn apply_in_waves_shows_each_wave_its_sites_and_the_budget_left_on_a_terminal() {
    let f = Fixture::example();
    let settings = f.read("hoist.yaml");
    f.write(
        "hoist.yaml",
        &format!(
            "{settings}rollout:\n  waves:\n    - {{ name: canary, select: {{ sites: [acme] }} }}\n    \
             - {{ name: rest }}\n  bake_s: 0\n  failure_budget: {{ max_failed: 2 }}\n"
        ),
    );
    let out = on_a_terminal(
        &f,
        "TERM=xterm HOIST_FAILPOINT=rollout-check@acme",
        "apply --yes",
    );
    assert!(out.contains("Apply complete: 9 success"), "{out:?}");
    assert!(
        out.contains("wave canary: 1 site(s): acme (failure budget left: 2)"),
        "{out:?}"
    );
    assert!(
        out.contains(
            "wave rest: 4 site(s): bakery, chess-club, dental, eatery (failure budget left: 1)"
        ),
        "{out:?}"
    );
    assert!(
        out.contains("wave rest (budget left 1)"),
        "the bar's prefix: {out:?}"
    );
    // Not in a pipe: the waves are in the log, the bar is not drawn.
    let g = Fixture::example();
    g.write("hoist.yaml", &f.read("hoist.yaml"));
    let piped = g.ok(&["apply", "--yes"], 0);
    assert!(
        !piped.all().contains("wave canary: 1 site(s)"),
        "{}",
        piped.all()
    );
}
