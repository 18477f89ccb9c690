#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod apply;
mod chain;
mod error;
mod idmap;

pub use apply::{Applied, ApplyOptions, Compression, WhiteoutMode, apply, apply_async};
pub use chain::{ChainId, DiffId, chain_ids};
pub use error::{Error, ErrorKind, Result};
pub use idmap::{IdMap, IdRange};
