
-- reserve: ARGV[2] now (µs), ARGV[3] reservation id, ARGV[4] price (cents), ARGV[5] offer
-- expiry (µs), ARGV[6] the reservation record (JSON), ARGV[7] keep the reservations until (ms);
-- then per window: key, count_max, spend_max_cents ('' = none), keep the window until (ms).
-- 1 when reserved or already held under this id; 0 when the lead would pass a cap; -1 when a
-- window has no totals (Redis lost them): the caller reseeds from the database rather than
-- count from zero.
local id, price = ARGV[3], tonumber(ARGV[4])
purge(ARGV[2])
if redis.call('HEXISTS', reservations, id) == 1 then
  return 1
end
for i = 8, #ARGV, 4 do
  local key = window_key(ARGV[i])
  if redis.call('EXISTS', key) == 0 then
    return -1
  end
  local count, spend = used(key)
  local count_max, spend_max = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if (count_max and count >= count_max) or (spend_max and spend + price > spend_max) then
    return 0
  end
end
for i = 8, #ARGV, 4 do
  local key = window_key(ARGV[i])
  redis.call('HINCRBY', key, 'reserved_count', 1)
  redis.call('HINCRBY', key, 'reserved_spend_cents', price)
  keep_until(key, tonumber(ARGV[i + 3]))
end
redis.call('HSET', reservations, id, ARGV[6])
redis.call('ZADD', by_expiry, ARGV[5], id)
keep_until(reservations, tonumber(ARGV[7]))
keep_until(by_expiry, tonumber(ARGV[7]))
return 1
