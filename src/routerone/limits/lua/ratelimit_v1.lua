-- routerone_ratelimit_v1: Router One's sliding-window-log rate limiter (algorithm: limits/base.py).
--
-- IMPORTANT: bump the version in this file's name, in the name above and in KEY_PREFIX
-- ("ro:rl:v1:", redis.py) whenever keys, arguments, results or behaviour change, so old and new
-- gateways can share one Redis during a rolling deploy without reading each other's state.
--
-- KEYS, four per rule, prefix ro:rl:v1:<scope>:
--   req   ZSET   request_id -> admitted_at (microseconds, Redis server clock)
--   tok   HASH   request_id -> tokens still counted for it (lowered by release)
--   tsum  STRING sum of tok
--   cc    ZSET   request_id -> lease expiry (microseconds): the in-flight requests
-- ARGV: op ("acquire" | "peek" | "release"), request_id, tokens (tokens_used for release),
--       window_us, lease_us, then per rule: rpm, tpm, concurrency (-1 = no such limit)
-- Returns, for acquire and peek:
--   {allowed (1|0), denied rule (1-based, 0 = none), reason, wait_us,
--    then per rule: requests, tokens, reset_us}
--   reason: 0 none, 1 rpm, 2 tpm, 3 concurrency, 4 tokens exceed tpm (never satisfiable)
-- and {1} for release.
-- The whole check-and-record runs atomically, so all rules take the request or none does.

local op, rid = ARGV[1], ARGV[2]
local tokens = tonumber(ARGV[3])
local window, lease = tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local CHUNK = 500
local CONCURRENCY_WAIT = 1000000

local function limit(v)
  v = tonumber(v)
  if v < 0 then return nil end
  return v
end

local rules = {}
for i = 1, #KEYS / 4 do
  local a = 5 + (i - 1) * 3
  rules[i] = {req = KEYS[4 * i - 3], tok = KEYS[4 * i - 2], tsum = KEYS[4 * i - 1],
              cc = KEYS[4 * i], rpm = limit(ARGV[a + 1]), tpm = limit(ARGV[a + 2]),
              conc = limit(ARGV[a + 3])}
end

local function absent(key)
  return rid == '' or not redis.call('ZSCORE', key, rid)
end

-- Drop log entries that left the window (with their tokens) and expired leases.
local function sweep(r)
  local horizon = now - window
  local gone = redis.call('ZRANGEBYSCORE', r.req, '-inf', horizon)
  if #gone > 0 then
    local freed = 0
    for s = 1, #gone, CHUNK do
      local part = {unpack(gone, s, math.min(s + CHUNK - 1, #gone))}
      local vals = redis.call('HMGET', r.tok, unpack(part))
      for k = 1, #part do freed = freed + (tonumber(vals[k]) or 0) end
      redis.call('HDEL', r.tok, unpack(part))
    end
    redis.call('ZREMRANGEBYSCORE', r.req, '-inf', horizon)
    if freed > 0 and redis.call('DECRBY', r.tsum, freed) <= 0 then
      redis.call('DEL', r.tsum)
    end
  end
  if r.conc then redis.call('ZREMRANGEBYSCORE', r.cc, '-inf', now) end
end

-- Microseconds until the logged tokens drop to `target` as the oldest entries leave the window.
local function tokens_free_at(r, target)
  local sum, start = r.sum, 0
  while true do
    local page = redis.call('ZRANGE', r.req, start, start + CHUNK - 1, 'WITHSCORES')
    if #page == 0 then return window end
    local ids = {}
    for k = 1, #page, 2 do ids[#ids + 1] = page[k] end
    local vals = redis.call('HMGET', r.tok, unpack(ids))
    for k = 1, #ids do
      sum = sum - (tonumber(vals[k]) or 0)
      if sum <= target then return tonumber(page[2 * k]) + window - now end
    end
    start = start + CHUNK
  end
end

-- Reads the rule's window into r; returns (wait_us, reason), reason 0 when the rule admits.
local function check(r)
  r.count = redis.call('ZCARD', r.req)
  r.sum = tonumber(redis.call('GET', r.tsum)) or 0
  r.new_req = (r.rpm or r.tpm) and absent(r.req)
  r.new_cc = r.conc and absent(r.cc)
  local wait, why = 0, 0
  if r.new_req then
    if r.tpm and tokens > r.tpm then return window, 4 end
    if r.rpm and r.count >= r.rpm then
      local e = redis.call('ZRANGE', r.req, r.count - r.rpm, r.count - r.rpm, 'WITHSCORES')
      wait, why = tonumber(e[2]) + window - now, 1
    end
    if r.tpm and r.sum + tokens > r.tpm then
      local w = tokens_free_at(r, r.tpm - tokens)
      if why == 0 or w > wait then wait, why = w, 2 end
    end
  end
  if why == 0 and r.new_cc and redis.call('ZCARD', r.cc) >= r.conc then
    wait, why = CONCURRENCY_WAIT, 3
  end
  return wait, why
end

local function record(r)
  if r.new_req then
    local ttl_ms = math.ceil(window / 1000) + 1000
    redis.call('ZADD', r.req, now, rid)
    redis.call('PEXPIRE', r.req, ttl_ms)
    if tokens > 0 then
      redis.call('HSET', r.tok, rid, tokens)
      redis.call('INCRBY', r.tsum, tokens)
      redis.call('PEXPIRE', r.tok, ttl_ms)
      redis.call('PEXPIRE', r.tsum, ttl_ms)
    end
    r.count, r.sum = r.count + 1, r.sum + tokens
  end
  if r.new_cc then
    local ttl_ms = math.ceil(lease / 1000) + 1000
    redis.call('ZADD', r.cc, now + lease, rid)
    if redis.call('PTTL', r.cc) < ttl_ms then redis.call('PEXPIRE', r.cc, ttl_ms) end
  end
end

local function reset_us(r, admitted)
  if r.count == 0 then return 0 end
  if admitted and r.new_req then return window end
  local newest = redis.call('ZRANGE', r.req, -1, -1, 'WITHSCORES')
  return tonumber(newest[2]) + window - now
end

if op == 'release' then
  for _, r in ipairs(rules) do
    redis.call('ZREM', r.cc, rid)
    local held = tonumber(redis.call('HGET', r.tok, rid))
    if held and held > tokens then
      redis.call('HSET', r.tok, rid, tokens)
      if redis.call('DECRBY', r.tsum, held - tokens) <= 0 then redis.call('DEL', r.tsum) end
    end
  end
  return {1}
end

local worst, denied, reason = 0, 0, 0
for i, r in ipairs(rules) do
  sweep(r)
  local wait, why = check(r)
  if why ~= 0 and reason ~= 4 and (denied == 0 or why == 4 or wait > worst) then
    worst, denied, reason = wait, i, why
  end
end
local admitted = denied == 0 and op == 'acquire'
if admitted then
  for _, r in ipairs(rules) do record(r) end
end
local out = {denied == 0 and 1 or 0, denied, reason, worst}
for _, r in ipairs(rules) do
  out[#out + 1] = r.count
  out[#out + 1] = r.sum
  out[#out + 1] = reset_us(r, admitted)
end
return out
