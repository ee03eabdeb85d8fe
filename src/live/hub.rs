//! The sockets of one instance: who is connected with which credential, which conversations each
//! socket follows, and a bounded outgoing queue per socket.
//!
//! A socket whose queue is full — a client that does not read — is dropped (1013) instead of
//! buffered: memory never grows with a slow client. Closing goes around the queue (a flag and a
//! `Notify` the socket's task waits on, also while it is blocked writing), so a stuck socket can
//! always be closed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

/// Frames waiting for one socket before it counts as not reading.
pub const QUEUE: usize = 64;

/// The credential a socket was opened with: its end closes the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    Session(Uuid),
    ApiKey(Uuid),
    Provider(Uuid),
}

/// What the socket's task receives besides frames: why to close.
#[derive(Debug)]
pub struct Closer {
    pub notify: Notify,
    pub code: AtomicU16,
}

struct Entry {
    user_id: Uuid,
    credential: Credential,
    conversations: HashSet<Uuid>,
    tx: mpsc::Sender<Arc<str>>,
    closer: Arc<Closer>,
}

/// The registry of one instance.
#[derive(Default)]
pub struct Hub {
    sockets: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
    shutting_down: AtomicBool,
    dropped_slow: AtomicU64,
}

/// A registered socket's handles.
pub struct Registration {
    pub id: u64,
    pub frames: mpsc::Receiver<Arc<str>>,
    pub closer: Arc<Closer>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removes): keep serving.
        self.sockets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn register(&self, user_id: Uuid, credential: Credential) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, frames) = mpsc::channel(QUEUE);
        let closer = Arc::new(Closer {
            notify: Notify::new(),
            code: AtomicU16::new(1000),
        });
        self.lock().insert(
            id,
            Entry {
                user_id,
                credential,
                conversations: HashSet::new(),
                tx,
                closer: closer.clone(),
            },
        );
        Registration { id, frames, closer }
    }

    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// How many conversations the socket follows now (after adding `conversation_id`).
    pub fn subscribe(&self, id: u64, conversation_id: Uuid) -> usize {
        self.lock().get_mut(&id).map_or(0, |e| {
            e.conversations.insert(conversation_id);
            e.conversations.len()
        })
    }

    pub fn unsubscribe(&self, id: u64, conversation_id: Uuid) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.conversations.remove(&conversation_id);
        }
    }

    pub fn is_subscribed(&self, id: u64, conversation_id: Uuid) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|e| e.conversations.contains(&conversation_id))
    }

    /// The sockets following `conversation_id`, with their users.
    pub fn followers(&self, conversation_id: Uuid) -> Vec<(u64, Uuid)> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.conversations.contains(&conversation_id))
            .map(|(id, e)| (*id, e.user_id))
            .collect()
    }

    /// Stops every socket of `user_id` following `conversation_id` (they left it).
    pub fn forget_member(&self, conversation_id: Uuid, user_id: Uuid) {
        for e in self.lock().values_mut() {
            if e.user_id == user_id {
                e.conversations.remove(&conversation_id);
            }
        }
    }

    /// Queues `frame` for socket `id`; a full queue drops the socket (1013).
    pub fn send(&self, id: u64, frame: Arc<str>) {
        let full = match self.lock().get(&id) {
            Some(e) => matches!(
                e.tx.try_send(frame),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            None => false,
        };
        if full {
            self.dropped_slow.fetch_add(1, Ordering::Relaxed);
            self.close(id, 1013);
        }
    }

    /// Queues `frame` for every socket.
    pub fn send_all(&self, frame: Arc<str>) {
        let ids: Vec<u64> = self.lock().keys().copied().collect();
        for id in ids {
            self.send(id, frame.clone());
        }
    }

    /// Closes socket `id` with `code`, whatever its queue holds; it receives nothing more.
    pub fn close(&self, id: u64, code: u16) {
        if let Some(e) = self.lock().remove(&id) {
            e.closer.code.store(code, Ordering::Release);
            e.closer.notify.notify_one();
        }
    }

    /// Every socket's credential (the revocation sweep).
    pub fn credentials(&self) -> Vec<(u64, Credential)> {
        self.lock()
            .iter()
            .map(|(id, e)| (*id, e.credential))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sockets dropped because they did not read.
    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }

    /// Stops accepting sockets and closes every one with 1001 (going away).
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let ids: Vec<u64> = self.lock().keys().copied().collect();
        for id in ids {
            self.close(id, 1001);
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_does_not_read_is_dropped_and_closing_skips_the_queue() {
        let hub = Hub::default();
        let user = Uuid::now_v7();
        let mut slow = hub.register(user, Credential::Session(Uuid::nil()));
        let conversation = Uuid::now_v7();
        assert_eq!(hub.subscribe(slow.id, conversation), 1);
        assert_eq!(hub.followers(conversation), vec![(slow.id, user)]);
        for _ in 0..QUEUE {
            hub.send(slow.id, Arc::from("x"));
        }
        assert_eq!(hub.len(), 1, "a full queue is not yet a slow client");
        hub.send(slow.id, Arc::from("one too many"));
        assert!(hub.is_empty(), "dropped");
        assert_eq!(slow.closer.code.load(Ordering::Acquire), 1013);
        assert_eq!(hub.dropped_slow(), 1);
        // It received at most the queue, never more.
        let mut received = 0;
        while slow.frames.try_recv().is_ok() {
            received += 1;
        }
        assert_eq!(received, QUEUE);

        let other = hub.register(user, Credential::ApiKey(Uuid::nil()));
        hub.subscribe(other.id, conversation);
        hub.forget_member(conversation, user);
        assert!(hub.followers(conversation).is_empty());
        hub.shut_down();
        assert!(hub.is_shutting_down() && hub.is_empty());
        assert_eq!(other.closer.code.load(Ordering::Acquire), 1001);
    }
}
