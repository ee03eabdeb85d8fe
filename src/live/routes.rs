//! `POST /api/v1/ws/ticket` (authenticated as usual) and `GET /api/v1/ws?ticket=…` (the upgrade,
//! authenticated by the ticket alone), and each socket's task: client frames in, queued frames
//! out, pings, limits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, ProtocolError};
use futures_util::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

use super::hub::Registration;
use super::model::{ClientFrame, TicketView, close, frame, not_found};
use super::{Admitted, Live};
use crate::auth::{Access, ApiRoutes, Permission, Principal};
use crate::bus::{Event, EventKind};
use crate::error::AppError;
use crate::http::client_ip::ClientIp;
use crate::state::AppState;

/// The upgrade path (mounted by `web`, outside the JSON API table: it answers with a socket).
pub const WS_PATH: &str = "/api/v1/ws";
/// Conversations one socket may follow.
const MAX_FOLLOWED: usize = 200;
/// Client frames per second a socket may send (burst: twice that).
const FRAMES_PER_SECOND: f64 = 10.0;

pub fn routes(r: &mut ApiRoutes) {
    r.add(
        Method::POST,
        "/api/v1/ws/ticket",
        Access::Permission(Permission::MessagesRead),
        create_ticket,
    )
    .ok::<TicketView>();
}

/// Mounts `GET /api/v1/ws`.
pub fn mount(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(WS_PATH).route(web::get().to(upgrade)));
}

async fn create_ticket(
    state: web::Data<AppState>,
    principal: Principal,
    ip: ClientIp,
) -> Result<HttpResponse, AppError> {
    let ticket = super::issue_ticket(&state, &principal, ip.0).await?;
    Ok(HttpResponse::Ok().json(ticket))
}

#[derive(Deserialize)]
struct UpgradeQuery {
    ticket: Option<String>,
}

/// Whether the request's `Origin` may open a socket: on CORS_ORIGINS (any origin only with
/// ALLOW_ALL_ORIGINS, which production refuses), or absent with WS_ALLOW_NO_ORIGIN.
fn origin_allowed(state: &AppState, req: &HttpRequest) -> bool {
    match req.headers().get(header::ORIGIN) {
        None => state.settings.live.allow_no_origin,
        Some(origin) => {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            state.settings.cors.allow_all_origins
                || state
                    .settings
                    .cors
                    .origins
                    .iter()
                    .any(|o| o.trim_end_matches('/') == origin)
        }
    }
}

fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn upgrade(
    state: web::Data<AppState>,
    live: web::Data<Arc<Live>>,
    req: HttpRequest,
    body: web::Payload,
    ip: ClientIp,
    query: web::Query<UpgradeQuery>,
) -> Result<HttpResponse, AppError> {
    if live.hub.is_shutting_down() {
        return Err(AppError::Unavailable {
            retry_after: 1,
            reason: "shutting down",
        });
    }
    if !is_upgrade(&req) {
        return Err(AppError::BadRequest(
            "this is the WebSocket endpoint: send an Upgrade: websocket request".into(),
        ));
    }
    if !origin_allowed(&state, &req) {
        return Err(AppError::Forbidden);
    }
    let ticket = query.into_inner().ticket.unwrap_or_default();
    let admitted = super::admit(&state, &live, &ticket, ip.0).await?;
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(_) => {
            super::release(&state, admitted.connection_id).await;
            return Err(AppError::BadRequest(
                "not a valid WebSocket handshake".into(),
            ));
        }
    };
    let registration = live.hub.register(admitted.user_id, admitted.credential);
    let stream = stream.max_frame_size(state.settings.live.max_frame_bytes);
    actix_web::rt::spawn(run_socket(
        state.clone(),
        live.get_ref().clone(),
        admitted,
        registration,
        session,
        stream,
    ));
    Ok(response)
}

/// A token bucket over the client's frames.
struct FrameBudget {
    tokens: f64,
    at: Instant,
}

impl FrameBudget {
    fn new() -> FrameBudget {
        FrameBudget {
            tokens: FRAMES_PER_SECOND * 2.0,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * FRAMES_PER_SECOND;
        self.tokens = (self.tokens + refill).min(FRAMES_PER_SECOND * 2.0);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn close_reason(code: u16) -> CloseReason {
    let (code, description) = match code {
        1001 => (CloseCode::Away, "server shutting down"),
        1008 => (CloseCode::Policy, "too many frames"),
        1009 => (CloseCode::Size, "frame too large"),
        1013 => (CloseCode::Again, "not reading: dropped"),
        1003 => (CloseCode::Unsupported, "text frames only"),
        close::UNAUTHORIZED => (CloseCode::Other(code), "credential ended"),
        close::PONG_TIMEOUT => (CloseCode::Other(code), "no pong"),
        other => (CloseCode::Other(other), ""),
    };
    CloseReason {
        code,
        description: Some(description.to_string()),
    }
}

/// What the socket loop decided.
enum Step {
    Continue,
    Close(u16),
    Gone,
}

async fn run_socket(
    state: web::Data<AppState>,
    live: Arc<Live>,
    admitted: Admitted,
    registration: Registration,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
) {
    let Registration {
        id,
        mut frames,
        closer,
    } = registration;
    let mut ping = tokio::time::interval(state.settings.live.ping_interval);
    ping.tick().await;
    let mut missed_pongs = 0u32;
    let mut budget = FrameBudget::new();
    let outcome = loop {
        let step = tokio::select! {
            biased;
            () = closer.notify.notified() => Step::Close(closer.code.load(Ordering::Acquire)),
            out = frames.recv() => match out {
                Some(text) => {
                    // A blocked write (the client does not read) can still be closed.
                    tokio::select! {
                        sent = session.text(text.to_string()) => {
                            if sent.is_ok() { Step::Continue } else { Step::Gone }
                        }
                        () = closer.notify.notified() => {
                            Step::Close(closer.code.load(Ordering::Acquire))
                        }
                    }
                }
                // The hub let go of the socket: it was closed (the code says why).
                None => Step::Close(closer.code.load(Ordering::Acquire)),
            },
            incoming = stream.next() => match incoming {
                None => Step::Gone,
                Some(Err(ProtocolError::Overflow)) => Step::Close(1009),
                Some(Err(_)) => Step::Gone,
                Some(Ok(message)) => {
                    if budget.take() {
                        handle(&state, &live, &admitted, id, &mut session, message, &mut missed_pongs).await
                    } else {
                        Step::Close(1008)
                    }
                }
            },
            _ = ping.tick() => {
                if missed_pongs >= 2 {
                    Step::Close(close::PONG_TIMEOUT)
                } else {
                    missed_pongs += 1;
                    match session.text(frame("ping", serde_json::json!({}))).await {
                        Ok(()) => Step::Continue,
                        Err(_) => Step::Gone,
                    }
                }
            }
        };
        match step {
            Step::Continue => {}
            other => break other,
        }
    };
    live.hub.unregister(id);
    if let Step::Close(code) = outcome {
        // A client that does not read cannot take a close frame either: do not wait for it.
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            session.close(Some(close_reason(code))),
        )
        .await;
        // Wait (briefly) for the client's closing frame: closing the connection with its
        // frame unread would reset it, and the client could lose our close frame and its code.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    super::release(&state, admitted.connection_id).await;
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &AppState,
    live: &Live,
    admitted: &Admitted,
    id: u64,
    session: &mut actix_ws::Session,
    message: Message,
    missed_pongs: &mut u32,
) -> Step {
    let text = match message {
        Message::Text(text) => text,
        Message::Ping(bytes) => {
            return match session.pong(&bytes).await {
                Ok(()) => Step::Continue,
                Err(_) => Step::Gone,
            };
        }
        Message::Pong(_) => {
            *missed_pongs = 0;
            return Step::Continue;
        }
        Message::Close(_) => return Step::Gone,
        Message::Binary(_) => return Step::Close(1003),
        _ => return Step::Continue,
    };
    let reply = match serde_json::from_str::<ClientFrame>(&text) {
        Err(_) => frame(
            "error",
            serde_json::json!({
                "code": "bad_frame",
                "message": "expected {\"type\": \"subscribe\" | \"unsubscribe\" | \"typing\" | \"pong\", …}",
            }),
        ),
        Ok(ClientFrame::Pong {}) => {
            *missed_pongs = 0;
            return Step::Continue;
        }
        Ok(ClientFrame::Subscribe { conversation_id }) => {
            subscribe(state, live, admitted.user_id, id, conversation_id).await
        }
        Ok(ClientFrame::Unsubscribe { conversation_id }) => {
            live.hub.unsubscribe(id, conversation_id);
            frame(
                "unsubscribed",
                serde_json::json!({ "conversation_id": conversation_id }),
            )
        }
        Ok(ClientFrame::Typing { conversation_id }) => {
            if live.hub.is_subscribed(id, conversation_id) {
                state
                    .bus
                    .publish(Event::new(EventKind::Typing, conversation_id).user(admitted.user_id));
                return Step::Continue;
            }
            not_found(conversation_id)
        }
    };
    match session.text(reply).await {
        Ok(()) => Step::Continue,
        Err(_) => Step::Gone,
    }
}

async fn subscribe(
    state: &AppState,
    live: &Live,
    user_id: Uuid,
    id: u64,
    conversation_id: Uuid,
) -> String {
    match super::may_follow(state, user_id, conversation_id).await {
        Ok(true) => {
            if live.hub.subscribe(id, conversation_id) > MAX_FOLLOWED {
                live.hub.unsubscribe(id, conversation_id);
                return frame(
                    "error",
                    serde_json::json!({
                        "code": "too_many_subscriptions",
                        "message": format!("a socket follows at most {MAX_FOLLOWED} conversations"),
                        "conversation_id": conversation_id,
                    }),
                );
            }
            frame(
                "subscribed",
                serde_json::json!({ "conversation_id": conversation_id }),
            )
        }
        Ok(false) => not_found(conversation_id),
        Err(_) => frame(
            "error",
            serde_json::json!({
                "code": "unavailable",
                "message": "try again",
                "conversation_id": conversation_id,
            }),
        ),
    }
}
