-- What the benchmarks share: paths, clocks, medians of alternated rounds, the request tables, the local envelope
-- servers, the test client, resident size. Each bench/*.lua runs standalone (`lua5.4 bench/prepare.lua`) or from
-- bench/run; both find the repo from this file's own path.

local src = debug.getinfo(1, "S").source:gsub("^@", "")
local here = src:match("^(.*)/[^/]+$") or "."
local root = here:match("^(.*)/bench$") or (here == "bench" and ".") or (here .. "/..")

local abi = rawget(_G, "jit") and "5.1" or "5.4"
-- spec/ is not on the path: the benchmarks load only the library, tools/ and bench/ (the seed request is read from
-- spec/data as a file).
package.path = table.concat({ root .. "/lua/?.lua", root .. "/lua/?/init.lua", root .. "/?.lua",
  root .. "/bench/?.lua", package.path }, ";")
package.cpath = root .. "/build/" .. abi .. "/?.so;" .. package.cpath

local core = require("essbasic.core")
local json = require("essbasic.json")

local floor, format, sort, concat = math.floor, string.format, table.sort, table.concat
local io_open = io.open

local M = { root = root, abi = abi, now = core.monotonic }

M.ACTION = "ChannelCreateFlowGroupByFiles"
M.SECRET_ID = "AKIDbenchmark0000000000000000000000"
M.SECRET_KEY = "bench-secret-key-not-real-0000000000"
M.TIMESTAMP = 1700000000

-- A valid success envelope, as the API answers a created group.
M.ENVELOPE = '{"Response":{"FlowGroupId":"yDSLWUUckpo0c9hlUuxTNkQqbxdzPnE4","FlowIds":'
  .. '["yDSLWUUckpo0cgu5UuxTNkQ0rCtdxT2J","yDSLWUUckpo0cgsaUuxTNkQU8LyqSXxH","yDSLWUUckpo0cgsjUuxTNkQT7WwH1Vvs"],'
  .. '"RequestId":"s1700000000123456789"}}'

function M.interpreter()
  local jit = rawget(_G, "jit")
  return jit and jit.version or _VERSION
end

function M.read_file(path)
  local f = assert(io_open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function M.write_file(path, text)
  local f = assert(io_open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

function M.median(xs)
  local s = {}
  for i = 1, #xs do s[i] = xs[i] end
  sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Seconds per call of fn over `iters` calls.
function M.per_call(fn, iters)
  local t0 = M.now()
  for _ = 1, iters do fn() end
  return (M.now() - t0) / iters
end

-- How many calls of fn take about `seconds` (at least 1), from a short trial.
function M.iterations_for(fn, seconds)
  local n = 1
  while true do
    local t = M.per_call(fn, n) * n
    if t > 0.02 or n >= 1e7 then
      return math.max(1, floor(n * seconds / math.max(t, 1e-9)))
    end
    n = n * 4
  end
end

-- variants: array of { name, fn } where fn() returns one measurement. Runs `rounds` rounds, each variant once per
-- round in turn (so drift hits them all alike), and returns name → median, name → all samples.
function M.alternate(rounds, variants)
  local samples = {}
  for _, v in ipairs(variants) do samples[v[1]] = {} end
  for _ = 1, rounds do
    for _, v in ipairs(variants) do
      local s = samples[v[1]]
      s[#s + 1] = v[2]()
    end
  end
  local med = {}
  for name, s in pairs(samples) do med[name] = M.median(s) end
  return med, samples
end

-- The official example request (3 contracts), decoded by our own codec (arrays marked).
function M.seed_request()
  return assert(json.decode(M.read_file(root .. "/spec/data/ChannelCreateFlowGroupByFiles.request.json")))
end

-- A group of `contracts` contracts (the API allows 2..50), each with `signers` approvers (1..5): the first one a
-- company seal, the others persons, each with one signature field.
function M.group_request(contracts, signers)
  local infos = {}
  for c = 1, contracts do
    local approvers = {}
    for s = 1, signers do
      local component = {
        ComponentType = s == 1 and "SIGN_SEAL" or "SIGN_SIGNATURE", FileIndex = 0, ComponentPage = 1,
        ComponentPosX = 100 + s * 10, ComponentPosY = 100 + c, ComponentWidth = 100, ComponentHeight = 100,
        ComponentRequired = true,
      }
      if s == 1 then
        component.ComponentValue = "yDR1kUU0zproxUy0fKyKg4XBzdcXcTBg"
        approvers[s] = { ApproverType = "ENTERPRISESERVER", OrganizationName = "示例企业" .. c,
          OrganizationOpenId = "org_" .. c, OpenId = "seal_op_" .. c, SignComponents = { component } }
      else
        approvers[s] = { ApproverType = "PERSON", Name = "签署人" .. s, Mobile = format("132%08d", c * 10 + s),
          SignComponents = { component } }
      end
    end
    infos[c] = {
      FileIds = { format("yDR1nUU06b46rUy0fKyKocx%09d", c) },
      FlowName = "采购合同第" .. c .. "号", FlowType = "采购合同", Deadline = 0,
      FlowDescription = "2023年第" .. c .. "批采购合同", CustomerData = "batch-" .. c,
      Unordered = true, NeedSignReview = false, FlowApprovers = approvers,
    }
  end
  return {
    Agent = { AppId = "394fc83e7a1cc97ba27c3342f425c836", ProxyOrganizationOpenId = "zk_online_org",
      ProxyOperator = { OpenId = "kevin" } },
    FlowGroupName = "批量采购合同", FlowFileInfos = infos,
  }
end

-- A client with fixed test credentials; the rate limit is off unless opts say otherwise (20/s per action would
-- otherwise be what every benchmark measures).
function M.client(opts)
  local essbasic = require("essbasic")
  local o = { secret_id = M.SECRET_ID, secret_key = M.SECRET_KEY, rate_limit = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return essbasic.new(o)
end

-- Resident set size in KiB, from /proc/self/status.
function M.rss_kb()
  local s = M.read_file("/proc/self/status")
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

function M.pid()
  return tonumber(M.read_file("/proc/self/stat"):match("^(%d+)"))
end

-- Pins this process (and the children it starts afterwards) to the CPUs in `list` ("0", "0,1").
function M.pin_self(list)
  return os.execute(format("taskset -a -p -c %s %d >/dev/null", list, M.pid()))
end

-- Local nginx servers answering M.ENVELOPE: port 1 at once (`return 200`, no Lua), port 2 after `delay` seconds
-- (ngx.sleep, so the single worker serves every waiting request at once). opts.worker_cpu pins the worker
-- ("0" or "1"); keep-alive is unlimited so one connection carries every call.
function M.start_servers(opts)
  opts = opts or {}
  local nginx = require("tools.nginx")
  local affinity = ""
  if opts.worker_cpu then
    local mask = opts.worker_cpu == "1" and "10" or "01"
    affinity = "worker_cpu_affinity " .. mask .. ";"
  end
  local body = M.ENVELOPE
  return nginx.start{
    ports = 2,
    main = affinity,
    http = [[
      keepalive_requests 10000000;
      keepalive_timeout 300s;
      server {
        listen 127.0.0.1:%PORT%;
        location / { default_type application/json; return 200 ']] .. body .. [['; }
      }
      server {
        listen 127.0.0.1:%PORT2% backlog=1024;
        location / {
          default_type application/json;
          content_by_lua_block {
            ngx.sleep(]] .. tostring(opts.delay or 0.1) .. [[)
            ngx.print(']] .. body .. [[')
          }
        }
      }
    ]],
  }
end

-- Whether the instruction counts run: valgrind is there and BENCH_NO_CALLGRIND=1 is not set.
function M.callgrind_enabled()
  if os.getenv("BENCH_NO_CALLGRIND") == "1" then return false end
  local found = os.execute("command -v valgrind >/dev/null 2>&1")
  return found == true or found == 0 -- 5.4 answers true, LuaJIT (5.1) the exit status
end

-- Instruction counts by window: a script calls B.mark() between the parts it wants counted, and
-- M.callgrind_windows runs it under callgrind with a dump before every mark (--dump-before on the C function behind
-- core.sleep, which nothing on a measured path calls), so each window's instructions are counted exactly, in one
-- run, with no run-with-zero to subtract. User space of that process only; valgrind runs SHA-256 without the CPU's
-- SHA instructions, so hashing counts far more than it costs natively. A C program marks with its own function.
local core_sleep = core.sleep
function M.mark()
  core_sleep(0)
end

-- Runs each { fn =, count = } of runs in turn, `count` calls of fn each, in a window of its own, after a full
-- collection (so the collector's work in each window is for that window's garbage). Every call must succeed.
function M.run_windows(runs)
  collectgarbage("collect")
  for _, r in ipairs(runs) do
    M.mark()
    local fn = r.fn
    for _ = 1, r.count do assert(fn()) end
  end
  M.mark()
end

-- → the list of the instruction totals of the windows between marks (in order) and what the command printed, or
-- nil and why. marker: the C function that marks (default: the core's l_sleep, i.e. B.mark()).
function M.callgrind_windows(command, marker)
  local file = os.tmpname()
  local p = assert(io.popen(format("valgrind --tool=callgrind --callgrind-out-file=%s --dump-before=%s %s 2>/dev/null",
    file, marker or "l_sleep", command)))
  local printed = p:read("*a")
  p:close()
  -- part 1 runs from the start to the first mark; parts 2.. are the windows; the file without a suffix is the
  -- part from the last mark to the exit
  local windows, part = {}, 2
  while true do
    local f = io_open(file .. "." .. part, "rb")
    if not f then break end
    local text = f:read("*a")
    f:close()
    os.remove(file .. "." .. part)
    windows[#windows + 1] = tonumber(text:match("\ntotals:%s*(%d+)") or text:match("\nsummary:%s*(%d+)"))
    part = part + 1
  end
  os.remove(file .. ".1")
  os.remove(file)
  if #windows == 0 then return nil, "no callgrind windows (is valgrind there?) for: " .. command end
  return windows, printed
end

function M.url(port)
  return "http://127.0.0.1:" .. port
end

-- One result line, easy for people and for grep: "[bench] name: value unit (note)".
function M.report(name, value, unit, note)
  local v = type(value) == "number" and (value >= 100 and format("%.0f", value) or format("%.3g", value))
    or tostring(value)
  print(format("[bench] %-46s %12s %-8s%s", name, v, unit or "", note and ("  " .. note) or ""))
end

function M.header(title)
  print("")
  print("== " .. title .. "  (" .. M.interpreter() .. ")")
end

function M.join(list, sep)
  return concat(list, sep or " ")
end

return M
