//! Resolves an image reference against its registry and prints the descriptor as JSON.
//!
//! ```text
//! cargo run --example resolve -- docker.io/library/alpine:3.20
//! cargo run --example resolve -- --plain-http 127.0.0.1:5000/walk:v1
//! ```
//!
//! Credentials come from `~/.docker/config.json` (or `$DOCKER_CONFIG`).

use std::sync::Arc;

use clap::Parser;
use dist_remotes::{DockerConfig, DockerResolver, HostsConfig, Resolver, ResolverOptions};

/// Resolve a reference and print its descriptor.
#[derive(Parser)]
struct Args {
    /// Talk plain HTTP to the reference's registry (local test registries).
    #[arg(long)]
    plain_http: bool,
    /// A directory of containerd `<host>/hosts.toml` files (mirrors, CAs).
    #[arg(long)]
    hosts_dir: Option<std::path::PathBuf>,
    /// A fully qualified reference: `host/repo:tag` or `host/repo@sha256:...`.
    reference: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut hosts = HostsConfig::new();
    if let Some(dir) = &args.hosts_dir {
        hosts = hosts.with_config_dir_async(dir).await;
    }
    if args.plain_http {
        let host = args.reference.split('/').next().unwrap_or_default();
        hosts = hosts.with_plain_http(host);
    }
    let options = ResolverOptions::default()
        .with_hosts(hosts)
        .with_credentials(Arc::new(DockerConfig::load_async().await?));
    let resolver = DockerResolver::new(options);
    let (_name, desc) = resolver.resolve(&args.reference).await?;
    println!("{}", serde_json::to_string_pretty(&desc)?);
    Ok(())
}
