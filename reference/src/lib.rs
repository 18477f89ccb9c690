#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

/// Why a string is not a reference: [`Error`], [`DigestProblem`].
mod error;
/// The grammar's productions as hand-written linear matchers, and its limits.
mod grammar;
/// [`ErrorKind`]: the kinds shared by every dist crate's errors.
mod kind;
/// Docker's defaults: [`normalize`], [`familiar_name`], [`familiar_string`].
mod normalize;
/// [`Reference`]: `[domain/]path[:tag][@digest]`, parsed and validated.
mod reference;
/// [`Spec`]: containerd's `locator` + `object` split of a host-qualified reference.
mod spec;

pub use error::{DigestProblem, Error};
pub use grammar::{NAME_MAX_LEN, TAG_MAX_LEN};
pub use kind::ErrorKind;
pub use normalize::{
    DEFAULT_DOMAIN, DEFAULT_TAG, LEGACY_DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX, familiar_name,
    familiar_string, normalize,
};
pub use reference::Reference;
pub use spec::Spec;
