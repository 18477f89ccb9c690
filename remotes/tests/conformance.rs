//! The OCI distribution-spec conformance categories (push, discovery, management) against
//! both registries the push tests use, with the expectations that differ written down in
//! `dist_test_support::conformance`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dist_test_support::conformance::{Conformance, Flavor};
use dist_test_support::{AuthMode, FerroRegistry, Registry};

async fn category(host: &str, flavor: Flavor, name: &str) {
    let c = Conformance::new(host, flavor, &format!("conformance/{name}")).unwrap();
    let out = match name {
        "push" => c.push().await,
        "discovery" => c.discovery().await,
        _ => c.management().await,
    };
    out.unwrap_or_else(|e| panic!("{flavor:?}: {e}"));
}

#[tokio::test]
async fn docker_registry_passes_the_push_steps() {
    let reg = Registry::start(AuthMode::None).unwrap();
    category(&reg.host(), Flavor::Distribution, "push").await;
}

#[tokio::test]
async fn docker_registry_passes_the_discovery_steps() {
    let reg = Registry::start(AuthMode::None).unwrap();
    category(&reg.host(), Flavor::Distribution, "discovery").await;
}

#[tokio::test]
async fn docker_registry_passes_the_management_steps() {
    let reg = Registry::start(AuthMode::None).unwrap();
    category(&reg.host(), Flavor::Distribution, "management").await;
}

#[tokio::test]
async fn ferro_passes_the_push_steps() {
    let reg = FerroRegistry::start().unwrap();
    category(&reg.host(), Flavor::Ferro, "push").await;
}

#[tokio::test]
async fn ferro_passes_the_discovery_steps() {
    let reg = FerroRegistry::start().unwrap();
    category(&reg.host(), Flavor::Ferro, "discovery").await;
}

#[tokio::test]
async fn ferro_passes_the_management_steps() {
    let reg = FerroRegistry::start().unwrap();
    category(&reg.host(), Flavor::Ferro, "management").await;
}
