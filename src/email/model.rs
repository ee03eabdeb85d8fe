//! What the outbox holds and the kinds of mail rampart sends. Pure: no database, no network.

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::schema::{email_outbox, email_tokens};

/// Every kind of mail. The notifications (security notices) can each be switched off by the
/// operator (`EMAIL_NOTIFICATIONS_OFF`); the link mails (verification, email change, password
/// reset) cannot: without them the flows they belong to would not work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    VerifyEmail,
    EmailChangeConfirm,
    EmailChangeRequested,
    PasswordReset,
    PasswordChanged,
    EmailChanged,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed,
    ApiKeyCreated,
    NewDevice,
    AccountLocked,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::VerifyEmail,
        Kind::EmailChangeConfirm,
        Kind::EmailChangeRequested,
        Kind::PasswordReset,
        Kind::PasswordChanged,
        Kind::EmailChanged,
        Kind::MfaEnabled,
        Kind::MfaDisabled,
        Kind::RecoveryCodeUsed,
        Kind::ApiKeyCreated,
        Kind::NewDevice,
        Kind::AccountLocked,
    ];

    /// The stored name, also the name `EMAIL_NOTIFICATIONS_OFF` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VerifyEmail => "verify_email",
            Kind::EmailChangeConfirm => "email_change_confirm",
            Kind::EmailChangeRequested => "email_change_requested",
            Kind::PasswordReset => "password_reset",
            Kind::PasswordChanged => "password_changed",
            Kind::EmailChanged => "email_changed",
            Kind::MfaEnabled => "mfa_enabled",
            Kind::MfaDisabled => "mfa_disabled",
            Kind::RecoveryCodeUsed => "recovery_code_used",
            Kind::ApiKeyCreated => "api_key_created",
            Kind::NewDevice => "new_device",
            Kind::AccountLocked => "account_locked",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A security notice (switchable), as opposed to a mail that carries a one-time link.
    pub fn is_notification(self) -> bool {
        !matches!(
            self,
            Kind::VerifyEmail | Kind::EmailChangeConfirm | Kind::PasswordReset
        )
    }
}

/// Where an outbox row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Sent,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_outbox)]
pub struct OutboxRow {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub user_id: Option<Uuid>,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = email_outbox)]
pub struct NewOutbox<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub recipient: &'a str,
    pub user_id: Option<Uuid>,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: &'a str,
    pub status: &'a str,
    pub attempts: i32,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

/// What a one-time link token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Verify the account's address (`email` = the address).
    Verify,
    /// Change the address to `email` once this link is used.
    ChangeEmail,
    /// Set a new password.
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Verify => "verify",
            Purpose::ChangeEmail => "change_email",
            Purpose::PasswordReset => "password_reset",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_tokens)]
pub struct TokenRow {
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub purpose: String,
    pub email: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

/// `alice@example.org` → `a***@example.org` (the console's outbox page).
pub fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

/// The retry delay after `attempts` failed tries: base × 2^(attempts−1), at most a day.
pub fn backoff(attempts: i32, base: std::time::Duration) -> std::time::Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    base.saturating_mul(1u32 << doublings)
        .min(std::time::Duration::from_secs(86_400))
}

/// The browser family of a user agent (for "sign-in from a new device"): coarse on purpose, so
/// a browser update is not a new device.
pub fn agent_family(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or_default();
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.starts_with("curl/") {
        "curl"
    } else if ua.is_empty() {
        "unknown"
    } else {
        "other"
    };
    let os = if ua.contains("Android") {
        "Android"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        "other"
    };
    format!("{browser} on {os}")
}

/// The network of an address for "new device": its /24 (IPv4) or /48 (IPv6).
pub fn network_of(ip: Option<std::net::IpAddr>) -> String {
    match ip {
        Some(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Some(std::net::IpAddr::V6(v6)) => {
            // An IPv4-mapped address is the IPv4 client it carries.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return network_of(Some(std::net::IpAddr::V4(v4)));
            }
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_link_mails_are_not_switchable() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert!(!Kind::PasswordReset.is_notification());
        assert!(!Kind::VerifyEmail.is_notification());
        assert!(Kind::NewDevice.is_notification());
    }

    #[test]
    fn masks_keep_the_domain_only() {
        assert_eq!(mask("alice@example.org"), "a***@example.org");
        assert_eq!(mask("nonsense"), "***");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = std::time::Duration::from_secs(30);
        assert_eq!(backoff(1, base).as_secs(), 30);
        assert_eq!(backoff(2, base).as_secs(), 60);
        assert_eq!(backoff(4, base).as_secs(), 240);
        assert_eq!(backoff(40, base).as_secs(), 86_400);
    }

    #[test]
    fn devices_are_a_browser_family_and_a_network() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(agent_family(Some(firefox)), "Firefox on Linux");
        let newer = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(agent_family(Some(newer)), agent_family(Some(firefox)));
        assert_eq!(
            network_of(Some("203.0.113.77".parse().unwrap())),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of(Some("2001:db8:1:2:3::9".parse().unwrap())),
            "2001:db8:1::/48"
        );
        assert_eq!(
            network_of(Some("::ffff:203.0.113.9".parse().unwrap())),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of(Some("2001:DB8:1:ffff::1".parse().unwrap())),
            network_of(Some("2001:db8:1::2".parse().unwrap()))
        );
    }
}
