//! `fetch-object`: one object of a repository to stdout, byte for byte as the registry
//! serves it (verified against its digest on the way).

use dist::images::media_types::{self, MediaKind};
use dist::images::{parse_index, parse_manifest};
use dist::remotes::Fetcher;
use futures::StreamExt;
use oci_spec::image::Descriptor;
use tokio::io::AsyncWriteExt;

use crate::cli::Global;
use crate::content_cmds::parse_digest;
use crate::registry;
use crate::{CmdResult, StdoutError};

/// How far below the target `fetch-object` looks for a named digest.
const MAX_DEPTH: usize = 4;

/// Writes the resolved target of `reference`, or the blob `digest` found below it, to stdout.
pub async fn fetch_object(global: &Global, reference: &str, digest: Option<&str>) -> CmdResult {
    let reference = registry::normalize_ref(reference)?;
    let resolver = registry::any_resolver(global, &reference).await?;
    let (name, target) = resolver.resolve(&reference).await?;
    let fetcher = resolver.fetcher(&name).await?;
    let desc = match digest {
        None => target,
        Some(d) => {
            let want = parse_digest(d)?;
            find(fetcher.as_ref(), target, &want)
                .await?
                .ok_or_else(|| format!("{want}: not found in {name}"))?
        }
    };
    let mut body = fetcher.fetch(&desc).await?;
    let mut stdout = tokio::io::stdout();
    while let Some(chunk) = body.next().await {
        stdout.write_all(&chunk?).await.map_err(StdoutError)?;
    }
    stdout.flush().await.map_err(StdoutError)?;
    Ok(())
}

/// Finds the descriptor of `want` in the graph below `root`, reading only manifests and
/// indexes (never layers), breadth first.
async fn find(
    fetcher: &dyn Fetcher,
    root: Descriptor,
    want: &oci_spec::image::Digest,
) -> CmdResult<Option<Descriptor>> {
    let mut level = vec![root];
    for _ in 0..=MAX_DEPTH {
        let mut next = Vec::new();
        for desc in level {
            if desc.digest() == want {
                return Ok(Some(desc));
            }
            let kind = media_types::kind(desc.media_type());
            if !matches!(kind, MediaKind::Manifest | MediaKind::Index) {
                continue;
            }
            let bytes = read_small(fetcher, &desc).await?;
            if kind == MediaKind::Index {
                next.extend(parse_index(&desc, &bytes)?.manifests().iter().cloned());
            } else {
                let manifest = parse_manifest(&desc, &bytes)?;
                next.push(manifest.config().clone());
                next.extend(manifest.layers().iter().cloned());
            }
        }
        level = next;
    }
    Ok(None)
}

/// Reads a manifest or index (bounded by the fetcher's manifest limit) into memory.
async fn read_small(fetcher: &dyn Fetcher, desc: &Descriptor) -> CmdResult<Vec<u8>> {
    let mut bytes = Vec::with_capacity(desc.size().min(1 << 20) as usize);
    let mut body = fetcher.fetch(desc).await?;
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}
