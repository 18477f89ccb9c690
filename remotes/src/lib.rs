//! Registry access: resolve references and fetch content.
#![forbid(unsafe_code)]
