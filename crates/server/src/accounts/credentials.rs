//! Usernames, passwords and their argon2id hashes.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// A username or password that the rules refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("username must be 3 to 32 characters of a-z, 0-9, '_', '.' and '-'")]
    Username,
    #[error("password must have at least 8 characters")]
    PasswordTooShort,
    #[error("password must be at most 1024 bytes")]
    PasswordTooLong,
}

/// Usernames: 3–32 of `a-z 0-9 _ . -`.
pub fn valid_username(name: &str) -> Result<(), CredentialError> {
    let ok = (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CredentialError::Username)
    }
}

/// Passwords: at least 8 characters (at most 1024 bytes, to bound the hashing work).
pub fn valid_password(password: &str) -> Result<(), CredentialError> {
    if password.chars().count() < 8 {
        return Err(CredentialError::PasswordTooShort);
    }
    if password.len() > 1024 {
        return Err(CredentialError::PasswordTooLong);
    }
    Ok(())
}

/// An argon2id PHC string (the crate's defaults: 19 MiB, 2 passes, 1 lane; OWASP's minimum).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

/// Whether `password` matches a PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against when the username does not exist, so that the answer takes as long
/// as for a wrong password and does not tell which names exist.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("no such user").unwrap_or_default());

/// [`hash_password`] off the async threads (hashing takes tens of milliseconds).
pub(super) async fn hash_password_blocking(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password)).await?
}

/// [`verify_password`] off the async threads; a user that does not exist costs the same and
/// never matches.
pub(super) async fn verify_password_blocking(
    password: String,
    phc: Option<String>,
) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password(&password, &phc),
        None => {
            verify_password(&password, &DUMMY_HASH);
            false
        }
    })
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a phc string"));
        assert_ne!(h, hash_password("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn names_and_passwords() {
        assert!(valid_username("alice_01.b-c").is_ok());
        for bad in ["al", "Alice", "a b c", "ali/ce", &"a".repeat(33), "ålice"] {
            assert_eq!(valid_username(bad), Err(CredentialError::Username), "{bad}");
        }
        assert!(valid_password("12345678").is_ok());
        assert_eq!(
            valid_password("1234567"),
            Err(CredentialError::PasswordTooShort)
        );
        assert!(valid_password("ééééééé").is_err(), "counted in characters");
        assert_eq!(
            valid_password(&"x".repeat(1025)),
            Err(CredentialError::PasswordTooLong)
        );
    }
}
