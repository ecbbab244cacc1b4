//! Eligibility alone: which of 10,000 configured buyers may bid on one ping (target ≤ 50 µs).
//!
//! The marketplace is the `tenk` scenario's: 200 groups of 50 buyers split by filters on
//! state, homeowner and coverage, so every ping has exactly 50 eligible buyers.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::RwLock;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;

use pingpost::auction::{eligible_buyers, PingContext};
use pingpost::config::Config;
use pingpost_load::market::{Market, MarketSpec};

fn bench(c: &mut Criterion) {
    let addrs: Vec<SocketAddr> = vec!["127.0.0.1:9".parse().unwrap()];
    let spec = MarketSpec {
        buyers: 10_000,
        groups: 200,
        timeout_ms: 1000,
        tmax_ms: 1000,
        max_post_attempts: 3,
        caps: false,
    };
    let market = Market::write(spec, &addrs).expect("a marketplace");
    let config = Config::load(&market.config).expect("the generated config loads");
    let seller = config.sellers.values().next().expect("a seller").clone();
    let mut rng = rand::thread_rng();
    let leads: Vec<BTreeMap<String, Value>> = (0..64)
        .map(|_| {
            let lead = market.lead(&mut rng);
            lead.ping.as_object().unwrap().clone().into_iter().collect()
        })
        .collect();
    // The exchange keeps paused buyers in a lock; an auction reads it once, like this.
    let paused: RwLock<HashSet<String>> = RwLock::default();
    let now = chrono::Utc::now();
    let mut i = 0;
    c.bench_function("eligibility over 10,000 buyers (50 eligible)", |b| {
        b.iter(|| {
            i = (i + 1) % leads.len();
            let ctx = PingContext {
                vertical: "auto",
                seller: &seller,
                lead: &leads[i],
                now,
            };
            let paused = paused.read().unwrap();
            let eligible = eligible_buyers(
                &config.marketplace,
                |id| !paused.is_empty() && paused.contains(id),
                &ctx,
                1000,
            );
            assert_eq!(eligible.len(), 50);
            eligible
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
