//! Caps in the flow: eligibility, reservations, commits. Shared state holds the counters;
//! the database is the system of record they are seeded from and settled against.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Exchange;
use crate::auction::{cap_windows, CapWindow};
use crate::config::Buyer;
use crate::domain::Money;
use crate::state::Reservation;

/// What a buyer's caps say about one more lead.
pub enum Hold {
    /// The buyer has no caps.
    Uncapped,
    /// Count and price are reserved against every window.
    Held(Reservation),
    /// The lead would pass a cap.
    Full,
}

/// Counts a failed call to the shared state (Redis, when configured); the caller logs why.
fn shared_state_error() {
    crate::metrics::METRICS
        .dependency_errors
        .with_label_values(&["shared_state"])
        .inc();
}

pub fn reservation_id(ping_id: &str, buyer_id: &str) -> String {
    format!("{ping_id}:{buyer_id}")
}

impl Exchange {
    /// The buyer's windows now, their committed totals loaded from the database if the
    /// shared state does not have them (first use, restart, or a flushed Redis).
    pub(super) async fn ready_windows(
        &self,
        buyer: &Buyer,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<CapWindow>> {
        if buyer.caps.is_empty() {
            return Ok(Vec::new());
        }
        let windows = cap_windows(&buyer.caps, now);
        for window in self.state.unseeded(&buyer.id, &windows).await? {
            let (count, spend_cents) = self
                .store
                .buyer_totals(&buyer.id, window.start, window.end)
                .await?;
            self.state
                .seed(&buyer.id, &window, count, spend_cents)
                .await?;
        }
        Ok(windows)
    }

    /// Drops the buyers at a cap, reservations included. When the counters cannot be read,
    /// capped buyers sit the auction out rather than risk overspending.
    pub(super) async fn with_room(
        &self,
        buyers: Vec<Arc<Buyer>>,
        now: DateTime<Utc>,
    ) -> Vec<Arc<Buyer>> {
        let mut capped = Vec::new();
        for buyer in buyers.iter().filter(|b| !b.caps.is_empty()) {
            match self.ready_windows(buyer, now).await {
                Ok(windows) => capped.push((buyer.id.clone(), windows)),
                Err(e) => {
                    shared_state_error();
                    tracing::warn!(buyer = %buyer.id, error = %e, "cap counters unavailable; the buyer sits out")
                }
            }
        }
        let checks: Vec<(&str, &[CapWindow])> = capped
            .iter()
            .map(|(id, w)| (id.as_str(), w.as_slice()))
            .collect();
        let room: std::collections::HashMap<&str, bool> =
            match self.state.caps_room(&checks, now).await {
                Ok(room) => checks.iter().map(|(id, _)| *id).zip(room).collect(),
                Err(e) => {
                    shared_state_error();
                    tracing::warn!(error = %e, "cap counters unavailable; capped buyers sit out");
                    std::collections::HashMap::new()
                }
            };
        buyers
            .into_iter()
            .filter(|b| b.caps.is_empty() || room.get(b.id.as_str()).copied().unwrap_or(false))
            .collect()
    }

    /// Reserves one lead at `price` for the buyer until `expires_at`. An error counts as full.
    pub(super) async fn hold(
        &self,
        ping_id: &str,
        buyer: &Buyer,
        price: Money,
        expires_at: DateTime<Utc>,
    ) -> Hold {
        let now = self.now();
        let windows = match self.ready_windows(buyer, now).await {
            Ok(w) if w.is_empty() => return Hold::Uncapped,
            Ok(w) => w,
            Err(e) => {
                shared_state_error();
                tracing::warn!(buyer = %buyer.id, error = %e, "cap counters unavailable; no reservation");
                return Hold::Full;
            }
        };
        let reservation = Reservation {
            id: reservation_id(ping_id, &buyer.id),
            buyer_id: buyer.id.clone(),
            windows,
            price_cents: price.cents(),
            expires_at,
        };
        match self.state.reserve(&reservation, now).await {
            Ok(true) => Hold::Held(reservation),
            Ok(false) => Hold::Full,
            Err(e) => {
                shared_state_error();
                tracing::warn!(buyer = %buyer.id, error = %e, "cap counters unavailable; no reservation");
                Hold::Full
            }
        }
    }

    pub(super) async fn release(&self, hold: &Hold) {
        if let Hold::Held(reservation) = hold {
            if let Err(e) = self.state.release(&reservation.id).await {
                shared_state_error();
                tracing::warn!(error = %e, "could not release a reservation; it lapses with its offer");
            }
        }
    }

    pub(super) async fn commit(&self, hold: &Hold) {
        if let Hold::Held(reservation) = hold {
            if let Err(e) = self.state.commit(reservation).await {
                shared_state_error();
                tracing::warn!(error = %e, "could not commit a reservation; counters reseed from the database");
            }
        }
    }
}
