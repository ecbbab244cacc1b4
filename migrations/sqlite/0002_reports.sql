-- Finance reports. `revenue_hourly` is revenue by UTC hour for each report dimension: the
-- revenue report reads it instead of scanning the ledger. Each sale and each return updates it
-- inside the database transaction that writes its ledger transaction (store::record_sale,
-- store::record_return), so it cannot drift from the books; below it is built from the ledger
-- for the books that exist already. Money in cents; `returned_margin_cents` is the margin
-- reversed by the returns, for net_margin.
create table revenue_hourly (
    dimension text not null check (dimension in ('all', 'buyer', 'seller', 'vertical')),
    group_key text not null,
    hour_start integer not null,
    leads_sold integer not null,
    gross_cents integer not null,
    payouts_cents integer not null,
    margin_cents integer not null,
    returns integer not null,
    returned_cents integer not null,
    returned_margin_cents integer not null,
    primary key (dimension, hour_start, group_key)
) without rowid;

with txn as (
    select t.kind as kind,
           (t.created_at / 3600000000) * 3600000000 as hour_start,
           s.buyer_id as buyer_id, s.seller_id as seller_id, s.vertical as vertical,
           sum(case when e.account like 'buyer:%' then e.amount_cents else 0 end) as buyer_cents,
           sum(case when e.account like 'seller:%' then e.amount_cents else 0 end) as seller_cents,
           sum(case when e.account = 'exchange:revenue' then e.amount_cents else 0 end) as exchange_cents
    from ledger_transaction t
    join ledger_entry e on e.transaction_id = t.id
    join sale s on s.lead_id = t.lead_id
    group by t.id
), cell as (
    select 'all' as dimension, '' as group_key, txn.* from txn
    union all select 'buyer', buyer_id, txn.* from txn
    union all select 'seller', seller_id, txn.* from txn
    union all select 'vertical', vertical, txn.* from txn
)
insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross_cents,
    payouts_cents, margin_cents, returns, returned_cents, returned_margin_cents)
select dimension, group_key, hour_start,
       sum(kind = 'sale'),
       sum(case when kind = 'sale' then -buyer_cents else 0 end),
       sum(case when kind = 'sale' then seller_cents else 0 end),
       sum(case when kind = 'sale' then exchange_cents else 0 end),
       sum(kind = 'return'),
       sum(case when kind = 'return' then buyer_cents else 0 end),
       sum(case when kind = 'return' then -exchange_cents else 0 end)
from cell
group by dimension, group_key, hour_start;

-- The ledger export pages through entries by time; the auction statistics read by time.
create index ledger_entry_created on ledger_entry (created_at, id);
create index bid_created on bid (created_at);
create index post_attempt_created on post_attempt (created_at);
