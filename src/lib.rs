//! dist-rs: container image distribution in Rust.
//!
//! This facade re-exports the five crates so a runtime can take one dependency:
//!
//! - [`reference`](mod@reference): parse and normalise image references.
//! - [`content`]: the content-addressed store.
//! - [`images`]: media types, descriptor handlers, platforms, images.
//! - [`remotes`]: resolve and fetch from registries.
//! - [`rootfs`]: apply layers, chain IDs, snapshotters.
//!
//! There is no `pull()`: the pull flow is assembled from these parts in `examples/dist.rs`.
#![forbid(unsafe_code)]

pub use dist_content as content;
pub use dist_images as images;
pub use dist_reference as reference;
pub use dist_remotes as remotes;
pub use dist_rootfs as rootfs;
