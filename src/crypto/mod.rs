//! Cryptographic building blocks. Randomness always comes from the operating system.

pub mod hmac;
pub mod jwt;
pub mod keyring;
pub mod passwords;
pub mod random;
