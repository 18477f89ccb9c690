//! dist-rs: container image distribution in Rust.
//!
//! This facade re-exports the five crates so a runtime can take one dependency:
//!
//! - [`reference`](mod@reference): parse and normalise image references.
//! - [`content`]: the content-addressed store.
//! - [`images`]: media types, descriptor handlers, platforms, images.
//! - `remotes` (feature `remotes`): resolve and fetch from registries.
//! - `rootfs` (feature `rootfs`): apply layers, chain IDs, snapshotters.
//!
//! There is no `pull()`: the pull flow is assembled from these parts in `examples/dist/`.
//!
//! # Features
//!
//! The default features keep everything, with rustls on aws-lc-rs. A runtime that only
//! needs the content store and images turns them off and builds without HTTP or TLS:
//!
//! ```toml
//! dist = { version = "0.1", default-features = false }
//! ```
//!
//! - `remotes`: `dist::remotes` (reqwest with rustls, HTTP/1.1 and HTTP/2).
//! - `rootfs`: `dist::rootfs`.
//! - `aws-lc-rs` (default) or `ring`: rustls' crypto provider; either implies `remotes`.
//!   With both, aws-lc-rs wins; a provider the application installs process-wide
//!   (`rustls::crypto::CryptoProvider::install_default`) wins over both.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The OCI types every trait speaks (`Descriptor`, `Digest`, `Manifest`, ...), re-exported so
/// that a crate implementing the traits uses exactly the version the library was built with.
pub use oci_spec;

pub use dist_content as content;
pub use dist_images as images;
pub use dist_reference as reference;
#[cfg(feature = "remotes")]
pub use dist_remotes as remotes;
#[cfg(feature = "rootfs")]
pub use dist_rootfs as rootfs;
