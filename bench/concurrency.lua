-- Benchmark 3: 200 calls at concurrency 20 against a local nginx that answers after 100 ms (ngx.sleep): the
-- batch should take about 200 / 20 x 0.1 s = 1 s, not the 20 s of 200 sequential calls.
-- Usage: lua5.4|luajit bench/concurrency.lua [rounds]
-- The client's rate limit is OFF here (rate_limit = false): its default of 20 calls per second per action would
-- make 200 calls of one action take about 10 s whatever the concurrency, which is the limiter's job, not this test's.

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")

local core = require("essbasic.core")

local format = string.format

local ROUNDS = tonumber(arg[1]) or 3
local CALLS, CONCURRENCY, DELAY = 200, 20, 0.1

local params = B.seed_request()

-- client:call_many, counting answers through on_done (the progress hook a batch script would print from).
local function with_call_many(client)
  local requests = {}
  for i = 1, CALLS do requests[i] = { B.ACTION, params } end
  local finished = 0
  local t0 = B.now()
  local results = client:call_many(requests, { concurrency = CONCURRENCY, on_done = function(_, resp)
    if resp then finished = finished + 1 end
  end })
  local elapsed = B.now() - t0
  for i = 1, CALLS do
    local r = results[i]
    if not (r and r[1] and r[1].RequestId) then error(format("call %d failed: %s", i, tostring(r and r[2]))) end
  end
  assert(finished == CALLS, "on_done saw " .. finished .. " successes")
  return elapsed
end

-- The floor under call_many: the same signed requests through core.http_multi directly, 20 in flight.
local function with_raw_multi(client)
  local reqs = {}
  for i = 1, CALLS do reqs[i] = assert(client:prepare(B.ACTION, params)) end
  local multi = core.http_multi({ timeout = 10 })
  local t0 = B.now()
  local next_i, done = 1, 0
  while done < CALLS do
    while next_i <= CALLS and multi:pending() < CONCURRENCY do
      local r = reqs[next_i]
      multi:add(next_i, r.method, r.url, r.headers, r.body)
      next_i = next_i + 1
    end
    for _, res in ipairs(multi:poll(1)) do
      if res.status ~= 200 then
        error("raw multi call " .. tostring(res.id) .. " failed: " .. tostring(res.err_message))
      end
      done = done + 1
    end
  end
  local elapsed = B.now() - t0
  multi:close()
  return elapsed
end

B.header("benchmark 3: concurrency (server answers after 100 ms; client rate limit off)")
local srv = B.start_servers({ delay = DELAY })
local ok, err = pcall(function()
  local client = B.client({ endpoint = B.url(srv.ports[2]) })
  assert(client.call_many, "client:call_many is missing")
  local med = B.alternate(ROUNDS, {
    { "call_many", function() return with_call_many(client) end },
    { "raw core.http_multi", function() return with_raw_multi(client) end },
  })
  local ideal = CALLS / CONCURRENCY * DELAY
  print(format("-- %d calls, concurrency %d, server delay %.1f s; medians of %d rounds", CALLS, CONCURRENCY, DELAY,
    ROUNDS))
  B.report("client:call_many (on_done counts progress)", med["call_many"], "s", format("%.2fx the ideal",
    med["call_many"] / ideal))
  B.report("floor: core.http_multi with pre-signed requests", med["raw core.http_multi"], "s")
  B.report("ideal (200 / 20 x 0.1 s)", ideal, "s")
  B.report("sequential estimate (200 x 0.1 s)", CALLS * DELAY, "s")
  client:close()
end)
srv:stop()
if not ok then error(err, 0) end
