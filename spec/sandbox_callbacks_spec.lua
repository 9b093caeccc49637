-- Callbacks for every event the sandbox emulates, received by a second nginx that checks them with
-- essbasic.callback (signature and decryption): flow status changes with INIT always first (auto-signers
-- included), CustomerData echoed and the group's id where there is a group, a signer's own deadline, single and
-- batch cancels, a batch cancel's result (CancelFlows), a group as a whole (FlowGroupStatusChange), a template's
-- document composed (DocumentFill), seals (OperateSeal Create/Enable) and a sub-company opening e-signing
-- (OrgOpenTsignBiz).
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

  -- Where a message arrived among all of them (1-based), or nil.
  local function position(match)
    for i, r in ipairs(receiver.received()) do
      if match(r.msg) then return i end
    end
  end

  local function wait_one(match)
    return sandbox.wait_for(function()
      local m = messages(match)
      return #m > 0 and m
    end, 10)
  end

  it("a batch cancel sends its task's result (CancelFlows) after each flow's CANCEL", function()
    local a = assert(client:ChannelCreateFlowByFiles{ Agent = sb.agent, FlowName = "批量撤销一", FileIds = {
      sb:upload(client) }, FlowApprovers = { { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } }
      }).FlowId
    local unknown = string.rep("7", 32)
    local task = assert(client:ChannelBatchCancelFlows{ Agent = sb.agent, FlowIds = { a, unknown } }).TaskId
    local got = wait_one(function(m) return m.MsgType == "CancelFlows" and m.MsgData.TaskId == task end)
    assert.is_table(got, "no CancelFlows callback")
    assert.are.equal(1, #got)
    local d = got[1].MsgData
    assert.are.equal("END", d.TaskStatus)
    assert.are.same({ a }, d.SuccessFlowIds)
    assert.are.equal(1, #d.FailureFlows)
    assert.are.equal(unknown, d.FailureFlows[1].FlowId)
    assert.are.equal(sb.app_id, d.ApplicationId)
    assert.are.equal("spec_org", d.ProxyOrganizationOpenId)
    assert.are.equal("spec_operator", d.ProxyOperatorOpenId)
    -- the same result DescribeCancelFlowsTask answers
    local described = assert(client:DescribeCancelFlowsTask{ Agent = sb.agent, TaskId = task })
    assert.are.same(described.SuccessFlowIds, d.SuccessFlowIds)
    local cancel_at = position(function(m) return of_flow(a)(m) and m.MsgData.FlowStatus == "CANCEL" end)
    local init_at = position(function(m) return of_flow(a)(m) and m.MsgData.FlowStatus == "INIT" end)
    local result_at = position(function(m) return m.MsgType == "CancelFlows" and m.MsgData.TaskId == task end)
    assert.is_true(init_at < cancel_at and cancel_at < result_at, init_at .. " " .. cancel_at .. " " .. result_at)
  end)

  it("a group sends FlowGroupStatusChange once, when its last contract ends: ALL, INVALID or PART", function()
    local function group_message(gid)
      return wait_one(function(m) return m.MsgType == "FlowGroupStatusChange" and m.MsgData.FlowGroupId == gid end)
    end
    -- both signers of sb:group_request sign, each on their link (which covers every contract of the group)
    local function sign_all(flow_id)
      for _, who in ipairs({ { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000" },
        { ApproverType = "ORGANIZATION", Name = "李四", Mobile = "13900139000", OpenId = "spec_hr",
          OrganizationName = "示例科技有限公司", OrganizationOpenId = "spec_org" } }) do
        local url = assert(client:ChannelCreateFlowSignUrl{ Agent = sb.agent, FlowId = flow_id,
          FlowApproverInfos = { who } }).FlowApproverUrlInfos[1].SignUrl
        assert.are.equal(200, (sb:sign(url)))
      end
    end
    local function new_group(name)
      local req = sb:group_request({ sb:upload(client), sb:upload(client) }, { name = name })
      return assert(client:ChannelCreateFlowGroupByFiles(req))
    end
    -- every contract cancelled: INVALID, after both CANCELs
    local g1 = new_group("全部撤销")
    assert(client:ChannelCancelFlow{ Agent = sb.agent, FlowId = g1.FlowIds[1] })
    assert.is_table(flow_messages(g1.FlowIds[1], "CANCEL"))
    assert.are.same({}, messages(function(m) return m.MsgType == "FlowGroupStatusChange"
      and m.MsgData.FlowGroupId == g1.FlowGroupId end)) -- one contract still open: nothing yet
    assert(client:ChannelCancelFlow{ Agent = sb.agent, FlowId = g1.FlowIds[2] })
    local got = group_message(g1.FlowGroupId)
    assert.is_table(got, "no FlowGroupStatusChange for a cancelled group")
    local d = got[1].MsgData
    assert.are.equal("INVALID", d.FlowGroupStatus)
    assert.are.equal("全部撤销", d.FlowGroupName)
    assert.are.same(g1.FlowIds, d.FlowIds)
    assert.are.equal(sb.app_id, d.ApplicationId)
    assert.are.equal("spec_org", d.ProxyOrganizationOpenId)
    local last_cancel = position(function(m) return of_flow(g1.FlowIds[2])(m) and m.MsgData.FlowStatus == "CANCEL" end)
    assert.is_true(last_cancel < position(function(m) return m.MsgType == "FlowGroupStatusChange"
      and m.MsgData.FlowGroupId == g1.FlowGroupId end))
    -- every signer signs the whole group on one link: ALL
    local g2 = new_group("全部签署")
    sign_all(g2.FlowIds[1])
    got = group_message(g2.FlowGroupId)
    assert.is_table(got, "no FlowGroupStatusChange for a signed group")
    assert.are.equal("ALL", got[1].MsgData.FlowGroupStatus)
    -- one signed, one cancelled: PART (部分合同已失效)
    local g3 = new_group("部分失效")
    assert(client:ChannelCancelFlow{ Agent = sb.agent, FlowId = g3.FlowIds[2] })
    sign_all(g3.FlowIds[1])
    got = group_message(g3.FlowGroupId)
    assert.is_table(got, "no FlowGroupStatusChange for a partly signed group")
    assert.are.equal("PART", got[1].MsgData.FlowGroupStatus)
    for _, g in ipairs({ g1, g2, g3 }) do -- once each
      assert.are.equal(1, #messages(function(m) return m.MsgType == "FlowGroupStatusChange"
        and m.MsgData.FlowGroupId == g.FlowGroupId end))
    end
  end)

  it("a contract from a template sends DocumentFill, after its INIT", function()
    local template = assert(client:DescribeTemplates{ Agent = sb.agent }).Templates[1]
    local fid = assert(client:CreateFlowsByTemplates{ Agent = sb.agent, FlowInfos = { {
      FlowName = "模板合同", TemplateId = template.TemplateId, Deadline = os.time() + 86400,
      FlowApprovers = { { ApproverType = "PERSON", Name = "孙八", Mobile = "13400134000" },
        { ApproverType = "ORGANIZATION", OpenId = "spec_hr", OrganizationOpenId = "spec_org",
          OrganizationName = "示例科技有限公司", Name = "李四", Mobile = "13900139000" } },
      FormFields = { { ComponentName = "员工姓名", ComponentValue = "孙八" } } } } }).FlowIds[1]
    local got = wait_one(function(m) return m.MsgType == "DocumentFill" and m.MsgData.FlowId == fid end)
    assert.is_table(got, "no DocumentFill callback")
    assert.are.equal(1, #got)
    assert.are.equal(sb.app_id, got[1].MsgData.ApplicationId)
    assert.are.equal("spec_org", got[1].MsgData.ProxyOrganizationOpenId)
    assert.are.equal("spec_operator", got[1].MsgData.ProxyOperatorOpenId)
    local init_at = position(function(m) return of_flow(fid)(m) and m.MsgData.FlowStatus == "INIT" end)
    assert.is_true(init_at < position(function(m) return m.MsgType == "DocumentFill" and m.MsgData.FlowId == fid end))
    -- a contract from an uploaded file has no document to compose
    local plain = assert(client:ChannelCreateFlowByFiles{ Agent = sb.agent, FlowName = "文件合同", FileIds = {
      sb:upload(client) }, FlowApprovers = { { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } }
      }).FlowId
    assert.is_table(flow_messages(plain, "INIT"))
    assert.are.same({}, messages(function(m) return m.MsgType == "DocumentFill" and m.MsgData.FlowId == plain end))
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
