//! The in-process book of caps: committed totals per window, and live reservations.
//! Plain data, no I/O: the in-process state wraps it in a mutex, and the Redis scripts
//! implement the same rules.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::Reservation;
use crate::auction::CapWindow;

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    count: i64,
    spend_cents: i64,
}

#[derive(Debug, Default)]
struct Window {
    committed: Totals,
    reserved: Totals,
    end: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct CapBook {
    windows: HashMap<(String, String), Window>,
    reservations: HashMap<String, Reservation>,
    /// Reservations by expiry, for purging.
    by_expiry: BTreeSet<(DateTime<Utc>, String)>,
}

impl CapBook {
    /// Drops reservations whose offer expired, and windows long over.
    fn purge(&mut self, now: DateTime<Utc>) {
        while let Some((expires, id)) = self.by_expiry.first().cloned() {
            if expires > now {
                break;
            }
            self.by_expiry.pop_first();
            self.release(&id);
        }
        if self.windows.len() > 100_000 {
            self.windows
                .retain(|_, w| w.end.is_none_or(|end| end > now));
        }
    }

    pub fn is_seeded(&self, buyer_id: &str, window: &CapWindow) -> bool {
        self.windows
            .contains_key(&(buyer_id.to_string(), window.key.clone()))
    }

    /// Sets a window's committed totals from the database, unless they are known already.
    pub fn seed(&mut self, buyer_id: &str, window: &CapWindow, count: i64, spend_cents: i64) {
        let entry = self
            .windows
            .entry((buyer_id.to_string(), window.key.clone()))
            .or_default();
        if entry.end.is_none() {
            entry.committed = Totals { count, spend_cents };
            entry.end = Some(window.end);
        }
    }

    /// Room for at least one more lead: below every count cap and every spend cap.
    pub fn has_room(&mut self, buyer_id: &str, windows: &[CapWindow], now: DateTime<Utc>) -> bool {
        self.purge(now);
        windows.iter().all(|w| {
            let used = self.used(buyer_id, w);
            w.count_max.is_none_or(|max| used.count < max as i64)
                && w.spend_max_cents.is_none_or(|max| used.spend_cents < max)
        })
    }

    fn used(&self, buyer_id: &str, window: &CapWindow) -> Totals {
        self.windows
            .get(&(buyer_id.to_string(), window.key.clone()))
            .map(|w| Totals {
                count: w.committed.count + w.reserved.count,
                spend_cents: w.committed.spend_cents + w.reserved.spend_cents,
            })
            .unwrap_or_default()
    }

    /// Check and reserve in one step: all windows stay within their caps with this lead, or
    /// nothing is reserved. A reservation already held under this id is kept.
    pub fn reserve(&mut self, reservation: &Reservation, now: DateTime<Utc>) -> bool {
        self.purge(now);
        if self.reservations.contains_key(&reservation.id) {
            return true;
        }
        let fits = reservation.windows.iter().all(|w| {
            let used = self.used(&reservation.buyer_id, w);
            w.count_max.is_none_or(|max| used.count < max as i64)
                && w.spend_max_cents
                    .is_none_or(|max| used.spend_cents + reservation.price_cents <= max)
        });
        if !fits {
            return false;
        }
        for w in &reservation.windows {
            let window = self
                .windows
                .entry((reservation.buyer_id.clone(), w.key.clone()))
                .or_default();
            window.reserved.count += 1;
            window.reserved.spend_cents += reservation.price_cents;
            window.end.get_or_insert(w.end);
        }
        self.by_expiry
            .insert((reservation.expires_at, reservation.id.clone()));
        self.reservations
            .insert(reservation.id.clone(), reservation.clone());
        true
    }

    pub fn release(&mut self, id: &str) {
        let Some(reservation) = self.reservations.remove(id) else {
            return;
        };
        self.by_expiry
            .remove(&(reservation.expires_at, reservation.id.clone()));
        for w in &reservation.windows {
            if let Some(window) = self
                .windows
                .get_mut(&(reservation.buyer_id.clone(), w.key.clone()))
            {
                window.reserved.count -= 1;
                window.reserved.spend_cents -= reservation.price_cents;
            }
        }
    }

    /// The sale happened: its reservation (if still held) becomes committed spend.
    pub fn commit(&mut self, reservation: &Reservation) {
        self.release(&reservation.id);
        for w in &reservation.windows {
            let window = self
                .windows
                .entry((reservation.buyer_id.clone(), w.key.clone()))
                .or_default();
            window.committed.count += 1;
            window.committed.spend_cents += reservation.price_cents;
            window.end.get_or_insert(w.end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn day(count_max: Option<u32>, spend_max_cents: Option<i64>) -> CapWindow {
        let start = Utc::now() - Duration::hours(1);
        CapWindow {
            key: "day:x".into(),
            start,
            end: start + Duration::days(1),
            count_max,
            spend_max_cents,
        }
    }

    fn reservation(
        id: &str,
        window: &CapWindow,
        price_cents: i64,
        expires_at: DateTime<Utc>,
    ) -> Reservation {
        Reservation {
            id: id.into(),
            buyer_id: "b".into(),
            windows: vec![window.clone()],
            price_cents,
            expires_at,
        }
    }

    #[test]
    fn reserved_plus_committed_never_passes_a_count_cap() {
        let mut book = CapBook::default();
        let w = day(Some(2), None);
        let now = Utc::now();
        let later = now + Duration::minutes(2);
        book.seed("b", &w, 1, 0);
        assert!(book.reserve(&reservation("r1", &w, 100, later), now));
        assert!(
            !book.reserve(&reservation("r2", &w, 100, later), now),
            "1 committed + 1 reserved = cap"
        );
        assert!(!book.has_room("b", std::slice::from_ref(&w), now));
        assert!(
            book.reserve(&reservation("r1", &w, 100, later), now),
            "the same reservation again is held"
        );
        book.release("r1");
        assert!(book.reserve(&reservation("r2", &w, 100, later), now));
    }

    #[test]
    fn a_spend_cap_admits_a_sale_only_if_it_fits() {
        let mut book = CapBook::default();
        let w = day(None, Some(3000));
        let now = Utc::now();
        let later = now + Duration::minutes(2);
        book.seed("b", &w, 0, 0);
        assert!(book.reserve(&reservation("r1", &w, 1000, later), now));
        book.commit(&reservation("r1", &w, 1000, later));
        assert!(book.reserve(&reservation("r2", &w, 1500, later), now));
        assert!(
            !book.reserve(&reservation("r3", &w, 501, later), now),
            "2500 + 501 > 3000"
        );
        assert!(
            book.reserve(&reservation("r3", &w, 500, later), now),
            "2500 + 500 = 3000 is allowed"
        );
        assert!(!book.has_room("b", &[w], now));
    }

    #[test]
    fn an_expired_reservation_gives_its_room_back() {
        let mut book = CapBook::default();
        let w = day(Some(1), None);
        let now = Utc::now();
        book.seed("b", &w, 0, 0);
        assert!(book.reserve(
            &reservation("r1", &w, 100, now + Duration::seconds(120)),
            now
        ));
        assert!(!book.has_room("b", std::slice::from_ref(&w), now));
        assert!(book.has_room("b", std::slice::from_ref(&w), now + Duration::seconds(121)));
        assert!(book.reserve(
            &reservation("r2", &w, 100, now + Duration::seconds(300)),
            now + Duration::seconds(121)
        ));
    }

    #[test]
    fn seeding_never_overwrites_known_totals() {
        let mut book = CapBook::default();
        let w = day(Some(5), None);
        book.seed("b", &w, 3, 0);
        book.seed("b", &w, 0, 0);
        let now = Utc::now();
        let later = now + Duration::minutes(1);
        assert!(book.reserve(&reservation("r1", &w, 1, later), now));
        assert!(book.reserve(&reservation("r2", &w, 1, later), now));
        assert!(
            !book.reserve(&reservation("r3", &w, 1, later), now),
            "3 seeded + 2 reserved = 5"
        );
    }
}
