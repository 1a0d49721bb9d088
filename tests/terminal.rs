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
