//! The command-line grammar: kubo's verbs and flags, parsed by clap.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "ipfs-kit", version, about = "A self-contained IPFS node", long_about = None)]
pub struct Cli {
    /// The repository: this flag, else $IPFS_KIT_PATH, else ~/.ipfs-kit (created on first use).
    #[arg(long, global = true, env = "IPFS_KIT_PATH", value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Sync blocks to disk before pins commit, so adds survive power loss (kubo's flatfs
    /// default). Without it, what a command reported survives the process being killed.
    #[arg(long, global = true, env = "IPFS_KIT_SYNC",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub sync: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the repository.
    Init(super::config::InitArgs),
    /// Show or change the configuration (config.toml).
    Config(super::config::ConfigArgs),
    /// The peers dialed at start (kubo's `bootstrap list|add|rm`), kept in config.toml.
    Bootstrap(super::config::BootstrapArgs),
    /// Add a file or directory.
    Add(AddArgs),
    /// Print the bytes of a file.
    Cat {
        path: String,
        /// Byte offset to start at.
        #[arg(short = 'o', long, default_value_t = 0)]
        offset: u64,
        /// Maximum number of bytes to write.
        #[arg(short = 'l', long)]
        length: Option<u64>,
    },
    /// Write a file or directory to the local filesystem.
    Get {
        path: String,
        /// Where to write it (default: the last path component, or the CID).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// List the links of a directory.
    Ls { path: String },
    /// List the links under IPFS objects (kubo's `refs`); `refs local` lists every block here.
    Refs(RefsArgs),
    /// Raw blocks.
    #[command(subcommand)]
    Block(BlockCmd),
    /// IPLD DAGs.
    #[command(subcommand)]
    Dag(DagCmd),
    /// Pins.
    #[command(subcommand)]
    Pin(PinCmd),
    /// The repository.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Print the version.
    Version,
    /// Show this node's identity (kubo's `id` JSON), or with a peer ID, that peer's as
    /// identify gave it (through the running daemon: found in the DHT and dialed if need be).
    Id { peer: Option<String> },
    /// Run the network node until SIGINT/SIGTERM.
    Daemon(super::net::DaemonArgs),
    /// DHT routing: find providers or peers, announce a CID.
    #[command(subcommand)]
    Routing(super::net::RoutingCmd),
    /// The Arrow index of blocks: query, export to Parquet, rebuild.
    #[command(subcommand)]
    Index(super::index::IndexCmd),
    /// Storage tiers: where blocks live (local, S3), and moving DAGs between them.
    #[command(subcommand)]
    Tier(super::tier::TierCmd),
    /// The cluster pinset through the running daemon's cluster API (ipfs-cluster-ctl's verbs).
    #[command(subcommand)]
    Cluster(super::cluster::ClusterCmd),
    /// Peers connected to the running daemon.
    #[command(subcommand)]
    Swarm(super::online::SwarmCmd),
    /// The running daemon's bitswap counters and wantlist.
    #[command(subcommand)]
    Bitswap(super::online::BitswapCmd),
    /// The running daemon's statistics (`stats bw`).
    #[command(subcommand)]
    Stats(super::online::StatsCmd),
    /// Stop the running daemon (as SIGTERM does).
    Shutdown,
    /// Round trips to a peer through the running daemon (`/ipfs/ping/1.0.0`), as kubo's
    /// `ipfs ping`: a peer ID (found through the DHT if need be) or `<multiaddr>/p2p/<id>`.
    Ping {
        peer: String,
        /// Number of pings.
        #[arg(short = 'n', long, default_value_t = 10, allow_negative_numbers = true)]
        count: i64,
    },
}

#[derive(Args, Debug)]
pub struct RefsArgs {
    /// Paths or CIDs to list the links under (or `local`, for every block in the repository).
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// Each line with <src>, <dst> and <linkname> replaced.
    #[arg(long, default_value = crate::dag::refs::REFS_FORMAT_DEFAULT)]
    pub format: String,
    /// Print edges: "<src> -> <dst>".
    #[arg(short = 'e', long)]
    pub edges: bool,
    /// Print each CID once.
    #[arg(short = 'u', long)]
    pub unique: bool,
    /// List links recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// With -r, how deep to go (-1: no limit).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub max_depth: i64,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Files or directories to add.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Add directories recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Print only CIDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print only the final CID.
    #[arg(short = 'Q', long)]
    pub quieter: bool,
    /// Print nothing.
    #[arg(long)]
    pub silent: bool,
    /// Only chunk and hash; write nothing.
    #[arg(short = 'n', long)]
    pub only_hash: bool,
    /// Pin what was added (default true).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub pin: bool,
    /// CID version (0 or 1); 1 implies raw leaves.
    #[arg(long)]
    pub cid_version: Option<u64>,
    /// Use raw blocks for leaves.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          require_equals = true)]
    pub raw_leaves: Option<bool>,
    /// Chunker: size-N, rabin[-MIN-AVG-MAX], buzhash.
    #[arg(short = 's', long, default_value = "size-262144")]
    pub chunker: String,
    /// Use the trickle layout.
    #[arg(short = 't', long)]
    pub trickle: bool,
    /// Hash function (sha2-256, blake3, blake2b-256, sha3-256, ...).
    #[arg(long, default_value = "sha2-256")]
    pub hash: String,
    /// Inline small blocks into identity CIDs.
    #[arg(long)]
    pub inline: bool,
    /// Largest block inlined by --inline.
    #[arg(long, default_value_t = 32)]
    pub inline_limit: usize,
    /// Include hidden files in recursive adds.
    #[arg(short = 'H', long)]
    pub hidden: bool,
    /// Wrap the files in a directory (named by their names); only the directory is pinned.
    #[arg(short = 'w', long)]
    pub wrap_with_directory: bool,
    /// Show a progress bar (default: when stderr is a terminal).
    #[arg(short = 'p', long, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub progress: Option<bool>,
}

#[derive(Subcommand, Debug)]
pub enum BlockCmd {
    /// Store a block read from a file (or stdin with `-`); prints its CID.
    Put {
        #[arg(default_value = "-")]
        file: PathBuf,
        /// Codec of the CID: raw (default), dag-pb, dag-cbor, dag-json.
        #[arg(long, default_value = "raw")]
        cid_codec: String,
        /// Hash function.
        #[arg(long, default_value = "sha2-256")]
        mhtype: String,
        /// Pin the block.
        #[arg(long)]
        pin: bool,
    },
    /// Print a block's bytes.
    Get { cid: String },
    /// Print a block's key and size.
    Stat { cid: String },
    /// Remove blocks.
    Rm {
        #[arg(required = true)]
        cids: Vec<String>,
        /// Ignore blocks that are absent.
        #[arg(short = 'f', long)]
        force: bool,
        /// Print only errors.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DagCmd {
    /// Store a DAG node read from a file (or stdin with `-`).
    Put {
        #[arg(default_value = "-")]
        file: PathBuf,
        #[arg(long, default_value = "dag-cbor")]
        store_codec: String,
        #[arg(long, default_value = "dag-json")]
        input_codec: String,
        #[arg(long, default_value = "sha2-256")]
        hash: String,
        #[arg(long)]
        pin: bool,
    },
    /// Print a DAG node (dag-json by default), with an optional path inside it.
    Get {
        path: String,
        #[arg(long, default_value = "dag-json")]
        output_codec: String,
    },
    /// Write a DAG as a CAR v1 to stdout.
    Export { cid: String },
    /// Count the blocks and bytes of DAGs (each DAG's distinct blocks, and what they share).
    Stat {
        #[arg(required = true)]
        roots: Vec<String>,
    },
    /// Import CAR v1/v2 files (or stdin); pins their roots.
    Import {
        files: Vec<PathBuf>,
        #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
              default_missing_value = "true", require_equals = true)]
        pin_roots: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PinCmd {
    /// Pin objects.
    Add {
        #[arg(required = true)]
        paths: Vec<String>,
        #[arg(short = 'r', long, action = ArgAction::Set, default_value_t = true,
              num_args = 0..=1, default_missing_value = "true", require_equals = true)]
        recursive: bool,
        /// A name for the pin.
        #[arg(long)]
        name: Option<String>,
    },
    /// List pins.
    Ls {
        paths: Vec<String>,
        /// all, recursive, direct or indirect.
        #[arg(short = 't', long = "type", default_value = "all")]
        kind: String,
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Only pins with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove pins.
    Rm {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Pin `to` in place of the recursive pin `from` (keeping its name), in one step.
    Update {
        from: String,
        to: String,
        /// Remove the old pin (kubo's default).
        #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1,
              default_missing_value = "true", require_equals = true)]
        unpin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// Remove every block that no pin protects.
    Gc {
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Print repository statistics.
    Stat,
    /// Check every block against its CID.
    Verify,
}
