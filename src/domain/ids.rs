//! Prefixed, time-ordered identifiers (`ping_…`, `lead_…`, `txn_…`).

use uuid::Uuid;

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

pub fn new_ping_id() -> String {
    new_id("ping")
}

pub fn new_lead_id() -> String {
    new_id("lead")
}

pub fn new_transaction_id() -> String {
    new_id("txn")
}

/// Ids arrive from clients in paths and bodies; anything longer or stranger is not ours.
pub fn looks_like_id(prefix: &str, text: &str) -> bool {
    text.len() <= 64
        && text.strip_prefix(prefix).is_some_and(|rest| {
            rest.starts_with('_') && rest[1..].chars().all(|c| c.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_are_unique() {
        let a = new_ping_id();
        let b = new_ping_id();
        assert!(a.starts_with("ping_"));
        assert_ne!(a, b);
        assert!(looks_like_id("ping", &a));
        assert!(!looks_like_id("lead", &a));
        assert!(!looks_like_id("ping", "ping_../etc"));
    }
}
