-- bin/essbasic as a user runs it: a separate interpreter (the one under test, ESSBASIC_LUA), against a real
-- sandbox (nginx on loopback) and the fault server; stdout, stderr and the documented exit codes.
local sandbox = require("helpers.sandbox")
local faults_server = require("helpers.fault_server")
local files = require("helpers.files")
local core = require("essbasic.core")
local json = require("essbasic.json")
local api = require("essbasic.api")

local cli = require("helpers.cli").new()
local TMP = cli.dir

local function run(argv, o)
  return cli:run(argv, o)
end

local function decode(text)
  local v, why = json.decode(text)
  assert(v ~= nil, "not JSON: " .. tostring(why) .. "\n" .. text)
  return v
end

local function sb_env(sb)
  return { TENCENTCLOUD_SECRET_ID = sb.secret_id, TENCENTCLOUD_SECRET_KEY = sb.secret_key,
    ESSBASIC_ENDPOINT = sb.endpoint, ESSBASIC_FILE_ENDPOINT = sb.endpoint }
end

describe("essbasic (the command)", function()
  local sb
  setup(function() sb = sandbox.start{ rate_limit = 1000 } end)
  teardown(function()
    if sb then sb:stop() end
    cli:remove()
  end)

  local function upload_request()
    return { Agent = sb.agent, BusinessType = "DOCUMENT",
      FileInfos = { { FileName = "a.pdf", FileBody = core.base64_encode(sandbox.PDF) },
        { FileName = "b.pdf", FileBody = core.base64_encode(sandbox.PDF) } } }
  end

  describe("actions and describe", function()
    it("lists every action of the schema, with --json too", function()
      local r = run{ "actions" }
      assert.equal(0, r.status, r.err)
      local names = {}
      for line in r.out:gmatch("[^\n]+") do names[#names + 1] = line:match("^(%S+)") end
      assert.same(api.actions(), names)
      assert.truthy(r.out:find("DescribeFlowDetailInfo%s+read%-only"))
      assert.truthy(r.out:find("UploadFiles%s+changes, file endpoint"))
      local j = run{ "actions", "--json" }
      assert.equal(0, j.status, j.err)
      local list = decode(j.out)
      assert.equal(#names, #list)
      for _, a in ipairs(list) do
        assert.equal(api.is_readonly(a.name), a.readonly)
        assert.equal(api.host_kind(a.name), a.host)
      end
    end)

    it("describes an action's members, types and rules, and a structure", function()
      local r = run{ "describe", "ChannelCreateFlowGroupByFiles" }
      assert.equal(0, r.status, r.err)
      assert.truthy(r.out:find("FlowFileInfos%s+list of FlowFileInfo%s+required; 2 to 50 items"), r.out)
      assert.truthy(r.out:find("Operator%s+UserInfo%s+disabled"), r.out)
      assert.truthy(r.out:find("Agent%s+Agent%s+required here, with AppId"), r.out)
      assert.truthy(r.out:find("FlowGroupId%s+string"), r.out)
      assert.truthy(r.out:find("Structures used[^\n]*FlowApproverInfo"), r.out)
      local all = run{ "describe", "ChannelCreateFlowGroupByFiles", "--all" }
      assert.truthy(all.out:find("\nFlowApproverInfo:\n", 1, true), all.out)
      local j = run{ "describe", "ChannelCreateFlowGroupByFiles", "--json" }
      local doc = decode(j.out)
      assert.equal("ChannelCreateFlowGroupByFilesRequest", doc.request.name)
      local by = {}
      for _, m in ipairs(doc.request.members) do by[m.name] = m end
      assert.is_true(by.FlowFileInfos.list and by.FlowFileInfos.required)
      assert.equal("FlowFileInfo", by.FlowFileInfos.type)
      assert.is_false(doc.readonly)
      local seen = {}
      for _, s in ipairs(doc.structures) do seen[s.name] = true end
      assert.is_true(seen.FlowApproverInfo and seen.Agent)
      local s = run{ "describe", "Agent" }
      assert.equal(0, s.status)
      assert.truthy(s.out:find("AppId%s+string%s+required"))
    end)

    it("refuses an unknown name with exit 2 and a suggestion", function()
      local r = run{ "describe", "ChannelCreateFlowGroupByFile" }
      assert.equal(2, r.status)
      assert.truthy(r.err:find("did you mean ChannelCreateFlowGroupByFiles", 1, true), r.err)
      local c = run{ "call", "DescribeFlowDetailInf" }
      assert.equal(2, c.status)
    end)
  end)

  describe("call", function()
    it("prints the Response on stdout for --input @file, --input - and literal JSON", function()
      local path = TMP .. "/upload.json"
      files.write(path, json.encode(upload_request()))
      local r = run({ "call", "UploadFiles", "--input", "@" .. path }, { env = sb_env(sb) })
      assert.equal(0, r.status, r.err)
      assert.equal("", r.err)
      local resp = decode(r.out)
      assert.equal(2, #resp.FileIds)
      assert.is_string(resp.RequestId)
      local from_stdin = run({ "call", "UploadFiles", "--input", "-", "--compact" },
        { env = sb_env(sb), stdin = json.encode(upload_request()) })
      assert.equal(0, from_stdin.status, from_stdin.err)
      assert.equal(1, select(2, from_stdin.out:gsub("\n", "")), "one line with --compact")
      local before = sb:stats().counters.groups_created
      local group = sb:group_request(resp.FileIds)
      local g = run({ "call", "ChannelCreateFlowGroupByFiles", "--input", json.encode(group) }, { env = sb_env(sb) })
      assert.equal(0, g.status, g.err)
      assert.is_string(decode(g.out).FlowGroupId)
      assert.equal(before + 1, sb:stats().counters.groups_created)
    end)

    it("exits 3 on a request the validator refuses, with the error as JSON on stderr and nothing sent", function()
      local before = sb:stats().requests.ChannelCreateFlowGroupByFiles or 0
      local r = run({ "call", "ChannelCreateFlowGroupByFiles", "--input", '{"FlowGroupName":"x"}' },
        { env = sb_env(sb) })
      assert.equal(3, r.status)
      assert.equal("", r.out)
      local err = decode(r.err)
      assert.equal("validation", err.kind)
      assert.equal("MissingParameter", err.code)
      assert.is_true(#err.problems >= 2)
      assert.equal(before, sb:stats().requests.ChannelCreateFlowGroupByFiles or 0)
    end)

    it("exits 4 on a service error, 5 on a network error, 7 without credentials, 2 on bad input", function()
      local describe = { Agent = sb.agent, FlowGroupId = "ffffffffffffffffffffffffffffffff" }
      local s = run({ "call", "DescribeFlowDetailInfo", "--input", json.encode(describe) }, { env = sb_env(sb) })
      assert.equal(4, s.status, s.err)
      local serr = decode(s.err)
      assert.equal("service", serr.kind)
      assert.equal("ResourceNotFound.FlowGroup", serr.code)
      assert.is_string(serr.request_id)

      local env = sb_env(sb)
      local n = run({ "call", "DescribeFlowDetailInfo", "--input", json.encode(describe), "--endpoint",
        "http://127.0.0.1:1", "--timeout", "5" }, { env = env })
      assert.equal(5, n.status, n.err)
      local nerr = decode(n.err)
      assert.equal("network", nerr.kind)
      assert.is_false(nerr.sent)

      local c = run({ "call", "DescribeFlowDetailInfo", "--input", json.encode(describe) },
        { env = { ESSBASIC_ENDPOINT = sb.endpoint } })
      assert.equal(7, c.status, c.err)
      assert.equal("ClientError.CredentialError", decode(c.err).code)

      local bad = run({ "call", "DescribeFlowDetailInfo", "--input", "{not json" }, { env = sb_env(sb) })
      assert.equal(2, bad.status)
      assert.truthy(bad.err:find("not JSON", 1, true))
      local opt = run({ "call", "DescribeFlowDetailInfo", "--inptu", "{}" }, { env = sb_env(sb) })
      assert.equal(2, opt.status)
      assert.truthy(opt.err:find("did you mean --input", 1, true), opt.err)
    end)

    it("exits 6 when a creating call may have been carried out (the answer was lost)", function()
      local faults = faults_server.start()
      finally(function() faults:stop() end)
      local scenario = "cli-unknown-" .. os.time()
      local r = run({ "call", "ChannelCreateFlowGroupByFiles", "--no-validate", "--endpoint", faults.endpoint,
        "--input", json.encode{ Scenario = scenario, Steps = { "create_reset" } } },
        { env = { TENCENTCLOUD_SECRET_ID = "AKIDcli", TENCENTCLOUD_SECRET_KEY = "cli-key" } })
      assert.equal(6, r.status, r.err)
      assert.equal("ClientError.OutcomeUnknown", decode(r.err).code)
      assert.same({ attempts = 1, created = 1 }, faults:stats(scenario))
    end)

    it("--dry-run prints the signed request with the signature redacted and sends nothing", function()
      local before = sb:stats().requests.DescribeFlowDetailInfo or 0
      local describe = { Agent = sb.agent, FlowGroupId = "abc" }
      local r = run({ "call", "DescribeFlowDetailInfo", "--dry-run", "--region", "ap-guangzhou", "--input",
        json.encode(describe) }, { env = sb_env(sb) })
      assert.equal(0, r.status, r.err)
      local req = decode(r.out)
      assert.equal("POST", req.method)
      assert.equal(sb.endpoint .. "/", req.url)
      assert.equal("DescribeFlowDetailInfo", req.headers["X-TC-Action"])
      assert.equal("ap-guangzhou", req.headers["X-TC-Region"])
      assert.truthy(req.headers.Authorization:find("Signature=<redacted>", 1, true))
      assert.same(describe, decode(req.body))
      assert.is_nil(r.out:find(sb.secret_key, 1, true))
      assert.equal(before, sb:stats().requests.DescribeFlowDetailInfo or 0)
    end)

    it("--profile reads that section of the profile file", function()
      local path = TMP .. "/credentials"
      files.write(path, "[default]\nsecret_id = AKIDdefault\nsecret_key = k1\n[ops]\nsecret_id = AKIDops\n"
        .. "secret_key = k2\n")
      local r = run({ "call", "DescribeFlowDetailInfo", "--dry-run", "--profile", "ops", "--input",
        json.encode{ Agent = sb.agent, FlowGroupId = "abc" } }, { env = { TENCENTCLOUD_CREDENTIALS_FILE = path } })
      assert.equal(0, r.status, r.err)
      assert.truthy(decode(r.out).headers.Authorization:find("Credential=AKIDops/", 1, true))
    end)
  end)

  describe("callback decrypt", function()
    local KEY = "0123456789abcdefGHIJKLMNOPQRSTUV"
    local TOKEN = "callback-token-Xy7"
    local MESSAGE = '{"MsgId":"m-1","MsgType":"FlowStatusChange","MsgVersion":"ThirdPartyApp",'
      .. '"MsgData":{"FlowId":"f1","FlowStatus":"ALL"}}'
    local body = json.encode{ encrypt = core.base64_encode(core.aes256cbc_encrypt(KEY, KEY:sub(1, 16), MESSAGE)) }
    local signature = "sha256=" .. core.hex(core.hmac_sha256(TOKEN, body))

    it("checks the signature, decrypts and prints the message", function()
      local r = run({ "callback", "decrypt", "--key", KEY, "--token", TOKEN, "--signature", signature },
        { stdin = body })
      assert.equal(0, r.status, r.err)
      local msg = decode(r.out)
      assert.equal("FlowStatusChange", msg.MsgType)
      assert.equal("ALL", msg.MsgData.FlowStatus)
      local keyfile = TMP .. "/key"
      files.write(keyfile, KEY .. "\n")
      local h = run({ "callback", "decrypt", "--key", "@" .. keyfile, "--header", "Content-Signature: " .. signature },
        { stdin = body, env = { ESSBASIC_CALLBACK_TOKEN = TOKEN } })
      assert.equal(0, h.status, h.err)
      assert.equal("m-1", decode(h.out).MsgId)
    end)

    it("refuses a wrong signature (exit 10), and a message without a token unless --allow-unsigned", function()
      local r = run({ "callback", "decrypt", "--key", KEY, "--token", "another-token", "--signature", signature },
        { stdin = body })
      assert.equal(10, r.status)
      assert.equal("Callback.SignatureMismatch", decode(r.err).code)
      assert.is_nil(r.err:find(KEY, 1, true))
      local missing = run({ "callback", "decrypt", "--key", KEY, "--token", TOKEN }, { stdin = body })
      assert.equal(10, missing.status)
      assert.equal("Callback.SignatureMissing", decode(missing.err).code)
      local no_token = run({ "callback", "decrypt", "--key", KEY }, { stdin = body })
      assert.equal(2, no_token.status)
      local unsigned = run({ "callback", "decrypt", "--key", KEY, "--allow-unsigned" }, { stdin = body })
      assert.equal(0, unsigned.status, unsigned.err)
      assert.equal("m-1", decode(unsigned.out).MsgId)
    end)
  end)

  describe("sandbox", function()
    it("starts a sandbox, --sandbox calls it, and stops it", function()
      local dir = TMP .. "/sb-data"
      local start = run({ "sandbox", "start", "--data", dir }, { env = { ESSBASIC_SANDBOX_AS_ROOT = "1" } }) -- CI: root
      finally(function() run{ "sandbox", "stop", "--data", dir } end)
      assert.equal(0, start.status, start.err .. start.out)
      assert.truthy(start.out:find("running on http://127.0.0.1:", 1, true), start.out)
      local env = run{ "sandbox", "env", "--data", dir }
      assert.equal(0, env.status)
      assert.truthy(env.out:find("export ESSBASIC_ENDPOINT=", 1, true))
      local r = run{ "call", "UploadFiles", "--sandbox=" .. dir, "--input", json.encode(upload_request()) }
      assert.equal(0, r.status, r.err)
      assert.equal(2, #decode(r.out).FileIds)
      local via_env = run({ "call", "UploadFiles", "--sandbox", "--input", json.encode(upload_request()) },
        { env = { ESSBASIC_SANDBOX_DATA = dir } })
      assert.equal(0, via_env.status, via_env.err)
      assert.equal(0, run{ "sandbox", "stop", "--data", dir }.status)
      local gone = run{ "call", "UploadFiles", "--sandbox=" .. dir, "--input", json.encode(upload_request()) }
      assert.equal(7, gone.status)
      assert.truthy(gone.err:find("no running sandbox", 1, true), gone.err)
    end)
  end)

  it("prints the usage with exit 2 when no command is given, and 0 for --help", function()
    local r = run{}
    assert.equal(2, r.status)
    assert.truthy(r.err:find("usage: essbasic", 1, true))
    local h = run{ "--help" }
    assert.equal(0, h.status)
    assert.truthy(h.out:find("exit status", 1, true))
    local v = run{ "version" }
    assert.equal(0, v.status)
    assert.truthy(v.out:find("2021-05-26", 1, true))
  end)

  it("COMMAND --help lists every option of the command and the shared ones; a bad option is named", function()
    local cli_config = require("essbasic.cli.config")
    local commands = { batch = require("essbasic.cli.batch").OPTIONS, call = require("essbasic.cli.call").CALL_OPTIONS,
      describe = require("essbasic.cli.call").DESCRIBE_OPTIONS }
    for name, spec in pairs(commands) do
      local h = run{ name, "--help" }
      assert.equal(0, h.status, h.err)
      assert.truthy(h.out:find("usage: essbasic " .. name, 1, true), h.out)
      for option in pairs(spec) do assert.truthy(h.out:find("--" .. option, 1, true), name .. " --" .. option) end
      for option in pairs(cli_config.OPTIONS) do assert.truthy(h.out:find("--" .. option, 1, true), option) end
    end
    local typo = run{ "--verison" }
    assert.equal(2, typo.status)
    assert.truthy(typo.err:find("unknown option --verison (did you mean --version?)", 1, true), typo.err)
    local short = run{ "-x" }
    assert.equal(2, short.status)
    assert.truthy(short.err:find("unknown option -x", 1, true), short.err)
    -- a file's name given to --input without its @
    files.write(TMP .. "/req.json", "{}")
    local path = run{ "call", "DescribeFlowDetailInfo", "--input", TMP .. "/req.json" }
    assert.equal(2, path.status)
    assert.truthy(path.err:find("write --input @" .. TMP .. "/req.json", 1, true), path.err)
    -- a failure on a terminal: one line with the code and what to do; off a terminal (above) and with --json: JSON
    local cmd = cli:command({ "call", "ChannelCreateFlowGroupByFiles", "--input", '{"FlowGroupName":"x"}',
      "--endpoint", "http://127.0.0.1:9" })
    local p = assert(io.popen("script -qec " .. require("helpers.cli").quote(cmd) .. " /dev/null 2>&1 </dev/null"))
    local tty = p:read("*a")
    p:close()
    assert.truthy(tty:find("essbasic: MissingParameter: 2 problems", 1, true), tty)
    assert.truthy(tty:find("essbasic describe ACTION", 1, true), tty)
    assert.equal(1, select(2, tty:gsub("\n", "")), tty)
    local batch_typo = run{ "batch", "--concurency", "3" }
    assert.equal(2, batch_typo.status)
    assert.truthy(batch_typo.err:find("did you mean --concurrency?", 1, true), batch_typo.err)
  end)
end)
