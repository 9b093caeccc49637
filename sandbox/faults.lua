-- Faults on demand, so a platform can test its own handling: per action (or "*" for every action), from the
-- config file's `faults` table or set at run time through /sandbox/faults. One fault spec:
--
--   latency     = seconds to wait before the request is handled (ngx.sleep: other requests go on)
--   error       = an error code to answer instead of doing the work ("InternalError", "RequestLimitExceeded",
--                 any code); message = its Message (a default names the fault)
--   lose_answer = true: do the work (state saved, callbacks queued), then close the connection without an answer
--   slow_body   = seconds over which the answer's body trickles out (10 pieces, flushed one by one)
--   times       = how many matching requests the fault applies to, then it is gone (default: every request)
--   probability = 0..1, the share of matching requests it applies to (default 1)
--
-- The checks are plain Lua (config.lua uses them when it resolves the config file); take() runs in nginx.

local type, pairs, tostring, floor = type, pairs, tostring, math.floor

local M = {}

local KEYS = { latency = "number", error = "string", message = "string", lose_answer = "boolean",
  slow_body = "number", times = "number", probability = "number" }

-- nil when the spec is well formed, else what is wrong with it.
function M.check_spec(spec, name)
  local where = "faults." .. tostring(name)
  if type(spec) ~= "table" then return where .. " must be a table" end
  for k, v in pairs(spec) do
    local want = KEYS[k]
    if not want then return where .. ": unknown key " .. tostring(k) .. " (latency, error, message, lose_answer, "
      .. "slow_body, times, probability)" end
    if type(v) ~= want then return where .. "." .. k .. " must be a " .. want end
  end
  if spec.latency and (spec.latency < 0 or spec.latency > 300) then return where .. ".latency must be 0 to 300 s" end
  if spec.slow_body and (spec.slow_body < 0 or spec.slow_body > 300) then
    return where .. ".slow_body must be 0 to 300 s"
  end
  if spec.error and not spec.error:match("^%u[%w]*[%.%w]*$") then
    return where .. ".error must be an error code such as InternalError or FailedOperation.Xxx"
  end
  if spec.times and (spec.times < 1 or spec.times ~= floor(spec.times)) then
    return where .. ".times must be a whole number of at least 1"
  end
  if spec.probability and (spec.probability < 0 or spec.probability > 1) then
    return where .. ".probability must be 0 to 1"
  end
  if spec.error and spec.lose_answer then return where .. ": error and lose_answer exclude each other" end
  return nil
end

-- nil when every entry of the table is well formed, else the first problem.
function M.check(faults)
  if type(faults) ~= "table" then return "faults must be a table of action name → fault" end
  for name, spec in pairs(faults) do
    if type(name) ~= "string" or not (name == "*" or name:match("^%u%w*$")) then
      return "faults: " .. tostring(name) .. " is not an action name (or \"*\")"
    end
    local why = M.check_spec(spec, name)
    if why then return why end
  end
  return nil
end

local active = {}
M.counts = { latency = 0, error = 0, lose_answer = 0, slow_body = 0 }

local function copy(spec)
  local c = {}
  for k, v in pairs(spec) do c[k] = v end
  return c
end

-- Replaces every fault (the config's at start, or a control request's).
function M.set_all(faults)
  active = {}
  for name, spec in pairs(faults or {}) do active[name] = copy(spec) end
end

function M.set(name, spec)
  active[name] = spec and copy(spec) or nil
end

function M.list()
  local out = {}
  for name, spec in pairs(active) do out[name] = copy(spec) end
  return out
end

-- The fault for this request of `action`, or nil; spends one of its `times`.
function M.take(action)
  local name = active[action] and action or (active["*"] and "*")
  if not name then return nil end
  local spec = active[name]
  if spec.probability and math.random() >= spec.probability then return nil end
  if spec.times then
    spec.times = spec.times - 1
    if spec.times <= 0 then active[name] = nil end
  end
  for kind in pairs(M.counts) do
    if spec[kind] then M.counts[kind] = M.counts[kind] + 1 end
  end
  return spec
end

return M
