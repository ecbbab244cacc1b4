//! One auction: pick the eligible buyers, ask them all at once, rank what comes back in time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::value::RawValue;

use super::Exchange;
use crate::auction::{effective_floor, eligible_buyers, rank, Candidate, PingContext};
use crate::buyer_client::{BidAnswer, BidRequest, Outcome, Timed};
use crate::config::{Bidding, Buyer, Seller};
use crate::domain::{Lead, Money, Vertical};
use crate::store::BidRecord;

/// Most buyers asked in one auction: the fan-out has a bound like everything else.
pub const BUYERS_PER_AUCTION_MAX: usize = 1_000;

/// Time kept back from `tmax_ms` to record the auction and answer the seller.
fn answer_buffer(tmax: Duration) -> Duration {
    (tmax / 10).clamp(Duration::from_millis(10), Duration::from_millis(100))
}

pub struct AuctionOutcome {
    /// Valid bids at or above their floor, best first.
    pub ranked: Vec<Candidate>,
    /// Every eligible buyer's outcome; ranks are set once the winner holds its caps.
    pub records: Vec<BidRecord>,
    /// The buyers asked, as configured when the auction started: `buyers[i]` gave
    /// `records[i]`, and a candidate's `arrival` is its place in both (no search by id).
    pub buyers: Vec<Arc<Buyer>>,
}

struct Asked {
    /// The buyer's place among the eligible.
    eligible: usize,
    buyer: Arc<Buyer>,
    floor: Money,
    result: Timed<BidAnswer>,
}

impl Exchange {
    pub(super) async fn run_auction(
        &self,
        ping_id: &str,
        seller: &Seller,
        vertical: &Vertical,
        lead: &Lead,
        ping_floor: Option<Money>,
        received: Instant,
    ) -> anyhow::Result<AuctionOutcome> {
        let market = self.marketplace();
        let ctx = PingContext {
            vertical: &vertical.id,
            seller,
            lead: &lead.ping_fields,
            now: self.now(),
        };
        let eligible = {
            // One look at the paused set for the whole auction, not one lock per buyer.
            let paused = self.paused.read().unwrap_or_else(|e| e.into_inner());
            eligible_buyers(
                &market,
                |id| !paused.is_empty() && paused.contains(id),
                &ctx,
                BUYERS_PER_AUCTION_MAX,
            )
        };
        // A buyer at a cap (reservations included) gets no request.
        let eligible = self.with_room(eligible, ctx.now).await;

        let tmax = Duration::from_millis(self.config.auction.tmax_ms);
        let deadline = received + tmax - answer_buffer(tmax);
        let lead_json = serde_json::value::to_raw_value(&lead.ping_fields)?;
        let floor_of =
            |b: &Buyer| effective_floor(vertical.floor, seller.floor, ping_floor, b.floor);

        let mut bodies = BidBodies::default();
        let mut answered: Vec<Asked> = Vec::with_capacity(eligible.len());
        let mut pending = FuturesUnordered::new();
        for (place, buyer) in eligible.iter().enumerate() {
            let floor = floor_of(buyer);
            match &buyer.bidding {
                Bidding::Fixed { price } => {
                    let outcome = match buyer.max_bid {
                        Some(max) if *price > max => {
                            Outcome::Error("fixed_price is above max_bid".into())
                        }
                        _ => Outcome::Answer(BidAnswer::Bid {
                            price: *price,
                            bid_id: None,
                        }),
                    };
                    answered.push(Asked {
                        eligible: place,
                        buyer: buyer.clone(),
                        floor,
                        result: Timed {
                            outcome,
                            latency_ms: 0,
                        },
                    });
                }
                Bidding::Ping { url } => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let timeout = Duration::from_millis(buyer.timeout_ms).min(left);
                    let body = bodies.get(floor, timeout, |tmax_ms| {
                        bid_request(ping_id, &vertical.id, floor, tmax_ms, &lead_json)
                    })?;
                    let buyer = buyer.clone();
                    let client = &self.client;
                    pending.push(async move {
                        let result = client.bid(&buyer, url, body, timeout).await;
                        Asked {
                            eligible: place,
                            buyer,
                            floor,
                            result,
                        }
                    });
                }
            }
        }
        // Every request carries its own timeout ending by the deadline; this bound holds
        // even if one did not.
        while !pending.is_empty() {
            match tokio::time::timeout_at(deadline.into(), pending.next()).await {
                Ok(Some(asked)) => answered.push(asked),
                Ok(None) => break,
                Err(_) => break,
            }
        }
        let late = Instant::now().duration_since(received).as_millis() as i64;
        let mut has_answered = vec![false; eligible.len()];
        let mut records = Vec::with_capacity(eligible.len());
        let mut buyers = Vec::with_capacity(eligible.len());
        let mut candidates = Vec::new();
        for (arrival, asked) in answered.into_iter().enumerate() {
            let (record, candidate) = judge(&asked, arrival as u32);
            has_answered[asked.eligible] = true;
            records.push(record);
            buyers.push(asked.buyer);
            candidates.extend(candidate);
        }
        for (buyer, _) in eligible
            .iter()
            .zip(&has_answered)
            .filter(|(_, answered)| !**answered)
        {
            buyers.push(buyer.clone());
            records.push(BidRecord {
                buyer_id: buyer.id.clone(),
                outcome: "timeout",
                price: None,
                floor: floor_of(buyer),
                bid_id: None,
                reason: Some("no answer by the auction deadline".into()),
                latency_ms: late,
                rank: None,
            });
        }
        let ranked = rank(candidates);
        for record in records
            .iter()
            .filter(|r| r.outcome == "error" || r.outcome == "timeout")
        {
            tracing::info!(buyer = %record.buyer_id, outcome = record.outcome, reason = record.reason.as_deref().unwrap_or(""), "buyer gave no valid bid");
        }
        debug_assert_eq!(buyers.len(), records.len());
        Ok(AuctionOutcome {
            ranked,
            records,
            buyers,
        })
    }
}

fn bid_request(
    ping_id: &str,
    vertical: &str,
    floor: Money,
    tmax_ms: u64,
    lead: &RawValue,
) -> anyhow::Result<Vec<u8>> {
    let request = BidRequest {
        ping_id,
        vertical,
        floor,
        tmax_ms,
        lead,
    };
    Ok(serde_json::to_vec(&request)?)
}

/// An auction's bid request bodies: buyers differ only by the floor they face and their
/// time to answer, so most share one body, serialised once and signed per buyer.
#[derive(Default)]
struct BidBodies {
    made: Vec<(Money, u64, Bytes)>,
}

impl BidBodies {
    /// Distinct bodies kept: past this many, a body is serialised for its buyer alone (the
    /// search stays short whatever the floors).
    const KEPT_MAX: usize = 8;

    /// The body for `floor` and `timeout`, made by `make` from the milliseconds if no buyer
    /// of this auction had it yet.
    fn get(
        &mut self,
        floor: Money,
        timeout: Duration,
        make: impl FnOnce(u64) -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Bytes> {
        let tmax_ms = timeout.as_millis() as u64;
        if let Some((_, _, body)) = self
            .made
            .iter()
            .find(|(f, t, _)| *f == floor && *t == tmax_ms)
        {
            return Ok(body.clone());
        }
        let body = Bytes::from(make(tmax_ms)?);
        if self.made.len() < Self::KEPT_MAX {
            self.made.push((floor, tmax_ms, body.clone()));
        }
        Ok(body)
    }
}

/// What one buyer's answer counts as, and the candidate it makes if it is a valid bid.
fn judge(asked: &Asked, arrival: u32) -> (BidRecord, Option<Candidate>) {
    let mut record = BidRecord {
        buyer_id: asked.buyer.id.clone(),
        outcome: "no_bid",
        price: None,
        floor: asked.floor,
        bid_id: None,
        reason: None,
        latency_ms: asked.result.latency_ms as i64,
        rank: None,
    };
    let mut candidate = None;
    match &asked.result.outcome {
        Outcome::Answer(BidAnswer::NoBid) => {}
        Outcome::Answer(BidAnswer::Bid { price, bid_id }) => {
            record.price = Some(*price);
            record.bid_id = bid_id.clone();
            if *price < asked.floor {
                record.outcome = "below_floor";
            } else {
                record.outcome = "bid";
                candidate = Some(Candidate {
                    buyer_id: asked.buyer.id.clone(),
                    price: *price,
                    floor: asked.floor,
                    arrival,
                    bid_id: bid_id.clone(),
                });
            }
        }
        Outcome::Timeout => {
            record.outcome = "timeout";
            record.reason = Some("no answer within the buyer's time".into());
        }
        Outcome::Error(reason) => {
            record.outcome = "error";
            record.reason = Some(reason.clone());
        }
    }
    (record, candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bodies: &mut BidBodies, cents: i64, ms: u64, made: &mut u32) -> serde_json::Value {
        let lead = serde_json::value::to_raw_value(&serde_json::json!({"zip": "33101"})).unwrap();
        let bytes = bodies
            .get(
                Money::from_cents(cents),
                Duration::from_millis(ms),
                |tmax_ms| {
                    *made += 1;
                    bid_request("p1", "auto", Money::from_cents(cents), tmax_ms, &lead)
                },
            )
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn buyers_facing_the_same_floor_and_time_share_one_body_and_others_get_their_own() {
        let mut bodies = BidBodies::default();
        let mut made = 0;
        let first = body(&mut bodies, 500, 800, &mut made);
        assert_eq!(body(&mut bodies, 500, 800, &mut made), first);
        assert_eq!(made, 1);
        let higher = body(&mut bodies, 750, 800, &mut made);
        assert_eq!(
            (higher["floor"].as_str(), higher["tmax_ms"].as_u64()),
            (Some("7.50"), Some(800))
        );
        let sooner = body(&mut bodies, 500, 300, &mut made);
        assert_eq!(
            (sooner["floor"].as_str(), sooner["tmax_ms"].as_u64()),
            (Some("5.00"), Some(300))
        );
        assert_eq!(made, 3);
        // Past the bodies kept, each buyer's is still its own, made for it.
        for cents in 1_000..1_020 {
            let own = body(&mut bodies, cents, 800, &mut made);
            assert_eq!(
                own["floor"].as_str(),
                Some(Money::from_cents(cents).to_string().as_str())
            );
            assert_eq!(own["ping_id"], "p1");
            assert_eq!(own["lead"]["zip"], "33101");
        }
        assert_eq!(made, 23);
        assert_eq!(body(&mut bodies, 500, 800, &mut made), first);
        assert_eq!(made, 23);
    }
}
