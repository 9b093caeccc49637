-- The limit of a whole fleet: every process and every nginx that names the same Redis shares one count per app and
-- action. essbasic.new{ rate_limit = { redis = "redis://[:password@]host:port/db" } } (or a table: host, port, db,
-- username, password, prefix, timeout).
--
-- One token is one server-side script (EVALSHA, EVAL when Redis does not know it yet), atomic in Redis, timed by
-- Redis's own clock (TIME), so the hosts' clocks do not matter. The algorithm is GCRA (the generic cell rate
-- algorithm, a token bucket kept as one number): the key holds the "theoretical arrival time" of the next token;
-- a token is free when that time has come, a waiting caller books the next one and the time moves on by 1/rate.
-- Why GCRA and not a sliding window:
--   * with no burst (the default here, burst = 1) requests are spaced at least 1/rate apart (a little more: jitter
--     below), so any one-second window, aligned or not, holds at most `rate` of them: the API's limit holds for
--     the fleet whatever the alignment of the API's own windows;
--   * one small string per (app, action) and O(1) work, where a sliding log keeps `rate` timestamps in a sorted
--     set and prunes it on every call;
--   * a waiting caller's booking is the same step (the time moves on), so callers in different processes that
--     wait are handed distinct slots 1/rate apart, as the local bucket does within one process;
--   * evenly spaced requests arrive evenly: a request that is late by a few milliseconds on the network moves
--     into the next second only if it was a few milliseconds from its end.
--
-- Keys: <prefix><key or app>:<action>, prefix "essbasic:rl:" by default, key "default". The API counts per app
-- (Agent.AppId); the limiter does not see the request, so set `key` to the AppId of the client's app, or pass the
-- app as take's third argument when one client serves several apps. Beside them, <prefix><key>:members: the
-- processes that took a token in the last MEMBER_WINDOW seconds (each says so at most once per HEARTBEAT), which
-- is how a process knows the size of its fleet when Redis goes away.
--
-- When Redis does not answer (refused, timed out after `timeout`, 0.1 s by default, or an error), the call is
-- never held up or failed by it: this process falls back to a local limiter, logs once, and tries Redis again at
-- most once every RETRY_INTERVAL seconds; the first answer ends the outage (logged once too). What the local
-- limiter allows is the `outage` option:
--   "closed" (default; fail-closed: the fleet stays within the limit): each process at rate / fleet, evenly
--     spaced, where fleet is the number of processes (nginx workers) Redis last counted for this key, or the
--     `fleet` option, a fixed number. No call fails for it; a process whose peers are idle goes slower than it
--     could. A process that never reached Redis knows no fleet and takes the full rate (unless `fleet` is given).
--   "open" (fail-open): the limiter the client has without Redis (this process's bucket, or the nginx's shared
--     dict): calls keep their pace, the fleet may go over the API's limit for the outage, and refused calls are
--     retried by the retry policy (a busy fleet can exhaust it).

local redis = require("essbasic.redis")
local runtime = require("essbasic.runtime")
local core = require("essbasic.core")

local type, error, tostring, tonumber, pairs, pcall, setmetatable = type, error, tostring, tonumber, pairs,
  pcall, setmetatable
local format, floor = string.format, math.floor

local M = {}

M.DEFAULT_PREFIX = "essbasic:rl:"
M.DEFAULT_KEY = "default"
M.RETRY_INTERVAL = 1 -- seconds between two tries of a Redis that did not answer
M.HEARTBEAT = 1      -- seconds between two "I am here" of one process in the members set
M.MEMBER_WINDOW = 30 -- seconds a process counts as a member of the fleet after its last heartbeat
-- Tokens are spaced (1 + jitter) / rate apart, not 1 / rate: requests that reach the API up to `jitter` seconds
-- later than their slots (the network, scheduling, a busy event loop), and later by different amounts, still
-- leave every one-second window of the API with at most `rate` of them: a window [t, t + 1) then holds only
-- requests booked in [t - jitter, t + 1), at most `rate` slots. The default is essbasic.ratelimit.JITTER (5% of
-- the pace, the local limiters' margin too); 0 spaces by 1 / rate exactly.
-- Added to every wait: nginx rounds a sleep down to whole milliseconds, which would send a millisecond early.
M.SLEEP_MARGIN = 0.001

-- KEYS[1]: the limit's key; KEYS[2]: the members set. ARGV: interval (µs between two tokens), tolerance (µs:
-- (burst - 1) × interval), wait ("1": book the next slot; "0": a free token now or nothing), member ("" or this
-- process's id: a heartbeat), member window (µs), not before (µs from now: this process's local bookings after
-- an outage, which the next slot must follow).
-- → { µs to wait before sending (0: now) or -1 for none, members counted (0 when no heartbeat) }.
-- Numbers in Redis's Lua are doubles: µs since 1970 (~1.7e15) are exact; they are stored with %.0f, since
-- tostring would write 1.7e+15.
M.SCRIPT = redis.script([[
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local members = 0
if ARGV[4] ~= '' then
  local window = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], string.format('%.0f', now), ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now - window))
  redis.call('PEXPIRE', KEYS[2], math.floor(window / 1000))
  members = redis.call('ZCARD', KEYS[2])
end
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local not_before = now + tonumber(ARGV[6])
if tat < not_before then tat = not_before end
local delay = tat - tolerance - now
if delay > 0 and ARGV[3] ~= '1' then return { -1, members } end
if delay < 0 then delay = 0 end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
return { delay, members }
]])

-- The outage state of each server, in this process (one nginx worker): { since, retry_at }.
local outages = {}
-- This process's name in the members sets, made on first use (so each nginx worker, forked after the module may
-- have been loaded, has its own).
local member_id

-- The options that are the Redis limiter's only (the rest go to the local fallback as well).
local REDIS_ONLY = { redis = true, outage = true, fleet = true, logger = true, jitter = true }

local Redis = { __name = "essbasic.ratelimit.redis" }
Redis.__index = Redis

local default_logger = runtime.logger -- a client passes its own (essbasic.client)

-- opts: the checked rate_limit table; make_local(opts, own) builds a local limiter (used through its take, hold
-- and horizon only); level: of the user's call; defaults: { rate, jitter } of essbasic.ratelimit (passed, not
-- required: the two modules do not load each other).
function M.new(opts, make_local, level, defaults)
  local cfg = redis.parse(opts.redis, "rate_limit.redis", { prefix = M.DEFAULT_PREFIX }, level)
  local conn = redis.connect(cfg, "rate_limit.redis", level)
  local outage = opts.outage or "closed"
  if outage ~= "open" and outage ~= "closed" then
    error("rate_limit.outage must be \"open\" or \"closed\", got '" .. tostring(outage) .. "'", level)
  end
  if opts.fleet ~= nil then
    if outage ~= "closed" then error("rate_limit.fleet applies only with outage = \"closed\"", level) end
    if opts.fleet < 1 or opts.fleet % 1 ~= 0 then error("rate_limit.fleet must be a whole number >= 1", level) end
  end
  -- The local limiter's options: the same minus what is Redis's.
  local local_opts = {}
  for k, v in pairs(opts) do
    if not REDIS_ONLY[k] then local_opts[k] = v end
  end
  if opts.jitter ~= nil and (opts.jitter < 0 or opts.jitter >= 1) then
    error("rate_limit.jitter must be a number of seconds in [0, 1)", level)
  end
  local key = opts.key or M.DEFAULT_KEY
  return setmetatable({
    conn = conn,
    cfg = cfg,
    base = cfg.prefix .. key .. ":",
    members_key = cfg.prefix .. key .. ":members",
    prefix = cfg.prefix,
    rate = opts.rate or defaults.rate,
    per_action = opts.per_action or {},
    burst = opts.burst or 1,
    jitter = opts.jitter or defaults.jitter,
    wait = opts.wait ~= false,
    outage = outage,
    fixed_fleet = opts.fleet,
    fleet_seen = nil,  -- members Redis counted at the last heartbeat
    next_heartbeat = 0,
    logger = opts.logger or default_logger,
    local_opts = local_opts,
    make_local = make_local,
    fallbacks = {},    -- local limiters by share (1 = the full rate)
    booked = {},       -- per action (and app): { the last slot booked in Redis (interval clock), action, app }
    handed = nil,      -- the local limiter of the current or last outage, until its bookings are gone
    handed_for = nil,  -- the outage it was handed for
    handed_until = nil,
    args = {},         -- per action: { interval, tolerance } as strings, made once
  }, Redis)
end

function Redis:rate_for(action)
  return self.per_action[action] or self.rate
end

-- How many shares the rate is cut into while Redis is away.
function Redis:share()
  if self.outage == "open" then return 1 end
  return self.fixed_fleet or self.fleet_seen or 1
end

-- The local limiter for the current share. Shared by n: this process's own bucket (the members Redis counted are
-- processes, nginx workers included, so no nginx-wide dict), rates divided by n, no burst, starting empty: the
-- fleet's n evenly spaced streams add up to the limit, and the first local token comes n / rate after Redis went
-- away, as the next Redis token would have. Not shared (open, or a fleet of one): the limiter the client would
-- have without Redis (the nginx's dict, when there is one). Kept per share, so its bucket lives on across probes.
function Redis:fallback()
  local n = self:share()
  local lim = self.fallbacks[n]
  if lim then return lim end
  local o = {}
  for k, v in pairs(self.local_opts) do o[k] = v end
  if n > 1 then
    o.rate = self.rate / n
    local per = {}
    for action, r in pairs(self.per_action) do per[action] = r / n end
    o.per_action = per
    o.burst = 1
    o.start_empty = true
    lim = self.make_local(o, true)
  else
    lim = self.make_local(o)
  end
  self.fallbacks[n] = lim
  return lim
end

-- The hand-over between Redis and the local bucket, so that the fleet's stream stays spaced across an outage:
-- going down, the bucket's first token comes after the last slot this process booked in Redis (callers may still
-- be sleeping towards it); coming back, Redis's next slot for this process comes after its last local booking.
-- Only for this process's own bucket (outage = "closed" with a fleet): the nginx-wide dict keeps its windows.
local function hand_to_local(self, lim)
  self.handed, self.handed_until = lim, nil
  local now = runtime.interval_clock()
  for bid, booked in pairs(self.booked) do
    local left = booked[1] - now
    if left > 0 and self:share() > 1 then
      -- the local clock's time of that slot, and the next token one interval after it
      local action = booked[2]
      lim:hold(action, booked[3], lim.now() + left + (1 + self.jitter) / (self:rate_for(action) / self:share()))
    end
    self.booked[bid] = nil
  end
end

-- A token from the local limiter, in an outage (state); the first of this limiter in that outage hands over.
local function take_local(self, state, action, wait, app)
  local lim = self:fallback()
  if self.handed_for ~= state then
    self.handed_for = state
    hand_to_local(self, lim)
  end
  return lim:take(action, wait, app)
end

-- Seconds until the last local booking of this action has gone, after an outage.
local function local_horizon(self, action, app)
  local lim = self.handed
  if not lim then return 0 end
  return lim:horizon(action, app and tostring(app) or nil)
end

local function action_args(self, action)
  local a = self.args[action]
  if not a then
    local interval = floor(1e6 * (1 + self.jitter) / self:rate_for(action) + 0.5)
    a = { format("%.0f", interval), format("%.0f", (self.burst - 1) * interval) }
    self.args[action] = a
  end
  return a
end

-- The state is read again here, not passed: light threads of one nginx worker that were all waiting on Redis
-- when it went away find it down one after another, and only the first logs.
local function went_down(self, err, now)
  local state = outages[self.cfg.id]
  if state then
    state.retry_at = now + M.RETRY_INTERVAL
    return
  end
  outages[self.cfg.id] = { since = now, retry_at = now + M.RETRY_INTERVAL }
  local how
  local n = self:share()
  if self.outage == "open" then
    how = "outage = open: this process at the full rate"
  elseif n > 1 then
    how = "outage = closed: this process at 1/" .. n .. " of the rate, for a fleet of " .. n
      .. (self.fixed_fleet and "" or " seen by Redis")
  else
    how = "outage = closed: this process at the full rate, the only one " .. (self.fixed_fleet and "configured"
      or (self.fleet_seen and "seen by Redis" or "known: Redis never answered"))
  end
  self.logger("warn", "essbasic rate limit: " .. tostring(err) .. "; limiting locally (" .. how
    .. ") until Redis answers again")
end

-- Takes a token for one request: seconds to wait (0 = now), or nil when wait is false and none is free.
function Redis:take(action, wait, app)
  if wait == nil then wait = self.wait end
  local id = self.cfg.id
  local state = outages[id]
  local now = runtime.interval_clock()
  if state then
    if now < state.retry_at then return take_local(self, state, action, wait, app) end
    state.retry_at = now + M.RETRY_INTERVAL -- one probe at a time (light threads in nginx)
  end
  local a = action_args(self, action)
  local heartbeat = ""
  if now >= self.next_heartbeat then
    member_id = member_id or core.hex(core.random_bytes(8))
    heartbeat = member_id
    self.next_heartbeat = now + M.HEARTBEAT
  end
  local key, members = self.base .. action, self.members_key
  if app then
    app = tostring(app)
    key, members = self.prefix .. app .. ":" .. action, self.prefix .. app .. ":members"
  end
  local not_before = 0
  if self.handed then
    -- after the last local booking, by one interval
    not_before = local_horizon(self, action, app)
    if not_before > 0 then not_before = not_before + tonumber(a[1]) / 1e6 end
    if self.handed_until and now >= self.handed_until then self.handed, self.handed_until = nil, nil end
  end
  -- %.0f, not %d: Lua 5.4 refuses %d for a float with a fraction. pcall: whatever the client library does, a
  -- call is never failed by its limiter.
  local ran, res, err = pcall(self.conn.run, self.conn, M.SCRIPT, { key, members }, { a[1], a[2],
    wait and "1" or "0", heartbeat, format("%.0f", M.MEMBER_WINDOW * 1e6), format("%.0f", not_before * 1e6) })
  if not ran then res, err = nil, "redis " .. id .. ": " .. tostring(res) end
  if type(res) ~= "table" or type(res[1]) ~= "number" then
    if heartbeat ~= "" then self.next_heartbeat = 0 end
    went_down(self, err or ("redis " .. id .. ": unexpected answer " .. tostring(res)), runtime.interval_clock())
    return take_local(self, outages[id], action, wait, app)
  end
  if res[2] and res[2] > 0 then self.fleet_seen = res[2] end
  state = outages[id]
  if state then
    outages[id] = nil
    -- at the outage warning's level: a log that shows the outage shows its end
    self.logger("warn", format("essbasic rate limit: Redis %s answers again after %.1f s; the limit is shared "
      .. "again", id, runtime.interval_clock() - state.since))
  end
  if self.handed and not self.handed_until then
    -- Back from an outage: every local booking is gone by then, whatever the action.
    local longest = self.handed:horizon()
    self.handed_until = now + longest
  end
  local delay = res[1]
  if delay < 0 then return nil end
  local bid = app and (app .. "\0" .. action) or action
  local booked = self.booked[bid]
  if not booked then
    booked = { 0, action, app }
    self.booked[bid] = booked
  end
  booked[1] = now + delay / 1e6
  if delay == 0 then return 0 end
  return delay / 1e6 + M.SLEEP_MARGIN
end

function Redis:close()
  self.conn:close()
end

-- For tests and monitoring: whether this process sees the limiter's server as down.
function M.is_down(limiter)
  return outages[limiter.cfg.id] ~= nil
end

M.Redis = Redis

return M
