//! Fuzzes reference parsing (`Reference::parse`, `normalize`, `Spec::parse`): none may
//! panic, and what parses must survive a round trip through its own string form.
#![no_main]

use dist_reference::{Reference, Spec, familiar_string, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        let again = Reference::parse(r.as_str()).expect("a parsed reference re-parses");
        assert_eq!(again.as_str(), r.as_str());
        let _ = (r.domain(), r.path(), r.name(), r.tag(), r.digest(), r.trim());
        let _ = r.with_tag("latest");
    }
    if let Ok(n) = normalize(s) {
        assert!(n.domain().is_some(), "normalize gives a domain: {n:?}");
        let again = normalize(n.as_str()).expect("a normalised reference normalises");
        assert_eq!(again.as_str(), n.as_str(), "normalize is idempotent");
        let familiar = familiar_string(&n);
        let back = normalize(&familiar).expect("the familiar form normalises");
        assert_eq!(back.as_str(), n.as_str(), "familiar form {familiar:?} round-trips");
    }
    if let Ok(spec) = Spec::parse(s) {
        let _ = (spec.hostname(), spec.repository(), spec.tag(), spec.digest());
    }
});
