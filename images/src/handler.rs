//! The descriptor [`Handler`]: one step of walking an image graph.

use async_trait::async_trait;
use oci_spec::image::Descriptor;

use crate::Result;

/// Handles one descriptor and returns its children (the descriptors to visit next).
///
/// Return [`Error::SkipChildren`](crate::Error::SkipChildren) to stop descending below
/// this descriptor without failing the walk.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Handles `desc`; the returned descriptors are visited after it.
    async fn handle(&self, desc: &Descriptor) -> Result<Vec<Descriptor>>;
}
