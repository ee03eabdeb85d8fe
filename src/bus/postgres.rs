//! The Postgres bus: `pg_notify` to publish, one dedicated `LISTEN` connection per instance
//! (tokio-postgres: a diesel connection cannot wait for a notification).
//!
//! TLS follows DATABASE_URL's `sslmode`: `require`, `verify-ca` and `verify-full` connect over
//! TLS (rustls) with the server certificate verified against the Mozilla roots — stricter than
//! libpq's `require`, which does not verify; `disable`, `prefer` (the default) and `allow` connect
//! in plain text, as libpq does when the server offers no TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, mpsc};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{CHANNEL, Event, Signal, Transport, backoff, parse};

/// How to reach the database: the parsed URL and the TLS connector its `sslmode` asks for.
fn target(url: &SecretString) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    use tokio_postgres::config::SslMode;
    let raw = url.expose_secret();
    // tokio-postgres knows disable / prefer / require; the verifying modes are `require` here,
    // and the certificate is always verified below.
    let wants_tls = [
        "sslmode=require",
        "sslmode=verify-ca",
        "sslmode=verify-full",
    ]
    .iter()
    .any(|m| raw.contains(m));
    let normalised = raw
        .replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require")
        .replace("sslmode=allow", "sslmode=prefer");
    let mut config: tokio_postgres::Config = normalised
        .parse()
        .map_err(|e: tokio_postgres::Error| format!("DATABASE_URL: {e}"))?;
    config.ssl_mode(if wants_tls {
        SslMode::Require
    } else {
        SslMode::Disable
    });
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok((config, MakeRustlsConnect::new(tls)))
}

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
            let connected = match target(&url) {
                Ok((config, tls)) => config.connect(tls).await.map_err(|e| e.to_string()),
                Err(error) => Err(error),
            };
            let (client, connection) = match connected {
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
            let connected = match target(&url) {
                Ok((config, tls)) => config.connect(tls).await.map_err(|e| e.to_string()),
                Err(error) => Err(error),
            };
            match connected {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_decides_tls_and_verifying_modes_parse() {
        use tokio_postgres::config::SslMode;
        for (url, mode) in [
            ("postgres://u@db/x", SslMode::Disable),
            ("postgres://u@db/x?sslmode=prefer", SslMode::Disable),
            ("postgres://u@db/x?sslmode=allow", SslMode::Disable),
            ("postgres://u@db/x?sslmode=disable", SslMode::Disable),
            ("postgres://u@db/x?sslmode=require", SslMode::Require),
            ("postgres://u@db/x?sslmode=verify-ca", SslMode::Require),
            ("postgres://u@db/x?sslmode=verify-full", SslMode::Require),
        ] {
            let (config, _) = target(&SecretString::from(url)).unwrap();
            assert_eq!(config.get_ssl_mode(), mode, "{url}");
        }
        assert!(target(&SecretString::from("postgres://u@db/x?sslmode=bogus")).is_err());
    }
}
