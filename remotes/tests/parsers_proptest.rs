//! Property tests over what a registry (or a `hosts.toml`) can send: the parsers never
//! panic (these tests build with overflow checks, so a wrapping bug fails here), and what
//! is well formed round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use dist_remotes::HostsFile;
use dist_remotes::auth::{
    MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, parse_token_response, parse_www_authenticate,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// 2024-01-02T03:04:05Z.
const ISSUED: u64 = 1_704_164_645;

/// Strings built from the characters a challenge parser cares about.
fn challenge_soup() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            Just("Bearer".to_string()),
            Just("realm".to_string()),
            "[ =,\"\\\\\t/+a-zA-Z0-9é]{1,3}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

proptest! {
    #[test]
    fn challenge_parser_never_panics_on_any_string(s in any::<String>()) {
        if let Err(e) = parse_www_authenticate(&s) {
            let msg = e.to_string();
            prop_assert!(msg.len() < 1024 && !msg.contains('\n'), "{}", msg);
        }
    }

    #[test]
    fn challenge_errors_stay_short_and_on_one_line(
        s in vec(prop_oneof![Just('\u{1a}'), Just('\n'), Just('"'), Just('='), any::<char>()], 0..2000)
    ) {
        let s: String = s.into_iter().collect();
        if let Err(e) = parse_www_authenticate(&s) {
            let msg = e.to_string();
            prop_assert!(msg.len() < 1024 && !msg.contains('\n'), "{}", msg);
        }
    }

    #[test]
    fn challenge_parser_never_panics_on_challenge_like_soup(s in challenge_soup()) {
        if let Err(e) = parse_www_authenticate(&s) {
            prop_assert!(e.to_string().len() < 600);
        }
    }

    #[test]
    fn well_formed_challenges_round_trip(
        challenges in vec(
            (
                "[A-Za-z][A-Za-z0-9_-]{0,10}",
                btree_map("[a-z][a-z0-9_]{0,8}", "[ -~]{0,40}", 0..6),
                any::<bool>(),
            ),
            1..4,
        )
    ) {
        let header = challenges
            .iter()
            .map(|(scheme, params, spaced)| {
                let sep = if *spaced { " , " } else { "," };
                let ps: Vec<String> =
                    params.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
                format!("{scheme} {}", ps.join(sep))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let parsed = parse_www_authenticate(&header)
            .map_err(|e| TestCaseError::fail(format!("{header}: {e}")))?;
        prop_assert_eq!(parsed.len(), challenges.len(), "{}", header);
        for (got, (scheme, params, _)) in parsed.iter().zip(&challenges) {
            prop_assert_eq!(&got.scheme, &scheme.to_ascii_lowercase());
            prop_assert_eq!(got.params.len(), params.len());
            for (k, v) in params {
                prop_assert_eq!(got.params.get(k), Some(v), "{}", header);
            }
        }
    }

    #[test]
    fn token_parser_never_panics_on_any_bytes(body in vec(any::<u8>(), 0..300)) {
        let _ = parse_token_response(&body, SystemTime::now());
    }

    #[test]
    fn any_json_number_gives_a_lifetime_within_bounds(
        expires in prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("JSON has no NaN or infinities", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            // Within a double's range: serde_json refuses larger numbers.
            "-?(0|[1-9][0-9]{0,199})(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,2})?",
        ],
        issued_at in prop_oneof![
            Just(String::new()),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
            any::<String>(),
        ],
        now in any::<u64>(),
    ) {
        let body = format!(
            r#"{{"token":"t","expires_in":{expires},"issued_at":{}}}"#,
            serde_json::to_string(&issued_at).unwrap()
        );
        let now = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(now))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let t = parse_token_response(body.as_bytes(), now)
            .map_err(|e| TestCaseError::fail(format!("{body}: {e}")))?;
        prop_assert!(t.lifetime >= MIN_TOKEN_LIFETIME && t.lifetime <= MAX_TOKEN_LIFETIME);
    }

    #[test]
    fn sane_token_responses_round_trip(
        token in "[!-~]{1,200}",
        expires in 60u64..=86_400,
        elapsed in 0u64..100_000,
    ) {
        let body = serde_json::json!({
            "token": token,
            "expires_in": expires,
            "issued_at": "2024-01-02T03:04:05Z",
        })
        .to_string();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(ISSUED + elapsed);
        let t = parse_token_response(body.as_bytes(), now).unwrap();
        prop_assert_eq!(&t.token, &token);
        let want = Duration::from_secs(expires.saturating_sub(elapsed)).max(MIN_TOKEN_LIFETIME);
        prop_assert_eq!(t.lifetime, want);
    }

    #[test]
    fn hosts_toml_parser_never_panics(s in any::<String>()) {
        let _ = HostsFile::parse(&s, Path::new("/etc/containerd/certs.d/x/hosts.toml"));
    }

    #[test]
    fn hosts_toml_mirror_order_is_file_order(names in vec("[a-z]{1,12}", 1..12)) {
        let mut seen = std::collections::HashSet::new();
        let names: Vec<_> = names.into_iter().filter(|n| seen.insert(n.clone())).collect();
        let text: String = names
            .iter()
            .map(|n| format!("[host.\"https://{n}.example\"]\ncapabilities = [\"pull\"]\n"))
            .collect();
        let file = HostsFile::parse(&text, Path::new("/x/hosts.toml")).unwrap();
        let got: Vec<_> = file
            .endpoints(dist_remotes::RegistryHost::new("origin.example"))
            .into_iter()
            .map(|h| h.host)
            .collect();
        let mut want: Vec<_> = names.iter().map(|n| format!("{n}.example")).collect();
        want.push("origin.example".to_string());
        prop_assert_eq!(got, want);
    }
}
