-- pingpost on PostgreSQL: the same tables and rules as migrations/sqlite, in PostgreSQL's own
-- types. Money is numeric(14,2) (exact, never float); times are timestamptz (microseconds, UTC).
-- Money columns drop SQLite's `_cents` suffix: `price` here is `price_cents` there.

create table server_secret (
    name text primary key,
    value bytea not null,
    created_at timestamptz not null
);

create table ping (
    id text primary key,
    seller_id text not null,
    vertical text not null,
    sub_id text,
    -- Text, not jsonb: the store hands back the very text it was given.
    lead_json text not null,
    status text not null check (status in ('offer', 'no_bid', 'sold', 'unsold')),
    price numeric(14,2),
    payout numeric(14,2),
    expires_at timestamptz,
    created_at timestamptz not null,
    -- Posting: 'open' until a post claims it, 'posting' while one delivers, 'done' after.
    post_state text not null default 'open' check (post_state in ('open', 'posting', 'done')),
    post_body_hash text,
    post_lease_until timestamptz,
    post_result text,
    lead_id text
);
create index ping_seller_created on ping (seller_id, created_at);
create index ping_created on ping (created_at);

create table bid (
    ping_id text not null references ping (id),
    buyer_id text not null,
    outcome text not null check (outcome in ('bid', 'no_bid', 'timeout', 'error', 'below_floor')),
    price numeric(14,2),
    floor numeric(14,2) not null,
    bid_id text,
    reason text,
    latency_ms bigint not null,
    rank integer,
    created_at timestamptz not null,
    primary key (ping_id, buyer_id)
);
create index bid_buyer_created on bid (buyer_id, created_at);

create table post_attempt (
    id bigint generated always as identity primary key,
    ping_id text not null references ping (id),
    buyer_id text not null,
    outcome text not null check (outcome in ('accepted', 'rejected', 'timeout', 'error', 'dedupe', 'cap')),
    price numeric(14,2) not null,
    reason text,
    latency_ms bigint not null,
    created_at timestamptz not null
);
create index post_attempt_ping on post_attempt (ping_id);

-- As on SQLite, a transaction's entries are written first and its header last, in one
-- database transaction: an entry for a header that already exists is refused (the
-- transaction is sealed), and the deferred foreign key refuses entries with no header.
create table ledger_transaction (
    id text primary key,
    kind text not null check (kind in ('sale', 'return')),
    lead_id text not null,
    reverses text references ledger_transaction (id),
    created_at timestamptz not null
);
create index ledger_transaction_created on ledger_transaction (created_at);

create table ledger_entry (
    id bigint generated always as identity primary key,
    transaction_id text not null references ledger_transaction (id) deferrable initially deferred,
    account text not null,
    -- Signed: negative is a debit to the account.
    amount numeric(14,2) not null,
    created_at timestamptz not null
);
create index ledger_entry_transaction on ledger_entry (transaction_id);
create index ledger_entry_account_created on ledger_entry (account, created_at);

-- The balance is checked at commit, when every entry of the transaction is in: it must have a
-- header, at least two entries, and entries that sum to zero. The Rust ledger checks the same
-- before writing; this is the second check, which no client can skip.
create function ledger_transaction_check_balanced() returns trigger
language plpgsql as $$
declare
    txn_id text;
    entry_count bigint;
    entry_sum numeric;
begin
    if tg_table_name = 'ledger_transaction' then
        txn_id := new.id;
    else
        txn_id := new.transaction_id;
    end if;
    select count(*), coalesce(sum(amount), 0) into entry_count, entry_sum
    from ledger_entry where transaction_id = txn_id;
    if entry_count < 2 or entry_sum <> 0 then
        raise exception 'ledger transaction % does not balance: % entries summing to %', txn_id, entry_count, entry_sum
            using errcode = 'check_violation';
    end if;
    return null;
end;
$$;

-- On both tables: a header with no entries fires nothing on ledger_entry.
create constraint trigger ledger_entry_balanced
after insert on ledger_entry
deferrable initially deferred
for each row execute function ledger_transaction_check_balanced();

create constraint trigger ledger_transaction_balanced
after insert on ledger_transaction
deferrable initially deferred
for each row execute function ledger_transaction_check_balanced();

create function ledger_entry_refuse_sealed() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from ledger_transaction where id = new.transaction_id) then
        raise exception 'ledger transaction % is sealed', new.transaction_id
            using errcode = 'check_violation';
    end if;
    return new;
end;
$$;

create trigger ledger_entry_sealed
before insert on ledger_entry
for each row execute function ledger_entry_refuse_sealed();

create table sale (
    lead_id text primary key,
    ping_id text not null unique references ping (id),
    buyer_id text not null,
    seller_id text not null,
    vertical text not null,
    price numeric(14,2) not null check (price >= 0),
    payout numeric(14,2) not null check (payout >= 0 and payout <= price),
    buyer_lead_id text,
    transaction_id text not null unique references ledger_transaction (id),
    created_at timestamptz not null
);
create index sale_created on sale (created_at);
create index sale_buyer_created on sale (buyer_id, created_at);
create index sale_seller_created on sale (seller_id, created_at);
create index sale_vertical_created on sale (vertical, created_at);

create table lead_return (
    lead_id text primary key references sale (lead_id),
    buyer_id text not null,
    reason text not null,
    -- Deferred: the return row is written before its transaction, so that a second return
    -- of the same lead fails on the primary key at once.
    transaction_id text not null unique references ledger_transaction (id) deferrable initially deferred,
    created_at timestamptz not null
);
create index lead_return_created on lead_return (created_at);

create table dedupe_key (
    buyer_id text not null,
    key_hash text not null,
    created_at timestamptz not null
);
create index dedupe_key_lookup on dedupe_key (buyer_id, key_hash, created_at);

-- The books are append-only: a correction is a new, reversing transaction.
create function refuse_change() returns trigger
language plpgsql as $$
begin
    raise exception '% is append-only: % refused', tg_table_name, lower(tg_op)
        using errcode = 'restrict_violation';
end;
$$;

create trigger ledger_entry_append_only
before update or delete on ledger_entry
for each row execute function refuse_change();
create trigger ledger_entry_no_truncate
before truncate on ledger_entry
for each statement execute function refuse_change();

create trigger ledger_transaction_append_only
before update or delete on ledger_transaction
for each row execute function refuse_change();
create trigger ledger_transaction_no_truncate
before truncate on ledger_transaction
for each statement execute function refuse_change();

create trigger sale_append_only
before update or delete on sale
for each row execute function refuse_change();
create trigger sale_no_truncate
before truncate on sale
for each statement execute function refuse_change();

create trigger lead_return_append_only
before update or delete on lead_return
for each row execute function refuse_change();
create trigger lead_return_no_truncate
before truncate on lead_return
for each statement execute function refuse_change();
