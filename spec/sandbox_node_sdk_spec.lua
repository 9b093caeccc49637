-- Tencent Cloud's official Node.js SDK (tencentcloud-sdk-nodejs, installed by tools/install-node-sdk into
-- build/node-sdk) through upload → group → links → sign → status → download against the sandbox, configured the
-- way a developer configures it for any endpoint: HOST:PORT and the key pair, no host-name tricks. The SDK signs
-- the credential scope's service "127" for that endpoint; the sandbox's sdk_host_service (on by default) accepts
-- it. Nothing is skipped: without node or the SDK the test fails and says what to install.
local sandbox = require("helpers.sandbox")

local ROOT = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/spec/[^/]+$") or "."

local function run(cmd)
  -- node and npm run without the sanitizer runtime tools/check preloads for the Lua process (as in browser_spec)
  local p = assert(io.popen("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS " .. cmd .. " 2>&1"))
  local out = p:read("*a")
  local ok = p:close()
  return out, ok
end

describe("the official Node.js SDK against the sandbox", function()
  local sb, pdf

  setup(function()
    local out, ok = run(ROOT .. "/tools/install-node-sdk")
    assert(ok, "tools/install-node-sdk failed (needs node and npm): " .. out)
    sb = sandbox.start{}
    pdf = os.tmpname()
    local f = assert(io.open(pdf, "wb"))
    f:write(assert(io.open(ROOT .. "/examples/pdf/labour_contract.pdf", "rb")):read("*a"))
    f:close()
  end)
  teardown(function()
    if sb then sb:stop() end
    if pdf then os.remove(pdf) end
  end)

  local function lifecycle(endpoint)
    local out = run(("node %s/spec/node/sdk_lifecycle.js %s/build/node-sdk %s %s %s %s %s"):format(ROOT, ROOT,
      endpoint, sb.secret_id, sb.secret_key, sb.app_id, pdf))
    local result = require("essbasic.json").decode(out:match("[^\n]*\n?$") or "")
    assert.is_table(result, out)
    return result, out
  end

  it("runs a contract group's whole life with endpoint 127.0.0.1:PORT", function()
    local r, out = lifecycle("127.0.0.1:" .. sb.port)
    assert.is_nil(r.error, out)
    assert.are.equal(1, #r.fileIds)
    assert.are.equal(2, #r.flowIds)
    assert.are.equal(2, r.links)
    assert.are.same({ 200, 200 }, r.signed)
    assert.are.same({ "ALL", "ALL" }, r.statuses)
    assert.are.equal("", r.flowMessage)
    assert.are.same({ status = 200, head = "%PDF-" }, { status = r.download.status, head = r.download.head })
    assert.are.equal("ResourceNotFound.FlowGroup", r.refusal)
    assert.are.equal(1, sb:stats().counters.groups_created)
  end)

  it("with sdk_host_service = false the SDK's scope is refused as the API refuses it", function()
    local strict = sandbox.start{ sdk_host_service = false }
    finally(function() strict:stop() end)
    local out = run(("node %s/spec/node/sdk_lifecycle.js %s/build/node-sdk 127.0.0.1:%d %s %s %s %s"):format(ROOT,
      ROOT, strict.port, strict.secret_id, strict.secret_key, strict.app_id, pdf))
    assert.truthy(out:find("AuthFailure.InvalidAuthorization", 1, true), out)
  end)
end)
