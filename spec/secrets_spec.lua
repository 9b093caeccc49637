-- Secrets stay secret (issue 6): every error message, debug log line and tostring produced while a client talks to
-- real servers on loopback (the sandbox, which checks signatures and the token, and the fault server) is collected
-- and searched for the secret key, the token and every signature that was sent. The signatures are recomputed with
-- client:prepare for every second a call was running (each attempt signs with the time it starts at).
-- The debug log must show the requests (action, headers with the secrets redacted): the search is not vacuous.

local essbasic = require("essbasic")
local core = require("essbasic.core")
local credentials = require("essbasic.credentials")
local errors = require("essbasic.errors")
local sandbox = require("helpers.sandbox")
local fault_server = require("helpers.fault_server")
local sandbox_config = require("sandbox.config")

local SECRET_ID = "AKIDspecsecrets000000000000000000001"
local SECRET_KEY = "spec-secrets-KEY-must-never-leak-0123"
local TOKEN = "spec-secrets-TOKEN-must-never-leak-4567"

describe("secrets", function()
  local sb, faults
  local texts = {}      -- every string a user could see: errors, log lines, tostring output
  local logs = {}       -- the log lines alone
  local signatures = {} -- every signature a call may have sent
  local calls = 0

  local function see(s) texts[#texts + 1] = s end

  -- Every string inside an error object (message, cause, problems, history), and its tostring.
  local function see_error(err, seen)
    seen = seen or {}
    if type(err) ~= "table" or seen[err] then return end
    seen[err] = true
    if errors.is_error(err) then see(tostring(err)) end
    for k, v in pairs(err) do
      if type(k) == "string" then see(k) end
      if type(v) == "string" then see(v) elseif type(v) == "table" then see_error(v, seen) end
    end
  end

  local function logger(level, msg)
    see(level)
    see(msg)
    logs[#logs + 1] = msg
  end

  local function client(endpoint, extra)
    local o = { credentials = credentials.static{ secret_id = SECRET_ID, secret_key = SECRET_KEY, token = TOKEN },
      endpoint = endpoint, file_endpoint = endpoint, debug = true, logger = logger, timeout = 2,
      retry = { base_delay = 0.01, max_delay = 0.05 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    local c = essbasic.new(o)
    see(tostring(c))
    return c
  end

  -- Runs a call, keeps what it shows, and records the signatures it may have sent.
  local function call(c, action, params, call_opts)
    calls = calls + 1
    local t0 = os.time()
    local resp, err = c:call(action, params, call_opts)
    local t1 = os.time()
    for ts = t0, t1 do
      local req = c:prepare(action, params, { timestamp = ts, validate = false })
      if req then
        local sig = req.headers.Authorization:match("Signature=(%x+)")
        signatures[#signatures + 1] = sig
        signatures[#signatures + 1] = sig:upper()
      end
    end
    if err then see_error(err) end
    if type(resp) == "table" then
      for _, v in pairs(resp) do if type(v) == "string" then see(v) end end
    end
    return resp, err
  end

  setup(function()
    sb = sandbox.start{ credentials = { { secret_id = SECRET_ID, secret_key = SECRET_KEY, token = TOKEN,
      apps = { sandbox_config.DEFAULT_APP_ID } } } }
    faults = fault_server.start()
  end)
  teardown(function()
    if sb then sb:stop() end
    if faults then faults:stop() end
  end)

  it("collects output from successes against the sandbox (which checks signature and token)", function()
    local c = client(sb.endpoint)
    local up = assert(call(c, "UploadFiles", { Agent = sb.agent, BusinessType = "DOCUMENT",
      FileInfos = { { FileName = "a.pdf", FileBody = core.base64_encode(sandbox.PDF) },
        { FileName = "b.pdf", FileBody = core.base64_encode(sandbox.PDF) } } }))
    local resp = assert(call(c, "ChannelCreateFlowGroupByFiles", sb:group_request(up.FileIds)))
    assert.truthy(resp.FlowGroupId)
    assert.truthy(call(c, "DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = resp.FlowIds }))
  end)

  it("collects output from service errors (the sandbox and the fault server)", function()
    local _, err = call(client(sb.endpoint), "DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { "nope" } })
    assert.equal("service", err.kind)
    local wrong_key = client(sb.endpoint, { credentials = credentials.static{ secret_id = SECRET_ID,
      secret_key = SECRET_KEY .. "-wrong", token = TOKEN } })
    _, err = call(wrong_key, "DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { "x" } })
    assert.equal("AuthFailure.SignatureFailure", err.code)
    local wrong_token = client(sb.endpoint, { credentials = credentials.static{ secret_id = SECRET_ID,
      secret_key = SECRET_KEY, token = TOKEN .. "-wrong" } })
    _, err = call(wrong_token, "DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { "x" } })
    assert.equal("AuthFailure.TokenFailure", err.code)
    local c = client(faults.endpoint, { validate = false })
    for _, steps in ipairs({ { "error200" }, { "limit", "limit", "ok" }, { "internal" }, { "html502" }, { "notjson" },
      { "huge" } }) do
      call(c, "DescribeFlowDetailInfo", { Scenario = "secrets-" .. calls .. "-" .. os.time(), Steps = steps })
    end
  end)

  it("collects output from network errors", function()
    local _, err = call(client("http://127.0.0.1:9"), "DescribeUsage", { Agent = sb.agent, StartDate = "2026-01-01",
      EndDate = "2026-01-02" })
    assert.equal(errors.NETWORK, err.code)
    local c = client(faults.endpoint, { validate = false, timeout = 1 })
    for _, steps in ipairs({ { "reset" }, { "create_reset" }, { "half" }, { "never_ends" } }) do
      _, err = call(c, "ChannelCreateFlowGroupByFiles", { Scenario = "secrets-" .. calls .. "-" .. os.time(),
        Steps = steps })
      assert.truthy(err)
    end
    -- room for the handshake under valgrind (make check), where 2 s can pass before the certificate is refused
    _, err = call(client(faults.tls_endpoint, { validate = false, timeout = 20 }), "DescribeFlowDetailInfo",
      { Scenario = "tls" })
    assert.equal("tls", err.network)
  end)

  it("collects output from validation and credential errors", function()
    local c = client(sb.endpoint)
    local _, err = call(c, "ChannelCreateFlowGroupByFiles", { Agent = sb.agent, FlowGroupName = SECRET_ID })
    assert.equal("validation", err.kind)
    _, err = call(c, "UploadFiles", { Agent = sb.agent, BusinessType = "DOCUMENT",
      FileInfos = { { FileBody = string.rep("A", 10 * 1024 * 1024 + 1) } } }, { validate = false })
    assert.equal(errors.REQUEST_TOO_LARGE, err.code)
    local bad = client(sb.endpoint, { credentials = credentials.static{ secret_id = SECRET_ID, secret_key = SECRET_KEY,
      token = TOKEN .. "\r\nX-Evil: 1" } })
    _, err = bad:prepare("DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { "x" } })
    see_error(err)
    assert.equal(errors.HEADER_VALUE, err.code)
    local none = client(sb.endpoint, { credentials = credentials.env(function() return nil end) })
    _, err = none:call("DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { "x" } })
    see_error(err)
    assert.equal(errors.CREDENTIAL, err.code)
    local ok, raised = pcall(essbasic.new, { secret_id = SECRET_ID, secret_key = SECRET_KEY, token = TOKEN,
      endpoint = "ftp://" .. SECRET_KEY })
    assert.is_false(ok)
    -- The endpoint is not a secret option: what matters is that the key and token options are not echoed.
    see((tostring(raised):gsub("ftp://" .. SECRET_KEY:gsub("%p", "%%%0"), "ftp://<endpoint>")))
  end)

  it("collects tostring of the client's parts", function()
    local provider = credentials.static{ secret_id = SECRET_ID, secret_key = SECRET_KEY, token = TOKEN }
    local creds = provider.get()
    see(tostring(provider))
    see(tostring(creds))
    see(tostring(creds.signing_key))
    see(tostring(client(sb.endpoint)))
    local signer = core.tc3_signer(SECRET_KEY)
    see(tostring(signer))
    local ok, why = pcall(signer.sign, signer, -1, "essbasic", "POST", "", { "host", "x" }, "")
    assert.is_false(ok)
    see(tostring(why))
  end)

  it("finds no secret key, token or signature in any of it", function()
    assert.is_true(calls >= 18, "calls made: " .. calls)
    assert.is_true(#signatures >= 2 * (calls - 1), "signatures recomputed: " .. #signatures) -- one call is too large
    assert.is_true(#texts > 100, "texts collected: " .. #texts)
    local secrets = { SECRET_KEY, TOKEN, "TC3" .. SECRET_KEY, SECRET_KEY:lower(), TOKEN:lower() }
    for _, s in ipairs(texts) do
      local low = s:lower()
      for _, secret in ipairs(secrets) do
        assert.is_nil(low:find(secret:lower(), 1, true), "a secret in: " .. s:sub(1, 300))
      end
      for _, sig in ipairs(signatures) do
        assert.is_nil(s:find(sig, 1, true), "a signature in: " .. s:sub(1, 300))
      end
      assert.is_nil(s:find("Signature=%x%x%x%x"), "a signature in: " .. s:sub(1, 300))
    end
  end)

  it("has a debug log that shows the requests with the secrets redacted", function()
    local requests, redacted_sig, redacted_token, responses = 0, 0, 0, 0
    for _, line in ipairs(logs) do
      if line:find("^essbasic request %u%a+ ") then
        requests = requests + 1
        assert.truthy(line:find('"X-TC-Action":"', 1, true), line)
        assert.truthy(line:find(SECRET_ID, 1, true), line) -- the secret id is not a secret: it says which key
        if line:find("Signature=<redacted>", 1, true) then redacted_sig = redacted_sig + 1 end
        if line:find('"X-TC-Token":"<redacted>"', 1, true) then redacted_token = redacted_token + 1 end
      elseif line:find("^essbasic response ") then
        responses = responses + 1
      end
    end
    assert.is_true(requests >= 15, "request lines: " .. requests)
    assert.equal(requests, redacted_sig)
    assert.equal(requests, redacted_token)
    assert.is_true(responses >= 10, "response lines: " .. responses)
  end)
end)

-- Issue 27, findings 2 and 10: credentials in URLs never leave the library. libcurl quotes a malformed proxy URL
-- whole in its own error text; essbasic.new, a Redis URL and the command line's --header quoted theirs.
describe("credentials in URLs", function()
  local PASSWORD = "pr0xyPASSWORD"
  local cli = require("helpers.cli").new()
  teardown(function() cli:remove() end)

  local MALFORMED = {
    "http://user:" .. PASSWORD .. "@127.0.0.1:99999",     -- a bad port
    "http://user:pr0xy PASSWORD@127.0.0.1:3128",          -- a space in the password
    "htp://user:" .. PASSWORD .. "@127.0.0.1:3128",       -- an unknown scheme
    "socks9://user:" .. PASSWORD .. "@127.0.0.1:1080",
    "user:" .. PASSWORD .. "@127.0.0.1:abc",              -- no scheme, a bad port
    "http://user:" .. PASSWORD .. "@[::1:3128",           -- an unclosed IPv6 bracket
  }
  local USAGE = { Agent = { AppId = "app", ProxyOrganizationOpenId = "org", ProxyOperator = { OpenId = "op" } },
    StartDate = "2026-01-01", EndDate = "2026-01-02" }

  local function refute_password(text)
    assert.is_nil(text:find("pr0xy", 1, true), "the password in: " .. text)
    assert.is_nil(text:find("PASSWORD", 1, true), "the password in: " .. text)
  end

  it("removes a malformed proxy URL's password from err.message and tostring(err)", function()
    for _, proxy in ipairs(MALFORMED) do
      local c = essbasic.new{ secret_id = SECRET_ID, secret_key = SECRET_KEY, endpoint = "https://127.0.0.1:9",
        proxy = proxy }
      local _, err = c:call("DescribeUsage", USAGE)
      assert.equal(errors.NETWORK, err.code)
      assert.truthy(err.message:find("***@", 1, true), err.message) -- libcurl quoted the URL: not vacuous
      refute_password(err.message)
      refute_password(tostring(err))
    end
  end)

  it("removes the password of http_proxy / HTTPS_PROXY from the command line's stderr", function()
    local env = { TENCENTCLOUD_SECRET_ID = SECRET_ID, TENCENTCLOUD_SECRET_KEY = SECRET_KEY }
    for _, case in ipairs({ { "HTTPS_PROXY", "https://127.0.0.1:9" }, { "https_proxy", "https://127.0.0.1:9" },
      { "http_proxy", "http://127.0.0.1:9" } }) do
      for _, proxy in ipairs({ MALFORMED[1], MALFORMED[3], MALFORMED[5] }) do
        env[case[1]] = proxy
        env.ESSBASIC_ENDPOINT = case[2]
        local r = cli:run({ "call", "DescribeUsage", "--input", require("essbasic.json").encode(USAGE) }, { env = env })
        assert.not_equal(0, r.status)
        assert.truthy(r.err:find("***@", 1, true), case[1] .. ": " .. r.err)
        refute_password(r.err)
        refute_password(r.out)
        env[case[1]] = nil
      end
    end
  end)

  it("removes the password from essbasic.new's endpoint error and a Redis URL's error", function()
    local ok, raised = pcall(essbasic.new, { secret_id = SECRET_ID, secret_key = SECRET_KEY,
      endpoint = "https://user:" .. PASSWORD .. "@127.0.0.1" })
    assert.is_false(ok)
    assert.truthy(tostring(raised):find("https://***@127.0.0.1", 1, true), tostring(raised))
    refute_password(tostring(raised))
    for _, url in ipairs({ "rediss://:" .. PASSWORD .. "@127.0.0.1:6379/0", "redis+tls://u:" .. PASSWORD .. "@h" }) do
      ok, raised = pcall(require("essbasic.redis").parse, url, "callback_store.redis")
      assert.is_false(ok)
      assert.truthy(tostring(raised):find("***@", 1, true), tostring(raised))
      refute_password(tostring(raised))
    end
  end)

  it("does not echo a --header without a colon (it can hold a signature)", function()
    local r = cli:run({ "callback", "decrypt", "--key", string.rep("k", 32), "--allow-unsigned", "--header",
      "sig-" .. PASSWORD }, { stdin = "{}" })
    assert.not_equal(0, r.status)
    assert.truthy(r.err:find("--header", 1, true), r.err)
    refute_password(r.err)
  end)
end)

-- Issue 27, finding 5: a profile file others may read is used, with a warning (through the client's logger, or on
-- the command line's stderr).
describe("a credentials profile file others may read", function()
  local cli = require("helpers.cli").new()
  local files = require("helpers.files")
  teardown(function() cli:remove() end)
  local USAGE = '{"Agent":{"AppId":"app","ProxyOrganizationOpenId":"org","ProxyOperator":{"OpenId":"op"}},'
    .. '"StartDate":"2026-01-01","EndDate":"2026-01-02"}'

  local function profile(mode)
    local path = cli.dir .. "/credentials-" .. mode
    files.write(path, "[default]\nsecret_id = " .. SECRET_ID .. "\nsecret_key = " .. SECRET_KEY .. "\n")
    assert(os.execute("chmod " .. mode .. " " .. path))
    return path
  end

  it("is warned about on the command line's stderr, and a private one is not", function()
    for _, mode in ipairs({ "644", "640" }) do
      local path = profile(mode)
      local r = cli:run({ "call", "DescribeUsage", "--input", USAGE },
        { env = { TENCENTCLOUD_CREDENTIALS_FILE = path, ESSBASIC_ENDPOINT = "http://127.0.0.1:9" } })
      assert.truthy(r.err:find("chmod 600", 1, true), mode .. ": " .. r.err)
      assert.truthy(r.err:find("could not connect", 1, true), r.err) -- the file was used all the same
      assert.is_nil(r.err:find(SECRET_KEY, 1, true))
    end
    local r = cli:run({ "call", "DescribeUsage", "--input", USAGE },
      { env = { TENCENTCLOUD_CREDENTIALS_FILE = profile("600"), ESSBASIC_ENDPOINT = "http://127.0.0.1:9" } })
    assert.is_nil(r.err:find("chmod 600", 1, true), r.err)
    assert.truthy(r.err:find("could not connect", 1, true), r.err)
  end)

  it("is warned about through the client's logger, once", function()
    local lines = {}
    local provider = credentials.profile{ path = profile("604"), logger = function(level, msg)
      lines[#lines + 1] = level .. " " .. msg
    end }
    assert.truthy(provider.get())
    assert.truthy(provider.get())
    assert.equal(1, #lines)
    assert.truthy(lines[1]:find("^warn essbasic: the credentials profile file .* %(mode 604%)"), lines[1])
  end)
end)
