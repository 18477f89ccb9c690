//! Property tests: every reference built from the grammar parses to its parts and prints
//! back to the same text, and arbitrary input never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_reference::{NAME_MAX_LEN, Reference, Spec, familiar_string, normalize};
use proptest::prelude::*;

fn path_component() -> impl Strategy<Value = String> {
    let alnum = "[a-z0-9]{1,6}";
    let separator = prop_oneof![
        Just(".".to_owned()),
        Just("_".into()),
        Just("__".into()),
        "-{1,3}"
    ];
    (alnum, prop::collection::vec((separator, alnum), 0..3)).prop_map(|(first, rest)| {
        let mut s = first;
        for (sep, part) in rest {
            s.push_str(&sep);
            s.push_str(&part);
        }
        s
    })
}

fn domain() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?";
    let host = prop_oneof![
        3 => prop::collection::vec(label, 1..4).prop_map(|labels| labels.join(".")),
        1 => "[0-9a-f:]{1,12}".prop_map(|ip| format!("[{ip}]")),
        1 => Just("localhost".to_owned()),
    ];
    (host, prop::option::of(0u32..70000)).prop_map(|(host, port)| match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
        "[0-9a-f]{96}".prop_map(|h| format!("sha384:{h}")),
        "[0-9a-f]{128}".prop_map(|h| format!("sha512:{h}")),
    ]
}

/// (domain, path, tag, digest) of a valid reference.
fn parts() -> impl Strategy<Value = (Option<String>, String, Option<String>, Option<String>)> {
    (
        prop::option::of(domain()),
        prop::collection::vec(path_component(), 1..4),
        prop::option::of(tag()),
        prop::option::of(digest()),
    )
        .prop_map(|(domain, path, tag, digest)| (domain, path.join("/"), tag, digest))
        .prop_filter("name within the length limit", |(domain, path, ..)| {
            domain.as_ref().map_or(0, |d| d.len() + 1) + path.len() <= NAME_MAX_LEN
        })
}

fn render(domain: Option<&str>, path: &str, tag: Option<&str>, digest: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(d) = domain {
        s.push_str(d);
        s.push('/');
    }
    s.push_str(path);
    if let Some(t) = tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = digest {
        s.push('@');
        s.push_str(d);
    }
    s
}

proptest! {
    #[test]
    fn parse_display_round_trips((domain, path, tag, digest) in parts()) {
        let text = render(domain.as_deref(), &path, tag.as_deref(), digest.as_deref());
        let r = Reference::parse(&text).unwrap();
        prop_assert_eq!(r.to_string(), text.clone());
        let shown = r.to_string();
        prop_assert_eq!(Reference::parse(&shown).unwrap(), r.clone());
        prop_assert_eq!(r.tag(), tag.as_deref());
        prop_assert_eq!(r.digest(), digest.as_deref());
        match domain.as_deref() {
            Some(d) => {
                prop_assert_eq!(r.domain(), Some(d));
                prop_assert_eq!(r.path(), path.as_str());
            }
            // Without a domain, a first component that fits the domain grammar is read as
            // one (as in Go); the name is the same either way.
            None => prop_assert_eq!(r.name(), path.clone()),
        }
    }

    #[test]
    fn spec_round_trips_for_host_qualified_references(
        (domain, path, tag, digest) in parts(),
    ) {
        // Spec wants a host-looking first component: '.', ':', '[' or localhost.
        let mut host = domain.unwrap_or_else(|| "example.com".to_owned());
        if !host.contains(['.', ':', '[']) && host != "localhost" {
            host.push_str(".test");
        }
        prop_assume!(host.len() + 1 + path.len() <= NAME_MAX_LEN);
        let text = render(Some(&host), &path, tag.as_deref(), digest.as_deref());
        let spec = Spec::parse(&text).unwrap();
        prop_assert_eq!(spec.to_string(), text.clone());
        prop_assert_eq!(spec.hostname(), host.as_str());
        prop_assert_eq!(spec.repository(), path.as_str());
        prop_assert_eq!(spec.tag(), tag.as_deref());
        prop_assert_eq!(spec.digest(), digest.as_deref());
        prop_assert_eq!(Reference::try_from(&spec).unwrap(), Reference::parse(&text).unwrap());
    }

    #[test]
    fn normalize_is_idempotent((domain, path, tag, digest) in parts()) {
        let text = render(domain.as_deref(), &path, tag.as_deref(), digest.as_deref());
        if let Ok(once) = normalize(&text) {
            prop_assert!(once.domain().is_some());
            prop_assert!(once.tag().is_some() || once.digest().is_some());
            let shown = once.to_string();
            prop_assert_eq!(normalize(&shown).unwrap(), once.clone());
            prop_assert_eq!(normalize(&familiar_string(&once)).unwrap(), once);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(s in "\\PC{0,300}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(r.to_string(), s.clone());
        }
        let _ = normalize(&s);
        let _ = Spec::parse(&s);
    }

    #[test]
    fn near_miss_input_never_panics(s in "[a-zA-Z0-9:/@._\\[\\]-]{0,80}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(r.to_string(), s.clone());
            let shown = r.to_string();
            prop_assert_eq!(Reference::parse(&shown).unwrap(), r);
        }
        if let Ok(n) = normalize(&s) {
            let shown = n.to_string();
            prop_assert_eq!(normalize(&shown).unwrap(), n);
        }
    }
}
