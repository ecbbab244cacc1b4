//! The ledger export: every entry of a period, streamed page by page as JSON or CSV, so a
//! month of entries never has to fit in memory.

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;

use super::{csv, Format, Period};
use crate::domain::SignedCents;
use crate::store::{DynStore, EntryRow, LedgerCursor, LedgerRow, StoreError};

/// Entries read from the database per query, and so held in memory at once.
pub const LEDGER_PAGE_ROWS: i64 = 1_000;

pub const LEDGER_CSV_HEADER: [&str; 6] = [
    "transaction_id",
    "time",
    "kind",
    "account",
    "amount",
    "lead_id",
];

#[derive(Serialize)]
struct Line<'a> {
    transaction_id: &'a str,
    time: String,
    kind: &'static str,
    account: &'a str,
    amount: SignedCents,
    lead_id: &'a str,
}

/// ISO 8601 in UTC to the microsecond, as the ledger keeps it.
fn iso_time(e: &EntryRow) -> String {
    e.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The text of one page of entries; `first` says whether it starts the list.
fn render_rows(format: Format, rows: &[LedgerRow], mut first: bool) -> String {
    let mut out = String::new();
    for row in rows {
        let e = &row.entry;
        match format {
            Format::Json => {
                if !first {
                    out.push(',');
                }
                let line = Line {
                    transaction_id: &e.transaction_id,
                    time: iso_time(e),
                    kind: e.kind.as_str(),
                    account: &e.account,
                    amount: SignedCents(e.amount_cents),
                    lead_id: &e.lead_id,
                };
                // A struct of strings always serialises.
                out.push_str(&serde_json::to_string(&line).unwrap_or_default());
            }
            Format::Csv => csv::record(
                &mut out,
                &[
                    e.transaction_id.clone(),
                    iso_time(e),
                    e.kind.as_str().to_string(),
                    e.account.clone(),
                    SignedCents(e.amount_cents).to_wire(),
                    e.lead_id.clone(),
                ],
            ),
        }
        first = false;
    }
    out
}

fn header(format: Format, period: &Period, currency: &str) -> String {
    match format {
        Format::Json => {
            let meta = serde_json::json!({
                "from": period.from,
                "to": period.to,
                "tz": period.tz.name(),
                "currency": currency,
            });
            // `{"from":…,"currency":…}` opened again to append the entries.
            let text = meta.to_string();
            format!("{},\"entries\":[", &text[..text.len() - 1])
        }
        Format::Csv => {
            let mut out = String::new();
            csv::record(&mut out, &LEDGER_CSV_HEADER);
            out
        }
    }
}

fn footer(format: Format) -> &'static str {
    match format {
        Format::Json => "]}",
        Format::Csv => "",
    }
}

struct Export {
    store: DynStore,
    period: Period,
    format: Format,
    page_rows: i64,
    /// Rows read but not yet sent; the first page is read before the response starts, so that
    /// an unreachable database is an error status rather than a cut-off body.
    page: Option<Vec<LedgerRow>>,
    cursor: Option<LedgerCursor>,
    started: bool,
    finished: bool,
}

/// Reads the first page, then returns the export as a stream of body chunks: the header
/// with the first page, one chunk per further page, then the end of the document. A
/// database error mid-way ends the stream with that error, and so cuts the body short.
pub async fn ledger_export(
    store: DynStore,
    period: Period,
    format: Format,
    currency: &str,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>>, StoreError> {
    ledger_export_paged(store, period, format, currency, LEDGER_PAGE_ROWS).await
}

/// `ledger_export` reading `page_rows` entries per query.
pub async fn ledger_export_paged(
    store: DynStore,
    period: Period,
    format: Format,
    currency: &str,
    page_rows: i64,
) -> Result<impl Stream<Item = Result<Bytes, StoreError>>, StoreError> {
    let page_rows = page_rows.max(1);
    let first = store
        .ledger_page(period.start(), period.end(), None, page_rows)
        .await?;
    let head = header(format, &period, currency);
    let export = Export {
        store,
        period,
        format,
        page_rows,
        page: Some(first),
        cursor: None,
        started: false,
        finished: false,
    };
    Ok(futures_util::stream::try_unfold(
        (export, head),
        |(mut x, head)| async move {
            if x.finished {
                return Ok(None);
            }
            let rows = match x.page.take() {
                Some(rows) => rows,
                None => {
                    x.store
                        .ledger_page(x.period.start(), x.period.end(), x.cursor, x.page_rows)
                        .await?
                }
            };
            let mut chunk = String::new();
            if !x.started {
                chunk.push_str(&head);
            }
            chunk.push_str(&render_rows(x.format, &rows, !x.started));
            if let Some(last) = rows.last() {
                x.cursor = Some(LedgerCursor {
                    time: last.entry.time,
                    entry_id: last.entry_id,
                });
            }
            if (rows.len() as i64) < x.page_rows {
                chunk.push_str(footer(x.format));
                x.finished = true;
            }
            // The header goes out once, with whatever the first chunk holds.
            x.started = true;
            Ok(Some((Bytes::from(chunk), (x, String::new()))))
        },
    ))
}
