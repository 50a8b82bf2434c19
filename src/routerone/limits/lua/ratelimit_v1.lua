-- routerone_ratelimit_v1: Router One's sliding-window-log rate limiter (algorithm: limits/base.py).
--
-- IMPORTANT: bump the version in this file's name, in the name above and in KEY_PREFIX
-- ("ro:rl:v1:", redis.py) whenever the keys, what they hold or what an operation does change, so
-- old and new gateways can share one Redis during a rolling deploy without reading each other's
-- state. (Each gateway runs its own copy of the script, by its SHA: a new way to call it, like the
-- batch below, needs no bump as long as every operation does exactly what it did.)
--
-- KEYS, four per rule, prefix ro:rl:v1:<scope>:
--   req   ZSET   request_id -> admitted_at (microseconds, Redis server clock)
--   tok   HASH   request_id -> tokens still counted for it (lowered by release)
--   tsum  STRING sum of tok
--   cc    ZSET   request_id -> lease expiry (microseconds): the in-flight requests
--
-- One operation: ARGV: op ("acquire" | "peek" | "release"), request_id, tokens (tokens_used for
--   release), window_us, lease_us, then per rule: rpm, tpm, concurrency (-1 = no such limit);
--   KEYS: the four keys of each rule, in the rules' order.
-- Returns, for acquire and peek:
--   {allowed (1|0), denied rule (1-based, 0 = none), reason, wait_us,
--    then per rule: requests, tokens, reset_us}
--   reason: 0 none, 1 rpm, 2 tpm, 3 concurrency, 4 tokens exceed tpm (never satisfiable)
-- and {1} for release.
-- The whole check-and-record runs atomically, so all rules take the request or none does.
--
-- Batch: ARGV: "batch", window_us, lease_us, then two per operation: its request_id, and its
--   other arguments in one string, separated by spaces: op, tokens, then per rule: the index in
--   KEYS of the first of its four keys (consecutive; a scope's keys appear once however many
--   operations use them), rpm, tpm, concurrency. (Fewer arguments cost the client less to send.)
-- Runs the operations in order, each exactly as if it had been sent alone (at one reading of the
--   clock), and returns {text, error...}: text has one line per operation ("\n" between lines),
--   the integers that operation returns alone separated by spaces, or an empty line when it failed;
--   the error replies follow text, in order. A failed operation leaves what it wrote, as it would
--   alone, and the next ones still run.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window, lease          -- microseconds, from ARGV
local rid, tokens            -- the request id and tokens of the operation running
local CHUNK = 500
local CONCURRENCY_WAIT = 1000000

local function limit(v)
  v = tonumber(v)
  if v < 0 then return nil end
  return v
end

-- The rule whose four keys start at KEYS[k], with its limits at args[a], args[a + 1], args[a + 2].
local function rule(k, args, a)
  return {req = KEYS[k], tok = KEYS[k + 1], tsum = KEYS[k + 2], cc = KEYS[k + 3],
          rpm = limit(args[a]), tpm = limit(args[a + 1]), conc = limit(args[a + 2])}
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

local function release(rules)
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

local function decide(op, rules)
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
end

local function run(op, rules)
  if op == 'release' then return release(rules) end
  return decide(op, rules)
end

if ARGV[1] ~= 'batch' then
  rid, tokens = ARGV[2], tonumber(ARGV[3])
  window, lease = tonumber(ARGV[4]), tonumber(ARGV[5])
  local rules = {}
  for i = 1, #KEYS / 4 do rules[i] = rule(4 * i - 3, ARGV, 6 + 3 * (i - 1)) end
  return run(ARGV[1], rules)
end

window, lease = tonumber(ARGV[2]), tonumber(ARGV[3])
local lines, reply = {}, {''}
for a = 4, #ARGV, 2 do
  local args, rules = {}, {}
  for word in string.gmatch(ARGV[a + 1], '%S+') do args[#args + 1] = word end
  rid, tokens = ARGV[a], tonumber(args[2])
  for b = 3, #args, 4 do rules[#rules + 1] = rule(tonumber(args[b]), args, b + 1) end
  local ok, out = pcall(run, args[1], rules)
  if ok then
    for k = 1, #out do out[k] = string.format('%d', out[k]) end
    lines[#lines + 1] = table.concat(out, ' ')
  else          -- the error of redis.call: a table {err = ...} before Redis 7, else a string
    lines[#lines + 1] = ''
    reply[#reply + 1] = type(out) == 'table' and out or redis.error_reply(tostring(out))
  end
end
reply[1] = table.concat(lines, '\n')
return reply
