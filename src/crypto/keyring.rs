//! The Fernet key ring for data at rest: master keys (ENCRYPTION_KEY, the newest, plus
//! ENCRYPTION_KEYS_PREVIOUS) that only ever wrap per-user [`DataKey`]s, and the data keys that
//! encrypt content (message bodies, titles, attachments, MFA secrets).
//!
//! **Format.** Everything is a Fernet token (AES-128-CBC + HMAC-SHA256, encrypt-then-MAC, the
//! format of Python's `cryptography.fernet`), produced by the `fernet` crate: nothing here is
//! hand-rolled cryptography. A content token is exactly what Python's `Fernet(data_key).encrypt(
//! plaintext)` would produce, so a data key plus a token decrypt anywhere.
//!
//! **Master key ids.** Each master key is named by a fingerprint, `mk_` + 16 hex digits of
//! HMAC-SHA256(key bytes, "rampart master key id v1"): stable, stored next to every wrap, and
//! revealing nothing about the key. New wraps always use the newest key; unwrapping picks the
//! key by id, so rotation (re-wrapping under the newest key) can proceed in the background while
//! the service runs.
//!
//! **Binding.** A wrapped data key's plaintext is `rampart-dk-v1:<owner uuid>:<key>`: a wrapped
//! key copied onto another user's row does not unwrap there ([`KeyRingError::Corrupt`]).
//!
//! This module never touches the database (`users::data_keys` stores the wraps).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::hmac::HmacKey;

const WRAP_LABEL: &str = "rampart-dk-v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyRingError {
    /// A configured master key is not a Fernet key.
    #[error("{0} is not a valid Fernet key (32 bytes, url-safe base64, 44 characters)")]
    InvalidKey(String),
    /// The same master key is configured twice.
    #[error("{0} repeats a master key already configured")]
    Duplicate(String),
    /// A wrap or token names a master key that is not configured.
    #[error("master key {0} is not configured")]
    UnknownMasterKey(String),
    /// A token does not authenticate under the key it names (tampered, or another key's).
    #[error("a ciphertext failed authentication")]
    Corrupt,
    /// The OS random generator failed.
    #[error("the random generator failed")]
    Random,
}

/// A master key: it wraps data keys and never encrypts content.
struct MasterKey {
    id: String,
    fernet: fernet::Fernet,
}

/// The configured master keys, newest first.
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

/// The id of a master key: a fingerprint that reveals nothing about it.
pub fn master_key_id(key: &str) -> Result<String, KeyRingError> {
    let bytes = URL_SAFE
        .decode(key.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| KeyRingError::InvalidKey("the key".into()))?;
    let tag = HmacKey::new(&bytes).mac(&[b"rampart master key id v1"]);
    Ok(format!("mk_{}", hex::encode(&tag[..8])))
}

impl KeyRing {
    /// The ring from the newest key and the older ones (newest first). `names` label the keys in
    /// errors (the variable they came from), never their values.
    pub fn new(newest: &SecretString, previous: &[SecretString]) -> Result<KeyRing, KeyRingError> {
        let mut keys: Vec<MasterKey> = Vec::with_capacity(previous.len() + 1);
        let all = std::iter::once(("ENCRYPTION_KEY".to_string(), newest)).chain(
            previous
                .iter()
                .enumerate()
                .map(|(i, k)| (format!("ENCRYPTION_KEYS_PREVIOUS[{}]", i + 1), k)),
        );
        for (name, key) in all {
            let value = key.expose_secret().trim();
            let fernet =
                fernet::Fernet::new(value).ok_or_else(|| KeyRingError::InvalidKey(name.clone()))?;
            let id = master_key_id(value).map_err(|_| KeyRingError::InvalidKey(name.clone()))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyRingError::Duplicate(name));
            }
            keys.push(MasterKey { id, fernet });
        }
        Ok(KeyRing { keys })
    }

    /// A ring of one fresh random key (development and tests without ENCRYPTION_KEY).
    pub fn ephemeral() -> Result<KeyRing, KeyRingError> {
        let key = super::random::fernet_key().map_err(|_| KeyRingError::Random)?;
        KeyRing::new(&SecretString::from(key), &[])
    }

    /// The id of the newest key: every new wrap uses it.
    pub fn current_id(&self) -> &str {
        self.keys.first().map_or("", |k| k.id.as_str())
    }

    /// Every configured key id, newest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    fn key(&self, id: &str) -> Result<&MasterKey, KeyRingError> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyRingError::UnknownMasterKey(id.to_string()))
    }

    /// `data_key` wrapped under the newest master key, bound to `owner`.
    pub fn wrap(&self, owner: Uuid, data_key: &DataKey) -> Result<Wrapped, KeyRingError> {
        let key = self.keys.first().ok_or(KeyRingError::Random)?;
        let plaintext = format!("{WRAP_LABEL}:{owner}:{}", data_key.encoded.expose_secret());
        Ok(Wrapped {
            master_key_id: key.id.clone(),
            token: key.fernet.encrypt(plaintext.as_bytes()),
        })
    }

    /// The data key of `owner` wrapped as `token` under master key `master_key_id`.
    pub fn unwrap(
        &self,
        owner: Uuid,
        master_key_id: &str,
        token: &str,
    ) -> Result<DataKey, KeyRingError> {
        let key = self.key(master_key_id)?;
        let plaintext = key
            .fernet
            .decrypt(token)
            .map_err(|_| KeyRingError::Corrupt)?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| KeyRingError::Corrupt)?;
        let rest = text
            .strip_prefix(WRAP_LABEL)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or(KeyRingError::Corrupt)?;
        let (bound, encoded) = rest.split_once(':').ok_or(KeyRingError::Corrupt)?;
        if Uuid::parse_str(bound).ok() != Some(owner) {
            return Err(KeyRingError::Corrupt);
        }
        DataKey::from_encoded(encoded).ok_or(KeyRingError::Corrupt)
    }

    /// `token` (a wrap of `owner`'s key under any configured master key) re-wrapped under the
    /// newest one. The data key, and so every ciphertext under it, is unchanged.
    pub fn rewrap(
        &self,
        owner: Uuid,
        master_key_id: &str,
        token: &str,
    ) -> Result<Wrapped, KeyRingError> {
        let key = self.unwrap(owner, master_key_id, token)?;
        self.wrap(owner, &key)
    }
}

/// A data key wrapped by a master key: what the database holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    pub master_key_id: String,
    pub token: String,
}

/// A user's data key: a Fernet key that encrypts their content. Held unwrapped only in memory,
/// for the duration of one use-case.
pub struct DataKey {
    encoded: SecretString,
    fernet: fernet::Fernet,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***REDACTED***)")
    }
}

impl DataKey {
    /// A fresh data key from the OS RNG.
    pub fn generate() -> Result<DataKey, KeyRingError> {
        let encoded = super::random::fernet_key().map_err(|_| KeyRingError::Random)?;
        DataKey::from_encoded(&encoded).ok_or(KeyRingError::Random)
    }

    /// A data key from its url-safe base64 form (what Python's `Fernet(key)` takes).
    pub fn from_encoded(encoded: &str) -> Option<DataKey> {
        let fernet = fernet::Fernet::new(encoded)?;
        Some(DataKey {
            encoded: SecretString::from(encoded.to_string()),
            fernet,
        })
    }

    /// The key in its url-safe base64 form. Only for exports to the key's owner and interop tests.
    pub fn expose_encoded(&self) -> &str {
        self.encoded.expose_secret()
    }

    /// `plaintext` as a Fernet token.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        self.fernet.encrypt(plaintext)
    }

    /// The plaintext of `token`; `Corrupt` when it does not authenticate under this key.
    pub fn decrypt(&self, token: &str) -> Result<Vec<u8>, KeyRingError> {
        self.fernet
            .decrypt(token)
            .map_err(|_| KeyRingError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const K2: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1-f4CBgoM=";

    /// The Fernet spec's test vector (github.com/fernet/spec, generate.json / verify.json).
    #[test]
    fn the_fernet_spec_vector_decrypts_and_a_tampered_one_does_not() {
        let secret = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
        let token = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
        let f = fernet::Fernet::new(secret).unwrap();
        // The vector is from 1985: decrypt without a TTL (the crate checks only the format and MAC).
        assert_eq!(f.decrypt(token).unwrap(), b"hello");
        // invalid.json's kinds: a flipped byte (MAC), a cut token, a wrong version byte.
        let mut tampered = token.to_string();
        tampered.replace_range(40..41, "B");
        assert!(f.decrypt(&tampered).is_err());
        assert!(f.decrypt(&token[..token.len() - 8]).is_err());
        assert!(f.decrypt(&format!("h{}", &token[1..])).is_err());
        assert!(f.decrypt("%%%%").is_err());
        let data_key = DataKey::from_encoded(secret).unwrap();
        assert_eq!(data_key.decrypt(token).unwrap(), b"hello");
    }

    #[test]
    fn wraps_use_the_newest_key_and_unwrap_by_id_after_rotation() {
        let old = KeyRing::new(&key(K1), &[]).unwrap();
        let owner = Uuid::now_v7();
        let dk = DataKey::generate().unwrap();
        let token = dk.encrypt(b"secret message");
        let wrapped = old.wrap(owner, &dk).unwrap();
        assert_eq!(wrapped.master_key_id, master_key_id(K1).unwrap());
        assert!(!wrapped.token.contains(dk.expose_encoded()));

        let rotated = KeyRing::new(&key(K2), &[key(K1)]).unwrap();
        assert_eq!(rotated.current_id(), master_key_id(K2).unwrap());
        let rewrapped = rotated
            .rewrap(owner, &wrapped.master_key_id, &wrapped.token)
            .unwrap();
        assert_eq!(rewrapped.master_key_id, rotated.current_id());

        // The old key removed: the rewrapped key still opens the old ciphertext.
        let only_new = KeyRing::new(&key(K2), &[]).unwrap();
        let opened = only_new
            .unwrap(owner, &rewrapped.master_key_id, &rewrapped.token)
            .unwrap();
        assert_eq!(opened.decrypt(&token).unwrap(), b"secret message");
        // …and a wrap still under the removed key is reported, not guessed at.
        assert_eq!(
            only_new
                .unwrap(owner, &wrapped.master_key_id, &wrapped.token)
                .unwrap_err(),
            KeyRingError::UnknownMasterKey(wrapped.master_key_id.clone())
        );
    }

    #[test]
    fn a_wrap_is_bound_to_its_owner_and_to_its_key() {
        let ring = KeyRing::new(&key(K1), &[]).unwrap();
        let owner = Uuid::now_v7();
        let wrapped = ring.wrap(owner, &DataKey::generate().unwrap()).unwrap();
        assert_eq!(
            ring.unwrap(Uuid::now_v7(), &wrapped.master_key_id, &wrapped.token)
                .unwrap_err(),
            KeyRingError::Corrupt
        );
        // A token forged under another key but labelled with this key's id.
        let other = KeyRing::new(&key(K2), &[]).unwrap();
        let forged = other.wrap(owner, &DataKey::generate().unwrap()).unwrap();
        assert_eq!(
            ring.unwrap(owner, &wrapped.master_key_id, &forged.token)
                .unwrap_err(),
            KeyRingError::Corrupt
        );
    }

    #[test]
    fn bad_and_repeated_master_keys_are_refused_by_name_never_by_value() {
        let err = KeyRing::new(&key("not-a-key"), &[]).unwrap_err();
        assert_eq!(err, KeyRingError::InvalidKey("ENCRYPTION_KEY".into()));
        assert!(!err.to_string().contains("not-a-key"));
        let err = KeyRing::new(&key(K1), &[key(K2), key("x")]).unwrap_err();
        assert_eq!(
            err,
            KeyRingError::InvalidKey("ENCRYPTION_KEYS_PREVIOUS[2]".into())
        );
        assert_eq!(
            KeyRing::new(&key(K1), &[key(K1)]).unwrap_err(),
            KeyRingError::Duplicate("ENCRYPTION_KEYS_PREVIOUS[1]".into())
        );
        let id = master_key_id(K1).unwrap();
        assert!(id.starts_with("mk_") && id.len() == 19);
        assert_eq!(id, master_key_id(K1).unwrap());
        assert_ne!(id, master_key_id(K2).unwrap());
        assert!(!format!("{:?}", KeyRing::new(&key(K1), &[]).unwrap()).contains(K1));
    }
}
