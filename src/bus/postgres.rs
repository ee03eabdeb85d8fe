//! The Postgres bus: `pg_notify` to publish, one dedicated `LISTEN` connection per instance
//! (tokio-postgres: a diesel connection cannot wait for a notification).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, mpsc};

use super::{CHANNEL, Event, Signal, Transport, backoff, parse};

/// The Postgres transport: DATABASE_URL.
pub(super) struct Postgres {
    pub url: SecretString,
}

impl Transport for Postgres {
    fn spawn_publisher(&self, rx: mpsc::Receiver<Event>) {
        spawn_publisher(self.url.clone(), rx);
    }

    fn spawn_listener(&self, incoming: broadcast::Sender<Signal>, up: Arc<AtomicBool>) {
        spawn_listener(self.url.clone(), incoming, up);
    }
}

/// Drains the publish queue through one connection, reconnecting with back-off. An event that
/// cannot be sent is dropped: the listeners' resync covers the gap.
fn spawn_publisher(url: SecretString, mut rx: mpsc::Receiver<Event>) {
    tokio::spawn(async move {
        let mut attempt = 0;
        loop {
            let (client, connection) =
                match tokio_postgres::connect(url.expose_secret(), tokio_postgres::NoTls).await {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(error = %error, "live bus: the publisher cannot connect");
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                };
            attempt = 0;
            let driver = tokio::spawn(connection);
            while let Some(event) = rx.recv().await {
                let Ok(payload) = serde_json::to_string(&event) else {
                    continue;
                };
                if let Err(error) = client
                    .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                    .await
                {
                    tracing::warn!(error = %error, "live bus: an event could not be published");
                    if client.is_closed() {
                        break;
                    }
                }
            }
            driver.abort();
            if rx.is_closed() {
                return;
            }
        }
    });
}

/// Listens on [`CHANNEL`] and forwards every event; reconnects with back-off and signals
/// [`Signal::Resync`] when the connection is lost and when it is back.
fn spawn_listener(url: SecretString, incoming: broadcast::Sender<Signal>, up: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut attempt = 0;
        loop {
            match tokio_postgres::connect(url.expose_secret(), tokio_postgres::NoTls).await {
                Ok((client, mut connection)) => {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    let statement = format!("LISTEN {CHANNEL}");
                    let listening = {
                        // The LISTEN completes only while the connection is driven.
                        let listen = client.batch_execute(&statement);
                        let mut listen = std::pin::pin!(listen);
                        loop {
                            tokio::select! {
                                result = &mut listen => break result.is_ok(),
                                message = messages.next() => {
                                    if !matches!(message, Some(Ok(_))) {
                                        break false;
                                    }
                                }
                            }
                        }
                    };
                    if listening {
                        attempt = 0;
                        up.store(true, Ordering::Release);
                        tracing::info!("live bus: listening on Postgres");
                        let _ = incoming.send(Signal::Resync);
                        while let Some(Ok(message)) = messages.next().await {
                            if let tokio_postgres::AsyncMessage::Notification(n) = message
                                && let Some(event) = parse(n.payload())
                            {
                                let _ = incoming.send(Signal::Event(event));
                            }
                        }
                        up.store(false, Ordering::Release);
                        tracing::warn!("live bus: the Postgres listener connection was lost");
                        let _ = incoming.send(Signal::Resync);
                    }
                    drop(client);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "live bus: the listener cannot connect");
                }
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    });
}
