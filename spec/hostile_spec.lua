-- Hostile input (issue 6): values that would forge headers, requests over the API's 10 MB, tables nested 10000
-- deep or cyclic, 50 MB strings, integers past int64 or past the doubles' exact range, JSON that only opens
-- brackets, damaged callbacks. Each one gives an error (or an exact value), never a crash, never a request sent.
-- The client points at the discard port, so a "network" error would mean the refusal came too late.

local essbasic = require("essbasic")
local core = require("essbasic.core")
local json = require("essbasic.json")
local errors = require("essbasic.errors")
local credentials = require("essbasic.credentials")

local SECRET_ID = "AKIDspechostile00000000000000000001"
local SECRET_KEY = "spec-hostile-secret-key-0123456789"
local REFUSED = "http://127.0.0.1:9" -- nothing listens on the discard port
local IS_54 = math.type ~= nil

local function new(opts)
  local o = { secret_id = SECRET_ID, secret_key = SECRET_KEY, endpoint = REFUSED, file_endpoint = REFUSED,
    retry = false, rate_limit = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return essbasic.new(o)
end

local agent = require("helpers.tc3").agent

local function upload(extra)
  local p = { Agent = agent(), BusinessType = "DOCUMENT",
    FileInfos = { { FileBody = "JVBERi0=", FileName = "a.pdf" } } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

-- A table nested n deep through key k (an array when k is 1).
local function nested(n, k)
  local root = {}
  local t = root
  for _ = 2, n do
    local child = {}
    t[k] = child
    t = child
  end
  return root
end

local BAD_BYTES = { ["CR"] = "\r", ["LF"] = "\n", ["NUL"] = "\0", ["CRLF"] = "\r\n" }

describe("hostile header values", function()
  for label, bad in pairs(BAD_BYTES) do
    it("raises for " .. label .. " in the region, language, request client, endpoint and file endpoint", function()
      for _, opt in ipairs({ "region", "language", "request_client" }) do
        local ok, why = pcall(new, { [opt] = "ap-guangzhou" .. bad .. "X-Evil: 1" })
        assert.is_false(ok, opt)
        assert.truthy(tostring(why):find(opt, 1, true), tostring(why))
      end
      for _, opt in ipairs({ "endpoint", "file_endpoint" }) do
        assert.has_error(function() new{ [opt] = "http://127.0.0.1:9" .. bad .. "X-Evil: 1" } end)
        assert.has_error(function() new{ [opt] = "http://127.0.0.1" .. bad .. ":9" } end)
      end
    end)

    it("raises for " .. label .. " in the action name, through call, prepare and the methods", function()
      local c = new()
      assert.has_error(function() c:call("DescribeUsage" .. bad .. "X-Evil: 1", {}) end)
      assert.has_error(function() c:prepare("DescribeUsage" .. bad, {}) end)
      assert.has_error(function() c:call(bad .. "DescribeUsage", {}) end)
      assert.is_nil(c["DescribeUsage" .. bad])
    end)

    it("returns InvalidHeaderValue for " .. label .. " in a provider's token or secret id, and sends nothing",
      function()
        local c = new{ credentials = credentials.static{ secret_id = SECRET_ID, secret_key = SECRET_KEY,
          token = "tok" .. bad .. "X-Evil: 1" } }
        local req, err = c:prepare("DescribeUsage", {}, { timestamp = 1764300000, validate = false })
        assert.is_nil(req)
        assert.is_true(errors.is_error(err))
        assert.equal(errors.HEADER_VALUE, err.code)
        assert.is_nil(tostring(err):find("X-Evil", 1, true), tostring(err))
        local resp, cerr = c:call("DescribeUsage", {}, { validate = false })
        assert.is_nil(resp)
        assert.equal(errors.HEADER_VALUE, cerr.code)
        assert.is_nil(cerr.network) -- refused while signing, before the transport
        assert.is_true(cerr.attempts <= 1)

        c = new{ credentials = credentials.static{ secret_id = "AKID" .. bad .. "x", secret_key = SECRET_KEY } }
        req, err = c:prepare("DescribeUsage", {}, { timestamp = 1764300000, validate = false })
        assert.is_nil(req)
        assert.equal(errors.HEADER_VALUE, err.code)
      end)
  end

  it("passes tabs and non-ASCII in values that may hold them, so the refusals above are about CR/LF/NUL", function()
    local c = new{ region = "ap-guangzhou", language = "en-US",
      credentials = credentials.static{ secret_id = SECRET_ID, secret_key = SECRET_KEY, token = "tok\tén" } }
    local req = assert(c:prepare("DescribeUsage", {}, { timestamp = 1764300000, validate = false }))
    assert.equal("tok\tén", req.headers["X-TC-Token"])
  end)
end)

describe("oversized requests", function()
  it("refuses a 10 MB + 1 FileBody before sending (RequestTooLarge, not a network error), validation on and off",
    function()
      local c = new()
      local body = string.rep("A", 10 * 1024 * 1024 + 1)
      for _, v in ipairs({ true, false }) do
        local resp, err = c:call("UploadFiles", upload{ FileInfos = { { FileBody = body, FileName = "a.pdf" } } },
          { validate = v })
        assert.is_nil(resp)
        assert.equal(errors.REQUEST_TOO_LARGE, err.code, tostring(err))
        assert.equal(0, err.attempts)
        assert.is_nil(err.network)
        assert.is_true(#tostring(err) < 1000)
      end
      local req, err = c:prepare("UploadFiles", upload{ FileInfos = { { FileBody = body } } })
      assert.is_nil(req)
      assert.equal(errors.REQUEST_TOO_LARGE, err.code)
    end)

  it("lets a request just under the limit through to the transport (then the refused connection)", function()
    local c = new()
    local overhead = #assert(c:prepare("UploadFiles", upload{ FileInfos = { { FileBody = "" } } },
      { timestamp = 1, validate = false })).body
    local body = string.rep("A", 10 * 1024 * 1024 - overhead)
    local resp, err = c:call("UploadFiles", upload{ FileInfos = { { FileBody = body } } }, { validate = false })
    assert.is_nil(resp)
    assert.equal(errors.NETWORK, err.code, tostring(err))
    assert.equal("connect", err.network)
  end)
end)

describe("deep and cyclic tables", function()
  local function cyclic()
    local t = { AppId = "a" }
    t.ProxyOperator = t
    return t
  end

  local shapes = {
    ["an object 10000 deep in a struct field"] = function() return upload{ Agent = nested(10000, "ProxyOperator") } end,
    ["an array 10000 deep in a list field"] = function() return upload{ FileInfos = nested(10000, 1) } end,
    ["an object 10000 deep under an unknown field"] = function() return upload{ Extra = nested(10000, "a") } end,
    ["a cycle in a struct"] = function() return upload{ Agent = cyclic() } end,
    ["a cycle through a list"] = function()
      local files = {}
      files[1] = { FileBody = "x", FileName = files }
      return upload{ FileInfos = files }
    end,
    ["params that contain themselves"] = function()
      local p = upload()
      p.Agent.ProxyOperator.Self = p
      return p
    end,
  }

  for label, make in pairs(shapes) do
    it("gives an error for " .. label .. ", validation on and off", function()
      local c = new()
      local resp, err = c:call("UploadFiles", make(), { validate = true })
      assert.is_nil(resp)
      assert.equal("validation", err.kind, tostring(err))
      assert.equal(0, err.attempts)
      resp, err = c:call("UploadFiles", make(), { validate = false })
      assert.is_nil(resp)
      assert.equal(errors.ENCODE, err.code, tostring(err))
      assert.equal(0, err.attempts)
      assert.truthy(err.message:find("nested too deep", 1, true), err.message)
    end)
  end

  it("json.encode refuses 10000-deep and cyclic tables with a path", function()
    local v, why = json.encode(nested(10000, "a"))
    assert.is_nil(v)
    assert.truthy(why:find("^nested too deep.* at a%.a%.a"), why)
    local t = {}
    t[1] = t
    v, why = json.encode(t)
    assert.is_nil(v)
    assert.truthy(why:find("[1][1]", 1, true), why)
  end)

  it("json.decode refuses 1 MB of '[' and of '{\"a\":' at the nesting limit", function()
    for _, unit in ipairs({ "[", '{"a":', "[{\"a\":" }) do
      local text = string.rep(unit, math.floor(1024 * 1024 / #unit))
      local v, why = json.decode(text)
      assert.is_nil(v)
      assert.truthy(why:find("nesting deeper than 200", 1, true), why)
    end
    -- 200 levels are fine, 201 are not
    assert.truthy(json.decode(string.rep("[", 200) .. string.rep("]", 200)))
    assert.is_nil(json.decode(string.rep("[", 201) .. string.rep("]", 201)))
  end)
end)

describe("huge strings", function()
  it("gives a validation error for a 50 MB string in a field, quickly and without echoing it", function()
    local c = new()
    local huge = string.rep("x", 50 * 1024 * 1024)
    for _, params in ipairs({ upload{ BusinessType = huge },
      upload{ FileInfos = { { FileBody = "x", FileName = huge } } },
      upload{ Agent = { AppId = huge, ProxyOrganizationOpenId = "o", ProxyOperator = { OpenId = "p" } } } }) do
      local t0 = core.monotonic()
      local resp, err = c:call("UploadFiles", params)
      assert.is_nil(resp)
      assert.is_true(errors.is_error(err))
      assert.truthy(err.kind == "validation" or err.code == errors.REQUEST_TOO_LARGE, tostring(err))
      assert.equal(0, err.attempts)
      assert.is_true(#tostring(err) < 10000, "the error message holds " .. #tostring(err) .. " bytes")
      assert.is_true(core.monotonic() - t0 < 10)
    end
  end)

  it("refuses a 50 MB string in an unchecked field as RequestTooLarge with validation off", function()
    local resp, err = new():call("UploadFiles", upload{ BusinessType = string.rep("x", 50 * 1024 * 1024) },
      { validate = false })
    assert.is_nil(resp)
    assert.equal(errors.REQUEST_TOO_LARGE, err.code)
  end)
end)

describe("integers at the edges of int64 and of doubles", function()
  -- The Deadline as the body carries it: the number's text and its decoded value.
  local function sent_deadline(value, validate)
    local req, err = new():prepare("UploadFiles", upload{ Deadline = value }, { timestamp = 1, validate = validate })
    if not req then return nil, err end
    return req.body:match('"Deadline":([^,}]+)'), json.decode(req.body).Deadline
  end

  local cases = {
    { "2^63 as a float", 2 ^ 63 },
    { "-2^63 - 2^11 as a float", -(2 ^ 63) - 2048 },
    { "1e300", 1e300 },
    { "2^53 + 2 (exactly representable, past the exact integer range)", 2 ^ 53 + 2 },
    { "2^53 + 1 (rounds to 2^53 before the client sees it)", 2 ^ 53 + 1 },
  }
  if IS_54 then
    cases[#cases + 1] = { "math.maxinteger + 1 (wraps to math.mininteger in 5.4)", math.maxinteger + 1 }
    cases[#cases + 1] = { "math.maxinteger", math.maxinteger }
    cases[#cases + 1] = { "math.mininteger", math.mininteger }
    cases[#cases + 1] = { "math.maxinteger as a float (2^63)", math.maxinteger + 0.0 }
  end

  for _, case in ipairs(cases) do
    local label, value = case[1], case[2]
    it("sends " .. label .. " exactly or refuses it, never rounded", function()
      for _, validate in ipairs({ true, false }) do
        local text, decoded = sent_deadline(value, validate)
        if text == nil then
          assert.is_true(errors.is_error(decoded))
          assert.equal("validation", decoded.kind, tostring(decoded))
          assert.is_true(validate, "only validation may refuse a finite number")
        else
          assert.equal(value, decoded, "the body says " .. text)
          assert.equal(value, tonumber(text), "the body says " .. text)
          if IS_54 and math.type(value) == "integer" then
            assert.equal(string.format("%d", value), text)
            assert.equal("integer", math.type(decoded))
          end
        end
      end
    end)
  end

  it("refuses with validation what cannot be an int64 exactly, and accepts the exact ones", function()
    local _, err = sent_deadline(2 ^ 63, true)
    assert.equal("validation", err.kind)
    _, err = sent_deadline(2 ^ 53 + 2, true)
    assert.equal("validation", err.kind)
    assert.equal("1700000000", (sent_deadline(1700000000, true)))
    assert.equal("9007199254740992", (sent_deadline(2 ^ 53, true)))
    if IS_54 then assert.equal("9223372036854775807", (sent_deadline(math.maxinteger, true))) end
  end)

  it("refuses NaN and infinities whatever the validation", function()
    for _, v in ipairs({ 0 / 0, math.huge, -math.huge }) do
      for _, validate in ipairs({ true, false }) do
        local text, err = sent_deadline(v, validate)
        assert.is_nil(text)
        assert.truthy(err.kind == "validation" or err.code == errors.ENCODE, tostring(err))
      end
    end
  end)

  it("decodes integers past int64 as floats, never wrapped", function()
    local v = json.decode("[9223372036854775807, 9223372036854775808, -9223372036854775809, 1e19]")
    assert.is_true(v[2] > 9.2e18 and v[3] < -9.2e18 and v[4] == 1e19)
    if IS_54 then
      assert.equal(math.maxinteger, v[1])
      assert.equal("float", math.type(v[2]))
    end
  end)
end)

describe("hostile callbacks", function()
  local callback = require("essbasic.callback")
  local KEY = "spec-hostile-callback-key-000001"
  local TOKEN = "spec-hostile-callback-token"

  it("refuses damaged base64 and ciphertexts with error objects", function()
    local good = core.base64_encode(core.aes256cbc_encrypt(KEY, KEY:sub(1, 16), '{"MsgType":"x"}'))
    local cases = {
      { "", callback.BAD_BASE64 },
      { good:sub(1, -2), callback.BAD_BASE64 },
      { good .. "\n", callback.BAD_BASE64 },
      { " " .. good, callback.BAD_BASE64 },
      { good:sub(1, 4) .. "\0" .. good:sub(6), callback.BAD_BASE64 },
      { "====", callback.BAD_BASE64 },
      { "QQ=\0", callback.BAD_BASE64 },
      { core.base64_encode(""), callback.BAD_BASE64 },
      { core.base64_encode("short"), callback.DECRYPT_FAILED },
      { core.base64_encode(string.rep("\0", 32)), callback.DECRYPT_FAILED },
      { core.base64_encode(string.rep("\255", 1024 * 1024)), callback.DECRYPT_FAILED },
      { '{"encrypt": 12}', callback.BAD_MESSAGE },
      { '{"encrypt": "' .. good, callback.BAD_JSON },
      { string.rep("[", 100000), callback.BAD_BASE64 },
    }
    for _, case in ipairs(cases) do
      local plain, err = callback.decrypt(case[1], KEY)
      assert.is_nil(plain)
      assert.is_true(errors.is_error(err))
      assert.equal(case[2], err.code, ("%q"):format(case[1]:sub(1, 40)))
      assert.is_nil(tostring(err):find(KEY, 1, true))
    end
    assert.equal('{"MsgType":"x"}', callback.decrypt(good, KEY))
  end)

  it("refuses hostile bodies and signature headers in parse without raising", function()
    local bodies = { string.rep("[", 1024 * 1024), string.rep('{"a":', 200000), "\0\0\0", '{"MsgType":"x"}\0',
      '{"encrypt":"' .. string.rep("A", 4 * 1024 * 1024) .. '"}', '{"MsgType":' .. string.rep("9", 100000) .. "}" }
    local headers = { "sha256=" .. string.rep("0", 64) .. "\r\nX-Evil: 1", "sha256=\0", string.rep("sha256=", 10000),
      "SHA256=" .. string.rep("g", 64) }
    for _, body in ipairs(bodies) do
      local msg, err = callback.parse{ body = body, key = KEY, allow_unsigned = true }
      assert.is_nil(msg)
      assert.is_true(errors.is_error(err))
      assert.is_not_nil(callback.HTTP_STATUS[err.code], err.code)
      for _, h in ipairs(headers) do
        msg, err = callback.parse{ body = body, token = TOKEN, signature = h, key = KEY }
        assert.is_nil(msg)
        assert.truthy(err.code == callback.SIGNATURE_MISSING or err.code == callback.SIGNATURE_MISMATCH, err.code)
      end
    end
  end)

  it("refuses a wrong key length and keys in the wrong type as programming errors or BadKey", function()
    local _, err = callback.decrypt("QUJD", string.rep("k", 31))
    assert.equal(callback.BAD_KEY, err.code)
    _, err = callback.decrypt("QUJD", string.rep("k", 32) .. "\0")
    assert.equal(callback.BAD_KEY, err.code)
    assert.has_error(function() callback.decrypt("QUJD", 42) end)
    assert.has_error(function() callback.parse{ body = {}, key = KEY } end)
  end)
end)

-- Issue 27, findings 1 and 9: the sandbox's data folder is private and its files are written without following
-- symlinks; its admin endpoints answer only JSON from a loopback Host. From outside: sandbox/run as a user runs
-- it, `stat` of the files, planted symlinks, raw HTTP requests.
describe("the sandbox's data folder and admin endpoints (issue 27)", function()
  local sandbox_config = require("sandbox.config")
  local files = require("helpers.files")
  local q = require("helpers.cli").quote
  local LUA = require("helpers.cli").LUA
  local tmp
  local AS_ROOT = "ESSBASIC_SANDBOX_AS_ROOT=1 " -- the suite may run as root (a container): the refusal is tested apart
  local IS_ROOT

  local function sh(cmd)
    local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    local text, code = out:match("^(.-)exit=(%d+)\n?$")
    return tonumber(code), text
  end
  local function stat(path, fmt) return select(2, sh("stat -c '" .. fmt .. "' " .. q(path))):gsub("%s+$", "") end

  setup(function()
    tmp = select(2, sh("mktemp -d /tmp/essbasic-hostile.XXXXXX")):gsub("%s+$", "")
    IS_ROOT = select(2, sh("id -u")):match("^0%s") ~= nil
  end)
  teardown(function()
    sh("sandbox/run stop --data " .. q(tmp .. "/d") .. " >/dev/null")
    os.execute("rm -rf " .. q(tmp))
  end)

  it("has a per-user default data folder, never a shared path", function()
    local _, out = sh("env -u XDG_RUNTIME_DIR " .. LUA .. " -e 'print(require(\"sandbox.config\").default_data_dir())'")
    assert.truthy(out:match("^/tmp/essbasic%-sandbox%-%d+\n$"), out)
    _, out = sh("env XDG_RUNTIME_DIR=/run/user/1234 " .. LUA
      .. " -e 'print(require(\"sandbox.config\").default_data_dir())'")
    assert.equal("/run/user/1234/essbasic-sandbox\n", out)
    assert.is_nil(sandbox_config.resolve({ env = false }).data_dir:find("^/tmp/essbasic%-sandbox$"))
  end)

  it("refuses a data folder others may write into, and writes nothing into it", function()
    local d = tmp .. "/shared"
    assert.equal(0, (sh("mkdir -m 777 " .. q(d) .. " && chmod 777 " .. q(d))))
    local code, out = sh(AS_ROOT .. "sandbox/run start --data " .. q(d))
    assert.not_equal(0, code)
    assert.truthy(out:find("writable by others", 1, true), out)
    assert.equal("", select(2, sh("ls -A " .. q(d))))
  end)

  it("refuses a data folder another user owns", function()
    if not IS_ROOT then return end -- only root can give a folder away; as another user see the test above
    local d = tmp .. "/foreign"
    assert.equal(0, (sh("mkdir -m 700 " .. q(d) .. " && chown nobody " .. q(d))))
    local code, out = sh(AS_ROOT .. "sandbox/run start --data " .. q(d))
    assert.not_equal(0, code)
    assert.truthy(out:find("belongs to another user", 1, true), out)
  end)

  it("does not run as root unless told it is a throwaway container", function()
    if not IS_ROOT then return end
    local code, out = sh("env -u ESSBASIC_SANDBOX_AS_ROOT sandbox/run start --data " .. q(tmp .. "/root"))
    assert.not_equal(0, code)
    assert.truthy(out:find("does not run as root", 1, true), out)
  end)

  it("writes its folder 0700 and its files 0600, following no planted symlink", function()
    local d = tmp .. "/d"
    local victims = {}
    assert.equal(0, (sh("mkdir -m 700 " .. q(d) .. " " .. q(d .. "/files"))))
    for i, name in ipairs({ "sandbox.log", "state.json.tmp", "files/victim.tmp" }) do
      victims[i] = tmp .. "/victim" .. i
      files.write(victims[i], "untouched")
      assert.equal(0, (sh("ln -s " .. q(victims[i]) .. " " .. q(d .. "/" .. name))))
    end
    local code, out = sh("umask 000; " .. AS_ROOT .. "sandbox/run start --data " .. q(d)) -- a careless umask
    assert.equal(0, code, out)
    local info = json.decode(files.read(d .. "/sandbox.run.json"))
    local c = essbasic.new{ secret_id = sandbox_config.DEFAULT_SECRET_ID,
      secret_key = sandbox_config.DEFAULT_SECRET_KEY, endpoint = info.endpoint, file_endpoint = info.endpoint,
      rate_limit = false }
    local up = assert(c:call("UploadFiles", { Agent = { AppId = sandbox_config.DEFAULT_APP_ID,
      ProxyOrganizationOpenId = "org-hostile", ProxyOperator = { OpenId = "op-hostile" } }, BusinessType = "DOCUMENT",
      FileInfos = { { FileName = "a.pdf", FileBody = core.base64_encode(require("helpers.sandbox").PDF) } } }))
    assert.equal(0, (sh("sandbox/run stop --data " .. q(d))))
    for i = 1, #victims do assert.equal("untouched", files.read(victims[i])) end
    assert.equal("700", stat(d, "%a"))
    assert.equal("700", stat(d .. "/files", "%a"))
    for _, name in ipairs({ "state.json", "sandbox.log", "files/" .. up.FileIds[1] }) do
      assert.equal("600 regular file", stat(d .. "/" .. name, "%a %F"), name)
    end
    assert.truthy(files.read(d .. "/state.json"):find("org-hostile", 1, true)) -- the state was written there
  end)

  describe("admin endpoints", function()
    local sb
    setup(function() sb = require("helpers.sandbox").start() end)
    teardown(function() if sb then sb:stop() end end)

    local function curl(args)
      local _, out = sh("env -u LD_PRELOAD curl -s -w '\\n%{http_code}' " .. args)
      local body, status = out:match("^(.*)\n(%d+)\n?$")
      return tonumber(status), body
    end
    local function faults() return select(2, curl(q(sb.endpoint .. "/sandbox/faults"))) end

    it("refuse a cross-site text/plain or form POST, and take JSON", function()
      local before = faults()
      local fault = q('{"*": {"error": "InternalError"}}')
      for _, ctype in ipairs({ "text/plain", "application/x-www-form-urlencoded", "multipart/form-data" }) do
        local status = curl("-X POST -H 'Content-Type: " .. ctype .. "' --data-binary " .. fault .. " "
          .. q(sb.endpoint .. "/sandbox/faults"))
        assert.equal(415, status, ctype)
      end
      assert.equal(before, faults())
      local status = curl("-X POST -H 'Content-Type: application/json' --data-binary " .. fault .. " "
        .. q(sb.endpoint .. "/sandbox/faults"))
      assert.equal(200, status)
      assert.not_equal(before, faults())
      assert.equal(200, (curl("-X DELETE " .. q(sb.endpoint .. "/sandbox/faults"))))
    end)

    it("refuse a foreign Host (DNS rebinding) or Origin, on stats and faults", function()
      for _, path in ipairs({ "/sandbox/stats", "/sandbox/faults" }) do
        assert.equal(403, (curl("-H 'Host: evil.example:" .. sb.port .. "' " .. q(sb.endpoint .. path))), path)
        assert.equal(403, (curl("-H 'Origin: http://evil.example' " .. q(sb.endpoint .. path))), path)
        assert.equal(200, (curl("-H 'Host: localhost:" .. sb.port .. "' " .. q(sb.endpoint .. path))), path)
        assert.equal(200, (curl(q(sb.endpoint .. path))), path)
      end
    end)
  end)
end)
