//! Parsing `WWW-Authenticate` challenges.

use std::collections::HashMap;

/// One authentication challenge from a `401` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// The scheme, lower-cased (`bearer`, `basic`).
    pub(crate) scheme: String,
    /// Parameters with lower-cased names (`realm`, `service`, `scope`, `error`).
    pub(crate) params: HashMap<String, String>,
}

/// Parses every challenge in the header values, in order.
pub(crate) fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    let mut out = Vec::new();
    for v in values {
        parse_into(v, &mut out);
    }
    out
}

fn parse_into(s: &str, out: &mut Vec<Challenge>) {
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (scheme, after) = take_token(rest);
        if scheme.is_empty() {
            return;
        }
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: HashMap::new(),
        };
        rest = after.trim_start();
        // key=value pairs until the next bare token (a new challenge) or the end.
        loop {
            let (key, after_key) = take_token(rest);
            let after_key = after_key.trim_start();
            if key.is_empty() || !after_key.starts_with('=') {
                break;
            }
            let (value, after_value) = take_value(after_key[1..].trim_start());
            ch.params.insert(key.to_ascii_lowercase(), value);
            rest = after_value.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None => break,
            }
        }
        out.push(ch);
    }
}

fn take_token(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| c.is_whitespace() || c == '=' || c == ',' || c == '"')
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn take_value(s: &str) -> (String, &str) {
    if let Some(q) = s.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => return (value, &q[i + 1..]),
                c => value.push(c),
            }
        }
        (value, "")
    } else {
        let (tok, rest) = take_token(s);
        (tok.to_string(), rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_quoted_params() {
        let c = parse_challenges([
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        ]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.example/token");
        assert_eq!(c[0].params["service"], "registry.example");
        assert_eq!(c[0].params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn parses_several_challenges_and_escapes() {
        let c = parse_challenges([
            r#"Basic realm="a \"q\" realm", Bearer realm=x,error=invalid_token"#,
        ]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], r#"a "q" realm"#);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "x");
        assert_eq!(c[1].params["error"], "invalid_token");
    }

    #[test]
    fn garbage_yields_no_panic() {
        for s in [
            "",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            ",,,",
            "Basic =",
        ] {
            let _ = parse_challenges([s]);
        }
    }
}
