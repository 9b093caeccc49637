-- Benchmark 2: sequential calls over one kept-alive connection to a fast local nginx (a fixed valid envelope from
-- `return 200`, no Lua on the server side), Lua client against a plain C libcurl program sending the same bytes
-- (the target's baseline), and against the same program signing every call afresh (the work no TC3 client can
-- skip; its Authorization is checked equal to the client's first).
-- Usage: lua5.4|luajit bench/sequential.lua [rounds] [seconds-per-sample] [pinning...]
--   pinning: "same" = client and nginx worker both on CPU 0 (default, the configuration of the performance notes),
--            "split" = client on CPU 0, worker on CPU 1. Both may be given.
-- The C program is build/bench/c_baseline (make bench builds it from bench/c_baseline.c).
-- In the same run: Tencent Cloud's official Node.js SDK making the same calls, when tools/install-node-sdk has
-- put it into build/node-sdk (else that row is skipped), and the system calls per call of the Lua client and of
-- the C program under `strace -c` (the difference of a short and a long run, so setup does not count).
-- Targets, as ratios within the run: the Lua client (validate on) >= 0.65 of the C program (goal 0.7) and >= 10x
-- the Node.js SDK.

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")

local format = string.format

local ROUNDS = tonumber(arg[1]) or 5
local SECONDS = tonumber(arg[2]) or 1.0
local MODES = {}
for i = 3, #arg do MODES[#MODES + 1] = arg[i] end
if #MODES == 0 then MODES = { "same" } end

local C_BASELINE = B.root .. "/build/bench/c_baseline"
assert(io.open(C_BASELINE, "rb"), "missing " .. C_BASELINE .. " (run make bench, or build bench/c_baseline.c)")

local params = B.seed_request()
-- The call loop of the project's A/B tool (tools/call-ab in the development notes): a smaller creation, three flows
-- of one file and one approver each, where the transport weighs more.
local function small_request()
  local a = { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000" }
  local function flow(n)
    return { FileIds = { "yDwiBUUckpkldrb0UuO1ABjPkOwtPa1t" }, FlowName = "合同" .. n, FlowApprovers = { a } }
  end
  return { Agent = { AppId = "yDwFoUUckpsmiu7v", ProxyOrganizationOpenId = "org", ProxyOperator = { OpenId = "op" } },
    FlowGroupName = "入职签约", FlowFileInfos = { flow(1), flow(2), flow(3) } }
end
local small = small_request()

-- The request file the C program reads: URL, header lines, empty line, body.
local function write_request_file(path, req)
  local lines = { req.url }
  for name, value in pairs(req.headers) do lines[#lines + 1] = name .. ": " .. value end
  B.write_file(path, table.concat(lines, "\n") .. "\n\n" .. req.body)
end

-- The C program's Authorization for a timestamp, which must be the client's (so its signing does the same work).
local function c_authorization(path, ts)
  local p = assert(io.popen(format("%s %s authorization %s %s %d", C_BASELINE, path, B.SECRET_ID, B.SECRET_KEY, ts)))
  local out = p:read("*a")
  p:close()
  return out:match("^Authorization: ([^\n]+)")
end

-- sign: every call signed afresh by the C program (fresh timestamp, body hash, HMAC chain, header list).
local function c_rate(path, sign)
  local p = assert(io.popen(format("%s %s %s%s", C_BASELINE, path, SECONDS,
    sign and format(" sign %s %s", B.SECRET_ID, B.SECRET_KEY) or "")))
  local out = p:read("*a")
  p:close()
  local rate = tonumber(out:match("rate=([%d.]+)"))
  assert(rate, "c_baseline failed: " .. out)
  local connects = tonumber(out:match("connects=(%d+)"))
  assert(connects == 0, "c_baseline opened new connections during the timed calls: " .. out)
  return rate
end

local NODE_SDK = B.root .. "/build/node-sdk"
local HAVE_NODE = io.open(NODE_SDK .. "/node_modules/tencentcloud-sdk-nodejs/package.json", "rb")
if HAVE_NODE then HAVE_NODE:close() end

-- Calls per second of the official Node.js SDK (bench/node/sequential.js) for SECONDS.
local function node_rate(port, request_file)
  local p = assert(io.popen(format("node %s/bench/node/sequential.js %s 127.0.0.1:%d %s %s", B.root, NODE_SDK, port,
    request_file, SECONDS)))
  local out = p:read("*a")
  p:close()
  return assert(tonumber(out), "the Node.js SDK run printed: " .. out)
end

-- System calls of one command under strace -f -c, by name; and what the command printed.
local TRACED = "sendto,sendmsg,write,writev,recvfrom,recvmsg,read,readv,poll,ppoll,epoll_wait,select"
local function strace_counts(cmd)
  local file = os.tmpname()
  local p = assert(io.popen(format("strace -f -c -o %s -e trace=%s %s", file, TRACED, cmd)))
  local out = p:read("*a")
  p:close()
  local counts = {}
  for line in io.lines(file) do
    local t = {}
    for tok in line:gmatch("%S+") do t[#t + 1] = tok end
    if #t >= 5 and tonumber(t[4]) and t[#t] ~= "total" then counts[t[#t]] = tonumber(t[4]) end
  end
  os.remove(file)
  return counts, out
end

local SYSCALL_GROUPS = {
  { "sends", { "sendto", "sendmsg", "write", "writev" } },
  { "reads", { "recvfrom", "recvmsg", "read", "readv" } },
  { "waits", { "poll", "ppoll", "epoll_wait", "select" } },
}

-- Per call: (counts of the long run - counts of the short run) / (calls of the long - calls of the short).
local function per_call(short, long, calls)
  local out, total = {}, 0
  for _, g in ipairs(SYSCALL_GROUPS) do
    local n = 0
    for _, name in ipairs(g[2]) do n = n + (long[name] or 0) - (short[name] or 0) end
    out[g[1]] = n / calls
    total = total + n
  end
  out.total = total / calls
  return out
end

local function report_syscalls(url, path)
  local has_strace = os.execute("command -v strace >/dev/null 2>&1")
  if not has_strace then print("-- system calls: strace is not installed, skipped") return end
  print("-- system calls per call (strace -c; a run of 1,200 calls minus a run of 200)")
  local lua = arg[-1] or "lua5.4"
  local short = strace_counts(format("%s %s/call_count.lua %s call:200", lua, here, url))
  local long = strace_counts(format("%s %s/call_count.lua %s call:1200", lua, here, url))
  local l = per_call(short, long, 1000)
  local c_short, out_short = strace_counts(format("%s %s 0.1", C_BASELINE, path))
  local c_long, out_long = strace_counts(format("%s %s 0.4", C_BASELINE, path))
  local n_short, n_long = tonumber(out_short:match("calls=(%d+)")), tonumber(out_long:match("calls=(%d+)"))
  local c = n_short and n_long and n_long > n_short and per_call(c_short, c_long, n_long - n_short)
  for _, g in ipairs({ "sends", "reads", "waits", "total" }) do
    B.report(format("Lua client:call, %s per call", g), l[g], "",
      c and format("C libcurl: %.2f", c[g]) or "C libcurl: not measured")
  end
end

-- Calls per second of client:call for SECONDS; every answer must be the envelope's Response.
local function lua_rate(client, request)
  request = request or params
  local t0 = B.now()
  local n, elapsed = 0
  repeat
    for _ = 1, 64 do
      local resp, err = client:call(B.ACTION, request)
      if not resp or resp.RequestId == nil then error("call failed: " .. tostring(err)) end
    end
    n = n + 64
    elapsed = B.now() - t0
  until elapsed >= SECONDS
  return n / elapsed
end

-- Instructions per call under callgrind, user space of the client process only (the kernel and nginx are not
-- counted): the client's stages from one run of bench/call_count.lua, a window each, and the C program's between
-- the marks around its timed calls.
local CALL_STAGES = {
  { "call", "instructions per client:call (validation on)" },
  { "prepare", "  of which prepare (validate, encode, sign)" },
  { "transport", "  of which transport (C session + libcurl)" },
  { "decode", "  of which decode (envelope.decode)" },
}
local CALL_COUNT = 200

local function client_instructions(url)
  local args = {}
  for i, s in ipairs(CALL_STAGES) do args[i] = s[1] .. ":" .. CALL_COUNT end
  local windows, err = B.callgrind_windows(format("%s %s/call_count.lua %s %s", arg[-1] or "lua5.4", here, url,
    B.join(args)))
  if not windows then return nil, err end
  if #windows ~= #CALL_STAGES then return nil, "expected " .. #CALL_STAGES .. " windows, got " .. #windows end
  local per = {}
  for i, s in ipairs(CALL_STAGES) do per[s[1]] = windows[i] / CALL_COUNT end
  return per
end

local function c_instructions(path, sign)
  local extra = sign and format(" sign %s %s", B.SECRET_ID, B.SECRET_KEY) or ""
  local windows, out = B.callgrind_windows(format("%s %s 0.5%s", C_BASELINE, path, extra), "count_mark")
  if not windows then return nil, out end
  local calls = tonumber(out:match("calls=(%d+)"))
  if not calls or #windows ~= 1 then return nil, "unexpected c_baseline run under callgrind: " .. out end
  return windows[1] / calls
end

local function report_instructions(url, path)
  print("-- instructions per call under callgrind (client process, user space; valgrind hashes without SHA-NI)")
  local per, err = client_instructions(url)
  if not per then print("callgrind: " .. err) return end
  local call = per.call
  for _, s in ipairs(CALL_STAGES) do
    B.report(s[2], per[s[1]], "Ir", s[1] ~= "call" and format("%.0f%%", 100 * per[s[1]] / call) or nil)
  end
  local glue = call - per.prepare - per.transport - per.decode
  B.report("  the rest (the client's glue)", glue, "Ir", format("%.0f%%", 100 * glue / call))
  for _, sign in ipairs({ false, true }) do
    local name = sign and "C libcurl + TC3 signing per call" or "C libcurl (one easy handle, same bytes)"
    local c
    c, err = c_instructions(path, sign)
    if c then
      B.report(name, c, "Ir", format("client:call is %.2fx", call / c))
    else
      print("callgrind: " .. err)
    end
  end
end

local function run_mode(mode)
  local worker_cpu = mode == "split" and "1" or "0"
  local srv = B.start_servers({ worker_cpu = worker_cpu })
  local ok, err = pcall(function()
    local url = B.url(srv.port)
    local validating = B.client({ endpoint = url })
    local unvalidated = B.client({ endpoint = url, validate = false })
    local path = os.tmpname()
    write_request_file(path, assert(validating:prepare(B.ACTION, params)))
    local at = assert(validating:prepare(B.ACTION, params, { timestamp = B.TIMESTAMP }))
    assert(c_authorization(path, B.TIMESTAMP) == at.headers.Authorization,
      "c_baseline signs differently from the client")
    for _ = 1, 200 do assert(validating:call(B.ACTION, params)); assert(unvalidated:call(B.ACTION, params)) end
    local request_file = os.tmpname()
    B.write_file(request_file, require("essbasic.json").encode(params))
    local small_path = os.tmpname()
    write_request_file(small_path, assert(validating:prepare(B.ACTION, small)))
    -- the transport alone: the same pre-signed request sent again through the C session, against the C program
    local presigned = assert(validating:prepare(B.ACTION, params))
    presigned.timeout, presigned.response_headers = validating.timeout, false
    local transport = validating.transport
    local function transport_rate()
      local t0, n = B.now(), 0
      repeat
        for _ = 1, 64 do assert(transport:request(presigned)) end
        n = n + 64
      until B.now() - t0 >= SECONDS
      return n / (B.now() - t0)
    end
    local variants = {
      { "transport alone (pre-signed, C session)", transport_rate },
      { "small: C libcurl, same bytes", function() return c_rate(small_path) end },
      { "small: Lua client:call (validate on)", function() return lua_rate(validating, small) end },
      { "C libcurl (one easy handle, same bytes)", function() return c_rate(path) end },
      { "C libcurl + TC3 signing per call", function() return c_rate(path, true) end },
      { "Lua client:call (validate on)", function() return lua_rate(validating) end },
      { "Lua client:call (validate=false)", function() return lua_rate(unvalidated) end },
    }
    if HAVE_NODE then
      variants[#variants + 1] = { "Node.js SDK", function() return node_rate(srv.port, request_file) end }
    end
    local med = B.alternate(ROUNDS, variants)
    os.remove(request_file)
    os.remove(small_path)
    print(format("-- pinning '%s': client on CPU 0, nginx worker on CPU %s; %d rounds of %.1f s; medians",
      mode, worker_cpu, ROUNDS, SECONDS))
    local c = med["C libcurl (one easy handle, same bytes)"]
    B.report("C libcurl (one easy handle, same bytes)", c, "calls/s")
    local cs = med["C libcurl + TC3 signing per call"]
    B.report("C libcurl + TC3 signing per call", cs, "calls/s", format("%.0f%% of C", 100 * cs / c))
    for _, name in ipairs({ "Lua client:call (validate on)", "Lua client:call (validate=false)" }) do
      B.report(name, med[name], "calls/s", format("%.0f%% of C (target >= 80%%); %.0f%% of C signing", 100 *
        med[name] / c, 100 * med[name] / cs))
    end
    local lua_on = med["Lua client:call (validate on)"]
    B.report("ratio Lua client:call (validate on) / C libcurl", lua_on / c, "x")
    B.report("transport alone (pre-signed, C session)", med["transport alone (pre-signed, C session)"], "calls/s",
      format("%.2f of C", med["transport alone (pre-signed, C session)"] / c))
    print("-- the call loop of the A/B tool (3 flows, 1 approver each), same alternated rounds")
    local small_c, small_lua = med["small: C libcurl, same bytes"], med["small: Lua client:call (validate on)"]
    B.report("small: C libcurl, same bytes", small_c, "calls/s")
    B.report("small: Lua client:call (validate on)", small_lua, "calls/s")
    B.report("ratio small: Lua client:call / C libcurl", small_lua / small_c, "x", "target >= 0.65, goal 0.7")
    if med["Node.js SDK"] then
      B.report("Node.js SDK (tencentcloud-sdk-nodejs)", med["Node.js SDK"], "calls/s")
      B.report("ratio Lua client:call (validate on) / Node.js SDK", lua_on / med["Node.js SDK"], "x", "target >= 10")
    else
      print("Node.js SDK: not installed (tools/install-node-sdk), row skipped")
    end
    B.report("per-call client overhead over C (validate on)", 1e6 / med["Lua client:call (validate on)"] - 1e6 / c,
      "us/call")
    B.report("per-call client overhead over C (validate=false)",
      1e6 / med["Lua client:call (validate=false)"] - 1e6 / c, "us/call")
    local info = validating.transport.info and validating.transport:info()
    if info then
      B.report("connections opened by the Lua client", info.connects, "", format("for %d requests", info.requests))
    end
    if mode == MODES[1] then report_syscalls(url, path) end
    if mode == MODES[1] and B.callgrind_enabled() then report_instructions(url, path) end
    os.remove(path)
    validating:close()
    unvalidated:close()
  end)
  srv:stop()
  if not ok then error(err, 0) end
end

B.header("benchmark 2: sequential calls over one kept-alive connection")
B.pin_self("0")
for _, mode in ipairs(MODES) do run_mode(mode) end
