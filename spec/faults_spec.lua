-- Failures of the network and of the server, against a real misbehaving server on loopback (helpers.fault_server):
-- every case checks the error code, the number of attempts and, for creating calls, how many groups the server
-- created — one or none, never two.
local essbasic = require("essbasic")
local faults_server = require("helpers.fault_server")
local proxy = require("helpers.proxy")

local SECRET_KEY = "faults-secret-key-0123456789abcdef"

describe("faults", function()
  local faults
  local n = 0

  setup(function() faults = faults_server.start() end)
  teardown(function() if faults then faults:stop() end end)

  local function client(opts)
    local o = { secret_id = "AKIDfaults", secret_key = SECRET_KEY, endpoint = faults.endpoint, validate = false,
      timeout = 3, retry = { base_delay = 0.01, max_delay = 0.05 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    return essbasic.new(o)
  end

  -- Plays steps for one call; returns resp, err and the server's count of attempts and creations.
  -- (On success the second value is nil here, not the call's metadata.)
  local function play(action, steps, opts, call_opts)
    n = n + 1
    local scenario = ("s%d-%d"):format(n, os.time())
    local resp, err = client(opts):call(action, { Scenario = scenario, Steps = steps }, call_opts)
    return resp, (not resp) and err or nil, faults:stats(scenario)
  end

  local CREATE, READ = "ChannelCreateFlowGroupByFiles", "DescribeFlowDetailInfo"

  it("retries RequestLimitExceeded for a creating call and creates exactly one group", function()
    local resp, err, seen = play(CREATE, { "limit", "limit", "ok" })
    assert.is_nil(err)
    assert.truthy(resp.FlowGroupId)
    assert.same({ attempts = 3, created = 1 }, seen)
  end)

  it("reports the attempts and why in the metadata", function()
    n = n + 1
    local scenario = "meta" .. n
    local resp, _, meta = client():call(CREATE, { Scenario = scenario, Steps = { "limit", "ok" } })
    assert.truthy(resp)
    assert.equal(2, meta.attempts)
    assert.equal("RequestLimitExceeded", meta.history[1].code)
  end)

  it("gives up after max_attempts of RequestLimitExceeded with the API's code", function()
    local resp, err, seen = play(CREATE, { "limit" }, { retry = { max_attempts = 3, base_delay = 0.01 } })
    assert.is_nil(resp)
    assert.equal("RequestLimitExceeded", err.code)
    assert.equal(3, err.attempts)
    assert.same({ attempts = 3, created = 0 }, seen)
  end)

  it("does not retry a creating call whose answer was lost after the server created it", function()
    local resp, err, seen = play(CREATE, { "create_reset", "ok" })
    assert.is_nil(resp)
    assert.equal("ClientError.OutcomeUnknown", err.code)
    assert.truthy(err.message:find("DescribeFlowDetailInfo", 1, true))
    assert.equal(1, err.attempts)
    assert.same({ attempts = 1, created = 1 }, seen)
  end)

  it("does not retry a creating call cut off in the middle of the answer", function()
    local resp, err, seen = play(CREATE, { "half", "ok" })
    assert.is_nil(resp)
    assert.equal("ClientError.OutcomeUnknown", err.code)
    assert.same({ attempts = 1, created = 1 }, seen)
  end)

  it("times out on an answer that never ends, without retrying the creating call", function()
    local t0 = os.time()
    local resp, err, seen = play(CREATE, { "never_ends", "ok" }, { timeout = 1.5 })
    assert.is_nil(resp)
    assert.equal("ClientError.OutcomeUnknown", err.code)
    assert.equal("timeout", err.network)
    assert.is_true(os.time() - t0 <= 5)
    assert.same({ attempts = 1, created = 1 }, seen)
  end)

  it("retries a read-only call after a reset, a half answer and a 502", function()
    local resp, err, seen = play(READ, { "reset", "half", "html502", "ok" }, { retry = { max_attempts = 4,
      base_delay = 0.01 } })
    assert.is_nil(err)
    assert.truthy(resp.FlowGroupId)
    assert.equal(4, seen.attempts)
  end)

  it("turns an HTML 502 into HttpStatusCodeError for a creating call, without retry", function()
    local resp, err, seen = play(CREATE, { "html502", "ok" })
    assert.is_nil(resp)
    assert.equal("ClientError.OutcomeUnknown", err.code)
    assert.equal(502, err.http_status)
    assert.equal("ClientError.HttpStatusCodeError", err.cause.code)
    assert.truthy(err.cause.message:find("502 Bad Gateway", 1, true))
    assert.same({ attempts = 1, created = 0 }, seen)
  end)

  it("turns a non-JSON 200 into ParseJsonError", function()
    local resp, err = play(READ, { "notjson" }, { retry = false })
    assert.is_nil(resp)
    assert.equal("ClientError.ParseJsonError", err.code)
  end)

  it("passes an HTTP 200 error envelope through with the API's code and request id", function()
    local resp, err, seen = play(CREATE, { "error200" })
    assert.is_nil(resp)
    assert.equal("InvalidParameter.FlowName", err.code)
    assert.equal("service", err.kind)
    assert.truthy(err.request_id)
    assert.equal(1, seen.attempts)
  end)

  it("retries InternalError for read-only calls only", function()
    local resp, _, seen = play(READ, { "internal", "ok" })
    assert.truthy(resp)
    assert.equal(2, seen.attempts)
    local resp2, err2, seen2 = play(CREATE, { "internal", "ok" })
    assert.is_nil(resp2)
    assert.equal("ClientError.OutcomeUnknown", err2.code)
    assert.equal("InternalError", err2.cause.code)
    assert.equal(1, seen2.attempts)
  end)

  it("refuses a body larger than max_response_bytes", function()
    local resp, err = play(READ, { "huge" }, { max_response_bytes = 1024 * 1024, retry = false })
    assert.is_nil(resp)
    assert.equal("ClientError.ResponseTooLarge", err.code)
  end)

  it("retries creating calls after a lost answer only with unsafe = true (and then creates twice)", function()
    local resp, err, seen = play(CREATE, { "create_reset", "ok" }, { retry = { unsafe = true, base_delay = 0.01 } })
    assert.is_nil(err)
    assert.truthy(resp)
    assert.same({ attempts = 2, created = 2 }, seen)
  end)

  it("stops retrying at the caller's deadline", function()
    local resp, err = play(READ, { "slow" }, { timeout = 5 }, { deadline = 0.5 })
    assert.is_nil(resp)
    assert.equal("timeout", err.network)
  end)

  it("refuses a self-signed TLS server by default and accepts it with ca_file", function()
    -- A generous timeout: under valgrind a TLS handshake alone can take longer than a second.
    local c = client({ endpoint = faults.tls_endpoint, retry = false, timeout = 20 })
    local resp, err = c:call(READ, { Scenario = "tls-a", Steps = { "ok" } })
    assert.is_nil(resp)
    assert.equal("tls", err.network)
    assert.is_false(err.sent)
    c = client({ endpoint = faults.tls_endpoint, ca_file = faults.cert, timeout = 20 })
    resp = assert(c:call(READ, { Scenario = "tls-b", Steps = { "ok" } }))
    assert.equal("group-tls-b", resp.FlowGroupId)
  end)

  it("creates through an HTTP proxy's CONNECT tunnel, and retries a creating call whose tunnel was refused",
    function()
      proxy.with({ {}, { basic_auth = "user secret" } }, function(open, auth)
        local c = client({ endpoint = faults.tls_endpoint, ca_file = faults.cert, proxy = open.url, timeout = 20 })
        local resp = assert(c:call(CREATE, { Scenario = "proxy-ok", Steps = { "ok" } }))
        assert.equal("group-proxy-ok", resp.FlowGroupId)
        assert.same({ attempts = 1, created = 1 }, faults:stats("proxy-ok"))
        assert.same({ "CONNECT " .. faults.tls_endpoint:match("//(.*)$") .. " HTTP/1.1" }, open:requests())
        -- a 407 means the request never left the proxy: retried like a refused connection, not "outcome unknown"
        c = client({ endpoint = faults.tls_endpoint, ca_file = faults.cert, proxy = auth.url, timeout = 20,
          retry = { max_attempts = 2, base_delay = 0.01 } })
        local none, err = c:call(CREATE, { Scenario = "proxy-407", Steps = { "ok" } })
        assert.is_nil(none)
        assert.equal("ClientError.NetworkError", err.code)
        assert.equal("connect", err.network)
        assert.is_false(err.sent)
        assert.equal(2, err.attempts)
        assert.equal(2, #auth:requests())
        assert.same({ attempts = 0, created = 0 }, faults:stats("proxy-407"))
      end)
    end)

  it("retries a refused connection even for creating calls (it never reached a server)", function()
    local c = essbasic.new{ secret_id = "AKIDfaults", secret_key = SECRET_KEY, endpoint = "http://127.0.0.1:9",
      retry = { max_attempts = 3, base_delay = 0.01 }, validate = false }
    local resp, err = c:call(CREATE, {})
    assert.is_nil(resp)
    assert.equal("ClientError.NetworkError", err.code)
    assert.equal(3, err.attempts)
  end)
end)
