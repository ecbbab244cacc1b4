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

pub const HEADER: &str = "| load | who | flows/s | ratio | ping p50/p90/p99/max ms | post p50/p90/p99/max ms | flow p99 ms | sold / unsold / no bid / errors | bid req. per flow |\n|---|---|---|---|---|---|---|---|---|";

/// Two rows: the ceiling, then the exchange with its ratio to the ceiling.
pub fn rows(
    load: &str,
    ceiling: &Stats,
    ceiling_bids: f64,
    exchange: &Stats,
    exchange_bids: f64,
) -> String {
    let row = |who: &str, s: &Stats, ratio: String, bids: f64| {
        format!(
            "| {load} | {who} | {:.0} | {ratio} | {} | {} | {:.1} | {} / {} / {} / {} | {:.1} |",
            s.flows_per_s(),
            quantiles(&s.ping),
            quantiles(&s.post),
            p99_ms(&s.flow),
            s.sold,
            s.unsold,
            s.no_bid,
            s.errors,
            bids,
        )
    };
    let ratio = exchange.flows_per_s() / ceiling.flows_per_s();
    format!(
        "{}\n{}",
        row("ceiling", ceiling, "1".into(), ceiling_bids),
        row(
            "exchange",
            exchange,
            format!("**{ratio:.2}**"),
            exchange_bids
        )
    )
}
