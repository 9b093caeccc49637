-- Benchmark 4: resident size after 1,000 and after 100,000 full calls (validate, encode, sign, send over libcurl,
-- decode) to the fast local nginx. Each reading follows a full garbage collection, so what remains is what the
-- client keeps: a leak in C (curl handles, header lists, buffers, signer state) or in Lua shows up as growth.
-- Usage: lua5.4|luajit bench/memory.lua [calls]   (default 100000)

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")

local format = string.format

local TOTAL = tonumber(arg[1]) or 100000
local FIRST = 1000
local NOISE_KB = 1024 -- allocator and page-granularity noise we accept between the two readings

local params = B.seed_request()

local function reading()
  collectgarbage("collect")
  collectgarbage("collect")
  return B.rss_kb(), collectgarbage("count")
end

B.header(format("benchmark 4: memory over %d calls (fast local server, validate on)", TOTAL))
B.pin_self("0")
local srv = B.start_servers({ worker_cpu = "0" })
local ok, err = pcall(function()
  local client = B.client({ endpoint = B.url(srv.port) })
  local marks, readings = { [FIRST] = true, [10000] = true, [TOTAL] = true }, {}
  local t0 = B.now()
  for i = 1, TOTAL do
    local resp, e = client:call(B.ACTION, params)
    if not resp then error("call " .. i .. " failed: " .. tostring(e)) end
    if marks[i] then
      local rss, heap = reading()
      readings[#readings + 1] = { calls = i, rss = rss, heap = heap }
    end
  end
  local elapsed = B.now() - t0
  for _, r in ipairs(readings) do
    B.report(format("after %d calls: VmRSS", r.calls), r.rss, "KiB", format("Lua heap %.0f KiB", r.heap))
  end
  local first, last = readings[1], readings[#readings]
  local grown = last.rss - first.rss
  B.report(format("ratio VmRSS %d / %d calls", last.calls, first.calls), format("%.4f", last.rss / first.rss), "x",
    format("%+d KiB; %s (noise allowance %d KiB)", grown, grown <= NOISE_KB and "no growth" or "GROWS", NOISE_KB))
  B.report("calls per second during the run", TOTAL / elapsed, "calls/s")
  local info = client.transport.info and client.transport:info()
  if info then B.report("connections opened", info.connects, "", format("for %d requests", info.requests)) end
  client:close()
end)
srv:stop()
if not ok then error(err, 0) end
