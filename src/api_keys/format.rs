//! The key itself: `rk_` + 32 random base62 characters + a 6-character base62 CRC32 of the random
//! part. Generation (OS RNG), parsing with the checksum check, the display prefix, the stored
//! HMAC, and the constant-time comparison. Pure: no I/O, no database, no configuration lookups.
//!
//! The checksum is not a security feature (anyone can compute a CRC32); it lets the server reject
//! typos and garbage without touching the database, and lets secret scanners recognise a leaked
//! key with few false positives.

use std::fmt;

use secrecy::SecretString;
use subtle::ConstantTimeEq;

use crate::crypto::hmac::HmacKey;

pub const PREFIX: &str = "rk_";
/// Random characters after the prefix (32 × log2(62) ≈ 190 bits).
pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;
/// Total length of a key: 41 characters.
pub const KEY_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// Random characters shown in the display prefix (`rk_` + these).
pub const DISPLAY_CHARS: usize = 8;
/// Length of the stored HMAC-SHA256.
pub const HASH_LEN: usize = 32;

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented string is not a well-formed key. Never shown to the client (every failure is
/// the same 401); it exists for tests and debug logs, and never carries the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("wrong length")]
    Length,
    #[error("missing the rk_ prefix")]
    Prefix,
    #[error("a character outside base62")]
    Alphabet,
    #[error("checksum mismatch")]
    Checksum,
}

/// A presented string that has the shape and checksum of a key (it may still be unknown).
#[derive(Clone, Copy)]
pub struct WellFormed<'a> {
    key: &'a str,
}

impl<'a> WellFormed<'a> {
    pub fn as_str(&self) -> &'a str {
        self.key
    }

    /// `rk_` + the first 8 random characters: what lists and audit rows show.
    pub fn display_prefix(&self) -> &'a str {
        &self.key[..PREFIX.len() + DISPLAY_CHARS]
    }
}

impl fmt::Debug for WellFormed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WellFormed({}…)", self.display_prefix())
    }
}

/// Checks length, prefix, alphabet and checksum — a few dozen nanoseconds, no allocation.
pub fn parse(candidate: &str) -> Result<WellFormed<'_>, FormatError> {
    if candidate.len() != KEY_LEN {
        return Err(FormatError::Length);
    }
    let Some(rest) = candidate.strip_prefix(PREFIX) else {
        return Err(FormatError::Prefix);
    };
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(FormatError::Alphabet);
    }
    let (random, checksum) = rest.split_at(RANDOM_LEN);
    if checksum.as_bytes() != checksum_of(random.as_bytes()) {
        return Err(FormatError::Checksum);
    }
    Ok(WellFormed { key: candidate })
}

/// CRC32 (IEEE) of the random part as 6 base62 digits, most significant first, zero-padded
/// (62^6 > 2^32, so every value fits).
pub fn checksum_of(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(random);
    let mut out = [BASE62[0]; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// `rk_` + `random` + its checksum. `random` must be base62 (tests and benches build keys with it).
pub fn assemble(random: &str) -> String {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(PREFIX);
    key.push_str(random);
    key.extend(
        checksum_of(random.as_bytes())
            .iter()
            .map(|&b| char::from(b)),
    );
    key
}

/// A freshly generated key and its display prefix.
pub struct GeneratedKey {
    pub key: SecretString,
    pub prefix: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GeneratedKey({}…)", self.prefix)
    }
}

/// A new key from the operating system's RNG: 32 uniformly distributed base62 characters
/// (rejection sampling: bytes ≥ 248 are discarded so `b % 62` has no bias).
pub fn generate() -> Result<GeneratedKey, getrandom::Error> {
    let mut random = String::with_capacity(RANDOM_LEN);
    let mut buf = [0u8; 48];
    while random.len() < RANDOM_LEN {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            if b < 248 && random.len() < RANDOM_LEN {
                random.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    let key = assemble(&random);
    let prefix = key[..PREFIX.len() + DISPLAY_CHARS].to_string();
    Ok(GeneratedKey {
        key: SecretString::from(key),
        prefix,
    })
}

/// HMAC-SHA256 keyed with API_KEY_HASH_SECRET (as its UTF-8 bytes): what the database stores and
/// is searched by. A thin name over the one keyed-HMAC construction, `crypto::hmac::HmacKey`.
#[derive(Clone)]
pub struct ApiKeyHasher {
    key: HmacKey,
}

impl fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHasher(***REDACTED***)")
    }
}

impl ApiKeyHasher {
    pub fn new(key: HmacKey) -> ApiKeyHasher {
        ApiKeyHasher { key }
    }

    /// Keyed with `secret` as given (tests and benches).
    pub fn from_bytes(secret: &[u8]) -> ApiKeyHasher {
        ApiKeyHasher::new(HmacKey::new(secret))
    }

    pub fn hash(&self, key: &str) -> [u8; HASH_LEN] {
        key_hash(&self.key, key)
    }
}

/// HMAC-SHA256(`hmac`, key): the stored and searched form of an API key.
pub fn key_hash(hmac: &HmacKey, key: &str) -> [u8; HASH_LEN] {
    hmac.mac(&[key.as_bytes()])
}

/// Whether the stored hash equals the computed one, in time independent of where they differ.
pub fn hashes_match(stored: &[u8], computed: &[u8; HASH_LEN]) -> bool {
    hashes_match_observed(stored, computed, |_| {})
}

/// The comparison with a hook called for every byte position examined, so a test can prove the
/// code path never stops at the first difference. Each position is compared with `subtle`'s
/// `ConstantTimeEq` and the results are folded with a non-short-circuiting `&` on `Choice`
/// (the same construction as `subtle`'s slice impl); the length is not secret (always 32).
pub fn hashes_match_observed(
    stored: &[u8],
    computed: &[u8; HASH_LEN],
    mut visit: impl FnMut(usize),
) -> bool {
    let mut equal = stored.len().ct_eq(&HASH_LEN);
    for (i, b) in computed.iter().enumerate() {
        visit(i);
        let s = stored.get(i).copied().unwrap_or(!*b);
        equal &= s.ct_eq(b);
    }
    bool::from(equal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn random_part(key: &str) -> &str {
        &key[PREFIX.len()..PREFIX.len() + RANDOM_LEN]
    }

    #[test]
    fn generated_keys_have_the_designed_shape_and_parse() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let generated = generate().unwrap();
            let key = generated.key.expose_secret();
            assert_eq!(key.len(), 41);
            assert!(key.starts_with("rk_"));
            assert!(key[3..].bytes().all(|b| BASE62.contains(&b)));
            assert_eq!(generated.prefix, &key[..11]);
            let parsed = parse(key).unwrap();
            assert_eq!(parsed.display_prefix(), generated.prefix);
            assert!(seen.insert(key.to_string()));
        }
    }

    #[test]
    fn generation_uses_the_whole_alphabet() {
        let mut counts = [0usize; 62];
        for _ in 0..400 {
            let generated = generate().unwrap();
            for b in random_part(generated.key.expose_secret()).bytes() {
                counts[BASE62.iter().position(|c| *c == b).unwrap()] += 1;
            }
        }
        // 12 800 draws, ~206 per symbol: every symbol appears, none wildly over-represented.
        assert!(counts.iter().all(|&n| n > 100 && n < 350), "{counts:?}");
    }

    #[test]
    fn checksum_is_crc32_in_six_zero_padded_base62_digits() {
        let random = "0123456789abcdefghijABCDEFGHIJ01";
        let crc = crc32fast::hash(random.as_bytes());
        let digits = checksum_of(random.as_bytes());
        let decoded = digits.iter().fold(0u64, |acc, d| {
            acc * 62 + BASE62.iter().position(|c| c == d).unwrap() as u64
        });
        assert_eq!(decoded, u64::from(crc));
        // Known vector: CRC32("123456789") = 0xCBF43926 = 3421780262.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(&checksum_of(b"123456789"), b"3jZRME");
        // A CRC below 62^5 is zero-padded to six digits.
        let small = b"00000000000000000000000000000013";
        assert!(crc32fast::hash(small) < 62u32.pow(5));
        assert_eq!(checksum_of(small)[0], b'0');
    }

    #[test]
    fn malformed_keys_are_rejected_with_the_reason() {
        let good = assemble("AbCdEfGhIjKlMnOpQrStUvWxYz012345");
        assert!(parse(&good).is_ok());
        assert_eq!(parse("").unwrap_err(), FormatError::Length);
        assert_eq!(parse(&good[..40]).unwrap_err(), FormatError::Length);
        assert_eq!(parse(&format!("{good}x")).unwrap_err(), FormatError::Length);
        assert_eq!(
            parse(&good.replacen("rk_", "sk_", 1)).unwrap_err(),
            FormatError::Prefix
        );
        assert_eq!(
            parse(&good.replacen("rk_", "RK_", 1)).unwrap_err(),
            FormatError::Prefix
        );
        let mut bad_char = good.clone().into_bytes();
        bad_char[10] = b'-';
        assert_eq!(
            parse(std::str::from_utf8(&bad_char).unwrap()).unwrap_err(),
            FormatError::Alphabet
        );
        // Multi-byte characters of the right byte length never panic on slicing.
        let unicode = format!("rk_{}", "é".repeat(19));
        assert_eq!(unicode.len(), 41);
        assert_eq!(parse(&unicode).unwrap_err(), FormatError::Alphabet);
        // Any single-character change in the random part breaks the checksum.
        for i in 3..35 {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            assert_eq!(
                parse(std::str::from_utf8(&bytes).unwrap()).unwrap_err(),
                FormatError::Checksum,
                "position {i}"
            );
        }
        let mut bytes = good.clone().into_bytes();
        bytes[40] = if bytes[40] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            parse(std::str::from_utf8(&bytes).unwrap()).unwrap_err(),
            FormatError::Checksum
        );
    }

    #[test]
    fn the_hash_is_hmac_sha256_of_the_whole_key_and_debug_is_redacted() {
        let secret = SecretString::from("an-api-key-hash-secret-of-enough-length-0123");
        let hasher = ApiKeyHasher::from_bytes(secret.expose_secret().as_bytes());
        let key = assemble("AbCdEfGhIjKlMnOpQrStUvWxYz012345");
        use hmac::{Hmac, KeyInit, Mac};
        type HmacSha256 = Hmac<sha2::Sha256>;
        let mut expected =
            <HmacSha256 as KeyInit>::new_from_slice(secret.expose_secret().as_bytes()).unwrap();
        expected.update(key.as_bytes());
        let expected: [u8; 32] = expected.finalize().into_bytes().into();
        assert_eq!(hasher.hash(&key), expected);
        assert_ne!(
            ApiKeyHasher::from_bytes(b"another secret").hash(&key),
            expected
        );
        assert_eq!(format!("{hasher:?}"), "ApiKeyHasher(***REDACTED***)");
        let generated = generate().unwrap();
        let debug = format!("{generated:?}");
        assert!(!debug.contains(generated.key.expose_secret()), "{debug}");
        let parsed = parse(&key).unwrap();
        assert!(!format!("{parsed:?}").contains(&key));
    }

    #[test]
    fn comparison_examines_every_byte_wherever_the_first_difference_is() {
        let hasher = ApiKeyHasher::from_bytes(b"k");
        let computed = hasher.hash(&assemble("AbCdEfGhIjKlMnOpQrStUvWxYz012345"));
        let mut differ_first = computed;
        differ_first[0] ^= 0xff;
        let mut differ_last = computed;
        differ_last[HASH_LEN - 1] ^= 0x01;
        let cases: [(&[u8], bool); 5] = [
            (&computed, true),
            (&differ_first, false),
            (&differ_last, false),
            (&[0u8; HASH_LEN], false),
            (&computed[..16], false),
        ];
        for (stored, expected) in cases {
            let mut visited = Vec::new();
            assert_eq!(
                hashes_match_observed(stored, &computed, |i| visited.push(i)),
                expected
            );
            assert_eq!(visited, (0..HASH_LEN).collect::<Vec<_>>(), "no early exit");
            assert_eq!(hashes_match(stored, &computed), expected);
        }
    }
}
