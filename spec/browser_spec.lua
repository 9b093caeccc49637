-- The sandbox's signer page in a real browser: headless Chromium (Debian's chromium) driven over the DevTools
-- protocol by puppeteer-core (tools/install-browser-driver puts it into build/browser), at a phone's width. The
-- page's four states: not your turn (said, and a forced try signs nothing), waiting to sign (each contract's first
-- page shown, its PDF, Chinese words), signed after the confirmation, rejected; English on request. Screenshots of
-- the not-your-turn and signed states go to build/screenshots (ESSBASIC_SCREENSHOTS) and are checked as PNGs.
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
local function browse(url, mode, arg)
  -- Without the sanitizer preload of make check (tools/check): Chromium does not start under libasan, and the
  -- browser is not what that run checks.
  local cmd = string.format("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS NODE_PATH=%s timeout 90 node %s %s "
    .. "%s %s %s 2>&1", quote(DRIVER), quote(SCRIPT), quote(CHROMIUM), quote(url), mode, quote(arg or ""))
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  local ok = p:close()
  assert.is_truthy(ok, "the browser script failed:\n" .. out)
  local doc = json.decode(out:match("([^\n]+)\n*$") or "")
  assert.is_table(doc, "the browser script printed no JSON:\n" .. out)
  return doc
end

-- A screenshot as taken: a PNG of the phone's width (375 CSS pixels at scale 1), tall enough to hold the page,
-- and not blank (a PNG of one flat colour compresses to a few hundred bytes).
local function check_screenshot(path)
  local f = assert(io.open(path, "rb"), "no screenshot at " .. path)
  local png = f:read("*a")
  f:close()
  assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
  local function u32(at) -- big-endian, as the PNG header stores width and height (LuaJIT has no string.unpack)
    local a, b, c, d = png:byte(at, at + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
  end
  local w, h = u32(17), u32(21)
  assert.are.equal(375, w)
  assert.is_true(h >= 600, "screenshot height " .. h)
  assert.is_true(#png > 8000, "the screenshot looks blank (" .. #png .. " bytes)")
end

describe("signer page in headless Chromium", function()
  local sb, client, receiver, shots

  setup(function()
    assert(exists(CHROMIUM), CHROMIUM .. " is missing: apt-get install chromium (tools/install-deps does)")
    assert(exists(DRIVER .. "/puppeteer-core/package.json"),
      "puppeteer-core is missing from build/browser: run tools/install-browser-driver (make deps does)")
    assert(os.execute("node --version >/dev/null 2>&1"), "node is missing: apt-get install nodejs")
    receiver = sandbox.start_receiver(CALLBACK_TOKEN, CALLBACK_KEY)
    sb = sandbox.start{ rate_limit = 1000, callback = { url = "http://127.0.0.1:" .. receiver.port .. "/cb",
      key = CALLBACK_KEY, token = CALLBACK_TOKEN, base_delay = 0.1, max_delay = 0.5 } }
    client = sb:client({ retry = false })
    shots = os.getenv("ESSBASIC_SCREENSHOTS") or (ROOT .. "/build/screenshots") -- build/ is not committed
    os.execute("mkdir -p " .. quote(shots))
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

  local function upload_contract()
    local f = assert(io.open(ROOT .. "/examples/pdf/labour_contract.pdf", "rb"))
    local body = f:read("*a")
    f:close()
    return assert(client:UploadFiles{ Agent = sb.agent, BusinessType = "DOCUMENT", FileInfos = {
      { FileName = "labour.pdf", FileBody = require("essbasic.core").base64_encode(body) } } }).FileIds[1]
  end

  it("in an ordered group: says truthfully when it is not your turn, signs after a confirmation, "
    .. "then the other signer rejects; Chinese by default, English on request, readable at phone width", function()
    local req = sb:group_request({ upload_contract(), upload_contract() })
    for _, info in ipairs(req.FlowFileInfos) do -- each signs at their place in the contract, found by keyword
      for i, word in ipairs({ "乙方（签字）", "甲方（盖章）" }) do
        info.FlowApprovers[i].SignComponents = { { ComponentType = i == 1 and "SIGN_SIGNATURE" or "SIGN_SEAL",
          GenerateMode = "KEYWORD", ComponentId = word, RelativeLocation = "Right", OffsetX = 10,
          ComponentWidth = 160, ComponentHeight = 44 } }
      end
    end
    local g = assert(client:ChannelCreateFlowGroupByFiles(req))

    -- 李四 signs second: his page says it is not his turn and whom it waits for; trying anyway signs nothing
    local turn_shot = shots .. "/signer-not-your-turn.png"
    local early = browse(link_for(g.FlowGroupId, "李四"), "turn", turn_shot)
    assert.are.equal(200, early.status)
    assert.are.equal("zh-CN", early.before.lang)
    assert.truthy(early.before.notYourTurn:find("还未轮到您签署", 1, true), early.before.notYourTurn)
    assert.truthy(early.before.notYourTurn:find("张三", 1, true), early.before.notYourTurn)
    assert.is_true(early.before.sign.disabled)
    assert.are.equal("turn", early.after.notice.kind)
    assert.truthy(early.after.notice.text:find("未签署", 1, true), early.after.notice.text)
    for _, f in ipairs(early.after.flows) do assert.are.equal("PENDING", f.signerStatus) end
    check_screenshot(turn_shot)

    -- 张三 signs, at a phone's width
    local signed_shot = shots .. "/signer-signed.png"
    local seen = browse(link_for(g.FlowGroupId, "张三"), "sign", signed_shot)
    local before = seen.before
    assert.are.equal("zh-CN", before.lang)
    assert.truthy(before.text:find("签署人：张三", 1, true), before.text)
    assert.truthy(before.sign.text:find("签署全部合同", 1, true))
    assert.is_true(before.scrollWidth <= before.width, "the page is wider than the phone: " .. before.scrollWidth)
    assert.are.equal(2, #before.flows)
    for i, f in ipairs(before.flows) do
      assert.are.equal(g.FlowIds[i], f.flow)
      assert.are.same({ "INIT", "PENDING", "待签署", "待签署" }, { f.flowStatus, f.signerStatus, f.flowWord,
        f.signerWord })
      assert.is_true(f.signerRight <= before.width, "the status is cut off at phone width")
      assert.is_true(f.image.loaded, "the contract's first page is not shown") -- the contract inline
      assert.is_true(f.image.shownRight <= before.width)
      assert.are.same({ 200, "application/pdf", "%PDF-" }, { seen.documents[i].status, seen.documents[i].type,
        seen.documents[i].magic })
    end
    -- the confirmation: the browser does not send the form without it, and the server refuses it too
    assert.is_true(seen.unconfirmed.valueMissing)
    assert.is_false(seen.unconfirmed.formValid)
    assert.truthy(seen.unconfirmed.server.url:find("error=agree", 1, true), seen.unconfirmed.server.url)
    for _, f in ipairs(seen.unconfirmed.page.flows) do assert.are.equal("PENDING", f.signerStatus) end
    -- confirmed and signed
    assert.are.equal("sign", seen.after.notice.kind)
    assert.truthy(seen.after.notice.text:find("签署成功", 1, true))
    for _, f in ipairs(seen.after.flows) do
      assert.are.same({ "PART", "ACCEPT", "签署中", "已签署" }, { f.flowStatus, f.signerStatus, f.flowWord,
        f.signerWord })
      assert.is_true(f.image.loaded)
    end
    assert.are.same({}, seen.after.buttons) -- nothing left to do for this signer
    check_screenshot(signed_shot)
    -- English on request
    assert.are.equal("en", seen.english.lang)
    assert.truthy(seen.english.text:find("Signing as", 1, true))
    assert.are.equal("signed", seen.english.flows[1].signerWord)
    for _, fid in ipairs(g.FlowIds) do
      assert.truthy(sandbox.wait_for(function() return callbacks_for(fid, "PART") > 0 end, 10),
        "no PART callback for " .. fid)
    end
    local detail = assert(client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = g.FlowGroupId })
    assert.are.equal("ACCEPT", detail.FlowInfo[1].FlowApproverInfos[1].ApproveStatus)

    -- now 李四's turn: he rejects with a reason
    local rejected = browse(link_for(g.FlowGroupId, "李四"), "reject", "薪资不对")
    assert.is_nil(rejected.before.notYourTurn)
    assert.are.equal("reject", rejected.after.notice.kind)
    for _, f in ipairs(rejected.after.flows) do
      assert.are.same({ "REJECT", "REJECT" }, { f.flowStatus, f.signerStatus })
    end
    for _, fid in ipairs(g.FlowIds) do
      assert.truthy(sandbox.wait_for(function() return callbacks_for(fid, "REJECT") > 0 end, 10),
        "no REJECT callback for " .. fid)
    end
    detail = assert(client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = g.FlowGroupId })
    assert.are.equal("薪资不对", detail.FlowInfo[1].FlowApproverInfos[2].ApproveMessage)
  end)
end)
