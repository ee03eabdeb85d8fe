//! The inbox's vocabulary: providers, outcomes, the `webhook_events` and `subscriptions` rows,
//! and the few fields rampart reads from each provider's events. No I/O.

use diesel::prelude::*;
use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::schema::{subscriptions, webhook_events};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    Stripe,
    Clerk,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Stripe, Provider::Clerk];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Clerk => "clerk",
        }
    }

    pub fn parse(raw: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

/// What processing a delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied.
    Processed,
    /// Verified and stored, nothing to do (an event type rampart does not act on).
    Ignored,
    /// Verified and stored; applying it failed (see `error`); can be replayed.
    Failed,
    /// A redelivery of an event already in the inbox (only ever an answer, never a stored row:
    /// the row keeps its outcome and counts the delivery).
    Duplicate,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Processed,
        Outcome::Duplicate,
        Outcome::Ignored,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Ignored => "ignored",
            Outcome::Failed => "failed",
            Outcome::Duplicate => "duplicate",
        }
    }

    pub fn parse(raw: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == raw)
    }
}

/// A `webhook_events` row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct WebhookEvent {
    pub id: Uuid,
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub received_at: OffsetDateTime,
    pub signature: String,
    pub signed_at: OffsetDateTime,
    pub outcome: String,
    pub error: Option<String>,
    pub deliveries: i32,
    pub last_delivery_at: OffsetDateTime,
    pub processed_at: Option<OffsetDateTime>,
    pub replays: i32,
    pub raw_body: Vec<u8>,
    pub headers: Value,
    pub request_id: Option<String>,
    pub source_ip: Option<IpNet>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_events)]
pub struct NewWebhookEvent<'a> {
    pub id: Uuid,
    pub provider: &'a str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub received_at: OffsetDateTime,
    pub signature: &'a str,
    pub signed_at: OffsetDateTime,
    pub outcome: &'a str,
    pub last_delivery_at: OffsetDateTime,
    pub processed_at: Option<OffsetDateTime>,
    pub raw_body: &'a [u8],
    pub headers: &'a Value,
    pub request_id: Option<&'a str>,
    pub source_ip: Option<IpNet>,
}

/// A `subscriptions` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = subscriptions)]
pub struct Subscription {
    pub user_id: Uuid,
    /// `None` once the account was erased (erasure drops the personal fields).
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub price_id: Option<String>,
    pub status: String,
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    pub last_payment_failed_at: Option<OffsetDateTime>,
    pub event_created_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// `GET /api/v1/me/subscription`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// The Stripe price (plan) id.
    pub price_id: Option<String>,
    /// Stripe's status: `active`, `trialing`, `past_due`, `canceled`, `incomplete`, …
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub current_period_end: Option<OffsetDateTime>,
    pub cancel_at_period_end: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_payment_failed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        SubscriptionView {
            customer_id: s.customer_id.clone(),
            subscription_id: s.subscription_id.clone(),
            price_id: s.price_id.clone(),
            status: s.status.clone(),
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
            last_payment_failed_at: s.last_payment_failed_at,
            updated_at: s.updated_at,
        }
    }
}

/// The envelope fields of a verified delivery: its id and type. Stripe puts both in the body
/// (`id`, `type`); Standard Webhooks gives the id as a header (`svix-id`) and the type in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub event_id: String,
    pub event_type: String,
}

/// An id or type as stored: 1–255 characters of `[A-Za-z0-9_.:-]` (every id and type the two
/// providers send). Anything else is not an event rampart can key on.
pub fn plain_token(text: &str) -> bool {
    (1..=255).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The envelope of a verified body, `None` when the body is not a JSON object with a plain
/// `type` (and, when `id` is not given by a header, a plain `id`). Reads only those two members:
/// the rest of the document is checked for syntax and skipped, never built into a tree (most
/// deliveries are of types rampart stores without acting on).
pub fn envelope(raw: &[u8], header_id: Option<&str>) -> Option<Envelope> {
    #[derive(serde::Deserialize)]
    struct Fields {
        id: Option<serde_json::Value>,
        #[serde(rename = "type")]
        event_type: Option<serde_json::Value>,
    }
    let fields: Fields = serde_json::from_slice(raw).ok()?;
    let event_type = fields.event_type?;
    let event_type = event_type.as_str()?;
    let body_id = fields.id;
    let event_id = match header_id {
        Some(id) => id,
        None => body_id.as_ref()?.as_str()?,
    };
    (plain_token(event_type) && plain_token(event_id)).then(|| Envelope {
        event_id: event_id.to_string(),
        event_type: event_type.to_string(),
    })
}

/// A string field at a JSON pointer, if it is one.
pub fn text_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// A Unix-seconds field at a JSON pointer, as a time.
pub fn time_at(value: &Value, pointer: &str) -> Option<OffsetDateTime> {
    value
        .pointer(pointer)
        .and_then(Value::as_i64)
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_need_plain_ids_and_types() {
        let body = json!({"id": "evt_1", "type": "invoice.payment_failed"});
        let envelope = |v: &Value, id: Option<&str>| envelope(v.to_string().as_bytes(), id);
        assert_eq!(
            envelope(&body, None),
            Some(Envelope {
                event_id: "evt_1".into(),
                event_type: "invoice.payment_failed".into()
            })
        );
        assert_eq!(
            envelope(&json!({"type": "user.created"}), Some("msg_1"))
                .unwrap()
                .event_id,
            "msg_1"
        );
        assert_eq!(
            envelope(&json!({"id": "evt\u{0}", "type": "x"}), None),
            None
        );
        assert_eq!(envelope(&json!({"id": "evt_1"}), None), None);
        assert_eq!(envelope(&json!([1, 2]), None), None);
        assert_eq!(
            envelope(&json!({"id": "e".repeat(256), "type": "x"}), None),
            None
        );
        assert_eq!(
            super::envelope(b"{\"type\":\"a.b\",\"type\":\"c\"}", Some("m")),
            None
        );
        assert_eq!(
            super::envelope(b"{\"type\":\"a.b\"} trailing", Some("m")),
            None
        );
    }
}
