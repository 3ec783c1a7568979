//! The `ipfs-kit` binary: see `ipfs_kit::cli`.

fn main() -> std::process::ExitCode {
    ipfs_kit::cli::main()
}
