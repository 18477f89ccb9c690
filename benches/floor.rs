//! The floor of a pull: only the work no pull can avoid, for `benches/e2e.sh` to divide
//! pull times by. It fetches the manifest, downloads every layer at once, inflates each with
//! the inflate dist-rootfs uses (`dist_rootfs::decompress`) and writes its entries into
//! their own directory, `OUT/<index>/`, as overlay keeps layers, with plain `open`/`write`,
//! `mkdir`, `symlink` and `link` calls. Nothing else: no digest checks, no content store,
//! no snapshots, no path checks, no whiteout handling (`.wh.` files are written as plain
//! files), and no metadata (permissions, owners, times, xattrs) beyond what creating the
//! files does.
//!
//! Each layer streams: the download task hands body chunks through a small bounded channel
//! to a blocking thread that inflates and writes, so no layer is held in memory.
//!
//! With `--verify` it also does the one thing a safe pull may not skip: SHA-256 of every
//! compressed layer (checked against the manifest) and of every tar stream (checked
//! against the config's DiffIDs), in the threads that inflate; the e2e report divides by
//! both floors.
//!
//! Usage (plain HTTP, no auth):
//! `floor --registry 127.0.0.1:PORT --repository REPO --reference TAG --out DIR [--concurrency N] [--verify]`
//! Prints `floor: N layers, X bytes compressed, Y bytes of tar, T s`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
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
    /// Also hash every layer (compressed and uncompressed) and check both digests.
    #[arg(long)]
    verify: bool,
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
    let (layers, compressed, tar) = rt.block_on(floor(
        &base,
        &reference,
        &out,
        args.concurrency,
        args.verify,
    ))?;
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
    verify: bool,
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
    let diff_ids: Vec<Option<String>> = if verify {
        let config = manifest["config"]["digest"]
            .as_str()
            .ok_or("the manifest has no config")?;
        let config = get_json(&client, &format!("{base}/blobs/{config}")).await?;
        let ids = config["rootfs"]["diff_ids"]
            .as_array()
            .ok_or("the config has no DiffIDs")?;
        ids.iter().map(|d| d.as_str().map(str::to_owned)).collect()
    } else {
        vec![None; digests.len()]
    };
    if diff_ids.len() != digests.len() {
        return Err("the config's DiffIDs do not match the layers".into());
    }

    let permits = Arc::new(Semaphore::new(concurrency.unwrap_or(digests.len()).max(1)));
    let mut tasks = Vec::new();
    for (i, (digest, diff_id)) in digests.iter().zip(diff_ids).enumerate() {
        let dir = out.join(i.to_string());
        std::fs::create_dir_all(&dir)?;
        let url = format!("{base}/blobs/{digest}");
        let (client, permits) = (client.clone(), permits.clone());
        let check = diff_id.map(|d| (digest.clone(), d));
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            layer(&client, &url, dir, check).await
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
/// (compressed bytes, tar bytes). With `check` (digest, DiffID), hashes both streams in
/// that thread and fails on a mismatch.
async fn layer(
    client: &reqwest::Client,
    url: &str,
    dir: PathBuf,
    check: Option<(String, String)>,
) -> Result<(u64, u64), BoxError> {
    let mut resp = client.get(url).send().await?.error_for_status()?;
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let hashing = check.is_some();
    let writer = tokio::task::spawn_blocking(move || {
        let mut input = ChannelReader::new(rx, hashing);
        let (tar, diff_id) = unpack(&mut input, &dir, hashing)?;
        if let (Some((digest, want_diff_id)), Some(blob), Some(diff_id)) =
            (check, input.hasher.take(), diff_id)
            && (sha256(blob) != digest || sha256(diff_id) != want_diff_id)
        {
            return Err::<u64, BoxError>(format!("{digest}: digest or DiffID mismatch").into());
        }
        Ok(tar)
    });
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

/// Inflates `input` and writes the tar's entries into `dir` with the fewest syscalls a
/// writer can get away with: one `open` + `write`s per file, one `mkdir` per directory,
/// one `symlink` or `link` per link; no path checks, no metadata, no permissions, no
/// times. (`tar::Archive::unpack` canonicalizes every parent and measured slower than
/// `dist pull` itself, so it was no floor.) Returns the tar's length (to its very end).
fn unpack(
    input: &mut ChannelReader,
    dir: &Path,
    hashing: bool,
) -> Result<(u64, Option<Sha256>), BoxError> {
    let (decoded, _) = dist_rootfs::decompress(input)?;
    let mut counted = Counted {
        inner: decoded,
        n: 0,
        hasher: hashing.then(Sha256::new),
    };
    let mut archive = tar::Archive::new(&mut counted);
    std::fs::create_dir_all(dir)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let rel = entry.path()?.into_owned();
        let path = dir.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => match std::fs::create_dir(&path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                other => with_parents(&path, || std::fs::create_dir(&path).map(|_| ()), other)?,
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut file = match std::fs::File::create(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
                        std::fs::File::create(&path)?
                    }
                    Err(e) => return Err(e.into()),
                };
                io::copy(&mut entry, &mut file)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name()?.unwrap_or_default().into_owned();
                let _ = std::fs::remove_file(&path);
                let made = std::os::unix::fs::symlink(&target, &path);
                with_parents(&path, || std::os::unix::fs::symlink(&target, &path), made)?;
            }
            tar::EntryType::Link => {
                let source = dir.join(entry.link_name()?.unwrap_or_default());
                let _ = std::fs::remove_file(&path);
                let made = std::fs::hard_link(&source, &path);
                with_parents(&path, || std::fs::hard_link(&source, &path), made)?;
            }
            // Devices, fifos and the rest carry no data: nothing a floor must write.
            _ => {}
        }
    }
    // The end-of-archive blocks and any padding are tar bytes too.
    io::copy(archive.into_inner(), &mut io::sink())?;
    Ok((counted.n, counted.hasher))
}

fn sha256(h: Sha256) -> String {
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Retries `make` once after creating `path`'s parents when `first` failed for want of
/// them (an archive that lists a file before its directory).
fn with_parents(
    path: &Path,
    make: impl Fn() -> io::Result<()>,
    first: io::Result<()>,
) -> io::Result<()> {
    match first {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            make()
        }
        other => other,
    }
}

/// Reads the body chunks the download task sends, blocking this (non-async) thread;
/// hashes them when asked.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
    hasher: Option<Sha256>,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Bytes>, hashing: bool) -> Self {
        ChannelReader {
            rx,
            cur: Bytes::new(),
            hasher: hashing.then(Sha256::new),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    if let Some(h) = &mut self.hasher {
                        h.update(&chunk);
                    }
                    self.cur = chunk;
                }
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

/// Counts (and, when asked, hashes) the bytes read through it.
struct Counted<R> {
    inner: R,
    n: u64,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
