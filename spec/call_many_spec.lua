-- client:call_many over libcurl's multi interface, against the fault server on loopback.
local essbasic = require("essbasic")
local core = require("essbasic.core")
local faults_server = require("helpers.fault_server")

describe("client:call_many", function()
  local faults
  setup(function() faults = faults_server.start() end)
  teardown(function() if faults then faults:stop() end end)

  local function client(opts)
    local o = { secret_id = "AKIDmany", secret_key = "many-secret-key", endpoint = faults.endpoint,
      validate = false, timeout = 5, retry = { base_delay = 0.01, max_delay = 0.05 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    return essbasic.new(o)
  end

  it("runs calls concurrently and returns each result in input order", function()
    local tag = "conc" .. os.time()
    local reqs = {}
    for i = 1, 40 do
      reqs[i] = { "DescribeFlowDetailInfo", { Scenario = tag .. "-" .. i, Steps = { "wait100" } } }
    end
    local t0 = core.monotonic()
    local results = client{ rate_limit = false }:call_many(reqs, { concurrency = 20 })
    local elapsed = core.monotonic() - t0
    assert.equal(40, #results)
    for i = 1, 40 do
      assert.truthy(results[i][1], tostring(results[i][2]))
      assert.equal("group-" .. tag .. "-" .. i, results[i][1].FlowGroupId)
    end
    -- 40 calls of 0.1 s at concurrency 20 take about 0.2 s; one at a time they would take 4 s.
    assert.is_true(elapsed < 1.5, ("took %.2fs"):format(elapsed))
  end)

  it("gives every call its own outcome, with the same retry rules as call()", function()
    local tag = "mix" .. os.time()
    local c = client{ rate_limit = false }
    local done = {}
    local results = c:call_many({
      { action = "ChannelCreateFlowGroupByFiles", params = { Scenario = tag .. "a", Steps = { "limit", "ok" } } },
      { action = "ChannelCreateFlowGroupByFiles",
        params = { Scenario = tag .. "b", Steps = { "create_reset", "ok" } } },
      { action = "ChannelCreateFlowGroupByFiles", params = { FlowGroupName = "x" }, opts = { validate = true } },
      { action = "DescribeFlowDetailInfo", params = { Scenario = tag .. "d", Steps = { "html502", "ok" } } },
    }, { concurrency = 4,
      on_done = function(i, resp, err, meta) done[#done + 1] = { i, resp ~= nil, err or meta } end })
    assert.equal(4, #done)
    assert.truthy(results[1][1])
    assert.is_nil(results[1][2])
    assert.equal(2, results[1][3].attempts)
    assert.same({ attempts = 2, created = 1 }, faults:stats(tag .. "a"))
    assert.is_nil(results[2][1])
    assert.equal("ClientError.OutcomeUnknown", results[2][2].code)
    assert.same({ attempts = 1, created = 1 }, faults:stats(tag .. "b"))
    assert.is_nil(results[3][1])
    assert.equal("validation", results[3][2].kind)
    assert.truthy(results[4][1])
    assert.same({ attempts = 2, created = 1 }, faults:stats(tag .. "d"))
  end)

  it("honours the rate limit", function()
    local tag = "rate" .. os.time()
    local reqs = {}
    for i = 1, 30 do reqs[i] = { "DescribeFlowDetailInfo", { Scenario = tag .. i, Steps = { "ok" } } } end
    local t0 = core.monotonic()
    local results = client{ rate_limit = { rate = 20 } }:call_many(reqs, { concurrency = 30 })
    local elapsed = core.monotonic() - t0
    for i = 1, 30 do assert.truthy(results[i][1]) end
    -- 20 tokens at once, then one every 50 ms: the last of 30 calls cannot start before 0.5 s.
    assert.is_true(elapsed >= 0.45, ("took %.2fs"):format(elapsed))
  end)

  it("raises on malformed requests", function()
    assert.has_error(function() client():call_many("x") end)
    assert.has_error(function() client():call_many({ "x" }) end)
    assert.has_error(function() client():call_many({ { 42, {} } }) end)
  end)

  it("survives an on_done that raises: the batch drains, the error comes back, the next batch is clean", function()
    local tag = "raise" .. os.time()
    local c = client{ rate_limit = false }
    local reqs = {}
    for i = 1, 12 do reqs[i] = { "DescribeFlowDetailInfo", { Scenario = tag .. "-" .. i, Steps = { "wait100" } } } end
    local seen = {}
    local ok, why = pcall(c.call_many, c, reqs, { concurrency = 6, on_done = function(i)
      seen[#seen + 1] = i
      if #seen == 1 then error("boom in on_done") end
    end })
    assert.is_false(ok)
    assert.truthy(tostring(why):find("boom in on_done", 1, true))
    assert.truthy(tostring(why):find("for call %d+"))
    assert.equal(12, #seen, "every call was reported although the first on_done raised")
    -- The next batch on the same client: every answer matched to its own request.
    local again = {}
    for i = 1, 12 do again[i] = { "DescribeFlowDetailInfo", { Scenario = tag .. "-b" .. i, Steps = { "ok" } } } end
    local results = c:call_many(again, { concurrency = 6 })
    for i = 1, 12 do
      assert.truthy(results[i][1], tostring(results[i][2]))
      assert.equal("group-" .. tag .. "-b" .. i, results[i][1].FlowGroupId)
    end
    -- an error value that is not a string comes back as it was raised
    local marker = {}
    local ok2, why2 = pcall(c.call_many, c, { again[1] }, { on_done = function() error(marker) end })
    assert.is_false(ok2)
    assert.equal(marker, why2)
  end)

  it("works with a transport object of the caller's (one call after another), and survives one that raises", function()
    local seen = {}
    local transport = { request = function(_, req)
      seen[#seen + 1] = req.headers["X-TC-Action"]
      if #seen == 2 then error("transport bug") end
      if #seen == 3 then return "not a result" end
      return { status = 200, body = '{"Response":{"RequestId":"r' .. #seen .. '"}}' }
    end }
    local c = client{ transport = transport, rate_limit = false, retry = false }
    local results = c:call_many({ { "DescribeFlowDetailInfo", {} }, { "ChannelCreateFlowGroupByFiles", {} },
      { "ChannelCreateFlowGroupByFiles", {} }, { "DescribeFlowDetailInfo", {} } })
    assert.equal(4, #seen)
    assert.equal("r1", results[1][1].RequestId)
    assert.equal("ClientError.OutcomeUnknown", results[2][2].code)
    assert.truthy(results[2][2].message:find("transport bug", 1, true))
    assert.equal("ClientError.OutcomeUnknown", results[3][2].code)
    assert.equal("r4", results[4][1].RequestId)
  end)
end)
