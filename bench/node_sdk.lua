-- The Lua client against Tencent Cloud's official Node.js SDK (tencentcloud-sdk-nodejs, tools/install-node-sdk),
-- sequential ChannelCreateFlowGroupByFiles calls of the official example request, each with its defaults
-- (validation on for Lua), against the same local nginx answering a fixed envelope. Rounds alternate between the
-- two; medians. Issue 17's rule: the Lua client stays at least ten times as fast.
--   lua5.4 bench/node_sdk.lua [ROUNDS] [SECONDS_PER_ROUND]
local B = require("benchlib")

local rounds, seconds = tonumber(arg[1]) or 5, tonumber(arg[2]) or 1
local sdk_dir = B.root .. "/build/node-sdk"
assert(os.execute(B.root .. "/tools/install-node-sdk"), "tools/install-node-sdk failed")

local srv = B.start_servers{}
local request = B.seed_request()
local request_file = os.tmpname()
B.write_file(request_file, require("essbasic.json").encode(request))

local client = B.client{ endpoint = B.url(srv.port), file_endpoint = B.url(srv.port) }
local function lua_round()
  local function once() assert(client:ChannelCreateFlowGroupByFiles(request)) end
  local iters = B.iterations_for(once, seconds)
  return 1 / B.per_call(once, iters)
end

local function node_round()
  local p = assert(io.popen(("node %s/bench/node/sequential.js %s 127.0.0.1:%d %s %s"):format(B.root, sdk_dir,
    srv.port, request_file, seconds)))
  local out = p:read("*a")
  p:close()
  return assert(tonumber(out), "the Node.js SDK run printed: " .. out)
end

B.header("benchmark: the Lua client and the official Node.js SDK, sequential calls (calls/s, medians of "
  .. rounds .. " alternated rounds of " .. seconds .. " s)")
local med = B.alternate(rounds, { { "node", node_round }, { "lua", lua_round } })
B.report("Node.js SDK (tencentcloud-sdk-nodejs)", med.node, "calls/s", "baseline")
B.report("Lua client:call (validate on)", med.lua, "calls/s", ("%.1fx the Node.js SDK (target >= 10x)")
  :format(med.lua / med.node))
os.remove(request_file)
srv:stop()
