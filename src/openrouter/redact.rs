//! Text from OpenRouter (an error's message, a body we cannot read) is
//! shown to the operator; it must never carry a secret. Known secrets
//! become `[key …sha256:<8 hex digits>]`, their fingerprint's hash part;
//! anything else shaped like an OpenRouter key is cut to its prefix. Control characters are escaped and the text is
//! kept short, so that a hostile answer cannot forge log lines.

use crate::secret::Secret;

/// How much of an answer a message shows.
const MAX_CHARS: usize = 300;
const KEY_PREFIX: &str = "sk-or-";

/// `text` without any secret, on one line, at most `MAX_CHARS` characters.
pub fn redact(text: &str, known: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for secret in known {
        if !secret.expose().is_empty() {
            let fingerprint = secret.fingerprint();
            let hash = fingerprint
                .find('…')
                .map_or(fingerprint.as_str(), |at| &fingerprint[at..]);
            out = out.replace(secret.expose(), &format!("[key {hash}]"));
        }
    }
    let out = cut_key_shapes(&out);
    // Each control character becomes its `\u{…}` escape.
    let mut flat = String::with_capacity(out.len());
    for c in out.chars() {
        if c.is_control() {
            flat.extend(c.escape_unicode());
        } else {
            flat.push(c);
        }
    }
    shorten(&flat)
}

/// Every `sk-or-…` run of key characters becomes `sk-or-…(redacted)`.
fn cut_key_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(KEY_PREFIX) {
        out.push_str(&rest[..at]);
        let after = &rest[at + KEY_PREFIX.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(after.len());
        if end == 0 {
            out.push_str(KEY_PREFIX);
        } else {
            out.push_str("sk-or-…(redacted)");
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_become_fingerprints() {
        let key = Secret::new("mgmt-key-0123456789");
        let shown = redact("bad key mgmt-key-0123456789 here", &[&key]);
        assert!(!shown.contains("0123456789"), "{shown}");
        let hash = &key.fingerprint()["…sha256:".len()..];
        assert_eq!(shown, format!("bad key [key …sha256:{hash}] here"));
        let known = Secret::new("sk-or-v1-known0123456789");
        let shown = redact("sk-or-v1-known0123456789 and sk-or-v1-other0123", &[&known]);
        assert!(shown.starts_with("[key …sha256:"), "{shown}");
        assert!(shown.ends_with(" and sk-or-…(redacted)"), "{shown}");
    }

    #[test]
    fn anything_shaped_like_a_key_is_cut() {
        let shown = redact(
            "invalid key sk-or-v1-abcdef0123456789, and sk-or- alone",
            &[],
        );
        assert_eq!(shown, "invalid key sk-or-…(redacted), and sk-or- alone");
    }

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        let shown = redact("a\nERROR forged\r\x1b[31m", &[]);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.starts_with("a\\u{a}ERROR"), "{shown}");
        let long = redact(&"x".repeat(1000), &[]);
        assert_eq!(long.chars().count(), MAX_CHARS + 1);
    }
}
