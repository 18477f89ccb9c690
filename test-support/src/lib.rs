//! Test harness for dist-rs: real registries and fault servers on loopback.
