//! The exchange's own account of where a run's time went: histograms of each node's
//! `/metrics` (`pingpost_store_write_seconds` by write, `pingpost_auction_latency_seconds` by
//! vertical), scraped before and after a run; the difference is that run's, by label.

use std::collections::BTreeMap;

/// Cumulative bucket counts by label value, each bucket as (upper bound in seconds, count).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(BTreeMap<String, Vec<(f64, u64)>>);

/// The histograms read, each with the label its series are told apart by.
pub const STORE_WRITES: (&str, &str) = ("pingpost_store_write_seconds", "write");
pub const AUCTIONS: (&str, &str) = ("pingpost_auction_latency_seconds", "vertical");
pub const BIDS: (&str, &str) = ("pingpost_bid_latency_seconds", "buyer");

impl Buckets {
    /// A histogram's buckets from a Prometheus text exposition, by the value of `label`;
    /// every other line is ignored.
    pub fn parse(text: &str, (histogram, label_name): (&str, &str)) -> Buckets {
        let bucket = format!("{histogram}_bucket{{");
        let mut kinds: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(bucket.as_str()) else {
                continue;
            };
            let Some((labels, count)) = rest.split_once("} ") else {
                continue;
            };
            let (mut kind, mut le) = (None, None);
            for label in labels.split(',') {
                match label.split_once('=') {
                    Some((name, value)) if name == label_name => {
                        kind = Some(value.trim_matches('"').to_string())
                    }
                    Some(("le", value)) => le = Some(value.trim_matches('"')),
                    _ => {}
                }
            }
            let (Some(kind), Some(le), Ok(count)) = (kind, le, count.trim().parse::<u64>()) else {
                continue;
            };
            let bound = match le {
                "+Inf" => f64::INFINITY,
                finite => match finite.parse() {
                    Ok(bound) => bound,
                    Err(_) => continue,
                },
            };
            kinds.entry(kind).or_default().push((bound, count));
        }
        for buckets in kinds.values_mut() {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Buckets(kinds)
    }

    /// Adds another node's buckets to these (the same bounds on every node).
    pub fn add(&mut self, other: &Buckets) {
        for (kind, theirs) in &other.0 {
            let ours = self
                .0
                .entry(kind.clone())
                .or_insert_with(|| theirs.iter().map(|(bound, _)| (*bound, 0)).collect());
            for ((_, count), (_, more)) in ours.iter_mut().zip(theirs) {
                *count += more;
            }
        }
    }

    /// Every label's buckets added up under one name (all buyers' bid requests, say).
    pub fn merged(&self, name: &str) -> Buckets {
        let mut all: Option<Vec<(f64, u64)>> = None;
        for buckets in self.0.values() {
            match &mut all {
                None => all = Some(buckets.clone()),
                Some(sum) => {
                    for ((_, count), (_, more)) in sum.iter_mut().zip(buckets) {
                        *count += more;
                    }
                }
            }
        }
        Buckets(all.map(|sum| (name.to_string(), sum)).into_iter().collect())
    }

    /// What was counted after `before` was taken.
    pub fn since(&self, before: &Buckets) -> Buckets {
        let mut kinds = self.0.clone();
        for (kind, buckets) in &mut kinds {
            if let Some(earlier) = before.0.get(kind) {
                for ((_, count), (_, was)) in buckets.iter_mut().zip(earlier) {
                    *count = count.saturating_sub(*was);
                }
            }
        }
        Buckets(kinds)
    }

    /// The upper bound of the bucket that holds quantile `q` of `kind`'s writes, in ms; `None`
    /// when there were none.
    pub fn quantile_ms(&self, kind: &str, q: f64) -> Option<f64> {
        let buckets = self.0.get(kind)?;
        let total = buckets.last()?.1;
        if total == 0 {
            return None;
        }
        // Less a hair, so that 0.99 × 100 is 99 whichever way the product rounds.
        let wanted = (q * total as f64 - 1e-9).ceil() as u64;
        let (bound, _) = buckets.iter().find(|(_, count)| *count >= wanted.max(1))?;
        Some(bound * 1000.0)
    }

    /// `claim 2310: p50 ≤ 1.60 ms, p90 ≤ …, p99 ≤ …; ping_log …`, for the labels that counted any.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (kind, buckets) in &self.0 {
            let total = buckets.last().map_or(0, |(_, count)| *count);
            if total == 0 {
                continue;
            }
            let at = |q| {
                self.quantile_ms(kind, q)
                    .map_or("–".to_string(), |ms| match ms.is_finite() {
                        true => format!("{ms:.2} ms"),
                        false => "past the last bucket".to_string(),
                    })
            };
            parts.push(format!(
                "{kind} {total}: p50 ≤ {}, p90 ≤ {}, p99 ≤ {}",
                at(0.5),
                at(0.9),
                at(0.99)
            ));
        }
        parts.join("; ")
    }
}

/// Each node's histograms, added up, in the order asked; empty where a node could not be
/// read.
pub async fn scrape(
    client: &reqwest::Client,
    base_urls: &[String],
    histograms: &[(&str, &str)],
) -> Vec<Buckets> {
    let mut all = vec![Buckets::default(); histograms.len()];
    for base in base_urls {
        let text = async {
            client
                .get(format!("{base}/metrics"))
                .send()
                .await?
                .text()
                .await
        };
        match text.await {
            Ok(text) => {
                for (sum, histogram) in all.iter_mut().zip(histograms) {
                    sum.add(&Buckets::parse(&text, *histogram));
                }
            }
            Err(e) => eprintln!("could not read {base}/metrics: {e}"),
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# HELP pingpost_store_write_seconds …\n\
        pingpost_store_write_seconds_bucket{write=\"claim\",le=\"0.001\"} 1\n\
        pingpost_store_write_seconds_bucket{write=\"claim\",le=\"0.002\"} 2\n\
        pingpost_store_write_seconds_bucket{write=\"claim\",le=\"+Inf\"} 2\n\
        pingpost_store_write_seconds_count{write=\"claim\"} 2\n\
        pingpost_auctions_total{vertical=\"auto\"} 9\n";
    const AFTER: &str = "pingpost_store_write_seconds_bucket{write=\"claim\",le=\"0.001\"} 3\n\
        pingpost_store_write_seconds_bucket{write=\"claim\",le=\"0.002\"} 101\n\
        pingpost_store_write_seconds_bucket{write=\"claim\",le=\"+Inf\"} 102\n";

    #[test]
    fn quantiles_come_from_the_difference_between_two_scrapes() {
        let run = Buckets::parse(AFTER, STORE_WRITES).since(&Buckets::parse(BEFORE, STORE_WRITES));
        // 100 writes in the run: 2 under 1 ms, 97 more under 2 ms, 1 past the last bound.
        assert_eq!(run.quantile_ms("claim", 0.02), Some(1.0));
        assert_eq!(run.quantile_ms("claim", 0.5), Some(2.0));
        assert_eq!(run.quantile_ms("claim", 0.99), Some(2.0));
        assert_eq!(run.quantile_ms("claim", 1.0), Some(f64::INFINITY));
        assert_eq!(run.quantile_ms("sale", 0.5), None);
        assert!(run.describe().starts_with("claim 100: p50 ≤ 2.00 ms"));
    }

    #[test]
    fn each_histogram_is_read_by_its_own_name_and_label() {
        let text = "pingpost_auction_latency_seconds_bucket{vertical=\"auto\",le=\"0.032\"} 7\n\
            pingpost_auction_latency_seconds_bucket{vertical=\"auto\",le=\"+Inf\"} 8\n\
            pingpost_store_write_seconds_bucket{write=\"sale\",le=\"0.001\"} 5\n\
            pingpost_store_write_seconds_bucket{write=\"sale\",le=\"+Inf\"} 5\n";
        let auctions = Buckets::parse(text, AUCTIONS);
        assert_eq!(auctions.quantile_ms("auto", 0.5), Some(32.0));
        assert_eq!(auctions.quantile_ms("sale", 0.5), None);
        assert_eq!(
            Buckets::parse(text, STORE_WRITES).quantile_ms("sale", 0.99),
            Some(1.0)
        );
    }

    #[test]
    fn nodes_add_up_bucket_by_bucket() {
        let mut all = Buckets::parse(BEFORE, STORE_WRITES);
        all.add(&Buckets::parse(AFTER, STORE_WRITES));
        assert_eq!(all.quantile_ms("claim", 0.03), Some(1.0));
        assert_eq!(all.quantile_ms("claim", 0.05), Some(2.0));
        assert_eq!(
            all,
            Buckets::parse(
                "pingpost_store_write_seconds_bucket{write=\"claim\",le=\"0.001\"} 4\n\
                 pingpost_store_write_seconds_bucket{write=\"claim\",le=\"0.002\"} 103\n\
                 pingpost_store_write_seconds_bucket{write=\"claim\",le=\"+Inf\"} 104\n",
                STORE_WRITES
            )
        );
    }
}
