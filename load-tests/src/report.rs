//! Markdown rows: every exchange number next to the ceiling's, as a ratio.

use hdrhistogram::Histogram;

use crate::generator::Stats;

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `p50 / p90 / p99 / max` in ms.
pub fn quantiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "–".into();
    }
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1}",
        ms(h, 0.5),
        ms(h, 0.9),
        ms(h, 0.99),
        h.max() as f64 / 1000.0
    )
}

pub fn p99_ms(h: &Histogram<u64>) -> f64 {
    ms(h, 0.99)
}

pub const HEADER: &str = "| load | who | flows/s | ratio | ping p50/p90/p99/max ms | post p50/p90/p99/max ms | flow p99 ms | sold / unsold / no bid / errors | bid req. per flow | machine CPU: cores busy, ms per flow | stolen by the host: run, worst ½ s | exchange CPU ms per flow |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

/// CPU time the given processes (the exchange's nodes) have used, in clock ticks
/// (`/proc/<pid>/stat`: user and system time). Far steadier from run to run than flows/s on a
/// shared machine, so it is what tells whether a change made the exchange cheaper.
pub fn process_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The fields after the command name, which is in parentheses and may hold spaces:
            // state is the first, utime the 12th and stime the 13th.
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// The whole machine's CPU time since boot, in clock ticks (`/proc/stat`): busy, stolen by
/// the hypervisor, and in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    busy: u64,
    steal: u64,
    total: u64,
}

impl CpuTicks {
    pub fn now() -> CpuTicks {
        std::fs::read_to_string("/proc/stat")
            .map(|stat| CpuTicks::parse(&stat))
            .unwrap_or_default()
    }

    /// The first line of `/proc/stat`: `cpu user nice system idle iowait irq softirq steal …`.
    /// Steal is time a core of this machine was runnable but the host ran something else: it
    /// is not this machine's work, so it is counted apart from busy.
    fn parse(stat: &str) -> CpuTicks {
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let field = |at: usize| fields.get(at).copied().unwrap_or(0);
        let idle = field(3) + field(4);
        let steal = field(7);
        let total: u64 = fields.iter().take(8).sum();
        CpuTicks {
            busy: total.saturating_sub(idle + steal),
            steal,
            total,
        }
    }
}

/// What a run cost the machine: every process on it (the fleet, the generator, the exchange,
/// PostgreSQL, Redis), as cores busy on average and CPU milliseconds per flow; and the share of
/// the cores' time the host took away (`stolen`), which makes a run slower for a reason
/// neither side of it controls.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub cores_busy: f64,
    pub ms_per_flow: f64,
    pub stolen: f64,
    /// The most stolen in any half second of the run (a burst is what a p99 feels).
    pub stolen_worst: f64,
}

impl CpuUse {
    pub fn between(start: CpuTicks, end: CpuTicks, cores: usize, flows: u64) -> CpuUse {
        let total = end.total.saturating_sub(start.total) as f64;
        let busy = end.busy.saturating_sub(start.busy) as f64;
        let steal = end.steal.saturating_sub(start.steal) as f64;
        if total == 0.0 {
            return CpuUse::default();
        }
        // Ticks are summed over every core: `total` ticks are `total / cores` of wall time.
        let wall_ticks = total / cores as f64;
        // USER_HZ is 100 on Linux: a tick is 10 ms.
        CpuUse {
            cores_busy: busy / wall_ticks,
            ms_per_flow: busy * 10.0 / flows.max(1) as f64,
            stolen: steal / total,
            stolen_worst: steal / total,
        }
    }
}

/// Two rows: the ceiling, then the exchange with its ratio to the ceiling.
pub fn rows(load: &str, ceiling: &Measured, exchange: &Measured) -> String {
    let row = |who: &str, m: &Measured, ratio: String| {
        let s = &m.stats;
        let exchange_cpu = match m.exchange_ms_per_flow {
            Some(ms) => format!("{ms:.2}"),
            None => "–".into(),
        };
        format!(
            "| {load} | {who} | {:.0} | {ratio} | {} | {} | {:.1} | {} / {} / {} / {} | {:.1} | {:.2}, {:.2} | {:.1} %, {:.0} % | {exchange_cpu} |",
            s.flows_per_s(),
            quantiles(&s.ping),
            quantiles(&s.post),
            p99_ms(&s.flow),
            s.sold,
            s.unsold,
            s.no_bid,
            s.errors,
            m.bids_per_flow,
            m.cpu.cores_busy,
            m.cpu.ms_per_flow,
            m.cpu.stolen * 100.0,
            m.cpu.stolen_worst * 100.0,
        )
    };
    let ratio = exchange.stats.flows_per_s() / ceiling.stats.flows_per_s();
    format!(
        "{}\n{}",
        row("ceiling", ceiling, "1".into()),
        row("exchange", exchange, format!("**{ratio:.2}**"))
    )
}

/// One measured run: its numbers, the bid requests per flow the fleet received, and what
/// it cost the machine.
pub struct Measured {
    pub stats: Stats,
    pub bids_per_flow: f64,
    pub cpu: CpuUse,
    /// CPU milliseconds the exchange's processes spent per flow (exchange runs only).
    pub exchange_ms_per_flow: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_counted_apart_from_busy_and_idle() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let start = CpuTicks::parse("cpu  100 0 50 1000 10 0 5 20 0 0\ncpu0 1 2 3\n");
        assert_eq!(
            start,
            CpuTicks {
                busy: 155,
                steal: 20,
                total: 1185
            }
        );
        // 2 cores over 1 s (200 ticks): 100 busy, 60 idle, 40 stolen.
        let end = CpuTicks::parse("cpu  180 0 70 1050 20 0 5 60 0 0\n");
        let used = CpuUse::between(start, end, 2, 50);
        assert!((used.cores_busy - 1.0).abs() < 1e-9, "{used:?}");
        assert!((used.ms_per_flow - 20.0).abs() < 1e-9, "{used:?}");
        assert!((used.stolen - 0.2).abs() < 1e-9, "{used:?}");
    }

    #[test]
    fn an_unreadable_stat_line_costs_nothing() {
        let used = CpuUse::between(CpuTicks::parse(""), CpuTicks::parse("cpu"), 2, 10);
        assert_eq!(used.cores_busy, 0.0);
        assert_eq!(used.stolen, 0.0);
    }
}
