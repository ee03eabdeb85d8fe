//! The live-event bus between instances: what changed (ids only, never content) goes out from the
//! instance where it happened and comes back in on every instance, where `live` loads what it
//! needs and checks membership before anything reaches a socket.
//!
//! **Boundary.** Infrastructure (layer 2, beside `db`): it knows events as ids and kinds, not
//! conversations or users. Features publish with [`Bus::publish`] after their transaction
//! commits; `live` consumes [`Signal`]s from [`Bus::subscribe`]. One trait ([`Transport`]), two
//! implementations chosen by LIVE_BUS: Postgres `LISTEN/NOTIFY` on one dedicated connection per
//! instance (`postgres.rs`; nothing else to run), or Redis pub/sub (`redis.rs`). Both reconnect
//! with back-off, and both report a gap — the connection went down, or came back after one — as
//! [`Signal::Resync`], so clients are told to reload instead of silently missing events.
//!
//! Publishing never blocks a request: events go into a bounded queue drained by one task; when
//! the queue is full (the bus is down for long) events are dropped and counted, and the listeners'
//! resync covers them.

mod postgres;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::config::Settings;
use crate::config::settings::LiveBus;

/// The channel (Postgres) / topic (Redis) events travel on.
pub const CHANNEL: &str = "rampart_live";

/// Events waiting to be published before new ones are dropped.
const QUEUE: usize = 10_000;

/// What happened, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    MessageCreated,
    MessageEdited,
    MessageDeleted,
    /// Title, members or activity changed.
    ConversationUpdated,
    /// `user_id` left (or was removed from) the conversation: their sockets stop receiving it.
    MemberLeft,
    /// `user_id` read up to `seq`.
    Read,
    /// `user_id` is typing.
    Typing,
}

/// One event: ids only (a NOTIFY payload is visible to anyone who can LISTEN on the database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub conversation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl Event {
    pub fn new(kind: EventKind, conversation_id: Uuid) -> Event {
        Event {
            kind,
            conversation_id,
            message_id: None,
            user_id: None,
            seq: None,
        }
    }

    pub fn message(mut self, id: Uuid) -> Event {
        self.message_id = Some(id);
        self
    }

    pub fn user(mut self, id: Uuid) -> Event {
        self.user_id = Some(id);
        self
    }

    pub fn seq(mut self, seq: i64) -> Event {
        self.seq = Some(seq);
        self
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Event(Event),
    /// Events may have been missed (the bus connection went down, or came back): reload.
    Resync,
}

/// One way of carrying events between instances (Postgres `LISTEN/NOTIFY`, Redis pub/sub): the
/// same frames and the same resync rule, whichever is configured.
pub(crate) trait Transport: Send + Sync {
    /// Drains `rx`, publishing each event to every instance; reconnects with back-off.
    fn spawn_publisher(&self, rx: mpsc::Receiver<Event>);
    /// Forwards every event published by any instance to `incoming`; sets `up` while connected
    /// and sends [`Signal::Resync`] when the connection is lost and when it is back.
    fn spawn_listener(&self, incoming: broadcast::Sender<Signal>, up: Arc<AtomicBool>);
}

/// The bus of one instance. Cheap to share (`Arc`); inert until [`Bus::start`] (the CLI never
/// starts it, and publishing then does nothing).
pub struct Bus {
    kind: LiveBus,
    database_url: secrecy::SecretString,
    redis_url: Option<secrecy::SecretString>,
    /// The Redis channel: REDIS_KEY_PREFIX + [`CHANNEL`], so deployments sharing a Redis do not
    /// hear each other.
    redis_channel: String,
    outgoing: std::sync::Mutex<Option<mpsc::Sender<Event>>>,
    incoming: broadcast::Sender<Signal>,
    up: Arc<AtomicBool>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("kind", &self.kind)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Bus {
    pub fn new(settings: &Settings) -> Bus {
        let (incoming, _) = broadcast::channel(QUEUE);
        Bus {
            kind: settings.live.bus,
            database_url: settings.database.url.clone(),
            redis_url: settings.rate_limit.redis_url.clone(),
            redis_channel: format!("{}{CHANNEL}", settings.rate_limit.redis_key_prefix),
            outgoing: std::sync::Mutex::new(None),
            incoming,
            up: Arc::new(AtomicBool::new(false)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Starts the publisher and the listener (inside the server's runtime). Idempotent.
    pub fn start(self: &Arc<Self>) {
        let Ok(mut outgoing) = self.outgoing.lock() else {
            return;
        };
        if outgoing.is_some() {
            return;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        *outgoing = Some(tx);
        let transport: Box<dyn Transport> = match self.kind {
            LiveBus::Postgres => Box::new(postgres::Postgres {
                url: self.database_url.clone(),
            }),
            LiveBus::Redis => Box::new(redis::Redis {
                url: self.redis_url.clone().unwrap_or_default(),
                channel: self.redis_channel.clone(),
            }),
        };
        transport.spawn_publisher(rx);
        transport.spawn_listener(self.incoming.clone(), self.up.clone());
    }

    /// Publishes `event` to every instance (this one included). Never blocks: a full queue drops.
    pub fn publish(&self, event: Event) {
        let Ok(outgoing) = self.outgoing.lock() else {
            return;
        };
        if let Some(tx) = outgoing.as_ref()
            && tx.try_send(event).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every signal from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.incoming.subscribe()
    }

    /// Whether the listener is connected (`/ready`).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn kind(&self) -> LiveBus {
        self.kind
    }

    /// Events dropped because the publish queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Back-off between reconnection attempts: 100 ms doubling to 5 s.
fn backoff(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis((100u64 << attempt.min(6)).min(5_000))
}

/// Parses a payload; a malformed one (not ours) is ignored.
fn parse(payload: &str) -> Option<Event> {
    serde_json::from_str(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_travel_as_ids_and_malformed_payloads_are_ignored() {
        let id = Uuid::nil();
        let e = Event::new(EventKind::MessageCreated, id).message(id).seq(7);
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"kind\":\"message_created\",\"conversation_id\":\"{id}\",\"message_id\":\"{id}\",\"seq\":7}}"
            )
        );
        assert_eq!(parse(&text), Some(e));
        assert_eq!(parse("{\"kind\":\"drop_tables\"}"), None);
        assert_eq!(parse("not json"), None);
        assert_eq!(backoff(0).as_millis(), 100);
        assert_eq!(backoff(20).as_millis(), 5_000);
    }
}
