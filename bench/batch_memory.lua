-- Benchmark: `essbasic batch` at 1,000, 10,000 and 100,000 rows (the official 3-contract example per row, JSON
-- Lines, validation on) against the fast local nginx answering a fixed success envelope (so the client, not the
-- API's limit, is measured; --rate 0). Prints each run's peak resident size (the child's VmHWM, from GNU time's
-- %M) and rows per second, and the ratio of each peak to the 1,000-row one: flat memory means ratios near 1.
-- A rerun of the finished 100,000-row journal (nothing left to send) is timed too.
-- Usage: lua5.4|luajit bench/batch_memory.lua [largest]   (default 100000; BATCH_CONCURRENCY, default 20)

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")
local json = require("essbasic.json")

local format = string.format

local LARGEST = tonumber(arg[1]) or 100000
local CONCURRENCY = tonumber(os.getenv("BATCH_CONCURRENCY") or "") or 20
local SIZES = {}
for _, n in ipairs({ 1000, 10000, 100000, 1000000 }) do
  if n <= LARGEST then SIZES[#SIZES + 1] = n end
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end

local dir = sh("mktemp -d /tmp/essbasic-bench-batch.XXXXXX"):gsub("%s+$", "")
assert(dir:match("^/tmp/essbasic%-bench%-batch%."), "mktemp failed")

-- n rows, each the seed request with its own FlowGroupName.
local function write_input(path, n)
  local req = B.seed_request()
  local f = assert(io.open(path, "wb"))
  for i = 1, n do
    req.FlowGroupName = "bench-" .. i
    f:write(assert(json.encode(req)), "\n")
  end
  f:close()
end

-- One batch run in a child interpreter: → seconds, peak RSS in KiB, exit status, the summary line.
local function run_batch(input, journal, port)
  local interp = rawget(_G, "jit") and "luajit" or "lua5.4"
  local cmd = format("cd %s && env TENCENTCLOUD_SECRET_ID=%s TENCENTCLOUD_SECRET_KEY=%s ESSBASIC_ENDPOINT=%s "
    .. "ESSBASIC_FILE_ENDPOINT=%s /usr/bin/time -f 'peak %%M' %s bin/essbasic batch --action %s --input %s "
    .. "--journal %s --concurrency %d --rate 0 --quiet 2>%s/time.txt; echo status $?", B.root, B.SECRET_ID,
    B.SECRET_KEY, B.url(port), B.url(port), interp, B.ACTION, input, journal, CONCURRENCY, dir)
  local t0 = B.now()
  local out = sh(cmd)
  local elapsed = B.now() - t0
  local timing = B.read_file(dir .. "/time.txt") or ""
  return elapsed, tonumber(timing:match("peak (%d+)")), tonumber(out:match("status (%d+)")),
    out:match("(%d+ done[^\n]*)")
end

B.header(format("batch: peak RSS and rows/s at %s rows (fast local server, concurrency %d, validation on)",
  table.concat(SIZES, "/"), CONCURRENCY))
local srv = B.start_servers({})
local ok, err = pcall(function()
  local base_peak
  for _, n in ipairs(SIZES) do
    local input, journal = format("%s/rows-%d.jsonl", dir, n), format("%s/run-%d.db", dir, n)
    write_input(input, n)
    local elapsed, peak, status, summary = run_batch(input, journal, srv.port)
    if status ~= 0 then error(format("%d rows: exit %s (%s): %s", n, tostring(status), tostring(summary),
      B.read_file(dir .. "/time.txt") or "")) end
    base_peak = base_peak or peak
    B.report(format("batch %d rows: peak RSS", n), peak / 1024, "MB", format("x%.2f of the %d-row run",
      peak / base_peak, SIZES[1]))
    B.report(format("batch %d rows: rows/s", n), n / elapsed, "rows/s", format("%.1f s in all", elapsed))
    if n == SIZES[#SIZES] then
      local again, again_peak, again_status = run_batch(input, journal, srv.port)
      B.report(format("rerun of the finished %d-row journal", n), again, "s",
        format("peak %.1f MB, exit %s", again_peak / 1024, tostring(again_status)))
    end
    os.remove(input)
  end
end)
srv:stop()
os.execute("rm -rf '" .. dir .. "'")
if not ok then error(err, 0) end
