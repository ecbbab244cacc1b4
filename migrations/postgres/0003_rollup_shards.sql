-- Sales and returns no longer queue on one rollup row. Every sale of an hour used to update
-- the same `all` row (and its vertical's, buyer's and seller's), holding its row lock until
-- commit, so concurrent sales committed one at a time. Each database session now adds to a
-- shard of its own (`pg_backend_pid() % 32`); reports add the shards up, as they already add
-- up hours. `store::compact_revenue_rollup` folds the shards of past hours back into shard 0.
alter table revenue_hourly add column shard smallint not null default 0;
alter table revenue_hourly drop constraint revenue_hourly_pkey;
alter table revenue_hourly add primary key (dimension, hour_start, group_key, shard);
