-- rate_limit: the generic cell rate algorithm (GCRA) on Redis's clock, so every node shares
-- one clock. KEYS[1] holds the seller's theoretical arrival time (µs). ARGV[1] the emission
-- interval (µs, 1 s / rate), ARGV[2] the burst. Returns 0 to allow, else the wait in µs.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local next_tat = tat + interval
local allow_at = next_tat - tolerance
if allow_at > now then
  return allow_at - now
end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX',
  math.max(1, math.ceil((next_tat - now) / 1000)))
return 0
