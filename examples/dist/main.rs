//! `dist`: the seed's distribution tool, assembled from the dist-rs crates.
//!
//! Every command is a thin layer over the library; `pull` is where the crates meet:
//! resolve -> dispatch(fetch + children + platform filter) -> apply layers -> record the
//! image name. Build with `cargo build --release --example dist`.

// An example binary has no public API: `pub` here means "used by sibling modules".
#![allow(unreachable_pub)]

/// `println!` that returns the write's error instead of panicking, so a closed pipe
/// (`dist images | head -1`) ends the tool quietly: see [`StdoutError`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::StdoutError)
    }};
}

mod cli;
mod content_cmds;
mod copy;
mod export;
mod fetch;
mod fetch_object;
mod gc;
mod import;
mod leases;
mod progress;
mod pull;
mod push;
mod referrers;
mod registry;
mod root;
mod tags;
mod tracker;
mod unpack;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ImagesCommand};

/// A write to stdout failed. When the reader went away (`BrokenPipe`), the tool exits
/// with status 0 and says nothing, like the Unix tools a pipeline expects.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout")]
pub struct StdoutError(#[source] pub std::io::Error);

/// Any error a command reports: printed as one `error: ...` line.
pub type CmdError = Box<dyn std::error::Error + Send + Sync>;
/// The result of a command.
pub type CmdResult<T = ()> = Result<T, CmdError>;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// glibc gives each thread that allocates its own arena, up to eight per core, and each
/// keeps what it freed. A pull runs a few threads per layer (inflate, parse, write) for up
/// to three layers at once: on the 40-layer image that was about 35 MiB of peak RSS for
/// nothing. Two arenas cost no time here (docs/performance.md); `MALLOC_ARENA_MAX` in the
/// environment still wins. A daemon embedding the crates makes this choice for itself.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it runs before any other
        // thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn fail(e: &CmdError) -> ExitCode {
    if let Some(StdoutError(io)) = e.downcast_ref()
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return ExitCode::SUCCESS;
    }
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
        source = s_source(source);
    }
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

fn s_source<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(|e| e.source())
}

fn init_logging(global: &cli::Global) {
    let level = match (&global.log_level, global.verbose) {
        (Some(level), _) => level.clone(),
        (None, 0) => "warn".into(),
        (None, 1) => "info".into(),
        (None, 2) => "debug".into(),
        (None, _) => "trace".into(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(cli: Cli) -> CmdResult {
    let root = root::Root::new(&cli.global)?;
    match cli.command {
        Command::Ingest {
            expected_digest,
            expected_size,
            reference,
        } => content_cmds::ingest(&root, &reference, expected_digest, expected_size).await,
        Command::Active => content_cmds::active(&root).await,
        Command::List { quiet } => content_cmds::list(&root, quiet).await,
        Command::Path { path_only, digests } => content_cmds::path(&root, path_only, &digests),
        Command::Delete { digests } => content_cmds::delete(&root, &digests).await,
        Command::FetchObject { reference, digest } => {
            fetch_object::fetch_object(&cli.global, &reference, digest.as_deref()).await
        }
        Command::Tags {
            page_size,
            repository,
        } => tags::tags(&cli.global, &repository, page_size).await,
        Command::Fetch { reference } => pull::fetch(&cli.global, &root, &reference).await,
        Command::Pull {
            snapshotter,
            concurrency,
            unpack_concurrency,
            verify_key,
            reference,
        } => {
            let args = pull::PullArgs {
                choice: snapshotter,
                concurrency,
                unpack_concurrency: usize::try_from(unpack_concurrency).unwrap_or(1),
                verify_key: verify_key.as_deref(),
            };
            pull::pull(&cli.global, &root, &reference, args).await
        }
        Command::Referrers {
            artifact_type,
            reference,
        } => referrers::referrers(&cli.global, &reference, artifact_type.as_deref()).await,
        Command::Push {
            push,
            all_platforms,
            reference,
            local_ref,
        } => {
            push::push(
                &cli.global,
                &root,
                &push,
                all_platforms,
                &reference,
                local_ref,
            )
            .await
        }
        Command::Copy { push, src, dst } => copy::copy(&cli.global, &root, &push, &src, &dst).await,
        Command::Images { command: None } => unpack::list_images(&cli.global, &root).await,
        Command::Images {
            command: Some(ImagesCommand::Rm { references }),
        } => unpack::remove_images(&root, &references).await,
        Command::Gc(f) => {
            let args = gc::GcArgs {
                dry_run: f.dry_run,
                lease_grace: f.lease_grace,
                ingest_max_age: f.ingest_max_age,
            };
            gc::gc(&root, args).await
        }
        Command::Leases => leases::list(&root).await,
        Command::Apply { dir } => unpack::apply_stdin(&dir).await,
        Command::Export(args) => export::export(&cli.global, &root, &args).await,
        Command::Import(args) => import::import(&cli.global, &root, &args).await,
        Command::Unpack { reference, dir } => {
            unpack::unpack(&cli.global, &root, &reference, &dir).await
        }
    }
}
