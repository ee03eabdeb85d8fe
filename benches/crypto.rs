//! Cost of the crypto on the request path: argon2id hash/verify at the default parameters, bcrypt
//! cost-10 verify (imports), and access-token sign/verify for HS256 and EdDSA.
//!
//! `cargo bench --bench crypto -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
use rampart::crypto::jwt::{JwtAlgorithm, JwtConfig, JwtKey, JwtKeys, KeyMaterial};
use rampart::crypto::passwords::{PasswordHasher, PasswordParams};
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

fn passwords(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let hasher = PasswordHasher::new(PasswordParams::default(), 1, 16).expect("hasher");
    let stored = runtime
        .block_on(hasher.hash(SecretString::from(PASSWORD)))
        .expect("hash");
    let bcrypt_stored = bcrypt::non_truncating_hash(PASSWORD, 10).expect("bcrypt");

    let mut group = c.benchmark_group("passwords");
    group.sample_size(20);
    group.bench_function("argon2id_hash_default", |b| {
        b.iter(|| {
            runtime
                .block_on(hasher.hash(SecretString::from(PASSWORD)))
                .expect("hash")
        })
    });
    group.bench_function("argon2id_verify_default", |b| {
        b.iter(|| {
            let v = runtime
                .block_on(hasher.verify(SecretString::from(PASSWORD), Some(stored.clone())))
                .expect("verify");
            assert!(v.matches);
        })
    });
    group.bench_function("argon2id_verify_unknown_user_dummy", |b| {
        b.iter(|| {
            runtime
                .block_on(hasher.verify(SecretString::from(PASSWORD), None))
                .expect("verify")
        })
    });
    group.bench_function("bcrypt_cost10_verify", |b| {
        b.iter(|| {
            let v = runtime
                .block_on(hasher.verify(SecretString::from(PASSWORD), Some(bcrypt_stored.clone())))
                .expect("verify");
            assert!(v.matches);
        })
    });
    // The raw primitive without the pool, to show the pool's overhead.
    group.bench_function("bcrypt_cost10_verify_raw", |b| {
        b.iter(|| {
            bcrypt::non_truncating_verify(black_box(PASSWORD), &bcrypt_stored).expect("verify")
        })
    });
    group.finish();
}

fn config(algorithm: JwtAlgorithm) -> JwtConfig {
    JwtConfig {
        algorithm,
        issuer: "https://rampart.bench".into(),
        audience: "rampart-api".into(),
        ttl: Duration::from_secs(900),
        leeway_seconds: 30,
    }
}

fn jwt(c: &mut Criterion) {
    let hs = JwtKeys::new(
        config(JwtAlgorithm::Hs256),
        vec![JwtKey::hmac(SecretString::from(
            "bench-secret-bench-secret-bench-secret-0123",
        ))],
    )
    .expect("hs keys");

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("rng");
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let ed = JwtKeys::new(
        config(JwtAlgorithm::EdDsa),
        vec![JwtKey {
            kid: "bench-ed".into(),
            material: KeyMaterial::Pem {
                private_pem: Some(
                    signing
                        .to_pkcs8_pem(LineEnding::LF)
                        .expect("pkcs8")
                        .to_string(),
                ),
                public_pem: signing
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .expect("spki"),
            },
        }],
    )
    .expect("ed keys");

    let mut group = c.benchmark_group("jwt");
    for (name, keys) in [("hs256", &hs), ("eddsa", &ed)] {
        let (token, _) = keys
            .sign(
                Uuid::now_v7(),
                Uuid::now_v7(),
                "team_member",
                OffsetDateTime::now_utc(),
            )
            .expect("sign");
        group.bench_function(format!("{name}_sign"), |b| {
            b.iter(|| {
                keys.sign(
                    black_box(Uuid::nil()),
                    Uuid::nil(),
                    "team_member",
                    OffsetDateTime::now_utc(),
                )
                .expect("sign")
            })
        });
        group.bench_function(format!("{name}_verify"), |b| {
            b.iter(|| keys.verify(black_box(&token)).expect("verify"))
        });
    }
    group.finish();
}

criterion_group!(benches, passwords, jwt);
criterion_main!(benches);
