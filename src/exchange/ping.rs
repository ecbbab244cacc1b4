//! Pings: validate the redacted lead, run the auction, record it, make the offer.

use std::time::Instant;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;
use utoipa::ToSchema;

use super::auction::AuctionOutcome;
use super::caps::Hold;
use super::{offers, Exchange};
use crate::config::Seller;
use crate::domain::ids::new_ping_id;
use crate::domain::lead::LeadRejection;
use crate::domain::{Lead, LeadMode, Money, Vertical};
use crate::error::ApiError;
use crate::metrics::{BuyerBidMetrics, StoreWrite};
use crate::store::{NewPing, PingStatus};

/// A ping (or the auction half of a direct post) as the route parsed it.
pub struct PingInput {
    pub vertical: String,
    pub lead: Map<String, Value>,
    pub sub_id: Option<String>,
    pub floor: Option<Money>,
}

/// The seller's view of a ping: the body of `POST /v1/pings` and `GET /v1/pings/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"ping_id": "ping_0190f3a2b7c47d2e9a3b5c6d7e8f9a0b", "status": "offer",
    "payout": "11.20", "currency": "USD", "expires_at": "2026-11-22T10:00:00Z"}))]
pub struct PingView {
    pub ping_id: String,
    pub status: PingState,
    /// The seller's payout: offered (`offer`, `expired`) or earned (`sold`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub payout: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub currency: Option<String>,
    /// When an offer stops waiting for the post.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub expires_at: Option<String>,
    /// The sold lead's id (`sold`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub lead_id: Option<String>,
}

/// Where a ping stands, as its seller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PingState {
    Offer,
    NoBid,
    Sold,
    Unsold,
    /// An offer whose time to post has passed.
    Expired,
}

impl From<PingStatus> for PingState {
    fn from(status: PingStatus) -> PingState {
        match status {
            PingStatus::Offer => PingState::Offer,
            PingStatus::NoBid => PingState::NoBid,
            PingStatus::Sold => PingState::Sold,
            PingStatus::Unsold => PingState::Unsold,
        }
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A recorded auction with its offer, if there was one.
pub(super) struct Auctioned {
    pub ping_id: String,
    pub offer: Option<(Money, Money, DateTime<Utc>)>,
}

impl Exchange {
    pub fn vertical(&self, id: &str) -> Result<&Vertical, ApiError> {
        self.config
            .verticals
            .get(id)
            .map(|v| v.as_ref())
            .ok_or_else(|| ApiError::not_found("unknown_vertical", "no vertical has this id"))
    }

    pub fn validate_lead(
        &self,
        vertical: &Vertical,
        lead: &Map<String, Value>,
        mode: LeadMode,
    ) -> Result<Lead, ApiError> {
        vertical
            .validate(lead, mode)
            .map_err(|rejection| match rejection {
                LeadRejection::PiiInPing(fields) => ApiError::validation(
                    "pii_in_ping",
                    "a ping must not carry personal data",
                    fields,
                ),
                LeadRejection::Invalid(fields) => {
                    ApiError::validation("validation_failed", "the lead is not valid", fields)
                }
            })
    }

    pub async fn ping(
        &self,
        seller: &Seller,
        input: PingInput,
        received: Instant,
    ) -> Result<PingView, ApiError> {
        let vertical = self.vertical(&input.vertical)?;
        let lead = self.validate_lead(vertical, &input.lead, LeadMode::Ping)?;
        let auctioned = self
            .auction_and_record(seller, vertical, &lead, &input, received)
            .await?;
        Ok(match auctioned.offer {
            Some((_, payout, expires_at)) => PingView {
                ping_id: auctioned.ping_id,
                status: PingState::Offer,
                payout: Some(payout),
                currency: Some(self.config.currency.clone()),
                expires_at: Some(rfc3339(expires_at)),
                lead_id: None,
            },
            None => PingView {
                ping_id: auctioned.ping_id,
                status: PingState::NoBid,
                payout: None,
                currency: None,
                expires_at: None,
                lead_id: None,
            },
        })
    }

    pub(super) async fn auction_and_record(
        &self,
        seller: &Seller,
        vertical: &Vertical,
        lead: &Lead,
        input: &PingInput,
        received: Instant,
    ) -> Result<Auctioned, ApiError> {
        let ping_id = new_ping_id();
        let span = tracing::info_span!("ping", ping_id = %ping_id, seller = %seller.id, vertical = %vertical.id);
        self.record_auction(ping_id, seller, vertical, lead, input, received)
            .instrument(span)
            .await
    }

    async fn record_auction(
        &self,
        ping_id: String,
        seller: &Seller,
        vertical: &Vertical,
        lead: &Lead,
        input: &PingInput,
        received: Instant,
    ) -> Result<Auctioned, ApiError> {
        let AuctionOutcome {
            ranked,
            mut records,
            buyers,
        } = self
            .run_auction(&ping_id, seller, vertical, lead, input.floor, received)
            .await
            .map_err(ApiError::internal)?;
        let now = self.now();
        let expires_at = now + ChronoDuration::seconds(self.config.auction.offer_ttl_s as i64);
        // The reservation outlives the offer by the post lease, so a post begun just before
        // expiry still holds its room while it delivers.
        let hold_until =
            expires_at + ChronoDuration::from_std(self.post_lease()).unwrap_or_default();
        // The best bid whose buyer can hold its caps wins; one that cannot drops out.
        let mut offer = None;
        let mut place = 0;
        for candidate in &ranked {
            // A candidate's arrival is its place in `buyers` and `records` (AuctionOutcome).
            let at = candidate.arrival as usize;
            let Some(buyer) = buyers.get(at) else {
                continue;
            };
            let record = records.get_mut(at);
            if offer.is_none() {
                if let Hold::Full = self
                    .hold(&ping_id, buyer, candidate.price, hold_until)
                    .await
                {
                    if let Some(record) = record {
                        record.reason = Some("cap reached".into());
                    }
                    continue;
                }
                let payout = candidate.price.share_floor(seller.payout_share);
                offer = Some((candidate.price, payout, expires_at));
            }
            place += 1;
            if let Some(record) = record {
                record.rank = Some(place);
            }
        }
        let eligible = buyers.len();
        let ping = NewPing {
            id: ping_id.clone(),
            seller_id: seller.id.clone(),
            vertical: vertical.id.clone(),
            sub_id: input.sub_id.clone(),
            lead_json: serde_json::to_string(&lead.ping_fields)
                .map_err(|e| ApiError::internal(e.into()))?,
            status: if offer.is_some() {
                PingStatus::Offer
            } else {
                PingStatus::NoBid
            },
            price: offer.map(|o| o.0),
            payout: offer.map(|o| o.1),
            expires_at: offer.map(|o| o.2),
            created_at: now,
            bids: records,
        };
        let metrics = &crate::metrics::METRICS;
        // Buyers were asked whether or not the record below commits.
        for (record, buyer) in ping.bids.iter().zip(&buyers) {
            buyer
                .bid_metrics
                .get_or_init(|| BuyerBidMetrics::new(metrics, &buyer.id))
                .record(record.outcome, record.latency_ms);
        }
        let status = ping.status;
        let made = offers::RecentOffers::of(&ping);
        let asked = Instant::now();
        let logged = match &self.ping_writer {
            Some(writer) => writer.write(ping).await,
            None => self.store.log_ping(ping).await,
        };
        metrics
            .store_writes
            .observe(StoreWrite::PingLog, asked.elapsed());
        logged?;
        if let Some(made) = made {
            self.offers.keep(made);
        }
        metrics
            .pings
            .with_label_values(&[vertical.id.as_str(), seller.id.as_str(), status.as_str()])
            .inc();
        metrics
            .auction_seconds
            .with_label_values(&[vertical.id.as_str()])
            .observe(received.elapsed().as_secs_f64());
        tracing::info!(
            eligible,
            valid_bids = ranked.len(),
            outcome = status.as_str(),
            latency_ms = received.elapsed().as_millis() as u64,
            "auction finished"
        );
        Ok(Auctioned { ping_id, offer })
    }

    /// `GET /v1/pings/{id}`: only the seller that sent it sees it.
    pub async fn ping_view(&self, seller: &Seller, ping_id: &str) -> Result<PingView, ApiError> {
        let not_found = || {
            ApiError::not_found(
                "ping_not_found",
                "no ping with this id was sent by this seller",
            )
        };
        let ping = self
            .store
            .get_ping(ping_id)
            .await?
            .filter(|p| p.seller_id == seller.id)
            .ok_or_else(not_found)?;
        let mut view = PingView {
            ping_id: ping.id.clone(),
            status: ping.status.into(),
            payout: ping.payout,
            currency: ping.payout.map(|_| self.config.currency.clone()),
            expires_at: ping.expires_at.map(rfc3339),
            lead_id: ping.lead_id.clone(),
        };
        match ping.status {
            PingStatus::Offer if ping.expires_at.is_some_and(|t| t <= self.now()) => {
                view.status = PingState::Expired
            }
            PingStatus::Sold => {
                // The payout actually earned, which a fallback can make lower than the offer.
                if let Some(sale) = match &ping.lead_id {
                    Some(lead_id) => self.store.get_sale(lead_id).await?,
                    None => None,
                } {
                    let account = crate::ledger::seller_account(&sale.seller_id);
                    view.payout = sale
                        .entries
                        .iter()
                        .find(|e| e.account == account)
                        .map(|e| Money::from_cents(e.amount_cents));
                }
                view.expires_at = None;
            }
            PingStatus::NoBid | PingStatus::Unsold => {
                view.payout = None;
                view.currency = None;
                view.expires_at = None;
            }
            PingStatus::Offer => {}
        }
        Ok(view)
    }
}
