//! Test harness for dist-rs: real registries and fault servers on loopback.
//!
//! - [`Registry`] runs Debian's `docker-registry` on `127.0.0.1` in one of three
//!   [`AuthMode`]s (none, `htpasswd`, token auth with an in-process [`TokenIssuer`]);
//! - [`OciLayout`] builds OCI image layouts (tar layers, configs, manifests, indexes) and
//!   [`Registry::push`] copies them in with `skopeo`;
//! - [`FaultServer`] is a scriptable HTTP/1.1 server for what a real registry will not do
//!   (resets, stalls, wrong bytes, redirects, odd headers).
//!
//! Every server is bound to loopback with an ephemeral port and stops when dropped.
#![forbid(unsafe_code)]

mod error;
mod fault;
mod http;
mod layout;
mod registry;
mod token;

pub use error::{Error, Result};
pub use fault::{FaultServer, Reply, Request, parse_range};
pub use layout::{Built, OciLayout, Platform};
pub use registry::{AuthMode, PASSWORD, Push, Registry, USERNAME};
pub use token::{REFRESH_TOKEN, TokenIssuer};
