//! Test harness for dist-rs: real registries and fault servers on loopback.
//!
//! - [`Registry`] runs Debian's `docker-registry` on `127.0.0.1` in one of three
//!   [`AuthMode`]s (none, `htpasswd`, token auth with an in-process [`TokenIssuer`]);
//! - [`OciLayout`] builds OCI image layouts (tar layers, configs, manifests, indexes) and
//!   [`Registry::push`] copies them in with `skopeo`;
//!   [`Registry::start_with_access_log`] logs requests, and [`AccessLog`] counts the blob
//!   bytes uploaded and the mounts from it;
//! - [`Containerd`] runs a throwaway containerd daemon for `ctr` interop checks;
//! - [`FerroRegistry`] runs `ferro-oci-server`, a second, independent OCI 1.1 registry;
//! - [`FaultServer`] is a scriptable HTTP/1.1 server for what a real registry will not do
//!   (resets, stalls, wrong bytes, redirects, odd headers);
//! - [`HostileRegistry`] is a whole scripted `/v2/` registry that misbehaves per route
//!   (lying or absurd lengths, endless and stalled bodies, garbage challenges) and records
//!   every request with its headers; [`header_bomb_layer`] builds tar header bombs;
//! - [`CountingProxy`] forwards to a real registry, counting request bytes per method and
//!   path, and injects a status, a reset or a hang into a chosen `PATCH`.
//!
//! - [`conformance`] ports the categories of the OCI distribution-spec conformance suite
//!   (push, discovery, management) as raw HTTP steps, with per-registry expectations.
//!
//! Every server is bound to loopback with an ephemeral port and stops when dropped.
#![forbid(unsafe_code)]

mod access_log;
mod bomb;
pub mod conformance;
mod containerd;
mod error;
mod fault;
mod ferro;
mod hostile;
mod http;
mod layout;
mod proxy;
mod registry;
mod token;

pub use access_log::{Access, AccessLog};
pub use bomb::{BombKind, header_bomb_layer};
pub use containerd::Containerd;
pub use error::{Error, Result};
pub use fault::{FaultServer, Reply, Request, parse_range};
pub use ferro::{FerroRegistry, ferro_binary};
pub use hostile::{
    Body, ENDLESS_CAP, HostileRegistry, OCI_INDEX, OCI_MANIFEST, Response, Served, host_arch,
    image_json, sha256,
};
pub use layout::{Built, OciLayout, Platform};
pub use proxy::{CountingProxy, Fault, Seen};
pub use registry::{AuthMode, PASSWORD, Push, Registry, USERNAME};
pub use token::{REFRESH_TOKEN, TokenIssuer};
