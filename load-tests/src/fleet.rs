//! The mock buyer fleet: many buyers, each on its own port, answering bid requests and posts
//! after a latency drawn from a distribution, with configurable no-bid and reject rates.
//!
//! Plain hyper (HTTP/1.1, keep-alive) on whatever runtime the caller runs it on: a buyer does
//! nothing but sleep and answer, so the fleet stays light next to the exchange it loads.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};
use tokio::net::TcpListener;

use crate::timer::PreciseTimer;

/// How long a buyer takes to answer.
#[derive(Debug, Clone, Copy)]
pub enum Latency {
    Fixed(Duration),
    /// Lognormal with this median and 99th percentile: most answers are quick, a few very slow.
    LogNormal {
        median_ms: f64,
        p99_ms: f64,
    },
}

impl Latency {
    /// `20` (fixed ms) or `20:1000` (lognormal median:p99 ms).
    pub fn parse(text: &str) -> anyhow::Result<Latency> {
        Ok(match text.split_once(':') {
            None => Latency::Fixed(Duration::from_millis(text.parse()?)),
            Some((median, p99)) => Latency::LogNormal {
                median_ms: median.parse()?,
                p99_ms: p99.parse()?,
            },
        })
    }

    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::LogNormal { median_ms, p99_ms } => {
                // z(0.99) = 2.3263: sigma puts the 99th percentile where it was asked for.
                let sigma = (p99_ms / median_ms).ln() / 2.3263;
                let dist = LogNormal::new(median_ms.ln(), sigma).expect("valid lognormal");
                Duration::from_micros((dist.sample(rng) * 1000.0) as u64)
            }
        }
    }

    /// The latency at a quantile, for reports ("buyer latency + 5 ms").
    pub fn quantile_ms(&self, z: f64) -> f64 {
        match *self {
            Latency::Fixed(d) => d.as_secs_f64() * 1000.0,
            Latency::LogNormal { median_ms, p99_ms } => {
                let sigma = (p99_ms / median_ms).ln() / 2.3263;
                median_ms * (sigma * z).exp()
            }
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            Latency::Fixed(d) => format!("fixed {} ms", d.as_millis()),
            Latency::LogNormal { median_ms, p99_ms } => {
                format!("lognormal median {median_ms} ms, p99 {p99_ms} ms")
            }
        }
    }
}

/// What every buyer of the fleet does.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    pub bid_latency: Latency,
    pub post_latency: Latency,
    /// Share of bid requests answered with 204 (0–1).
    pub no_bid: f64,
    /// Share of posts answered `{"accepted": false}` (0–1).
    pub reject: f64,
}

/// What the fleet received, to check that the exchange and the ceiling did the same work.
#[derive(Debug, Default)]
pub struct Counters {
    pub bids: AtomicU64,
    pub posts: AtomicU64,
    /// Connections the listeners failed to accept (out of descriptors, mostly).
    pub accept_errors: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.bids.load(Ordering::Relaxed),
            self.posts.load(Ordering::Relaxed),
        )
    }
}

/// How long a listener waits after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

pub struct Fleet {
    pub addrs: Vec<SocketAddr>,
    pub counters: Arc<Counters>,
}

impl Fleet {
    /// Binds `ports` listeners on 127.0.0.1 (any free port) and serves them on the current
    /// runtime. Every path ending in `/ping` is a bid endpoint, every other path a post one.
    pub async fn start(ports: usize, behaviour: Behaviour) -> anyhow::Result<Fleet> {
        let counters = Arc::new(Counters::default());
        let mut addrs = Vec::with_capacity(ports);
        for _ in 0..ports {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            let counters = counters.clone();
            tokio::spawn(async move {
                loop {
                    let stream = match listener.accept().await {
                        Ok((stream, _)) => stream,
                        // Out of descriptors: the failed accept leaves the connection queued
                        // and the listener ready, so retrying at once spun the runtime the
                        // fleet serves from (64,000 accept calls a second in `tenk`). Wait
                        // for descriptors to come back instead.
                        Err(_) => {
                            counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let counters = counters.clone();
                    tokio::spawn(async move {
                        let service =
                            service_fn(move |req| answer(req, behaviour, counters.clone()));
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
        Ok(Fleet { addrs, counters })
    }
}

async fn answer(
    req: Request<Incoming>,
    behaviour: Behaviour,
    counters: Arc<Counters>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_ping = req.uri().path().ends_with("/ping");
    // Read the whole body, as a real buyer must before it can answer.
    let _ = req.into_body().collect().await;
    let (delay, reply) = {
        let mut rng = rand::thread_rng();
        if is_ping {
            counters.bids.fetch_add(1, Ordering::Relaxed);
            let reply = if rng.gen::<f64>() < behaviour.no_bid {
                None
            } else {
                let cents: u32 = rng.gen_range(200..2000);
                Some(format!(
                    r#"{{"bid":"{}.{:02}","bid_id":"b{}"}}"#,
                    cents / 100,
                    cents % 100,
                    rng.gen::<u32>()
                ))
            };
            (behaviour.bid_latency.sample(&mut rng), reply)
        } else {
            counters.posts.fetch_add(1, Ordering::Relaxed);
            let reply = if rng.gen::<f64>() < behaviour.reject {
                r#"{"accepted":false,"reason":"duplicate"}"#.to_string()
            } else {
                format!(
                    r#"{{"accepted":true,"buyer_lead_id":"l{}"}}"#,
                    rng.gen::<u32>()
                )
            };
            (behaviour.post_latency.sample(&mut rng), Some(reply))
        }
    };
    if !delay.is_zero() {
        // Not tokio's sleep: it ends on a millisecond tick, so a 20 ms buyer took 20–22 ms.
        PreciseTimer::global().sleep(delay).await;
    }
    let response = match reply {
        None => Response::builder()
            .status(204)
            .body(Full::new(Bytes::new())),
        Some(body) => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body))),
    };
    Ok(response.expect("a valid response"))
}
