-- Finance reports. `revenue_hourly` is revenue by UTC hour for each report dimension: the
-- revenue report reads it instead of scanning the ledger. Each sale and each return updates it
-- inside the database transaction that writes its ledger transaction (store::record_sale,
-- store::record_return), so it cannot drift from the books; below it is built from the ledger
-- for the books that exist already. `returned_margin` is the margin reversed by the returns,
-- for net_margin.
create table revenue_hourly (
    dimension text not null check (dimension in ('all', 'buyer', 'seller', 'vertical')),
    group_key text not null,
    hour_start timestamptz not null,
    leads_sold bigint not null,
    gross numeric(16,2) not null,
    payouts numeric(16,2) not null,
    margin numeric(16,2) not null,
    returns bigint not null,
    returned_amount numeric(16,2) not null,
    returned_margin numeric(16,2) not null,
    primary key (dimension, hour_start, group_key)
);

insert into revenue_hourly (dimension, group_key, hour_start, leads_sold, gross, payouts,
    margin, returns, returned_amount, returned_margin)
with txn as (
    select t.kind as kind,
           date_trunc('hour', t.created_at, 'UTC') as hour_start,
           s.buyer_id as buyer_id, s.seller_id as seller_id, s.vertical as vertical,
           coalesce(sum(e.amount) filter (where e.account like 'buyer:%'), 0) as buyer_amount,
           coalesce(sum(e.amount) filter (where e.account like 'seller:%'), 0) as seller_amount,
           coalesce(sum(e.amount) filter (where e.account = 'exchange:revenue'), 0) as exchange_amount
    from ledger_transaction t
    join ledger_entry e on e.transaction_id = t.id
    join sale s on s.lead_id = t.lead_id
    group by t.id, s.lead_id
), cell as (
    select 'all' as dimension, '' as group_key, txn.* from txn
    union all select 'buyer', buyer_id, txn.* from txn
    union all select 'seller', seller_id, txn.* from txn
    union all select 'vertical', vertical, txn.* from txn
)
select dimension, group_key, hour_start,
       count(*) filter (where kind = 'sale'),
       coalesce(sum(-buyer_amount) filter (where kind = 'sale'), 0),
       coalesce(sum(seller_amount) filter (where kind = 'sale'), 0),
       coalesce(sum(exchange_amount) filter (where kind = 'sale'), 0),
       count(*) filter (where kind = 'return'),
       coalesce(sum(buyer_amount) filter (where kind = 'return'), 0),
       coalesce(sum(-exchange_amount) filter (where kind = 'return'), 0)
from cell
group by dimension, group_key, hour_start;

-- The ledger export pages through entries by time; the auction statistics read by time.
create index ledger_entry_created on ledger_entry (created_at, id);
create index bid_created on bid (created_at);
create index post_attempt_created on post_attempt (created_at);
