//! `load`: runs the scenarios of `load-tests/RESULTS.md` against the real `pingpost` binary,
//! each next to its fan-out ceiling measured in the same run, and prints markdown.
//!
//! Everything stays on 127.0.0.1: the fleet, the exchange nodes, PostgreSQL and Redis.

// The exchange's allocator, so the ceiling runs on the same one.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use pingpost_load::exchange::{self, Backend};
use pingpost_load::fleet::{Behaviour, Fleet, Latency};
use pingpost_load::generator::{Generator, Mode, Target};
use pingpost_load::histograms;
use pingpost_load::market::{Market, MarketSpec};
use pingpost_load::report::{self, CpuTicks, CpuUse, Measured};

#[derive(Parser)]
struct Args {
    /// The exchange binary (a release build).
    #[arg(long, default_value = "target/release/pingpost")]
    pingpost: PathBuf,
    /// ten, hundred, tenk, tail, fallback, pg, hundred-pg, nodes3, memory.
    #[arg(long, value_delimiter = ',', default_value = "ten")]
    scenario: Vec<String>,
    /// Closed-loop sellers, one run each. 256 sellers at 100 buyers per auction need more
    /// connections than this machine gives one process (the ceiling's client fails).
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    concurrency: Vec<usize>,
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of unrecorded load before the first run (connections, caches, JIT of nothing).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Also run open loop at half the exchange's peak, for "ping p99 ≤ buyer latency + 5 ms".
    #[arg(long)]
    half_peak: bool,
    /// PostgreSQL to create run databases on (trust auth).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pg_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Live offers to build in the memory scenario.
    #[arg(long, default_value_t = 100_000)]
    offers: u64,
}

struct Scenario {
    title: &'static str,
    market: MarketSpec,
    ports: usize,
    behaviour: Behaviour,
    postgres: bool,
    nodes: usize,
}

fn scenario(name: &str) -> anyhow::Result<Scenario> {
    let spec = |buyers, groups| MarketSpec {
        buyers,
        groups,
        timeout_ms: 1000,
        tmax_ms: 1000,
        max_post_attempts: 3,
        caps: false,
    };
    let twenty = Behaviour {
        bid_latency: Latency::Fixed(Duration::from_millis(20)),
        post_latency: Latency::Fixed(Duration::from_millis(20)),
        no_bid: 0.2,
        reject: 0.1,
    };
    let base = |title, buyers, groups, ports| Scenario {
        title,
        market: spec(buyers, groups),
        ports,
        behaviour: twenty,
        postgres: false,
        nodes: 1,
    };
    Ok(match name {
        "ten" => base("10 buyers per auction at 20 ms (SQLite)", 10, 1, 10),
        "hundred" => base("100 buyers per auction at 20 ms (SQLite)", 100, 1, 100),
        "tenk" => base(
            "10,000 configured buyers, 50 eligible per ping, 20 ms (SQLite; 100 ports)",
            10_000,
            200,
            // 100 buyers a port: with more ports, the connections of the ceiling's client, the
            // exchange's and the fleet's ends of both pass the 20,000 open files this machine
            // allows one process (a client opens a connection per request in flight to a port).
            100,
        ),
        "tail" => Scenario {
            behaviour: Behaviour {
                bid_latency: Latency::LogNormal {
                    median_ms: 20.0,
                    p99_ms: 1000.0,
                },
                ..twenty
            },
            ..base(
                "10 buyers, lognormal bid latency (median 20 ms, p99 1 s), tmax 1 s (SQLite)",
                10,
                1,
                10,
            )
        },
        "fallback" => Scenario {
            behaviour: Behaviour {
                reject: 0.6,
                ..twenty
            },
            ..base(
                "10 buyers at 20 ms, 60 % of posts rejected, 3 post attempts (SQLite)",
                10,
                1,
                10,
            )
        },
        "pg" => Scenario {
            postgres: true,
            ..base("10 buyers per auction at 20 ms (PostgreSQL)", 10, 1, 10)
        },
        "hundred-pg" => Scenario {
            postgres: true,
            ..base("100 buyers per auction at 20 ms (PostgreSQL)", 100, 1, 100)
        },
        "nodes3" => Scenario {
            postgres: true,
            nodes: 3,
            ..base(
                "3 nodes sharing Redis and PostgreSQL, 10 buyers at 20 ms (post on another node)",
                10,
                1,
                10,
            )
        },
        "memory" => Scenario {
            market: MarketSpec {
                caps: true,
                ..spec(10, 1)
            },
            behaviour: Behaviour {
                no_bid: 0.0,
                ..twenty
            },
            ..base(
                "resident memory with live offers (10 capped buyers, every offer holds a reservation)",
                10,
                1,
                10,
            )
        },
        other => anyhow::bail!("unknown scenario `{other}`"),
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    // The fleet, the ceiling's client and the generator share this process: thousands of
    // sockets at 10,000 buyers. Root may raise the hard limit too; anyone the soft one.
    let _ = rlimit::setrlimit(rlimit::Resource::NOFILE, 1 << 20, 1 << 20);
    let files = rlimit::increase_nofile_limit(u64::MAX)?;
    eprintln!("open files limit: {files}");
    args.pingpost = std::fs::canonicalize(&args.pingpost)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.pingpost.display()))?;
    // Two worker threads: as many as the machine has cores; the fleet and the generator share them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for name in &args.scenario {
            run(&args, name, scenario(name)?).await?;
        }
        Ok(())
    })
}

async fn run(args: &Args, name: &str, scenario: Scenario) -> anyhow::Result<()> {
    let fleet = Fleet::start(scenario.ports, scenario.behaviour).await?;
    let market = Arc::new(Market::write(scenario.market.clone(), &fleet.addrs)?);
    let run_id = format!("{}_{}", name.replace('-', "_"), std::process::id());
    let backend = Backend {
        database_url: match scenario.postgres {
            true => Some(exchange::create_pg_database(
                &args.pg_url,
                &format!("load_{run_id}"),
            )?),
            false => None,
        },
        redis_url: (scenario.nodes > 1).then(|| args.redis_url.clone()),
        redis_key_prefix: format!("pingpost-load:{run_id}:"),
    };
    let nodes = exchange::start(&args.pingpost, &market, &backend, scenario.nodes).await?;
    let exchange = Arc::new(Generator::new(
        Target::Exchange {
            nodes: nodes.iter().map(|n| n.base_url.clone()).collect(),
            pings_only: name == "memory",
        },
        market.clone(),
    )?);
    let ceiling = Arc::new(Generator::new(Target::ceiling(&market), market.clone())?);
    println!("\n### {name}: {}\n", scenario.title);
    println!(
        "bid latency {}, post latency {}, no bid {:.0} %, post rejected {:.0} %; {} buyers on {} ports; {} node(s)\n",
        scenario.behaviour.bid_latency.describe(),
        scenario.behaviour.post_latency.describe(),
        scenario.behaviour.no_bid * 100.0,
        scenario.behaviour.reject * 100.0,
        scenario.market.buyers,
        scenario.ports,
        scenario.nodes,
    );
    if name == "memory" {
        return memory(args, &exchange, &nodes).await;
    }
    let warmup = Duration::from_secs(args.warmup);
    let warm = Mode::Closed { concurrency: 16 };
    ceiling.run(warm, warmup).await;
    exchange.run(warm, warmup).await;

    println!("{}", report::HEADER);
    let pids: Vec<u32> = nodes.iter().map(|n| n.pid()).collect();
    let duration = Duration::from_secs(args.duration);
    let base_urls: Vec<String> = nodes.iter().map(|n| n.base_url.clone()).collect();
    let scraper = reqwest::Client::new();
    let mut writes = Vec::new();
    let mut peak: f64 = 0.0;
    for &concurrency in &args.concurrency {
        let mode = Mode::Closed { concurrency };
        ramp(&ceiling, mode).await;
        let c = measured(&fleet, &ceiling, mode, duration, &[]).await;
        settle().await;
        ramp(&exchange, mode).await;
        let before = histograms::scrape(&scraper, &base_urls, HISTOGRAMS).await;
        let e = measured(&fleet, &exchange, mode, duration, &pids).await;
        let after = histograms::scrape(&scraper, &base_urls, HISTOGRAMS).await;
        writes.push((format!("{concurrency} sellers"), since(&after, &before)));
        settle().await;
        peak = peak.max(e.stats.flows_per_s());
        println!(
            "{}",
            report::rows(&format!("{concurrency} sellers"), &c, &e)
        );
    }
    if args.half_peak && peak > 0.0 {
        let rate_per_s = (peak / 2.0).max(1.0);
        let mode = Mode::Open { rate_per_s };
        ramp(&ceiling, mode).await;
        let c = measured(&fleet, &ceiling, mode, duration, &[]).await;
        settle().await;
        ramp(&exchange, mode).await;
        let before = histograms::scrape(&scraper, &base_urls, HISTOGRAMS).await;
        let e = measured(&fleet, &exchange, mode, duration, &pids).await;
        let after = histograms::scrape(&scraper, &base_urls, HISTOGRAMS).await;
        writes.push((format!("open {rate_per_s:.0}/s"), since(&after, &before)));
        println!(
            "{}",
            report::rows(&format!("open {rate_per_s:.0}/s"), &c, &e)
        );
        let bound = scenario.behaviour.bid_latency.quantile_ms(2.3263) + 5.0;
        println!(
            "\nAt half of peak ({rate_per_s:.0} flows/s): exchange ping p99 {:.1} ms against a bound of {bound:.1} ms (buyer p99 + 5 ms); ceiling ping p99 {:.1} ms.",
            report::p99_ms(&e.stats.ping),
            report::p99_ms(&c.stats.ping),
        );
    }
    println!("\nThe exchange's own histograms over its runs (all nodes): the auction, ping received to result (`pingpost_auction_latency_seconds`, bucket bounds 2× apart), every buyer's bid requests, sent to answered (`pingpost_bid_latency_seconds`, the same bounds), and the store writes, asking to committed (`pingpost_store_write_seconds`, √2 apart):");
    for (load, run) in &writes {
        println!(
            "- {load}: auction {}; {}; {}",
            run[1].describe(),
            run[2].merged("bid requests").describe(),
            run[0].describe()
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        if let Some((rss, hwm)) = node.memory_kib() {
            println!(
                "\nnode {i}: resident {:.0} MB, peak resident {:.0} MB",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0
            );
        }
    }
    Ok(())
}

/// What `histograms::scrape` reads after each exchange run, in this order.
const HISTOGRAMS: &[(&str, &str)] = &[
    histograms::STORE_WRITES,
    histograms::AUCTIONS,
    histograms::BIDS,
];

fn since(
    after: &[histograms::Buckets],
    before: &[histograms::Buckets],
) -> Vec<histograms::Buckets> {
    after.iter().zip(before).map(|(a, b)| a.since(b)).collect()
}

/// One second of a run's own load, unrecorded, just before it. The pause between runs is
/// longer than the clients keep idle connections (the bare client 2 s, the exchange 4 s), so
/// every run used to start by opening its connections again: at 100 buyers an auction that
/// was 1,600 connects in the first auctions, and most of the exchange's ping p99 at 16
/// sellers (load-tests/RESULTS.md, session 13). The ramp measures both sides warm.
async fn ramp(generator: &Arc<Generator>, mode: Mode) {
    generator.run(mode, Duration::from_secs(1)).await;
}

/// A pause between runs: idle connections of the last run close (the clients keep them 2 s)
/// and its stragglers finish, so neither run pays for the other.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// One run, with the bid requests per flow the fleet actually received and the machine's CPU.
async fn measured(
    fleet: &Fleet,
    generator: &Arc<Generator>,
    mode: Mode,
    duration: Duration,
    exchange_pids: &[u32],
) -> Measured {
    let (bids_before, _) = fleet.counters.snapshot();
    let refused_before = fleet.counters.accept_errors.load(Ordering::Relaxed);
    let cpu_before = CpuTicks::now();
    let exchange_before = report::process_ticks(exchange_pids);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(worst_steal(sampling.clone()));
    let stats = generator.run(mode, duration).await;
    let mut cpu = CpuUse::between(cpu_before, CpuTicks::now(), cores(), stats.flows);
    sampling.store(false, Ordering::Relaxed);
    let worst = sampler.await.unwrap_or_default();
    cpu.stolen_worst = cpu.stolen_worst.max(worst);
    // A tick is 10 ms (USER_HZ 100).
    let exchange_ms_per_flow = (!exchange_pids.is_empty()).then(|| {
        (report::process_ticks(exchange_pids) - exchange_before) as f64 * 10.0
            / stats.flows.max(1) as f64
    });
    let (bids_after, _) = fleet.counters.snapshot();
    let refused = fleet.counters.accept_errors.load(Ordering::Relaxed) - refused_before;
    if refused > 0 {
        println!(
            "> the fleet failed to accept {refused} connections during this run (out of descriptors): its numbers are not clean\n"
        );
    }
    let bids_per_flow = (bids_after - bids_before) as f64 / stats.flows.max(1) as f64;
    Measured {
        stats,
        bids_per_flow,
        cpu,
        exchange_ms_per_flow,
    }
}

/// The largest share of the machine the host took in any half second while `sampling` holds.
async fn worst_steal(sampling: Arc<AtomicBool>) -> f64 {
    let mut worst: f64 = 0.0;
    let mut last = CpuTicks::now();
    while sampling.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = CpuTicks::now();
        worst = worst.max(CpuUse::between(last, now, cores(), 1).stolen);
        last = now;
    }
    worst
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pings without posts until `offers` offers stand, then the exchange's resident memory.
async fn memory(
    args: &Args,
    exchange: &Arc<Generator>,
    nodes: &[exchange::Node],
) -> anyhow::Result<()> {
    let mut offers = 0;
    let mut elapsed = Duration::ZERO;
    while offers < args.offers {
        let stats = exchange
            .run(Mode::Closed { concurrency: 64 }, Duration::from_secs(5))
            .await;
        offers += stats.offers;
        elapsed += stats.elapsed;
        anyhow::ensure!(stats.offers > 0, "no offers: see the node log");
    }
    let (rss, hwm) = nodes[0].memory_kib().unwrap_or_default();
    println!(
        "{offers} live offers (each holding a cap reservation) built in {:.0} s ({:.0} pings/s): resident {:.0} MB, peak resident {:.0} MB.",
        elapsed.as_secs_f64(),
        offers as f64 / elapsed.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}
