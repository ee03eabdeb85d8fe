//! The Redis bus: `PUBLISH` and `SUBSCRIBE` on REDIS_KEY_PREFIX + `rampart_live`, for deployments that outgrow
//! Postgres `NOTIFY` (which serialises the commits of notifying transactions).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, mpsc};

use super::{Event, Signal, Transport, backoff, parse};

/// The Redis transport: REDIS_URL, on `channel` (REDIS_KEY_PREFIX + `rampart_live`).
pub(super) struct Redis {
    pub url: SecretString,
    pub channel: String,
}

impl Transport for Redis {
    fn spawn_publisher(&self, rx: mpsc::Receiver<Event>) {
        spawn_publisher(self.url.clone(), self.channel.clone(), rx);
    }

    fn spawn_listener(&self, incoming: broadcast::Sender<Signal>, up: Arc<AtomicBool>) {
        spawn_listener(self.url.clone(), self.channel.clone(), incoming, up);
    }
}

fn spawn_publisher(url: SecretString, channel: String, mut rx: mpsc::Receiver<Event>) {
    tokio::spawn(async move {
        let mut attempt = 0;
        loop {
            let connection = match ::redis::Client::open(url.expose_secret()) {
                Ok(client) => client.get_multiplexed_async_connection().await,
                Err(error) => Err(error),
            };
            let mut connection = match connection {
                Ok(c) => c,
                Err(error) => {
                    tracing::warn!(error = %error, "live bus: the Redis publisher cannot connect");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
            };
            attempt = 0;
            while let Some(event) = rx.recv().await {
                let Ok(payload) = serde_json::to_string(&event) else {
                    continue;
                };
                let sent: ::redis::RedisResult<i64> = ::redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(payload)
                    .query_async(&mut connection)
                    .await;
                if let Err(error) = sent {
                    tracing::warn!(error = %error, "live bus: an event could not be published");
                    if error.is_io_error() || error.is_connection_dropped() {
                        break;
                    }
                }
            }
            if rx.is_closed() {
                return;
            }
        }
    });
}

fn spawn_listener(
    url: SecretString,
    channel: String,
    incoming: broadcast::Sender<Signal>,
    up: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        let mut attempt = 0;
        loop {
            let pubsub = match ::redis::Client::open(url.expose_secret()) {
                Ok(client) => client.get_async_pubsub().await,
                Err(error) => Err(error),
            };
            match pubsub {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&channel).await.is_ok() {
                        attempt = 0;
                        up.store(true, Ordering::Release);
                        tracing::info!("live bus: subscribed on Redis");
                        let _ = incoming.send(Signal::Resync);
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            if let Ok(payload) = message.get_payload::<String>()
                                && let Some(event) = parse(&payload)
                            {
                                let _ = incoming.send(Signal::Event(event));
                            }
                        }
                        up.store(false, Ordering::Release);
                        tracing::warn!("live bus: the Redis subscription was lost");
                        let _ = incoming.send(Signal::Resync);
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "live bus: the Redis listener cannot connect");
                }
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    });
}
