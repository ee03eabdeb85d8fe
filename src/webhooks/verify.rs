//! The two signature schemes, as pure functions: header bytes, body bytes, keys and the time in,
//! a verdict out. No I/O, no allocation proportional to anything but the header, no panics on any
//! input (the property tests in `tests` below feed them arbitrary bytes).
//!
//! Written here rather than taken from a crate: the Rust ports of the providers' SDKs (`stripe-rust`,
//! `svix`) pull in whole API clients, accept any future timestamp (Stripe) or leave the
//! multi-secret rotation to the caller, and neither verifies with our one HMAC construction
//! (`crypto::hmac::HmacKey`, constant-time comparison). The formats are small and fully specified:
//! - Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…][,v0=…]`, HMAC-SHA256 over
//!   `"<t>.<body>"`, keyed with the `whsec_…` string's UTF-8 bytes, lower-case hex.
//! - Standard Webhooks (Svix, Clerk): id, timestamp and a space-separated `v1,<base64>` list,
//!   HMAC-SHA256 over `"<id>.<timestamp>.<body>"`, keyed with the base64-decoded secret.
//!
//! Both accept a timestamp within ±tolerance of now in **both** directions.

use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::crypto::hmac::{HmacKey, TAG_LEN};

/// Headers longer than this are refused unparsed (a legitimate one is under 1 KiB even with a
/// few rolled secrets).
pub const MAX_HEADER_BYTES: usize = 8192;
/// Signatures looked at per header: more is not a secret roll but an attempt to make us work.
pub const MAX_SIGNATURES: usize = 16;

/// Why a delivery was refused. Recorded (aggregated) in the audit log; never told to the sender,
/// who gets one generic answer whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// A required header is absent (or not visible ASCII).
    MissingHeader,
    /// A header is present but not of the scheme's form.
    MalformedHeader,
    /// The header carries no signature of the scheme's version (`v1`).
    NoSignature,
    /// The timestamp is older than the tolerance.
    Stale,
    /// The timestamp is further in the future than the tolerance.
    Future,
    /// No signature matches any configured secret.
    BadSignature,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MissingHeader => "missing_header",
            Rejection::MalformedHeader => "malformed_header",
            Rejection::NoSignature => "no_signature",
            Rejection::Stale => "stale_timestamp",
            Rejection::Future => "future_timestamp",
            Rejection::BadSignature => "bad_signature",
        }
    }
}

/// A verified delivery: the signed timestamp and which secret matched (0 = the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    pub secret_index: usize,
}

/// A parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeHeader {
    pub timestamp: i64,
    /// The `v1` signatures, decoded; entries that are not 64 hex digits are kept as `None` (they
    /// can never match, but they do not make the header malformed: decoys are allowed).
    pub v1: Vec<Option<[u8; TAG_LEN]>>,
}

/// Parses `Stripe-Signature`. Refused: not visible ASCII, longer than [`MAX_HEADER_BYTES`], an
/// element not of the form `k=v` (empty key or value included), no `t` or a duplicated one, a `t`
/// that is not a plain decimal integer, no `v1`. Other schemes (`v0`, future ones) are ignored.
pub fn parse_stripe(header: &[u8]) -> Result<StripeHeader, Rejection> {
    if header.len() > MAX_HEADER_BYTES {
        return Err(Rejection::MalformedHeader);
    }
    let text = visible_ascii(header).ok_or(Rejection::MalformedHeader)?;
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for element in text.split(',') {
        let (key, value) = element
            .trim()
            .split_once('=')
            .ok_or(Rejection::MalformedHeader)?;
        if key.is_empty() || value.is_empty() {
            return Err(Rejection::MalformedHeader);
        }
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(Rejection::MalformedHeader);
                }
                timestamp = Some(parse_unix(value).ok_or(Rejection::MalformedHeader)?);
            }
            "v1" => {
                if v1.len() == MAX_SIGNATURES {
                    return Err(Rejection::MalformedHeader);
                }
                v1.push(decode_hex_tag(value));
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Rejection::MalformedHeader)?;
    if v1.is_empty() {
        return Err(Rejection::NoSignature);
    }
    Ok(StripeHeader { timestamp, v1 })
}

/// Verifies a Stripe delivery: header, then timestamp, then the signature against every key
/// (newest first). `keys` are the `whsec_…` strings' UTF-8 bytes.
pub fn verify_stripe(
    header: Option<&[u8]>,
    body: &[u8],
    keys: &[HmacKey],
    now: i64,
    tolerance: u64,
) -> Result<Verified, Rejection> {
    let parsed = parse_stripe(header.ok_or(Rejection::MissingHeader)?)?;
    check_time(parsed.timestamp, now, tolerance)?;
    let t = parsed.timestamp.to_string();
    for (index, key) in keys.iter().enumerate() {
        let expected = key.mac(&[t.as_bytes(), b".", body]);
        if any_matches(&expected, parsed.v1.iter().flatten()) {
            return Ok(Verified {
                timestamp: parsed.timestamp,
                secret_index: index,
            });
        }
    }
    Err(Rejection::BadSignature)
}

/// The three Standard Webhooks headers, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a [u8]>,
    pub timestamp: Option<&'a [u8]>,
    pub signature: Option<&'a [u8]>,
}

/// Parsed Standard Webhooks headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardParsed {
    pub id: String,
    pub timestamp: i64,
    /// The `v1` signatures, decoded (`None` for one that is not base64 of 32 bytes).
    pub v1: Vec<Option<[u8; TAG_LEN]>>,
}

/// Parses the Standard Webhooks headers. Refused: a header missing, not visible ASCII or too
/// long; an id that is empty, over 255 bytes or contains `.`; a timestamp that is not a plain
/// decimal integer; a signature header with no `v1` entry. Entries of other versions (`v1a`,
/// unknown ones) and entries without a `,` are ignored.
pub fn parse_standard(headers: &StandardHeaders<'_>) -> Result<StandardParsed, Rejection> {
    let id = headers.id.ok_or(Rejection::MissingHeader)?;
    let timestamp = headers.timestamp.ok_or(Rejection::MissingHeader)?;
    let signature = headers.signature.ok_or(Rejection::MissingHeader)?;
    if id.len() > 255 || timestamp.len() > 32 || signature.len() > MAX_HEADER_BYTES {
        return Err(Rejection::MalformedHeader);
    }
    let id = visible_ascii(id).ok_or(Rejection::MalformedHeader)?;
    if id.is_empty() || id.contains('.') {
        return Err(Rejection::MalformedHeader);
    }
    let timestamp = visible_ascii(timestamp)
        .and_then(parse_unix)
        .ok_or(Rejection::MalformedHeader)?;
    let signature = visible_ascii(signature).ok_or(Rejection::MalformedHeader)?;
    let mut v1 = Vec::new();
    for entry in signature.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, value)) = entry.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        if v1.len() == MAX_SIGNATURES {
            return Err(Rejection::MalformedHeader);
        }
        v1.push(decode_base64_tag(value));
    }
    if v1.is_empty() {
        return Err(Rejection::NoSignature);
    }
    Ok(StandardParsed {
        id: id.to_string(),
        timestamp,
        v1,
    })
}

/// Verifies a Standard Webhooks (Svix, Clerk) delivery. `keys` are the decoded secrets, newest
/// first. Returns the verified message id with the verdict.
pub fn verify_standard(
    headers: &StandardHeaders<'_>,
    body: &[u8],
    keys: &[HmacKey],
    now: i64,
    tolerance: u64,
) -> Result<(String, Verified), Rejection> {
    let parsed = parse_standard(headers)?;
    check_time(parsed.timestamp, now, tolerance)?;
    let t = parsed.timestamp.to_string();
    for (index, key) in keys.iter().enumerate() {
        let expected = key.mac(&[parsed.id.as_bytes(), b".", t.as_bytes(), b".", body]);
        if any_matches(&expected, parsed.v1.iter().flatten()) {
            return Ok((
                parsed.id,
                Verified {
                    timestamp: parsed.timestamp,
                    secret_index: index,
                },
            ));
        }
    }
    Err(Rejection::BadSignature)
}

/// `|now - timestamp| <= tolerance`, refusing in both directions.
pub fn check_time(timestamp: i64, now: i64, tolerance: u64) -> Result<(), Rejection> {
    let tolerance = i64::try_from(tolerance).unwrap_or(i64::MAX);
    let skew = now.saturating_sub(timestamp);
    if skew > tolerance {
        Err(Rejection::Stale)
    } else if skew < tolerance.saturating_neg() {
        Err(Rejection::Future)
    } else {
        Ok(())
    }
}

/// Compares against every candidate, each in constant time, without stopping at a match (the
/// position of the matching signature is not timed either).
fn any_matches<'a>(
    expected: &[u8; TAG_LEN],
    candidates: impl Iterator<Item = &'a [u8; TAG_LEN]>,
) -> bool {
    let mut found = subtle::Choice::from(0u8);
    for candidate in candidates {
        found |= expected.ct_eq(candidate);
    }
    found.into()
}

fn visible_ascii(bytes: &[u8]) -> Option<&str> {
    if bytes.iter().all(|b| (0x20..0x7f).contains(b)) {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// A Unix time in seconds: 1–12 decimal digits, nothing else (no sign, no spaces, no exponent).
fn parse_unix(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn decode_hex_tag(text: &str) -> Option<[u8; TAG_LEN]> {
    if text.len() != TAG_LEN * 2 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; TAG_LEN];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn decode_base64_tag(text: &str) -> Option<[u8; TAG_LEN]> {
    if text.len() > 64 {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    bytes.try_into().ok()
}

/// Signs like Stripe does (tests, benchmarks, and `rampart webhooks` tooling never sign
/// anything real with it).
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = HmacKey::new(secret.as_bytes()).mac(&[timestamp.to_string().as_bytes(), b".", body]);
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Signs like Svix/Clerk do: the `v1,<base64>` entry. `None` when the secret does not decode.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = crate::config::validate::standard_webhooks_key(secret)?;
    let tag = HmacKey::new(&key).mac(&[
        id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ]);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn standard_key(secret: &str) -> HmacKey {
        HmacKey::new(&crate::config::validate::standard_webhooks_key(secret).unwrap())
    }

    /// The Standard Webhooks specification's published vectors.
    #[test]
    fn standard_webhooks_published_vectors_verify() {
        let vectors = [
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#,
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            (
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                r#"{"email":"test@example.com","username":"test_user"}"#,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            ),
        ];
        for (secret, id, ts, body, expected) in vectors {
            assert_eq!(
                standard_signature(secret, id, ts, body.as_bytes()).unwrap(),
                expected
            );
            let ts_text = ts.to_string();
            let headers = StandardHeaders {
                id: Some(id.as_bytes()),
                timestamp: Some(ts_text.as_bytes()),
                signature: Some(expected.as_bytes()),
            };
            let keys = [standard_key(secret)];
            let (got_id, verified) =
                verify_standard(&headers, body.as_bytes(), &keys, ts, 300).unwrap();
            assert_eq!((got_id.as_str(), verified.secret_index), (id, 0));
            // One byte of the body changed.
            let mut changed = body.as_bytes().to_vec();
            changed[3] ^= 1;
            assert_eq!(
                verify_standard(&headers, &changed, &keys, ts, 300),
                Err(Rejection::BadSignature)
            );
        }
    }

    #[test]
    fn clerk_secrets_decode_with_or_without_padding_and_keygen_makes_usable_ones() {
        use crate::config::validate::{standard_webhooks_key, webhook_secret_list};
        let padded = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let bare = padded.trim_end_matches('=');
        assert_eq!(standard_webhooks_key(padded), standard_webhooks_key(bare));
        assert_eq!(standard_webhooks_key(padded).map(|k| k.len()), Some(32));
        assert_eq!(standard_webhooks_key("whsec_"), None);
        assert_eq!(standard_webhooks_key("whsec_***"), None);
        let block = crate::crypto::random::env_block().unwrap();
        for name in ["STRIPE_WEBHOOK_SECRET", "CLERK_WEBHOOK_SECRET"] {
            let line = block.lines().find(|l| l.starts_with(name)).unwrap();
            let value = line.split_once('=').unwrap().1;
            assert!(
                !value.ends_with('='),
                "{name}: no padding for a shell to strip"
            );
            assert_eq!(
                webhook_secret_list(name, value).map(|l| l.len()),
                Ok(1),
                "{name}"
            );
        }
        assert!(webhook_secret_list("CLERK_WEBHOOK_SECRET", "whsec_QUJD,").is_err());
    }

    #[test]
    fn stripe_headers_are_parsed_strictly() {
        let ok = parse_stripe(b"t=12,v1=zz,v0=abc,v2=x").unwrap();
        assert_eq!(ok.timestamp, 12);
        assert_eq!(ok.v1, vec![None]);
        for bad in [
            &b""[..],
            b"t=1",
            b"t=1,v0=ab",
            b"t=1,t=1,v1=ab",
            b"t=1.5,v1=ab",
            b"t=-1,v1=ab",
            b"t= 1,v1=ab",
            b"t=1,v1",
            b"t=1,v1=",
            b"t=1,=ab,v1=ab",
            b"t=1,,v1=ab",
            b"v1=ab",
            b"t=1,v1=ab\x00",
        ] {
            assert!(
                parse_stripe(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_stripe(b"t=1,v0=ab"), Err(Rejection::NoSignature));
    }

    #[test]
    fn time_is_checked_in_both_directions() {
        assert_eq!(check_time(1000, 1300, 300), Ok(()));
        assert_eq!(check_time(1000, 700, 300), Ok(()));
        assert_eq!(check_time(1000, 1301, 300), Err(Rejection::Stale));
        assert_eq!(check_time(1000, 699, 300), Err(Rejection::Future));
        assert_eq!(check_time(i64::MIN, i64::MAX, u64::MAX), Ok(()));
        assert_eq!(check_time(0, i64::MAX, 300), Err(Rejection::Stale));
    }

    #[test]
    fn any_v1_may_match_and_the_second_secret_works() {
        let body = br#"{"id":"evt_1"}"#;
        let old = "whsec_old_0123456789abcdefghijklmnop";
        let new = "whsec_new_0123456789abcdefghijklmnop";
        let keys = [HmacKey::new(new.as_bytes()), HmacKey::new(old.as_bytes())];
        let signed = stripe_signature(old, 100, body);
        let sig = signed.split_once(",v1=").unwrap().1;
        let header = format!("t=100,v1={},v1={sig},v0={sig}", "0".repeat(64));
        let verified = verify_stripe(Some(header.as_bytes()), body, &keys, 100, 300).unwrap();
        assert_eq!(verified.secret_index, 1);
        // Upper-case hex is not Stripe's encoding.
        let upper = format!("t=100,v1={}", sig.to_ascii_uppercase());
        assert_eq!(
            verify_stripe(Some(upper.as_bytes()), body, &keys, 100, 300),
            Err(Rejection::BadSignature)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_stripe_parser_never_panics(header in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_stripe(&header);
            let keys = [HmacKey::new(b"k")];
            let _ = verify_stripe(Some(&header), b"{}", &keys, 0, 300);
        }

        #[test]
        fn the_stripe_parser_never_panics_on_near_valid_headers(
            parts in proptest::collection::vec("(t|v1|v0|x|)(=|==|)[0-9a-f=,\\- ]{0,70}", 0..8)
        ) {
            let header = parts.join(",");
            let _ = parse_stripe(header.as_bytes());
        }

        #[test]
        fn the_standard_parser_never_panics(
            id in proptest::collection::vec(any::<u8>(), 0..300),
            ts in proptest::collection::vec(any::<u8>(), 0..40),
            sig in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let headers = StandardHeaders { id: Some(&id), timestamp: Some(&ts), signature: Some(&sig) };
            let _ = parse_standard(&headers);
            let keys = [HmacKey::new(b"k")];
            let _ = verify_standard(&headers, b"{}", &keys, 0, 300);
        }

        #[test]
        fn the_standard_parser_never_panics_on_near_valid_headers(
            entries in proptest::collection::vec("(v1|v1a|v2|)(,|)[A-Za-z0-9+/=]{0,60}", 0..8),
            ts in "[0-9]{0,14}",
        ) {
            let sig = entries.join(" ");
            let headers = StandardHeaders {
                id: Some(b"msg_1"),
                timestamp: Some(ts.as_bytes()),
                signature: Some(sig.as_bytes()),
            };
            let _ = parse_standard(&headers);
        }
    }
}
