-- reserve.lua: reserve a request's cost in a partition's shared buckets
-- (PacerStore.Reserve). Reserve-and-wait GCRA, like x/time/rate's ReserveN:
-- the debit stands and the caller waits until the buckets' refill covers
-- it, so reservations are served in the order they were made.
--
-- A reservation whose wait would exceed the horizon is declined: nothing
-- is debited. (A wait reserved far ahead counts every reservation before
-- it at its full cost — max_tokens — though most of that comes back when
-- those requests end: a caller that waited minutes on such a count would
-- go later than the buckets allow.) The declined reservation takes a
-- ticket in the partition's queue, and comes back when it, with every
-- ticket before it, fits the horizon; a reservation after it, ticket or
-- not, must leave room for all of them. So requests are still served in
-- order and a large one is not starved by small ones. A waiting request
-- asks again when its turn should come, or after 5 horizons at most (the
-- costs of the tickets before it are estimates); a pacer lets one request
-- per partition ask while the others it holds wait behind it.
--
-- KEYS[1..5]  the buckets (requests, requests_per_day, tokens, input_tokens,
--             output_tokens), each a redis_rate v10 GCRA key: the theoretical
--             arrival time (TAT) in seconds since 2017-01-01 UTC, expiring
--             when the bucket is full again
-- KEYS[6]     the limits hash: c<d> capacity, r<d> refill per second; qn
--             the last ticket; the young debits: y<d> the debits, decaying
--             with time constant ARGV[18], as of yt (settle.lua keeps them
--             out of what it believes of a report); the young refunds
--             z<d>, as of zt, kept alike by settle.lua; probe, until when
--             the first request of a partition nobody has heard of goes
--             alone; seen, set by settle.lua once any answer was settled
-- KEYS[7]     the gate: when it opens, in the same seconds
-- KEYS[8]     the queue of tickets: a sorted set of "n c1 c2 c3 c4 c5 lapse"
--             scored n
-- ARGV[1..5]  the cost per dimension
-- ARGV[6..10] the capacities as the caller knows them (0: as stored)
-- ARGV[11..15] the refills per second (0: as stored)
-- ARGV[16]    the limits hash's TTL, seconds
-- ARGV[17]    the horizon, seconds (≤ 0: none: every reservation stands;
--             each bucket's is at most a 50th of its window)
-- ARGV[18]    the time constant of the young debits, seconds (each
--             bucket's is at most a 30th of its window)
-- ARGV[19]    the caller's ticket (0: none)
--
-- Returns {wait µs, gate µs from now, known bits, reserved (0/1), ticket,
-- level×1000 per dimension}. The wait of a declined reservation is the
-- time until it would fit the horizon, its ticket the one to come back
-- with.
redis.replicate_commands()
local t = redis.call("TIME")
local now = (t[1] - 1483228800) + t[2] / 1000000

local gate = tonumber(redis.call("GET", KEYS[7]) or "") or now
local start = math.max(now, gate)
local lim = redis.call("HMGET", KEYS[6], "c1", "r1", "c2", "r2", "c3", "r3", "c4", "r4", "c5", "r5",
  "y1", "y2", "y3", "y4", "y5", "yt", "z1", "z2", "z3", "z4", "z5", "zt", "probe", "seen")
local stored = redis.call("MGET", KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local ttl = tonumber(ARGV[16])
local horizon = tonumber(ARGV[17])
local ticket = tonumber(ARGV[19]) or 0

-- The limits of each bucket, its TAT (not before now) and the cost (clamped
-- to the capacity).
local caps, rates, tats, costs = {}, {}, {}, {}
local known = 0
for d = 1, 5 do
  local oc, orr = tonumber(lim[2 * d - 1]), tonumber(lim[2 * d])
  local c, r = tonumber(ARGV[5 + d]), tonumber(ARGV[10 + d])
  local tat = tonumber(stored[d] or "")
  if c > 0 and r > 0 then
    if oc ~= c or orr ~= r then
      if tat and oc and orr and oc > 0 and orr > 0 then
        -- New limits keep the level the old ones implied.
        local level = math.min(oc - math.max(tat - now, 0) * orr, c)
        tat = now + (c - level) / r
        redis.call("SET", KEYS[d], tat, "EX", math.max(math.ceil(tat - now), 1))
      end
      redis.call("HSET", KEYS[6], "c" .. d, c, "r" .. d, r)
    end
  elseif oc and orr and oc > 0 and orr > 0 then
    c, r = oc, orr
  else
    c, r = 0, 0
  end
  caps[d], rates[d] = c, r
  if c > 0 then
    known = known + 2 ^ (d - 1)
    tats[d] = math.max(tat or now, now)
    costs[d] = math.min(math.max(tonumber(ARGV[d]), 0), c)
  else
    costs[d] = 0
  end
end

-- The tickets before the caller's (all of them for a caller without one):
-- their costs are room it must leave. Lapsed tickets (their requests gave
-- up) are dropped.
local ahead = {0, 0, 0, 0, 0}
local queued = false
if horizon > 0 then
  local stale = {}
  for _, m in ipairs(redis.call("ZRANGE", KEYS[8], 0, -1)) do
    local n, c1, c2, c3, c4, c5, lapse = string.match(m,
      "^(%d+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$")
    n, lapse = tonumber(n), tonumber(lapse)
    if not n or not lapse or lapse < now then
      stale[#stale + 1] = m
    elseif ticket > 0 and n >= ticket then
      if n == ticket then
        queued = true
      end
    else
      local c = {tonumber(c1), tonumber(c2), tonumber(c3), tonumber(c4), tonumber(c5)}
      for d = 1, 5 do
        ahead[d] = ahead[d] + (c[d] or 0)
      end
    end
  end
  if #stale > 0 then
    redis.call("ZREM", KEYS[8], unpack(stale))
  end
end

-- What the reservations still out are expected to give back soon: the
-- young debits (y, fading with time constant tau) times the share of
-- recent debits that came back (z, the young refunds, over y), halved,
-- the debits being younger on average than their refunds. A declined
-- reservation comes back that much earlier: the refunds of the requests
-- before it make room for it sooner than their debits say. (Too early
-- costs it one more round trip, never a wrong admission.)
local tau = tonumber(ARGV[18])
-- decay returns the factor by which what was young at time at has faded
-- by now in dimension d: time constant tau, at most a 30th of the bucket's
-- window (its requests take a time in proportion).
local function decay(d, at)
  if tau <= 0 or caps[d] <= 0 then
    return 0
  end
  local td = math.min(tau, caps[d] / rates[d] / 30)
  return math.exp(-math.max(now - (tonumber(at or "") or now), 0) / td)
end
local soon = {0, 0, 0, 0, 0}
for d = 1, 5 do
  local y = (tonumber(lim[10 + d] or "") or 0) * decay(d, lim[16])
  local z = (tonumber(lim[16 + d] or "") or 0) * decay(d, lim[22])
  if y > 0 then
    soon[d] = 0.5 * y * math.min(z / y, 1)
  end
end

-- The wait: the gate's, and each bucket's for the cost; and the wait for
-- the cost behind the tickets before it, which must fit the horizon.
local wait = math.max(gate - now, 0)
local over = false
local back = 0 -- when a declined reservation would fit the horizon
for d = 1, 5 do
  local c, r = caps[d], rates[d]
  if c > 0 and costs[d] > 0 then
    local w = math.max(tats[d], start) + costs[d] / r - c / r - now
    wait = math.max(wait, w)
    if horizon > 0 then
      local h = math.min(horizon, c / r / 50)
      local wq = math.max(tats[d], start) + (ahead[d] + costs[d]) / r - c / r - now
      if wq > h + 1e-6 then
        over = true
        -- Come back when it fits, less what the refunds should give
        -- back by then, but at least every 5 horizons: the costs of the
        -- tickets before it are estimates (max_tokens, before the pacers
        -- learned the output of their requests), which it re-checks.
        back = math.max(back, math.min(wq - h - soon[d] / r, 5 * h), math.min(wq - h, h / 2))
      end
    end
  end
end

-- A partition nobody has heard of: no limits are known, and no answer has
-- been settled yet. One request goes first, alone, to learn them; the
-- others come back shortly (a fleet's first burst would otherwise go out
-- whole, each replica knowing nothing). Once any answer is settled, with
-- limits or without (a server that reports none), requests go as their
-- pacers decide.
if horizon > 0 and known == 0 and not lim[24] then
  local probe = tonumber(lim[23] or "")
  if probe and probe > now then
    over = true
    back = math.min(probe - now, horizon / 4)
  else
    redis.call("HSET", KEYS[6], "probe", now + 4 * horizon)
    redis.call("EXPIRE", KEYS[6], ttl)
  end
end

local reserved = 1
if over then
  reserved = 0
  wait = back
  -- Take a ticket (or keep one's own), valid until a while after the
  -- caller should come back.
  local lapse = now + back + 2 * horizon + 1
  if known == 0 then
    -- (Waiting for the first answer: no order to keep.)
  elseif queued then
    redis.call("ZREMRANGEBYSCORE", KEYS[8], ticket, ticket)
  elseif ticket <= 0 then
    ticket = redis.call("HINCRBY", KEYS[6], "qn", 1)
  end -- (a lapsed ticket comes back in its place)
  if known > 0 then
    redis.call("ZADD", KEYS[8], ticket, string.format("%d %.17g %.17g %.17g %.17g %.17g %.17g",
      ticket, costs[1], costs[2], costs[3], costs[4], costs[5], lapse))
    local qttl = math.ceil(back + 2 * horizon + 1)
    if redis.call("TTL", KEYS[8]) < qttl then
      redis.call("EXPIRE", KEYS[8], qttl)
    end
  end
else
  if queued then
    redis.call("ZREMRANGEBYSCORE", KEYS[8], ticket, ticket)
  end
  ticket = 0
end

if reserved == 1 and known > 0 then
  local y = {}
  for d = 1, 5 do
    y[d] = (tonumber(lim[10 + d] or "") or 0) * decay(d, lim[16]) + costs[d]
  end
  redis.call("HSET", KEYS[6], "y1", y[1], "y2", y[2], "y3", y[3], "y4", y[4], "y5", y[5], "yt", now)
end

local levels = {0, 0, 0, 0, 0}
for d = 1, 5 do
  local c, r = caps[d], rates[d]
  if c > 0 then
    local tat = tats[d]
    if reserved == 1 and costs[d] > 0 then
      tat = math.max(tat, start) + costs[d] / r
      if tat > now then
        redis.call("SET", KEYS[d], tat, "EX", math.ceil(tat - now))
      end
    end
    levels[d] = math.floor((c - (tat - now) * r) * 1000 + 0.5)
  end
end
if known > 0 then
  redis.call("EXPIRE", KEYS[6], ttl)
end
return {math.ceil(wait * 1000000), math.ceil(math.max(gate - now, 0) * 1000000), known, reserved, ticket,
  levels[1], levels[2], levels[3], levels[4], levels[5]}
