//! [`push_handler`]: pushes one descriptor to a [`Pusher`], with its mount candidates,
//! and tells a [`PushObserver`] how it went. [`push`](crate::push) runs it over an image.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dist_content::{Manager, Provider};
use dist_images::Handler;
use oci_spec::image::Descriptor;

use crate::{
    DISTRIBUTION_SOURCE_PREFIX, ErrorKind, PushOutcome, Pusher, Result, SourceLabelHandler,
};

/// What happened to one descriptor of a push, as told to a [`PushObserver`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PushEvent {
    /// The push of `desc` starts.
    Started {
        /// The descriptor (with the mount candidates it was given, if any).
        desc: Descriptor,
    },
    /// `desc` is at the remote.
    Done {
        /// The descriptor.
        desc: Descriptor,
        /// Uploaded, already there, or mounted.
        outcome: PushOutcome,
        /// Its size when uploaded (an upload resumed from a registry's offset sent less),
        /// else 0.
        bytes: u64,
        /// How long its push took.
        elapsed: Duration,
    },
    /// The push of `desc` failed (the error is what [`push`](crate::push) returns).
    Failed {
        /// The descriptor.
        desc: Descriptor,
    },
}

/// Learns the fate of every descriptor a [`PushHandler`] pushes: a progress display
/// shows pushed, mounted and skipped blobs from it.
pub trait PushObserver: Send + Sync {
    /// Called when a descriptor's push starts, ends or fails.
    fn on_event(&self, event: &PushEvent);
}

/// The handler returned by [`push_handler`].
pub struct PushHandler {
    pusher: Arc<dyn Pusher>,
    provider: Arc<dyn Provider>,
    sources: Option<Arc<dyn Manager>>,
    observer: Option<Arc<dyn PushObserver>>,
    destination: Option<Arc<SourceLabelHandler>>,
}

impl std::fmt::Debug for PushHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushHandler")
            .field("source_labels", &self.sources.is_some())
            .field("observer", &self.observer.is_some())
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

/// A handler that pushes each descriptor it is given with `pusher`, reading the bytes
/// from `provider`, and returns no children. It does not order anything:
/// [`push`](crate::push) calls it children first.
pub fn push_handler(pusher: Arc<dyn Pusher>, provider: Arc<dyn Provider>) -> PushHandler {
    PushHandler {
        pusher,
        provider,
        sources: None,
        observer: None,
        destination: None,
    }
}

impl PushHandler {
    /// Before each push, copies the blob's `containerd.io/distribution.source.*` labels
    /// from `manager` into the descriptor's annotations (as containerd's
    /// `annotateDistributionSourceHandler`), where the pusher finds its mount candidates.
    pub fn with_source_labels(mut self, manager: Arc<dyn Manager>) -> Self {
        self.sources = Some(manager);
        self
    }

    /// Tells `observer` when each push starts and how it ended.
    pub fn with_observer(mut self, observer: Arc<dyn PushObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// After each successful push, records the destination on the stored blob with
    /// `labels` (a [`source_label_handler`](crate::source_label_handler) for the name
    /// pushed to), as containerd does after a push: a later push to another repository
    /// of that registry mounts from it. Content the label store does not hold is skipped,
    /// and a label that cannot be written is logged, not an error.
    pub fn with_destination_label(mut self, labels: Arc<SourceLabelHandler>) -> Self {
        self.destination = Some(labels);
        self
    }

    fn tell(&self, event: PushEvent) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }

    /// `desc` with the stored blob's distribution-source labels added as annotations;
    /// unchanged when there is no manager or the blob has none.
    async fn annotated(&self, desc: &Descriptor) -> Result<Descriptor> {
        let Some(manager) = &self.sources else {
            return Ok(desc.clone());
        };
        let info = match manager.info(desc.digest()).await {
            Ok(info) => info,
            // Content the manager does not hold has no labels; the provider may still.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(desc.clone()),
            Err(e) => return Err(e.into()),
        };
        let sources: Vec<(String, String)> = info
            .labels
            .into_iter()
            .filter(|(k, _)| k.starts_with(DISTRIBUTION_SOURCE_PREFIX))
            .collect();
        if sources.is_empty() {
            return Ok(desc.clone());
        }
        let mut desc = desc.clone();
        let mut annotations = desc.annotations().clone().unwrap_or_default();
        annotations.extend(sources);
        desc.set_annotations(Some(annotations));
        Ok(desc)
    }

    /// Pushes `desc`: annotates it, hands it to the pusher, reports the outcome.
    pub async fn push(&self, desc: &Descriptor) -> Result<PushOutcome> {
        let desc = self.annotated(desc).await?;
        self.tell(PushEvent::Started { desc: desc.clone() });
        let started = Instant::now();
        match self.pusher.push(&desc, &*self.provider).await {
            Ok(outcome) => {
                // A hint for later pushes: failing to write it does not fail this one.
                if let Some(labels) = &self.destination
                    && let Err(e) = labels.record(&desc).await
                    && e.kind() != ErrorKind::NotFound
                {
                    tracing::warn!(digest = %desc.digest(), error = %e, "destination label not written");
                }
                let bytes = if outcome == PushOutcome::Pushed {
                    desc.size()
                } else {
                    0
                };
                let elapsed = started.elapsed();
                self.tell(PushEvent::Done {
                    desc,
                    outcome,
                    bytes,
                    elapsed,
                });
                Ok(outcome)
            }
            Err(e) => {
                self.tell(PushEvent::Failed { desc });
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Handler for PushHandler {
    async fn handle(&self, desc: &Descriptor) -> dist_images::Result<Vec<Descriptor>> {
        self.push(desc)
            .await
            .map_err(|e| dist_images::Error::other(e.kind(), e))?;
        Ok(Vec::new())
    }
}
