//! Prometheus metrics, all prefixed `pingpost_`. Labels carry only ids from the
//! configuration and fixed outcome names, so their cardinality is bounded and no lead
//! data can reach them.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub pings: IntCounterVec,
    pub auction_seconds: HistogramVec,
    pub bid_requests: IntCounterVec,
    pub bid_seconds: HistogramVec,
    pub posts: IntCounterVec,
    pub sales: IntCounterVec,
    pub revenue_cents: IntCounterVec,
    pub returns: IntCounterVec,
    pub dependency_errors: IntCounterVec,
    pub store_writes: StoreWriteSeconds,
}

/// Latency buckets from 1 ms to about 4 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 13).unwrap_or_default()
}

/// Store write buckets from 100 µs to about 4.6 s, each √2 times the last: fine enough to
/// tell a 1 ms commit from a 1.4 ms one.
fn store_write_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_1, std::f64::consts::SQRT_2, 32).unwrap_or_default()
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter =
        IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric definition");
    registry
        .register(Box::new(counter.clone()))
        .expect("each metric is registered once");
    counter
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(latency_buckets());
    let histogram = HistogramVec::new(opts, labels).expect("a valid metric definition");
    registry
        .register(Box::new(histogram.clone()))
        .expect("each metric is registered once");
    histogram
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        Metrics {
            pings: counter(&r, "pingpost_auctions_total", "Auctions run, by vertical, seller and outcome (offer, no_bid).", &["vertical", "seller", "outcome"]),
            auction_seconds: histogram(&r, "pingpost_auction_latency_seconds", "Time from ping received to the auction's result.", &["vertical"]),
            bid_requests: counter(&r, "pingpost_bid_requests_total", "Buyers' answers to bid requests, by outcome (bid, no_bid, below_floor, timeout, error).", &["buyer", "outcome"]),
            bid_seconds: histogram(&r, "pingpost_bid_latency_seconds", "Time a buyer took to answer a bid request.", &["buyer"]),
            posts: counter(&r, "pingpost_posts_total", "Leads posted to buyers, by outcome (accepted, rejected, timeout, error, dedupe, cap).", &["buyer", "outcome"]),
            sales: counter(&r, "pingpost_sales_total", "Leads sold.", &["vertical", "buyer", "seller"]),
            revenue_cents: counter(&r, "pingpost_revenue_cents_total", "Gross price of leads sold, in cents (exact).", &["vertical", "buyer"]),
            returns: counter(&r, "pingpost_returns_total", "Leads returned by buyers.", &["buyer"]),
            dependency_errors: counter(&r, "pingpost_dependency_errors_total", "Errors reaching the database or Redis.", &["dependency"]),
            store_writes: StoreWriteSeconds::new(&r),
            registry: r,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "could not encode the metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The writes a ping or a post waits for, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreWrite {
    /// The ping and its bids, which the seller's answer waits for.
    PingLog,
    /// A post's claim on its ping, before the lead goes to a buyer.
    Claim,
    /// A claim given back (the post could not deliver and may be retried).
    Release,
    /// A sale with its ledger transaction.
    Sale,
    /// A post that sold to nobody.
    Unsold,
}

impl StoreWrite {
    const ALL: [StoreWrite; 5] = [
        StoreWrite::PingLog,
        StoreWrite::Claim,
        StoreWrite::Release,
        StoreWrite::Sale,
        StoreWrite::Unsold,
    ];

    fn label(self) -> &'static str {
        match self {
            StoreWrite::PingLog => "ping_log",
            StoreWrite::Claim => "claim",
            StoreWrite::Release => "release",
            StoreWrite::Sale => "sale",
            StoreWrite::Unsold => "unsold",
        }
    }
}

/// How long each kind of store write took, from asking to committed (queueing in a group
/// commit included): the database's share of a seller's wait. Handles are looked up once.
pub struct StoreWriteSeconds {
    by_kind: [Histogram; StoreWrite::ALL.len()],
}

impl StoreWriteSeconds {
    fn new(registry: &Registry) -> StoreWriteSeconds {
        let opts = HistogramOpts::new(
            "pingpost_store_write_seconds",
            "Time a store write took, from asking to committed, by kind (ping_log, claim, release, sale, unsold).",
        )
        .buckets(store_write_buckets());
        let vec = HistogramVec::new(opts, &["write"]).expect("a valid metric definition");
        registry
            .register(Box::new(vec.clone()))
            .expect("each metric is registered once");
        StoreWriteSeconds {
            by_kind: StoreWrite::ALL.map(|kind| vec.with_label_values(&[kind.label()])),
        }
    }

    pub fn observe(&self, kind: StoreWrite, took: std::time::Duration) {
        self.by_kind[kind as usize].observe(took.as_secs_f64());
    }
}

/// Bid request outcomes, as `BidRecord::outcome` names them.
const BID_OUTCOMES: [&str; 5] = ["bid", "no_bid", "below_floor", "timeout", "error"];

/// One buyer's bid metrics, looked up by its labels once, not twice per bid request: at
/// 100 buyers an auction the lookups (hashing the labels, a lock, a map) were a few per
/// cent of the exchange's work (load-tests/RESULTS.md, session 9).
#[derive(Debug, Clone)]
pub struct BuyerBidMetrics {
    buyer_id: String,
    requests: [IntCounter; BID_OUTCOMES.len()],
    seconds: Histogram,
}

impl BuyerBidMetrics {
    pub fn new(metrics: &Metrics, buyer_id: &str) -> BuyerBidMetrics {
        BuyerBidMetrics {
            buyer_id: buyer_id.to_string(),
            requests: BID_OUTCOMES
                .map(|outcome| metrics.bid_requests.with_label_values(&[buyer_id, outcome])),
            seconds: metrics.bid_seconds.with_label_values(&[buyer_id]),
        }
    }

    /// Counts one answer of the buyer with `outcome` and records its latency.
    pub fn record(&self, outcome: &str, latency_ms: i64) {
        match BID_OUTCOMES.iter().position(|known| *known == outcome) {
            Some(at) => self.requests[at].inc(),
            // An outcome added without a handle here is still counted, by its labels.
            None => METRICS
                .bid_requests
                .with_label_values(&[self.buyer_id.as_str(), outcome])
                .inc(),
        }
        self.seconds.observe(latency_ms as f64 / 1000.0);
    }
}

/// One registry for the process: every exchange in it reports here.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buyers_handles_count_under_its_labels_every_outcome_and_an_unknown_one() {
        // A buyer id of this test's own: the registry is the process's.
        let buyer = "metrics-handles-buyer";
        let handles = BuyerBidMetrics::new(&METRICS, buyer);
        for (n, outcome) in BID_OUTCOMES.iter().chain(&["unheard_of"]).enumerate() {
            for _ in 0..=n {
                handles.record(outcome, 20);
            }
        }
        for (n, outcome) in BID_OUTCOMES.iter().chain(&["unheard_of"]).enumerate() {
            let count = METRICS
                .bid_requests
                .with_label_values(&[buyer, outcome])
                .get();
            assert_eq!(count, n as u64 + 1, "{outcome}");
        }
        let latency = METRICS.bid_seconds.with_label_values(&[buyer]);
        assert_eq!(latency.get_sample_count(), 21);
        assert!((latency.get_sample_sum() - 0.42).abs() < 1e-9);
    }
}
