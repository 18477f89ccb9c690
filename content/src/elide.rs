//! Quoting untrusted input in error messages without echoing all of it.
//!
//! Paths in a layer, header values, registry error bodies and URLs come from whoever built the
//! image or runs the registry. An error that quotes one in full can be hundreds of megabytes
//! long; [`Elided`] keeps the first few hundred bytes and marks the cut.

use std::fmt;

/// How many bytes of quoted input an error message keeps by default.
pub const ELIDE_LIMIT: usize = 256;

/// Displays at most [`ELIDE_LIMIT`] bytes of a string (cut on a character boundary), followed
/// by `…(N bytes)` when it was longer.
///
/// ```
/// use dist_content::Elided;
/// let long = "a".repeat(10_000);
/// let shown = Elided(&long).to_string();
/// assert!(shown.len() < 300 && shown.ends_with("…(10000 bytes)"));
/// assert_eq!(Elided("short").to_string(), "short");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Elided<'a>(pub &'a str);

impl fmt::Display for Elided<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.len() <= ELIDE_LIMIT {
            return f.write_str(s);
        }
        let mut end = ELIDE_LIMIT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}…({} bytes)", &s[..end], s.len())
    }
}

/// [`Elided`] as an owned string: for error variants that store the quoted input.
///
/// ```
/// assert_eq!(dist_content::elide(&"x".repeat(300)).chars().count(), 256 + "…(300 bytes)".chars().count());
/// ```
pub fn elide(s: &str) -> String {
    Elided(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_char_boundary() {
        let s = "é".repeat(200); // 400 bytes, 2 per char
        let out = elide(&s);
        assert!(out.starts_with(&"é".repeat(128)));
        assert!(out.ends_with("…(400 bytes)"));
    }

    #[test]
    fn short_input_is_unchanged() {
        assert_eq!(elide(&"b".repeat(ELIDE_LIMIT)), "b".repeat(ELIDE_LIMIT));
    }
}
