//! Re-embeds migrations when the folder changes (`embed_migrations!` alone does not notice a new
//! migration) and fingerprints them so the test harness can cache one migrated template database.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let mut files = Vec::new();
    collect(Path::new("migrations"), &mut files);
    files.sort();
    let mut hasher = DefaultHasher::new();
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        path.hash(&mut hasher);
        if let Ok(bytes) = std::fs::read(path) {
            bytes.hash(&mut hasher);
        }
    }
    println!(
        "cargo:rustc-env=RAMPART_MIGRATIONS_FINGERPRINT={:016x}",
        hasher.finish()
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
