-- The CHECK constraints of the ping, bid, post-attempt and rollup tables said
-- `column in ('a', 'b', 'c', …)`. SQLite evaluates an IN list of more than two constants by
-- building a temporary b-tree of the list, every time the check runs: each insert of a bid
-- row, a post attempt or a rollup upsert, and each update of a ping opened and filled one
-- (twenty per ping and post under load, a tenth of the writer's time: load-tests/RESULTS.md).
-- The same checks written as comparisons joined by `or` allow and refuse exactly the same
-- values and build nothing.
--
-- A CHECK constraint is not stored with the rows, so it changes by editing the table's
-- definition in the schema (SQLite's documented way of changing CHECK constraints without
-- copying a table; every row already meets the old check, and so the new one). The table
-- created and dropped at the end changes the schema's version, so that every connection
-- reads the edited definitions again.
pragma writable_schema = on;

update sqlite_schema
set sql = replace(
    replace(
        sql,
        'check (status in (''offer'', ''no_bid'', ''sold'', ''unsold''))',
        'check (status = ''offer'' or status = ''no_bid'' or status = ''sold'' or status = ''unsold'')'
    ),
    'check (post_state in (''open'', ''posting'', ''done''))',
    'check (post_state = ''open'' or post_state = ''posting'' or post_state = ''done'')'
)
where type = 'table' and name = 'ping';

update sqlite_schema
set sql = replace(
    sql,
    'check (outcome in (''bid'', ''no_bid'', ''timeout'', ''error'', ''below_floor''))',
    'check (outcome = ''bid'' or outcome = ''no_bid'' or outcome = ''timeout'' or outcome = ''error'' or outcome = ''below_floor'')'
)
where type = 'table' and name = 'bid';

update sqlite_schema
set sql = replace(
    sql,
    'check (outcome in (''accepted'', ''rejected'', ''timeout'', ''error'', ''dedupe'', ''cap''))',
    'check (outcome = ''accepted'' or outcome = ''rejected'' or outcome = ''timeout'' or outcome = ''error'' or outcome = ''dedupe'' or outcome = ''cap'')'
)
where type = 'table' and name = 'post_attempt';

update sqlite_schema
set sql = replace(
    sql,
    'check (dimension in (''all'', ''buyer'', ''seller'', ''vertical''))',
    'check (dimension = ''all'' or dimension = ''buyer'' or dimension = ''seller'' or dimension = ''vertical'')'
)
where type = 'table' and name = 'revenue_hourly';

pragma writable_schema = off;

create table schema_changed (x integer);
drop table schema_changed;
