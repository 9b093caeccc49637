-- The sandbox's faults on demand, as a platform testing its own error handling meets them: latency, error answers
-- (any code), answers lost after the work was done, slow bodies; from the config file and through /sandbox/faults.
local sandbox = require("helpers.sandbox")
local core = require("essbasic.core")
local json = require("essbasic.json")

local http = core.http_session({ timeout = 20 })

describe("sandbox faults", function()
  local sb, client

  setup(function()
    sb = sandbox.start{ rate_limit = 1000, faults = {
      DescribeCancelFlowsTask = { error = "InternalError", message = "configured fault", times = 2 } } }
    client = sb:client({ retry = false })
  end)
  teardown(function()
    if sb then sb:stop() end
  end)

  local function control(method, path, doc)
    local url = sb.endpoint .. "/sandbox/faults" .. (path or "")
    if method == "DELETE" then -- the HTTP session speaks GET and POST only: curl, as a user would
      local p = assert(io.popen("env -u LD_PRELOAD curl -s -X DELETE -w '\\n%{http_code}' '" .. url .. "'"))
      local out = p:read("*a")
      p:close()
      local body, status = out:match("^(.*)\n(%d+)$")
      return tonumber(status), json.decode(body)
    end
    local status, _, body = http:request(method, url, { ["Content-Type"] = "application/json" },
      doc and json.encode(doc) or "")
    return status, json.decode(body)
  end

  local function group()
    local resp = assert(client:ChannelCreateFlowGroupByFiles(sb:group_request({ sb:upload(client),
      sb:upload(client) })))
    return resp
  end

  local function elapsed(fn)
    local t0 = core.monotonic()
    local a, b = fn()
    return core.monotonic() - t0, a, b
  end

  it("a fault from the config file answers its code `times` times, then the action works again", function()
    local params = { Agent = sb.agent, TaskId = string.rep("0", 32) }
    for _ = 1, 2 do
      local resp, err = client:DescribeCancelFlowsTask(params)
      assert.is_nil(resp)
      assert.are.equal("InternalError", err.code)
      assert.are.equal("configured fault", err.message)
    end
    local _, err = client:DescribeCancelFlowsTask(params)
    assert.are.equal("ResourceNotFound", err.code) -- the real answer: no such task
    assert.are.same({}, select(2, control("GET")).faults) -- spent
  end)

  it("latency: the answer comes after the delay, once; the next one at once", function()
    local g = group()
    assert.are.equal(200, (control("POST", "/DescribeFlowDetailInfo", { latency = 1.0, times = 1 })))
    local took, resp = elapsed(function() return client:DescribeFlowDetailInfo{ Agent = sb.agent,
      FlowGroupId = g.FlowGroupId } end)
    assert.is_table(resp)
    assert.is_true(took >= 0.95, tostring(took))
    local quick = elapsed(function() return client:DescribeFlowDetailInfo{ Agent = sb.agent,
      FlowGroupId = g.FlowGroupId } end)
    assert.is_true(quick < 0.5, tostring(quick))
  end)

  it("error: any code, e.g. RequestLimitExceeded, with its message, for every action under \"*\"", function()
    control("POST", "/*", { error = "RequestLimitExceeded", message = "slow down (fault)", times = 2 })
    local _, e1 = client:UploadFiles{ Agent = sb.agent, BusinessType = "DOCUMENT",
      FileInfos = { { FileName = "a.pdf", FileBody = core.base64_encode(sandbox.PDF) } } }
    assert.are.equal("RequestLimitExceeded", e1.code)
    assert.are.equal("slow down (fault)", e1.message)
    local _, e2 = client:DescribeTemplates{ Agent = sb.agent }
    assert.are.equal("RequestLimitExceeded", e2.code)
    assert.is_table((client:DescribeTemplates{ Agent = sb.agent })) -- times spent
    control("POST", "/ChannelCancelFlow", { error = "FailedOperation.Custom" })
    local _, e3 = client:ChannelCancelFlow{ Agent = sb.agent, FlowId = string.rep("1", 32) }
    assert.are.equal("FailedOperation.Custom", e3.code)
    control("DELETE", "/ChannelCancelFlow")
    local _, e4 = client:ChannelCancelFlow{ Agent = sb.agent, FlowId = string.rep("1", 32) }
    assert.are.equal("ResourceNotFound.Flow", e4.code)
  end)

  it("lose_answer: the work is done and saved, the connection closes without an answer", function()
    local before = sb:stats().groups
    local request = sb:group_request({ sb:upload(client), sb:upload(client) })
    control("POST", "/ChannelCreateFlowGroupByFiles", { lose_answer = true, times = 1 })
    -- The client that uploaded the files: its kept-alive connection is reused, where libcurl by itself would
    -- send the request again if essbasic let it (spec/never_twice_spec.lua).
    local resp, err = client:ChannelCreateFlowGroupByFiles(request, { retry = false })
    assert.is_nil(resp)
    assert.is_nil(err.request_id) -- no answer came
    assert.are.equal("ClientError.OutcomeUnknown", err.code)
    local stats = sb:stats()
    assert.are.equal(before + 1, stats.groups) -- yet the group exists: a retry would create a second one
    assert.are.equal(1, stats.faults.lose_answer)
    group()
    assert.are.equal(before + 2, sb:stats().groups)
  end)

  it("slow_body: the answer trickles out over the given time and arrives whole", function()
    local g = group()
    control("POST", "/DescribeFlowDetailInfo", { slow_body = 1.0, times = 1 })
    local took, resp = elapsed(function() return client:DescribeFlowDetailInfo{ Agent = sb.agent,
      FlowGroupId = g.FlowGroupId } end)
    assert.is_true(took >= 0.9, tostring(took))
    assert.are.equal(2, #resp.FlowInfo)
    sandbox.conforms_response("DescribeFlowDetailInfo", resp)
  end)

  it("the control endpoint: lists, replaces, clears, and refuses malformed faults with 400", function()
    local status, doc = control("POST", nil, { ["*"] = { latency = 0.01, probability = 0 },
      CreateSignUrls = { error = "InternalError" } })
    assert.are.equal(200, status)
    assert.are.equal("InternalError", doc.faults.CreateSignUrls.error)
    assert.is_table((client:DescribeTemplates{ Agent = sb.agent })) -- probability 0: never applies
    status, doc = control("POST", "/CreateSignUrls", { latency = "slow" })
    assert.are.equal(400, status)
    assert.truthy(doc.error:find("latency must be a number", 1, true))
    assert.are.equal(400, (control("POST", "/CreateSignUrls", { lose_answer = true, error = "InternalError" })))
    assert.are.equal(400, (control("POST", nil, { ["not an action"] = {} })))
    status, doc = control("DELETE")
    assert.are.equal(200, status)
    assert.are.same({}, doc.faults)
  end)
end)
