//! The floor of a pull: only the work no pull can avoid, for `benches/e2e.sh` to divide
//! pull times by. It fetches the manifest, downloads every layer at once, inflates each with
//! the inflate dist-rootfs uses (`dist_rootfs::decompress`) and lets `tar` write it into
//! its own directory, `OUT/<index>/`, as overlay keeps layers. Nothing else: no digest
//! checks, no content store, no snapshots, no whiteout handling (`.wh.` files are written
//! as plain files), and no metadata (permissions, owners, times, xattrs) beyond what
//! creating the files does.
//!
//! Each layer streams: the download task hands body chunks through a small bounded channel
//! to a blocking thread that inflates and writes, so no layer is held in memory.
//!
//! Usage (plain HTTP, no auth):
//! `floor --registry 127.0.0.1:PORT --repository REPO --reference TAG --out DIR [--concurrency N]`
//! Prints `floor: N layers, X bytes compressed, Y bytes of tar, T s`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Body chunks in flight per layer between its download and its inflate thread.
const CHUNKS_IN_FLIGHT: usize = 16;

#[derive(Parser, Debug)]
#[command(about = "The floor of a pull (driven by benches/e2e.sh)")]
struct Args {
    /// Registry host:port, spoken to over plain HTTP.
    #[arg(long)]
    registry: Option<String>,
    /// Repository, e.g. `bench`.
    #[arg(long)]
    repository: Option<String>,
    /// Tag or digest.
    #[arg(long)]
    reference: Option<String>,
    /// Directory the layers go in, one subdirectory per layer (created).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Layers downloaded and written at once (default: all).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let (Some(registry), Some(repository), Some(reference), Some(out)) =
        (args.registry, args.repository, args.reference, args.out)
    else {
        if args.bench {
            println!("floor: driven by benches/e2e.sh (see its --help), nothing to do here");
            return Ok(());
        }
        return Err("needs --registry, --repository, --reference and --out".into());
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let base = format!("http://{registry}/v2/{repository}");
    let t = Instant::now();
    let (layers, compressed, tar) =
        rt.block_on(floor(&base, &reference, &out, args.concurrency))?;
    println!(
        "floor: {layers} layers, {compressed} bytes compressed, {tar} bytes of tar, {:.3} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Pulls every layer of `reference` into `out/<index>/`; returns (layers, compressed
/// bytes, tar bytes).
async fn floor(
    base: &str,
    reference: &str,
    out: &Path,
    concurrency: Option<usize>,
) -> Result<(usize, u64, u64), BoxError> {
    let client = reqwest::Client::builder().build()?;
    let mut manifest = get_json(&client, &format!("{base}/manifests/{reference}")).await?;
    if let Some(list) = manifest.get("manifests").and_then(Value::as_array) {
        let digest = list
            .iter()
            .find(|m| {
                let p = &m["platform"];
                p["os"] == "linux" && p["architecture"] == "amd64"
            })
            .and_then(|m| m["digest"].as_str())
            .ok_or("the index has no linux/amd64 manifest")?;
        manifest = get_json(&client, &format!("{base}/manifests/{digest}")).await?;
    }
    let digests: Vec<String> = manifest["layers"]
        .as_array()
        .ok_or("the manifest has no layers")?
        .iter()
        .map(|l| l["digest"].as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or("a layer has no digest")?;

    let permits = Arc::new(Semaphore::new(concurrency.unwrap_or(digests.len()).max(1)));
    let mut tasks = Vec::new();
    for (i, digest) in digests.iter().enumerate() {
        let dir = out.join(i.to_string());
        std::fs::create_dir_all(&dir)?;
        let url = format!("{base}/blobs/{digest}");
        let (client, permits) = (client.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            layer(&client, &url, dir).await
        }));
    }
    let (mut compressed, mut tar) = (0, 0);
    for task in tasks {
        let (c, t) = task.await??;
        compressed += c;
        tar += t;
    }
    Ok((digests.len(), compressed, tar))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, BoxError> {
    let body = client
        .get(url)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok(serde_json::from_slice(&body)?)
}

/// Downloads one layer while a blocking thread inflates and writes it; returns
/// (compressed bytes, tar bytes).
async fn layer(client: &reqwest::Client, url: &str, dir: PathBuf) -> Result<(u64, u64), BoxError> {
    let mut resp = client.get(url).send().await?.error_for_status()?;
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || unpack(ChannelReader::new(rx), &dir));
    let mut compressed = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        compressed += chunk.len() as u64;
        if tx.send(chunk).await.is_err() {
            break; // the writer failed; its error is the one to report
        }
    }
    drop(tx);
    let tar = writer.await??;
    Ok((compressed, tar))
}

/// Inflates `input` and unpacks the tar into `dir` with `tar`'s own unpack, minus the
/// metadata it can skip; returns the tar's length (to its very end).
fn unpack(input: ChannelReader, dir: &Path) -> Result<u64, BoxError> {
    let (decoded, _) = dist_rootfs::decompress(input)?;
    let mut counted = Counted {
        inner: decoded,
        n: 0,
    };
    let mut archive = tar::Archive::new(&mut counted);
    archive.set_preserve_permissions(false);
    archive.set_preserve_mtime(false);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    archive.unpack(dir)?;
    // The end-of-archive blocks and any padding are tar bytes too.
    io::copy(archive.into_inner(), &mut io::sink())?;
    Ok(counted.n)
}

/// Reads the body chunks the download task sends, blocking this (non-async) thread.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.cur = chunk,
                // The download ended (or failed, which its task reports).
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
