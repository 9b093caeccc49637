-- The client without a server: options, the signed request (checked by recomputing TC3 independently from the
-- core's hash primitives), JSON shape on the wire, validation before the network, secrets kept out of strings.

local essbasic = require("essbasic")
local core = require("essbasic.core")
local json = require("essbasic.json")
local credentials = require("essbasic.credentials")
local tc3 = require("helpers.tc3")

local SECRET_ID = "AKIDspecclient0000000000000000000001"
local SECRET_KEY = "spec-client-secret-key-0123456789"
local TOKEN = "spec-session-token-abcdef"
local REFUSED = "http://127.0.0.1:9" -- discard port: nothing listens there on these machines

local function new(opts)
  local o = { secret_id = SECRET_ID, secret_key = SECRET_KEY, endpoint = REFUSED, file_endpoint = REFUSED,
    retry = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return essbasic.new(o)
end

local agent = tc3.agent

-- The TC3 signature of a prepared request, recomputed from its parts with sha256/hmac only.
local function expected_authorization(req, secret_id, secret_key)
  return tc3.authorization(secret_id, secret_key, req.headers["Host"], tonumber(req.headers["X-TC-Timestamp"]),
    req.body, req.headers["Content-Type"])
end

describe("essbasic.new", function()
  it("raises on unknown options and wrong types", function()
    assert.has_error(function() new{ secret_idd = "x" } end,
      "essbasic.new: unknown option 'secret_idd' (did you mean secret_id?)")
    assert.has_error(function() new{ timeout = "5" } end, "essbasic.new: option 'timeout' must be a number, got string")
    assert.has_error(function() essbasic.new("x") end)
  end)

  it("refuses endpoints that are not http(s)://host[:port] or carry CR/LF", function()
    assert.has_error(function() new{ endpoint = "ftp://x" } end)
    assert.has_error(function() new{ endpoint = "https://a.example/path" } end)
    assert.has_error(function() new{ endpoint = "https://a.example\r\nX-Evil: 1" } end)
    assert.has_error(function() new{ region = "ap-guangzhou\n" } end)
    assert.has_error(function() new{ language = "zh-CN\0" } end)
    assert.has_error(function() new{ request_client = "me\r\n" } end)
  end)

  it("keeps the secret key, the token and signatures out of tostring", function()
    local c = new{ token = TOKEN }
    local req = assert(c:prepare("DescribeUsage", { Agent = agent(), StartDate = "2026-01-01", EndDate = "2026-01-31" },
      { timestamp = 1764300000 }))
    local sig = req.headers.Authorization:match("Signature=(%x+)")
    for _, s in ipairs({ tostring(c), tostring(c.provider.get()), tostring(c.provider) }) do
      assert.is_nil(s:find(SECRET_KEY, 1, true), s)
      assert.is_nil(s:find(TOKEN, 1, true), s)
      assert.is_nil(s:find(sig, 1, true), s)
    end
  end)
end)

describe("client:prepare", function()
  it("signs exactly the bytes it sends, with the essbasic service whatever the host", function()
    local c = new{ endpoint = "https://essbasic.test.ess.tencent.cn" }
    local req = assert(c:prepare("ChannelCancelFlow", { Agent = agent(), FlowId = "f1" }, { timestamp = 1764300000 }))
    assert.equal("POST", req.method)
    assert.equal("https://essbasic.test.ess.tencent.cn/", req.url)
    assert.equal("essbasic.test.ess.tencent.cn", req.headers.Host)
    assert.equal(expected_authorization(req, SECRET_ID, SECRET_KEY), req.headers.Authorization)
    local h = req.headers
    assert.equal("ChannelCancelFlow", h["X-TC-Action"])
    assert.equal("2021-05-26", h["X-TC-Version"])
    assert.equal("1764300000", h["X-TC-Timestamp"])
    assert.equal("zh-CN", h["X-TC-Language"])
    assert.equal("application/json", h["Content-Type"])
    assert.truthy(h["X-TC-RequestClient"]:match("^SDK_LUA_ESSBASIC_%d+%.%d+%.%d+$"))
    assert.is_nil(h["X-TC-Region"])
    assert.is_nil(h["X-TC-Token"])
    assert.same({ Agent = agent(), FlowId = "f1" }, json.decode(req.body))
  end)

  it("uses the UTC date of the timestamp in the credential scope", function()
    -- 2019-02-26 00:44:25 in UTC+8 is still 2019-02-25 in UTC
    local req = assert(new():prepare("DescribeUsage", {}, { timestamp = 1551113065, validate = false }))
    assert.truthy(req.headers.Authorization:find("/2019-02-25/essbasic/tc3_request", 1, true))
  end)

  it("sends region and token only when set, and a custom request client suffix", function()
    local c = new{ region = "ap-guangzhou", token = TOKEN, request_client = "hr-portal 2.1" }
    local req = assert(c:prepare("DescribeUsage", {}, { timestamp = 1764300000, validate = false }))
    assert.equal("ap-guangzhou", req.headers["X-TC-Region"])
    assert.equal(TOKEN, req.headers["X-TC-Token"])
    assert.truthy(req.headers["X-TC-RequestClient"]:find("; hr-portal 2.1", 1, true))
  end)

  it("sends {} for no parameters, [] for empty lists and integers exactly", function()
    local c = new{ validate = false }
    assert.equal("{}", assert(c:prepare("DescribeUsage", nil, { timestamp = 1 })).body)
    local req = assert(c:prepare("DescribeFlowDetailInfo", { Agent = agent(), FlowIds = {} }, { timestamp = 1 }))
    assert.truthy(req.body:find('"FlowIds":[]', 1, true), req.body)
    req = assert(c:prepare("ChannelCreateFlowGroupByFiles", { FlowFileInfos = { { Deadline = 33162419560,
      FlowApprovers = {}, FileIds = { "x" } } } }, { timestamp = 1 }))
    assert.truthy(req.body:find('"Deadline":33162419560', 1, true), req.body)
    assert.truthy(req.body:find('"FlowApprovers":[]', 1, true), req.body)
  end)

  it("sends UploadFiles to the file endpoint", function()
    local c = new{ file_endpoint = "https://file.test.ess.tencent.cn" }
    local req = assert(c:prepare("UploadFiles", { Agent = agent(), BusinessType = "DOCUMENT",
      FileInfos = { { FileBody = core.base64_encode("%PDF-1.4"), FileName = "a.pdf" } } }, { timestamp = 1764300000 }))
    assert.equal("https://file.test.ess.tencent.cn/", req.url)
    assert.equal("file.test.ess.tencent.cn", req.headers.Host)
    assert.truthy(req.headers.Authorization:find("/essbasic/tc3_request", 1, true))
  end)

  it("raises on a malformed action name or params of the wrong type", function()
    local c = new()
    assert.has_error(function() c:prepare("Describe\r\nX: y", {}) end)
    assert.has_error(function() c:prepare(42, {}) end)
    assert.has_error(function() c:prepare("DescribeUsage", "x") end)
    assert.has_error(function() c:prepare("DescribeUsage", {}, { timestamp = 1.5 }) end)
  end)
end)

describe("client:call before the network", function()
  it("refuses an invalid request without connecting (the endpoint refuses connections)", function()
    local resp, err = new():ChannelCreateFlowGroupByFiles({ Agent = agent(), FlowGroupName = "g",
      FlowFileInfos = { { FileIds = { "f" }, FlowName = "n", FlowApprovers = { { ApproverType = "PERSON",
        Name = "张三", Mobile = "13800138000" } } } } })
    assert.is_nil(resp)
    assert.equal("validation", err.kind)
    assert.equal(0, err.attempts)
    assert.truthy(err.problems and #err.problems >= 1)
  end)

  it("refuses a request over 10 MB before sending", function()
    local big = string.rep("A", 10 * 1024 * 1024 + 16)
    local resp, err = new{ validate = false }:call("UploadFiles", { FileInfos = { { FileBody = big } } })
    assert.is_nil(resp)
    assert.equal("ClientError.RequestTooLarge", err.code)
  end)

  it("gives an encode error for cyclic tables when validation is off", function()
    local t = {}
    t.self = t
    local resp, err = new{ validate = false }:call("DescribeUsage", { Agent = t })
    assert.is_nil(resp)
    assert.equal("ClientError.EncodeError", err.code)
  end)

  it("reports a refused connection as a network error that never reached the server", function()
    local resp, err = new():call("DescribeUsage", { Agent = agent(), StartDate = "2026-01-01", EndDate = "2026-01-31" })
    assert.is_nil(resp)
    assert.equal("ClientError.NetworkError", err.code)
    assert.equal("connect", err.network)
    assert.is_false(err.sent)
    assert.equal(1, err.attempts)
    assert.is_nil(tostring(err):find(SECRET_KEY, 1, true))
  end)

  it("has a method for every action in the schema and nothing else", function()
    local c = new()
    local api = require("essbasic.api")
    local n = 0
    for _, name in ipairs(api.actions()) do
      assert.is_function(c[name], name)
      n = n + 1
    end
    assert.equal(100, n)
    assert.has_error(function() return c.NoSuchAction end, "essbasic: the API has no action NoSuchAction")
    assert.has_error(function() c:ChannelCreateFlowGroupByFile{} end,
      "essbasic: the API has no action ChannelCreateFlowGroupByFile (did you mean ChannelCreateFlowGroupByFiles?)")
    assert.is_nil(c.no_such_field) -- lowercase: the client's own optional fields, absent
  end)
end)

describe("credentials", function()
  it("reads the environment, then the profile file, and says what is missing", function()
    local env = {}
    local getenv = function(k) return env[k] end
    local chain = credentials.chain({ credentials.env(getenv),
      credentials.profile{ getenv = getenv, path = os.tmpname() .. ".missing" } })
    local creds, err = chain.get()
    assert.is_nil(creds)
    assert.equal("ClientError.CredentialError", err.code)
    env.TENCENTCLOUD_SECRET_ID, env.TENCENTCLOUD_SECRET_KEY = "AKIDenv", "envkey"
    creds = assert(credentials.chain({ credentials.env(getenv) }).get())
    assert.equal("AKIDenv", creds.secret_id)
  end)

  it("reads [default] from an INI profile file", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("[other]\nsecret_id = nope\n\n[default]\nsecret_id = AKIDfile\nsecret_key = filekey\n")
    f:close()
    local creds = assert(credentials.profile{ path = path }.get())
    os.remove(path)
    assert.equal("AKIDfile", creds.secret_id)
    local sig = creds.signing_key:sign(1764300000, "essbasic", "POST", "", { "content-type", "application/json",
      "host", "h" }, "{}")
    local again = credentials.static{ secret_id = "AKIDfile", secret_key = "filekey" }.get()
    assert.equal(again.signing_key:sign(1764300000, "essbasic", "POST", "", { "content-type", "application/json",
      "host", "h" }, "{}"), sig)
  end)
end)

describe("the file endpoint", function()
  local function upload_url(opts)
    local c = essbasic.new(opts)
    local req = assert(c:prepare("UploadFiles", { BusinessType = "DOCUMENT", Agent = agent(),
      FileInfos = { { FileName = "a.pdf", FileBody = "JVBERg==" } } }, { timestamp = 1 }))
    return req.url
  end
  local keys = { secret_id = SECRET_ID, secret_key = SECRET_KEY }
  local function with(o)
    for k, v in pairs(keys) do o[k] = v end
    return o
  end

  it("follows the endpoint: production, Tencent's test environment, any other host itself", function()
    assert.equal("https://file.ess.tencent.cn/", upload_url(with{}))
    assert.equal("https://file.ess.tencent.cn/", upload_url(with{ endpoint = "https://essbasic.tencentcloudapi.com" }))
    assert.equal("https://file.test.ess.tencent.cn/",
      upload_url(with{ endpoint = "https://essbasic.test.ess.tencent.cn" }))
    assert.equal("http://127.0.0.1:9/", upload_url(with{ endpoint = REFUSED }))
    assert.equal("https://gw.example:8443/", upload_url(with{ endpoint = "https://gw.example:8443" }))
    assert.equal("http://127.0.0.1:10/", upload_url(with{ endpoint = REFUSED, file_endpoint = "http://127.0.0.1:10" }))
  end)

  it("refuses production and non-production mixed, either way", function()
    local mixed = "are not the same environment"
    assert.has_error(function()
      essbasic.new(with{ endpoint = REFUSED, file_endpoint = "https://file.ess.tencent.cn" })
    end)
    local ok, err = pcall(essbasic.new, with{ file_endpoint = "https://file.test.ess.tencent.cn" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find(mixed, 1, true), err)
    ok, err = pcall(essbasic.new, with{ endpoint = "https://essbasic.test.ess.tencent.cn",
      file_endpoint = "https://file.ess.tencent.cn" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find(mixed, 1, true), err)
  end)

  it("sends UploadFiles to a local endpoint when only the endpoint is set (a real sandbox answers it)", function()
    local sb = require("helpers.sandbox").start()
    finally(function() sb:stop() end)
    local c = essbasic.new{ secret_id = sb.secret_id, secret_key = sb.secret_key, endpoint = sb.endpoint,
      retry = false }
    local resp, err = c:UploadFiles{ BusinessType = "DOCUMENT", Agent = sb.agent,
      FileInfos = { { FileName = "a.pdf", FileBody = core.base64_encode(require("helpers.sandbox").PDF) } } }
    assert.is_nil(err)
    assert.equal(1, #resp.FileIds)
  end)
end)

describe("errors that do not bite", function()
  it("a file essbasic.file cannot read is the call's error, even inside FileInfos = { ... }", function()
    local c = new()
    local missing = os.tmpname() .. ".missing.pdf"
    local f, ferr = essbasic.file(missing)
    assert.equal("ClientError.FileError", ferr.code)
    assert.equal(ferr, f)
    local readable = os.tmpname()
    finally(function() os.remove(readable) end)
    local resp, err = c:UploadFiles{ BusinessType = "DOCUMENT", Agent = agent(),
      FileInfos = { essbasic.file(missing), essbasic.file(readable) } }
    assert.is_nil(resp)
    assert.equal("ClientError.FileError", err.code)
    assert.truthy(err.message:find("missing.pdf", 1, true), err.message)
    local results = c:call_many{ { "UploadFiles", { BusinessType = "DOCUMENT", Agent = agent(),
      FileInfos = { essbasic.file(readable), essbasic.file(missing) } } } }
    assert.equal("ClientError.FileError", results[1][2].code)
  end)

  it("concatenates with strings on either side", function()
    local err = require("essbasic.errors").new{ kind = "network", code = "ClientError.NetworkError",
      message = "refused" }
    assert.equal("failed: " .. tostring(err), "failed: " .. err)
    assert.equal(tostring(err) .. "!", err .. "!")
  end)

  it("debug = true without a logger logs the requests to stderr; warnings need no option", function()
    local lua = os.getenv("ESSBASIC_LUA") or "lua5.4"
    local script = os.tmpname()
    finally(function() os.remove(script) end)
    local f = assert(io.open(script, "w"))
    f:write([[
local essbasic = require("essbasic")
local c = essbasic.new{ secret_id = "AKIDx", secret_key = "k", endpoint = "http://127.0.0.1:9", retry = false,
  debug = true }
c:DescribeFlowDetailInfo{ Agent = { AppId = "a", ProxyOrganizationOpenId = "o", ProxyOperator = { OpenId = "p" } },
  FlowIds = { "f" } }
]])
    f:close()
    local q = require("essbasic.cli.common").shell_quote
    local p = assert(io.popen("LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " " .. lua .. " "
      .. script .. " 2>&1 >/dev/null"))
    local stderr = p:read("*a")
    p:close()
    assert.truthy(stderr:find("essbasic request DescribeFlowDetailInfo http://127.0.0.1:9/", 1, true), stderr)
    assert.is_nil(stderr:find("k\"", 1, true))
  end)

  it("one logger: the client's reaches the Redis rate limit", function()
    local lines = {}
    local c = essbasic.new{ secret_id = SECRET_ID, secret_key = SECRET_KEY, endpoint = REFUSED,
      logger = function(level, message) lines[#lines + 1] = level .. " " .. message end,
      rate_limit = { redis = "redis://127.0.0.1:9", outage = "open" } }
    c:DescribeFlowDetailInfo{ Agent = agent(), FlowIds = { "f" } }
    local all = table.concat(lines, "\n")
    assert.truthy(all:find("warn essbasic rate limit: ", 1, true), all)
  end)
end)
