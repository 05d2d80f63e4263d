-- settle.lua: reconcile a partition's shared buckets and gate after an
-- answer (PacerStore.Settle).
--
-- KEYS as in reserve.lua.
-- ARGV[1..5]   refund: moves the TAT back, never before now (a bucket never
--              rises above its capacity: a refund is no credit for later)
-- ARGV[6..10]  force-debit: moves the TAT on with no admission check
-- ARGV[11..15] the server's reported level, where ARGV[16]'s bit d-1 is set
--              (less what the caller has in flight that it cannot include)
-- ARGV[17..21] capacities, ARGV[22..26] refills per second (0: as stored)
-- ARGV[27]     close the gate for this many seconds from now (≤ 0: no)
-- ARGV[28]     the limits hash's TTL, seconds
-- ARGV[29]     the time constant of the young debits, seconds (see
--              reserve.lua; each bucket's is at most a 30th of its window)
-- ARGV[30]     the share of a higher report believed (0: none)
--
-- A shared level above the report is lowered to it: the server's word
-- wins. One below it is raised toward it — by ARGV[30] of the difference —
-- but only as far as the report less the debt (reservations waiting for
-- their turn) and the young debits (reservations of every process too
-- recent for the server to have counted), so that what a
-- lost refund, a failed call or a crashed process took from the buckets
-- comes back while they stay busy, and no reservation on its way to the
-- server is forgotten.
--
-- The refunds are kept, decaying alike, as the young refunds: z<d>, as of
-- zt.
--
-- Returns the level×1000 per dimension (0 when unknown).
redis.replicate_commands()
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + t[2] / 1000000

local lim = redis.call("HMGET", KEYS[6], "c1", "r1", "c2", "r2", "c3", "r3", "c4", "r4", "c5", "r5",
  "y1", "y2", "y3", "y4", "y5", "yt", "z1", "z2", "z3", "z4", "z5", "zt")
local stored = redis.call("MGET", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local reportedBits = tonumber(ARGV[16])
local ttl = tonumber(ARGV[28])
local tau = tonumber(ARGV[29])
local gain = tonumber(ARGV[30])
-- decay returns the factor by which what was young at time at has faded
-- by now for a bucket of capacity c and refill r (see reserve.lua).
local function decay(c, r, at)
  if tau <= 0 or c <= 0 then
    return 0
  end
  local td = math.min(tau, c / r / 30)
  return math.exp(-math.max(now - (tonumber(at or "") or now), 0) / td)
end
local caps, rates = {0, 0, 0, 0, 0}, {1, 1, 1, 1, 1}
local levels = {0, 0, 0, 0, 0}
for d = 1, 5 do
  local oc, orr = tonumber(lim[2 * d - 1]), tonumber(lim[2 * d])
  local c, r = tonumber(ARGV[16 + d]), tonumber(ARGV[21 + d])
  local refund, debit = math.max(tonumber(ARGV[d]), 0), math.max(tonumber(ARGV[5 + d]), 0)
  local reported = math.floor(reportedBits / 2 ^ (d - 1)) % 2 == 1
  local tat = tonumber(stored[d] or "")
  if c > 0 and r > 0 then
    if oc ~= c or orr ~= r then
      if tat and oc and orr and oc > 0 and orr > 0 then
        local level = math.min(oc - math.max(tat - now, 0) * orr, c)
        tat = now + (c - level) / r
      end
      redis.call("HSET", KEYS[6], "c" .. d, c, "r" .. d, r)
    end
  elseif oc and orr and oc > 0 and orr > 0 then
    c, r = oc, orr
  else
    c, r = 0, 0
  end
  if c > 0 then
    caps[d], rates[d] = c, r
    local old = tat
    tat = math.max(tat or now, now)
    if refund > 0 then
      tat = math.max(tat - refund / r, now)
    end
    if debit > 0 then
      tat = tat + debit / r
    end
    if reported then
      local rep = math.min(tonumber(ARGV[10 + d]), c)
      local level = c - (tat - now) * r
      if rep < level then
        level = rep
      else
        -- Debt is reservations not yet sent (waiting their turn); the
        -- young debits, those in transit or generating.
        local young = (tonumber(lim[10 + d] or "") or 0) * decay(c, r, lim[16]) + math.max(-level, 0)
        local target = rep - young
        if target > level then
          level = level + gain * (target - level)
        end
      end
      tat = now + (c - level) / r
    end
    local reset = tat - now
    if reset > 0 then
      redis.call("SET", KEYS[d], tat, "EX", math.ceil(reset))
    elseif old then
      redis.call("DEL", KEYS[d])
    end
    levels[d] = math.floor((c - reset * r) * 1000 + 0.5)
  end
end
-- An answer was settled: the partition's first request has been heard
-- (see reserve.lua's probe).
redis.call("HSET", KEYS[6], "seen", 1)
redis.call("EXPIRE", KEYS[6], ttl)
-- The young refunds, like the young debits: what comes back of them
-- (reserve.lua expects as much of the debits still out).
local refunded = false
for d = 1, 5 do
  if tonumber(ARGV[d]) > 0 then
    refunded = true
  end
end
if refunded and tau > 0 then
  local z = {}
  for d = 1, 5 do
    z[d] = (tonumber(lim[16 + d] or "") or 0) * decay(caps[d], rates[d], lim[22]) + math.max(tonumber(ARGV[d]), 0)
  end
  redis.call("HSET", KEYS[6], "z1", z[1], "z2", z[2], "z3", z[3], "z4", z[4], "z5", z[5], "zt", now)
end

local close = tonumber(ARGV[27])
if close > 0 then
  local gate = tonumber(redis.call("GET", KEYS[7]) or "") or now
  local until_ = now + close
  if until_ > gate then
    redis.call("SET", KEYS[7], until_, "PX", math.ceil(close * 1000))
  end
end
return levels
