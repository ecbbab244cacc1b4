//! Floors and ranking: first price, highest valid bid wins, earlier response on ties.

use crate::domain::Money;

/// A bid that parsed as a valid price, with the floor its buyer faced and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub buyer_id: String,
    pub price: Money,
    pub floor: Money,
    /// Order of arrival in this auction; lower came first.
    pub arrival: u32,
    pub bid_id: Option<String>,
}

/// max(vertical floor, seller floor, the ping's floor, the buyer's own floor).
pub fn effective_floor(
    vertical: Money,
    seller: Option<Money>,
    ping: Option<Money>,
    buyer: Option<Money>,
) -> Money {
    [Some(vertical), seller, ping, buyer]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(Money::ZERO)
}

/// The bids at or above their floor, best first: price descending, then arrival ascending.
pub fn rank(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.retain(|c| c.price >= c.floor);
    candidates.sort_by(|a, b| b.price.cmp(&a.price).then(a.arrival.cmp(&b.arrival)));
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn candidate(i: usize, price: i64, floor: i64, arrival: u32) -> Candidate {
        Candidate {
            buyer_id: format!("b{i}"),
            price: Money::from_cents(price),
            floor: Money::from_cents(floor),
            arrival,
            bid_id: None,
        }
    }

    #[test]
    fn effective_floor_is_the_highest_of_all() {
        let m = Money::from_cents;
        assert_eq!(effective_floor(m(100), None, None, None), m(100));
        assert_eq!(
            effective_floor(m(100), Some(m(200)), Some(m(500)), Some(m(300))),
            m(500)
        );
        assert_eq!(
            effective_floor(m(100), Some(m(200)), None, Some(m(300))),
            m(300)
        );
    }

    #[test]
    fn ties_go_to_the_earlier_response() {
        let ranked = rank(vec![candidate(0, 1000, 0, 2), candidate(1, 1000, 0, 1)]);
        assert_eq!(ranked[0].buyer_id, "b1");
    }

    proptest! {
        #[test]
        fn the_winner_is_the_best_valid_bid(
            bids in proptest::collection::vec((0i64..5_000, 0i64..2_000), 0..40)
        ) {
            let candidates: Vec<_> = bids
                .iter()
                .enumerate()
                .map(|(i, &(price, floor))| candidate(i, price, floor, i as u32))
                .collect();
            let ranked = rank(candidates.clone());
            let valid: Vec<_> = candidates.iter().filter(|c| c.price >= c.floor).collect();
            prop_assert_eq!(ranked.len(), valid.len());
            // No bid below its floor is ranked, let alone wins.
            prop_assert!(ranked.iter().all(|c| c.price >= c.floor));
            if let Some(winner) = ranked.first() {
                let best = valid.iter().map(|c| c.price).max().unwrap();
                prop_assert_eq!(winner.price, best);
                let first_at_best = valid.iter().filter(|c| c.price == best).map(|c| c.arrival).min().unwrap();
                prop_assert_eq!(winner.arrival, first_at_best);
            }
            // Best first, all the way down.
            for pair in ranked.windows(2) {
                prop_assert!(pair[0].price > pair[1].price
                    || (pair[0].price == pair[1].price && pair[0].arrival < pair[1].arrival));
            }
        }
    }
}
