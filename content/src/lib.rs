#![doc = include_str!("../README.md")]
#![doc(test(attr(deny(warnings))))]
#![forbid(unsafe_code)]

// The interfaces, their errors and filters.
mod error;
mod filter;
mod traits;

// The local filesystem store, its leases, and the OCI image layout built on it.
mod layout;
mod lease;
mod local;

// Helpers over any store: reading, copying, digests.
mod copy;
mod digest;
mod elide;
mod read;

// A conformance suite for any `Store` implementation.
pub mod testsuite;

pub use self::digest::{Algorithm, Digester, digest_of, hasher_for, sha256_of};
pub use copy::{DEFAULT_LOCK_WAIT, copy, open_writer, write_blob};
pub use elide::{ELIDE_LIMIT, Elided, elide};
pub use error::{Error, ErrorKind, Result};
pub use filter::Filter;
pub use layout::{
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, INDEX_FILE, LAYOUT_VERSION, LayoutStore,
    OCI_LAYOUT_FILE, ref_names,
};
pub use lease::{
    CollectionLock, DEFAULT_LEASE_GRACE, LABEL_GC_EXPIRE, Lease, LeaseInfo, LeaseOptions, Leases,
    RESOURCE_CONTENT, RESOURCE_INGEST, RESOURCE_SNAPSHOT_PREFIX, Resource, parse_expire,
};
pub use local::{Follow, FollowError, FollowOptions, FollowReader, LocalReaderAt, LocalStore};
pub use read::{ReaderAtReader, read_blob, reader};
pub use traits::{
    Info, IngestManager, Ingester, LabelMerge, Manager, Provider, ReaderAt, Status, Store, Writer,
    WriterOpts,
};
