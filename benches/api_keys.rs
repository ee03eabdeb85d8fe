//! Cost of API key verification before the database: rejecting a malformed key (shape and
//! checksum), parsing a well-formed one, its HMAC-SHA256, and the whole pre-database path
//! (parse + HMAC + constant-time comparison). The database lookup and request throughput (API key
//! versus JWT on `GET /api/v1/me`) are measured with wrk by scripts/bench.
//!
//! `cargo bench --bench api_keys -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rampart::api_keys::format::{self, ApiKeyHasher};
use secrecy::ExposeSecret;

fn verification(c: &mut Criterion) {
    let hasher = ApiKeyHasher::from_bytes(b"bench-api-key-hash-secret-0123456789-abcdef");
    let generated = format::generate().expect("rng");
    let key = generated.key.expose_secret().to_string();
    let stored = hasher.hash(&key);

    // Same length and alphabet, last checksum character changed: fails only at the checksum.
    let mut bad_checksum = key.clone().into_bytes();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] = if bad_checksum[last] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let bad_checksum = String::from_utf8(bad_checksum).expect("ascii");
    let wrong_length = "rk_not-a-key";
    let jwt_shaped = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWc";

    let mut group = c.benchmark_group("api_key");
    group.bench_function("reject_bad_checksum", |b| {
        b.iter(|| format::parse(black_box(&bad_checksum)).is_err())
    });
    group.bench_function("reject_wrong_length", |b| {
        b.iter(|| format::parse(black_box(wrong_length)).is_err())
    });
    group.bench_function("reject_jwt_shaped", |b| {
        b.iter(|| format::parse(black_box(jwt_shaped)).is_err())
    });
    group.bench_function("parse_valid", |b| {
        b.iter(|| format::parse(black_box(&key)).is_ok())
    });
    group.bench_function("hmac_sha256", |b| b.iter(|| hasher.hash(black_box(&key))));
    group.bench_function("parse_hmac_compare_valid", |b| {
        b.iter(|| {
            let parsed = format::parse(black_box(&key)).expect("valid");
            let computed = hasher.hash(parsed.as_str());
            assert!(format::hashes_match(&stored, &computed));
        })
    });
    group.bench_function("generate", |b| b.iter(|| format::generate().expect("rng")));
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
