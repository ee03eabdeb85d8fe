//! The frames of the live protocol (JSON text frames, documented in README) and the ticket.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /api/v1/ws/ticket`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    /// Single use, for `GET /api/v1/ws?ticket=…` from the same IP within `expires_in` seconds.
    pub ticket: String,
    pub expires_in: i64,
}

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientFrame {
    #[serde(rename = "subscribe")]
    Subscribe { conversation_id: Uuid },
    #[serde(rename = "unsubscribe")]
    Unsubscribe { conversation_id: Uuid },
    #[serde(rename = "typing")]
    Typing { conversation_id: Uuid },
    #[serde(rename = "pong")]
    Pong {},
}

/// Close codes rampart uses besides the standard ones.
pub mod close {
    /// The credential behind the socket ended (sign-out, disable, erasure, key revoked).
    pub const UNAUTHORIZED: u16 = 4401;
    /// Two pings went unanswered.
    pub const PONG_TIMEOUT: u16 = 4408;
}

/// A server frame carrying only ids (the message frames are built from the loaded view).
pub fn frame(kind: &str, fields: serde_json::Value) -> String {
    let mut object = serde_json::json!({ "type": kind });
    if let (serde_json::Value::Object(o), serde_json::Value::Object(f)) = (&mut object, fields) {
        o.extend(f);
    }
    object.to_string()
}

/// The error frame: the same for a conversation that does not exist and one the caller is not
/// in (no membership oracle).
pub fn not_found(conversation_id: Uuid) -> String {
    frame(
        "error",
        serde_json::json!({
            "code": "not_found",
            "message": "no such conversation",
            "conversation_id": conversation_id,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_strict() {
        let id = Uuid::nil();
        assert_eq!(
            serde_json::from_str::<ClientFrame>(&format!(
                "{{\"type\":\"subscribe\",\"conversation_id\":\"{id}\"}}"
            ))
            .unwrap(),
            ClientFrame::Subscribe {
                conversation_id: id
            }
        );
        assert_eq!(
            serde_json::from_str::<ClientFrame>("{\"type\":\"pong\"}").unwrap(),
            ClientFrame::Pong {}
        );
        for bad in [
            "{\"type\":\"subscribe\"}",
            "{\"type\":\"subscribe\",\"conversation_id\":\"x\"}",
            "{\"type\":\"pong\",\"extra\":1}",
            "{\"type\":\"drop\"}",
            "[]",
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
        assert_eq!(frame("ping", serde_json::json!({})), "{\"type\":\"ping\"}");
    }
}
