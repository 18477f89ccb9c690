//! The seed's content commands: `ingest`, `active`, `list`, `path`, `delete`.

use std::time::SystemTime;

use dist::content::{
    DEFAULT_LOCK_WAIT, ErrorKind, Filter, IngestManager, Manager, WriterOpts, open_writer,
};
use oci_spec::image::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::CmdResult;
use crate::progress::human_size;
use crate::root::Root;

/// Parses a digest argument, naming it in the error.
pub fn parse_digest(s: &str) -> CmdResult<Digest> {
    s.parse::<Digest>()
        .map_err(|e| format!("invalid digest {s:?}: {e}").into())
}

/// `ingest`: stdin into the store under `reference`, resuming a partial ingest.
///
/// As containerd's `WriteBlob`, content that is already committed is a success (said on
/// stderr), and a ref another ingest holds is waited for as long as that ingest makes
/// progress (giving up after a minute without any), so the seed's `xargs -P10 dist ingest`
/// pipelines may repeat content and refs freely.
pub async fn ingest(
    root: &Root,
    reference: &str,
    expected_digest: Option<String>,
    expected_size: Option<u64>,
) -> CmdResult {
    let expected = expected_digest.as_deref().map(parse_digest).transpose()?;
    let store = root.content()?;
    if let Some(d) = &expected
        && store.info(d).await.is_ok()
    {
        already_present(d);
        return Ok(());
    }
    let mut opts = WriterOpts::new(reference);
    if let (Some(d), Some(size)) = (&expected, expected_size) {
        opts = opts.expected(oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::Other("application/octet-stream".into()),
            size,
            d.clone(),
        ));
    }
    // The holder of a busy ref is usually a concurrent ingest of the same content: keep
    // waiting while its stored offset grows, so a long download is not cut short.
    let mut seen = store.status(reference).await.ok().map(|s| s.offset);
    let opened = loop {
        match open_writer(&store, opts.clone(), DEFAULT_LOCK_WAIT).await {
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                let now = store.status(reference).await.ok().map(|s| s.offset);
                if now == seen {
                    break Err(e);
                }
                seen = now;
            }
            other => break other,
        }
    };
    let mut writer = match opened {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            if let Some(d) = &expected {
                already_present(d);
            }
            return Ok(());
        }
        other => other?,
    };
    // A resumed ingest already holds `offset` bytes: stdin is the whole content again, so
    // skip what is stored, as the seed's `dist ingest` does.
    let mut stdin = tokio::io::stdin();
    let skip = writer.offset();
    let skipped = tokio::io::copy(&mut (&mut stdin).take(skip), &mut tokio::io::sink()).await?;
    if skipped != skip {
        return Err(format!("stdin ended after {skipped} bytes, before the stored {skip}").into());
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = stdin.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer.write_all(&buf[..n]).await?;
    }
    let size = expected_size.unwrap_or(writer.offset());
    let digest = writer.digest().await?;
    match writer.commit(size, expected.as_ref()).await {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            already_present(&digest);
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Says on stderr that an ingest had nothing to do.
fn already_present(digest: &Digest) {
    eprintln!("{digest}: already in the store, nothing ingested");
}

/// `active`: the in-progress ingests.
pub async fn active(root: &Root) -> CmdResult {
    let store = root.content()?;
    let statuses = store.list_statuses(&Filter::all()).await?;
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>10}",
        "REF", "SIZE", "TOTAL", "STARTED", "UPDATED"
    );
    for s in statuses {
        let total = s.total.map(human_size).unwrap_or_else(|| "-".into());
        println!(
            "{:<40} {:>10} {:>10} {:>10} {:>10}",
            s.reference,
            human_size(s.offset),
            total,
            ago(s.started_at),
            ago(s.updated_at)
        );
    }
    Ok(())
}

/// `list`: committed blobs.
pub async fn list(root: &Root, quiet: bool) -> CmdResult {
    let store = root.content()?;
    let mut infos = Vec::new();
    store
        .walk(&Filter::all(), &mut |info| {
            infos.push(info);
            Ok(())
        })
        .await?;
    infos.sort_by(|a, b| a.digest.as_ref().cmp(b.digest.as_ref()));
    if !quiet {
        println!("{:<71} {:>10} {:>10}", "DIGEST", "SIZE", "AGE");
    }
    for info in infos {
        if quiet {
            println!("{}", info.digest);
        } else {
            println!(
                "{:<71} {:>10} {:>10}",
                info.digest.to_string(),
                human_size(info.size),
                ago(info.created_at)
            );
        }
    }
    Ok(())
}

/// `path`: where each blob lives on disk.
pub fn path(root: &Root, path_only: bool, digests: &[String]) -> CmdResult {
    let store = root.content()?;
    for d in digests {
        let digest = parse_digest(d)?;
        let path = store.blob_path(&digest);
        if !path.exists() {
            return Err(format!("content {digest}: not found").into());
        }
        if path_only {
            println!("{}", path.display());
        } else {
            println!("{digest} {}", path.display());
        }
    }
    Ok(())
}

/// `delete`: remove blobs; a missing one is an error naming it (after the others are gone).
pub async fn delete(root: &Root, digests: &[String]) -> CmdResult {
    let store = root.content()?;
    let mut first_err = None;
    for d in digests {
        let result = match parse_digest(d) {
            Ok(digest) => store.delete(&digest).await.map_err(Into::into),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("error: {e}");
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(_) => Err("some blobs were not deleted".into()),
        None => Ok(()),
    }
}

/// "3 minutes" style age of a time stamp.
pub fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}
