//! A blocking client of the daemon's RPC API, used by the CLI while a daemon holds the repository.
