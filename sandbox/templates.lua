-- Templates and contracts made from them: DescribeTemplates, CreateFlowsByTemplates,
-- ChannelCreateFlowGroupByTemplates. Same contract as workflow.lua: no yields, (response) or (nil, code, message).
--
-- The templates come from the configuration (`templates`, see config.lua): each has a name, recipients (roles,
-- with the place where each signs) and the promoter's fill-in fields (FormFields fill them). Every sub-company of
-- the app sees them all, as if each had received them from the platform. Each template's document is a one-page
-- PDF written at start (sandbox/pdf.lua's builder): its name, its fields and a label per signing place, so the
-- signed documents of template contracts carry the marks where the template says.

local json = require("essbasic.json")
local core = require("essbasic.core")
local store = require("sandbox.store")
local wf = require("sandbox.workflow")
local pdf = require("sandbox.pdf")

local type, ipairs, pairs, tostring, format = type, ipairs, pairs, tostring, string.format
local array, fail = json.array, wf.fail

local M = {}

local templates, by_id = {}, {}

local function file_id_of(t)
  return core.sha256_hex("sandbox template " .. t.id):sub(1, 32)
end

-- The template's document: title, fields and signing labels at their places (top-left coordinates, in pt).
local function document(t)
  local h = 841.89
  local function text(font, size, x, y_top, s, hex)
    return format("BT /%s %d Tf %.2f %.2f Td %s Tj ET", font, size, x, h - y_top, hex and s or "(" .. s .. ")")
  end
  local ucs2 = pdf.ucs2_hex
  local ops = { text("F2", 18, 72, 90, ucs2(t.name), true),
    text("F1", 9, 72, 110, "essbasic sandbox template " .. t.id) }
  for i, f in ipairs(t.fields or {}) do ops[#ops + 1] = text("F2", 11, 72, 150 + i * 24, ucs2(f .. ":"), true) end
  for _, r in ipairs(t.recipients) do
    local s = r.sign
    if s then ops[#ops + 1] = text("F2", 10, s.x, s.y - 6, ucs2(r.role .. "（签署）"), true) end
  end
  return pdf.build({ { 595.28, h, ops = table.concat(ops, "\n") } })
end

-- Loads the configured templates and writes their documents into the data folder (once per content).
function M.init(config)
  templates, by_id = {}, {}
  for i, t in ipairs(config.templates or {}) do
    local recips = {}
    for j, r in ipairs(t.recipients or {}) do
      recips[j] = { RecipientId = core.sha256_hex(t.id .. "/" .. j):sub(1, 32), RoleName = r.role,
        RecipientType = r.type or "INDIVIDUAL", approver_type = r.approver_type or "PERSON",
        sign_components = r.sign and { { ComponentType = "SIGN_SIGNATURE", ComponentPage = r.sign.page or 1,
          ComponentPosX = r.sign.x, ComponentPosY = r.sign.y, ComponentWidth = r.sign.w or 160,
          ComponentHeight = r.sign.h or 48 } } or nil, RoutingOrder = j }
    end
    local entry = { id = t.id, name = t.name, description = t.description, fields = t.fields or {},
      recipients = recips, promoter = core.sha256_hex(t.id .. "/promoter"):sub(1, 32), order = i }
    entry.file_id = file_id_of(t)
    if not store.get_file(entry.file_id) then
      local ok, why = store.put_file(entry.file_id, document(t))
      if not ok then error("essbasic sandbox: cannot write the template document: " .. tostring(why)) end
    end
    templates[i] = entry
    by_id[t.id] = entry
  end
end

function M.get(id)
  return by_id[id]
end

-- Is this file id a template's document (served at /sandbox/files/<id> like uploads)?
function M.is_document(file_id)
  for _, t in ipairs(templates) do
    if t.file_id == file_id then return true end
  end
  return false
end

---------------------------------------------------------------------------------------------------------------
-- DescribeTemplates
---------------------------------------------------------------------------------------------------------------

local function components_of(t, all)
  local comps, signs = array(), array()
  for i, f in ipairs(t.fields) do
    comps[i] = { ComponentId = core.sha256_hex(t.id .. "/field/" .. f):sub(1, 32), ComponentType = "TEXT",
      ComponentName = f, ComponentRequired = true, ComponentRecipientId = t.promoter, FileIndex = 0,
      ComponentPage = 1, ComponentPosX = 150, ComponentPosY = 150 + i * 24 - 12, ComponentWidth = 200,
      ComponentHeight = 18 }
  end
  if all then
    for _, r in ipairs(t.recipients) do
      for _, c in ipairs(r.sign_components or {}) do
        local s = {}
        for k, v in pairs(c) do s[k] = v end
        s.ComponentRecipientId = r.RecipientId
        s.ComponentName = r.RoleName .. "签署"
        signs[#signs + 1] = s
      end
    end
  end
  return comps, signs
end

local function template_info(t, params, ctx)
  local info = { TemplateId = t.id, TemplateName = t.name, Description = t.description or "", TemplateType = 3,
    IsPromoter = false, Creator = "sandbox", CreatedOn = 0, ChannelTemplateId = "", ChannelAutoSave = 0,
    TemplateVersion = "1", Available = 1 }
  if params.ContentType ~= 1 then
    local recips = array()
    for i, r in ipairs(t.recipients) do
      recips[i] = { RecipientId = r.RecipientId, RecipientType = r.RecipientType, RoleName = r.RoleName,
        RequireSign = true, RoutingOrder = r.RoutingOrder, IsPromoter = false, Description = "" }
    end
    info.Recipients = recips
    info.Components, info.SignComponents = components_of(t, params.QueryAllComponents)
  end
  if params.WithPreviewUrl then info.PreviewUrl = ctx.base_url .. "/sandbox/files/" .. t.file_id end
  if params.WithPdfUrl then info.PdfUrl = ctx.base_url .. "/sandbox/files/" .. t.file_id end
  return info
end

function M.DescribeTemplates(params, ctx)
  if params.ContentType ~= nil and params.ContentType ~= 0 and params.ContentType ~= 1 then
    return fail("InvalidParameter.ContentType", "ContentType must be 0 or 1")
  end
  local limit, offset = params.Limit or 20, params.Offset or 0
  if limit < 1 or limit > 100 then return fail("InvalidParameter.ParamError", "Limit must be 1 to 100") end
  if offset > 20000 then return fail("InvalidParameter.ParamError", "Offset must be 0 to 20000") end
  local list = {}
  if params.TemplateId and params.TemplateId ~= "" then
    local t = by_id[params.TemplateId]
    if not t then return fail("ResourceNotFound.Template", "no template " .. params.TemplateId) end
    list[1] = t
  elseif type(params.TemplateIds) == "table" and #params.TemplateIds > 0 then
    if #params.TemplateIds > 100 then return fail("InvalidParameter.ParamError", "at most 100 TemplateIds") end
    for i, id in ipairs(params.TemplateIds) do
      local t = by_id[id]
      if not t then return fail("ResourceNotFound.Template", "TemplateIds[" .. i .. "]: no template " .. id) end
      list[#list + 1] = t
    end
  else
    for _, t in ipairs(templates) do list[#list + 1] = t end
  end
  local name = params.TemplateName
  if name and name ~= "" then
    local kept = {}
    for _, t in ipairs(list) do
      if t.name:find(name, 1, true) then kept[#kept + 1] = t end
    end
    list = kept
  end
  local out = array()
  for i = offset + 1, math.min(#list, offset + limit) do out[#out + 1] = template_info(list[i], params, ctx) end
  return { Templates = out, TotalCount = #list, Limit = limit, Offset = offset }
end

---------------------------------------------------------------------------------------------------------------
-- Contracts from templates
---------------------------------------------------------------------------------------------------------------

-- One FlowInfo checked against its template → a spec for workflow.add_flow, or nil, code, message.
local function flow_spec(info, i, ctx)
  local where = "FlowInfos[" .. i .. "]"
  local t = by_id[info.TemplateId or ""]
  if not t then return fail("ResourceNotFound.Template", where .. ".TemplateId: no template "
    .. tostring(info.TemplateId)) end
  if wf.deadline_given(info.Deadline) and info.Deadline <= ctx.now then
    return fail("InvalidParameter.ParamError", where .. ".Deadline is in the past")
  end
  local approvers = info.FlowApprovers or {}
  if #approvers ~= #t.recipients then
    return fail("InvalidParameter.ParamError", format("%s.FlowApprovers: the template '%s' has %d signing roles, "
      .. "the request gives %d signers", where, t.name, #t.recipients, #approvers))
  end
  local ordered = {}
  for j, a in ipairs(approvers) do
    local r = t.recipients[j]
    if a.RecipientId and a.RecipientId ~= "" then
      r = nil
      for _, cand in ipairs(t.recipients) do
        if cand.RecipientId == a.RecipientId then r = cand end
      end
      if not r then
        return fail("InvalidParameter.ParamError", where .. ".FlowApprovers[" .. j .. "].RecipientId is not a "
          .. "role of the template")
      end
    end
    local t_type = a.ApproverType or r.approver_type
    if (t_type == "PERSON" or (t_type == "ORGANIZATION" and not a.OpenId)) and (not a.Name or not a.Mobile) then
      return fail("InvalidParameter.MissingRequiredParameterValue", where .. ".FlowApprovers[" .. j .. "] needs Name "
        .. "and Mobile")
    end
    ordered[r.RoutingOrder] = { approver = a, recipient = r }
  end
  local list, recips = {}, {}
  for j = 1, #t.recipients do
    if not ordered[j] then
      return fail("InvalidParameter.ParamError", where .. ".FlowApprovers: two signers for one role")
    end
    list[j], recips[j] = ordered[j].approver, ordered[j].recipient
  end
  local fills = {}
  local known = {}
  for _, f in ipairs(t.fields) do known[f] = true end
  for j, ff in ipairs(info.FormFields or {}) do
    if not known[ff.ComponentName or ""] then
      return fail("InvalidParameter.DataNotFound", where .. ".FormFields[" .. j .. "]: the template has no field "
        .. tostring(ff.ComponentName))
    end
    fills[#fills + 1] = { id = core.sha256_hex(t.id .. "/field/" .. ff.ComponentName):sub(1, 32),
      name = ff.ComponentName, value = ff.ComponentValue, recipient_id = t.promoter }
  end
  for _, f in ipairs(t.fields) do
    local given = false
    for _, x in ipairs(fills) do given = given or x.name == f end
    if not given then
      fills[#fills + 1] = { id = core.sha256_hex(t.id .. "/field/" .. f):sub(1, 32), name = f,
        recipient_id = t.promoter }
    end
  end
  return { name = info.FlowName, type = info.FlowType, description = info.FlowDescription,
    customer_data = info.CustomerData, file_id = t.file_id, deadline = info.Deadline, approvers = list,
    recipients = recips, template_id = t.id, fills = fills, promoter = t.promoter }
end

local function specs(infos, ctx)
  local out = {}
  for i, info in ipairs(infos) do
    local spec, code, message = flow_spec(info, i, ctx)
    if not spec then return nil, code, message end
    out[i] = spec
  end
  return out
end

function M.CreateFlowsByTemplates(params, ctx)
  local infos = params.FlowInfos
  if #infos == 0 then return fail("InvalidParameter.FlowInfos", "FlowInfos must list at least one contract") end
  if #infos > 20 then return fail("LimitExceeded.CreateFlowNum", "at most 20 FlowInfos at once") end
  local list, code, message = specs(infos, ctx)
  if not list then return nil, code, message end
  local ids, customer, errors, previews, approvers = array(), array(), array(), array(), array()
  for i, spec in ipairs(list) do
    customer[i] = spec.customer_data or ""
    errors[i] = ""
    if params.NeedPreview then
      previews[i] = ctx.base_url .. "/sandbox/files/" .. spec.file_id
    else
      local group = wf.new_group(spec.name, ctx, true)
      local flow, items = wf.add_flow(group, spec, ctx)
      ids[i] = flow.id
      approvers[i] = { FlowId = flow.id, Approvers = items }
    end
  end
  return { FlowIds = ids, CustomerData = customer, ErrorMessages = errors, PreviewUrls = previews,
    TaskInfos = array(), FlowApprovers = approvers }
end

function M.ChannelCreateFlowGroupByTemplates(params, ctx)
  local infos = params.FlowInfos
  if #infos < 2 or #infos > 50 then
    return fail("InvalidParameter.FlowInfos", "a flow group holds 2 to 50 contracts; FlowInfos has " .. #infos)
  end
  local name = params.FlowGroupName
  if name == "" then return fail("MissingParameter", "FlowGroupName is required") end
  local list, code, message = specs(infos, ctx)
  if not list then return nil, code, message end
  local group = wf.new_group(name, ctx)
  local ids, approvers = array(), array()
  for i, spec in ipairs(list) do
    local flow, items = wf.add_flow(group, spec, ctx)
    ids[i] = flow.id
    approvers[i] = { FlowId = flow.id, Approvers = items }
  end
  return { FlowGroupId = group.id, FlowIds = ids, TaskInfos = array(), Approvers = approvers }
end

return M
