//! Values that must never reach a log line, an error, `--help` or a
//! termination message. `Secret` has no `Display`, and its `Debug` shows only
//! a fingerprint, so formatting one by mistake cannot leak it.

use std::fmt;

use sha2::{Digest, Sha256};

/// How many hex digits of the SHA-256 hash a fingerprint shows: enough to tell
/// two keys apart in a log, far too few to help anyone guess one.
const FINGERPRINT_HEX_DIGITS: usize = 8;

/// The key prefixes OpenRouter uses; a fingerprint keeps them so that an
/// operator can tell which kind of key is configured.
const KNOWN_PREFIXES: [&str; 2] = ["sk-or-v1-", "sk-or-"];

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the few places that must write it: the `.env`,
    /// the database row and the secret key file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Lowercase hex SHA-256 of the UTF-8 bytes: what the database stores in
    /// `openrouter_key_hash`.
    pub(crate) fn sha256_hex(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }

    /// A safe stand-in for logs: the key's kind prefix plus a short hash,
    /// e.g. `sk-or-v1-…sha256:1a2b3c4d`.
    pub fn fingerprint(&self) -> String {
        let prefix = KNOWN_PREFIXES
            .iter()
            .find(|p| self.0.starts_with(*p))
            .copied()
            .unwrap_or("");
        let hash = self.sha256_hex();
        format!("{prefix}…sha256:{}", &hash[..FINGERPRINT_HEX_DIGITS])
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-or-v1-0123456789abcdef0123456789abcdef";

    #[test]
    fn debug_shows_the_fingerprint_not_the_value() {
        let shown = format!("{:?}", Secret::new(KEY));
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.starts_with("Secret(sk-or-v1-…sha256:"), "{shown}");
    }

    #[test]
    fn fingerprint_keeps_only_the_known_prefix() {
        let fp = Secret::new("sk-or-abcdefghijklmnopqrstuvwxyz").fingerprint();
        assert!(fp.starts_with("sk-or-…sha256:"), "{fp}");
        let fp = Secret::new("plain-secret-value").fingerprint();
        assert!(fp.starts_with("…sha256:"), "{fp}");
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn fingerprints_differ_between_keys() {
        let a = Secret::new(format!("{KEY}a")).fingerprint();
        let b = Secret::new(format!("{KEY}b")).fingerprint();
        assert_ne!(a, b);
    }
}
