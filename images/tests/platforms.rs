//! Platform parsing, normalising and matching, as a table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_images::platforms::{self, Matcher, PlatformMatcher, default_platform, format, parse};

#[test]
fn parse_normalises_aliases_and_default_variants() {
    let cases = [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("Linux/X86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/aarch64", "linux/arm64/v8"),
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/arm64/8", "linux/arm64/v8"),
        ("linux/arm64/v9", "linux/arm64/v9"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("windows/amd64", "windows/amd64"),
        ("linux/s390x", "linux/s390x"),
        ("linux/riscv64", "linux/riscv64"),
        ("linux/armbe", "linux/armbe"),
        ("linux/arm64be", "linux/arm64be"),
    ];
    for (input, want) in cases {
        assert_eq!(format(&parse(input).unwrap()), want, "parse({input:?})");
    }
}

#[test]
fn a_lone_os_or_arch_is_completed_from_the_host() {
    let host = default_platform();
    let p = parse("linux").unwrap();
    assert_eq!(p.architecture(), host.architecture());
    let p = parse("arm64").unwrap();
    assert_eq!(p.os(), host.os());
    assert_eq!(format(&p), format!("{}/arm64/v8", host.os()));
}

#[test]
fn malformed_platform_strings_are_refused_with_the_input_named() {
    for bad in [
        "",
        "linux/",
        "/amd64",
        "linux/amd64/v8/extra",
        "linux/am d64",
        "nonsense",
    ] {
        let err = parse(bad).unwrap_err();
        assert!(err.to_string().contains("platform"), "{bad:?}: {err}");
        assert_eq!(err.kind(), dist_images::ErrorKind::InvalidArgument);
    }
}

#[test]
fn the_host_platform_is_normalised() {
    let host = default_platform();
    assert_eq!(format(&platforms::normalize(&host)), format(&host));
    assert!(PlatformMatcher::host().matches(&host));
}

/// (wanted, candidate, matches)
const MATCH_TABLE: &[(&str, &str, bool)] = &[
    ("linux/amd64", "linux/amd64", true),
    ("linux/amd64", "linux/x86_64", true),
    ("linux/amd64", "linux/386", true),
    ("linux/amd64", "linux/amd64/v2", false),
    ("linux/amd64/v3", "linux/amd64/v2", true),
    ("linux/amd64/v3", "linux/amd64", true),
    ("linux/amd64/v2", "linux/amd64/v3", false),
    ("linux/amd64", "windows/amd64", false),
    ("linux/amd64", "linux/arm64", false),
    ("linux/arm64", "linux/arm64/v8", true),
    ("linux/arm64/v8", "linux/arm64", true),
    ("linux/aarch64", "linux/arm64/v8", true),
    ("linux/arm64", "linux/arm/v7", true),
    ("linux/arm64", "linux/arm/v5", true),
    ("linux/arm64", "linux/amd64", false),
    ("linux/arm64/v8.2", "linux/arm64/v8.1", true),
    ("linux/arm64/v8.2", "linux/arm64", true),
    ("linux/arm64/v8", "linux/arm64/v8.2", false),
    ("linux/arm64/v9", "linux/arm64/v8", true),
    ("linux/arm64/v9", "linux/arm64/v8.5", true),
    ("linux/arm64/v9", "linux/arm64/v8.6", false),
    ("linux/arm64/v9.2", "linux/arm64/v8.7", true),
    ("linux/arm64/v9.2", "linux/arm64/v9.1", true),
    ("linux/arm64/v9.2", "linux/arm/v8", true),
    ("linux/arm/v7", "linux/arm/v7", true),
    ("linux/arm/v7", "linux/arm", true),
    ("linux/arm/v7", "linux/arm/v6", true),
    ("linux/arm/v7", "linux/arm/v5", true),
    ("linux/arm/v6", "linux/arm/v7", false),
    ("linux/arm/v6", "linux/arm", false),
    ("linux/arm/v7", "linux/arm64", false),
    ("linux/armhf", "linux/arm/v6", true),
    ("windows/amd64", "windows/amd64", true),
    ("windows/amd64", "linux/amd64", false),
    ("linux/s390x", "linux/s390x", true),
    ("linux/386", "linux/amd64", false),
];

#[test]
fn platform_matcher_accepts_the_platform_and_what_it_can_run() {
    for &(wanted, candidate, want) in MATCH_TABLE {
        let m = PlatformMatcher::new(&parse(wanted).unwrap());
        let got = m.matches(&parse(candidate).unwrap());
        assert_eq!(got, want, "{wanted} accepting {candidate}");
    }
    assert!(MATCH_TABLE.len() >= 20);
}

#[test]
fn platform_matcher_prefers_the_exact_variant_then_the_next_lower() {
    let m = PlatformMatcher::new(&parse("linux/arm/v7").unwrap());
    let rank = |s: &str| m.rank(&parse(s).unwrap()).unwrap();
    assert!(rank("linux/arm/v7") < rank("linux/arm/v6"));
    assert!(rank("linux/arm/v6") < rank("linux/arm/v5"));

    let m = PlatformMatcher::new(&parse("linux/arm64").unwrap());
    let rank = |s: &str| m.rank(&parse(s).unwrap()).unwrap();
    assert!(rank("linux/arm64") < rank("linux/arm/v7"));
    assert!(rank("linux/arm/v7") < rank("linux/arm/v6"));

    let m = PlatformMatcher::new(&parse("linux/amd64/v3").unwrap());
    let rank = |s: &str| m.rank(&parse(s).unwrap()).unwrap();
    assert!(rank("linux/amd64/v3") < rank("linux/amd64/v2"));
    assert!(rank("linux/amd64/v2") < rank("linux/amd64"));
    assert!(rank("linux/amd64") < rank("linux/386"));
}

#[test]
fn exact_matcher_accepts_no_fallbacks() {
    let m = PlatformMatcher::exact(&parse("linux/arm/v7").unwrap());
    assert!(m.matches(&parse("linux/arm").unwrap()));
    assert!(!m.matches(&parse("linux/arm/v6").unwrap()));
    let m = PlatformMatcher::exact(&parse("linux/amd64").unwrap());
    assert!(!m.matches(&parse("linux/386").unwrap()));
}
