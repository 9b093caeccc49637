-- The client-side limit per action (20 requests per second by default, the API's documented default frequency
-- limit), so a batch job waits a little instead of collecting RequestLimitExceeded.
--
-- One rule for every kind of limiter: requests go out at least (1 + JITTER) / rate seconds apart, so ANY
-- one-second window, aligned or not, holds at most `rate` of them, also when they reach the API up to JITTER / rate
-- seconds late by different amounts. (A token bucket whose burst is the rate lets a window hold twice the rate:
-- a full bucket spent at the end of one second and refilled tokens at the start of the next.) This process
-- (Limiter) and Redis (essbasic.ratelimit.redis) keep it as GCRA, one "theoretical arrival time" per action;
-- the nginx shared dict (Shared) as slots of that length, each claimed by one caller with an atomic incr.
-- A limiter answers take(action [, wait [, app]]) with the seconds to wait before sending (0 when a token is
-- there), or nil when the caller asked not to wait and no token is there. app, when given, separates the limits
-- of several apps in one limiter (the API limits each app and action); without it the limiter's `key` does.
--
-- Three kinds, by where the count lives: this process (Limiter), the workers of one nginx (Shared, in a
-- lua_shared_dict), or a whole fleet (essbasic.ratelimit.redis, with `redis = URL`).

local runtime = require("essbasic.runtime")

local type, setmetatable, error, tostring, pairs = type, setmetatable, error, tostring, pairs
local ceil = math.ceil

local M = {}

M.DEFAULT_RATE = 20
-- The spacing's margin: 5% of the pace, for requests that reach the API later than their slots by different
-- amounts (the network, scheduling, a busy event loop). The Redis limiter's `jitter` option defaults to it.
M.JITTER = 0.05

local Limiter = { __name = "essbasic.ratelimit" }
Limiter.__index = Limiter

M.SHARED_DICT = "essbasic_ratelimit" -- used without being named when nginx has a lua_shared_dict of that name
M.SHARED_LOOKAHEAD = 120             -- how far ahead a waiting caller may book (seconds)
-- A booked caller wakes this long after its slot: sleeps are rounded to milliseconds, and one that ended a
-- millisecond early would send in the previous, already full second.
M.SHARED_MARGIN = 0.005

local Shared = { __name = "essbasic.ratelimit.shared" }
Shared.__index = Shared

-- The nginx shared dict to use: opts.shared_dict names one (an error if nginx has none of that name); unset,
-- the dict essbasic_ratelimit is used when it exists; false turns sharing off.
local function shared_dict(opts)
  local name = opts.shared_dict
  if name == false then return nil end
  if name == nil then return runtime.shared_dict(M.SHARED_DICT) end
  if type(name) ~= "string" then error("rate_limit.shared_dict must be a string or false", 4) end
  local dict = runtime.shared_dict(name)
  if not dict then error("rate_limit.shared_dict: nginx has no lua_shared_dict '" .. name .. "'", 4) end
  return dict
end

-- Every key of a rate_limit table, and its type; anything else is a typo and raises (as new()'s options do).
M.OPTIONS = { rate = "number", burst = "number", per_action = "table", wait = "boolean", now = "function",
  shared_dict = "any", key = "string", redis = "any", outage = "string", fleet = "number", logger = "function",
  jitter = "number" }
-- The keys that mean something only for the Redis limiter.
local REDIS_ONLY = { outage = true, fleet = true, logger = true, jitter = true }

local function check_options(opts)
  for k, v in pairs(opts) do
    local want = M.OPTIONS[k]
    if not want then error("rate_limit: unknown option '" .. tostring(k) .. "'", 4) end
    if want ~= "any" and type(v) ~= want then
      error("rate_limit." .. k .. " must be a " .. want .. ", got " .. type(v), 4)
    end
    if REDIS_ONLY[k] and opts.redis == nil then
      error("rate_limit." .. k .. " applies only with rate_limit.redis", 4)
    end
  end
  local rate = opts.rate
  if rate ~= nil and rate <= 0 then error("rate_limit.rate must be a positive number", 4) end
  if opts.burst ~= nil and opts.burst < 1 then error("rate_limit.burst must be at least 1", 4) end
  for action, r in pairs(opts.per_action or {}) do
    if type(action) ~= "string" or type(r) ~= "number" or r <= 0 then
      error("rate_limit.per_action maps action names to positive numbers", 4)
    end
  end
end

-- The limiter of this process or of one nginx (opts already checked).
local function local_limiter(opts, dict)
  local rate = opts.rate or M.DEFAULT_RATE
  if dict then
    return setmetatable({
      dict = dict,
      prefix = tostring(opts.key or "essbasic") .. ":",
      rate = rate,
      per_action = opts.per_action or {},
      wait = opts.wait ~= false,
      now = opts.now or runtime.time, -- wall clock: the same in every worker
    }, Shared)
  end
  return setmetatable({
    rate = rate,
    burst = opts.burst or 1,
    per_action = opts.per_action or {},
    wait = opts.wait ~= false,
    now = opts.now or runtime.interval_clock,
    start_empty = opts.start_empty, -- (the Redis limiter's fallback) an action's first token after one interval
    tat = {},   -- id → the theoretical arrival time of the next token
    ids = {},   -- id → its action (for the interval)
  }, Limiter)
end

-- opts: rate (per second, per action), burst (requests that may go at once after a pause; default 1: strictly
-- spaced, the only setting that keeps every one-second window within the rate), per_action = { Action = rate },
-- wait (default true: wait for a token; false: fail fast), now (a clock, for tests),
-- shared_dict (nginx: the lua_shared_dict that makes the limit common to all workers, see Shared below),
-- key (a name that separates limits in a shared dict or in Redis, e.g. the AppId; default "essbasic" in a dict,
-- "default" in Redis), redis (a URL or table: the limit of a whole fleet, see essbasic.ratelimit.redis, with
-- outage, fleet, jitter and logger).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("rate_limit must be a table or false", 3) end
  check_options(opts)
  local dict = shared_dict(opts)
  if opts.redis ~= nil then
    -- The Redis limiter's fallback: with the nginx's dict, or (own = true) this process's bucket alone.
    -- The fallback is built here and used through take/hold/horizon only; the Redis module does not load this one.
    return require("essbasic.ratelimit.redis").new(opts, function(o, own)
      return local_limiter(o, not own and dict or nil)
    end, 4, { rate = M.DEFAULT_RATE, jitter = M.JITTER })
  end
  return local_limiter(opts, dict)
end

local function id_of(action, app)
  return app and (tostring(app) .. "\0" .. action) or action
end

function Limiter:interval(action)
  return (1 + M.JITTER) / (self.per_action[action] or self.rate)
end

-- Takes a token for one request (GCRA): free when the theoretical arrival time (tat) is at most
-- (burst - 1) intervals ahead; a waiting caller books the next slot now, so callers that wait in turn are spaced
-- one interval apart instead of all waking at once. → seconds to wait (0: now), or nil (wait = false, none free).
function Limiter:take(action, wait, app)
  if wait == nil then wait = self.wait end
  local id = id_of(action, app)
  local interval = self:interval(action)
  local now = self.now()
  local tat = self.tat[id]
  if tat == nil then
    tat = self.start_empty and (now + interval) or now
    self.ids[id] = action
  end
  if tat < now then tat = now end
  local delay = tat - (self.burst - 1) * interval - now
  if delay < 0 then delay = 0 end
  if delay > 0 and not wait then return nil end
  self.tat[id] = tat + interval
  return delay
end

-- No token of this action before time t (the Redis limiter hands over its last booking).
function Limiter:hold(action, app, t)
  local id = id_of(action, app)
  if (self.tat[id] or -math.huge) < t then
    self.tat[id] = t
    self.ids[id] = action
  end
end

-- Seconds until the last slot booked here has come: of one action, or (action nil) of any.
function Limiter:horizon(action, app)
  local now, longest = self.now(), 0
  for id, tat in pairs(self.tat) do
    if action == nil or id == id_of(action, app) then
      local left = tat - self:interval(self.ids[id]) - now
      if left > longest then longest = left end
    end
  end
  return longest
end

-- The limit shared by all workers of an nginx, in a lua_shared_dict: time cut into slots of one interval
-- ((1 + JITTER) / rate, counted from the epoch on the wall clock that every worker shares); a caller claims the
-- first slot that starts at or after now and that nobody claimed (the dict's incr is atomic, so no lock: whoever
-- counts 1 owns the slot), and goes out at its start. Requests are thus one interval apart in any number of
-- workers, the rule of the other limiters. A free slot is at most one interval away (26 ms on average at 20/s).
-- A caller that does not wait takes the first slot or nothing. When the dict cannot count (it is full and
-- cannot evict), the call goes ahead: the limit is a courtesy to the API, not worth stopping traffic for.
function Shared:rate_for(action)
  return self.per_action[action] or self.rate
end

function Shared:take(action, wait, app)
  if wait == nil then wait = self.wait end
  local interval = (1 + M.JITTER) / self:rate_for(action)
  local now = self.now()
  local base = self.prefix .. (app and (tostring(app) .. ":") or "") .. action .. ":"
  local dict = self.dict
  local first = ceil(now / interval)
  local slot = first
  -- Where the last claim ended: a hint that spares waiting callers a walk over claimed slots (a stale or lost
  -- hint costs only extra incr calls; the claim itself decides).
  local hint = wait and dict:get(base .. "next")
  if type(hint) == "number" and hint > slot then slot = hint end
  local last = first + ceil(M.SHARED_LOOKAHEAD / interval)
  while slot <= last do
    local start = slot * interval
    -- The key lives a little past its slot, so nobody claims a slot that was already forgotten.
    local count = dict:incr(base .. slot, 1, 0, ceil(start - now) + 2)
    if not count then return 0 end
    if count == 1 then
      if wait then dict:set(base .. "next", slot + 1, ceil(start - now) + 2) end
      local delay = start - now
      if delay <= 0 then return 0 end
      return delay + M.SHARED_MARGIN
    end
    if not wait then return nil end
    slot = slot + 1
  end
  return M.SHARED_LOOKAHEAD
end

-- The dict's slots are common to every worker; nothing to hand over.
function Shared.hold() end
function Shared.horizon() return 0 end

M.Shared = Shared
M.Limiter = Limiter

return M
