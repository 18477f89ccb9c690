//! Image formats and the descriptor graph.
#![forbid(unsafe_code)]

mod error;
mod handler;

pub use error::{Error, ErrorKind, Result};
pub use handler::Handler;
