//! Finance reports, read from the books: see `crate::reports`.

use bytes::Bytes;
use futures_util::Stream;

use super::Exchange;
use crate::error::ApiError;
use crate::reports::{self, AuctionReport, Format, Period, RevenueGroup, RevenueReport};
use crate::store::{AuctionDimension, StoreError};

impl Exchange {
    pub async fn revenue_report(
        &self,
        period: Period,
        group: RevenueGroup,
    ) -> Result<RevenueReport, ApiError> {
        Ok(reports::revenue_report(&*self.store, &self.config.currency, period, group).await?)
    }

    pub async fn auction_report(
        &self,
        period: Period,
        dimension: AuctionDimension,
    ) -> Result<AuctionReport, ApiError> {
        Ok(reports::auction_report(&*self.store, period, dimension).await?)
    }

    /// The ledger's entries in the period as a stream of body chunks.
    pub async fn ledger_export(
        &self,
        period: Period,
        format: Format,
    ) -> Result<impl Stream<Item = Result<Bytes, StoreError>> + 'static, ApiError> {
        Ok(
            reports::ledger_export(self.store.clone(), period, format, &self.config.currency)
                .await?,
        )
    }
}
