//! Prometheus metrics, all prefixed `pingpost_`. Labels carry only ids from the
//! configuration and fixed outcome names, so their cardinality is bounded and no lead
//! data can reach them.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
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
}

/// Latency buckets from 1 ms to about 4 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 13).unwrap_or_default()
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

/// One registry for the process: every exchange in it reports here.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
