//! The offers this node made lately, kept in memory so that their posts need not read them
//! back from the database.
//!
//! A post read its ping and ranked bids from the store first: a trip to a reader connection's
//! thread (SQLite) or to the server (PostgreSQL) that returned what this node had itself
//! written a few milliseconds before. Offers are put here once their ping is committed, and a
//! post on the same node takes its offer from here; any other post (another node, an offer
//! pushed out, a restart) reads the store as before. Nothing is decided from here alone: the
//! claim, a write on the ping's row, still says whether the post may deliver, and a ping that
//! was already posted goes on to the replay, which reads the store.
//!
//! Bounded by weight (one per offer and one per ranked bid), so that 100 bids an auction
//! cannot hold much more memory than 10 bids do; when full, the oldest offers go first.

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::store::{NewPing, PingRow, PingStatus, RankedBid};

/// Most offers and ranked bids held, counted together: ~3,000 offers of 10 bids (seconds of
/// offers at 1,000 pings a second), ~320 of 100 bids. With 100,000 live offers a bound of
/// 65,536 took 13 MB more than no cache (load-tests/RESULTS.md, memory).
const WEIGHT_MAX: u64 = 32_768;
/// What the cache is sized for at first (it holds fewer when offers carry many bids).
const OFFERS_EXPECTED: usize = 4_096;

/// A ping with an offer, and its valid bids best first: what a post needs. Only ever moved in
/// and out of the cache, never copied.
pub(super) type Offer = (PingRow, Vec<RankedBid>);

#[derive(Clone)]
struct ByBids;

impl Weighter<String, Offer> for ByBids {
    fn weight(&self, _ping_id: &String, offer: &Offer) -> u64 {
        1 + offer.1.len() as u64
    }
}

pub(super) struct RecentOffers {
    cache: Cache<String, Offer, ByBids>,
}

impl Default for RecentOffers {
    fn default() -> Self {
        RecentOffers {
            cache: Cache::with_weighter(OFFERS_EXPECTED, WEIGHT_MAX, ByBids),
        }
    }
}

impl RecentOffers {
    /// A ping's offer as the store will have it once the ping is committed: the ping's row and
    /// its ranked bids in rank order; `None` for a ping without an offer.
    pub(super) fn of(ping: &NewPing) -> Option<Offer> {
        if ping.status != PingStatus::Offer {
            return None;
        }
        let mut ranked: Vec<(i32, RankedBid)> = ping
            .bids
            .iter()
            .filter_map(|b| {
                Some((
                    b.rank?,
                    RankedBid {
                        buyer_id: b.buyer_id.clone(),
                        price: b.price?,
                        bid_id: b.bid_id.clone(),
                    },
                ))
            })
            .collect();
        ranked.sort_by_key(|(rank, _)| *rank);
        let row = PingRow {
            id: ping.id.clone(),
            seller_id: ping.seller_id.clone(),
            vertical: ping.vertical.clone(),
            lead_json: ping.lead_json.clone(),
            status: ping.status,
            payout: ping.payout,
            expires_at: ping.expires_at,
            lead_id: None,
        };
        let bids = ranked.into_iter().map(|(_, bid)| bid).collect();
        Some((row, bids))
    }

    /// Keeps an offer whose ping is committed.
    pub(super) fn keep(&self, offer: Offer) {
        self.cache.insert(offer.0.id.clone(), offer);
    }

    /// Takes the offer made for `ping_id`, if this node made it and still holds it. A post
    /// takes it once: a retry, a replay or another seller's try reads the store.
    pub(super) fn take(&self, ping_id: &str) -> Option<Offer> {
        self.cache.remove(ping_id).map(|(_, offer)| offer)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.len()
    }

    #[cfg(test)]
    fn keep_ping(&self, ping: &NewPing) {
        if let Some(offer) = RecentOffers::of(ping) {
            self.keep(offer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Money;
    use crate::store::BidRecord;
    use chrono::Utc;

    fn bid(buyer: &str, cents: i64, rank: Option<i32>) -> BidRecord {
        BidRecord {
            buyer_id: buyer.into(),
            outcome: if rank.is_some() { "bid" } else { "no_bid" },
            price: rank.map(|_| Money::from_cents(cents)),
            floor: Money::from_cents(0),
            bid_id: rank.map(|r| format!("b{r}")),
            reason: None,
            latency_ms: 20,
            rank,
        }
    }

    fn ping(id: &str, status: PingStatus, bids: Vec<BidRecord>) -> NewPing {
        NewPing {
            id: id.into(),
            seller_id: "s1".into(),
            vertical: "auto".into(),
            sub_id: None,
            lead_json: "{\"zip\":\"10001\"}".into(),
            status,
            price: Some(Money::from_cents(1_500)),
            payout: Some(Money::from_cents(1_200)),
            expires_at: Some(Utc::now()),
            created_at: Utc::now(),
            bids,
        }
    }

    #[test]
    fn an_offer_is_kept_with_its_ranked_bids_in_rank_order_and_nothing_else() {
        let offers = RecentOffers::default();
        offers.keep_ping(&ping(
            "p1",
            PingStatus::Offer,
            vec![
                bid("b-third", 900, Some(3)),
                bid("b-none", 0, None),
                bid("b-first", 1_500, Some(1)),
                bid("b-second", 1_100, Some(2)),
            ],
        ));
        let offer = offers.take("p1").expect("the offer is kept");
        let (row, bids) = &offer;
        assert_eq!(row.seller_id, "s1");
        assert_eq!(row.status, PingStatus::Offer);
        assert_eq!(row.payout, Some(Money::from_cents(1_200)));
        let order: Vec<(&str, i64)> = bids
            .iter()
            .map(|b| (b.buyer_id.as_str(), b.price.cents()))
            .collect();
        assert_eq!(
            order,
            [("b-first", 1_500), ("b-second", 1_100), ("b-third", 900)]
        );
        assert_eq!(bids[0].bid_id.as_deref(), Some("b1"));
        assert!(offers.take("p1").is_none(), "an offer is taken once");
    }

    #[test]
    fn a_ping_without_an_offer_is_not_kept() {
        let offers = RecentOffers::default();
        offers.keep_ping(&ping("p1", PingStatus::NoBid, vec![bid("b", 0, None)]));
        assert!(offers.take("p1").is_none());
    }

    #[test]
    fn the_weight_bound_holds_however_many_bids_the_offers_carry() {
        let offers = RecentOffers::default();
        let hundred: Vec<BidRecord> = (1..=100)
            .map(|r| bid(&format!("b{r}"), 1_000, Some(r)))
            .collect();
        for n in 0..2_000 {
            offers.keep_ping(&ping(&format!("p{n}"), PingStatus::Offer, hundred.clone()));
        }
        // 2,000 offers of weight 101 would be 202,000; the cache holds at most 32,768.
        assert!(offers.len() as u64 * 101 <= WEIGHT_MAX, "{}", offers.len());
        assert!(offers.len() > 0);
    }
}
