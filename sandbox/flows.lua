-- Single contracts and what a platform does with a contract after it started: ChannelCreateFlowByFiles,
-- ChannelCreateFlowSignUrl, ChannelCreateBatchSignUrl, ChannelCreateFlowReminds, ModifyFlowDeadline,
-- ChannelDescribeFlowComponents. Same contract as workflow.lua: no yields, (response) or (nil, code, message).

local json = require("essbasic.json")
local store = require("sandbox.store")
local wf = require("sandbox.workflow")

local type, ipairs, pairs = type, ipairs, pairs
local array, fail, FINAL = json.array, wf.fail, wf.FINAL

local M = {}

local function state() return store.state end

local function one_flow(id, ctx, code)
  local flows, c, m = wf.own_flows({ id }, ctx, code or "ResourceNotFound.Flow")
  if not flows then return nil, c, m end
  return flows[1]
end

local function grouped(flow)
  local g = state().groups[flow.group]
  return g and not g.hidden
end

---------------------------------------------------------------------------------------------------------------
-- ChannelCreateFlowByFiles: one contract from one uploaded PDF.
---------------------------------------------------------------------------------------------------------------

function M.ChannelCreateFlowByFiles(params, ctx)
  if type(params.FlowName) ~= "string" or params.FlowName == "" then
    return fail("InvalidParameter.FlowName", "FlowName is required")
  end
  if #params.FlowName > 200 * 3 then return fail("InvalidParameter.FlowName", "FlowName is longer than 200") end
  local ids = params.FileIds
  local files_ok, code, message = wf.check_file_ids(ids, ctx, "FileIds")
  if not files_ok then return nil, code, message end
  local approvers = params.FlowApprovers
  if params.OpenDynamicSignFlow == true and approvers == nil then
    approvers = {} -- a dynamic flow (OpenDynamicSignFlow, Tencent's example 15): signers are added later
  elseif type(approvers) ~= "table" or #approvers == 0 then
    return fail("InvalidParameter.FlowApprovers", "FlowApprovers must list at least one signer")
  end
  if #approvers > 50 then return fail("InvalidParameter.FlowApprovers", "at most 50 FlowApprovers") end
  for i, a in ipairs(approvers) do
    local t = a.ApproverType or "PERSON"
    -- ApproverOption.FillType 1: a signer named later (动态签署人, Tencent's example 6 of this action)
    local later = type(a.ApproverOption) == "table" and a.ApproverOption.FillType == 1
    if not later and (t == "PERSON" or (t == "ORGANIZATION" and not a.OpenId)) and (not a.Name or not a.Mobile) then
      return fail("InvalidParameter.FlowApprovers", "FlowApprovers[" .. i .. "] needs Name and Mobile")
    end
    if t == "ORGANIZATION" and a.OpenId and not a.OrganizationOpenId then
      return fail("InvalidParameter.FlowApprovers", "FlowApprovers[" .. i .. "] with an OpenId needs "
        .. "OrganizationOpenId")
    end
  end
  if wf.deadline_given(params.Deadline) and params.Deadline <= ctx.now then
    return fail("InvalidParameter.FlowDeadLine", "Deadline is in the past")
  end
  local placed, pcode, pmessage = wf.check_places(approvers, params.Components, (ctx.documents or {})[ids[1]],
    "FlowApprovers")
  if not placed then return nil, pcode, pmessage end
  if params.NeedPreview then
    return { PreviewUrl = ctx.base_url .. "/sandbox/files/" .. ids[1], Approvers = array() }
  end
  local group = wf.new_group(params.FlowName, ctx, true)
  local flow, items = wf.add_flow(group, { name = params.FlowName, type = params.FlowType,
    description = params.FlowDescription, customer_data = params.CustomerData, file_id = ids[1],
    unordered = params.Unordered, deadline = params.Deadline, approvers = approvers,
    components = params.Components }, ctx)
  return { FlowId = flow.id, Approvers = items }
end

---------------------------------------------------------------------------------------------------------------
-- Signing links for one flow, and batch links across flows
---------------------------------------------------------------------------------------------------------------

-- Does the request's FlowApproverInfo name this approver (OpenId for sub-company staff, else Name + Mobile)?
local function names(info, ap)
  if info.ApproverType and info.ApproverType ~= ap.type then return false end
  if info.OpenId and info.OpenId ~= "" then
    return info.OpenId == ap.open_id and (info.OrganizationOpenId or "") == (ap.org_open_id or "")
  end
  return info.Name == ap.name and info.Mobile == ap.mobile
end

-- Expired links go when new ones are made (the group links of CreateSignUrls have no expiry).
local function drop_expired_links(now)
  local tokens = state().tokens
  for k, t in pairs(tokens) do
    if t.expires and t.expires <= now then tokens[k] = nil end
  end
end

function M.ChannelCreateFlowSignUrl(params, ctx)
  local flow, code, message = one_flow(params.FlowId, ctx)
  if not flow then return nil, code, message end
  local ttl = params.ExpiredOn or 1800
  if ttl < 1800 or ttl > 7776000 then
    return fail("InvalidParameter", "ExpiredOn must be 1800 to 7776000 seconds")
  end
  if FINAL[flow.status] then return fail("OperationDenied", "the flow is already " .. flow.status) end
  local infos = params.FlowApproverInfos
  local g = state().groups[flow.group]
  drop_expired_links(ctx.now)
  if type(infos) ~= "table" or #infos == 0 then
    -- FlowApproverInfos: "生成发起方预览链接时，该字段（FlowApproverInfos）传空或者不传" — the promoter's preview
    -- (the signer page without anyone to sign as)
    local token = wf.new_id() .. wf.new_id()
    state().tokens[token] = { group = g.id, preview = true, expires = ctx.now + ttl }
    local url = ctx.base_url .. "/sandbox/sign?token=" .. token
    return { FlowApproverUrlInfos = array({ { SignUrl = url, LongUrl = url } }) }
  end
  local out = array()
  for i, info in ipairs(infos) do
    if not info.ApproverType then
      return fail("MissingParameter", "FlowApproverInfos[" .. i .. "].ApproverType is required")
    end
    local found
    for _, ap in ipairs(flow.approvers) do
      if names(info, ap) then found = ap end
    end
    if not found then
      return fail("InvalidParameter", "FlowApproverInfos[" .. i .. "] is not a signer of the flow " .. flow.id)
    end
    local signer = g.signers[found.signer]
    if not signer then return fail("OperationDenied", "FlowApproverInfos[" .. i .. "] signs automatically") end
    if found.status ~= "PENDING" then
      return fail("OperationDenied", "FlowApproverInfos[" .. i .. "] has already finished (" .. found.status .. ")")
    end
    -- A link of its own that ends after ExpiredOn (30 minutes by default), for the same signer's whole group.
    local token = wf.new_id() .. wf.new_id()
    state().tokens[token] = { group = g.id, signer = found.signer, expires = ctx.now + ttl }
    local url = ctx.base_url .. "/sandbox/sign?token=" .. token
    out[i] = { SignUrl = url, LongUrl = url, ApproverType = found.type, Name = found.name, Mobile = found.mobile }
  end
  return { FlowApproverUrlInfos = out }
end

function M.ChannelCreateBatchSignUrl(params, ctx)
  local ids = params.FlowIds
  if type(ids) ~= "table" or #ids == 0 then return fail("MissingParameter", "FlowIds is required") end
  if #ids > 100 then return fail("InvalidParameter", "at most 100 FlowIds") end
  local by_openid = params.OpenId and params.OpenId ~= ""
  if by_openid and not params.OrganizationOpenId then
    return fail("MissingParameter", "OrganizationOpenId is required with OpenId")
  end
  if not by_openid and (not params.Name or not params.Mobile) then
    return fail("MissingParameter", "Name and Mobile (or OpenId and OrganizationOpenId) name the signer")
  end
  local flows, code, message = wf.own_flows(ids, ctx, "InvalidParameter")
  if not flows then return nil, code, message end
  local key
  local probe = { OpenId = params.OpenId, OrganizationOpenId = params.OrganizationOpenId, Name = params.Name,
    Mobile = params.Mobile }
  for _, flow in ipairs(flows) do
    if FINAL[flow.status] then
      return fail("OperationDenied", "the flow " .. flow.id .. " is already " .. flow.status)
    end
    local mine
    for _, ap in ipairs(flow.approvers) do
      if names(probe, ap) and ap.status == "PENDING" and not wf.AUTO_SIGN[ap.type] then mine = ap end
    end
    if not mine then
      return fail("OperationDenied", "the signer has nothing to sign in the flow " .. flow.id)
    end
    key = mine.signer
  end
  drop_expired_links(ctx.now)
  local token = wf.new_id() .. wf.new_id()
  local expires = ctx.now + 7 * 86400
  local flow_ids = {}
  for i, f in ipairs(flows) do flow_ids[i] = f.id end
  state().tokens[token] = { flows = flow_ids, signer = key, name = params.Name or params.OpenId,
    title = "批量签署", expires = expires }
  return { SignUrl = ctx.base_url .. "/sandbox/sign?token=" .. token, ExpiredTime = expires,
    MiniAppPath = "pages/guide?sandbox_token=" .. token }
end

---------------------------------------------------------------------------------------------------------------
-- ChannelCreateFlowReminds: each waiting signer whose turn it is, once per flow.
---------------------------------------------------------------------------------------------------------------

function M.ChannelCreateFlowReminds(params, ctx)
  local ids = params.FlowIds
  if #ids == 0 then return fail("InvalidParameterValue", "FlowIds must list at least one flow") end
  if #ids > 100 then return fail("InvalidParameterValue", "at most 100 FlowIds") end
  local records = array()
  for i, id in ipairs(ids) do
    local flow = state().flows[id]
    local can, why = false, nil
    if not flow or flow.app ~= ctx.app then
      why = "the flow does not exist for this application"
    elseif FINAL[flow.status] then
      why = "the flow is already " .. flow.status
    else
      for _, ap in ipairs(flow.approvers) do
        if ap.status == "PENDING" and not ap.reminded and wf.turn_of(flow, ap) and not wf.AUTO_SIGN[ap.type] then
          ap.reminded = ctx.now
          can = true
        end
      end
      if can then
        state().counters.reminds = (state().counters.reminds or 0) + 1
      else
        why = "every waiting signer was already reminded once"
      end
    end
    records[i] = { FlowId = id, CanRemind = can, RemindMessage = why or "" }
  end
  return { RemindFlowRecords = records }
end

---------------------------------------------------------------------------------------------------------------
-- ModifyFlowDeadline: the flow's deadline, or one signer's.
---------------------------------------------------------------------------------------------------------------

function M.ModifyFlowDeadline(params, ctx)
  local flow, code, message = one_flow(params.FlowId, ctx)
  if not flow then return nil, code, message end
  if grouped(flow) then return fail("OperationDenied", "flows of a flow group cannot be extended") end
  if FINAL[flow.status] then
    return fail("InvalidParameter.Status", "the flow is already " .. flow.status .. "; only a flow that still "
      .. "waits for a signer can be extended")
  end
  local deadline = params.Deadline
  if not params.RecipientId or params.RecipientId == "" then
    if deadline <= flow.deadline or deadline <= ctx.now then
      return fail("InvalidParameter.ParamError", "the new Deadline must be later than the current deadline ("
        .. flow.deadline .. ") and than now")
    end
    flow.deadline = deadline -- signers without a deadline of their own follow the flow's
    return {}
  end
  local ap
  for _, a in ipairs(flow.approvers) do
    if a.recipient_id == params.RecipientId then ap = a end
  end
  if not ap then
    return fail("InvalidParameter.ParamError", "RecipientId " .. params.RecipientId .. " is not in the flow")
  end
  if ap.status ~= "PENDING" then return fail("InvalidParameter.Status", "that signer is already " .. ap.status) end
  local current = ap.deadline or flow.deadline
  if deadline <= current or deadline <= ctx.now then
    return fail("InvalidParameter.ParamError", "the new Deadline must be later than the signer's current deadline ("
      .. current .. ") and than now")
  end
  -- RecipientId: "只调整签署流程中此签署人的签署截止时间" — this signer's deadline alone, ordered flow or not. The
  -- flow cannot end before a signer's time is up, so a signer's deadline past the flow's carries the flow's along.
  ap.deadline = deadline
  if deadline > flow.deadline then flow.deadline = deadline end
  return {}
end

---------------------------------------------------------------------------------------------------------------
-- ChannelDescribeFlowComponents: the fill-in fields per recipient.
---------------------------------------------------------------------------------------------------------------

function M.ChannelDescribeFlowComponents(params, ctx)
  local flow, code, message = one_flow(params.FlowId, ctx, "ResourceNotFound.Flow")
  if not flow then return nil, code, message end
  local function fields_of(recipient_id)
    local comps, all = array(), true
    for _, c in ipairs(flow.fills or {}) do
      if c.recipient_id == recipient_id then
        local filled = c.value ~= nil and c.value ~= ""
        all = all and filled
        comps[#comps + 1] = { ComponentId = c.id, ComponentName = c.name, ComponentFillStatus = filled and "1" or "0",
          ComponentValue = c.value or "" }
      end
    end
    return comps, all
  end
  local out = array()
  if flow.promoter then -- the promoter's fields (template contracts: the FormFields of the request)
    local comps, all = fields_of(flow.promoter)
    out[1] = { RecipientId = flow.promoter, RecipientFillStatus = all and "1" or "0", IsPromoter = true,
      Components = comps }
  end
  for _, ap in ipairs(flow.approvers) do
    local comps = fields_of(ap.recipient_id)
    out[#out + 1] = { RecipientId = ap.recipient_id, RecipientFillStatus = ap.status == "ACCEPT" and "1" or "0",
      IsPromoter = false, Components = comps }
  end
  return { RecipientComponentInfos = out }
end

return M
