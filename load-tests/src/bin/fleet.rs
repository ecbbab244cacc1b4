//! `fleet`: the mock buyer fleet on its own, for manual runs and profiling an exchange by hand.
//! Prints one listening address per line, then serves until interrupted.

use std::time::Duration;

use clap::Parser;

use pingpost_load::fleet::{Behaviour, Fleet, Latency};

#[derive(Parser)]
struct Args {
    /// Buyers, each on its own port.
    #[arg(long, default_value_t = 10)]
    ports: usize,
    /// Bid latency: `20` (fixed ms) or `20:1000` (lognormal median:p99 ms).
    #[arg(long, default_value = "20")]
    bid_latency: String,
    #[arg(long, default_value = "20")]
    post_latency: String,
    #[arg(long, default_value_t = 0.2)]
    no_bid: f64,
    #[arg(long, default_value_t = 0.1)]
    reject: f64,
    /// Worker threads; buyers mostly wait on timers.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let behaviour = Behaviour {
        bid_latency: Latency::parse(&args.bid_latency)?,
        post_latency: Latency::parse(&args.post_latency)?,
        no_bid: args.no_bid,
        reject: args.reject,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?
        .block_on(async {
            let fleet = Fleet::start(args.ports, behaviour).await?;
            for addr in &fleet.addrs {
                println!("{addr}");
            }
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let (bids, posts) = fleet.counters.snapshot();
                eprintln!("received {bids} bid requests, {posts} posts");
            }
        })
}
