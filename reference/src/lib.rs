#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

mod error;
mod grammar;
mod normalize;
mod reference;
mod spec;

pub use error::{DigestProblem, Error};
pub use grammar::{NAME_MAX_LEN, TAG_MAX_LEN};
pub use normalize::{
    DEFAULT_DOMAIN, DEFAULT_TAG, LEGACY_DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX, familiar_name,
    familiar_string, normalize,
};
pub use reference::Reference;
pub use spec::Spec;
