-- pingpost on SQLite. Times are INTEGER microseconds since the Unix epoch (UTC);
-- money is INTEGER cents, so sums are exact.

create table server_secret (
    name text primary key,
    value blob not null,
    created_at integer not null
);

create table ping (
    id text primary key,
    seller_id text not null,
    vertical text not null,
    sub_id text,
    lead_json text not null,
    status text not null check (status in ('offer', 'no_bid', 'sold', 'unsold')),
    price_cents integer,
    payout_cents integer,
    expires_at integer,
    created_at integer not null,
    -- Posting: 'open' until a post claims it, 'posting' while one delivers, 'done' after.
    post_state text not null default 'open' check (post_state in ('open', 'posting', 'done')),
    post_body_hash text,
    post_lease_until integer,
    post_result text,
    lead_id text
);
create index ping_seller_created on ping (seller_id, created_at);
create index ping_created on ping (created_at);

create table bid (
    ping_id text not null references ping (id),
    buyer_id text not null,
    outcome text not null check (outcome in ('bid', 'no_bid', 'timeout', 'error', 'below_floor')),
    price_cents integer,
    floor_cents integer not null,
    bid_id text,
    reason text,
    latency_ms integer not null,
    rank integer,
    created_at integer not null,
    primary key (ping_id, buyer_id)
);
create index bid_buyer_created on bid (buyer_id, created_at);

create table post_attempt (
    id integer primary key autoincrement,
    ping_id text not null references ping (id),
    buyer_id text not null,
    outcome text not null check (outcome in ('accepted', 'rejected', 'timeout', 'error', 'dedupe', 'cap')),
    price_cents integer not null,
    reason text,
    latency_ms integer not null,
    created_at integer not null
);
create index post_attempt_ping on post_attempt (ping_id);

-- Entries are written first and the transaction header last: the header's insert trigger
-- checks the balance, and the deferred foreign key refuses entries with no header at commit.
create table ledger_transaction (
    id text primary key,
    kind text not null check (kind in ('sale', 'return')),
    lead_id text not null,
    reverses text references ledger_transaction (id),
    created_at integer not null
);
create index ledger_transaction_created on ledger_transaction (created_at);

create table ledger_entry (
    id integer primary key autoincrement,
    transaction_id text not null references ledger_transaction (id) deferrable initially deferred,
    account text not null,
    amount_cents integer not null,
    created_at integer not null
);
create index ledger_entry_transaction on ledger_entry (transaction_id);
create index ledger_entry_account_created on ledger_entry (account, created_at);

create trigger ledger_transaction_balanced
before insert on ledger_transaction
begin
    select raise(abort, 'ledger transaction does not balance')
    where (select coalesce(sum(amount_cents), 1) from ledger_entry where transaction_id = new.id) <> 0
       or (select count(*) from ledger_entry where transaction_id = new.id) < 2;
end;

create trigger ledger_entry_sealed
before insert on ledger_entry
when exists (select 1 from ledger_transaction where id = new.transaction_id)
begin
    select raise(abort, 'ledger transaction is sealed');
end;

create trigger ledger_entry_no_update before update on ledger_entry
begin select raise(abort, 'ledger entries are append-only'); end;
create trigger ledger_entry_no_delete before delete on ledger_entry
begin select raise(abort, 'ledger entries are append-only'); end;
create trigger ledger_transaction_no_update before update on ledger_transaction
begin select raise(abort, 'ledger transactions are append-only'); end;
create trigger ledger_transaction_no_delete before delete on ledger_transaction
begin select raise(abort, 'ledger transactions are append-only'); end;

create table sale (
    lead_id text primary key,
    ping_id text not null unique references ping (id),
    buyer_id text not null,
    seller_id text not null,
    vertical text not null,
    price_cents integer not null check (price_cents >= 0),
    payout_cents integer not null check (payout_cents >= 0 and payout_cents <= price_cents),
    buyer_lead_id text,
    transaction_id text not null unique references ledger_transaction (id) deferrable initially deferred,
    created_at integer not null
);
create index sale_created on sale (created_at);
create index sale_buyer_created on sale (buyer_id, created_at);

create trigger sale_no_update before update on sale
begin select raise(abort, 'sales are append-only'); end;
create trigger sale_no_delete before delete on sale
begin select raise(abort, 'sales are append-only'); end;

create table lead_return (
    lead_id text primary key references sale (lead_id),
    buyer_id text not null,
    reason text not null,
    transaction_id text not null unique references ledger_transaction (id) deferrable initially deferred,
    created_at integer not null
);
create index lead_return_created on lead_return (created_at);

create table dedupe_key (
    buyer_id text not null,
    key_hash text not null,
    created_at integer not null
);
create index dedupe_key_lookup on dedupe_key (buyer_id, key_hash, created_at);
