#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod auth;
mod docker;
mod error;
mod fetcher;
mod handler;
mod hosts;
mod layout;
mod pusher;
mod resolver;
mod retry;
mod verify;

pub use auth::{Anonymous, Credential, Credentials, DockerConfig, StaticCredentials};
pub use docker::{
    DEFAULT_MAX_MANIFEST_SIZE, DEFAULT_MAX_STALLS, DEFAULT_REQUEST_TIMEOUT, DockerFetcher,
    DockerPusher, DockerResolver, ParallelFetch, ResolverOptions, UploadOptions,
};
pub use error::{Error, ErrorKind, Result};
pub use fetcher::{ByteStream, FetchEvent, FetchObserver, Fetcher};
pub use handler::{FetchHandler, fetch_handler, ref_key};
pub use hosts::{
    Capabilities, DOCKER_HUB, DOCKER_HUB_API, HostsConfig, HostsFile, RegistryHost, Scheme,
    TlsOptions, is_loopback,
};
pub use layout::{LAYOUT_PREFIX, LayoutFetcher, LayoutLocator, LayoutPusher, LayoutResolver};
pub use pusher::{DISTRIBUTION_SOURCE_PREFIX, PushOutcome, Pusher};
pub use resolver::Resolver;
pub use retry::RetryPolicy;
pub use verify::verified;
