-- The sandbox's signer page in a real browser: headless Chromium (Debian's chromium) driven over the DevTools
-- protocol by puppeteer-core (tools/install-browser-driver puts it into build/browser). Opens a SignUrl, reads the
-- contracts and their PDF links, clicks "Sign all" (then, as the other signer, "Reject"), sees the statuses change
-- on the page and in DescribeFlowDetailInfo, and sees the callbacks arrive at a receiver.
-- Nothing here is skipped: a missing chromium, node or puppeteer-core fails the test with what to install.
local sandbox = require("helpers.sandbox")
local json = require("essbasic.json")

local ROOT = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/spec/[^/]+$") or "."
local CHROMIUM = "/usr/bin/chromium"
local DRIVER = ROOT .. "/build/browser/node_modules"
local SCRIPT = ROOT .. "/spec/browser/signer.js"
local CALLBACK_KEY = "fedcba9876543210fedcba9876543210"
local CALLBACK_TOKEN = "browser-spec-token"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Runs the browser script; returns its JSON answer (asserts it ran).
local function browse(url, decision, reason)
  -- Without the sanitizer preload of make check (tools/check): Chromium does not start under libasan, and the
  -- browser is not what that run checks.
  local cmd = string.format("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS NODE_PATH=%s timeout 90 node %s %s "
    .. "%s %s %s 2>&1", quote(DRIVER), quote(SCRIPT),
    quote(CHROMIUM), quote(url), decision, quote(reason or ""))
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  local ok = p:close()
  assert.is_truthy(ok, "the browser script failed:\n" .. out)
  local doc = json.decode(out:match("([^\n]+)\n*$") or "")
  assert.is_table(doc, "the browser script printed no JSON:\n" .. out)
  return doc
end

describe("signer page in headless Chromium", function()
  local sb, client, receiver

  setup(function()
    assert(exists(CHROMIUM), CHROMIUM .. " is missing: apt-get install chromium (tools/install-deps does)")
    assert(exists(DRIVER .. "/puppeteer-core/package.json"),
      "puppeteer-core is missing from build/browser: run tools/install-browser-driver (make deps does)")
    assert(os.execute("node --version >/dev/null 2>&1"), "node is missing: apt-get install nodejs")
    receiver = sandbox.start_receiver(CALLBACK_TOKEN, CALLBACK_KEY)
    sb = sandbox.start{ rate_limit = 1000, callback = { url = "http://127.0.0.1:" .. receiver.port .. "/cb",
      key = CALLBACK_KEY, token = CALLBACK_TOKEN, base_delay = 0.1, max_delay = 0.5 } }
    client = sb:client({ retry = false })
  end)
  teardown(function()
    if sb then sb:stop() end
    if receiver then receiver:stop() end
  end)

  local function callbacks_for(flow_id, status)
    local n = 0
    for _, r in ipairs(receiver.received()) do
      local d = r.msg.MsgData
      if d.FlowId == flow_id and d.FlowStatus == status then n = n + 1 end
    end
    return n
  end

  local function link_for(group_id, name)
    local resp = assert(client:CreateSignUrls{ Agent = sb.agent, FlowGroupId = group_id, Name = name })
    return resp.SignUrlInfos[1].SignUrl
  end

  it("signs every contract of the group with one click, then the other signer rejects", function()
    local g = assert(client:ChannelCreateFlowGroupByFiles(sb:group_request({ sb:upload(client),
      sb:upload(client) }, { unordered = true })))
    local seen = browse(link_for(g.FlowGroupId, "张三"), "sign")
    assert.are.equal(200, seen.status)
    assert.are.equal(2, #seen.before)
    for i, r in ipairs(seen.before) do
      assert.are.equal(g.FlowIds[i], r.flow)
      assert.are.equal("INIT", r.flowStatus)
      assert.are.equal("PENDING", r.signerStatus)
      assert.are.equal(200, seen.documents[i].status)
      assert.are.equal("application/pdf", seen.documents[i].type)
      assert.are.equal("%PDF-", seen.documents[i].magic)
    end
    assert.are.equal("sign", seen.done)
    for _, r in ipairs(seen.after) do
      assert.are.equal("PART", r.flowStatus)
      assert.are.equal("ACCEPT", r.signerStatus)
    end
    assert.are.same({}, seen.buttons) -- nothing left to do for this signer
    for _, fid in ipairs(g.FlowIds) do
      assert.truthy(sandbox.wait_for(function() return callbacks_for(fid, "PART") > 0 end, 10),
        "no PART callback for " .. fid)
    end
    local detail = assert(client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = g.FlowGroupId })
    assert.are.equal("ACCEPT", detail.FlowInfo[1].FlowApproverInfos[1].ApproveStatus)

    local rejected = browse(link_for(g.FlowGroupId, "李四"), "reject", "薪资不对")
    assert.are.equal("reject", rejected.done)
    for _, r in ipairs(rejected.after) do
      assert.are.equal("REJECT", r.flowStatus)
      assert.are.equal("REJECT", r.signerStatus)
    end
    for _, fid in ipairs(g.FlowIds) do
      assert.truthy(sandbox.wait_for(function() return callbacks_for(fid, "REJECT") > 0 end, 10),
        "no REJECT callback for " .. fid)
    end
    detail = assert(client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = g.FlowGroupId })
    assert.are.equal("薪资不对", detail.FlowInfo[1].FlowApproverInfos[2].ApproveMessage)
  end)
end)
