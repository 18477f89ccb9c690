//! Random small layers (and random corruptions of them) never panic and never change
//! anything outside the root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Layer, Sandbox};
use proptest::prelude::*;
use tar::EntryType;

const OUT: &str = "@OUT";

fn component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b",
        "etc",
        "..",
        ".",
        "",
        ".wh.a",
        ".wh.etc",
        ".wh..wh..opq",
        ".wh..",
        "root",
    ])
}

fn path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(component(), 1..4)).prop_map(|(abs, c)| {
        let p = c.join("/");
        if abs { format!("/{p}") } else { p }
    })
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        path(),
        prop::sample::select(vec![
            "/",
            "../..",
            "../../etc",
            OUT,
            "@OUT/passwd",
            "@OUT/dir",
            "."
        ])
        .prop_map(str::to_owned),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Dir(String, u32),
    File(String, Vec<u8>, u32),
    Symlink(String, String),
    Hardlink(String, String),
    Fifo(String),
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop::sample::select(vec![0o755u32, 0o644, 0o4755, 0o1777, 0o000, 0o7777]);
    prop_oneof![
        (path(), mode.clone()).prop_map(|(p, m)| Op::Dir(p, m)),
        (path(), prop::collection::vec(any::<u8>(), 0..64), mode)
            .prop_map(|(p, d, m)| Op::File(p, d, m)),
        (target(), path()).prop_map(|(t, p)| Op::Symlink(t, p)),
        (target(), path()).prop_map(|(t, p)| Op::Hardlink(t, p)),
        path().prop_map(Op::Fifo),
    ]
}

fn build(ops: &[Op], out: &str) -> Vec<u8> {
    let fix = |s: &str| s.replace(OUT, out);
    let mut l = Layer::new();
    for o in ops {
        match o {
            Op::Dir(p, m) => l.dir(&fix(p), *m),
            Op::File(p, d, m) => l.file(&fix(p), d, *m),
            Op::Symlink(t, p) => l.symlink(&fix(t), &fix(p)),
            Op::Hardlink(t, p) => l.link(&fix(t), &fix(p)),
            Op::Fifo(p) => l.entry(&fix(p), EntryType::Fifo, None, 0o644, b"", &[]),
        };
    }
    l.build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_layers_stay_inside_the_root(
        lower in prop::collection::vec(op(), 0..8),
        upper in prop::collection::vec(op(), 1..8),
    ) {
        let sb = Sandbox::new();
        let out = sb.outside.to_str().unwrap().to_owned();
        let _ = common::apply(&build(&lower, &out), &sb.root);
        let _ = common::apply(&build(&upper, &out), &sb.root);
        sb.assert_sentinel_unchanged();
    }

    #[test]
    fn corrupted_layers_error_without_panicking(
        ops in prop::collection::vec(op(), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let sb = Sandbox::new();
        let out = sb.outside.to_str().unwrap().to_owned();
        let mut tar = build(&ops, &out);
        for (i, b) in flips {
            let i = i.index(tar.len());
            tar[i] = b;
        }
        let len = cut.index(tar.len() + 1);
        let _ = common::apply(&tar[..len], &sb.root);
        sb.assert_sentinel_unchanged();
    }
}
