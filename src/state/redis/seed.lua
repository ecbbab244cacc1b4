
-- seed: ARGV[2] window key, ARGV[3] committed count, ARGV[4] committed spend (cents),
-- ARGV[5] keep the window until (ms). Totals already known are never overwritten: they may
-- hold sales the database reading behind this call did not see yet.
local key = window_key(ARGV[2])
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'committed_count', ARGV[3], 'committed_spend_cents', ARGV[4],
    'reserved_count', 0, 'reserved_spend_cents', 0)
  keep_until(key, tonumber(ARGV[5]))
end
return 0
