//! The [`Pusher`] trait: send one descriptor's content to a remote.

use async_trait::async_trait;
use dist_content::Provider;
use oci_spec::image::Descriptor;

use crate::Result;

/// What a push of one descriptor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The bytes were uploaded.
    Pushed,
    /// The remote already had the content (and, for a tag, the tag already named it):
    /// nothing was uploaded.
    AlreadyPresent,
    /// The blob was mounted from another repository of the same registry: nothing was
    /// uploaded.
    Mounted,
}

/// The label (on stored content) and annotation (on a descriptor given to a [`Pusher`])
/// prefix naming where a blob came from, as containerd names it:
/// `containerd.io/distribution.source.<host>=<repo>[,<repo>…]`. A pusher to `<host>` tries
/// to mount the blob from those repositories before uploading it.
pub const DISTRIBUTION_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";

/// Sends content to one repository of a remote, as containerd's `remotes.Pusher`.
///
/// A pusher takes the bytes from any [`Provider`] by descriptor, so a local store, a
/// layout on disk or a memory map can all be the source. It pushes one object at a time;
/// the caller orders children before parents (blobs, then manifests, then indexes), as a
/// registry refuses a manifest whose blobs it does not have.
#[async_trait]
pub trait Pusher: Send + Sync {
    /// Pushes `desc`, read from `provider`, unless the remote already has it. Manifests
    /// and indexes go under the pusher's tag when it has one, else under their digest.
    async fn push(&self, desc: &Descriptor, provider: &dyn Provider) -> Result<PushOutcome>;
}
