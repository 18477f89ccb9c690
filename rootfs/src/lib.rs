//! Layers into root filesystems.
