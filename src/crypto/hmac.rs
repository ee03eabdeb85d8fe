//! The one keyed-HMAC construction (HMAC-SHA256) and the one unkeyed token digest.
//!
//! Every keyed MAC in rampart goes through [`HmacKey`]: the audit chain, API-key hashes and the
//! console's CSRF tokens. Keys come from configured secrets (as their UTF-8 bytes) or from the OS
//! RNG; there is no fallback key — [`HmacKey::new`] takes any key length, exactly as RFC 2104 does
//! (a key longer than the block is hashed, a shorter one zero-padded), so it cannot fail and needs
//! no error path that could silently substitute one. Purposes are separated by deriving a key per
//! label ([`HmacKey::derive`]), never by reusing a secret as is.

use std::fmt;

use hmac::digest::Key;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag and of a SHA-256 digest.
pub const TAG_LEN: usize = 32;
pub type Tag = [u8; TAG_LEN];

/// An HMAC-SHA256 key, holding only the keyed state (cloned per use, so the secret is processed
/// once). Prints as redacted.
#[derive(Clone)]
pub struct HmacKey {
    mac: HmacSha256,
}

impl HmacKey {
    /// HMAC-SHA256 keyed with `key`, whatever its length (RFC 2104).
    pub fn new(key: &[u8]) -> HmacKey {
        let mut block = Key::<HmacSha256>::default();
        if key.len() > block.len() {
            let digest = Sha256::digest(key);
            block[..digest.len()].copy_from_slice(&digest);
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        HmacKey {
            mac: <HmacSha256 as KeyInit>::new(&block),
        }
    }

    /// A key of 32 bytes from the OS RNG (development and tests without a configured secret).
    pub fn random() -> Result<HmacKey, getrandom::Error> {
        let mut bytes = [0u8; TAG_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(HmacKey::new(&bytes))
    }

    /// A key for one purpose: HMAC(self, label) used as a key of its own.
    pub fn derive(&self, label: &[u8]) -> HmacKey {
        HmacKey::new(&self.mac(&[label]))
    }

    /// The tag of the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> Tag {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `parts`, in time independent of where they differ.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac(parts).ct_eq(tag).into()
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(***REDACTED***)")
    }
}

/// The SHA-256 of a bearer token (refresh tokens, console session tokens): what is stored and
/// looked up instead of the token. The tokens are 256-bit random, so an unkeyed hash suffices.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn any_key_length_gives_the_rfc_2104_hmac() {
        for len in [0usize, 1, 32, 64, 65, 200] {
            let key = vec![7u8; len];
            let mut reference = HmacSha256::new_from_slice(&key).unwrap();
            reference.update(b"message");
            let expected: Tag = reference.finalize().into_bytes().into();
            assert_eq!(
                HmacKey::new(&key).mac(&[b"mess", b"age"]),
                expected,
                "{len}"
            );
        }
    }

    #[test]
    fn derived_keys_are_hmac_of_the_label_and_differ_per_label() {
        let root = HmacKey::new(b"secret");
        let label_tag = root.mac(&[b"purpose/v1"]);
        assert_eq!(
            root.derive(b"purpose/v1").mac(&[b"x"]),
            HmacKey::new(&label_tag).mac(&[b"x"])
        );
        assert_ne!(
            root.derive(b"a").mac(&[b"x"]),
            root.derive(b"b").mac(&[b"x"])
        );
    }

    #[test]
    fn verify_accepts_only_the_exact_tag_and_debug_is_redacted() {
        let key = HmacKey::new(b"k");
        let tag = key.mac(&[b"data"]);
        assert!(key.verify(&[b"data"], &tag));
        let mut wrong = tag;
        wrong[31] ^= 1;
        assert!(!key.verify(&[b"data"], &wrong));
        assert!(!key.verify(&[b"data"], &tag[..31]));
        assert_eq!(format!("{key:?}"), "HmacKey(***REDACTED***)");
    }

    #[test]
    fn token_hashes_are_sha256() {
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
