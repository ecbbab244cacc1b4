//! API keys: only their SHA-256 hashes are kept, in memory and in the database.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::ConfigError;

pub type KeyHash = [u8; 32];

pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Reads `api_key` (hashed at once) or `api_key_sha256`; exactly one may be given.
pub fn parse_key(
    file: &Path,
    prefix: &str,
    api_key: Option<&str>,
    api_key_sha256: Option<&str>,
) -> Result<Option<KeyHash>, ConfigError> {
    match (api_key, api_key_sha256) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            file,
            format!("{prefix}api_key"),
            "give api_key or api_key_sha256, not both",
        )),
        (Some(key), None) if key.len() < 16 => Err(ConfigError::new(
            file,
            format!("{prefix}api_key"),
            "an API key needs at least 16 characters",
        )),
        (Some(key), None) => Ok(Some(hash_key(key))),
        (None, Some(hex_hash)) => {
            let bytes = hex::decode(hex_hash)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    ConfigError::new(
                        file,
                        format!("{prefix}api_key_sha256"),
                        "must be 64 lowercase hex digits",
                    )
                })?;
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&bytes);
            Ok(Some(hash))
        }
        (None, None) => Ok(None),
    }
}
