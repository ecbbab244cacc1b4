-- The caps scripts' shared part, prepended to each of them.
--
-- KEYS[1] is the buyer's reservations hash: it names the buyer's slot for a cluster. ARGV[1]
-- is the buyer's key base, '<prefix>cap:{<buyer>}:'. Every key a caps script touches starts
-- with that base, so all of them share the {<buyer>} hash slot and one script can act on
-- them atomically.
--
-- Per buyer:
--   <base>window:<window key>       hash committed_count, committed_spend_cents,
--                                   reserved_count, reserved_spend_cents
--   <base>reservations              hash reservation id -> {"price_cents":..,"windows":[..]}
--   <base>reservations_by_expiry    sorted set of reservation ids by offer expiry (µs)
--
-- Times that decide behaviour (reservation expiry) come from the caller's clock, which tests
-- can move; key lifetimes (`keep_until`) are housekeeping only.

local base = ARGV[1]
local reservations = base .. 'reservations'
local by_expiry = base .. 'reservations_by_expiry'

local function window_key(name)
  return base .. 'window:' .. name
end

-- Committed plus reserved count and spend in a window; zero when it has no hash.
local function used(key)
  local v = redis.call('HMGET', key, 'committed_count', 'committed_spend_cents',
    'reserved_count', 'reserved_spend_cents')
  return (tonumber(v[1]) or 0) + (tonumber(v[3]) or 0),
    (tonumber(v[2]) or 0) + (tonumber(v[4]) or 0)
end

-- Makes a key live at least until at_ms (Unix ms), never shorter than it already would.
local function keep_until(key, at_ms)
  if redis.call('PEXPIRETIME', key) < at_ms then
    redis.call('PEXPIREAT', key, at_ms)
  end
end

-- Gives a reservation's count and price back to its windows and forgets it. A window whose
-- hash is gone (expired or flushed) is not brought back.
local function release(id)
  local raw = redis.call('HGET', reservations, id)
  if raw then
    local reservation = cjson.decode(raw)
    for _, name in ipairs(reservation.windows) do
      local key = window_key(name)
      if redis.call('EXISTS', key) == 1 then
        redis.call('HINCRBY', key, 'reserved_count', -1)
        redis.call('HINCRBY', key, 'reserved_spend_cents', -reservation.price_cents)
      end
    end
    redis.call('HDEL', reservations, id)
  end
  redis.call('ZREM', by_expiry, id)
end

-- Releases the buyer's reservations whose offer expired at or before now_us. A buyer holds
-- one reservation per live offer, so this loop is as long as its offers in flight.
local function purge(now_us)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', by_expiry, '-inf', now_us)) do
    release(id)
  end
end
