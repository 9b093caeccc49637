-- What the fleet specs (spec/ratelimit_redis_spec.lua, spec/ratelimit_redis_nginx_spec.lua) add up from their
-- processes' or gateways' results ({ codes = { ok = n, Code = n }, attempts, elapsed [, slowest] } each):
-- { calls, ok, failed = { Code = n }, attempts, elapsed (the longest), slowest (the slowest call, or 0) }.
local M = {}

function M.summary(results)
  local s = { calls = 0, ok = 0, attempts = 0, elapsed = 0, slowest = 0, failed = {} }
  for _, r in ipairs(results) do
    for code, n in pairs(r.codes) do
      s.calls = s.calls + n
      if code == "ok" then s.ok = s.ok + n else s.failed[code] = (s.failed[code] or 0) + n end
    end
    s.attempts = s.attempts + r.attempts
    if r.elapsed > s.elapsed then s.elapsed = r.elapsed end
    if (r.slowest or 0) > s.slowest then s.slowest = r.slowest end
  end
  return s
end

return M
