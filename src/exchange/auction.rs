//! One auction: pick the eligible buyers, ask them all at once, rank what comes back in time.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The buyers asked, as configured when the auction started.
    pub buyers: std::collections::HashMap<String, Arc<Buyer>>,
}

struct Asked {
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

        let mut answered: Vec<Asked> = Vec::with_capacity(eligible.len());
        let mut pending = FuturesUnordered::new();
        for buyer in &eligible {
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
                    let body = bid_request(ping_id, &vertical.id, floor, timeout, &lead_json)?;
                    let buyer = buyer.clone();
                    let client = &self.client;
                    pending.push(async move {
                        let result = client.bid(&buyer, url, body, timeout).await;
                        Asked {
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
        let answered_ids: std::collections::HashSet<String> =
            answered.iter().map(|a| a.buyer.id.clone()).collect();
        let mut records = Vec::with_capacity(eligible.len());
        let mut candidates = Vec::new();
        for (arrival, asked) in answered.iter().enumerate() {
            let (record, candidate) = judge(asked, arrival as u32);
            records.push(record);
            candidates.extend(candidate);
        }
        for buyer in eligible.iter().filter(|b| !answered_ids.contains(&b.id)) {
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
        let buyers = eligible.iter().map(|b| (b.id.clone(), b.clone())).collect();
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
    timeout: Duration,
    lead: &RawValue,
) -> anyhow::Result<Vec<u8>> {
    let request = BidRequest {
        ping_id,
        vertical,
        floor,
        tmax_ms: timeout.as_millis() as u64,
        lead,
    };
    Ok(serde_json::to_vec(&request)?)
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
