#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod apply;
mod chain;
mod copy_mounted;
mod error;
mod flatten;
mod gc;
mod idmap;
mod layers;
mod snapshot;

pub use apply::{
    Applied, ApplyOptions, Compression, GZIP_INFLATE, Limit, MAX_PAX_RECORDS, MAX_SPECIAL_HEADER,
    MAX_XATTRS, WhiteoutMode, apply, apply_async, decompress,
};
pub use chain::{ChainId, DiffId, chain_ids};
pub use copy_mounted::{copy_mounted, reflink_supported};
pub use error::{Error, ErrorKind, Result};
pub use flatten::{
    Flattened, SCAN_SHARE_PERCENT, ScanAhead, Unpacked, apply_flattened, apply_flattened_with,
    unpack,
};
pub use gc::{
    DEFAULT_INGEST_MAX_AGE, GcOptions, GcReport, NamedSnapshotter, Removed, RemovedKind,
    collect_garbage,
};
pub use idmap::{IdMap, IdRange};
pub use layers::{
    DEFAULT_UNPACK_CONCURRENCY, EXTRACT_KEY_PREFIX, Layer, UnpackOptions, apply_layers,
    apply_layers_with,
};
pub use snapshot::{
    Info as SnapshotInfo, Kind as SnapshotKind, Mount, NativeSnapshotter, OverlaySnapshotter,
    Share, Snapshotter, Usage,
};
