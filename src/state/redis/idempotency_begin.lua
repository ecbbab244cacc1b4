-- idempotency_begin: KEYS[1] the record (hash: state, body_hash, response); ARGV[1] the
-- request body's hash, ARGV[2] the record's time to live (ms). Returns {outcome[, response]}.
local record = redis.call('HMGET', KEYS[1], 'state', 'body_hash', 'response')
if record[1] then
  if record[2] ~= ARGV[1] then
    return {'mismatch'}
  end
  if record[1] == 'running' then
    return {'in_progress'}
  end
  return {'replay', record[3]}
end
local ttl_ms = tonumber(ARGV[2])
-- A record that expires at once is never seen again: there is nothing to keep.
if ttl_ms > 0 then
  redis.call('HSET', KEYS[1], 'state', 'running', 'body_hash', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl_ms)
end
return {'started'}
