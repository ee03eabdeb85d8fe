//! The console's askama page structs (templates/console/*.html mirror them) and the small view
//! types they show. Everything here is already formatted text: templates escape it and decide
//! nothing.

use super::routes::MfaView;
use askama::Template;
use time::OffsetDateTime;

use crate::audit::AuditEntry;
use crate::error::FieldError;

/// What every page around its content needs: title, section, the signed-in admin, the CSRF
/// token of the sign-out form, and a flash message left by the previous action.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    pub section: &'static str,
    pub admin: Option<String>,
    pub csrf: String,
    pub flash: Option<Flash>,
}

#[derive(Debug, Clone)]
pub struct Flash {
    /// `ok` or `error` (a CSS class suffix).
    pub kind: &'static str,
    pub text: String,
}

/// `2026-11-29 14:03:12 UTC`.
pub fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

pub fn when_opt(at: Option<OffsetDateTime>) -> String {
    at.map(when).unwrap_or_default()
}

/// A query string from pairs, values percent-encoded (`a=1&b=x%20y`).
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, &v);
    }
    out.finish()
}

/// `path` with `pairs` as its query (no `?` when there are none).
pub fn link<'a>(path: &str, pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let query = query_string(pairs);
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The first message for `field`, if any.
pub fn error_for(errors: &[FieldError], field: &str) -> Option<String> {
    errors
        .iter()
        .find(|e| e.field == field)
        .map(|e| e.message.clone())
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    pub login: String,
    pub nonce: String,
    pub error: Option<&'static str>,
}

/// One queued or failed mail, as the outbox page shows it (recipient masked, no body).
#[derive(Debug, Clone)]
pub struct OutboxRowView {
    pub id: String,
    pub kind: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i32,
    pub created: String,
    pub next_attempt: String,
    pub last_error: String,
}

impl OutboxRowView {
    pub fn new(row: &crate::email::OutboxRow) -> Self {
        OutboxRowView {
            id: row.id.to_string(),
            kind: row.kind.clone(),
            recipient: crate::email::mask(&row.recipient),
            status: row.status.clone(),
            attempts: row.attempts,
            created: when(row.created_at),
            next_attempt: when(row.next_attempt_at),
            last_error: row.last_error.clone().unwrap_or_default(),
        }
    }
}

/// `/admin/outbox`.
#[derive(Template)]
#[template(path = "console/outbox.html")]
pub struct OutboxPage {
    pub chrome: Chrome,
    pub status: String,
    pub rows: Vec<OutboxRowView>,
    pub pending: i64,
    pub failed: i64,
    pub older: Option<String>,
}

/// The admin's own second factor (`/admin/mfa`).
#[derive(Template)]
#[template(path = "console/mfa.html")]
pub struct MfaPage {
    pub chrome: Chrome,
    /// Admins need a factor and this session has one only: everything else waits.
    pub must_enrol: bool,
    pub view: MfaView,
}

/// Re-authentication before a pending console action (step-up).
#[derive(Template)]
#[template(path = "console/step_up.html")]
pub struct StepUpPage {
    pub chrome: Chrome,
    /// Where the pending form was posted (it is posted there again).
    pub action: String,
    /// The pending form's fields, carried as hidden inputs (its CSRF token among them).
    pub fields: Vec<(String, String)>,
    pub has_factor: bool,
    pub minutes: u64,
    pub error: Option<&'static str>,
}

/// The second step of a console sign-in.
#[derive(Template)]
#[template(path = "console/login_code.html")]
pub struct LoginCodePage {
    pub chrome: Chrome,
    pub nonce: String,
    pub mfa_token: String,
    pub error: Option<&'static str>,
}

/// One audit row for a table or a detail page.
#[derive(Debug, Clone)]
pub struct AuditRowView {
    pub id: i64,
    pub time: String,
    pub actor: String,
    pub actor_type: String,
    pub actor_id: String,
    pub action: String,
    pub outcome: String,
    pub target: String,
    pub target_type: String,
    pub target_id: String,
    pub ip: String,
    pub user_agent: String,
    pub request_id: String,
    pub server_request_id: String,
    pub count: Option<i64>,
    pub hash: String,
}

impl AuditRowView {
    /// `names` maps user ids to usernames, for readable actors and targets.
    pub fn new(e: &AuditEntry, names: &std::collections::HashMap<uuid::Uuid, String>) -> Self {
        let named = |id: Option<&str>| {
            id.and_then(|id| uuid::Uuid::parse_str(id).ok())
                .and_then(|id| names.get(&id).cloned())
        };
        let actor_id = e.actor_id.clone().unwrap_or_default();
        let actor = match named(e.actor_id.as_deref()) {
            Some(name) => format!("{name} ({})", e.actor_type),
            None if actor_id.is_empty() => e.actor_type.clone(),
            None => format!("{} {}", e.actor_type, short(&actor_id)),
        };
        let target_id = e.target_id.clone().unwrap_or_default();
        let target_type = e.target_type.clone().unwrap_or_default();
        let target = match named(e.target_id.as_deref()) {
            Some(name) if target_type == "user" => format!("user {name}"),
            _ if target_id.is_empty() => String::new(),
            _ => format!("{target_type} {}", short(&target_id)),
        };
        AuditRowView {
            id: e.id,
            time: when(e.occurred_at),
            actor,
            actor_type: e.actor_type.clone(),
            actor_id,
            action: e.action.clone(),
            outcome: e.outcome.clone(),
            target,
            target_type,
            target_id,
            ip: e.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: e.user_agent.clone().unwrap_or_default(),
            request_id: e.request_id.clone().unwrap_or_default(),
            server_request_id: e.server_request_id.clone().unwrap_or_default(),
            count: e.metadata.get("count").and_then(|c| c.as_i64()),
            hash: e.hash.clone(),
        }
    }
}

/// A short form of an id that still tells ids apart (the title attribute and the row's page show
/// it whole). For a UUID, its last group: the first digits of a UUID v7 are its timestamp, so
/// every session started in the same minute would share them, while the last 12 digits are
/// random. Other ids are shown whole up to 16 characters.
pub fn short(id: &str) -> String {
    if let Ok(uuid) = uuid::Uuid::parse_str(id) {
        let text = uuid.hyphenated().to_string();
        let tail = text.rsplit('-').next().unwrap_or_default();
        return format!("…{tail}");
    }
    if id.chars().count() <= 16 {
        id.to_string()
    } else {
        format!("{}…", id.chars().take(16).collect::<String>())
    }
}

/// Where the audit chain stands, from the newest `audit.verified` row.
#[derive(Debug, Clone)]
pub struct ChainStatus {
    pub checked: bool,
    pub ok: bool,
    pub rows_verified: i64,
    pub head_id: Option<i64>,
    pub failure: Option<String>,
    pub when: String,
}

impl ChainStatus {
    pub fn from_entry(entry: Option<&AuditEntry>) -> ChainStatus {
        let Some(e) = entry else {
            return ChainStatus {
                checked: false,
                ok: false,
                rows_verified: 0,
                head_id: None,
                failure: None,
                when: String::new(),
            };
        };
        let m = &e.metadata;
        let failure = m.get("failure").map(|f| {
            format!(
                "row {}: {} — {}",
                f.get("row_id").and_then(|v| v.as_i64()).unwrap_or_default(),
                f.get("kind").and_then(|v| v.as_str()).unwrap_or("broken"),
                f.get("message")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
            )
        });
        ChainStatus {
            checked: true,
            ok: e.outcome == "success",
            rows_verified: m.get("rows_verified").and_then(|v| v.as_i64()).unwrap_or(0),
            head_id: m.get("head_id").and_then(|v| v.as_i64()),
            failure,
            when: when(e.occurred_at),
        }
    }
}

/// The filter form's values as typed (shown back, even when invalid).
#[derive(Debug, Clone, Default)]
pub struct AuditForm {
    pub action: String,
    pub actor: String,
    pub target: String,
    pub outcome: String,
    pub ip: String,
    pub from: String,
    pub to: String,
    pub errors: Vec<FieldError>,
}

impl AuditForm {
    pub fn error(&self, field: &str) -> Option<String> {
        error_for(&self.errors, field)
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub form: AuditForm,
    pub actions: Vec<&'static str>,
    pub rows: Vec<AuditRowView>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub export: String,
    pub chain: ChainStatus,
    pub filtered: bool,
}

#[derive(Template)]
#[template(path = "console/audit_entry.html")]
pub struct AuditEntryPage {
    pub chrome: Chrome,
    pub row: AuditRowView,
    pub metadata: String,
    pub prev_hash: String,
}

/// Dashboard figures.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub users: i64,
    pub active: i64,
    pub disabled: i64,
    pub locked: i64,
    pub live_sessions: i64,
    pub live_keys: i64,
    pub failed_logins: i64,
    pub lockouts: i64,
    pub rate_limited: i64,
    pub refresh_reuse: i64,
    /// Webhook deliveries received in the last 24 hours whose processing failed.
    pub webhooks_failed: i64,
    /// Active admins without a second factor.
    pub admins_without_mfa: i64,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    pub stats: Stats,
    pub chart: super::chart::Chart,
    /// The webhook list filtered to the failures the card counts.
    pub webhooks_failed_link: String,
}

/// One user for tables.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub locked: bool,
    pub locked_until: String,
    pub failed_logins: i32,
    pub created: String,
    pub super_admin: bool,
    pub erased: bool,
    /// Has a second factor.
    pub mfa: bool,
}

impl UserRow {
    pub fn new(u: &crate::accounts::admin::AdminUserView) -> Self {
        UserRow {
            id: u.id.to_string(),
            username: u.username.clone(),
            email: u.email.clone(),
            role: u.role.clone(),
            active: u.active,
            locked: u.locked,
            locked_until: when_opt(u.locked_until),
            failed_logins: u.failed_logins,
            created: when(u.created_at),
            super_admin: u.super_admin,
            erased: u.erased_at.is_some(),
            mfa: u.mfa,
        }
    }
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub q: String,
    pub role: String,
    pub status: String,
    pub rows: Vec<UserRow>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub filtered: bool,
}

/// One API session for tables.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub ip: String,
    pub user_agent: String,
}

impl SessionRow {
    pub fn new(s: &crate::sessions::AdminSessionView) -> Self {
        SessionRow {
            id: s.session.id.to_string(),
            user_id: s.user_id.to_string(),
            username: s.username.clone(),
            created: when(s.session.created_at),
            last_used: when(s.session.last_used_at),
            expires: when(s.session.expires_at),
            ip: s.session.ip.clone().unwrap_or_default(),
            user_agent: s.session.user_agent.clone().unwrap_or_default(),
        }
    }
}

/// One API key for tables.
#[derive(Debug, Clone)]
/// A linked identity-provider account on the user page.
pub struct IdentityRow {
    pub id: String,
    pub provider: String,
    pub subject: String,
    pub email: String,
    pub linked: String,
    pub last_seen: String,
}

impl IdentityRow {
    pub fn new(i: &crate::identity::IdentityView) -> Self {
        IdentityRow {
            id: i.id.to_string(),
            provider: i.provider.clone(),
            subject: i.subject.clone(),
            email: i.email.clone().unwrap_or_default(),
            linked: when(i.created_at),
            last_seen: when(i.last_seen_at),
        }
    }
}

pub struct KeyRow {
    pub id: String,
    pub prefix: String,
    pub name: String,
    pub owner_id: String,
    pub owner: String,
    pub scopes: String,
    pub status: &'static str,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub revoke_reason: String,
    pub revocable: bool,
}

impl KeyRow {
    pub fn new(k: &crate::api_keys::AdminKeyView) -> Self {
        KeyRow {
            id: k.key.id.to_string(),
            prefix: k.key.prefix.clone(),
            name: k.key.name.clone(),
            owner_id: k.owner_id.to_string(),
            owner: k.owner_username.clone(),
            scopes: k.key.scopes.join(", "),
            status: k.key.status.as_str(),
            created: when(k.key.created_at),
            last_used: when_opt(k.key.last_used_at),
            expires: when_opt(k.key.expires_at),
            revoke_reason: k.key.revoke_reason.clone().unwrap_or_default(),
            revocable: k.key.revoked_at.is_none(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/user.html")]
pub struct UserPage {
    pub chrome: Chrome,
    pub user: UserRow,
    pub display_name: String,
    pub identities: Vec<IdentityRow>,
    pub sessions: Vec<SessionRow>,
    pub keys: Vec<KeyRow>,
    pub events: Vec<AuditRowView>,
    pub can_change_role: bool,
    pub is_self: bool,
    pub usage: UsageView,
    pub quotas: Vec<QuotaRow>,
}

/// A user's conversation figures (counts and sizes only: the console never decrypts).
pub struct UsageView {
    pub conversations: i64,
    pub messages: i64,
    pub attachments: i64,
    pub storage: String,
}

impl UsageView {
    pub fn new(u: &crate::conversations::UsageStats) -> Self {
        UsageView {
            conversations: u.conversations,
            messages: u.messages,
            attachments: u.attachments,
            storage: human_bytes(u.attachment_bytes),
        }
    }
}

/// `1.5 MiB`, `12 KiB`, `300 B`.
pub fn human_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.0} KiB", n / 1024.0)
    } else {
        format!("{n:.0} B")
    }
}

/// One quota's use in its current window.
pub struct QuotaRow {
    pub name: &'static str,
    pub period: &'static str,
    pub used: u32,
    pub limit: String,
}

impl QuotaRow {
    pub fn new(q: &crate::rate_limit::QuotaStanding) -> Self {
        QuotaRow {
            name: q.kind.as_str(),
            period: q.kind.period().as_str(),
            used: q.used,
            limit: q
                .limit
                .map_or_else(|| "unlimited".to_string(), |l| l.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/keys.html")]
pub struct KeysPage {
    pub chrome: Chrome,
    pub owner: String,
    pub status: String,
    pub prefix: String,
    /// (status, selected).
    pub statuses: Vec<(&'static str, bool)>,
    pub rows: Vec<KeyRow>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub filtered: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "console/sessions.html")]
pub struct SessionsPage {
    pub chrome: Chrome,
    pub user: String,
    pub rows: Vec<SessionRow>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub error: Option<String>,
}

/// The webhook list's filter form, as typed (shown back, even when invalid).
#[derive(Debug, Clone, Default)]
pub struct WebhookForm {
    pub provider: String,
    pub event_type: String,
    pub outcome: String,
    pub from: String,
    pub to: String,
    pub errors: Vec<FieldError>,
}

impl WebhookForm {
    pub fn error(&self, field: &str) -> Option<String> {
        error_for(&self.errors, field)
    }
}

/// One webhook delivery for the list.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub id: String,
    pub received: String,
    pub provider: String,
    pub event_type: String,
    pub event_id: String,
    pub outcome: String,
    pub failed: bool,
    pub deliveries: i32,
    pub replays: i32,
}

impl WebhookRow {
    pub fn new(e: &crate::webhooks::WebhookEvent) -> Self {
        WebhookRow {
            id: e.id.to_string(),
            received: when(e.received_at),
            provider: e.provider.clone(),
            event_type: e.event_type.clone(),
            event_id: e.event_id.clone(),
            outcome: e.outcome.clone(),
            failed: e.outcome == crate::webhooks::Outcome::Failed.as_str(),
            deliveries: e.deliveries,
            replays: e.replays,
        }
    }
}

#[derive(Template)]
#[template(path = "console/webhooks.html")]
pub struct WebhooksPage {
    pub chrome: Chrome,
    pub form: WebhookForm,
    /// (value, selected) of the provider and outcome selects.
    pub providers: Vec<(&'static str, bool)>,
    pub outcomes: Vec<(&'static str, bool)>,
    pub rows: Vec<WebhookRow>,
    pub older: Option<String>,
    pub newer: Option<String>,
    pub filtered: bool,
}

/// One delivery, everything stored about it, for its page.
#[derive(Debug, Clone)]
pub struct WebhookDetail {
    pub row: WebhookRow,
    pub signature: String,
    pub signed: String,
    pub error: String,
    pub last_delivery: String,
    pub processed: String,
    pub request_id: String,
    pub source_ip: String,
    /// The stored headers (name, value), sorted by name.
    pub headers: Vec<(String, String)>,
    /// The body as stored: pretty-printed JSON when it parses, else its text (invalid UTF-8
    /// and control characters replaced). Escaped by the template like everything else.
    pub body: String,
    pub body_is_json: bool,
    pub body_bytes: usize,
}

impl WebhookDetail {
    pub fn new(e: &crate::webhooks::WebhookEvent) -> Self {
        let parsed = serde_json::from_slice::<serde_json::Value>(&e.raw_body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok());
        let body_is_json = parsed.is_some();
        let body = parsed.unwrap_or_else(|| visible_text(&String::from_utf8_lossy(&e.raw_body)));
        let headers = e
            .headers
            .as_object()
            .map(|map| {
                let mut pairs: Vec<(String, String)> = map
                    .iter()
                    .map(|(name, value)| {
                        let text = match value {
                            serde_json::Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (name.clone(), visible_text(&text))
                    })
                    .collect();
                pairs.sort();
                pairs
            })
            .unwrap_or_default();
        WebhookDetail {
            row: WebhookRow::new(e),
            signature: e.signature.clone(),
            signed: when(e.signed_at),
            error: e.error.clone().unwrap_or_default(),
            last_delivery: when(e.last_delivery_at),
            processed: when_opt(e.processed_at),
            request_id: e.request_id.clone().unwrap_or_default(),
            source_ip: e
                .source_ip
                .map(|ip| ip.addr().to_string())
                .unwrap_or_default(),
            headers,
            body,
            body_is_json,
            body_bytes: e.raw_body.len(),
        }
    }
}

/// `text` with control characters other than line breaks and tabs shown as U+FFFD.
fn visible_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/webhook.html")]
pub struct WebhookPage {
    pub chrome: Chrome,
    pub event: WebhookDetail,
}

/// The console's form linking an identity-provider account to a user.
#[derive(Template)]
#[template(path = "console/identity_link.html")]
pub struct IdentityLinkPage {
    pub chrome: Chrome,
    pub user_id: String,
    pub username: String,
    /// (provider, selected): the configured providers.
    pub providers: Vec<(&'static str, bool)>,
    pub subject: String,
    pub error: Option<String>,
}

/// A second page that asks before an action is taken (no JavaScript confirm).
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub heading: String,
    /// What will happen, in a sentence.
    pub message: String,
    /// Details of the object acted on (label, value).
    pub facts: Vec<(&'static str, String)>,
    pub action: String,
    pub button: &'static str,
    pub danger: bool,
    /// Whether the form asks for a reason, and whether it must be given.
    pub reason: bool,
    pub reason_required: bool,
    pub reason_value: String,
    /// For role changes: the roles to choose from, the current one selected.
    pub roles: Vec<(&'static str, bool)>,
    /// For irreversible actions: the word (the username) the admin must type to confirm.
    pub confirm_word: Option<String>,
    pub error: Option<String>,
    pub cancel: String,
}

#[cfg(test)]
mod tests {
    use super::short;

    #[test]
    fn short_ids_keep_the_random_tail_of_a_uuid() {
        // Two UUID v7 of the same minute share their first 8 digits, not their tails.
        let a = "01a22cb5-1111-7aaa-8bbb-0123456789ab";
        let b = "01a22cb5-2222-7ccc-9ddd-ba9876543210";
        assert_eq!(short(a), "…0123456789ab");
        assert_ne!(short(a), short(b));
        assert_eq!(short("42"), "42");
        assert_eq!(short("abcdefghijklmnopqrstuvwxyz"), "abcdefghijklmnop…");
    }
}
