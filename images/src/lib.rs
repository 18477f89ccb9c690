#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod children;
mod error;
mod filters;
mod handler;
mod image;
pub mod media_types;
pub mod platforms;
mod store;
mod walk;

pub use children::{
    ChildrenHandler, MAX_MANIFEST_SIZE, children, children_of, parse_index, parse_manifest,
    read_blob, read_index, read_manifest,
};
pub use error::{Error, ErrorKind, Result};
pub use filters::{FilterPlatforms, LimitManifests, filter_platforms, limit_manifests};
pub use handler::{Handler, HandlerFunc, Handlers};
pub use image::{Check, Image, Layer, MAX_CONFIG_SIZE, PlatformManifest};
pub use platforms::{Matcher, PlatformMatcher};
pub use store::{FsImageStore, ImageStore, escape_name};
pub use walk::{MAX_DEPTH, dispatch, walk};
