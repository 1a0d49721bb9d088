//! The `hoist` command.

// mimalloc: fleet-scale reads build and free millions of small values on
// every core, where glibc's allocator measured about a tenth slower
// (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
