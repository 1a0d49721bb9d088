//! The `hoist` command.

fn main() -> std::process::ExitCode {
    // A write past a file-size limit must fail like a full disk (EFBIG, then
    // a rollback), not kill the process mid-task with SIGXFSZ.
    // SAFETY: setting a signal's disposition to SIG_IGN at startup, before
    // any thread exists, has no memory effects.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    hoist::cli::main()
}
