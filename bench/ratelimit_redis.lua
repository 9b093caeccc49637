-- Benchmark 6: what the fleet-wide limiter costs per call. Sequential client:call to the fast local nginx (a fixed
-- envelope from `return 200`) with the Redis limiter (one EVALSHA round trip to a redis-server on loopback per
-- call) beside the local limiter and no limiter at all, alternated rounds, medians; and limiter:take alone.
-- The rate is set far above what is reached (1e9 per second), so no row ever waits for a token: the figures are
-- the limiter's own work, not the limit.
-- Usage: lua5.4|luajit bench/ratelimit_redis.lua [rounds] [seconds-per-sample]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")
local redis_server = require("tools.redis_server")
local ratelimit = require("essbasic.ratelimit")

local format = string.format

local ROUNDS = tonumber(arg[1]) or 5
local SECONDS = tonumber(arg[2]) or 0.5
local RATE = 1e9

local params = B.seed_request()

local function call_rate(client)
  local t0 = B.now()
  local n, elapsed = 0
  repeat
    for _ = 1, 32 do
      local resp, err = client:call(B.ACTION, params)
      if not resp then error("call failed: " .. tostring(err)) end
    end
    n = n + 32
    elapsed = B.now() - t0
  until elapsed >= SECONDS
  return 1e6 * elapsed / n -- µs per call
end

local function take_cost(limiter)
  local t0 = B.now()
  local n, elapsed = 0
  repeat
    for _ = 1, 256 do assert(limiter:take(B.ACTION) == 0, "the limiter made a caller wait") end
    n = n + 256
    elapsed = B.now() - t0
  until elapsed >= SECONDS
  return 1e6 * elapsed / n
end

B.header("benchmark 6: the Redis rate limiter's cost per call (sequential client:call, one connection)")
local srv = B.start_servers({ worker_cpu = "0" })
local redis = redis_server.start{}
local ok, err = pcall(function()
  local url = B.url(srv.port)
  local quiet = function() end
  local clients = {
    none = B.client({ endpoint = url, rate_limit = false }),
    ["local"] = B.client({ endpoint = url, rate_limit = { rate = RATE, shared_dict = false } }),
    redis = B.client({ endpoint = url, rate_limit = { rate = RATE, redis = redis.url, jitter = 0, key = "bench",
      logger = quiet } }),
  }
  for _ = 1, 200 do
    for _, c in pairs(clients) do assert(c:call(B.ACTION, params)) end
  end
  local local_lim = ratelimit.new{ rate = RATE }
  local redis_lim = ratelimit.new{ rate = RATE, redis = redis.url, jitter = 0, key = "bench-take", logger = quiet }
  local med = B.alternate(ROUNDS, {
    { "call, no limiter", function() return call_rate(clients.none) end },
    { "call, local limiter", function() return call_rate(clients["local"]) end },
    { "call, Redis limiter", function() return call_rate(clients.redis) end },
    { "take, local", function() return take_cost(local_lim) end },
    { "take, Redis", function() return take_cost(redis_lim) end },
  })
  assert(not require("essbasic.ratelimit.redis").is_down(redis_lim), "Redis went down during the benchmark")
  print(format("-- %d rounds of %.1f s per row, alternated; medians; redis-server and nginx on loopback", ROUNDS,
    SECONDS))
  local base = med["call, local limiter"]
  B.report("client:call, no limiter", med["call, no limiter"], "us/call")
  B.report("client:call, local limiter (baseline)", base, "us/call")
  B.report("client:call, Redis limiter", med["call, Redis limiter"], "us/call",
    format("%.2fx the local limiter's call", med["call, Redis limiter"] / base))
  B.report("limiter:take alone, local", med["take, local"], "us")
  B.report("limiter:take alone, Redis (EVALSHA round trip)", med["take, Redis"], "us",
    format("%.0fx the local take", med["take, Redis"] / med["take, local"]))
end)
redis:close()
srv:stop()
assert(ok, err)
