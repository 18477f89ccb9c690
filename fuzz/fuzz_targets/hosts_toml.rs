//! Fuzzes containerd `hosts.toml` parsing (`dist_remotes::HostsFile::parse`) and the
//! endpoint list built from it: no panic, an error that stays one short line, and an
//! endpoint list that ends with the origin (or `server`).
//!
//! Run by hand: `cargo +nightly fuzz run hosts_toml` from this directory.
#![no_main]

use std::path::Path;

use dist_remotes::{HostsConfig, HostsFile, RegistryHost};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/containerd/certs.d/registry.example/hosts.toml");
    match HostsFile::parse(text, path) {
        Ok(file) => {
            let direct = file.endpoints(RegistryHost::new("registry.example"));
            assert!(!direct.is_empty(), "the origin (or server) is always last");
            let hosts = HostsConfig::new()
                .with_hosts_file("registry.example", file)
                .hosts("registry.example")
                .expect("a parsed file always gives endpoints");
            assert_eq!(hosts, direct);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "error spans lines");
            assert!(msg.len() < 1024, "error too long");
        }
    }
});
