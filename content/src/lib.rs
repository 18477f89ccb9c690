//! Content-addressed blob storage.
#![forbid(unsafe_code)]

mod copy;
mod digest;
mod error;
mod filter;
mod local;
mod read;
pub mod testsuite;
mod traits;

pub use copy::{copy, write_blob};
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use local::{LocalReaderAt, LocalStore};
pub use read::{ReaderAtReader, read_blob, reader};
pub use traits::{
    Info, IngestManager, Ingester, Manager, Provider, ReaderAt, Status, Store, Writer, WriterOpts,
};
