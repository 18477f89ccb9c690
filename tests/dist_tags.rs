//! `dist tags <repository>`: one tag per line, across every page the registry serves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use dist_test_support::conformance::{Conformance, Flavor};
use dist_test_support::{AuthMode, FerroRegistry, Registry};
use support::Dist;

/// Pushes `n` tags (`tag-00`, `tag-01`, …) to `repo` on `host`: their names, sorted.
fn seed(host: &str, flavor: Flavor, repo: &str, n: usize) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = Conformance::new(host, flavor, "seed").unwrap();
    let tags: Vec<String> = (0..n).map(|i| format!("tag-{i:02}")).collect();
    rt.block_on(async {
        for t in &tags {
            c.push_empty_image(repo, t).await.unwrap();
        }
    });
    tags
}

fn sorted_lines(out: &str) -> Vec<String> {
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn tags_prints_every_tag_of_a_docker_registry_repository_one_per_line() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let host = reg.host();
    let want = seed(&host, Flavor::Distribution, "team/app", 12);
    let dist = Dist::new();
    // 2.8.2 ignores `n` and serves the twelve tags in one unsorted page.
    let out = dist.ok(&["tags", "--page-size", "5", &format!("{host}/team/app")]);
    assert_eq!(sorted_lines(&out), want, "{out}");
    let out = dist.ok(&["tags", &format!("{host}/team/app")]);
    assert_eq!(sorted_lines(&out), want, "{out}");
}

#[test]
fn tags_follows_every_page_of_a_paginating_registry() {
    let reg = FerroRegistry::start().unwrap();
    let host = reg.host();
    let want = seed(&host, Flavor::Ferro, "team/app", 12);
    let dist = Dist::new();
    // Pages of five: three pages, printed in the registry's (lexical) order.
    let out = dist.ok(&["tags", "--page-size", "5", &format!("{host}/team/app")]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, want, "{out}");
}

#[test]
fn tags_of_an_unknown_repository_fail_with_one_error_line() {
    let reg = Registry::start(AuthMode::None).unwrap();
    let dist = Dist::new();
    let err = dist.fails(&["tags", &format!("{}/no/such", reg.host())], None);
    assert!(err.contains("NAME_UNKNOWN"), "{err}");
}
