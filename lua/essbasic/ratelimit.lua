-- The client-side limit: a token bucket per action (20 requests per second by default, the API's documented
-- default frequency limit), so a batch job waits a little instead of collecting RequestLimitExceeded.
-- A limiter answers take(action) with the seconds to wait before sending (0 when a token is there), or nil when
-- the caller asked not to wait and no token is there.

local runtime = require("essbasic.runtime")

local type, setmetatable, error = type, setmetatable, error

local M = {}

M.DEFAULT_RATE = 20

local Limiter = { __name = "essbasic.ratelimit" }
Limiter.__index = Limiter

-- opts: rate (per second, per action), burst (bucket size; default = rate), per_action = { Action = rate },
-- wait (default true: wait for a token; false: fail fast), now (a clock, for tests).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("rate_limit must be a table or false", 3) end
  local rate = opts.rate or M.DEFAULT_RATE
  if type(rate) ~= "number" or rate <= 0 then error("rate_limit.rate must be a positive number", 3) end
  return setmetatable({
    rate = rate,
    burst = opts.burst,
    per_action = opts.per_action or {},
    wait = opts.wait ~= false,
    now = opts.now or runtime.now,
    buckets = {},
  }, Limiter)
end

function Limiter:bucket(action)
  local b = self.buckets[action]
  if not b then
    local rate = self.per_action[action] or self.rate
    local burst = self.burst or rate
    b = { rate = rate, burst = burst, tokens = burst, at = self.now() }
    self.buckets[action] = b
  end
  return b
end

-- Takes a token for one request. A waiting caller reserves its token now (the count may go below zero), so
-- callers that wait in turn are spaced 1/rate apart instead of all waking at once.
function Limiter:take(action, wait)
  if wait == nil then wait = self.wait end
  local b = self:bucket(action)
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

return M
