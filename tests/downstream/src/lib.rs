//! A runtime's own implementations of dist-rs's traits, written against the public API of
//! the `dist` facade only:
//!
//! - [`MemoryStore`]: a content store in memory (`Provider` + `Ingester`), the mirror a
//!   pull fetches into;
//! - [`MemoryRegistry`]: a registry in memory (`Resolver` + `Fetcher`) serving any blob it
//!   was given, verified against the descriptor before a byte is served;
//! - [`DirSnapshotter`]: each snapshot a plain directory; `prepare` copies the parent.
//!
//! `tests/pull.rs` runs a whole pull with them through the library's handlers and
//! `apply_layers`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod registry;
mod snapshotter;
mod store;

use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::Digest as _;

pub use registry::MemoryRegistry;
pub use snapshotter::DirSnapshotter;
pub use store::MemoryStore;

/// The digest of `data` under `algorithm`; `None` for an algorithm this crate cannot
/// compute (dist-rs keeps its own hasher crate-private, so a downstream brings its own).
pub fn digest_of(algorithm: &DigestAlgorithm, data: &[u8]) -> Option<Digest> {
    let hex = match algorithm {
        DigestAlgorithm::Sha256 => hex::encode(sha2::Sha256::digest(data)),
        DigestAlgorithm::Sha384 => hex::encode(sha2::Sha384::digest(data)),
        DigestAlgorithm::Sha512 => hex::encode(sha2::Sha512::digest(data)),
        _ => return None,
    };
    Digest::try_from(format!("{algorithm}:{hex}")).ok()
}
