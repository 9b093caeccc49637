-- One process of a fleet, for spec/ratelimit_redis_spec.lua (run as a script, not required):
--   $ESSBASIC_LUA spec/helpers/fleet_worker.lua '<json>'
-- json: { endpoint, secret_id, secret_key, agent, calls, start_at (wall-clock seconds), rate_limit (the client's
-- option, or absent for the default per-process limiter), retry_interval (optional) }.
-- Waits for start_at, sends `calls` read-only calls one after another, and prints one JSON line: elapsed (from
-- start_at), codes (final outcome of each call: "ok" or an error code), attempts (all attempts), slowest (the
-- longest call, s). The Redis limiter's outage messages go to stderr.
local essbasic = require("essbasic")
local core = require("essbasic.core")
local json = require("essbasic.json")

local cfg = assert(json.decode(assert(arg[1], "usage: fleet_worker.lua '<json>'")))
if cfg.retry_interval then require("essbasic.ratelimit.redis").RETRY_INTERVAL = cfg.retry_interval end

local client = essbasic.new{ secret_id = cfg.secret_id, secret_key = cfg.secret_key, endpoint = cfg.endpoint,
  file_endpoint = cfg.endpoint, rate_limit = cfg.rate_limit, timeout = 10 }

while core.time() < cfg.start_at do core.sleep(0.002) end
local t0 = core.monotonic()
local codes, attempts, slowest = {}, 0, 0
for i = 1, cfg.calls do
  local started = core.monotonic()
  local resp, err, meta = client:DescribeFlowDetailInfo{ Agent = cfg.agent, FlowGroupId = "fleet-" .. i }
  local took = core.monotonic() - started
  if took > slowest then slowest = took end
  -- The sandbox knows no such group: ResourceNotFound.FlowGroup is the API's answer, a completed call.
  local code = resp and "ok" or err.code
  if code == "ResourceNotFound.FlowGroup" then code = "ok" end
  codes[code] = (codes[code] or 0) + 1
  attempts = attempts + ((resp and meta or err).attempts or 1)
end
io.write(json.encode{ elapsed = core.monotonic() - t0, codes = codes, attempts = attempts, slowest = slowest },
  "\n")
