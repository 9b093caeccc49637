-- Callbacks for every event the sandbox emulates, received by a second nginx that checks them with
-- essbasic.callback (signature and decryption): flow status changes with INIT always first (auto-signers
-- included), CustomerData echoed and the group's id where there is a group, a signer's own deadline, single and
-- batch cancels, seals (OperateSeal Create/Enable) and a sub-company opening e-signing (OrgOpenTsignBiz).
-- Sources of the names: sandbox/README.md, "Callbacks".
local sandbox = require("helpers.sandbox")

local KEY = "0123456789abcdef0123456789ABCDEF"
local TOKEN = "callbacks-spec-token"

describe("sandbox callbacks", function()
  local sb, client, receiver

  setup(function()
    receiver = sandbox.start_receiver(TOKEN, KEY)
    sb = sandbox.start{ rate_limit = 1000, sweep_interval = 0.2, callback = { url = "http://127.0.0.1:"
      .. receiver.port .. "/cb", key = KEY, token = TOKEN, base_delay = 0.1, max_delay = 0.5, max_attempts = 5 } }
    client = sb:client({ retry = false })
  end)
  teardown(function()
    if sb then sb:stop() end
    if receiver then receiver:stop() end
  end)

  -- The messages received so far that match, in the order they arrived.
  local function messages(match)
    local out = {}
    for _, r in ipairs(receiver.received()) do
      if match(r.msg) then out[#out + 1] = r.msg end
    end
    return out
  end

  local function of_flow(fid)
    return function(m) return m.MsgType == "FlowStatusChange" and m.MsgData.FlowId == fid end
  end

  local function statuses(list)
    local out = {}
    for i, m in ipairs(list) do out[i] = m.MsgData.FlowStatus end
    return out
  end

  -- Waits until the flow's messages end with `last`; returns them.
  local function flow_messages(fid, last)
    return sandbox.wait_for(function()
      local got = messages(of_flow(fid))
      return #got > 0 and got[#got].MsgData.FlowStatus == last and got
    end, 10)
  end

  it("sends INIT first even when an auto-signer signs at once, then the change it makes", function()
    local fid = assert(client:ChannelCreateFlowByFiles{ Agent = sb.agent, FlowName = "自动签在前",
      FileIds = { sb:upload(client) }, CustomerData = "order-77", FlowApprovers = {
        { ApproverType = "ENTERPRISESERVER", OrganizationName = "示例科技有限公司", OrganizationOpenId = "spec_org",
          OpenId = "spec_operator" },
        { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } } }).FlowId
    local got = flow_messages(fid, "PART")
    assert.is_table(got, "no PART callback")
    assert.are.same({ "INIT", "PART" }, statuses(got))
    assert.are.same({ 1, 2 }, { got[1].MsgData.FlowCallbackStatus, got[2].MsgData.FlowCallbackStatus })
    assert.are.equal("PENDING", got[1].MsgData.FlowApproverInfos[1].ApproveStatus) -- INIT as it was
    assert.are.equal("ACCEPT", got[2].MsgData.FlowApproverInfos[1].ApproveStatus)
    for _, m in ipairs(got) do assert.are.equal("order-77", m.MsgData.CustomerData) end
  end)

  it("a group's flows carry FlowGroupId and CustomerData; a batch cancel sends CANCEL for each", function()
    local req = sb:group_request({ sb:upload(client), sb:upload(client) })
    req.FlowFileInfos[1].CustomerData, req.FlowFileInfos[2].CustomerData = "c-1", "c-2"
    local created = assert(client:ChannelCreateFlowGroupByFiles(req))
    for i, fid in ipairs(created.FlowIds) do
      local got = flow_messages(fid, "INIT")
      assert.is_table(got)
      assert.are.equal(created.FlowGroupId, got[1].MsgData.FlowGroupId)
      assert.are.equal("c-" .. i, got[1].MsgData.CustomerData)
    end
    local single = assert(client:ChannelCreateFlowByFiles{ Agent = sb.agent, FlowName = "单份", FileIds = {
      sb:upload(client) }, FlowApprovers = { { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } },
      CustomerData = "c-3" }).FlowId
    assert(client:ChannelBatchCancelFlows{ Agent = sb.agent, FlowIds = { single }, CancelMessage = "发错了" })
    local got = flow_messages(single, "CANCEL")
    assert.is_table(got, "no CANCEL callback after ChannelBatchCancelFlows")
    assert.are.same({ "INIT", "CANCEL" }, statuses(got))
    assert.are.equal(6, got[2].MsgData.FlowCallbackStatus)
    assert.are.equal("c-3", got[2].MsgData.CustomerData)
    assert.is_nil(got[2].MsgData.FlowGroupId) -- a single contract is in no group
  end)

  it("a signer's own deadline passing ends the flow with DEADLINE", function()
    local fid = assert(client:ChannelCreateFlowByFiles{ Agent = sb.agent, FlowName = "签署人截止",
      FileIds = { sb:upload(client) }, CustomerData = "d-1", FlowApprovers = {
        { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000", Deadline = os.time() + 2 } } }).FlowId
    local got = flow_messages(fid, "DEADLINE")
    assert.is_table(got, "no DEADLINE callback")
    assert.are.same({ "INIT", "DEADLINE" }, statuses(got))
    assert.are.equal(5, got[2].MsgData.FlowCallbackStatus)
    assert.are.equal("d-1", got[2].MsgData.CustomerData)
  end)

  it("a new sub-company opening e-signing and its seals send OrgOpenTsignBiz and OperateSeal", function()
    local agent = { AppId = sb.app_id, ProxyOrganizationOpenId = "cb_new_org",
      ProxyOperator = { OpenId = "cb_operator" } }
    assert(client:ChannelDescribeOrganizationSeals{ Agent = agent, Limit = 10 }) -- named: known, verified
    local opened = sandbox.wait_for(function()
      local m = messages(function(x)
        return x.MsgType == "OrgOpenTsignBiz" and x.MsgData.ProxyOrganizationOpenId == "cb_new_org"
      end)
      return #m > 0 and m
    end, 10)
    assert.is_table(opened, "no OrgOpenTsignBiz callback")
    assert.are.equal(1, #opened)
    assert.are.equal(sb.app_id, opened[1].MsgData.ApplicationId)
    assert.is_string(opened[1].MsgData.ProxyAppId)
    local seal = assert(client:CreateSealByImage{ Agent = agent, SealName = "合同专用章", SealType = "CONTRACT",
      GenerateSource = "SealGenerateSourceSystem" }).SealId
    local got = sandbox.wait_for(function()
      local m = messages(function(x) return x.MsgType == "OperateSeal" and x.MsgData.SealId == seal end)
      return #m == 2 and m
    end, 10)
    assert.is_table(got, "no OperateSeal callbacks for the new seal")
    assert.are.same({ "Create", "Enable" }, { got[1].MsgData.Operate, got[2].MsgData.Operate })
    assert.are.equal("cb_new_org", got[1].MsgData.ProxyOrganizationOpenId)
    assert.are.equal("cb_operator", got[1].MsgData.ProxyOperatorOpenId)
    -- the OFFICIAL seal of the verification came with the opening
    assert.are.equal(2, #messages(function(x) return x.MsgType == "OperateSeal"
      and x.MsgData.ProxyOrganizationOpenId == "cb_new_org" and x.MsgData.SealType == "OFFICIAL" end))
  end)
end)
