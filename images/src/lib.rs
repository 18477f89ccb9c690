#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod archive;
mod children;
mod error;
mod filters;
pub mod gc;
mod handler;
mod image;
mod limits;
pub mod media_types;
pub mod platforms;
mod store;
mod walk;

pub use children::{
    ChildrenHandler, children, children_of, children_of_with, parse_index, parse_manifest,
    read_blob, read_index, read_manifest,
};
pub use error::{Error, ErrorKind, Result};
pub use filters::{FilterPlatforms, LimitManifests, filter_platforms, limit_manifests};
pub use gc::{attach_to_lease, label_stored_graph, set_children_labels};
pub use handler::{Handler, HandlerFunc, Handlers};
pub use image::{Check, Image, Layer, PlatformManifest};
pub use limits::{Limits, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
pub use platforms::{Matcher, PlatformMatcher};
pub use store::{FsImageStore, ImageStore, escape_name};
pub use walk::{MAX_DEPTH, dispatch, walk};
