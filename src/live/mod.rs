//! Live delivery over WebSocket: one-time tickets, per-user and per-IP caps across instances,
//! bounded per-socket queues, revocation within a second, fan-out through the bus.
//!
//! **Boundary.** Owns `ws_tickets` and `ws_connections`. Reads conversations only through
//! `conversations`' `mod.rs` (membership, one message as a member sees it), credentials through
//! `sessions` / `api_keys` / `identity` (which of a set are still live), and events through
//! `bus`. Nothing imports this module but the edge (`web`, `app`).
//!
//! **Tickets, not tokens, in the URL.** `POST /api/v1/ws/ticket` gives 256 random bits (stored
//! as SHA-256) bound to the user, the credential that asked and the client IP, valid 30 seconds.
//! `GET /api/v1/ws?ticket=…` spends it with one conditional UPDATE (two upgrades with one ticket:
//! one wins), then checks expiry, IP, that the credential is still live, the `Origin`
//! (CORS_ORIGINS; none only with WS_ALLOW_NO_ORIGIN) and the caps, all before the upgrade.
//!
//! **Caps.** WS_MAX_PER_USER and WS_MAX_PER_IP count `ws_connections` rows of every instance,
//! reserved under transaction-scoped advisory locks (parallel upgrades cannot overshoot); each
//! instance refreshes its rows every 20 s, and rows nobody refreshed for a minute (a dead
//! instance) stop counting.
//!
//! **Every event is checked where it is delivered.** The bus carries ids; the receiving instance
//! loads the members of the conversation and the message (once per event) and sends only to
//! sockets of current members — a member who left stops receiving at once, on every instance.
//! Every 500 ms the sockets' credentials are checked in one query per kind: a signed-out,
//! disabled or erased user's sockets, a revoked API key's, an unlinked identity's, close with
//! 4401.

pub mod hub;
pub mod model;
pub mod routes;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use diesel::Connection;
use time::OffsetDateTime;
use uuid::Uuid;

use self::hub::{Credential, Hub};
use self::model::{TicketView, frame};
use crate::auth::Principal;
use crate::bus::{Event, EventKind, Signal};
use crate::error::AppError;
use crate::state::AppState;

/// How long a ticket is valid.
pub const TICKET_SECONDS: i64 = 30;
/// How often the sockets' credentials are checked.
const SWEEP: Duration = Duration::from_millis(500);
/// How often this instance's connection rows are refreshed.
const HEARTBEAT: Duration = Duration::from_secs(20);
/// Rows not refreshed for this long stop counting towards the caps.
const STALE: Duration = Duration::from_secs(60);

/// One instance's live delivery: the hub of its sockets and its id among instances.
pub struct Live {
    pub hub: Hub,
    pub instance_id: Uuid,
}

impl Live {
    /// Starts the bus and this instance's background tasks (dispatch, sweep). Call once, inside
    /// the server's runtime.
    pub fn start(state: &actix_web::web::Data<AppState>) -> Arc<Live> {
        let live = Arc::new(Live {
            hub: Hub::default(),
            instance_id: Uuid::now_v7(),
        });
        state.bus.start();
        tokio::spawn(dispatch(state.clone(), live.clone()));
        tokio::spawn(sweep(state.clone(), live.clone()));
        live
    }
}

fn credential_of(principal: &Principal) -> Credential {
    match principal.credential {
        crate::auth::Credential::Session { session_id } => Credential::Session(session_id),
        crate::auth::Credential::ApiKey { key_id, .. } => Credential::ApiKey(key_id),
        crate::auth::Credential::Provider { identity_id } => Credential::Provider(identity_id),
    }
}

/// `POST /api/v1/ws/ticket`: a one-time ticket for the caller, bound to their credential and IP.
pub async fn issue_ticket(
    state: &AppState,
    principal: &Principal,
    ip: std::net::IpAddr,
) -> Result<TicketView, AppError> {
    let (ticket, hash) = crate::sessions::new_refresh_token()?;
    let now = state.clock.now();
    let (session_id, api_key_id, identity_id) = match credential_of(principal) {
        Credential::Session(id) => (Some(id), None, None),
        Credential::ApiKey(id) => (None, Some(id), None),
        Credential::Provider(id) => (None, None, Some(id)),
    };
    let row = store::TicketRow {
        token_hash: hash,
        user_id: principal.user_id,
        session_id,
        api_key_id,
        identity_id,
        ip: ip.to_string(),
        created_at: now,
        expires_at: now + time::Duration::seconds(TICKET_SECONDS),
        used_at: None,
    };
    state
        .pool
        .run(move |conn| Ok(store::insert_ticket(conn, &row)?))
        .await?;
    Ok(TicketView {
        ticket,
        expires_in: TICKET_SECONDS,
    })
}

/// A socket allowed in: whose, with what, and its connection row.
pub struct Admitted {
    pub user_id: Uuid,
    pub credential: Credential,
    pub connection_id: Uuid,
}

/// Spends the ticket and checks everything the upgrade needs (see the module doc); reserves the
/// connection row. Every refusal of the ticket is the same 401.
pub async fn admit(
    state: &AppState,
    live: &Live,
    ticket: &str,
    ip: std::net::IpAddr,
) -> Result<Admitted, AppError> {
    if ticket.is_empty() || ticket.len() > 128 {
        return Err(AppError::Unauthorized);
    }
    let hash = crate::crypto::hmac::hash_token(ticket);
    let now = state.clock.now();
    let idle = state.settings.auth.refresh_token_idle;
    let limits = state.settings.live.clone();
    let instance_id = live.instance_id;
    let ip_text = ip.to_string();
    state
        .pool
        .run(move |conn| {
            let Some(row) = store::spend_ticket(conn, &hash, now)? else {
                return Err(AppError::Unauthorized);
            };
            if row.expires_at <= now || row.ip != ip_text {
                return Err(AppError::Unauthorized);
            }
            let (credential, live) = match (row.session_id, row.api_key_id, row.identity_id) {
                (Some(id), _, _) => (
                    Credential::Session(id),
                    !crate::sessions::live_among(conn, &[id], now, idle)?.is_empty(),
                ),
                (_, Some(id), _) => (
                    Credential::ApiKey(id),
                    !crate::api_keys::accepting_among(conn, &[id], now)?.is_empty(),
                ),
                (_, _, Some(id)) => (
                    Credential::Provider(id),
                    !crate::identity::active_among(conn, &[id])?.is_empty(),
                ),
                _ => return Err(AppError::Unauthorized),
            };
            if !live {
                return Err(AppError::Unauthorized);
            }
            let connection_id = Uuid::now_v7();
            conn.transaction::<_, AppError, _>(|conn| {
                store::lock_user_and_ip(conn, row.user_id, &ip_text)?;
                let since = crate::clock::before(now, STALE);
                let (by_user, by_ip) = store::counts(conn, row.user_id, &ip_text, since)?;
                if by_user >= i64::from(limits.max_per_user)
                    || by_ip >= i64::from(limits.max_per_ip)
                {
                    return Err(AppError::TooManyRequests { retry_after: 5 });
                }
                store::insert_connection(
                    conn,
                    connection_id,
                    row.user_id,
                    &ip_text,
                    instance_id,
                    now,
                )?;
                Ok(())
            })?;
            Ok(Admitted {
                user_id: row.user_id,
                credential,
                connection_id,
            })
        })
        .await
}

/// Frees a connection row (the socket ended, or the upgrade failed after admission).
pub async fn release(state: &AppState, connection_id: Uuid) {
    let result = state
        .pool
        .run(move |conn| Ok(store::delete_connection(conn, connection_id)?))
        .await;
    if let Err(error) = result {
        tracing::warn!(error = %error, "a WebSocket connection row was not released; it expires in a minute");
    }
}

/// Whether the user may follow the conversation (a member).
pub async fn may_follow(
    state: &AppState,
    user_id: Uuid,
    conversation_id: Uuid,
) -> Result<bool, AppError> {
    state
        .pool
        .run(move |conn| crate::conversations::is_member(conn, conversation_id, user_id))
        .await
}

/// Applies every bus signal to this instance's sockets.
async fn dispatch(state: actix_web::web::Data<AppState>, live: Arc<Live>) {
    let mut signals = state.bus.subscribe();
    loop {
        match signals.recv().await {
            Ok(Signal::Event(event)) => {
                if let Err(error) = deliver(&state, &live, event).await {
                    tracing::warn!(error = %error, "a live event could not be delivered");
                }
            }
            Ok(Signal::Resync) => live.hub.send_all(Arc::from(resync())),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                live.hub.send_all(Arc::from(resync()));
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn resync() -> String {
    frame(
        "resync",
        serde_json::json!({ "reason": "live events may have been missed: reload what you show" }),
    )
}

/// Sends one event to the sockets of current members that follow its conversation.
async fn deliver(state: &AppState, live: &Live, event: Event) -> Result<(), AppError> {
    let conversation_id = event.conversation_id;
    if event.kind == EventKind::MemberLeft
        && let Some(user) = event.user_id
    {
        live.hub.forget_member(conversation_id, user);
    }
    let followers = live.hub.followers(conversation_id);
    if followers.is_empty() {
        return Ok(());
    }
    let ring = state.keyring.clone();
    let to_load = event.message_id.filter(|_| {
        matches!(
            event.kind,
            EventKind::MessageCreated | EventKind::MessageEdited
        )
    });
    let (members, message) = state
        .pool
        .run(move |conn| {
            let members = crate::conversations::member_ids(conn, conversation_id)?;
            // Loaded once, as a member sees it (any current member: the view is the same).
            let message = match (to_load, members.first()) {
                (Some(message_id), Some(member)) => crate::conversations::message_for_member(
                    conn,
                    &ring,
                    conversation_id,
                    message_id,
                    *member,
                )?,
                _ => None,
            };
            Ok((members, message))
        })
        .await?;
    let text = match event.kind {
        EventKind::MessageCreated | EventKind::MessageEdited => {
            let Some(message) = message else {
                return Ok(());
            };
            let kind = if event.kind == EventKind::MessageCreated {
                "message.created"
            } else {
                "message.edited"
            };
            frame(
                kind,
                serde_json::json!({ "conversation_id": conversation_id, "message": message }),
            )
        }
        EventKind::MessageDeleted => frame(
            "message.deleted",
            serde_json::json!({ "conversation_id": conversation_id, "message_id": event.message_id }),
        ),
        EventKind::ConversationUpdated | EventKind::MemberLeft => frame(
            "conversation.updated",
            serde_json::json!({ "conversation_id": conversation_id }),
        ),
        EventKind::Read => frame(
            "read",
            serde_json::json!({
                "conversation_id": conversation_id,
                "user_id": event.user_id,
                "seq": event.seq,
            }),
        ),
        EventKind::Typing => frame(
            "typing",
            serde_json::json!({ "conversation_id": conversation_id, "user_id": event.user_id }),
        ),
    };
    let text: Arc<str> = Arc::from(text);
    for (socket, user) in followers {
        if !members.contains(&user) {
            // No longer a member (removed on another instance, or the conversation is gone).
            live.hub.unsubscribe(socket, conversation_id);
            continue;
        }
        if event.kind == EventKind::Typing && event.user_id == Some(user) {
            continue;
        }
        live.hub.send(socket, text.clone());
    }
    Ok(())
}

/// Closes sockets whose credential ended (4401), refreshes this instance's connection rows, and
/// drops expired tickets.
async fn sweep(state: actix_web::web::Data<AppState>, live: Arc<Live>) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heartbeat = std::time::Instant::now();
    loop {
        tick.tick().await;
        let credentials = live.hub.credentials();
        if !credentials.is_empty()
            && let Err(error) = close_revoked(&state, &live, credentials).await
        {
            tracing::warn!(error = %error, "the WebSocket revocation check failed; retrying");
        }
        if last_heartbeat.elapsed() >= HEARTBEAT {
            last_heartbeat = std::time::Instant::now();
            let instance = live.instance_id;
            let now = state.clock.now();
            let result = state
                .pool
                .run(move |conn| {
                    store::heartbeat(conn, instance, now, crate::clock::before(now, STALE))?;
                    store::delete_expired_tickets(conn, crate::clock::before(now, STALE))?;
                    Ok(())
                })
                .await;
            if let Err(error) = result {
                tracing::warn!(error = %error, "the WebSocket heartbeat failed");
            }
        }
    }
}

async fn close_revoked(
    state: &AppState,
    live: &Live,
    credentials: Vec<(u64, Credential)>,
) -> Result<(), AppError> {
    let now: OffsetDateTime = state.clock.now();
    let idle = state.settings.auth.refresh_token_idle;
    let mut sessions = Vec::new();
    let mut keys = Vec::new();
    let mut identities = Vec::new();
    for (_, c) in &credentials {
        match c {
            Credential::Session(id) => sessions.push(*id),
            Credential::ApiKey(id) => keys.push(*id),
            Credential::Provider(id) => identities.push(*id),
        }
    }
    let (sessions, keys, identities) = state
        .pool
        .run(move |conn| {
            Ok((
                crate::sessions::live_among(conn, &sessions, now, idle)?,
                crate::api_keys::accepting_among(conn, &keys, now)?,
                crate::identity::active_among(conn, &identities)?,
            ))
        })
        .await?;
    for (socket, credential) in credentials {
        let alive = match credential {
            Credential::Session(id) => sessions.contains(&id),
            Credential::ApiKey(id) => keys.contains(&id),
            Credential::Provider(id) => identities.contains(&id),
        };
        if !alive {
            live.hub.close(socket, model::close::UNAUTHORIZED);
        }
    }
    Ok(())
}
