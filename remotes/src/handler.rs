//! `fetch_handler`: the images [`Handler`] that copies a descriptor into a content store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dist_content::{Ingester, WriterOpts};
use dist_images::Handler;
use futures::StreamExt;
use oci_spec::image::Descriptor;
use tokio::io::AsyncWriteExt;

use crate::{Error, ErrorKind, FetchOptions, Fetcher, Result};
use dist_images::media_types::{self, MediaKind};

/// The ingest ref for `desc`, as containerd's `MakeRefKey`: `<kind>-<digest>` where kind is
/// `manifest`, `index`, `layer`, `config` or `unknown`. Processes fetching the same
/// descriptor thus share (and lock) one ingest, and a restarted pull resumes it.
pub fn ref_key(desc: &Descriptor) -> String {
    let key = match desc
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
    {
        Some(name) => format!("{name}@{}", desc.digest()),
        None => desc.digest().to_string(),
    };
    let kind = match media_types::kind(desc.media_type()) {
        MediaKind::Manifest => "manifest",
        MediaKind::Index => "index",
        MediaKind::Layer { .. } => "layer",
        MediaKind::Config => "config",
        _ => "unknown",
    };
    format!("{kind}-{key}")
}

/// The handler returned by [`fetch_handler`].
pub struct FetchHandler {
    ingester: Arc<dyn Ingester>,
    fetcher: Arc<dyn Fetcher>,
    lock_wait: Duration,
}

impl std::fmt::Debug for FetchHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchHandler")
            .field("lock_wait", &self.lock_wait)
            .finish_non_exhaustive()
    }
}

/// A handler that fetches each descriptor it is given into `ingester` and returns no
/// children (compose it with the images crate's children handler to walk a graph).
///
/// A partial ingest left by an earlier attempt is resumed from its offset with a ranged
/// fetch; one that is already complete is committed at once; content that already exists
/// counts as success; while another process holds the ingest (`Unavailable`) the handler
/// waits for it, up to 30 seconds by default.
pub fn fetch_handler(ingester: Arc<dyn Ingester>, fetcher: Arc<dyn Fetcher>) -> FetchHandler {
    FetchHandler {
        ingester,
        fetcher,
        lock_wait: Duration::from_secs(30),
    }
}

impl FetchHandler {
    /// How long to wait for an ingest another writer holds before failing `Unavailable`.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Fetches `desc` into the ingester; `Ok` also when it was already there.
    pub async fn fetch(&self, desc: &Descriptor) -> Result<()> {
        let reference = ref_key(desc);
        let opts = WriterOpts::new(reference.clone()).expected(desc.clone());
        let mut writer =
            match dist_content::open_writer(&*self.ingester, opts, self.lock_wait).await {
                Ok(w) => w,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(e.into()),
            };
        let size = desc.size();
        let mut offset = writer.offset();
        if offset > size {
            writer.truncate(0).await?;
            offset = 0;
        }
        if offset < size {
            // The writer hashes every byte and refuses to commit a mismatch: the stream
            // need not hash them too.
            let options = FetchOptions::default().caller_checks_digest();
            let mut body = self.fetcher.fetch_at_with(desc, offset, options).await?;
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        if e.kind() == ErrorKind::FailedPrecondition {
                            // Wrong content must not be resumed from later.
                            writer.truncate(0).await?;
                        }
                        return Err(e);
                    }
                };
                writer.write_all(&chunk).await.map_err(|e| Error::Io {
                    context: format!("writing ingest {reference}"),
                    source: e,
                })?;
            }
            writer.flush().await.map_err(|e| Error::Io {
                context: format!("writing ingest {reference}"),
                source: e,
            })?;
        }
        match writer.commit(size, Some(desc.digest())).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => {
                if e.kind() == ErrorKind::FailedPrecondition {
                    self.discard(&reference, desc).await;
                }
                Err(e.into())
            }
        }
    }

    /// Empties an ingest whose data turned out wrong, so the next attempt starts afresh.
    async fn discard(&self, reference: &str, desc: &Descriptor) {
        let opts = WriterOpts::new(reference).expected(desc.clone());
        if let Ok(mut w) = self.ingester.writer(opts).await
            && let Err(e) = w.truncate(0).await
        {
            tracing::warn!(reference, error = %e, "could not reset ingest");
        }
    }
}

#[async_trait]
impl Handler for FetchHandler {
    async fn handle(&self, desc: &Descriptor) -> dist_images::Result<Vec<Descriptor>> {
        self.fetch(desc)
            .await
            .map_err(|e| dist_images::Error::other(e.kind(), e))?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;
    use std::collections::HashMap;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn ref_keys_follow_containerd_make_ref_key() {
        let d = |mt: &str| {
            Descriptor::new(
                MediaType::from(mt),
                5,
                D.parse::<oci_spec::image::Digest>().unwrap(),
            )
        };
        let cases = [
            ("application/vnd.oci.image.manifest.v1+json", "manifest"),
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "manifest",
            ),
            ("application/vnd.oci.image.index.v1+json", "index"),
            (
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "index",
            ),
            ("application/vnd.oci.image.layer.v1.tar+gzip", "layer"),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", "layer"),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
                "layer",
            ),
            ("application/vnd.oci.image.config.v1+json", "config"),
            ("application/vnd.docker.container.image.v1+json", "config"),
            ("text/plain", "unknown"),
        ];
        for (mt, kind) in cases {
            assert_eq!(ref_key(&d(mt)), format!("{kind}-{D}"), "{mt}");
        }
        let mut named = d("application/vnd.oci.image.manifest.v1+json");
        named.set_annotations(Some(HashMap::from([(
            "org.opencontainers.image.ref.name".to_string(),
            "v1".to_string(),
        )])));
        assert_eq!(ref_key(&named), format!("manifest-v1@{D}"));
    }
}
