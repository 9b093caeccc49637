-- The sandbox's signed documents: how long a download takes while the PDF tools run, and whether the nginx worker
-- keeps serving meanwhile (sandbox/pdf.lua runs the tools in the background and polls with ngx.sleep).
-- For each document size: the median render (first download, 5 rounds on fresh flows), the median cached download,
-- and /sandbox/stats latency idle (the baseline) and during renders (median and worst), with their ratio.
--   lua5.4 bench/sandbox_pdf.lua            (from the repository root, after `make`; needs qpdf and poppler-utils)
-- Not part of bench/run's budget: run it when sandbox/pdf.lua changes.

local src = debug.getinfo(1, "S").source:gsub("^@", "")
local root = (src:match("^(.*)/bench/[^/]+$") or ".")
package.path = table.concat({ root .. "/?.lua", root .. "/lua/?.lua", root .. "/lua/?/init.lua", package.path }, ";")
package.cpath = root .. "/build/5.4/?.so;" .. package.cpath

local core = require("essbasic.core")
local essbasic = require("essbasic")
local launch = require("sandbox.launch")
local sandbox_config = require("sandbox.config")

local ROUNDS = 5

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local dir = io.popen("mktemp -d /tmp/essbasic-bench-pdf.XXXXXX"):read("*l")
local sb = launch.start({ overrides = { data_dir = dir, rate_limit = 10000 }, env = false })
local ok, err = pcall(function()
  local client = essbasic.new{ secret_id = sandbox_config.DEFAULT_SECRET_ID,
    secret_key = sandbox_config.DEFAULT_SECRET_KEY, endpoint = sb.endpoint, file_endpoint = sb.endpoint,
    retry = false }
  local agent = { AppId = sandbox_config.DEFAULT_APP_ID, ProxyOrganizationOpenId = "bench_org",
    ProxyOperator = { OpenId = "bench_op" } }
  local http = core.http_session({ timeout = 30 })
  local function stats_latency()
    local t0 = core.monotonic()
    local status = http:request("GET", sb.endpoint .. "/sandbox/stats", {}, "")
    assert(status == 200)
    return core.monotonic() - t0
  end
  local idle = {}
  for i = 1, 50 do idle[i] = stats_latency() end
  local base = median(idle)
  local one = root .. "/examples/pdf/labour_contract.pdf"
  os.execute("qpdf --empty --pages " .. string.rep(one .. " ", 300) .. "-- " .. dir .. "/big.pdf")
  for c, case in ipairs({ { "1 page", read(one) }, { "300 pages", read(dir .. "/big.pdf") } }) do
    local renders, cached, during = {}, {}, {}
    local worst = 0
    for r = 1, ROUNDS do
      local up = assert(client:UploadFiles{ Agent = agent, BusinessType = "DOCUMENT",
        FileInfos = { { FileName = "b.pdf", FileBody = core.base64_encode(case[2]) } } })
      local fid = assert(client:ChannelCreateFlowByFiles{ Agent = agent, FlowName = "bench", FileIds = up.FileIds,
        FlowApprovers = { { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000",
          SignComponents = { { ComponentType = "SIGN_SIGNATURE", ComponentPage = 1, ComponentPosX = 100,
            ComponentPosY = 100 } } } } }).FlowId
      local link = assert(client:ChannelCreateFlowSignUrl{ Agent = agent, FlowId = fid, FlowApproverInfos = {
        { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000" } } }).FlowApproverUrlInfos[1].SignUrl
      http:request("POST", sb.endpoint .. "/sandbox/sign", { ["Content-Type"] = "application/json" },
        '{"token":"' .. link:match("token=(%x+)") .. '"}')
      local url = assert(client:DescribeResourceUrlsByFlows{ Agent = agent, FlowIds = { fid } })
        .FlowResourceUrlInfos[1].ResourceUrlInfos[1].Url
      local timing = dir .. "/t" .. c .. "-" .. r
      -- the first download (the render) from curl in the background; /sandbox/stats from here meanwhile
      os.execute("(curl -s -o /dev/null -w '%{time_total}' '" .. url .. "' >" .. timing .. ".tmp; mv " .. timing
        .. ".tmp " .. timing .. ") &")
      repeat
        local d = stats_latency()
        during[#during + 1] = d
        if d > worst then worst = d end
        local f = io.open(timing)
        if f then f:close() end
      until f
      renders[r] = tonumber(read(timing))
      local t0 = core.monotonic()
      http:request("GET", url, {}, "")
      cached[r] = core.monotonic() - t0
    end
    io.write(string.format("%-9s render %.3f s, cached %.4f s; /sandbox/stats meanwhile: median %.2f ms "
      .. "(%.1fx idle %.2f ms), worst %.1f ms over %d requests\n", case[1], median(renders), median(cached),
      median(during) * 1000, median(during) / base, base * 1000, worst * 1000, #during))
  end
  http:close()
  client:close()
end)
sb.stop()
os.execute("rm -rf '" .. dir .. "'")
if not ok then error(err, 0) end
