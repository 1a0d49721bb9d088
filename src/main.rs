//! The `hoist` command.

fn main() -> std::process::ExitCode {
    hoist::cli::main()
}
