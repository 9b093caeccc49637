-- The emulated essbasic actions and the sandbox-only signer, over the state in sandbox/store.lua.
--
-- Every function here runs to completion without yielding (no I/O but the state file's blocking write), which is
-- what keeps concurrent requests from corrupting the state (see store.lua). Each returns a Response table, or
-- nil, code, message with the API's error codes. Status changes are appended to ctx.changes as flow ids (the
-- flow's state when the request ends is sent), or as { flow = snapshot } for a state the flow leaves within the
-- same request (INIT before auto-signers sign); other events go to the outbox (M.emit). The server turns them
-- into callback messages, in order, after the change is saved.
-- A request reaches a handler only after the library's own validator accepted it (server.lua: validate.request,
-- with the codes of lua/essbasic/rules.lua): the handlers check only what needs the state (files, flows, time),
-- never a list length or a required member again, so each rule answers with one code.
--
-- Statuses as in real life: a flow is INIT when created, PART once someone signed, ALL when everyone did; REJECT
-- when a signer refuses, CANCEL when cancelled, DEADLINE when its deadline passes first. Signers (approvers) are
-- PENDING, then ACCEPT, REJECT, CANCEL, DEADLINE or STOP (someone else ended the flow). A flow group is signed as
-- a whole: one person's signature covers their place in every contract of the group.

local core = require("essbasic.core")
local json = require("essbasic.json")
local store = require("sandbox.store")
local pdf = require("sandbox.pdf")

local type, ipairs, pairs, tostring, concat = type, ipairs, pairs, tostring, table.concat
local hex, random_bytes, base64_decode = core.hex, core.random_bytes, core.base64_decode
local array = json.array

local M = {}

local FINAL = { ALL = true, REJECT = true, CANCEL = true, DEADLINE = true, INVALID = true, RELIEVED = true }
local AUTO_SIGN = { ENTERPRISESERVER = true, PERSON_AUTO_SIGN = true }
-- FlowApproverDetail.ApproveType is documented as ORGANIZATION or PERSON only: the request's ApproverType mapped.
local APPROVE_TYPE = { PERSON = "PERSON", PERSON_AUTO_SIGN = "PERSON" }
M.FINAL = FINAL

-- 32 characters, as the API's FileIds, FlowIds and FlowGroupIds.
local function new_id()
  return hex(random_bytes(16))
end
M.new_id = new_id
M.AUTO_SIGN = AUTO_SIGN

local function state() return store.state end

-- Callback events besides flow status changes (seals, sub-companies): { type = MsgType, data = MsgData }, queued
-- while a request works and taken by the server when it sends the request's callbacks.
local outbox = {}
function M.emit(msg_type, data)
  outbox[#outbox + 1] = { type = msg_type, data = data }
end
function M.take_events()
  local out = outbox
  outbox = {}
  return out
end

local function fail(code, message) return nil, code, message end

local function agent_of(params)
  local a = type(params.Agent) == "table" and params.Agent or {}
  local op = type(a.ProxyOperator) == "table" and a.ProxyOperator or {}
  return a.AppId, a.ProxyOrganizationOpenId, op.OpenId
end

-- CancelFlows, DocumentFill and FlowGroupStatusChange: MsgTypes of Tencent's partner callback list whose MsgData
-- members were not found (sandbox/README.md, "Callbacks"). Their members carry the app, sub-company and operator as
-- every partner message does, and name each fact as the API's own structures name it.
local function emit_about(msg_type, owner, data)
  data.ApplicationId, data.ProxyOrganizationOpenId, data.ProxyOperatorOpenId = owner.app, owner.org_open_id,
    owner.operator_open_id
  M.emit(msg_type, data)
end

-- A group of contracts (not the hidden one-flow group of a single contract) whose last flow has just ended sends
-- FlowGroupStatusChange once, with a FlowGroupStatus of the documented vocabulary: ALL (every contract signed),
-- INVALID (none signed) or PART (部分合同已失效: some contracts ended unsigned).
local function settle_group(group_id)
  local g = state().groups[group_id]
  if not g or g.hidden or g.final_status then return end
  local signed = 0
  for _, fid in ipairs(g.flow_ids) do
    local f = state().flows[fid]
    if not FINAL[f.status] then return end
    if f.status == "ALL" then signed = signed + 1 end
  end
  g.final_status = signed == #g.flow_ids and "ALL" or signed == 0 and "INVALID" or "PART"
  local ids = array()
  for i, fid in ipairs(g.flow_ids) do ids[i] = fid end
  emit_about("FlowGroupStatusChange", g, { FlowGroupId = g.id, FlowGroupName = g.name,
    FlowGroupStatus = g.final_status, FlowIds = ids })
end

---------------------------------------------------------------------------------------------------------------
-- Deadlines
---------------------------------------------------------------------------------------------------------------

local function finish_approvers(flow, status)
  for _, ap in ipairs(flow.approvers) do
    if ap.status == "PENDING" then ap.status = status end
  end
end

-- The flow's deadline, or a waiting approver's own one (FlowApproverInfo.Deadline, ModifyFlowDeadline), passed.
local function overdue(flow, now)
  if flow.deadline <= now then return true end
  for _, ap in ipairs(flow.approvers) do
    if ap.status == "PENDING" and ap.deadline and ap.deadline <= now then return true end
  end
  return false
end

-- A Deadline member as the API reads it: absent or 0 means "not set" (Tencent's own ChannelCreateFlowGroupByFiles
-- examples send "Deadline": 0), which gives the default of 365 days (config.flow_deadline).
function M.deadline_given(d)
  if d == nil or d == 0 then return nil end
  return d
end

-- Moves every unfinished flow whose deadline passed to DEADLINE; returns how many moved.
function M.expire(now, changes)
  local moved = 0
  for id, flow in pairs(state().flows) do
    if not FINAL[flow.status] and overdue(flow, now) then
      flow.status = "DEADLINE"
      flow.message = "the signing deadline passed"
      finish_approvers(flow, "DEADLINE")
      changes[#changes + 1] = id
      moved = moved + 1
      settle_group(flow.group)
    end
  end
  state().counters.deadlines = state().counters.deadlines + moved
  return moved
end

---------------------------------------------------------------------------------------------------------------
-- UploadFiles
---------------------------------------------------------------------------------------------------------------

function M.UploadFiles(params, ctx)
  local infos = params.FileInfos
  if type(infos) ~= "table" or #infos == 0 then
    return fail("MissingParameter", "FileInfos must list at least one file")
  end
  local decoded = {}
  for i, info in ipairs(infos) do
    local bytes = base64_decode(info.FileBody or "")
    if not bytes or bytes == "" then
      return fail("InvalidParameter", "FileInfos[" .. i .. "].FileBody is not valid, non-empty base64")
    end
    local name = info.FileName or ""
    if params.BusinessType == "DOCUMENT" and name:lower():match("%.pdf$") and bytes:sub(1, 5) ~= "%PDF-" then
      return fail("InvalidParameter", "FileInfos[" .. i .. "] is named .pdf but is not a PDF")
    end
    decoded[i] = { bytes = bytes, name = name }
  end
  -- If one file fails, all fail: write every file before the state names any of them.
  local ids, urls = array(), array()
  for i, d in ipairs(decoded) do
    local id = new_id()
    local ok, why = store.put_file(id, d.bytes)
    if not ok then return fail("InternalError", "the sandbox could not store the file: " .. why) end
    ids[i] = id
    urls[i] = ctx.base_url .. "/sandbox/files/" .. id
    d.id = id
  end
  local expires = ctx.now + ctx.config.file_ttl
  for _, d in ipairs(decoded) do
    state().files[d.id] = { id = d.id, app = ctx.app, name = d.name, size = #d.bytes, created = ctx.now,
      expires = expires, business_type = params.BusinessType }
  end
  state().counters.files_uploaded = state().counters.files_uploaded + #decoded
  return { TotalCount = #ids, FileIds = ids, FileUrls = urls, Deadline = expires }
end

---------------------------------------------------------------------------------------------------------------
-- ChannelCreateFlowGroupByFiles
---------------------------------------------------------------------------------------------------------------

-- Who a signer is, across the contracts of a group: the same person or company seat in several contracts signs
-- them together with one link.
local function signer_key(a)
  if a.OpenId and a.OpenId ~= "" then
    return "openid:" .. (a.OrganizationOpenId or "") .. "/" .. a.OpenId
  end
  return concat({ a.ApproverType or "", a.OrganizationName or "", a.Name or "", a.Mobile or "" }, "|")
end

-- A contract's FileIds (named `where` in messages): exactly one FileId, uploaded by this app and not expired.
function M.check_file_ids(ids, ctx, where)
  ids = type(ids) == "table" and ids or {}
  if #ids ~= 1 then return fail("InvalidParameter.FlowFileIds", where .. " must hold exactly one FileId") end
  local f = state().files[ids[1]]
  if not f or f.app ~= ctx.app then
    return fail("InvalidParameter.FlowFileIds", where .. ": the FileId " .. tostring(ids[1])
      .. " does not exist for this application")
  end
  if f.expires <= ctx.now then
    return fail("InvalidParameter.FlowFileIds", where .. ": the FileId " .. ids[1]
      .. " has expired; upload the file again")
  end
  return true
end

local function check_files(params, ctx)
  for i, info in ipairs(params.FlowFileInfos) do
    local ok, code, message = M.check_file_ids(info.FileIds, ctx, "FlowFileInfos[" .. i .. "].FileIds")
    if not ok then return nil, code, message end
    ok, code, message = M.check_places(info.FlowApprovers, info.Components, (ctx.documents or {})[info.FileIds[1]],
      "FlowFileInfos[" .. i .. "]")
    if not ok then return nil, code, message end
    if M.deadline_given(info.Deadline) and info.Deadline <= ctx.now then
      return fail("InvalidParameter.FlowDeadLine", "FlowFileInfos[" .. i .. "].Deadline is in the past")
    end
  end
  return true
end

-- Auto-signers whose turn has come sign at once, as the company's server would.
local function run_auto_signers(flow, now)
  local changed = false
  for _, ap in ipairs(flow.approvers) do
    if ap.status == "PENDING" then
      if AUTO_SIGN[ap.type] then
        ap.status, ap.time = "ACCEPT", now
        changed = true
      elseif not flow.unordered then
        break
      end
    end
  end
  return changed
end

local function update_flow_status(flow)
  if FINAL[flow.status] then return end
  local accepted, total = 0, #flow.approvers
  for _, ap in ipairs(flow.approvers) do
    if ap.status == "ACCEPT" then accepted = accepted + 1 end
  end
  if accepted == total then
    flow.status = "ALL"
  elseif accepted > 0 then
    flow.status = "PART"
  end
end

-- Where an approver signs: its own SignComponents, or the flow's Components given to its RecipientId
-- (ChannelCreateFlowByFiles), or a template recipient's. Only what the PDF marks need is kept.
local SIGN_TYPES = { SIGN_SIGNATURE = true, SIGN_SEAL = true, SIGN_DATE = true, SIGN_PERSONAL_SEAL = true,
  SIGN_LEGAL_PERSON_SEAL = true, SIGN_PAGING_SEAL = true, SIGN_OPINION = true, SIGN_VIRTUAL_COMBINATION = true }
local function places(components, recipient_id)
  local out = {}
  for _, c in ipairs(type(components) == "table" and components or {}) do
    if (recipient_id == nil or c.ComponentRecipientId == recipient_id)
      and (c.ComponentType == nil or SIGN_TYPES[c.ComponentType]) then
      local place = { page = c.ComponentPage, x = c.ComponentPosX, y = c.ComponentPosY, w = c.ComponentWidth,
        h = c.ComponentHeight }
      if c.GenerateMode == "KEYWORD" and type(c.ComponentId) == "string" and c.ComponentId ~= "" then
        -- found in the document when it is stamped (^word^ asks for the whole word)
        place = { keyword = c.ComponentId, page = c.KeywordPage, offset_x = c.OffsetX, offset_y = c.OffsetY,
          relative = c.RelativeLocation, w = c.ComponentWidth, h = c.ComponentHeight }
      end
      out[#out + 1] = place
    end
  end
  return out
end
M.places = places

-- Each component of a new contract has its place in the document (doc: documents.inspect's reading, made before
-- the handler ran): a keyword that is in it (GenerateMode KEYWORD; InvalidParameter.Keyword, "关键字格式错误或者
-- 不存在"), a ComponentPage within its pages (ComponentPage: "页面编号不能超过PDF文件的页码总数"; -1 is the last).
-- A document poppler cannot read (no pages) is not checked.
function M.check_places(approvers, components, doc, where)
  if not doc or doc.pages == 0 then return true end
  local lists = { components }
  for _, a in ipairs(type(approvers) == "table" and approvers or {}) do
    if type(a) == "table" then lists[#lists + 1] = a.SignComponents end
  end
  for _, list in ipairs(lists) do
    for _, c in ipairs(type(list) == "table" and list or {}) do
      if c.GenerateMode == "KEYWORD" and type(c.ComponentId) == "string" and c.ComponentId ~= "" then
        if #pdf.find_keyword(doc.words, c.ComponentId, c.KeywordPage) == 0 then
          return fail("InvalidParameter.Keyword", where .. ": the keyword " .. c.ComponentId .. " is not in the "
            .. "document" .. (c.KeywordPage and (" on page " .. tostring(c.KeywordPage)) or ""))
        end
      elseif type(c.ComponentPage) == "number" and (c.ComponentPage == 0 or c.ComponentPage > doc.pages
        or c.ComponentPage < -doc.pages) then
        return fail("InvalidParameter", where .. ": ComponentPage " .. c.ComponentPage .. " is not a page of the "
          .. "document (it has " .. doc.pages .. ")")
      end
    end
  end
  return true
end

-- A group record. hidden = true for the one-flow groups behind single contracts (ChannelCreateFlowByFiles,
-- CreateFlowsByTemplates): they carry the signers' tokens but are no FlowGroupId of the API.
function M.new_group(name, ctx, hidden)
  local _, org_open_id, operator_open_id = agent_of(ctx.params)
  local group = { id = new_id(), app = ctx.app, org_open_id = org_open_id, operator_open_id = operator_open_id,
    name = name, created = ctx.now, flow_ids = {}, signers = {}, hidden = hidden or nil }
  state().groups[group.id] = group
  if not hidden then state().counters.groups_created = state().counters.groups_created + 1 end
  return group
end

-- Adds one flow to a group. spec = { name, type, description, customer_data, file_id, unordered, deadline,
-- approvers = FlowApproverInfo list, components = flow-level Components, recipients = template recipients,
-- template_id, fills = the promoter's filled fields, promoter = its RecipientId }.
-- Returns the flow and its ApproverItem list.
function M.add_flow(group, spec, ctx)
  local _, org_open_id, operator_open_id = agent_of(ctx.params)
  local flow = { id = new_id(), group = group.id, app = ctx.app, org_open_id = org_open_id,
    operator_open_id = operator_open_id, name = spec.name, type = spec.type, description = spec.description,
    customer_data = spec.customer_data, file_id = spec.file_id, unordered = spec.unordered == true,
    created = ctx.now, deadline = M.deadline_given(spec.deadline) or (ctx.now + ctx.config.flow_deadline),
    status = "INIT", approvers = {}, template_id = spec.template_id, fills = spec.fills, promoter = spec.promoter }
  local items = array()
  for j, a in ipairs(spec.approvers) do
    local key = signer_key(a)
    local recipient = spec.recipients and spec.recipients[j]
    local recipient_id = a.RecipientId and a.RecipientId ~= "" and a.RecipientId
      or (recipient and recipient.RecipientId) or new_id()
    local marks = places(a.SignComponents)
    if #marks == 0 then marks = places(spec.components, recipient_id) end
    if #marks == 0 and recipient then marks = places(recipient.sign_components) end
    local ap = { sign_id = new_id(), recipient_id = recipient_id, type = a.ApproverType or "PERSON", name = a.Name,
      mobile = a.Mobile, org_name = a.OrganizationName, org_open_id = a.OrganizationOpenId, open_id = a.OpenId,
      id_card_number = a.IdCardNumber, role_name = a.ApproverRoleName or (recipient and recipient.RoleName),
      order = j, status = "PENDING", signer = key, deadline = M.deadline_given(a.Deadline), places = marks }
    flow.approvers[j] = ap
    items[j] = { SignId = ap.sign_id, RecipientId = ap.recipient_id, ApproverRoleName = ap.role_name }
    if not AUTO_SIGN[ap.type] and not group.signers[key] then
      local token = new_id() .. new_id()
      group.signers[key] = { key = key, token = token, name = a.Name, type = ap.type }
      state().tokens[token] = { group = group.id, signer = key }
    end
  end
  -- INIT comes first (合同创建, FlowCallbackStatus 1), even when auto-signers sign at once and move it on
  ctx.changes[#ctx.changes + 1] = { flow = json.decode(json.encode(flow)) }
  if run_auto_signers(flow, ctx.now) then
    update_flow_status(flow)
    ctx.changes[#ctx.changes + 1] = flow.id
  end
  group.flow_ids[#group.flow_ids + 1] = flow.id
  state().flows[flow.id] = flow
  -- a template's document is composed with the filled fields when the contract is made: 合同文档合成完成
  if spec.template_id then emit_about("DocumentFill", flow, { FlowId = flow.id }) end
  state().counters.flows_created = state().counters.flows_created + 1
  return flow, items
end

function M.ChannelCreateFlowGroupByFiles(params, ctx)
  local ok, code, message = check_files(params, ctx)
  if not ok then return nil, code, message end
  local group = M.new_group(params.FlowGroupName, ctx)
  local flow_ids, approvers_out = array(), array()
  for i, info in ipairs(params.FlowFileInfos) do
    local flow, items = M.add_flow(group, { name = info.FlowName, type = info.FlowType,
      description = info.FlowDescription, customer_data = info.CustomerData, file_id = info.FileIds[1],
      unordered = info.Unordered, deadline = info.Deadline, approvers = info.FlowApprovers,
      components = info.Components }, ctx)
    flow_ids[i] = flow.id
    approvers_out[i] = { FlowId = flow.id, Approvers = items }
  end
  return { FlowGroupId = group.id, FlowIds = flow_ids, Approvers = approvers_out }
end

---------------------------------------------------------------------------------------------------------------
-- Finding flows that belong to the caller
---------------------------------------------------------------------------------------------------------------

local function own_group(id, ctx)
  local g = type(id) == "string" and state().groups[id]
  if not g or g.app ~= ctx.app or g.hidden then
    return fail("ResourceNotFound.FlowGroup", "the FlowGroupId " .. tostring(id)
      .. " does not exist for this application")
  end
  return g
end

local function own_flows(ids, ctx, code)
  local out = {}
  for i, id in ipairs(ids) do
    local f = state().flows[id]
    if not f or f.app ~= ctx.app then
      return fail(code or "InvalidParameter.FlowIds", "the FlowId " .. tostring(id) .. " does not exist for this "
        .. "application")
    end
    out[i] = f
  end
  return out
end

-- Flows named by FlowGroupId (which wins) or FlowIds; returns flows, group.
local function flows_from(params, ctx)
  if params.FlowGroupId and params.FlowGroupId ~= "" then
    local g, code, message = own_group(params.FlowGroupId, ctx)
    if not g then return nil, code, message end
    local flows = {}
    for i, id in ipairs(g.flow_ids) do flows[i] = state().flows[id] end
    return flows, nil, nil, g
  end
  local ids = params.FlowIds
  if type(ids) ~= "table" or #ids == 0 then
    return fail("MissingParameter.FlowIdsOrFlowGroupId", "give FlowGroupId or FlowIds")
  end
  return own_flows(ids, ctx)
end

---------------------------------------------------------------------------------------------------------------
-- CreateSignUrls
---------------------------------------------------------------------------------------------------------------

local function matches_filters(ap, params)
  local gt = params.GenerateType or "ALL"
  if gt == "PERSON" and ap.type ~= "PERSON" then return false end
  if gt == "CHANNEL" and (ap.type ~= "ORGANIZATION" or not ap.org_open_id) then return false end
  if gt == "NOT_CHANNEL" and (ap.type ~= "ORGANIZATION" or ap.org_open_id) then return false end
  if gt == "RECIPIENT" then
    local wanted = false
    for _, r in ipairs(params.RecipientIds or {}) do wanted = wanted or r == ap.recipient_id end
    if not wanted then return false end
  end
  for field, key in pairs({ Name = "name", Mobile = "mobile", OpenId = "open_id", OrganizationName = "org_name",
    OrganizationOpenId = "org_open_id", IdCardNumber = "id_card_number" }) do
    local want = params[field]
    if want and want ~= "" and ap[key] ~= want then return false end
  end
  return true
end

function M.CreateSignUrls(params, ctx)
  if (params.GenerateType or "ALL") == "ALL" and type(params.FlowIds) == "table" and #params.FlowIds > 1 then
    -- GenerateType ALL: "此中类型不支持多个合同ID（FlowIds）"
    return fail("InvalidParameter.GenerateType", "GenerateType ALL (the default) takes one FlowId, not "
      .. #params.FlowIds .. "; give FlowGroupId, or one flow, or another GenerateType")
  end
  local flows, code, message, group = flows_from(params, ctx)
  if not flows then return nil, code, message end
  local infos, errs = array(), array()
  local seen = {}
  for _, flow in ipairs(flows) do
    local g = state().groups[flow.group]
    if FINAL[flow.status] then
      errs[#errs + 1] = "the flow " .. flow.id .. " is already " .. flow.status
    else
      for _, ap in ipairs(flow.approvers) do
        local signer = g.signers[ap.signer]
        local once = group and ap.signer or (flow.id .. "/" .. ap.sign_id)
        if signer and not seen[once] and ap.status == "PENDING" and matches_filters(ap, params) then
          seen[once] = true
          infos[#infos + 1] = {
            SignUrl = ctx.base_url .. "/sandbox/sign?token=" .. signer.token,
            Deadline = math.min(ctx.now + ctx.config.sign_url_ttl, flow.deadline),
            SignOrder = ap.order - 1, SignId = ap.sign_id, Name = ap.name, Mobile = ap.mobile,
            OrganizationName = ap.org_name, ApproverType = ap.type, IdCardNumber = ap.id_card_number,
            FlowId = not group and flow.id or nil, OpenId = ap.open_id, FlowGroupId = not g.hidden and g.id or nil,
          }
        end
      end
    end
  end
  if #infos == 0 then
    return fail("FailedOperation", "no signing links to make: " .. (#errs > 0 and concat(errs, "; ")
      or "no signer waiting matches the request"))
  end
  return { SignUrlInfos = infos, ErrorMessages = errs }
end

---------------------------------------------------------------------------------------------------------------
-- DescribeFlowDetailInfo
---------------------------------------------------------------------------------------------------------------

function M.flow_detail(flow)
  local aps = array()
  for i, ap in ipairs(flow.approvers) do
    aps[i] = { ProxyOrganizationOpenId = ap.org_open_id, ProxyOperatorOpenId = ap.open_id,
      ProxyOrganizationName = ap.org_name, Mobile = ap.mobile, SignOrder = ap.order - 1, ApproveName = ap.name,
      ApproveStatus = ap.status, ApproveMessage = ap.message, ApproveTime = ap.time or 0,
      ApproveType = APPROVE_TYPE[ap.type] or "ORGANIZATION", ApproverRoleName = ap.role_name, SignId = ap.sign_id,
      RecipientId = ap.recipient_id }
  end
  return { FlowId = flow.id, FlowName = flow.name, FlowType = flow.type, FlowStatus = flow.status,
    FlowMessage = flow.message, CreateOn = flow.created, DeadLine = flow.deadline, CustomData = flow.customer_data,
    FlowApproverInfos = aps, CcInfos = array(), NeedCreateReview = false }
end

function M.DescribeFlowDetailInfo(params, ctx)
  local flows, code, message, group = flows_from(params, ctx)
  if not flows then return nil, code, message end
  local out = array()
  for i, flow in ipairs(flows) do out[i] = M.flow_detail(flow) end
  local first = flows[1]
  local g = group or (first and state().groups[first.group])
  if g and g.hidden then g = nil end
  return { ApplicationId = ctx.app, ProxyOrganizationOpenId = first and first.org_open_id, FlowInfo = out,
    FlowGroupId = group and group.id or (g and g.id), FlowGroupName = g and g.name }
end

---------------------------------------------------------------------------------------------------------------
-- Cancelling
---------------------------------------------------------------------------------------------------------------

local function cancel(flow, message, changes, now)
  if FINAL[flow.status] then return nil, "the flow is already " .. flow.status end
  flow.status = "CANCEL"
  flow.message = message
  flow.cancelled = now
  finish_approvers(flow, "CANCEL")
  changes[#changes + 1] = flow.id
  state().counters.cancelled = state().counters.cancelled + 1
  settle_group(flow.group)
  return true
end

function M.ChannelCancelFlow(params, ctx)
  local flows, code, message = own_flows({ params.FlowId }, ctx, "ResourceNotFound.Flow")
  if not flows then return nil, code, message end
  local ok, why = cancel(flows[1], params.CancelMessage, ctx.changes, ctx.now)
  if not ok then return fail("OperationDenied.FlowHasTerminated", "cannot cancel the flow " .. params.FlowId .. ": "
    .. why) end
  return {}
end

-- A batch cancel task's result, as DescribeCancelFlowsTask answers it.
local function task_result(task)
  local success, failures = array(), array()
  for i, id in ipairs(task.success) do success[i] = id end
  for i, f in ipairs(task.failures) do failures[i] = f end
  return { TaskId = task.id, TaskStatus = task.status, SuccessFlowIds = success, FailureFlows = failures }
end

function M.ChannelBatchCancelFlows(params, ctx)
  local ids = params.FlowIds
  local task = { id = new_id(), app = ctx.app, status = "END", success = {}, failures = {}, created = ctx.now }
  local fail_messages = array()
  for i, id in ipairs(ids) do
    local f = state().flows[id]
    local why
    if not f or f.app ~= ctx.app then
      why = "the flow does not exist for this application"
    else
      local ok, reason = cancel(f, params.CancelMessage, ctx.changes, ctx.now)
      why = not ok and reason or nil
    end
    if why then
      task.failures[#task.failures + 1] = { FlowId = id, Reason = why, FlowName = f and f.name }
      fail_messages[i] = why
    else
      task.success[#task.success + 1] = id
      fail_messages[i] = ""
    end
  end
  state().tasks[task.id] = task
  -- the task's result (批量撤销结果回调), after each cancelled flow's CANCEL, as DescribeCancelFlowsTask names it
  local _, org_open_id, operator_open_id = agent_of(ctx.params)
  emit_about("CancelFlows", { app = ctx.app, org_open_id = org_open_id, operator_open_id = operator_open_id },
    task_result(task))
  return { TaskId = task.id, FailMessages = fail_messages }
end

function M.DescribeCancelFlowsTask(params, ctx)
  local task = state().tasks[params.TaskId]
  if not task or task.app ~= ctx.app then
    return fail("ResourceNotFound", "the cancel task " .. tostring(params.TaskId) .. " does not exist")
  end
  return task_result(task)
end

---------------------------------------------------------------------------------------------------------------
-- The sandbox-only signer: what a person does on the signing page
---------------------------------------------------------------------------------------------------------------

-- The group and the signer behind a sign token, or nil, message. A batch link (ChannelCreateBatchSignUrl) has
-- no group: it answers a stand-in { name, flow_ids } over the flows it names, and expires.
function M.lookup_token(token, now)
  local t = type(token) == "string" and state().tokens[token]
  if not t then return nil, "this signing link is not valid" end
  if t.expires and now and t.expires <= now then return nil, "this signing link has expired" end
  if t.flows then
    return { name = t.title, flow_ids = t.flows, batch = true }, { key = t.signer, name = t.name }
  end
  local g = state().groups[t.group]
  if t.preview then return g, { key = "", name = "发起方预览 (promoter preview)", preview = true } end
  return g, g.signers[t.signer]
end

-- Is it this approver's turn (ordered flows: everyone before them has signed)?
local function turn_of(flow, ap)
  if flow.unordered then return true end
  for _, other in ipairs(flow.approvers) do
    if other == ap then return true end
    if other.status ~= "ACCEPT" then return false, other end
  end
  return true
end

-- decision: "sign" or "reject". Returns a summary { FlowGroupId, Flows = { {FlowId, FlowStatus} } } or nil, message.
function M.act(token, decision, message, ctx)
  local g, signer = M.lookup_token(token, ctx.now)
  if not g then return nil, signer, "invalid" end
  local mine = {}
  for _, fid in ipairs(g.flow_ids) do
    local flow = state().flows[fid]
    if not FINAL[flow.status] then
      for _, ap in ipairs(flow.approvers) do
        if ap.signer == signer.key and ap.status == "PENDING" then mine[#mine + 1] = { flow = flow, ap = ap } end
      end
    end
  end
  if #mine == 0 then return nil, "nothing is waiting for this signer in the group", "nothing" end
  if decision == "sign" then
    for _, m in ipairs(mine) do
      local ok, waiting = turn_of(m.flow, m.ap)
      if not ok then
        return nil, "it is not this signer's turn yet in '" .. tostring(m.flow.name) .. "': waiting for "
          .. tostring(waiting.name or waiting.org_name or "an earlier signer"), "turn"
      end
    end
  end
  for _, m in ipairs(mine) do
    local flow, ap = m.flow, m.ap
    ap.time, ap.message = ctx.now, message
    if decision == "sign" then
      ap.status = "ACCEPT"
      run_auto_signers(flow, ctx.now)
      update_flow_status(flow)
    else
      ap.status = "REJECT"
      flow.status = "REJECT"
      flow.message = message or "rejected by the signer"
      finish_approvers(flow, "STOP")
    end
    ctx.changes[#ctx.changes + 1] = flow.id
  end
  for _, m in ipairs(mine) do settle_group(m.flow.group) end
  local counters = state().counters
  if decision == "sign" then counters.signed = counters.signed + 1 else counters.rejected = counters.rejected + 1 end
  return M.summary(g, signer)
end

function M.summary(g, signer)
  local flows = array()
  for i, fid in ipairs(g.flow_ids) do
    local flow = state().flows[fid]
    local mine, turn, waiting_for
    for _, ap in ipairs(flow.approvers) do
      if ap.signer == signer.key then
        mine = ap.status
        if ap.status == "PENDING" and not FINAL[flow.status] then
          local ok, before = turn_of(flow, ap)
          turn = ok
          if not ok then waiting_for = before.name or before.org_name or "" end
        end
      end
    end
    -- MyTurn: this signer waits here and may sign now (ordered flows: everyone before has signed); WaitingFor:
    -- who must sign first when it is not yet their turn
    flows[i] = { FlowId = fid, FlowName = flow.name, FlowStatus = flow.status, SignerStatus = mine,
      FileId = flow.file_id, MyTurn = turn, WaitingFor = waiting_for }
  end
  return { FlowGroupId = not g.hidden and g.id or nil, FlowGroupName = g.name, Signer = signer.name, Flows = flows,
    Preview = signer.preview or nil }
end

-- For the other action modules (flows.lua, orgs.lua, templates.lua, documents.lua).
M.fail, M.own_flows, M.own_group, M.flows_from, M.turn_of, M.signer_key = fail, own_flows, own_group, flows_from,
  turn_of, signer_key
M.finish_approvers, M.update_flow_status, M.run_auto_signers = finish_approvers, update_flow_status, run_auto_signers

return M
