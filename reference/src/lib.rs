//! Container image references.
#![forbid(unsafe_code)]
