-- client:call over a scripted transport (no network): what each attempt's request carries, and the retry rules
-- with the per-call bookkeeping kept lean (read-only looked up on failure, shared empty options, no clock read
-- without a deadline).

local essbasic = require("essbasic")
local errors = require("essbasic.errors")

local OK_BODY = '{"Response":{"RequestId":"r-ok","Usage":[]}}'

-- A transport answering from a script: each entry is { status, body } or an error object; records requests.
local function scripted(script)
  local t = { seen = {} }
  function t.request(_, req)
    t.seen[#t.seen + 1] = req
    local step = script[#t.seen] or script[#script]
    if errors.is_error(step) then return nil, step end
    return { status = step[1], body = step[2] }
  end
  return t
end

local function new(transport, opts)
  local o = { secret_id = "AKIDspeccall", secret_key = "spec-call-key", endpoint = "http://127.0.0.1:9",
    transport = transport, rate_limit = false, retry = { base_delay = 0.001, max_delay = 0.001 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return essbasic.new(o)
end

local agent = require("helpers.tc3").agent

local function usage()
  return { Agent = agent(), StartDate = "2023-01-01", EndDate = "2023-01-02" }
end

local function timeout_error()
  return errors.new{ kind = "network", code = errors.NETWORK, network = "timeout", sent = true, message = "timed out" }
end

describe("client:call", function()
  it("asks the transport for status and body only, with the attempt's timeout", function()
    local t = scripted({ { 200, OK_BODY } })
    local c = new(t, { timeout = 7 })
    local resp, _, meta = assert(c:call("DescribeUsage", usage()))
    assert.equal("r-ok", resp.RequestId)
    assert.same({ attempts = 1, history = {} }, meta)
    local req = t.seen[1]
    assert.equal(false, req.response_headers)
    assert.equal(7, req.timeout)
    assert.equal("POST", req.method)
    assert.equal("http://127.0.0.1:9/", req.url)
    assert.truthy(req.headers.Authorization:find("Credential=AKIDspeccall/", 1, true))
  end)

  it("prepare still returns exactly method, url, headers and body", function()
    local c = new(scripted({ { 200, OK_BODY } }))
    local req = assert(c:prepare("DescribeUsage", usage(), { timestamp = 1700000000 }))
    local keys = {}
    for k in pairs(req) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "body", "headers", "method", "url" }, keys)
  end)

  it("retries a read-only action after a timeout, each attempt freshly signed, and reports the history", function()
    local t = scripted({ timeout_error(), timeout_error(), { 200, OK_BODY } })
    local c = new(t)
    local resp, _, meta = assert(c:call("DescribeUsage", usage()))
    assert.equal("r-ok", resp.RequestId)
    assert.equal(3, meta.attempts)
    assert.same({ { code = errors.NETWORK, class = "unknown" }, { code = errors.NETWORK, class = "unknown" } },
      meta.history)
    assert.equal(3, #t.seen)
    for _, req in ipairs(t.seen) do assert.equal(false, req.response_headers) end
  end)

  it("never retries a creating action once it may have reached the server", function()
    local t = scripted({ timeout_error(), { 200, OK_BODY } })
    local c = new(t)
    local resp, err = c:call("ChannelCreateFlowGroupByFiles", { Agent = agent() }, { validate = false })
    assert.is_nil(resp)
    assert.equal(errors.OUTCOME_UNKNOWN, err.code)
    assert.equal(1, err.attempts)
    assert.same({ { code = errors.NETWORK, class = "unknown" } }, err.history)
    assert.equal(1, #t.seen)
  end)

  it("retries a creating action the server refused unread", function()
    local limited = '{"Response":{"Error":{"Code":"RequestLimitExceeded","Message":"slow down"},"RequestId":"r1"}}'
    local t = scripted({ { 200, limited }, { 200, OK_BODY } })
    local c = new(t)
    local _, _, meta = assert(c:call("ChannelCreateFlowGroupByFiles", { Agent = agent() }, { validate = false }))
    assert.equal(2, meta.attempts)
    assert.same({ { code = "RequestLimitExceeded", class = "refused" } }, meta.history)
  end)

  it("gives every call its own history and metadata, with or without options", function()
    local t = scripted({ timeout_error(), { 200, OK_BODY } })
    local c = new(t)
    local _, _, m1 = assert(c:call("DescribeUsage", usage()))
    local _, _, m2 = assert(c:call("DescribeUsage", usage()))
    assert.equal(2, m1.attempts)
    assert.equal(1, #m1.history)
    assert.equal(1, m2.attempts)
    assert.same({}, m2.history)
    assert.are_not.equal(m1.history, m2.history)
  end)

  it("keeps a deadline across attempts", function()
    local t = scripted({ timeout_error() })
    local c = new(t, { retry = { base_delay = 0.2, max_delay = 0.2, max_attempts = 10 } })
    local t0 = require("essbasic.core").monotonic()
    local resp, err = c:call("DescribeUsage", usage(), { deadline = 0.25 })
    assert.is_nil(resp)
    assert.is_true(require("essbasic.core").monotonic() - t0 < 1)
    assert.is_true(err.attempts >= 1 and err.attempts <= 3)
    assert.equal(err.attempts, #err.history)
  end)
end)
