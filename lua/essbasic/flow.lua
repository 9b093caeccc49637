-- essbasic.flow: builders for ChannelCreateFlowGroupByFiles requests.
--
-- Lua-style options in (snake_case), the API's own tables out (PascalCase names, the API's nesting, no
-- metatables): a builder's result is exactly what a caller could have written by hand, so it can be printed,
-- edited, validated and encoded like one. Builders check their options at once and raise naming the option,
-- because a mistake here (a misspelt option, a 12-digit mobile in the source) is a programming error at the
-- call site, not a runtime condition. The whole request is still validated again before sending.
-- Reference: docs/builders.md.

local type, pairs, ipairs, next, error, pcall, tostring = type, pairs, ipairs, next, error, pcall, tostring
local setmetatable, getmetatable, select = setmetatable, getmetatable, select
local format, sub, gmatch = string.format, string.sub, string.gmatch
local concat = table.concat
local floor = math.floor
local tointeger = math.tointeger -- Lua 5.4 only: turns 3.0 into 3 so integer fields stay integers

-- Every value goes through validate.member, the validator's own check for one member (schema type and the
-- rules.lua entry), so the builders and the validator agree by construction; flow.lua adds only what is
-- particular to building (option names, which builder takes what, placement rules).
local structs = require("essbasic.schema").structs
local rules = require("essbasic.rules")
local validate = require("essbasic.validate")
local personal = require("essbasic.personal")
local enums, limits, formats, format_check = rules.enums, rules.limits, rules.formats, rules.format_check
local member_check, suggest = validate.member, validate.suggest

local M = {}

---------------------------------------------------------------------------------------------------------------
-- Failing: inner code raises a private Failure; the public wrapper re-raises it as a string at the caller's line.

local Failure = {}

local function fail(fmt, ...)
  error(setmetatable({ message = format(fmt, ...) }, Failure), 0)
end

local function public(name, build)
  return function(...)
    local ok, result = pcall(build, ...)
    if ok then return result end
    if getmetatable(result) == Failure then error(name .. ": " .. result.message, 2) end
    error(result, 0) -- a bug, not a caller mistake: let it through unchanged
  end
end

-- Runs fn(...) for a nested argument: a failure's message gets "option: " in front. (Not named `arg`: Lua 5.1
-- gives a vararg function a local `arg` of its own.)
local function within(option, fn, ...)
  local ok, result = pcall(fn, ...)
  if ok then return result end
  if getmetatable(result) == Failure then result.message = option .. ": " .. result.message end
  error(result, 0)
end

-- How a wrong value appears in a message.
-- A value quoted in a builder's message: a personal one masked (the member says so), any other scrubbed, since a
-- mobile or an ID number can land in the wrong option.
local function shown(v, member)
  if type(v) == "string" then
    if member and personal.is_personal(member) then return "'" .. personal.mask(v) .. "'" end
    if #v > 64 then v = sub(v, 1, 61) .. "..." end
    return "'" .. personal.scrub(v) .. "'"
  elseif type(v) == "number" or type(v) == "boolean" then
    return personal.scrub(tostring(v))
  end
  return type(v)
end

local sorted_keys = require("essbasic.tables").sorted_keys

local function is_list(v)
  if type(v) ~= "table" then return false end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then return false end
  end
  return true
end

---------------------------------------------------------------------------------------------------------------
-- Checks: check(value, option_name) returns the API value or fails.

local function boolean(v, arg)
  if type(v) ~= "boolean" then fail("%s must be true or false, got %s", arg, shown(v)) end
  return v
end

local function non_negative(v, arg)
  if v < 0 then fail("%s must not be negative, got %s", arg, shown(v)) end
  return v
end

local function positive(v, arg)
  if v <= 0 then fail("%s must be greater than 0, got %s", arg, shown(v)) end
  return v
end

-- A list of tables, each passed through check; the result is a new table. (Empty lists and counts are the
-- member check's business.)
local function list(check)
  return function(v, arg)
    if not is_list(v) then fail("%s must be a list, got %s", arg, shown(v)) end
    local out = {}
    for i = 1, #v do out[i] = check(v[i], format("%s[%d]", arg, i)) end
    return out
  end
end

-- A validator problem for member, restated for the option arg that filled it.
local function restate(problem, member, arg, value, rule, lua_type)
  local at_member = problem.path == member
  local where = arg .. sub(problem.path, #member + 1) -- ApproverVerifyTypes[2] -> verify_types[2]
  local expected, found = problem.expected, problem.found
  -- a format's `explained` (rules.lua) says what it accepts in words a caller can act on
  local explained = at_member and rule and rule.format and formats[rule.format].explained
  if explained and type(value) == lua_type and not format_check[rule.format](value) then
    expected, found = explained, shown(value, member)
  end
  local near = at_member and rule and rule.enum and type(value) == "string" and suggest(value, enums[rule.enum])
  local hint = near and format("did you mean '%s'?", near) or problem.hint
  fail("%s must be %s, got %s%s", where, expected, found, hint and " (" .. hint .. ")" or "")
end

-- The check for one option filling struct.member: the builder's own check first for struct-typed members (it
-- shapes the value: one component becomes a list of one), then the validator's, then the builder's own check
-- for scalars (it can rely on the type by then).
local function member_checker(struct, member, extra)
  local field = structs[struct].fields[member]
  local rule = limits[struct .. "." .. member]
  local scalar = structs[field.type] == nil
  local integral = field.type == "int64" or field.type == "uint64"
  return function(v, arg)
    if v == "" then fail("%s must not be empty (leave it out instead)", arg) end
    if field.list and not (rule and rule.min_items) and type(v) == "table" and next(v) == nil then
      fail("%s must not be empty (leave it out instead)", arg)
    end
    if extra and not scalar then v = extra(v, arg) end
    local ok, problem = member_check(struct, member, v)
    if not ok then restate(problem, member, arg, v, rule, field.type == "string" and "string" or "number") end
    if field.list and scalar then -- a copy, so changing the caller's list later changes nothing here
      local copy = {}
      for i = 1, #v do copy[i] = integral and tointeger and tointeger(v[i]) or v[i] end
      v = copy
    elseif integral and tointeger then
      v = tointeger(v)
    end
    if extra and scalar then v = extra(v, arg) end
    return v
  end
end

---------------------------------------------------------------------------------------------------------------
-- Options: options(Struct, { option_name = "Api.Path" or { "Api.Path", check } }) compiles to
-- { option_name = { path = {segments}, api = last segment, check = fn } }. A path names a schema member of
-- Struct (dots go into nested structs); a path that is not a usable member is a bug here and fails at load.
-- A path of false: the builder uses the value itself (check is then the whole check).

local function options(struct, spec)
  local compiled = {}
  for name, entry in pairs(spec) do
    if type(entry) == "string" then entry = { entry } end
    if entry[1] then
      local segments, s, member = {}, struct, nil
      for seg in gmatch(entry[1], "[^.]+") do
        if member then s = structs[s].fields[member].type end
        local field = structs[s] and structs[s].fields[seg]
        if field == nil or field.disabled then error("essbasic.flow: " .. s .. "." .. seg .. " is not usable") end
        segments[#segments + 1], member = seg, seg
      end
      compiled[name] = { path = segments, api = member, check = member_checker(s, member, entry[2]) }
    else
      compiled[name] = { check = entry[2] }
    end
  end
  return compiled
end

local function unknown_option(key, spec)
  if type(key) ~= "string" then
    fail("options are named (name = value), got a value at position %s", shown(key))
  end
  local names = sorted_keys(spec)
  local best
  for _, name in ipairs(names) do
    if spec[name].api == key then best = name end -- the API's own name (Mobile) points at its option
  end
  best = best or suggest(key, names)
  if best then fail("unknown option '%s' (did you mean '%s'?)", key, best) end
  fail("unknown option '%s' (options: %s)", key, concat(names, ", "))
end

local function put(out, path, value)
  for i = 1, #path - 1 do
    out[path[i]] = out[path[i]] or {}
    out = out[path[i]]
  end
  out[path[#path]] = value
end

-- Checks opts against a compiled spec, fills out (a table with the builder's fixed fields) and returns it.
local function convert(opts, spec, required, out)
  if type(opts) ~= "table" then fail("expects a table of options, got %s", shown(opts)) end
  for k in pairs(opts) do
    if spec[k] == nil then unknown_option(k, spec) end
  end
  for _, k in ipairs(required) do
    if opts[k] == nil then fail("%s is required", k) end
  end
  for _, k in ipairs(sorted_keys(opts)) do
    local value = spec[k].check(opts[k], k)
    if spec[k].path then put(out, spec[k].path, value) end
  end
  return out
end

local function merged(...)
  local out = {}
  for i = 1, select("#", ...) do
    for k, v in pairs((select(i, ...))) do out[k] = v end
  end
  return out
end

---------------------------------------------------------------------------------------------------------------
-- Agent

local AGENT = options("Agent", {
  app_id = "AppId",
  org_open_id = "ProxyOrganizationOpenId",
  operator_open_id = "ProxyOperator.OpenId",
})
local AGENT_REQUIRED = { "app_id", "org_open_id", "operator_open_id" }

local function build_agent(opts)
  return convert(opts, AGENT, AGENT_REQUIRED, {})
end
M.agent = public("flow.agent", build_agent)

---------------------------------------------------------------------------------------------------------------
-- Components (fields placed on the PDF)

local function is_signing_type(component_type)
  return sub(component_type, 1, 5) == "SIGN_"
end

-- Component.ComponentType: form fields cannot be seal or signature fields, and individuals may not use seal
-- fields. Paging (cross-page) fields need PosY, width and height when placed by position.
local SEAL_TYPES = { SIGN_SEAL = true, SIGN_PAGING_SEAL = true, SIGN_LEGAL_PERSON_SEAL = true }
local SIGNATURE_TYPES = { SIGN_SIGNATURE = true, SIGN_PAGING_SIGNATURE = true }
local PAGING_TYPES = { SIGN_PAGING_SEAL = true, SIGN_PAGING_SIGNATURE = true }

local COMPONENT = {
  type = "ComponentType",
  value = "ComponentValue",
  required = "ComponentRequired",
  extra = "ComponentExtra",
  placeholder = "Placeholder",
  lock_value = "LockComponentValue",
  forbid_move = "ForbidMoveAndDelete",
}

local function page_number(v, arg)
  if v == 0 then fail("%s counts from 1 (or from -1 for the last page), got 0", arg) end
  return v
end

local AT_KEYWORD = options("Component", merged(COMPONENT, {
  keyword = "ComponentId",
  exact = { false, boolean },
  width = { "ComponentWidth", positive },
  height = { "ComponentHeight", positive },
  offset_x = "OffsetX",
  offset_y = "OffsetY",
  indexes = { "KeywordIndexes", function(v, arg)
    for i, n in ipairs(v) do non_negative(n, format("%s[%d]", arg, i)) end
    return v
  end },
  page = { "KeywordPage", page_number },
  order = "KeywordOrder",
  relative = "RelativeLocation",
}))
local AT_KEYWORD_REQUIRED = { "type", "keyword" }

local function build_at_keyword(opts)
  local c = convert(opts, AT_KEYWORD, AT_KEYWORD_REQUIRED, { GenerateMode = "KEYWORD" })
  -- ^keyword^ asks for a whole-word match (Component.ComponentId).
  if opts.exact then c.ComponentId = "^" .. c.ComponentId .. "^" end
  return c
end
M.at_keyword = public("flow.at_keyword", build_at_keyword)

local AT_POSITION = options("Component", merged(COMPONENT, {
  page = { "ComponentPage", page_number },
  x = { "ComponentPosX", non_negative },
  y = { "ComponentPosY", non_negative },
  width = { "ComponentWidth", positive },
  height = { "ComponentHeight", positive },
  id = "ComponentId",
  name = "ComponentName",
}))
local AT_POSITION_REQUIRED = { "type", "page", "y" }

M.at_position = public("flow.at_position", function(opts)
  local c = convert(opts, AT_POSITION, AT_POSITION_REQUIRED, { GenerateMode = "NORMAL" })
  if PAGING_TYPES[c.ComponentType] then
    if c.ComponentWidth == nil or c.ComponentHeight == nil then
      fail("a %s field needs width and height", c.ComponentType)
    end
  elseif c.ComponentPosX == nil then
    fail("x is required")
  end
  return c
end)

local ON_FIELD = options("Component", merged(COMPONENT, { field = "ComponentName" }))
local ON_FIELD_REQUIRED = { "type", "field" }

M.on_field = public("flow.on_field", function(opts)
  local c = convert(opts, ON_FIELD, ON_FIELD_REQUIRED, { GenerateMode = "FIELD" })
  local t = c.ComponentType
  if SEAL_TYPES[t] or SIGNATURE_TYPES[t] then
    fail("type %s cannot be placed on a PDF form field; place it with flow.at_keyword or flow.at_position", t)
  end
  return c
end)

-- Shorthands: flow.seal_at_keyword("甲方（盖章）" [, seal_id or options]), flow.signature_at_keyword(keyword
-- [, options]), flow.date_at_keyword(keyword [, options]); options are those of flow.at_keyword.
local function keyword_shorthand(name, component_type)
  return public(name, function(keyword, opts)
    if type(opts) == "string" and component_type == "SIGN_SEAL" then opts = { seal_id = opts } end
    if opts ~= nil and type(opts) ~= "table" then fail("expects (keyword [, options]), got %s", shown(opts)) end
    local o = { type = component_type, keyword = keyword }
    for k, v in pairs(opts or {}) do
      if k == "type" or k == "keyword" then fail("%s is set by %s itself", k, name) end
      if k == "seal_id" and component_type == "SIGN_SEAL" then k = "value" end
      o[k] = v
    end
    return build_at_keyword(o)
  end)
end
M.seal_at_keyword = keyword_shorthand("flow.seal_at_keyword", "SIGN_SEAL")
M.signature_at_keyword = keyword_shorthand("flow.signature_at_keyword", "SIGN_SIGNATURE")
M.date_at_keyword = keyword_shorthand("flow.date_at_keyword", "SIGN_DATE")

---------------------------------------------------------------------------------------------------------------
-- Signers (FlowApproverInfo)

local function component(v, arg)
  if type(v) ~= "table" or type(v.ComponentType) ~= "string" then
    fail("%s must be a component (flow.at_keyword, flow.at_position, flow.on_field), got %s", arg, shown(v))
  end
  return v
end

-- One component or a list of them; signing = true for signing fields (SIGN_*), false for fill-in fields.
local function components(signing)
  local check_list = list(component)
  return function(v, arg)
    if type(v) == "table" and v.ComponentType ~= nil then v = { v } end
    local out = check_list(v, arg)
    for i, c in ipairs(out) do
      if is_signing_type(c.ComponentType) ~= signing then
        fail("%s[%d] is a %s field, which belongs in %s", arg, i, c.ComponentType,
          signing and "fill (fill-in fields)" or "a signer's sign list (signing fields)")
      end
    end
    return out
  end
end

-- FlowApproverInfo.ApproverSignTypes: fingerprint (5) and face ID (6) need at least one other method.
local function sign_types(v, arg)
  for _, t in ipairs(v) do
    if t ~= 5 and t ~= 6 then return v end
  end
  fail("%s needs a method besides 5 and 6 (device fingerprint and device face ID)", arg)
end

-- Options of every signer that a person reads and signs for (not company auto-sign).
local SIGNER = {
  sign = { "SignComponents", components(true) },
  fill = { "Components", components(false) },
  role = "ApproverRoleName",
  pre_read_time = "PreReadTime",
  no_refuse = "ApproverOption.NoRefuse",
  no_transfer = "ApproverOption.NoTransfer",
  hide_one_key_sign = "ApproverOption.HideOneKeySign",
  read_limit = "ApproverOption.FlowReadLimit",
  forbid_add_sign_date = "ApproverOption.ForbidAddSignDate",
  need_review = "ApproverNeedSignReview",
  verify_types = "ApproverVerifyTypes",
  sign_types = { "ApproverSignTypes", sign_types },
  signature_styles = "ComponentLimitType",
  sign_type_selector = "SignTypeSelector",
  sign_endpoints = "SignEndpoints",
  jump_url = "JumpUrl",
  email = "ApproverEmail",
}

local IDENTITY = {
  name = "Name",
  mobile = "Mobile",
  id_card_type = "IdCardType",
  id_card_number = "IdCardNumber",
}

-- Signers outside the platform: only for them does the API honour notification and mobile reconciliation.
local OUTSIDE = {
  notify = "NotifyType",
  mobile_mode = "ApproverOption.ApproverMobileMode",
}

local COMPANY = {
  org_name = "OrganizationName",
  org_open_id = "OrganizationOpenId",
  open_id = "OpenId",
}

local function check_id_card(s)
  if s.IdCardNumber == nil then return end
  local id_type = s.IdCardType or "ID_CARD"
  -- The number itself is not echoed: it is personal data and may end up in logs.
  if not rules.id_card(id_type, s.IdCardNumber) then
    fail("id_card_number is not a valid %s number (%d characters given)", id_type, #s.IdCardNumber)
  end
end

local function signer_builder(name, spec, required, fixed, after)
  spec = options("FlowApproverInfo", spec)
  return public(name, function(opts)
    local out = {}
    for k, v in pairs(fixed) do out[k] = type(v) == "table" and merged(v) or v end
    local s = convert(opts, spec, required, out)
    check_id_card(s)
    if after then after(s) end
    return s
  end)
end

M.person = signer_builder("flow.person", merged(SIGNER, IDENTITY, OUTSIDE), { "name", "mobile" },
  { ApproverType = "PERSON" },
  function(s)
    for i, c in ipairs(s.SignComponents or {}) do
      if SEAL_TYPES[c.ComponentType] then
        fail("sign[%d] is a %s field, which only a company signer can have", i, c.ComponentType)
      end
    end
  end)

M.employee = signer_builder("flow.employee", merged(SIGNER, IDENTITY, COMPANY),
  { "name", "mobile", "open_id", "org_name", "org_open_id" }, { ApproverType = "ORGANIZATION" })

M.saas_employee = signer_builder("flow.saas_employee",
  merged(SIGNER, IDENTITY, OUTSIDE, { org_name = COMPANY.org_name }),
  { "org_name", "name", "mobile" }, { ApproverType = "ORGANIZATION", NotChannelOrganization = true })

M.to_be_claimed = signer_builder("flow.to_be_claimed",
  merged(SIGNER, { org_name = COMPANY.org_name, org_open_id = COMPANY.org_open_id }),
  { "org_name", "org_open_id" }, { ApproverType = "ORGANIZATION", ApproverOption = { FillType = 1 } })

-- Company auto-sign: nobody reads or fills anything (auto-signers may not own fill-in fields).
M.auto_sign = signer_builder("flow.auto_sign",
  merged(COMPANY, { sign = SIGNER.sign, role = SIGNER.role }),
  { "org_name", "org_open_id", "sign" }, { ApproverType = "ENTERPRISESERVER" })

---------------------------------------------------------------------------------------------------------------
-- Contracts (FlowFileInfo)

local function signer(v, arg)
  if type(v) ~= "table" or type(v.ApproverType) ~= "string" then
    fail("%s must be a signer (flow.person, flow.employee, flow.saas_employee, flow.auto_sign, " ..
      "flow.to_be_claimed), got %s", arg, shown(v))
  end
  return v
end

local file_ids = member_checker("FlowFileInfo", "FileIds")
local function checked_file_id(v, arg)
  if type(v) ~= "string" then fail("%s must be a string, got %s", arg, shown(v)) end
  return file_ids({ v }, arg)[1]
end

local CONTRACT = options("FlowFileInfo", {
  file_id = { false, checked_file_id }, -- FileIds takes exactly one file per contract
  name = "FlowName",
  signers = { "FlowApprovers", list(signer) },
  deadline = "Deadline",
  description = "FlowDescription",
  type = "FlowType",
  unordered = "Unordered",
  customer_data = "CustomerData",
  fill = { "Components", components(false) },
  display_type = "FlowDisplayType",
  need_sign_review = "NeedSignReview",
  custom_show_map = "CustomShowMap",
})
local CONTRACT_REQUIRED = { "file_id", "name", "signers" }

M.contract = public("flow.contract", function(opts)
  local c = convert(opts, CONTRACT, CONTRACT_REQUIRED, {})
  c.FileIds = { opts.file_id }
  return c
end)

---------------------------------------------------------------------------------------------------------------
-- The group (ChannelCreateFlowGroupByFilesRequest)

local GROUP_OPTIONS = options("FlowGroupOptions", {
  self_sign_each = "SelfOrganizationApproverSignEach",
  others_sign_each = "OtherApproverSignEach",
  no_edit_name = "NoEditFlowName",
  no_edit_type = "NoEditFlowType",
  no_edit_deadline = "NoEditDeadline",
  hide_sign_date = "SignComponentConfig.HideDate",
  forbid_edit_watermark = "ForbidEditWatermark",
  hide_sign_code_after_start = "HideSignCodeAfterStart",
  sign_after_start = "SignAfterStart",
  preview_after_start = "PreviewAfterStart",
})

local function contract(v, arg)
  if type(v) ~= "table" or v.FileIds == nil then
    fail("%s must be a contract (flow.contract), got %s", arg, shown(v))
  end
  return v
end

-- agent = flow.agent{...} or the same options directly.
local function agent(v, arg)
  if type(v) ~= "table" then fail("%s must be flow.agent{...} or its options, got %s", arg, shown(v)) end
  if v.AppId ~= nil then return v end
  return within(arg, build_agent, v)
end

local GROUP = options("ChannelCreateFlowGroupByFilesRequest", {
  name = "FlowGroupName",
  agent = { "Agent", agent },
  contracts = { "FlowFileInfos", list(contract) },
  verify = "ApproverVerifyType",
  options = { "FlowGroupOptions", function(v, arg) return within(arg, convert, v, GROUP_OPTIONS, {}, {}) end },
})
local GROUP_REQUIRED = { "name", "agent", "contracts" }

M.group = public("flow.group", function(opts)
  return convert(opts, GROUP, GROUP_REQUIRED, {})
end)

return M
