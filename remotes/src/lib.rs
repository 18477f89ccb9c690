#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

pub mod auth;
mod docker;
mod error;
mod error_code;
mod fetcher;
mod handler;
mod hosts;
mod layout;
mod push_flow;
mod push_handler;
mod pusher;
mod referrers;
mod resolver;
mod retry;
mod signature;
mod source_label;
mod verify;

pub use auth::{Anonymous, Credential, Credentials, DockerConfig, StaticCredentials};
pub use docker::{
    DEFAULT_MAX_MANIFEST_SIZE, DEFAULT_MAX_STALLS, DEFAULT_REQUEST_TIMEOUT, DockerFetcher,
    DockerPusher, DockerReferrers, DockerResolver, FallbackUpdate, ListOptions, ParallelFetch,
    RegistryRepository, ResolverOptions, UploadOptions,
};
pub use error::{Error, ErrorKind, Result};
pub use error_code::ErrorCode;
pub use fetcher::{ByteStream, FetchEvent, FetchObserver, FetchOptions, Fetcher};
pub use handler::{FetchHandler, fetch_handler, ref_key};
pub use hosts::{
    Capabilities, DOCKER_HUB, DOCKER_HUB_API, HostsConfig, HostsFile, RegistryHost, Scheme,
    TlsOptions, is_loopback,
};
pub use layout::{LAYOUT_PREFIX, LayoutFetcher, LayoutLocator, LayoutPusher, LayoutResolver};
pub use push_flow::{DEFAULT_PUSH_CONCURRENCY, PushOptions, PushPlatforms, push};
pub use push_handler::{PushEvent, PushHandler, PushObserver, push_handler};
pub use pusher::{DISTRIBUTION_SOURCE_PREFIX, PushOutcome, Pusher};
pub use referrers::{
    MAX_REFERRERS_PAGES, Referrers, artifact_type_of, referrers_tag, signature_tag,
};
pub use resolver::Resolver;
pub use retry::RetryPolicy;
pub use signature::{
    COSIGN_SIGNATURE_ANNOTATION, CosignVerifier, Verifier, VerifyError, verify_image,
};
pub use source_label::{
    MAX_SOURCE_LABEL_LEN, SourceLabelHandler, append_source, source_label_handler, source_label_key,
};
pub use verify::verified;
