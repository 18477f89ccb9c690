//! [`Limits`]: how much of a manifest, index or config any reader of this crate takes into
//! memory. One value, configured once, handed to every reader (the [`children`] handler,
//! [`Image`]'s methods, and `dist-remotes`' `ResolverOptions::with_limits`).
//!
//! [`children`]: crate::children
//! [`Image`]: crate::Image

/// The largest manifest or index read into memory by default (4 MiB, the bound registries
/// and containerd use for manifests).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// The largest image configuration read into memory by default (configs with long
/// histories can be bigger than manifests).
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// Size limits for the documents read whole into memory. Larger ones are refused before a
/// byte is read (`InvalidArgument`), so a hostile descriptor cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// The largest manifest or index, in bytes.
    pub max_manifest_size: u64,
    /// The largest image configuration, in bytes.
    pub max_config_size: u64,
}

impl Limits {
    /// [`MAX_MANIFEST_SIZE`] and [`MAX_CONFIG_SIZE`].
    pub const DEFAULT: Limits = Limits {
        max_manifest_size: MAX_MANIFEST_SIZE,
        max_config_size: MAX_CONFIG_SIZE,
    };

    /// With manifests and indexes of up to `bytes`.
    pub const fn with_max_manifest_size(mut self, bytes: u64) -> Limits {
        self.max_manifest_size = bytes;
        self
    }

    /// With configs of up to `bytes`.
    pub const fn with_max_config_size(mut self, bytes: u64) -> Limits {
        self.max_config_size = bytes;
        self
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}
