//! The `check-config` rules: is this configuration safe to run?
//!
//! Every rule reports a `Problem` naming the variable and the fix, never the value. All problems are
//! collected (not just the first) so an operator can fix everything in one go. Production refuses
//! to start on any problem; development prints them as warnings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use secrecy::ExposeSecret;
use zxcvbn::matching::patterns::MatchPattern;

use super::settings::{Environment, Settings};

/// The values shipped in `.env.example`: a secret equal to one of them is a placeholder.
const ENV_EXAMPLE: &str = include_str!("../../.env.example");

/// Substrings that mark a value as a placeholder rather than a generated secret.
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "secret",
    "password",
    "passwd",
    "your-secret-key",
    "your_secret_key",
    "dev-specific-key-here",
    "example",
    "placeholder",
    "replace",
    "insecure",
    "default",
    "12345678",
    "qwerty",
];

pub const MIN_SECRET_BYTES: usize = 32;
/// Estimated entropy floor for a secret: a 32-character random hex string (128 bits) clears it;
/// 32 decimal digits (106 bits) do not.
const MIN_SECRET_BITS: f64 = 120.0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub variable: &'static str,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} — fix: {}", self.variable, self.message, self.fix)
    }
}

fn problem(variable: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem {
        variable,
        message: message.into(),
        fix: fix.into(),
    }
}

const KEYGEN_FIX: &str = "generate a fresh value with `rampart keygen`";

/// Every problem with `settings`, in a stable order.
pub fn check(settings: &Settings) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_secrets(settings, &mut problems);
    check_previous_encryption_keys(settings, &mut problems);
    check_tokens(settings, &mut problems);
    check_identity(settings, &mut problems);
    if settings.email.backend == super::settings::EmailBackend::Smtp
        && settings.email.smtp_url.is_none()
    {
        problems.push(problem(
            "SMTP_URL",
            "is not set, but mail is sent over SMTP (EMAIL_BACKEND=smtp, the production default)",
            "set SMTP_URL (smtps://user:password@host:465 or smtp://host:587?tls=required)",
        ));
    }
    if settings.environment == Environment::Production {
        check_production(settings, &mut problems);
    }
    if settings.cors.allow_all_origins && settings.cors.allow_credentials {
        problems.push(problem(
            "CORS_ALLOW_CREDENTIALS",
            "is true together with ALLOW_ALL_ORIGINS=true, which would let any site make credentialed requests",
            "list the allowed origins in CORS_ORIGINS and set ALLOW_ALL_ORIGINS=false",
        ));
    }
    problems
}

fn check_secrets(settings: &Settings, problems: &mut Vec<Problem>) {
    let example_values = example_values();
    let mut seen: BTreeMap<&str, &'static str> = BTreeMap::new();
    for (name, value) in settings.secrets.iter() {
        let Some(value) = value else {
            problems.push(problem(name, "is not set", KEYGEN_FIX));
            continue;
        };
        let value = value.expose_secret();
        // The webhook secrets are lists (newest first, for rotation): each one is checked.
        let values = if WEBHOOK_SECRETS.contains(&name) {
            match webhook_secret_list(name, value) {
                Ok(list) => list,
                Err(issue) => {
                    problems.push(problem(name, issue, WEBHOOK_FIX));
                    continue;
                }
            }
        } else {
            vec![value]
        };
        for value in values {
            if let Some(first) = seen.get(value) {
                problems.push(problem(
                    name,
                    format!("has the same value as {first}; every secret must be different"),
                    KEYGEN_FIX,
                ));
            } else {
                seen.insert(value, name);
            }
            if let Some(issue) = secret_weakness(name, value, &example_values) {
                problems.push(problem(name, issue, KEYGEN_FIX));
            }
        }
    }
    // Optional secrets: unset turns their feature off; set, they meet the same bar.
    for (name, value) in settings.secrets.optional() {
        let Some(value) = value else { continue };
        let value = value.expose_secret();
        if let Some(first) = seen.get(value) {
            problems.push(problem(
                name,
                format!("has the same value as {first}; every secret must be different"),
                OPTIONAL_SECRET_FIX,
            ));
        } else {
            seen.insert(value, name);
        }
        if let Some(issue) = secret_weakness(name, value, &example_values) {
            problems.push(problem(name, issue, OPTIONAL_SECRET_FIX));
        }
    }
}

const PREVIOUS_KEYS_FIX: &str = "list the former ENCRYPTION_KEY values exactly as they were, newest first, \
                                 separated by commas, each once";

/// ENCRYPTION_KEYS_PREVIOUS: every entry a Fernet key, none repeated, none the current
/// ENCRYPTION_KEY. Entries are named by their 1-based position, never by their value.
fn check_previous_encryption_keys(settings: &Settings, problems: &mut Vec<Problem>) {
    const NAME: &str = "ENCRYPTION_KEYS_PREVIOUS";
    let current = settings
        .secrets
        .encryption_key
        .as_ref()
        .map(|k| k.expose_secret().trim());
    let mut seen: Vec<&str> = Vec::new();
    for (i, key) in settings.secrets.encryption_keys_previous.iter().enumerate() {
        let n = i + 1;
        let value = key.expose_secret().trim();
        if fernet::Fernet::new(value).is_none() {
            problems.push(problem(
                NAME,
                format!(
                    "entry {n} is not a valid Fernet key (32 bytes, url-safe base64, 44 characters)"
                ),
                PREVIOUS_KEYS_FIX,
            ));
            continue;
        }
        if current == Some(value) {
            problems.push(problem(
                NAME,
                format!("entry {n} is the current ENCRYPTION_KEY"),
                "remove it: ENCRYPTION_KEY already unwraps what it wrapped",
            ));
        } else if let Some(first) = seen.iter().position(|v| *v == value) {
            problems.push(problem(
                NAME,
                format!("entry {n} repeats entry {}", first + 1),
                PREVIOUS_KEYS_FIX,
            ));
        }
        seen.push(value);
    }
}

/// The problems of live data keys wrapped under master keys (by id, with their counts) that are
/// not configured: what they encrypt is unreadable until the key is configured again. Found by
/// `rampart check-config` when the database answers.
pub fn unconfigured_master_keys(unconfigured: &[(&str, i64)]) -> Vec<Problem> {
    unconfigured
        .iter()
        .map(|(id, n)| {
            problem(
                "ENCRYPTION_KEYS_PREVIOUS",
                format!(
                    "{n} live data key(s) are wrapped under master key {id}, which is not configured; \
                     what they encrypt cannot be read"
                ),
                format!(
                    "add the key whose id is {id} to ENCRYPTION_KEYS_PREVIOUS, restart, and run \
                     `rampart keys rotate-encryption`"
                ),
            )
        })
        .collect()
}

const OPTIONAL_SECRET_FIX: &str = "paste the provider's secret exactly as it shows it (rotate it there if it is weak), or unset it";

/// Why `raw` is not acceptable as an identity provider's issuer/JWKS base URL, or `None`. https
/// always; plain http only outside production and only to a loopback host (local test servers).
pub fn provider_url_issue(raw: &str, production: bool) -> Option<String> {
    let Ok(url) = url::Url::parse(raw) else {
        return Some("is not a valid URL".into());
    };
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Some("must not carry a query, a fragment or credentials".into());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Some("has no host".into()),
    };
    match url.scheme() {
        "https" => None,
        "http" if production => Some("is plain http in production".into()),
        "http" if loopback => None,
        "http" => Some("is plain http to a host that is not loopback".into()),
        other => Some(format!("has the scheme `{other}`, not https")),
    }
}

/// The modulus and exponent (big-endian) of an RSA public key of at least 2048 bits in PEM
/// (SPKI `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY`), or `None`.
pub fn rsa_public_key_pem(pem: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::pkcs8::DecodePublicKey as _;
    use rsa::traits::PublicKeyParts as _;
    let pem = pem.trim();
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .ok()?;
    (key.size() >= 256).then(|| (key.n().to_bytes_be(), key.e().to_bytes_be()))
}

fn check_identity(settings: &Settings, problems: &mut Vec<Problem>) {
    let production = settings.environment == Environment::Production;
    let id = &settings.identity;
    if let Some(url) = &id.supabase_url
        && let Some(issue) = provider_url_issue(url, production)
    {
        problems.push(problem(
            "SUPABASE_URL",
            issue,
            "use the project URL as Supabase shows it (https://<ref>.supabase.co)",
        ));
    }
    if let Some(url) = &id.clerk_issuer
        && let Some(issue) = provider_url_issue(url, production)
    {
        problems.push(problem(
            "CLERK_ISSUER",
            issue,
            "use the Frontend API URL as Clerk shows it (https://…clerk.accounts.dev or your domain)",
        ));
    }
    if let Some(pem) = &id.clerk_jwt_key {
        if rsa_public_key_pem(pem).is_none() {
            problems.push(problem(
                "CLERK_JWT_KEY",
                "is not an RSA public key (2048 bits or more) in PEM",
                "paste the PEM public key from Clerk's API keys page (`\n` for line breaks)",
            ));
        }
        if id.clerk_issuer.is_none() {
            problems.push(problem(
                "CLERK_JWT_KEY",
                "is set without CLERK_ISSUER, so the issuer of Clerk tokens could not be checked",
                "set CLERK_ISSUER to the Frontend API URL as well",
            ));
        }
    }
    if !id.clerk_authorized_parties.is_empty() && id.clerk_issuer.is_none() {
        problems.push(problem(
            "CLERK_AUTHORIZED_PARTIES",
            "is set but Clerk is not configured",
            "set CLERK_ISSUER, or unset CLERK_AUTHORIZED_PARTIES",
        ));
    }
    for party in &id.clerk_authorized_parties {
        if let Some(issue) = provider_url_issue(party, production) {
            problems.push(problem(
                "CLERK_AUTHORIZED_PARTIES",
                format!("contains an origin that {issue}"),
                "list the origins of your front ends (https://app.example.org), comma-separated",
            ));
        }
    }
    if settings.secrets.supabase_jwt_secret.is_some() && id.supabase_url.is_none() {
        problems.push(problem(
            "SUPABASE_JWT_SECRET",
            "is set without SUPABASE_URL, so the issuer of Supabase tokens could not be checked",
            "set SUPABASE_URL to the project URL as well",
        ));
    }
}

/// The secrets that are comma-separated lists of provider-issued signing secrets.
pub const WEBHOOK_SECRETS: [&str; 2] = ["STRIPE_WEBHOOK_SECRET", "CLERK_WEBHOOK_SECRET"];
const WEBHOOK_FIX: &str = "paste the signing secret(s) exactly as the provider shows them \
                           (`whsec_…`), newest first, separated by commas";

/// The secrets of a webhook secret list (`whsec_a,whsec_b`, newest first), each checked for its
/// provider's shape: any non-empty text for Stripe (its key is the whole string), `whsec_` +
/// base64 of a non-empty key for Clerk/Svix. Used by `check-config` and, at start, by the
/// webhook verifiers (a bad list stops the service in every environment).
pub fn webhook_secret_list<'a>(name: &str, raw: &'a str) -> Result<Vec<&'a str>, String> {
    let list: Vec<&str> = raw.split(',').map(str::trim).collect();
    if list.iter().any(|s| s.is_empty()) {
        return Err("has an empty entry in its comma-separated list".into());
    }
    if name == "CLERK_WEBHOOK_SECRET" {
        for (i, secret) in list.iter().enumerate() {
            if standard_webhooks_key(secret).is_none() {
                return Err(format!(
                    "entry {} is not `whsec_` followed by the base64 of a non-empty key",
                    i + 1
                ));
            }
        }
    }
    Ok(list)
}

/// The HMAC key of a Standard Webhooks (Svix, Clerk) secret: the base64 after `whsec_` (the
/// prefix is optional, as in the reference libraries). `None` when it is empty or not base64.
pub fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    // Padding is optional: a secret pasted through a shell or a dotenv parser may lose its `=`.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = LENIENT.decode(encoded).ok()?;
    (!key.is_empty()).then_some(key)
}

/// Why `value` is not acceptable as the secret `name`, or `None` when it is.
pub fn secret_weakness(name: &str, value: &str, example_values: &[String]) -> Option<String> {
    if example_values.iter().any(|e| e == value) {
        return Some("is the placeholder value from .env.example".into());
    }
    if name == "ENCRYPTION_KEY" {
        // A Fernet key is exactly 32 random bytes, url-safe base64: the only shape that works.
        if fernet::Fernet::new(value).is_none() {
            return Some(
                "is not a valid Fernet key (32 bytes, url-safe base64, 44 characters)".into(),
            );
        }
    }
    if value.len() < MIN_SECRET_BYTES {
        return Some(format!(
            "is too short ({} bytes; at least {MIN_SECRET_BYTES} are required)",
            value.len()
        ));
    }
    let lower = value.to_ascii_lowercase();
    if let Some(word) = PLACEHOLDERS.iter().find(|w| lower.contains(*w)) {
        return Some(format!("looks like a placeholder (contains `{word}`)"));
    }
    if is_repetitive(value) {
        return Some("is made of repeated characters or a repeated pattern".into());
    }
    if is_human_chosen(value) {
        return Some("is made of words or keyboard patterns, not random bytes".into());
    }
    let bits = estimated_bits(value);
    if bits < MIN_SECRET_BITS {
        return Some(format!(
            "has too little estimated entropy (≈{bits:.0} bits; at least {MIN_SECRET_BITS:.0} are required)"
        ));
    }
    None
}

/// Few distinct characters, or the whole value is one short unit repeated.
fn is_repetitive(value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 {
        return true;
    }
    (1..=chars.len() / 2).any(|period| {
        chars.len().is_multiple_of(period) && chars.chunks(period).all(|c| c == &chars[..period])
    })
}

/// Entropy estimate: length × log2 of the alphabet the value draws from (hex, digits, lower,
/// upper, symbols), unless the characters are skewed (observed Shannon entropy under 60% of that),
/// in which case the Shannon figure.
pub fn estimated_bits(value: &str) -> f64 {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len() as f64;
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    for c in &chars {
        *counts.entry(*c).or_default() += 1;
    }
    let shannon: f64 = counts
        .values()
        .map(|&count| {
            let p = count as f64 / n;
            -p * p.log2()
        })
        .sum::<f64>()
        * n;
    let is_hex = chars.iter().all(|c| c.is_ascii_hexdigit())
        && chars.iter().any(|c| c.is_ascii_alphabetic())
        && (chars.iter().all(|c| !c.is_ascii_uppercase())
            || chars.iter().all(|c| !c.is_ascii_lowercase()));
    let alphabet = if is_hex {
        16.0
    } else {
        let mut size = 0.0;
        if chars.iter().any(|c| c.is_ascii_digit()) {
            size += 10.0;
        }
        if chars.iter().any(|c| c.is_ascii_lowercase()) {
            size += 26.0;
        }
        if chars.iter().any(|c| c.is_ascii_uppercase()) {
            size += 26.0;
        }
        if chars.iter().any(|c| !c.is_ascii_alphanumeric()) {
            size += 33.0;
        }
        f64::max(size, 2.0)
    };
    let alphabet_bits = n * f64::log2(alphabet);
    if shannon < 0.6 * alphabet_bits {
        shannon
    } else {
        alphabet_bits
    }
}

/// True when zxcvbn explains at least half of the value as words, names, keyboard walks,
/// sequences, repeats or dates: a human-chosen phrase, however long. (zxcvbn's guess count
/// saturates at 2^64, so the share of recognised patterns is the useful signal for long values.)
pub fn is_human_chosen(value: &str) -> bool {
    // zxcvbn is run on overlapping 16-character windows (stride 8): on a whole long value its
    // guess count saturates and it stops reporting the patterns it sees, and fixed windows would
    // cut words in two. 64 characters are plenty to judge by.
    let chars: Vec<char> = value.chars().take(64).collect();
    let mut covered = vec![false; chars.len()];
    let mut start = 0;
    while start < chars.len() {
        let end = (start + 16).min(chars.len());
        let window: String = chars[start..end].iter().collect();
        for m in zxcvbn::zxcvbn(&window, &[]).sequence() {
            // Short tokens, short repeats (`7a7a`, `ebeb`) and digit runs (dates, years) turn up
            // in random hex too: only longer human patterns count.
            let len = m.token.chars().count();
            let counts = match m.pattern {
                MatchPattern::Dictionary(_)
                | MatchPattern::Spatial(_)
                | MatchPattern::Sequence(_) => len >= 4,
                MatchPattern::Repeat(_) => len >= 6,
                _ => false,
            };
            if counts {
                for flag in covered.iter_mut().skip(start + m.i).take(m.j + 1 - m.i) {
                    *flag = true;
                }
            }
        }
        if end == chars.len() {
            break;
        }
        start += 8;
    }
    // At least 60%: phrases and walks are covered far beyond that; random keys nowhere near.
    covered.iter().filter(|c| **c).count() * 5 >= chars.len() * 3
}

fn example_values() -> Vec<String> {
    ENV_EXAMPLE
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (_, value) = line.split_once('=')?;
            let value = value.trim().trim_matches('"').trim_matches('\'');
            (!value.is_empty()).then(|| value.to_string())
        })
        .collect()
}

fn check_tokens(settings: &Settings, problems: &mut Vec<Problem>) {
    let auth = &settings.auth;
    match auth.jwt_algorithm.as_str() {
        "HS256" => {}
        "EdDSA" | "ES256" => {
            match &auth.jwt_private_key_file {
                None => problems.push(problem(
                    "JWT_PRIVATE_KEY_FILE",
                    format!("is required with JWT_ALGORITHM={}", auth.jwt_algorithm),
                    "point it at the PKCS#8 PEM private key that signs access tokens",
                )),
                Some(path) if !path.is_file() => problems.push(problem(
                    "JWT_PRIVATE_KEY_FILE",
                    format!("names {}, which is not a readable file", path.display()),
                    "point it at the PKCS#8 PEM private key",
                )),
                Some(_) => {}
            }
            if auth.jwt_public_key_files.is_empty() {
                problems.push(problem(
                    "JWT_PUBLIC_KEY_FILES",
                    format!("is required with JWT_ALGORITHM={}", auth.jwt_algorithm),
                    "list kid=path entries for the public keys, newest (the signing key's) first",
                ));
            }
            for (kid, path) in &auth.jwt_public_key_files {
                if !path.is_file() {
                    problems.push(problem(
                        "JWT_PUBLIC_KEY_FILES",
                        format!(
                            "entry `{kid}` names {}, which is not a readable file",
                            path.display()
                        ),
                        "fix the path",
                    ));
                }
            }
        }
        other => problems.push(problem(
            "JWT_ALGORITHM",
            format!("`{other}` is not allowed (RS256 and `none` are refused for our own tokens)"),
            "use HS256, EdDSA or ES256",
        )),
    }
    if auth.access_token_ttl.as_secs() < 60 || auth.access_token_ttl.as_secs() > 3600 {
        problems.push(problem(
            "ACCESS_TOKEN_TTL_SECONDS",
            "is outside 60–3600 seconds",
            "keep access tokens short-lived (default 900); refresh tokens carry the long session",
        ));
    }
}

/// Mail in production: an SMTP server configured, never the log (reset links would be logged), never plain SMTP across a
/// network, links to an https client.
fn check_production_email(settings: &Settings, problems: &mut Vec<Problem>) {
    use super::settings::EmailBackend;
    let email = &settings.email;
    if email.backend == EmailBackend::Log {
        problems.push(problem(
            "EMAIL_BACKEND",
            "is log in production: one-time links would be written to the log",
            "set EMAIL_BACKEND=smtp and SMTP_URL",
        ));
    }
    if let Some(url) = email
        .smtp_url
        .as_ref()
        .and_then(|u| url::Url::parse(u.expose_secret()).ok())
    {
        let tls_required = url.scheme() == "smtps"
            || url
                .query_pairs()
                .any(|(k, v)| k == "tls" && v == "required");
        // smtp: is not a "special" scheme, so the URL crate leaves its host as text.
        let loopback = url.host_str().is_some_and(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        });
        if !tls_required && !loopback {
            problems.push(problem(
                "SMTP_URL",
                "sends mail over plain SMTP to a host that is not this machine",
                "use smtps://host:465 (implicit TLS) or smtp://host:587?tls=required (STARTTLS)",
            ));
        }
    }
    if !email.public_base_url.starts_with("https://") {
        problems.push(problem(
            "PUBLIC_BASE_URL",
            "is not an https URL in production (the links in mails point there)",
            "set PUBLIC_BASE_URL to the https address of your client app",
        ));
    }
}

fn check_production(settings: &Settings, problems: &mut Vec<Problem>) {
    check_production_email(settings, problems);
    if settings.debug {
        problems.push(problem("DEBUG", "is true in production", "set DEBUG=false"));
    }
    if settings.cors.allow_all_origins {
        problems.push(problem(
            "ALLOW_ALL_ORIGINS",
            "is true in production",
            "set ALLOW_ALL_ORIGINS=false and list the allowed origins in CORS_ORIGINS",
        ));
    }
    if settings.cors.origins.is_empty() {
        problems.push(problem(
            "CORS_ORIGINS",
            "is empty in production",
            "list the https origins of your front ends, comma-separated",
        ));
    }
    for origin in &settings.cors.origins {
        if !origin.starts_with("https://") {
            problems.push(problem(
                "CORS_ORIGINS",
                format!("contains `{origin}`, which is not an https origin"),
                "use https:// origins only in production",
            ));
        }
    }
    if let Some(issue) = database_tls_issue(settings.database.url.expose_secret()) {
        problems.push(problem(
            "DATABASE_URL",
            issue,
            "add sslmode=require (or verify-full) to DATABASE_URL, or set DATABASE_SSLMODE",
        ));
    }
    if !settings.enable_audit_logging {
        problems.push(problem(
            "ENABLE_AUDIT_LOGGING",
            "is false in production",
            "set ENABLE_AUDIT_LOGGING=true; the audit log is required in production",
        ));
    }
    if !settings.rate_limit.enabled {
        problems.push(problem(
            "RATE_LIMIT_ENABLED",
            "is false in production",
            "set RATE_LIMIT_ENABLED=true",
        ));
    }
}

/// A remote database must be reached over TLS; loopback and Unix sockets need not.
fn database_tls_issue(raw: &str) -> Option<String> {
    let Ok(url) = url::Url::parse(raw) else {
        return Some("is not a valid postgres:// URL".into());
    };
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let host = query
        .get("host")
        .cloned()
        .or_else(|| url.host_str().map(str::to_string))
        .unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.is_empty()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if local {
        return None;
    }
    match query.get("sslmode").map(String::as_str) {
        Some("require" | "verify-ca" | "verify-full") => None,
        Some(mode) => Some(format!(
            "uses sslmode={mode} for the remote host {host}; traffic could go unencrypted"
        )),
        None => Some(format!(
            "has no sslmode for the remote host {host}; traffic could go unencrypted"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_and_walks_are_human_chosen() {
        for v in [
            "correct-horse-battery-staple-correct-horse",
            "mysupersecurekeythatnobodywillguess123",
            "qwertyuiopasdfghjklzxcvbnm1234567890",
            "abcdefghijklmnopqrstuvwxyz0123456789",
        ] {
            assert!(is_human_chosen(v), "{v}");
        }
    }

    #[test]
    fn random_hex_with_short_repeats_is_not_a_phrase() {
        // Seen as a false positive once: `7a7a` and `ebeb` are repeats, not a human pattern.
        assert!(!is_human_chosen("7a7a1154e2ebeb8196ea253a1506667a"));
    }

    #[test]
    fn generated_keys_are_accepted() {
        for _ in 0..3000 {
            let hex: String = crate::crypto::random::bytes(16)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            for v in [
                hex,
                crate::crypto::random::secret_string().unwrap(),
                crate::crypto::random::fernet_key().unwrap(),
            ] {
                assert!(!is_human_chosen(&v), "false positive: {v}");
                assert!(estimated_bits(&v) >= MIN_SECRET_BITS, "low estimate: {v}");
            }
        }
    }
}
