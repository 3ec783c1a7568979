//! The `ipfs-kit` binary: see `ipfs_kit::cli`.

fn main() -> std::process::ExitCode {
    // Before any thread starts: see the module docs.
    ipfs_kit::malloc::tune();
    ipfs_kit::cli::main()
}
