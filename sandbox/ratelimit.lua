-- The sandbox's request limit per app and action ("默认接口请求频率限制：20次/秒" on each action's page), counted
-- as a sliding window: a request at time t is refused when `limit` requests were already accepted in the
-- half-open second (t - 1, t]. Refused requests do not count. So no one-second window, wherever it starts, ever
-- holds more than `limit` accepted requests — the same rule essbasic's client limiter keeps, so a client that
-- paces itself to N per second is never refused, and a burst past N always is.
-- Pure Lua (times come from the caller), so spec/sandbox_ratelimit_spec.lua checks it directly as well.

local M = {}
M.__index = M

function M.new()
  return setmetatable({ accepted = {} }, M) -- key → { times of accepted requests, oldest first; head index }
end

-- Accepts (true) or refuses (false) a request of `key` at time `now` (seconds, fractional) under `limit`.
function M:take(key, limit, now)
  local q = self.accepted[key]
  if not q then
    q = { head = 1, tail = 0 }
    self.accepted[key] = q
  end
  while q.head <= q.tail and q[q.head] <= now - 1 do -- left the window (t - 1, t]
    q[q.head] = nil
    q.head = q.head + 1
  end
  if q.tail - q.head + 1 >= limit then return false end
  q.tail = q.tail + 1
  q[q.tail] = now
  return true
end

return M
