//! Posts: deliver the full lead to the best bidder that takes it, and book the sale.

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;
use utoipa::ToSchema;

use std::time::Instant;

use super::caps::Hold;
use super::{Exchange, PingInput};
use crate::buyer_client::{Outcome, PostAnswer, PostRequest};
use crate::config::Seller;
use crate::domain::ids::new_lead_id;
use crate::domain::{FieldError, Lead, LeadMode, Money};
use crate::error::ApiError;
use crate::ledger::{SaleAmounts, Transaction};
use crate::metrics::StoreWrite;
use crate::store::{
    Claim, NewSale, PingRow, PingStatus, PostAttempt, PostState, RankedBid, StoreError, StoreResult,
};

pub struct PostInput {
    pub ping_id: String,
    pub lead: Map<String, Value>,
    /// Keyed hash of the canonical request body: a repeat with the same body replays.
    pub body_hash: String,
}

/// The answer to a post (`POST /v1/posts`) or a direct post (`POST /v1/leads`); a repeat of
/// the same post replays it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"ping_id": "ping_0190f3a2b7c47d2e9a3b5c6d7e8f9a0b", "status": "sold",
    "lead_id": "lead_0190f3a2c1d47e2f9a3b5c6d7e8f9a0c", "payout": "11.20"}))]
pub struct PostResult {
    pub ping_id: String,
    pub status: PostStatus,
    /// The sold lead's id (`sold`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub lead_id: Option<String>,
    /// The payout of the buyer that took the lead (`sold`): lower than the offer after a fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub payout: Option<Money>,
    /// Why it did not sell (`unsold`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<UnsoldReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostStatus {
    Sold,
    Unsold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsoldReason {
    /// A direct post whose auction had no valid bid.
    NoBid,
    /// Every buyer tried rejected the lead, failed or timed out.
    AllBuyersRejected,
}

impl PostResult {
    fn sold(ping_id: &str, lead_id: &str, payout: Money) -> PostResult {
        PostResult {
            ping_id: ping_id.to_string(),
            status: PostStatus::Sold,
            lead_id: Some(lead_id.to_string()),
            payout: Some(payout),
            reason: None,
        }
    }

    fn unsold(ping_id: &str, reason: UnsoldReason) -> PostResult {
        PostResult {
            ping_id: ping_id.to_string(),
            status: PostStatus::Unsold,
            lead_id: None,
            payout: None,
            reason: Some(reason),
        }
    }

    /// As JSON: what is answered, stored for replays, and replayed. Plain fields: this
    /// serialisation cannot fail.
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// How often a request waiting on another's identical post looks for its result.
const POLL_EVERY: Duration = Duration::from_millis(20);

impl Exchange {
    pub async fn post(&self, seller: &Seller, input: PostInput) -> Result<Value, ApiError> {
        let span = tracing::info_span!("post", ping_id = %input.ping_id, seller = %seller.id);
        self.post_inner(seller, input).instrument(span).await
    }

    async fn post_inner(&self, seller: &Seller, input: PostInput) -> Result<Value, ApiError> {
        let not_found = || {
            ApiError::not_found(
                "ping_not_found",
                "no ping with this id was sent by this seller",
            )
        };
        let (ping, bids) = self
            .offer(&input.ping_id)
            .await?
            .filter(|(p, _)| p.seller_id == seller.id)
            .ok_or_else(not_found)?;
        match ping.status {
            PingStatus::NoBid => {
                return Err(ApiError::conflict(
                    "no_offer",
                    "this ping had no bid, so there is nothing to post",
                ))
            }
            PingStatus::Sold | PingStatus::Unsold => {
                return self.replay(&ping.id, &input.body_hash).await
            }
            PingStatus::Offer => {}
        }
        if ping.expires_at.is_some_and(|t| t <= self.now()) {
            return Err(ApiError::new(
                actix_web::http::StatusCode::GONE,
                "offer_expired",
                "the offer for this ping has expired",
            ));
        }
        let vertical = self.vertical(&ping.vertical)?;
        let lead = self.validate_lead(vertical, &input.lead, LeadMode::Full)?;
        check_matches_ping(&ping, &lead)?;
        self.claim_and_deliver(seller, &ping, bids, &lead, &input.body_hash)
            .await
    }

    /// `POST /v1/leads`: the full lead in one call. It is validated whole before any buyer is
    /// contacted; bidders still see only its non-PII fields.
    pub async fn direct_post(
        &self,
        seller: &Seller,
        input: PingInput,
        body_hash: &str,
        received: Instant,
    ) -> Result<Value, ApiError> {
        let vertical = self.vertical(&input.vertical)?;
        let lead = self.validate_lead(vertical, &input.lead, LeadMode::Full)?;
        let auctioned = self
            .auction_and_record(seller, vertical, &lead, &input, received)
            .await?;
        if auctioned.offer.is_none() {
            return Ok(PostResult::unsold(&auctioned.ping_id, UnsoldReason::NoBid).to_json());
        }
        let (ping, bids) = self.offer(&auctioned.ping_id).await?.ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("a ping just recorded is missing"))
        })?;
        let span = tracing::info_span!("post", ping_id = %ping.id, seller = %seller.id);
        self.claim_and_deliver(seller, &ping, bids, &lead, body_hash)
            .instrument(span)
            .await
    }

    /// A ping and its ranked bids: from this node's recent offers, or else from the store.
    async fn offer(&self, ping_id: &str) -> StoreResult<Option<(PingRow, Vec<RankedBid>)>> {
        match self.offers.take(ping_id) {
            Some(offer) => Ok(Some(offer)),
            None => self.store.get_offer(ping_id).await,
        }
    }

    /// Delivery after the checks: the direct post (`POST /v1/leads`) enters here too.
    pub(super) async fn claim_and_deliver(
        &self,
        seller: &Seller,
        ping: &PingRow,
        bids: Vec<RankedBid>,
        lead: &Lead,
        body_hash: &str,
    ) -> Result<Value, ApiError> {
        let now = self.now();
        let lease_until = now + ChronoDuration::from_std(self.post_lease()).unwrap_or_default();
        let (store, ping_id, hash) = (self.store.clone(), ping.id.clone(), body_hash.to_string());
        match self
            .write(StoreWrite::Claim, async move {
                store.claim_post(&ping_id, &hash, now, lease_until).await
            })
            .await?
        {
            Claim::Claimed => {}
            Claim::Done { .. } | Claim::Busy { .. } => {
                return self.replay(&ping.id, body_hash).await
            }
        }
        match self.deliver(seller, ping, bids, lead).await {
            Ok(result) => Ok(result),
            Err(e) => {
                // Nothing was booked: give the ping back so the post can be retried.
                let (store, ping_id) = (self.store.clone(), ping.id.clone());
                let released = self
                    .write(StoreWrite::Release, async move {
                        store.release_claim(&ping_id).await
                    })
                    .await;
                if let Err(release) = released {
                    tracing::error!(error = %release, "could not release a post claim; it frees itself when its lease ends");
                }
                Err(e)
            }
        }
    }

    /// Answers a repeat: the first result for the same body, 409 for another, or waits for
    /// an identical post still in flight.
    async fn replay(&self, ping_id: &str, body_hash: &str) -> Result<Value, ApiError> {
        let started = std::time::Instant::now();
        loop {
            match self.store.post_state(ping_id).await? {
                PostState::Done {
                    body_hash: first,
                    result_json,
                } if first == body_hash => {
                    return serde_json::from_str(&result_json)
                        .map_err(|e| ApiError::internal(e.into()));
                }
                PostState::Done { .. } => {
                    return Err(ApiError::conflict(
                        "already_posted",
                        "this ping was already posted with a different body",
                    ))
                }
                PostState::Busy { body_hash: first } if first != body_hash => {
                    return Err(ApiError::conflict(
                        "post_in_progress",
                        "this ping is being posted with a different body",
                    ));
                }
                PostState::Busy { .. } if started.elapsed() < self.post_lease() => {
                    tokio::time::sleep(POLL_EVERY).await
                }
                // An identical post failed and gave the ping back, or is taking too long.
                PostState::Busy { .. } | PostState::Open => {
                    return Err(ApiError::conflict(
                        "post_in_progress",
                        "this ping is being posted; retry later",
                    ));
                }
            }
        }
    }

    /// Offers the lead to the ranked bidders in turn (`bids`: the ping's valid bids, best first).
    async fn deliver(
        &self,
        seller: &Seller,
        ping: &PingRow,
        bids: Vec<RankedBid>,
        lead: &Lead,
    ) -> Result<Value, ApiError> {
        let market = self.marketplace();
        let vertical = self.vertical(&ping.vertical)?;
        let dedupe_keys: Vec<String> = vertical
            .dedupe_values(lead)
            .iter()
            .map(|v| self.keyed_hash(v.as_bytes()))
            .collect();
        let full_lead = lead.full_json();
        let hold_until =
            self.now() + ChronoDuration::from_std(self.post_lease()).unwrap_or_default();
        let mut attempts: Vec<PostAttempt> = Vec::new();
        let mut posts_sent = 0;
        for bid in bids {
            if posts_sent >= self.config.auction.max_post_attempts {
                break;
            }
            let Some(buyer) = market
                .buyer(&bid.buyer_id)
                .filter(|b| b.active && !self.is_paused(&b.id))
            else {
                continue;
            };
            let at = self.now();
            let skipped = |outcome, reason: Option<&str>| PostAttempt {
                buyer_id: buyer.id.clone(),
                outcome,
                price: bid.price,
                reason: reason.map(str::to_string),
                latency_ms: 0,
                at,
            };
            if buyer.dedupe_days > 0 && !dedupe_keys.is_empty() {
                let since = at - ChronoDuration::days(buyer.dedupe_days as i64);
                if self
                    .store
                    .dedupe_hit(&buyer.id, &dedupe_keys, since)
                    .await?
                {
                    attempts.push(skipped("dedupe", None));
                    continue;
                }
            }
            // The winner holds its reservation from the auction; a fallback reserves in turn.
            let hold = self.hold(&ping.id, buyer, bid.price, hold_until).await;
            if let Hold::Full = hold {
                attempts.push(skipped("cap", Some("cap reached")));
                continue;
            }
            posts_sent += 1;
            let request = PostRequest {
                ping_id: &ping.id,
                bid_id: bid.bid_id.as_deref(),
                price: bid.price,
                vertical: &ping.vertical,
                lead: &full_lead,
            };
            let body = serde_json::to_vec(&request).map_err(|e| ApiError::internal(e.into()))?;
            let timed = self
                .client
                .post(buyer, body, Duration::from_millis(buyer.timeout_ms))
                .await;
            let (outcome, reason, buyer_lead_id) = match timed.outcome {
                Outcome::Answer(PostAnswer::Accepted { buyer_lead_id }) => {
                    ("accepted", None, buyer_lead_id)
                }
                Outcome::Answer(PostAnswer::Rejected { reason }) => {
                    ("rejected", Some(reason), None)
                }
                Outcome::Timeout => (
                    "timeout",
                    Some("no answer within the buyer's time".to_string()),
                    None,
                ),
                Outcome::Error(reason) => ("error", Some(reason), None),
            };
            tracing::info!(buyer = %buyer.id, outcome, reason = reason.as_deref().unwrap_or(""), latency_ms = timed.latency_ms, "post delivered");
            attempts.push(PostAttempt {
                buyer_id: buyer.id.clone(),
                outcome,
                price: bid.price,
                reason,
                latency_ms: timed.latency_ms as i64,
                at,
            });
            if outcome != "accepted" {
                self.release(&hold).await;
                continue;
            }
            let sold = Sold {
                buyer_id: &buyer.id,
                price: bid.price,
                buyer_lead_id,
                dedupe_keys: &dedupe_keys,
                hold: &hold,
            };
            match self.book_sale(seller, ping, sold, &attempts).await {
                Ok(result) => {
                    self.commit(&hold).await;
                    count_posts(&attempts);
                    return Ok(result);
                }
                Err(StoreError::CapExceeded) => {
                    // The counters said yes, the books say no (lost counters): the sale is
                    // lost rather than the cap passed. The buyer is not billed.
                    tracing::warn!(buyer = %buyer.id, "cap reached at settlement; the buyer is not billed");
                    self.release(&hold).await;
                    if let Some(last) = attempts.last_mut() {
                        last.outcome = "cap";
                        last.reason = Some("cap reached at settlement".into());
                    }
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(ApiError::conflict(
                        "already_posted",
                        "this ping was sold by another request",
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let result = PostResult::unsold(&ping.id, UnsoldReason::AllBuyersRejected).to_json();
        let (store, ping_id, result_json, recorded) = (
            self.store.clone(),
            ping.id.clone(),
            result.to_string(),
            attempts.clone(),
        );
        self.write(StoreWrite::Unsold, async move {
            store.record_unsold(&ping_id, &result_json, &recorded).await
        })
        .await?;
        count_posts(&attempts);
        tracing::info!(attempts = attempts.len(), "lead unsold");
        Ok(result)
    }

    async fn book_sale(
        &self,
        seller: &Seller,
        ping: &PingRow,
        sold: Sold<'_>,
        attempts: &[PostAttempt],
    ) -> Result<Value, StoreError> {
        let lead_id = new_lead_id();
        let amounts = SaleAmounts::new(sold.price, seller.payout_share);
        let transaction =
            Transaction::sale(&lead_id, sold.buyer_id, &seller.id, amounts, self.now());
        let result = PostResult::sold(&ping.id, &lead_id, amounts.payout).to_json();
        let sale = NewSale {
            lead_id: lead_id.clone(),
            ping_id: ping.id.clone(),
            buyer_id: sold.buyer_id.to_string(),
            seller_id: seller.id.clone(),
            vertical: ping.vertical.clone(),
            price: sold.price,
            payout: amounts.payout,
            buyer_lead_id: sold.buyer_lead_id,
            transaction,
            dedupe_keys: sold.dedupe_keys.to_vec(),
            result_json: result.to_string(),
            cap_windows: match sold.hold {
                Hold::Held(reservation) => reservation.windows.clone(),
                _ => Vec::new(),
            },
        };
        let (store, attempts) = (self.store.clone(), attempts.to_vec());
        self.write(StoreWrite::Sale, async move {
            store.record_sale(&sale, &attempts).await
        })
        .await?;
        let metrics = &crate::metrics::METRICS;
        metrics
            .sales
            .with_label_values(&[ping.vertical.as_str(), sold.buyer_id, seller.id.as_str()])
            .inc();
        metrics
            .revenue_cents
            .with_label_values(&[ping.vertical.as_str(), sold.buyer_id])
            .inc_by(sold.price.cents().max(0) as u64);
        tracing::info!(buyer = %sold.buyer_id, lead_id = %lead_id, price = %sold.price, "lead sold");
        Ok(result)
    }
}

fn count_posts(attempts: &[PostAttempt]) {
    for attempt in attempts {
        crate::metrics::METRICS
            .posts
            .with_label_values(&[attempt.buyer_id.as_str(), attempt.outcome])
            .inc();
    }
}

/// A buyer's acceptance, to be booked.
struct Sold<'a> {
    buyer_id: &'a str,
    price: Money,
    buyer_lead_id: Option<String>,
    dedupe_keys: &'a [String],
    hold: &'a Hold,
}

/// Every non-PII field of the post must equal the pinged value, and none may be added or dropped.
fn check_matches_ping(ping: &PingRow, lead: &Lead) -> Result<(), ApiError> {
    let pinged: Map<String, Value> =
        serde_json::from_str(&ping.lead_json).map_err(|e| ApiError::internal(e.into()))?;
    let mut names: Vec<&String> = pinged.keys().chain(lead.ping_fields.keys()).collect();
    names.sort();
    names.dedup();
    let mismatched: Vec<FieldError> = names
        .into_iter()
        .filter(|name| pinged.get(*name) != lead.ping_fields.get(*name))
        .map(|name| FieldError::new(name, "lead_mismatch", "differs from the value in the ping"))
        .collect();
    if mismatched.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(
            "lead_mismatch",
            "the lead does not match the ping",
            mismatched,
        ))
    }
}
