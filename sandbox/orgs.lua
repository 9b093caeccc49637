-- Sub-companies of the partner platform, their staff and seals, and usage: CreateConsoleLoginUrl,
-- SyncProxyOrganization, SyncProxyOrganizationOperators, DescribeChannelOrganizations,
-- CreateChannelSubOrganizationActive, ChannelDescribeOrganizationSeals, CreateSealByImage, DescribeUsage.
-- Same contract as workflow.lua: no yields, (response) or (nil, code, message).
--
-- A sub-company (keyed by AppId and OrganizationOpenId) becomes known when an action names it in
-- Agent.ProxyOrganizationOpenId. The sandbox checks no identity: with `auto_verify` (the default) every known
-- sub-company is VERIFIED at once; with auto_verify = false it stays UNVERIFIED until someone presses
-- "verify" on the console page behind CreateConsoleLoginUrl's ConsoleUrl. A verified sub-company gets an
-- OFFICIAL seal, as a real one gets from its verification.

local json = require("essbasic.json")
local core = require("essbasic.core")
local store = require("sandbox.store")
local wf = require("sandbox.workflow")

local type, ipairs, pairs, tostring, tonumber, floor = type, ipairs, pairs, tostring, tonumber, math.floor
local array, fail, new_id = json.array, wf.fail, wf.new_id

local M = {}

local YEAR = 365 * 86400

local function state() return store.state end

local function orgs()
  return state().orgs
end

local function agent_ids(params)
  local a = type(params.Agent) == "table" and params.Agent or {}
  local op = type(a.ProxyOperator) == "table" and a.ProxyOperator or {}
  local org = a.ProxyOrganizationOpenId
  return org ~= "" and org or nil, op.OpenId ~= "" and op.OpenId or nil
end

-- Number of characters of a UTF-8 string.
local function chars(s)
  local _, n = tostring(s):gsub("[^\128-\191]", "")
  return n
end

-- OperateSeal callbacks (partner callback page "印章相关回调"): a seal made through the API or the console is
-- "Create"; one that needs no review is usable at once, "Enable" ("【Enable】事件可以作为印章可用的标准事件"). The
-- sandbox reviews no image, so every new seal sends both. MsgData: ApplicationId, ProxyOrganizationOpenId,
-- ProxyOperatorOpenId, AuthorizedOperatorOpenId as the page names them, then the seal's SealId, SealName,
-- SealType and the Operate.
local function seal_events(org, seal)
  for _, operate in ipairs({ "Create", "Enable" }) do
    wf.emit("OperateSeal", { ApplicationId = org.app, ProxyOrganizationOpenId = org.open_id,
      ProxyOperatorOpenId = seal.creator or "", AuthorizedOperatorOpenId = "", SealId = seal.id,
      SealName = seal.name, SealType = seal.type, Operate = operate })
  end
end

local function add_seal(org, fields, now)
  local seal = { id = new_id(), name = fields.name, type = fields.type or "OFFICIAL", status = "SUCCESS",
    created = now, creator = fields.creator, description = fields.description, source = fields.source }
  org.seals[#org.seals + 1] = seal
  seal_events(org, seal)
  return seal
end

-- A sub-company completes verification (认证) and opens e-signing: the OrgOpenTsignBiz callback (电子签开通通知,
-- which carries the sub-company's ProxyAppId — partner "通用参数" page), then its OFFICIAL seal's.
local function verify(org, now)
  if org.status == "VERIFIED" then return end
  org.status = "VERIFIED"
  org.verified = now
  wf.emit("OrgOpenTsignBiz", { ApplicationId = org.app, ProxyOrganizationOpenId = org.open_id,
    ProxyAppId = org.id })
  add_seal(org, { name = (org.name or org.open_id) .. "公章", type = "OFFICIAL", source = "VERIFICATION" }, now)
end
M.verify = verify

-- The sub-company record for (app, OrganizationOpenId), created when first named.
function M.touch(app, open_id, now, config)
  if not open_id then return nil end
  local key = app .. "/" .. open_id
  local org = orgs()[key]
  if not org then
    org = { key = key, id = new_id(), app = app, open_id = open_id, status = "UNVERIFIED", active = false,
      license_expire = 0, created = now, operators = {}, seals = {} }
    orgs()[key] = org
    if config.auto_verify ~= false then verify(org, now) end
  end
  return org
end

local function find(app, open_id)
  return open_id and orgs()[app .. "/" .. open_id] or nil
end
M.find = find

local function credit_code_ok(code)
  return code == nil or code == "" or (#code == 18 and code:match("^[0-9A-Z]+$") ~= nil)
end

-- Name, credit code, legal person and address as CreateConsoleLoginUrl and SyncProxyOrganization carry them.
local function take_org_fields(org, params)
  if org.status == "VERIFIED" and org.name and params.ProxyOrganizationName ~= org.name then
    return fail("InvalidParameter.OrganizationName", "the sub-company " .. org.open_id .. " is verified as '"
      .. org.name .. "'; its name cannot change to '" .. tostring(params.ProxyOrganizationName) .. "'")
  end
  if not credit_code_ok(params.UniformSocialCreditCode) then
    return fail("InvalidParameter.UniformSocialCreditCode", "UniformSocialCreditCode must be 18 digits or capital "
      .. "letters")
  end
  if chars(params.ProxyOrganizationName) > 200 then
    return fail("InvalidParameter.OrganizationName", "ProxyOrganizationName is longer than 200 characters")
  end
  org.name = params.ProxyOrganizationName
  org.credit_code = params.UniformSocialCreditCode or org.credit_code
  org.legal_name = params.ProxyLegalName or org.legal_name
  org.address = params.ProxyAddress or org.address
  if org.status == "VERIFIED" then
    for _, seal in ipairs(org.seals) do
      if seal.source == "VERIFICATION" then seal.name = org.name .. "公章" end
    end
  end
  return true
end

---------------------------------------------------------------------------------------------------------------
-- Onboarding
---------------------------------------------------------------------------------------------------------------

-- CreateConsoleLoginUrlRequest.Endpoint: the link types the documentation lists (PC is the default).
local CONSOLE_ENDPOINTS = { PC = true, CHANNEL = true, SHORT_URL = true, WEIXIN_QRCODE_URL = true, APP = true,
  H5 = true, SHORT_H5 = true }

function M.CreateConsoleLoginUrl(params, ctx)
  if params.Endpoint ~= nil and params.Endpoint ~= "" and not CONSOLE_ENDPOINTS[params.Endpoint] then
    return fail("InvalidParameter.EndPoint", "Endpoint must be PC, CHANNEL, SHORT_URL, WEIXIN_QRCODE_URL, APP, H5 "
      .. "or SHORT_H5, not " .. tostring(params.Endpoint))
  end
  local org_id, operator_id = agent_ids(params)
  if not org_id then return fail("MissingParameter.OrgOpenId", "Agent.ProxyOrganizationOpenId is required") end
  if not operator_id then
    return fail("MissingParameter.ProxyOperatorOpenId", "Agent.ProxyOperator.OpenId is required")
  end
  local mobile = params.ProxyOperatorMobile
  if mobile and mobile ~= "" and not mobile:match("^1%d%d%d%d%d%d%d%d%d%d$") then
    return fail("InvalidParameter.ParamError", "ProxyOperatorMobile must be an 11-digit mainland mobile number")
  end
  local org = find(ctx.app, org_id)
  local fresh = not org
  org = org or M.touch(ctx.app, org_id, ctx.now, { auto_verify = false })
  local ok, code, message = take_org_fields(org, params)
  if not ok then
    if fresh then orgs()[org.key] = nil end
    return nil, code, message
  end
  if fresh and ctx.config.auto_verify ~= false then verify(org, ctx.now) end
  local op = org.operators[operator_id] or { open_id = operator_id, created = ctx.now }
  op.name = params.ProxyOperatorName or op.name
  op.mobile = mobile or op.mobile
  op.status = "ACTIVE"
  org.operators[operator_id] = op
  org.admin = org.admin or operator_id
  local token = new_id()
  state().console_tokens[token] = { org = org.key, operator = operator_id, expires = ctx.now + 300 }
  return { ConsoleUrl = ctx.base_url .. "/sandbox/console?token=" .. token, IsActivated = org.active,
    ProxyOperatorIsVerified = org.status == "VERIFIED" }
end

function M.SyncProxyOrganization(params, ctx)
  local org_id = agent_ids(params)
  if not org_id then return fail("MissingParameter", "Agent.ProxyOrganizationOpenId is required") end
  local org = M.touch(ctx.app, org_id, ctx.now, ctx.config)
  local ok, code, message = take_org_fields(org, params)
  if not ok then return nil, code, message end
  return {}
end

local OPERATOR_TYPES = { CREATE = true, UPDATE = true, RESIGN = true }

function M.SyncProxyOrganizationOperators(params, ctx)
  local org_id = agent_ids(params)
  if not org_id then return fail("MissingParameter", "Agent.ProxyOrganizationOpenId is required") end
  if not OPERATOR_TYPES[params.OperatorType] then
    return fail("OperationDenied.OperateType", "OperatorType must be CREATE, UPDATE or RESIGN")
  end
  local list = params.ProxyOrganizationOperators
  if #list == 0 then return fail("InvalidParameter.EmptyParams", "ProxyOrganizationOperators is empty") end
  if #list > 200 then
    return fail("LimitExceeded.ProxyOrganizationOperator", "at most 200 ProxyOrganizationOperators at once")
  end
  local org = M.touch(ctx.app, org_id, ctx.now, ctx.config)
  local failed = array()
  for _, o in ipairs(list) do
    local existing = org.operators[o.Id]
    local why
    if params.OperatorType == "CREATE" then
      if o.Mobile and o.Mobile ~= "" and not o.Mobile:match("^1%d%d%d%d%d%d%d%d%d%d$") then
        why = "Mobile must be an 11-digit mainland mobile number"
      elseif existing and existing.status == "ACTIVE" then
        why = "this staff member already exists"
      else
        org.operators[o.Id] = { open_id = o.Id, name = o.Name, mobile = o.Mobile, status = "ACTIVE",
          role = o.DefaultRole, created = ctx.now }
      end
    elseif not existing then
      why = "no staff member with this Id"
    elseif params.OperatorType == "UPDATE" then
      if existing.status ~= "ACTIVE" then
        why = "this staff member has resigned"
      else
        existing.name, existing.mobile = o.Name or existing.name, o.Mobile or existing.mobile
      end
    else
      existing.status = "RESIGNED"
    end
    if why then failed[#failed + 1] = { Id = o.Id, Message = why } end
  end
  if #failed == #list then
    return fail("FailedOperation", "no staff member could be synchronised: " .. failed[1].Message)
  end
  return { Status = #failed == 0 and 1 or 2, FailedList = failed }
end

function M.DescribeChannelOrganizations(params, ctx)
  local limit, offset = params.Limit, params.Offset or 0
  if limit < 1 or limit > 200 then return fail("InvalidParameter.ParamError", "Limit must be 1 to 200") end
  if offset < 0 or offset > 20000 then return fail("InvalidParameter.ParamError", "Offset must be 0 to 20000") end
  local wanted
  if type(params.AuthorizationStatusList) == "table" and #params.AuthorizationStatusList > 0 then
    wanted = {}
    for _, st in ipairs(params.AuthorizationStatusList) do wanted[st] = true end
  end
  local all = {}
  for _, org in pairs(orgs()) do
    if org.app == ctx.app and (not params.OrganizationOpenId or params.OrganizationOpenId == ""
      or org.open_id == params.OrganizationOpenId) and (not wanted or wanted[org.status]) then
      all[#all + 1] = org
    end
  end
  table.sort(all, function(a, b) return a.created < b.created or (a.created == b.created and a.key < b.key) end)
  local out = array()
  for i = offset + 1, math.min(#all, offset + limit) do
    local org = all[i]
    local admin = org.admin and org.operators[org.admin] or {}
    out[#out + 1] = { OrganizationId = org.id, OrganizationOpenId = org.open_id, OrganizationName = org.name or "",
      UnifiedSocialCreditCode = org.credit_code or "", LegalName = org.legal_name or "", LegalOpenId = "",
      AdminName = admin.name or "", AdminOpenId = admin.open_id or "", AdminMobile = admin.mobile or "",
      AuthorizationStatus = org.status,
      AuthorizationType = org.status == "VERIFIED" and "AuthorizationLegalIdentity" or "AuthorizationInit",
      ActiveStatus = (org.active and org.license_expire > ctx.now) and 1 or 0, LicenseExpireTime =
        org.license_expire, HasSubmittedAuthInfo = org.status == "VERIFIED" }
  end
  return { ChannelOrganizationInfos = out, Offset = offset, Limit = limit, Total = #all }
end

function M.CreateChannelSubOrganizationActive(params, ctx)
  local ids = params.SubOrganizationOpenIds
  if type(ids) ~= "table" or #ids == 0 then return fail("MissingParameter", "SubOrganizationOpenIds is required") end
  local list = {}
  for i, id in ipairs(ids) do
    local org = find(ctx.app, id)
    if not org then
      return fail("InvalidParameter.ParamError", "SubOrganizationOpenIds[" .. i .. "]: no sub-company " .. tostring(id))
    end
    if org.status ~= "VERIFIED" then
      return fail("OperationDenied", "the sub-company " .. id .. " has not completed verification")
    end
    local active = org.active and org.license_expire > ctx.now
    if params.Renew and not active then
      return fail("OperationDenied", "the sub-company " .. id .. " is not active: activate it before renewing")
    end
    if not params.Renew and active then
      return fail("OperationDenied", "the sub-company " .. id .. " is already active (until "
        .. os.date("!%Y-%m-%d", floor(org.license_expire)) .. "); renew it instead")
    end
    list[i] = org
  end
  for _, org in ipairs(list) do -- all or nothing: every id was checked first
    org.license_expire = (params.Renew and org.license_expire or ctx.now) + YEAR
    org.active = true
  end
  return {}
end

---------------------------------------------------------------------------------------------------------------
-- Seals
---------------------------------------------------------------------------------------------------------------

local SEAL_TYPES = { OFFICIAL = true, CONTRACT = true, FINANCE = true, PERSONNEL = true, INVOICE = true,
  OTHER = true }

local function seal_org(params, ctx)
  local org_id = agent_ids(params)
  if not org_id then return fail("MissingParameter", "Agent.ProxyOrganizationOpenId is required") end
  return M.touch(ctx.app, org_id, ctx.now, ctx.config)
end

function M.CreateSealByImage(params, ctx)
  local org_id, operator_id = agent_ids(params)
  if not org_id then return fail("MissingParameter.OrganizationId", "Agent.ProxyOrganizationOpenId is required") end
  local org = find(ctx.app, org_id) or M.touch(ctx.app, org_id, ctx.now, ctx.config)
  if org.status ~= "VERIFIED" then
    return fail("ResourceNotFound.Organization", "the sub-company " .. org_id .. " has not completed verification")
  end
  local name = params.SealName
  if name == "" then return fail("MissingParameter.SealName", "SealName is required") end
  if chars(name) > 50 then return fail("InvalidParameter.LimitSealName", "SealName is longer than 50 characters") end
  for _, s in ipairs(org.seals) do
    if s.name == name then return fail("FailedOperation.ExistSameSealName", "a seal named '" .. name .. "' exists") end
  end
  local seal_type = params.SealType or "OFFICIAL"
  if not SEAL_TYPES[seal_type] then
    return fail("InvalidParameter.ParamError", "SealType must be one of OFFICIAL, CONTRACT, FINANCE, PERSONNEL, "
      .. "INVOICE, OTHER")
  end
  if seal_type == "OFFICIAL" then
    for _, s in ipairs(org.seals) do
      if s.type == "OFFICIAL" and s.status == "SUCCESS" then
        return fail("OperationDenied.AlreadyHas", "the sub-company already has an OFFICIAL seal")
      end
    end
  end
  local source = params.GenerateSource
  if source ~= nil and source ~= "" and source ~= "SealGenerateSourceSystem" then
    return fail("InvalidParameter.ParamError", "GenerateSource must be empty or SealGenerateSourceSystem")
  end
  local system = source == "SealGenerateSourceSystem"
  if not system then
    if not params.SealImage or params.SealImage == "" then
      return fail("MissingParameter.SealImage", "SealImage is required unless GenerateSource is "
        .. "SealGenerateSourceSystem")
    end
    local bytes = core.base64_decode(params.SealImage)
    if not bytes then return fail("InvalidParameter.Image", "SealImage is not valid base64") end
    if #bytes > 5 * 1024 * 1024 then return fail("InvalidParameter.Image", "SealImage is larger than 5 MB") end
    if bytes:sub(1, 8) ~= "\137PNG\r\n\26\n" and bytes:sub(1, 3) ~= "\255\216\255" then
      return fail("InvalidParameter.Image", "SealImage must be a PNG or JPG image")
    end
  end
  local seal = add_seal(org, { name = name, type = seal_type, creator = operator_id,
    description = params.SealDescription, source = system and "SYSTEM" or "IMAGE" }, ctx.now)
  return { SealId = seal.id, ImageUrl = "", SealOperatorVerifyPath = "", SealOperatorVerifyQrcodeUrl = "",
    PreviewFileUrl = "", PreviewPdfUrl = "" }
end

function M.ChannelDescribeOrganizationSeals(params, ctx)
  local org, code, message = seal_org(params, ctx)
  if not org then return nil, code, message end
  local _, operator_id = agent_ids(params)
  if not operator_id then return fail("MissingParameter.UserId", "Agent.ProxyOperator.OpenId is required") end
  local limit, offset = params.Limit or 20, params.Offset or 0
  if limit < 1 or limit > 100 then return fail("InvalidParameter", "Limit must be 1 to 100") end
  if offset < 0 or offset > 20000 then return fail("InvalidParameter", "Offset must be 0 to 20000") end
  local types, statuses
  if type(params.SealTypes) == "table" and #params.SealTypes > 0 then
    types = {}
    for _, t in ipairs(params.SealTypes) do types[t] = true end
  end
  statuses = { SUCCESS = true }
  if type(params.SealStatuses) == "table" and #params.SealStatuses > 0 then
    statuses = {}
    for _, st in ipairs(params.SealStatuses) do statuses[st] = true end
  end
  local matched = {}
  for _, s in ipairs(org.seals) do
    if (not params.SealId or params.SealId == "" or s.id == params.SealId) and (not types or types[s.type])
      and (statuses.ALL or statuses[s.status]) then
      matched[#matched + 1] = s
    end
  end
  local out = array()
  for i = offset + 1, math.min(#matched, offset + limit) do
    local s = matched[i]
    local users = array()
    if params.InfoType == 1 and s.creator then users[1] = { OpenId = s.creator } end
    out[#out + 1] = { SealId = s.id, SealName = s.name, CreateOn = s.created, Creator = s.creator or "",
      SealStatus = s.status, SealType = s.type, IsAllTime = true, AuthorizedUsers = users, Url = "",
      SealDescription = s.description or "" }
  end
  return { TotalCount = #matched, Seals = out }
end

---------------------------------------------------------------------------------------------------------------
-- DescribeUsage: contracts started and cancelled per sub-company and day.
---------------------------------------------------------------------------------------------------------------

local function day_number(date)
  local y, m, d = tostring(date):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y then return nil end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m < 1 or m > 12 or d < 1 or d > 31 then return nil end
  -- days since 1970-01-01 (civil calendar, proleptic Gregorian)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

function M.DescribeUsage(params, ctx)
  local first, last = day_number(params.StartDate), day_number(params.EndDate)
  if not first or not last then return fail("InvalidParameter.Date", "StartDate and EndDate are yyyy-mm-dd") end
  if last < first then return fail("InvalidParameter.Date", "EndDate is before StartDate") end
  if last - first + 1 > 90 then return fail("InvalidParameter.Date", "the date range is longer than 90 days") end
  local limit, offset = params.Limit or 1000, params.Offset or 0
  if limit < 1 or limit > 1000 then return fail("InvalidParameter.Limit", "Limit must be 1 to 1000") end
  local rows, order = {}, {}
  local function row(flow, t)
    local day = floor(t / 86400)
    if day < first or day > last then return nil end
    local org = flow.org_open_id or ""
    local key = org .. "|" .. (params.NeedAggregate and "" or tostring(day))
    local r = rows[key]
    if not r then
      local o = find(ctx.app, flow.org_open_id) or {}
      r = { ProxyOrganizationOpenId = org, ProxyOrganizationName = o.name or "",
        Date = params.NeedAggregate and "1970-01-01" or os.date("!%Y-%m-%d", day * 86400), Usage = 0, Cancel = 0,
        FlowChannel = "ThirdPartyApp" }
      rows[key] = r
      order[#order + 1] = key
    end
    return r
  end
  for _, flow in pairs(state().flows) do
    if flow.app == ctx.app then
      local r = row(flow, flow.created)
      if r then r.Usage = r.Usage + 1 end
      if flow.cancelled then
        local c = row(flow, flow.cancelled)
        if c then c.Cancel = c.Cancel + 1 end
      end
    end
  end
  table.sort(order, function(a, b)
    local ra, rb = rows[a], rows[b]
    if ra.Date ~= rb.Date then return ra.Date < rb.Date end
    return ra.ProxyOrganizationOpenId < rb.ProxyOrganizationOpenId
  end)
  local out = array()
  for i = offset + 1, math.min(#order, offset + limit) do out[#out + 1] = rows[order[i]] end
  return { Total = #order, Details = out }
end

return M
