-- The client-side limit: a token bucket per action (20 requests per second by default, the API's documented
-- default frequency limit), so a batch job waits a little instead of collecting RequestLimitExceeded.
-- A limiter answers take(action [, wait [, app]]) with the seconds to wait before sending (0 when a token is
-- there), or nil when the caller asked not to wait and no token is there. app, when given, separates the limits
-- of several apps in one limiter (the API limits each app and action); without it the limiter's `key` does.
--
-- Three kinds, by where the count lives: this process (Limiter), the workers of one nginx (Shared, in a
-- lua_shared_dict), or a whole fleet (essbasic.ratelimit.redis, with `redis = URL`).

local runtime = require("essbasic.runtime")

local type, setmetatable, error, rawget, tostring, pairs = type, setmetatable, error, rawget, tostring, pairs
local floor, ceil = math.floor, math.ceil

local M = {}

M.DEFAULT_RATE = 20

local Limiter = { __name = "essbasic.ratelimit" }
Limiter.__index = Limiter

M.SHARED_DICT = "essbasic_ratelimit" -- used without being named when nginx has a lua_shared_dict of that name
M.SHARED_LOOKAHEAD = 120             -- how many windows ahead a waiting caller may book (seconds)
-- A booked caller wakes this long after its slot: sleeps are rounded to milliseconds, and one that ended a
-- millisecond early would send in the previous, already full second.
M.SHARED_MARGIN = 0.005

local Shared = { __name = "essbasic.ratelimit.shared" }
Shared.__index = Shared

-- The nginx shared dict to use: opts.shared_dict names one (an error if nginx has none of that name); unset,
-- the dict essbasic_ratelimit is used when it exists; false turns sharing off.
local function shared_dict(opts)
  local ngx = rawget(_G, "ngx")
  local dicts = type(ngx) == "table" and ngx.shared or nil
  local name = opts.shared_dict
  if name == false then return nil end
  if name == nil then
    return dicts and dicts[M.SHARED_DICT] or nil
  end
  if type(name) ~= "string" then error("rate_limit.shared_dict must be a string or false", 4) end
  local dict = dicts and dicts[name]
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
    burst = opts.burst,
    per_action = opts.per_action or {},
    wait = opts.wait ~= false,
    now = opts.now or runtime.now,
    buckets = {},
  }, Limiter)
end

-- opts: rate (per second, per action), burst (bucket size; default = rate), per_action = { Action = rate },
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
    return require("essbasic.ratelimit.redis").new(opts, function(o, own)
      return local_limiter(o, not own and dict or nil)
    end, 4)
  end
  return local_limiter(opts, dict)
end

function Limiter:bucket(action, app)
  local id = app and (tostring(app) .. "\0" .. action) or action
  local b = self.buckets[id]
  if not b then
    local rate = self.per_action[action] or self.rate
    local burst = self.burst or rate
    b = { rate = rate, burst = burst, tokens = self.initial_tokens or burst, at = self.now() }
    self.buckets[id] = b
  end
  return b
end

-- Takes a token for one request. A waiting caller reserves its token now (the count may go below zero), so
-- callers that wait in turn are spaced 1/rate apart instead of all waking at once.
function Limiter:take(action, wait, app)
  if wait == nil then wait = self.wait end
  local b = self:bucket(action, app)
  local now = self.now()
  local tokens = b.tokens + (now - b.at) * b.rate
  if tokens > b.burst then tokens = b.burst end
  b.at = now
  if tokens >= 1 then
    b.tokens = tokens - 1
    return 0
  end
  if not wait then
    b.tokens = tokens
    return nil
  end
  b.tokens = tokens - 1
  return (1 - tokens) / b.rate
end

-- The limit shared by all workers of an nginx, in a lua_shared_dict.
--
-- Why a counter per (action, one-second window) and not a token bucket: a bucket is two values (tokens, time)
-- changed together, which across worker processes needs a lock (resty.lock, a busy loop on the dict). The
-- dict's incr is atomic by itself, so counting takers per window needs no lock at all: whoever gets a count
-- <= rate has a slot. Workers share the wall clock (ngx.now), so the windows line up across processes.
--
-- A caller that finds its window full books a slot in the next window with room (another incr per window
-- tried, bounded by SHARED_LOOKAHEAD) and is told to sleep until that slot: the k-th booking of a future window
-- starts at window + (k-1)/rate, so waiting callers go out 1/rate apart rather than all at the window's start.
-- At most `rate` takers per window, in any number of workers. When the dict cannot count (it is full and
-- cannot evict), the call goes ahead: the limit is a courtesy to the API, not worth stopping traffic for.
function Shared:rate_for(action)
  return self.per_action[action] or self.rate
end

function Shared:take(action, wait, app)
  if wait == nil then wait = self.wait end
  local rate = self:rate_for(action)
  local limit = floor(rate)
  if limit < 1 then limit = 1 end
  local now = self.now()
  local window = floor(now)
  local base = self.prefix .. (app and (tostring(app) .. ":") or "") .. action .. ":"
  local dict = self.dict
  for ahead = 0, M.SHARED_LOOKAHEAD do
    local w = window + ahead
    -- The key lives a little past its window, so nobody books a slot in a window that was already forgotten.
    local count = dict:incr(base .. w, 1, 0, ceil(w + 2 - now))
    if not count then return 0 end
    if count <= limit then
      if ahead == 0 then return 0 end
      return w + (count - 1) / limit - now + M.SHARED_MARGIN
    end
    if ahead == 0 and not wait then
      -- Give the count back: a caller that does not wait takes nothing.
      dict:incr(base .. w, -1)
      return nil
    end
  end
  return M.SHARED_LOOKAHEAD
end

M.Shared = Shared
M.Limiter = Limiter

return M
