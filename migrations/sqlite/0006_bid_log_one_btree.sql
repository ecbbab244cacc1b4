-- The bid log is the exchange's largest write: a row per buyer asked, 100 per auction at
-- 100 buyers. Each row went into three b-trees: the table (by rowid), its primary key's
-- index (ping_id, buyer_id) with its uniqueness search, and `bid_created` for the auction
-- statistics' time range (load-tests/RESULTS.md, session 9). Now the table is its primary
-- key's b-tree (WITHOUT ROWID) and has no other index: one b-tree per row.
--
-- Ping ids are UUIDv7 (`domain::ids`), ordered by time, so the key (ping_id, buyer_id)
-- appends at the b-tree's end as the time index did, and a ping's bids sit together. The
-- auction statistics find a time range's bids through their pings (`ping_created`): a
-- bid's `created_at` is its ping's, written together by the writer.
create table bid_by_ping (
    ping_id text not null references ping (id),
    buyer_id text not null,
    outcome text not null check (outcome = 'bid' or outcome = 'no_bid' or outcome = 'timeout' or outcome = 'error' or outcome = 'below_floor'),
    price_cents integer,
    floor_cents integer not null,
    bid_id text,
    reason text,
    latency_ms integer not null,
    rank integer,
    created_at integer not null,
    primary key (ping_id, buyer_id)
) without rowid;

insert into bid_by_ping (ping_id, buyer_id, outcome, price_cents, floor_cents, bid_id, reason,
    latency_ms, rank, created_at)
select ping_id, buyer_id, outcome, price_cents, floor_cents, bid_id, reason, latency_ms, rank,
    created_at
from bid;

drop table bid;
alter table bid_by_ping rename to bid;
