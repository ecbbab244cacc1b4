
-- caps_room: ARGV[2] now (µs), then per window: key, count_max, spend_max_cents ('' = none).
-- 1 when every window has room for one more lead (reservations included), else 0.
purge(ARGV[2])
for i = 3, #ARGV, 3 do
  local count, spend = used(window_key(ARGV[i]))
  local count_max, spend_max = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if (count_max and count >= count_max) or (spend_max and spend >= spend_max) then
    return 0
  end
end
return 1
