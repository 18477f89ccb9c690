//! The `dist` command line: global flags and subcommands (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// A toolkit for fetching, storing and unpacking container images.
#[derive(Debug, Parser)]
#[command(name = "dist", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Root directory for content, snapshots and images
    /// [default: $DIST_ROOT, else $XDG_DATA_HOME/dist, else ~/.local/share/dist]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Talk plain HTTP to registries (no TLS)
    #[arg(long, global = true)]
    pub plain_http: bool,
    /// Directory of containerd-style `certs.d/<host>/hosts.toml` files
    #[arg(long, global = true, value_name = "DIR")]
    pub hosts_dir: Option<PathBuf>,
    /// Platform to select from multi-platform images [default: this host]
    #[arg(long, global = true, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Verbose logging to stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log level or filter for stderr logs (e.g. info, debug, dist_remotes=trace)
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Per-request limit on registries: the wait for response headers and for each
    /// next byte of a body (e.g. 10s, 2m) [default: 30s]
    ///
    /// Applies to every request: manifests, blobs and token requests, and also caps the
    /// connect timeout (30s by default). A request whose headers do not arrive within
    /// DURATION, or whose body delivers nothing for DURATION, is a stalled attempt; a blob
    /// is retried from where it stopped and fails at its 3rd stalled attempt. A registry
    /// that keeps stalling thus fails the command after about 3 x DURATION (at most
    /// 3 x 2 x DURATION when it also holds back its headers), naming host and digest.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write one object to stdout: the resolved target, or the named blob of that repository
    FetchObject {
        /// Image reference, e.g. docker.io/library/redis:latest
        reference: String,
        /// Digest of a blob in that repository (default: the reference's target)
        digest: Option<String>,
    },
    /// Print a repository's tags, one per line, across every page
    Tags {
        /// Tags asked for per page (a registry may ignore it)
        #[arg(long, value_name = "N")]
        page_size: Option<u32>,
        /// Repository, e.g. docker.io/library/redis
        repository: String,
    },
    /// Fetch all content of an image (for the platform) into the store, without unpacking
    Fetch {
        /// Image reference
        reference: String,
    },
    /// Write stdin into the content store under REF, resuming a partial ingest of it
    Ingest {
        /// Digest the content must have
        #[arg(long, value_name = "DIGEST")]
        expected_digest: Option<String>,
        /// Size the content must have
        #[arg(long, value_name = "N")]
        expected_size: Option<u64>,
        /// Ingest ref (any string naming this ingest)
        reference: String,
    },
    /// List in-progress ingests
    Active,
    /// List committed blobs
    List {
        /// Print digests only
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the filesystem path of blobs
    Path {
        /// Print the path only
        #[arg(short = 'n')]
        path_only: bool,
        /// Blob digests
        #[arg(required = true)]
        digests: Vec<String>,
    },
    /// Remove blobs from the store
    Delete {
        /// Blob digests
        #[arg(required = true)]
        digests: Vec<String>,
    },
    /// Fetch an image and unpack it into the snapshotter; prints the top ChainID
    Pull {
        /// Snapshotter to unpack into: auto is overlay where this kernel and user can
        /// write and mount overlay layers under the root, else native
        #[arg(long, value_enum, default_value_t = SnapshotterChoice::Auto)]
        snapshotter: SnapshotterChoice,
        /// Layers to download at once
        #[arg(long, default_value_t = 3)]
        concurrency: usize,
        /// Layers to apply at once where the snapshotter allows it (overlay); 1 applies
        /// them one after another
        #[arg(long, value_name = "N", default_value_t = dist::rootfs::DEFAULT_UNPACK_CONCURRENCY as u64,
              value_parser = clap::value_parser!(u64).range(1..64))]
        unpack_concurrency: u64,
        /// Refuse the image unless a cosign signature made with this public key (PEM)
        /// signs it
        #[arg(long, value_name = "PUB.PEM")]
        verify_key: Option<PathBuf>,
        /// Image reference
        reference: String,
    },
    /// List what refers to an image (signatures, SBOMs): digest, artifact type, size
    Referrers {
        /// Only referrers of this artifact type
        #[arg(long, value_name = "TYPE")]
        artifact_type: Option<String>,
        /// Image reference
        reference: String,
    },
    /// Push an image from the store to a registry (children first; blobs there are skipped)
    Push {
        #[command(flatten)]
        push: PushArgs,
        /// Every platform of an index (default: the ones the store holds; see --platform)
        #[arg(long)]
        all_platforms: bool,
        /// Where to push, e.g. localhost:5000/app:v1
        reference: String,
        /// The stored image to push [default: REFERENCE]
        local_ref: Option<String>,
    },
    /// Copy an image between registries through the store: every platform, or the
    /// --platform one; blobs at the destination are skipped, same-registry ones mounted
    Copy {
        #[command(flatten)]
        push: PushArgs,
        /// Source image reference
        src: String,
        /// Destination image reference
        dst: String,
    },
    /// List images, or remove them
    Images {
        #[command(subcommand)]
        command: Option<ImagesCommand>,
    },
    /// Apply one layer from stdin onto DIR; prints its DiffID
    Apply {
        /// Directory to apply the layer onto
        dir: PathBuf,
    },
    /// Remove blobs, partial downloads and snapshots no image, root label or lease needs
    Gc(GcFlags),
    /// List leases (the claims of running pulls on what they create)
    Leases,
    /// Write images as an OCI layout tar with Docker's manifest.json (to a file or -)
    Export(crate::export::ExportArgs),
    /// Import an OCI layout tar or a docker save archive (from a file or -)
    Import(crate::import::ImportArgs),
    /// Write the flattened root filesystem of a pulled or fetched image into DIR
    Unpack {
        /// Image reference
        reference: String,
        /// Target directory; must not exist or be empty
        dir: PathBuf,
    },
}

/// `dist gc` flags.
#[derive(Debug, Args)]
pub struct GcFlags {
    /// Print what would be removed; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long the lease of a command that died keeps protecting its work
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub lease_grace: Duration,
    /// How old an unleased, unlocked partial download must be to be removed
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub ingest_max_age: Duration,
}

/// How `push` and `copy` upload.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Upload blobs in PATCH chunks of this many bytes, resumable after an interruption
    /// (default: one monolithic PUT per blob)
    #[arg(long, value_name = "BYTES")]
    pub chunk_size: Option<u64>,
    /// Blobs to transfer at once
    #[arg(long, default_value_t = 3)]
    pub concurrency: usize,
}

/// `dist images` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Remove images by name (their content stays in the store)
    Rm {
        /// Image references
        #[arg(required = true)]
        references: Vec<String>,
    },
}

/// Which snapshotter `pull` (and `import --unpack`) unpacks into, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapshotterChoice {
    /// overlay when the root's filesystem and this process can use it, else native
    Auto,
    /// A directory per snapshot (any filesystem, no privileges; a link per parent file
    /// per layer)
    Native,
    /// overlayfs upper/work directories (needs a kernel that allows overlay mounts)
    Overlay,
}

/// A snapshotter as used: `auto` resolved. Its name is stable (gc labels, leases and the
/// directory under `<root>/snapshots` use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotterKind {
    /// A directory per snapshot
    Native,
    /// overlayfs upper/work directories
    Overlay,
}

/// A humantime duration (`500ms`, `30s`, `2m`) that is not zero.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}
