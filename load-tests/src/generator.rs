//! The load generator: ping+post flows, closed loop (N concurrent sellers) or open loop (a
//! fixed arrival rate), against the exchange or against the bare fan-out ceiling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use pingpost::buyer_client::{Endpoint, Transport};
use serde_json::{json, Value};

use crate::market::{BuyerSpec, LeadPair, Market, FLOOR, SELLER_KEY, SIGNING_SECRET, VERTICAL};
use crate::timer::PreciseTimer;

/// Who does the work of a flow.
pub enum Target {
    /// `POST /v1/pings`, then `POST /v1/posts` on the next node (several nodes act as one).
    /// With `pings_only`, offers are left standing (the live-offers memory scenario).
    Exchange {
        nodes: Vec<String>,
        pings_only: bool,
    },
    /// The same bid requests to the same buyers and the same post to the winner, done by a
    /// bare client: no exchange logic, no database.
    Ceiling {
        eligible: Vec<Vec<BuyerSpec>>,
        timeout_ms: u64,
        tmax_ms: u64,
        max_post_attempts: u32,
    },
}

impl Target {
    pub fn ceiling(market: &Market) -> Target {
        Target::Ceiling {
            eligible: (0..market.spec.groups)
                .map(|g| market.eligible(g).cloned().collect())
                .collect(),
            timeout_ms: market.spec.timeout_ms,
            tmax_ms: market.spec.tmax_ms,
            max_post_attempts: market.spec.max_post_attempts,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Closed { concurrency: usize },
    Open { rate_per_s: f64 },
}

/// Latencies in microseconds.
#[derive(Clone)]
pub struct Stats {
    pub flow: Histogram<u64>,
    pub ping: Histogram<u64>,
    pub post: Histogram<u64>,
    pub flows: u64,
    /// Offers left standing (pings-only runs).
    pub offers: u64,
    pub no_bid: u64,
    pub sold: u64,
    pub unsold: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Stats {
    fn new() -> Stats {
        let h = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
        Stats {
            flow: h(),
            ping: h(),
            post: h(),
            flows: 0,
            offers: 0,
            no_bid: 0,
            sold: 0,
            unsold: 0,
            errors: 0,
            elapsed: Duration::ZERO,
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.flow.add(&other.flow).expect("same bounds");
        self.ping.add(&other.ping).expect("same bounds");
        self.post.add(&other.post).expect("same bounds");
        self.flows += other.flows;
        self.offers += other.offers;
        self.no_bid += other.no_bid;
        self.sold += other.sold;
        self.unsold += other.unsold;
        self.errors += other.errors;
    }

    fn record(&mut self, flow: Flow, started: Instant) {
        let us = |d: Duration| (d.as_micros() as u64).max(1);
        self.flows += 1;
        match flow.result {
            FlowResult::Offer => self.offers += 1,
            FlowResult::NoBid => self.no_bid += 1,
            FlowResult::Sold => self.sold += 1,
            FlowResult::Unsold => self.unsold += 1,
            FlowResult::Error => {
                self.errors += 1;
                return;
            }
        }
        let _ = self.flow.record(us(started.elapsed()));
        let _ = self.ping.record(us(flow.ping));
        if let Some(post) = flow.post {
            let _ = self.post.record(us(post));
        }
    }

    pub fn flows_per_s(&self) -> f64 {
        (self.flows - self.errors) as f64 / self.elapsed.as_secs_f64()
    }
}

enum FlowResult {
    Offer,
    NoBid,
    Sold,
    Unsold,
    Error,
}

struct Flow {
    result: FlowResult,
    ping: Duration,
    post: Option<Duration>,
}

pub struct Generator {
    pub target: Target,
    /// The sellers' client, to the exchange.
    pub client: reqwest::Client,
    /// The ceiling's client, to the buyers: the exchange's own transport (hyper's pooled
    /// client, a pool per thread, the same idle bound), so the two compare on one wire.
    transport: Transport,
    market_leads: Arc<Market>,
    sequence: AtomicU64,
    errors_shown: AtomicU64,
}

impl Generator {
    pub fn new(target: Target, market: Arc<Market>) -> anyhow::Result<Generator> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            // The sellers' connections to the exchange: one per seller.
            .pool_max_idle_per_host(4096)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        // Idle for 2 s at most, so the ceiling's connections are gone before the exchange's
        // run starts (runs are 3 s apart).
        let transport = Transport::new(Duration::from_secs(2))?;
        Ok(Generator {
            target,
            client,
            transport,
            market_leads: market,
            sequence: AtomicU64::new(0),
            errors_shown: AtomicU64::new(0),
        })
    }

    /// Runs flows for `duration` and returns what they measured.
    pub async fn run(self: &Arc<Self>, mode: Mode, duration: Duration) -> Stats {
        let started = Instant::now();
        let stop = started + duration;
        let mut total = Stats::new();
        match mode {
            Mode::Closed { concurrency } => {
                let mut workers = Vec::with_capacity(concurrency);
                for _ in 0..concurrency {
                    let generator = self.clone();
                    workers.push(tokio::spawn(async move {
                        let mut stats = Stats::new();
                        while Instant::now() < stop {
                            let began = Instant::now();
                            let flow = generator.flow(began).await;
                            stats.record(flow, began);
                        }
                        stats
                    }));
                }
                for worker in workers {
                    if let Ok(stats) = worker.await {
                        total.merge(&stats);
                    }
                }
            }
            Mode::Open { rate_per_s } => {
                // Latency counts from when a flow was due, not when it was sent: a stalled
                // exchange cannot hide its queue (no coordinated omission).
                let shared = Arc::new(Mutex::new(Stats::new()));
                let every = Duration::from_secs_f64(1.0 / rate_per_s);
                let mut tasks = Vec::new();
                let mut due = started;
                while due < stop {
                    // On time, not on tokio's next millisecond tick: a late send would count
                    // as the target's latency.
                    PreciseTimer::global().sleep_until(due).await;
                    let generator = self.clone();
                    let shared = shared.clone();
                    let scheduled = due;
                    tasks.push(tokio::spawn(async move {
                        let flow = generator.flow(scheduled).await;
                        shared.lock().expect("stats").record(flow, scheduled);
                    }));
                    due += every;
                }
                for task in tasks {
                    let _ = task.await;
                }
                total.merge(&shared.lock().expect("stats"));
            }
        }
        total.elapsed = started.elapsed();
        total
    }

    async fn flow(&self, began: Instant) -> Flow {
        let lead = {
            let mut rng = rand::thread_rng();
            self.market_leads.lead(&mut rng)
        };
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let result = match &self.target {
            Target::Exchange { nodes, pings_only } => {
                self.exchange_flow(nodes, *pings_only, n, &lead, began)
                    .await
            }
            Target::Ceiling {
                eligible,
                timeout_ms,
                tmax_ms,
                max_post_attempts,
            } => {
                let asked = &eligible[lead.group];
                self.ceiling_flow(
                    asked,
                    n,
                    &lead,
                    began,
                    *timeout_ms,
                    *tmax_ms,
                    *max_post_attempts,
                )
                .await
            }
        };
        result.unwrap_or_else(|e| {
            if self.errors_shown.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("flow error: {e:#}");
            }
            Flow {
                result: FlowResult::Error,
                ping: Duration::ZERO,
                post: None,
            }
        })
    }

    async fn exchange_flow(
        &self,
        nodes: &[String],
        pings_only: bool,
        n: u64,
        lead: &LeadPair,
        began: Instant,
    ) -> anyhow::Result<Flow> {
        let node = n as usize % nodes.len();
        let answer: Value = self
            .client
            .post(format!("{}/v1/pings", nodes[node]))
            .bearer_auth(SELLER_KEY)
            .json(&json!({"vertical": VERTICAL, "lead": lead.ping}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let ping = began.elapsed();
        if answer["status"] != "offer" {
            return Ok(Flow {
                result: FlowResult::NoBid,
                ping,
                post: None,
            });
        }
        if pings_only {
            return Ok(Flow {
                result: FlowResult::Offer,
                ping,
                post: None,
            });
        }
        let posting = Instant::now();
        let post_node = (node + 1) % nodes.len();
        let sold: Value = self
            .client
            .post(format!("{}/v1/posts", nodes[post_node]))
            .bearer_auth(SELLER_KEY)
            .json(&json!({"ping_id": answer["ping_id"], "lead": lead.full}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Flow {
            result: if sold["status"] == "sold" {
                FlowResult::Sold
            } else {
                FlowResult::Unsold
            },
            ping,
            post: Some(posting.elapsed()),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn ceiling_flow(
        &self,
        asked: &[BuyerSpec],
        n: u64,
        lead: &LeadPair,
        began: Instant,
        timeout_ms: u64,
        tmax_ms: u64,
        max_post_attempts: u32,
    ) -> anyhow::Result<Flow> {
        // The exchange's deadline: tmax less the answer buffer (a tenth, 5–50 ms).
        let buffer_ms = (tmax_ms / 10).clamp(5, 50);
        let deadline = began + Duration::from_millis(tmax_ms - buffer_ms);
        let ping_id = format!("ping_ceiling_{n}");
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = Duration::from_millis(timeout_ms).min(left);
        let body = bytes::Bytes::from(serde_json::to_vec(&json!({
            "ping_id": ping_id, "vertical": VERTICAL, "floor": FLOOR,
            "tmax_ms": timeout.as_millis() as u64, "lead": lead.ping,
        }))?);
        let mut pending: FuturesUnordered<_> = asked
            .iter()
            .map(|buyer| {
                let request = self.send_signed(&buyer.ping_url, body.clone());
                async move {
                    let (status, bytes) =
                        tokio::time::timeout(timeout, request).await.ok()?.ok()?;
                    if status != 200 {
                        return None;
                    }
                    let answer: Value = serde_json::from_slice(&bytes).ok()?;
                    let cents = cents(answer["bid"].as_str()?)?;
                    Some((cents, answer["bid_id"].as_str().map(str::to_string), buyer))
                }
            })
            .collect();
        let mut bids = Vec::new();
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline.into(), pending.next()).await
        {
            bids.extend(answer);
        }
        drop(pending);
        // Highest first; a stable sort keeps the earlier answer ahead on a tie.
        bids.sort_by_key(|b| std::cmp::Reverse(b.0));
        let ping = began.elapsed();
        if bids.is_empty() {
            return Ok(Flow {
                result: FlowResult::NoBid,
                ping,
                post: None,
            });
        }
        let posting = Instant::now();
        let mut result = FlowResult::Unsold;
        for (price, bid_id, buyer) in bids.iter().take(max_post_attempts as usize) {
            let body = serde_json::to_vec(&json!({
                "ping_id": ping_id, "bid_id": bid_id,
                "price": format!("{}.{:02}", price / 100, price % 100),
                "vertical": VERTICAL, "lead": lead.full,
            }))?;
            let accepted = async {
                let request = self.send_signed(&buyer.post_url, body.into());
                let (_, bytes) = tokio::time::timeout(Duration::from_millis(timeout_ms), request)
                    .await
                    .ok()?
                    .ok()?;
                let answer: Value = serde_json::from_slice(&bytes).ok()?;
                answer["accepted"].as_bool()
            }
            .await;
            if accepted == Some(true) {
                result = FlowResult::Sold;
                break;
            }
        }
        Ok(Flow {
            result,
            ping,
            post: Some(posting.elapsed()),
        })
    }

    /// Sends a request signed as the exchange signs it: the ceiling pays for the protocol too.
    async fn send_signed(
        &self,
        endpoint: &Endpoint,
        body: bytes::Bytes,
    ) -> Result<(u16, Vec<u8>), String> {
        self.transport
            .post_signed(endpoint, SIGNING_SECRET, body)
            .await
    }
}

/// "12.34" as cents.
fn cents(text: &str) -> Option<i64> {
    let (units, fraction) = text.split_once('.')?;
    Some(units.parse::<i64>().ok()? * 100 + fraction.parse::<i64>().ok()?)
}
