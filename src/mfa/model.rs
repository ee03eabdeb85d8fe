//! The factors' pure parts: RFC 6238 TOTP (through `totp-rs`: SHA-1, 6 digits, 30-second steps,
//! ±1 step of skew — what every authenticator app reads), the enrolment QR code (drawn here as
//! SVG, no external service), and the recovery-code format. No database, no clock of its own:
//! every check takes `now`.

use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use uuid::Uuid;

use crate::db::schema::{mfa_recovery_codes, mfa_totp};

/// Digits of a code.
pub const DIGITS: u8 = 6;
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Steps accepted either side of the current one (clock drift, a code typed as it changes).
pub const SKEW_STEPS: u16 = 1;
/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;
/// Base32 characters of a recovery code: 4 (the lookup group, 20 bits) + 16 (80 secret bits).
const RECOVERY_CHARS: usize = 20;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mfa_totp)]
pub struct TotpRow {
    pub user_id: Uuid,
    pub data_key_id: Uuid,
    pub secret: String,
    pub created_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_step: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = mfa_totp)]
pub struct NewTotp<'a> {
    pub user_id: Uuid,
    pub data_key_id: Uuid,
    pub secret: &'a str,
    pub created_at: OffsetDateTime,
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_step: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mfa_recovery_codes)]
pub struct RecoveryRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub lookup: String,
    pub code_hash: String,
    pub created_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = mfa_recovery_codes)]
pub struct NewRecovery {
    pub id: Uuid,
    pub user_id: Uuid,
    pub lookup: String,
    pub code_hash: String,
    pub created_at: OffsetDateTime,
}

/// The TOTP generator for `secret` (raw bytes), labelled for `account` at `issuer`.
pub fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_issuer(Some(label(issuer)))
        .with_account_name(label(account))
        .build()
        .ok()
}

/// `otpauth` labels may not contain `:`; nothing else of a username or product name needs care.
fn label(text: &str) -> String {
    text.chars()
        .filter(|c| *c != ':' && !c.is_control())
        .take(64)
        .collect()
}

/// Unix seconds of `now`, 0 before the epoch (never, outside tests of absurd clocks).
pub fn unix(now: OffsetDateTime) -> u64 {
    u64::try_from(now.unix_timestamp()).unwrap_or(0)
}

/// The time step `code` is valid for at `now` (±[`SKEW_STEPS`]); `None` when it is not a code of
/// this secret then. Codes are exactly six ASCII digits; spaces a person typed are dropped.
pub fn check(totp: &Totp, code: &str, now: OffsetDateTime) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp.check(&code, unix(now))
        .and_then(|step| i64::try_from(step).ok())
}

/// The base32 form of a secret (what a person types into an app that cannot scan).
pub fn base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// The enrolment QR code of `uri` as an SVG document (no XML declaration: it is embedded in HTML
/// and JSON), dark modules on white, scaled for a phone camera.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    Some(match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg,
    })
}

/// A new recovery code: 20 base32 characters (100 random bits) shown in groups of four. The first
/// group finds the stored row; the other 80 bits are the secret.
pub fn new_recovery_code() -> Result<SecretString, getrandom::Error> {
    let bytes = crate::crypto::random::bytes(RECOVERY_CHARS)?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(BASE32[usize::from(b & 31)]))
        .collect();
    let groups: Vec<String> = chars.chunks(4).map(|g| g.iter().collect()).collect();
    Ok(SecretString::from(groups.join("-")))
}

/// A recovery code as typed (any case, with or without dashes or spaces) → its canonical form
/// (20 upper-case base32 characters); `None` when it cannot be one.
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == RECOVERY_CHARS && code.bytes().all(|b| BASE32.contains(&b))).then_some(code)
}

/// The lookup group of a canonical recovery code.
pub fn lookup_of(canonical: &str) -> String {
    canonical.chars().take(4).collect()
}

/// The canonical form of a freshly generated code (for hashing).
pub fn canonical(code: &SecretString) -> String {
    normalize_recovery_code(code.expose_secret()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    /// RFC 6238 Appendix B: the SHA-1 secret "12345678901234567890", 8 digits, 30-second steps.
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = b"12345678901234567890".to_vec();
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_skew(0)
            .with_step_duration(30)
            .with_secret(secret)
            .build()
            .unwrap();
        for (time, expected) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(time).to_string(), expected, "T = {time}");
            assert!(totp.check(expected, time).is_some());
        }
        // The same vectors truncated to our six digits are what our generator produces.
        let ours = super::totp(b"12345678901234567890", "rampart", "alice").unwrap();
        assert_eq!(ours.generate(59).to_string(), "287082");
        assert_eq!(ours.generate(1_111_111_109).to_string(), "081804");
        assert_eq!(ours.generate(1_234_567_890).to_string(), "005924");
    }

    #[test]
    fn one_step_of_skew_either_side_is_accepted_two_are_not() {
        let secret = [7u8; 20];
        let totp = super::totp(&secret, "rampart", "alice").unwrap();
        let t = 1_800_000_015u64;
        let code = totp.generate(t).to_string();
        let step = i64::try_from(t / 30).unwrap();
        assert_eq!(check(&totp, &code, at(1_800_000_015)), Some(step));
        assert_eq!(check(&totp, &code, at(1_800_000_015 + 30)), Some(step));
        assert_eq!(check(&totp, &code, at(1_800_000_015 - 30)), Some(step));
        assert_eq!(check(&totp, &code, at(1_800_000_015 + 60)), None);
        assert_eq!(check(&totp, &code, at(1_800_000_015 - 60)), None);
        assert_eq!(
            check(&totp, "12345", at(1_800_000_015)),
            None,
            "five digits"
        );
        assert_eq!(check(&totp, "12345a", at(1_800_000_015)), None);
        assert_eq!(
            check(&totp, "１２３４５６", at(1_800_000_015)),
            None,
            "fullwidth"
        );
    }

    #[test]
    fn otpauth_uri_and_qr_code_name_the_account_and_issuer() {
        let totp = super::totp(&[1u8; 20], "rampart", "alice").unwrap();
        let uri = totp.to_url().unwrap();
        assert!(uri.starts_with("otpauth://totp/rampart:alice?"), "{uri}");
        assert!(
            uri.contains(&format!("secret={}", base32(&[1u8; 20]))),
            "{uri}"
        );
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(!svg.contains("style"), "no inline style (console CSP)");
    }

    #[test]
    fn recovery_codes_have_100_random_bits_and_normalize() {
        let code = new_recovery_code().unwrap();
        let text = code.expose_secret().to_string();
        assert_eq!(text.len(), 24, "five groups of four with dashes: {text}");
        let canonical = normalize_recovery_code(&text).unwrap();
        assert_eq!(canonical.len(), 20);
        assert_eq!(
            normalize_recovery_code(&text.to_lowercase().replace('-', " ")),
            Some(canonical.clone())
        );
        assert_eq!(normalize_recovery_code("ABCD-EFGH"), None);
        assert_eq!(
            normalize_recovery_code("ABCD-EFGH-IJKL-MNOP-QRS1"),
            None,
            "1 is not base32"
        );
        assert_eq!(normalize_recovery_code(&"A".repeat(1_000_000)), None);
        assert_ne!(
            new_recovery_code().unwrap().expose_secret(),
            code.expose_secret()
        );
    }
}
