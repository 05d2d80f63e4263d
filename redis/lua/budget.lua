-- budget.lua: add to a budget's counts and read its window
-- (llmhttp.BudgetStore.Add). The counts are a hash of one field per slot:
-- slot number -> "requests input output".
--
-- KEYS[1]     the budget
-- ARGV[1]     the slot to add to; ARGV[2..4] the requests, input and output
--             tokens to add (all 0: read only)
-- ARGV[5]     the window's first slot, ARGV[6] its last (the current one)
-- ARGV[7]     the key's TTL after a write, milliseconds (it is only ever
--             lengthened)
--
-- Returns {slot, requests, input, output, ...} for the slots of the window
-- that hold counts.
local key = KEYS[1]
local slot = ARGV[1]
local dr, di, do_ = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local first, last = tonumber(ARGV[5]), tonumber(ARGV[6])

if dr ~= 0 or di ~= 0 or do_ ~= 0 then
  local r, i, o = 0, 0, 0
  local cur = redis.call("HGET", key, slot)
  if cur then
    local a, b, c = string.match(cur, "^(-?%d+) (-?%d+) (-?%d+)$")
    r, i, o = tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0
  end
  redis.call("HSET", key, slot, string.format("%d %d %d", r + dr, i + di, o + do_))
  local ttl = tonumber(ARGV[7])
  if redis.call("PTTL", key) < ttl then
    redis.call("PEXPIRE", key, ttl)
  end
end

local out = {}
local all = redis.call("HGETALL", key)
local stale = {}
for j = 1, #all, 2 do
  local n = tonumber(all[j])
  if n and n >= first and n <= last then
    local a, b, c = string.match(all[j + 1], "^(-?%d+) (-?%d+) (-?%d+)$")
    if a then
      out[#out + 1] = n
      out[#out + 1] = tonumber(a)
      out[#out + 1] = tonumber(b)
      out[#out + 1] = tonumber(c)
    end
  elseif not n or n < first then
    stale[#stale + 1] = all[j]
  end
end
if #stale > 0 then
  redis.call("HDEL", key, unpack(stale))
end
return out
