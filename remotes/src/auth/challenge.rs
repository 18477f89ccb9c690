//! Parsing `WWW-Authenticate` challenges (RFC 7235 §4.1), leniently where registries are
//! known to deviate (unquoted realms with `:` and `/`), strictly where the input cannot be
//! a challenge at all.

use std::collections::HashMap;

use super::ParseError;

/// The longest `WWW-Authenticate` value parsed; real ones are a few hundred bytes.
pub const MAX_CHALLENGE_LEN: usize = 16 << 10;
/// The most challenges taken from one value, and parameters from one challenge.
const MAX_ITEMS: usize = 64;

/// One authentication challenge from a `401` response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Challenge {
    /// The scheme, lower-cased (`bearer`, `basic`).
    pub scheme: String,
    /// Parameters with lower-cased names (`realm`, `service`, `scope`, `error`). When a
    /// name repeats, the first value counts.
    pub params: HashMap<String, String>,
    /// The `token68` form some schemes use instead of parameters (`Negotiate abc==`).
    pub token68: Option<String>,
}

/// Parses one `WWW-Authenticate` header value into its challenges, in order.
///
/// Values from a registry are untrusted: anything that is not a list of challenges
/// (empty, no scheme, an unterminated quoted string, a parameter without a value, more
/// than 16 KiB or 64 items) is a [`ParseError::Challenge`] quoting at most an elided
/// snippet of the value. It never panics, whatever the input.
///
/// ```
/// let c = dist_remotes::auth::parse_www_authenticate(
///     r#"Bearer realm="https://auth.example/token",service="registry.example""#,
/// )
/// .unwrap();
/// assert_eq!(c[0].scheme, "bearer");
/// assert_eq!(c[0].params["service"], "registry.example");
/// assert!(dist_remotes::auth::parse_www_authenticate("realm=").is_err());
/// ```
pub fn parse_www_authenticate(value: &str) -> Result<Vec<Challenge>, ParseError> {
    let fail = |reason: &'static str| ParseError::Challenge {
        header: super::error::snippet(value),
        reason,
    };
    if value.len() > MAX_CHALLENGE_LEN {
        return Err(fail("longer than 16 KiB"));
    }
    let mut p = Cursor { s: value, pos: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_separators();
        if p.at_end() {
            break;
        }
        if out.len() >= MAX_ITEMS {
            return Err(fail("more than 64 challenges"));
        }
        let scheme = p.token();
        if scheme.is_empty() {
            return Err(fail("expected an authentication scheme"));
        }
        let mut ch = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            ..Challenge::default()
        };
        p.skip_spaces();
        if let Some(t68) = p.token68() {
            ch.token68 = Some(t68.to_string());
            out.push(ch);
            continue;
        }
        parse_params(&mut p, &mut ch).map_err(fail)?;
        out.push(ch);
    }
    if out.is_empty() {
        return Err(fail("no challenge"));
    }
    Ok(out)
}

/// `name = value` pairs separated by commas, until a bare token (the next challenge's
/// scheme) or the end.
fn parse_params(p: &mut Cursor<'_>, ch: &mut Challenge) -> Result<(), &'static str> {
    for count in 0.. {
        let save = p.pos;
        p.skip_separators();
        let name = p.token();
        p.skip_spaces();
        if name.is_empty() || !p.eat('=') {
            // The next challenge starts here (or the value ends).
            p.pos = save;
            if !name.is_empty() || p.rest().trim_start_matches([' ', '\t', ',']).is_empty() {
                return Ok(());
            }
            return Err("expected a parameter or a scheme");
        }
        if count >= MAX_ITEMS {
            return Err("more than 64 parameters");
        }
        p.skip_spaces();
        let value = if p.eat('"') {
            p.quoted().ok_or("unterminated quoted string")?
        } else {
            let v = p.bare_value();
            if v.is_empty() {
                return Err("parameter without a value");
            }
            v.to_string()
        };
        ch.params.entry(name.to_ascii_lowercase()).or_insert(value);
        p.skip_spaces();
        if p.at_end() {
            return Ok(());
        }
        if !p.rest().starts_with(',') {
            return Err("expected ',' after a parameter");
        }
    }
    Ok(())
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.s.len());
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.advance(c.len_utf8());
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        let r = self.rest();
        self.advance(r.len() - r.trim_start_matches([' ', '\t']).len());
    }

    fn skip_separators(&mut self) {
        let r = self.rest();
        self.advance(r.len() - r.trim_start_matches([' ', '\t', ',']).len());
    }

    /// An RFC 7230 token (possibly empty).
    fn token(&mut self) -> &'a str {
        let r = self.rest();
        let end = r.find(|c: char| !is_tchar(c)).unwrap_or(r.len());
        self.advance(end);
        &r[..end]
    }

    /// A `token68` (`abc+/==`) when it is the whole rest of a challenge, else nothing.
    fn token68(&mut self) -> Option<&'a str> {
        let r = self.rest();
        let body = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c)))
            .unwrap_or(r.len());
        let eqs = r[body..].len() - r[body..].trim_start_matches('=').len();
        let end = body + eqs;
        if body == 0 {
            return None;
        }
        let after = r[end..].trim_start_matches([' ', '\t']);
        // `name=value` is a parameter; `abc==` or `a/b` followed by the end or a comma
        // is a token68.
        let is_t68 = (after.is_empty() || after.starts_with(','))
            && (eqs > 0 || r[..body].contains(['/', '+']));
        if !is_t68 {
            return None;
        }
        self.advance(end);
        Some(&r[..end])
    }

    /// A quoted string after its opening quote, with `\` escapes undone.
    fn quoted(&mut self) -> Option<String> {
        let r = self.rest();
        let mut value = String::new();
        let mut chars = r.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?.1),
                '"' => {
                    self.advance(i + 1);
                    return Some(value);
                }
                c => value.push(c),
            }
        }
        None
    }

    /// An unquoted value: a token, or what registries put there instead (`https://x/y`).
    fn bare_value(&mut self) -> &'a str {
        let r = self.rest();
        let end = r
            .find(|c: char| c.is_whitespace() || c == ',' || c == '"')
            .unwrap_or(r.len());
        self.advance(end);
        &r[..end]
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Challenge {
        let mut c = parse_www_authenticate(s).unwrap();
        assert_eq!(c.len(), 1, "{c:?}");
        c.remove(0)
    }

    #[test]
    fn parses_bearer_with_quoted_params() {
        let c = one(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn parses_several_challenges_and_escapes() {
        let c = parse_www_authenticate(
            r#"Basic realm="a \"q\" realm", Bearer realm=x,error=invalid_token"#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], r#"a "q" realm"#);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "x");
        assert_eq!(c[1].params["error"], "invalid_token");
    }

    #[test]
    fn unquoted_urls_token68_and_bare_schemes_are_accepted() {
        let c = one("Bearer realm=https://auth.example:5001/token , service = reg");
        assert_eq!(c.params["realm"], "https://auth.example:5001/token");
        assert_eq!(c.params["service"], "reg");
        let c = parse_www_authenticate("Negotiate abc+/d==, Basic realm=r, Foo").unwrap();
        assert_eq!(c[0].token68.as_deref(), Some("abc+/d=="));
        assert_eq!(c[1].params["realm"], "r");
        assert_eq!(c[2].scheme, "foo");
        assert!(c[2].params.is_empty());
    }

    #[test]
    fn garbage_is_a_typed_error_quoting_an_elided_snippet() {
        for s in [
            "",
            "   ,, ",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            "Bearer realm=\"a\" junk\"",
            "Basic =",
            "Bearer realm=\"x\\",
        ] {
            let err = parse_www_authenticate(s).unwrap_err();
            assert!(matches!(err, ParseError::Challenge { .. }), "{s:?}: {err}");
        }
        let huge = format!("Bearer realm=\"{}\"", "x".repeat(MAX_CHALLENGE_LEN));
        let err = parse_www_authenticate(&huge).unwrap_err().to_string();
        assert!(err.len() < 600, "{err}");
        assert!(err.contains("bytes)"), "{err}");
        // Found by fuzzing: control characters must not expand the quote (as `{:?}` would).
        let controls = format!("444444{}4442Beaea%okae", "\u{1a}".repeat(180));
        let err = parse_www_authenticate(&controls).unwrap_err().to_string();
        assert!(err.len() < 600 && !err.contains('\u{1a}'), "{err}");
        let err = parse_www_authenticate("Bearer\n\r=")
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\n') && !err.contains('\r'), "{err}");
        let many = "a=b,".repeat(100);
        assert!(parse_www_authenticate(&format!("Bearer {many}")).is_err());
    }
}
