//! Fuzzes what a registry's authentication sends: `WWW-Authenticate` values
//! (`dist_remotes::auth::parse_www_authenticate`) and token-server bodies
//! (`dist_remotes::auth::parse_token_response`). Neither may panic (overflow included),
//! a parsed challenge has a lower-case, non-empty scheme, errors stay short (they quote an
//! elided snippet), and a token's lifetime stays within its clamp.
//!
//! Run by hand: `cargo +nightly fuzz run www_authenticate` from this directory.
#![no_main]

use std::time::{Duration, SystemTime};

use dist_remotes::auth::{
    MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, parse_token_response, parse_www_authenticate,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = std::str::from_utf8(data) {
        match parse_www_authenticate(value) {
            Ok(challenges) => {
                assert!(!challenges.is_empty());
                for c in &challenges {
                    assert!(!c.scheme.is_empty());
                    assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
                    for name in c.params.keys() {
                        assert_eq!(*name, name.to_ascii_lowercase());
                    }
                }
            }
            Err(e) => assert!(e.to_string().len() < 1024, "error too long"),
        }
    }
    // The same bytes as a token response, at a fixed instant and at the clock's extremes.
    for now in [
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645),
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 64),
    ] {
        match parse_token_response(data, now) {
            Ok(t) => {
                assert!(t.lifetime >= MIN_TOKEN_LIFETIME && t.lifetime <= MAX_TOKEN_LIFETIME);
                assert!(!t.token.is_empty() && t.token.bytes().all(|b| b.is_ascii_graphic()));
            }
            Err(e) => assert!(e.to_string().len() < 1024, "error too long"),
        }
    }
});
