-- idempotency_complete: KEYS[1] the record; ARGV[1] the body's hash, ARGV[2] the response.
-- Only a record still held is completed, and it keeps the expiry `begin` gave it.
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'state', 'done', 'body_hash', ARGV[1], 'response', ARGV[2])
end
return 0
