-- What to do after a failed attempt. The rule that matters most: an action that creates or changes something is
-- retried only when the request certainly never reached the server, so a contract group is never created twice.
--   RequestLimitExceeded (and sub-codes): the server refused the request unread → retry, any action.
--   network failure before sending (DNS, refused, TLS handshake, connect timeout) → retry, any action.
--   network failure after sending, HTTP 5xx, InternalError → retry read-only actions; for the others the outcome
--   is unknown, unless the caller opted in with unsafe = true.
-- Read-only is data in the schema (api.is_readonly), not a list of names here.

local type, find, min, random = type, string.find, math.min, math.random

local M = {}

M.DEFAULTS = {
  max_attempts = 4,      -- attempts in all, the first included
  base_delay = 0.25,     -- seconds before the first retry; doubled each time
  max_delay = 4,         -- cap of one wait
  unsafe = false,        -- retry creating actions after failures that may have reached the server
}

-- opts.retry may be false (one attempt), or a table overriding DEFAULTS.
function M.policy(opts)
  local p = {}
  for k, v in pairs(M.DEFAULTS) do p[k] = v end
  if opts == false then
    p.max_attempts = 1
  elseif type(opts) == "table" then
    for k, v in pairs(opts) do
      if M.DEFAULTS[k] == nil then error("unknown retry option '" .. tostring(k) .. "'", 3) end
      p[k] = v
    end
  elseif opts ~= nil then
    error("retry must be a table or false", 3)
  end
  return p
end

local function rate_limited(code)
  return code == "RequestLimitExceeded" or find(code, "^RequestLimitExceeded%.") ~= nil
end

local function internal(code)
  return code == "InternalError" or find(code, "^InternalError%.") ~= nil
end

-- Classifies a failure: "refused" (never processed), "unknown" (may have been processed), "unread" (carried out,
-- its answer refused unread: never retried) or "final". Whether a request may have left is err.sent, set by the
-- transport (transport/contract.lua): nothing else here guesses it.
function M.classify(err)
  if err.kind == "service" then
    if rate_limited(err.code) then return "refused" end
    if internal(err.code) then return "unknown" end
    return "final"
  end
  if err.kind == "network" then
    if err.sent == false then return "refused" end
    return err.network == "too_large" and "unread" or "unknown"
  end
  if err.kind == "http" and err.http_status and err.http_status >= 500 then return "unknown" end
  if err.kind == "parse" then return "unknown" end
  return "final"
end

-- Capped exponential backoff with "equal jitter": a random wait in [d/2, d], d = base * 2^(n-1) capped (never less
-- than half the step, so a herd of retries spreads out without any of them coming back at once).
function M.delay(policy, retry_number)
  local d = min(policy.max_delay, policy.base_delay * 2 ^ (retry_number - 1))
  return d / 2 + random() * d / 2
end

-- → "retry" or "stop", and the class of the failure.
function M.decide(policy, err, readonly, attempts)
  local class = M.classify(err)
  if attempts >= policy.max_attempts or class == "final" or class == "unread" then return "stop", class end
  if class == "refused" or readonly or policy.unsafe then return "retry", class end
  return "stop", class
end

return M
