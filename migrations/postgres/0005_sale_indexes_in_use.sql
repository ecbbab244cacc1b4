-- Every sale wrote seven index entries. Two of those indexes were read by nothing: reports
-- read the revenue rollup and the ledger, caps read `sale_buyer_created`, and a sale is
-- found by its lead id. SQLite never had them. (load-tests/RESULTS.md, session 12.)
drop index if exists sale_seller_created;
drop index if exists sale_vertical_created;
