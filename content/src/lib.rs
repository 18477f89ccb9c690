//! Content-addressed blob storage.
#![forbid(unsafe_code)]

mod error;
mod filter;
mod traits;

pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use traits::{
    Info, IngestManager, Ingester, Manager, Provider, ReaderAt, Status, Store, Writer, WriterOpts,
};
