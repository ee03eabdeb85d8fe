//! Issue 19's benchmark: outbox throughput — mails per second from `email_outbox` into an SMTP
//! sink on loopback — with one sender and with two senders (two instances' worth: each its own
//! connection pool slot and SMTP transport) claiming from the same table with
//! `FOR UPDATE SKIP LOCKED`, in one run. It also checks what the two must never do: send a mail
//! twice.
//!
//! Each message costs one SMTP exchange on a pooled connection. lettre ends DATA with two writes
//! before it reads the answer; against a server that delays its ACKs (Linux does, 40 ms) Nagle's
//! algorithm holds the second write until then. The last two rounds let the sink ACK at once to
//! show what the sender costs without that stall.
//!
//! `cargo bench --bench email_outbox` — BENCH_MAILS [3000], BENCH_DATABASE_URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/support/smtp.rs"]
mod smtp;

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use rampart::email::sender::{Transport, deliver_due};

use common::env_or;

/// `n` pending mails of about 2 KiB each (text + HTML), due now.
fn seed(conn: &mut PgConnection, n: usize) {
    conn.batch_execute(&format!(
        "TRUNCATE email_outbox; \
         INSERT INTO email_outbox (id, kind, recipient, subject, text_body, html_body, status, \
            attempts, next_attempt_at, created_at) \
         SELECT gen_random_uuid(), 'password_changed', 'user' || g || '@example.org', \
            'Your rampart password was changed', repeat('Hello, this is a notice. ', 40), \
            '<p>' || repeat('Hello, this is a notice. ', 40) || '</p>', 'pending', 0, \
            now() - interval '1 second', now() \
         FROM generate_series(1, {n}) g;"
    ))
    .unwrap();
}

/// Runs `senders` sender loops until the outbox has nothing due: (seconds, mails sent).
fn drain(
    url: &str,
    settings: &rampart::config::settings::EmailSettings,
    senders: usize,
) -> (f64, usize) {
    let started = Instant::now();
    let handles: Vec<_> = (0..senders)
        .map(|_| {
            let url = url.to_string();
            let settings = settings.clone();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                let transport = Transport::from_settings(&settings).unwrap();
                let mut sent = 0;
                loop {
                    let round = deliver_due(
                        &mut conn,
                        &transport,
                        &settings,
                        time::OffsetDateTime::now_utc(),
                    )
                    .unwrap();
                    sent += round.sent;
                    if round.sent + round.retrying + round.failed == 0 {
                        return sent;
                    }
                }
            })
        })
        .collect();
    let sent = handles.into_iter().map(|h| h.join().unwrap()).sum();
    (started.elapsed().as_secs_f64(), sent)
}

fn main() {
    if !common::benchmarking() {
        return;
    }
    let n: usize = env_or("BENCH_MAILS", "3000").parse().unwrap();
    let (mut admin, name, url) = common::fresh_database("rampart_bench_outbox");
    let sink = smtp::SmtpSink::start();
    let settings = common::settings(
        &url,
        &[("EMAIL_BACKEND", "smtp"), ("SMTP_URL", &sink.url())],
    )
    .email;
    let mut conn = PgConnection::establish(&url).unwrap();
    println!(
        "| sink | senders | mails | seconds | mails/s | sent twice |\n| --- | --- | --- | --- | --- | --- |"
    );
    for (round, senders) in [1usize, 2, 1, 2, 1, 2].into_iter().enumerate() {
        // Rounds 5 and 6: the sink ACKs at once (no 40 ms delayed-ACK stall after lettre's two
        // writes that end DATA), to show the sender's own cost.
        if round == 4 {
            sink.ack_at_once();
        }
        let mode = if round >= 4 { "quick ACK" } else { "stock" };
        seed(&mut conn, n);
        let before = sink.mails().len();
        let (seconds, sent) = drain(&url, &settings, senders);
        let mails = sink.mails();
        let arrived = &mails[before..];
        let mut recipients: Vec<&str> = arrived.iter().map(|m| m.to[0].as_str()).collect();
        recipients.sort_unstable();
        let total = recipients.len();
        recipients.dedup();
        assert_eq!(sent, n, "every mail sent");
        assert_eq!(total, n, "every mail arrived");
        println!(
            "| {mode} | {senders} | {n} | {seconds:.2} | {:.0} | {} |",
            n as f64 / seconds,
            total - recipients.len()
        );
    }
    common::drop_database(&mut admin, &name);
}
