
-- commit: ARGV[2] reservation id, ARGV[3] price (cents); then per window: key, keep the
-- window until (ms). The reservation, if still held, is released and the sale added to the
-- committed totals. A window without totals (Redis lost them) is left absent: it is seeded
-- from the database, which already has this sale, rather than restarted from this one sale.
release(ARGV[2])
local price = tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local key = window_key(ARGV[i])
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'committed_count', 1)
    redis.call('HINCRBY', key, 'committed_spend_cents', price)
    keep_until(key, tonumber(ARGV[i + 1]))
  end
end
return 0
