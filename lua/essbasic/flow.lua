-- essbasic.flow: builders for ChannelCreateFlowGroupByFiles requests.
--
-- Lua-style options in (snake_case), the API's own tables out (PascalCase names, the API's nesting, no
-- metatables): a builder's result is exactly what a caller could have written by hand, so it can be printed,
-- edited, validated and encoded like one. Builders check their options at once and raise naming the option,
-- because a mistake here (a misspelt option, a 12-digit mobile in the source) is a programming error at the
-- call site, not a runtime condition. The whole request is still validated again before sending.
-- Reference: docs/builders.md.

local type, pairs, ipairs, error, pcall, tostring = type, pairs, ipairs, error, pcall, tostring
local setmetatable, getmetatable, select = setmetatable, getmetatable, select
local format, gsub, sub, lower, match = string.format, string.gsub, string.sub, string.lower, string.match
local sort, concat = table.sort, table.concat
local floor, huge, min, max = math.floor, math.huge, math.min, math.max
local tointeger = math.tointeger -- Lua 5.4 only: turns 3.0 into 3 so integer fields stay integers

local rules = require("essbasic.rules")
local enums, enum_sets, formats, limits = rules.enums, rules.enum_sets, rules.formats, rules.limits

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

-- How a wrong value appears in a message.
local function shown(v)
  if type(v) == "string" then
    if #v > 64 then v = sub(v, 1, 61) .. "..." end
    return "'" .. v .. "'"
  elseif type(v) == "number" or type(v) == "boolean" then
    return tostring(v)
  end
  return type(v)
end

local function listed(values)
  local parts = {}
  for i, v in ipairs(values) do parts[i] = tostring(v) end
  return concat(parts, ", ")
end

-- Names are Chinese: the API's length limits count characters, not bytes.
local function utf8_chars(s)
  return #s - select(2, gsub(s, "[\128-\191]", ""))
end

---------------------------------------------------------------------------------------------------------------
-- Checks: check(value, option_name) returns the API value or fails.

local function text(max_chars)
  return function(v, arg)
    if type(v) ~= "string" then fail("%s must be a string, got %s", arg, shown(v)) end
    if v == "" then fail("%s must not be empty", arg) end
    if max_chars and utf8_chars(v) > max_chars then
      fail("%s must be at most %d characters, got %d", arg, max_chars, utf8_chars(v))
    end
    return v
  end
end

local function boolean(v, arg)
  if type(v) ~= "boolean" then fail("%s must be true or false, got %s", arg, shown(v)) end
  return v
end

local function integer(lo, hi)
  return function(v, arg)
    if type(v) ~= "number" or v ~= floor(v) or v == huge or v == -huge then
      fail("%s must be an integer, got %s", arg, shown(v))
    end
    if (lo and v < lo) or (hi and v > hi) then
      fail("%s must be %s, got %s", arg,
        hi and format("between %d and %d", lo, hi) or format("at least %d", lo), shown(v))
    end
    return tointeger and tointeger(v) or v
  end
end

local function number(v, arg)
  if type(v) ~= "number" or v ~= v or v == huge or v == -huge then
    fail("%s must be a number, got %s", arg, shown(v))
  end
  return v
end

local function non_negative(v, arg)
  if number(v, arg) < 0 then fail("%s must not be negative, got %s", arg, shown(v)) end
  return v
end

local function positive(v, arg)
  if number(v, arg) <= 0 then fail("%s must be greater than 0, got %s", arg, shown(v)) end
  return v
end


local function is_list(v)
  if type(v) ~= "table" then return false end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then return false end
  end
  return true
end

-- A list of 1..max_count values, each passed through check; the result is a new table.
local function list(check, max_count)
  return function(v, arg)
    if not is_list(v) then fail("%s must be a list, got %s", arg, shown(v)) end
    local n = #v
    if n == 0 then fail("%s must not be empty (leave it out instead)", arg) end
    if max_count and n > max_count then fail("%s takes at most %d entries, got %d", arg, max_count, n) end
    local out = {}
    for i = 1, n do out[i] = check(v[i], format("%s[%d]", arg, i)) end
    return out
  end
end

local function mobile(v, arg)
  text()(v, arg)
  if not formats.mobile(v) then fail("%s must be 11 digits (mainland China), got %s", arg, shown(v)) end
  return v
end

local function unix_seconds(v, arg)
  integer()(v, arg)
  if not formats.unix_seconds(v) then
    fail("%s must be a Unix time in seconds (10 digits, not milliseconds), got %s", arg, shown(v))
  end
  return tointeger and tointeger(v) or v
end

local function table_of(v, arg)
  if type(v) ~= "table" then fail("%s must be a table, got %s", arg, shown(v)) end
  return v
end

---------------------------------------------------------------------------------------------------------------
-- Options: spec = { option_name = { "Api.Path", check } }. A path of false means the builder uses the value
-- itself after the check.

local function distance(a, b) -- Levenshtein, for "did you mean"
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = sub(a, i, i) == sub(b, j, j) and 0 or 1
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  return keys
end

-- The candidate nearest to word, if it is near enough to be a likely typo; alias maps other spellings
-- (the API's own field names) to a candidate.
local function closest(word, candidates, alias)
  local best, best_d = nil, huge
  for _, c in ipairs(candidates) do
    local d = (alias and alias[c] == word) and 0 or distance(lower(word), lower(c))
    if d < best_d then best, best_d = c, d end
  end
  if best_d <= max(2, floor(#word / 3)) then return best end
end

local function unknown_option(key, spec)
  if type(key) ~= "string" then
    fail("options are named (name = value), got a value at position %s", shown(key))
  end
  local names, api_names = sorted_keys(spec), {}
  for _, name in ipairs(names) do
    local path = spec[name][1]
    api_names[name] = path and match(path, "[^.]+$")
  end
  local best = closest(key, names, api_names)
  if best then fail("unknown option '%s' (did you mean '%s'?)", key, best) end
  fail("unknown option '%s' (options: %s)", key, concat(names, ", "))
end

local function enum(name)
  local set, values = enum_sets[name], enums[name]
  return function(v, arg)
    if set[v] ~= nil then return v end
    local near = type(v) == "string" and closest(v, values)
    if near then fail("%s must be one of %s, got %s (did you mean '%s'?)", arg, listed(values), shown(v), near) end
    fail("%s must be one of %s, got %s", arg, listed(values), shown(v))
  end
end

local function put(out, path, value)
  local head, rest = match(path, "^([^.]+)%.(.+)$")
  if not head then
    out[path] = value
    return
  end
  out[head] = out[head] or {}
  put(out[head], rest, value)
end

-- Checks opts against spec, fills out (a table with the builder's fixed fields) and returns it.
local function convert(opts, spec, required, out)
  if type(opts) ~= "table" then fail("expects a table of options, got %s", shown(opts)) end
  for k in pairs(opts) do
    if spec[k] == nil then unknown_option(k, spec) end
  end
  for _, k in ipairs(required) do
    if opts[k] == nil then fail("%s is required", k) end
  end
  for _, k in ipairs(sorted_keys(opts)) do
    local path, check = spec[k][1], spec[k][2]
    local value = check(opts[k], k)
    if path then put(out, path, value) end
  end
  return out
end

-- Runs fn(...) for a nested argument: a failure's message gets "arg: " in front.
local function within(arg, fn, ...)
  local ok, result = pcall(fn, ...)
  if ok then return result end
  if getmetatable(result) == Failure then result.message = arg .. ": " .. result.message end
  error(result, 0)
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

local AGENT = {
  app_id = { "AppId", text() },
  org_open_id = { "ProxyOrganizationOpenId", text(64) },
  operator_open_id = { "ProxyOperator.OpenId", text(64) },
}
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

-- Seal and signature fields cannot sit on a PDF form field; seals belong to companies only.
local SEAL_TYPES = { SIGN_SEAL = true, SIGN_PAGING_SEAL = true, SIGN_LEGAL_PERSON_SEAL = true }
local SIGNATURE_TYPES = { SIGN_SIGNATURE = true, SIGN_PAGING_SIGNATURE = true }
local PAGING_TYPES = { SIGN_PAGING_SEAL = true, SIGN_PAGING_SIGNATURE = true }

local COMPONENT = {
  type = { "ComponentType", enum("ComponentType") },
  value = { "ComponentValue", text() },
  required = { "ComponentRequired", boolean },
  extra = { "ComponentExtra", text() },
  placeholder = { "Placeholder", text() },
  lock_value = { "LockComponentValue", boolean },
  forbid_move = { "ForbidMoveAndDelete", boolean },
}

local AT_KEYWORD = merged(COMPONENT, {
  keyword = { "ComponentId", text() },
  exact = { false, boolean },
  width = { "ComponentWidth", positive },
  height = { "ComponentHeight", positive },
  offset_x = { "OffsetX", number },
  offset_y = { "OffsetY", number },
  indexes = { "KeywordIndexes", list(integer(0)) },
  page = { "KeywordPage", integer(1) },
  order = { "KeywordOrder", enum("KeywordOrder") },
  relative = { "RelativeLocation", enum("RelativeLocation") },
})
local AT_KEYWORD_REQUIRED = { "type", "keyword" }

local function build_at_keyword(opts)
  local c = convert(opts, AT_KEYWORD, AT_KEYWORD_REQUIRED, { GenerateMode = "KEYWORD" })
  if opts.exact then c.ComponentId = "^" .. c.ComponentId .. "^" end
  return c
end
M.at_keyword = public("flow.at_keyword", build_at_keyword)

local function page_number(v, arg)
  integer()(v, arg)
  if v == 0 then fail("%s counts from 1 (or from -1 for the last page), got 0", arg) end
  return tointeger and tointeger(v) or v
end

local AT_POSITION = merged(COMPONENT, {
  page = { "ComponentPage", page_number },
  x = { "ComponentPosX", non_negative },
  y = { "ComponentPosY", non_negative },
  width = { "ComponentWidth", positive },
  height = { "ComponentHeight", positive },
  id = { "ComponentId", text(30) },
  name = { "ComponentName", text(20) },
})
local AT_POSITION_REQUIRED = { "type", "page", "y" }

M.at_position = public("flow.at_position", function(opts)
  local c = convert(opts, AT_POSITION, AT_POSITION_REQUIRED, { GenerateMode = "NORMAL" })
  if PAGING_TYPES[c.ComponentType] then
    -- A cross-page field spans the page edge: only its height band and size are placed.
    if c.ComponentWidth == nil or c.ComponentHeight == nil then
      fail("a %s field needs width and height", c.ComponentType)
    end
  elseif c.ComponentPosX == nil then
    fail("x is required")
  end
  return c
end)

local ON_FIELD = merged(COMPONENT, {
  field = { "ComponentName", text() },
})
local ON_FIELD_REQUIRED = { "type", "field" }

M.on_field = public("flow.on_field", function(opts)
  local c = convert(opts, ON_FIELD, ON_FIELD_REQUIRED, { GenerateMode = "FIELD" })
  local t = c.ComponentType
  if SEAL_TYPES[t] or SIGNATURE_TYPES[t] then
    fail("type %s cannot be placed on a PDF form field; place it with flow.at_keyword or flow.at_position", t)
  end
  return c
end)

-- Shorthands: flow.seal_at_keyword("甲方（盖章）", seal_id_or_options).
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

-- sign = one component or a list of them: signing fields (SIGN_*) only.
local function components(signing)
  local check_list = list(component)
  return function(v, arg)
    if type(v) == "table" and v.ComponentType ~= nil then v = { v } end
    local out = check_list(v, arg)
    for i, c in ipairs(out) do
      if is_signing_type(c.ComponentType) ~= signing then
        fail("%s[%d] is a %s field, which belongs in %s", arg, i, c.ComponentType,
          signing and "fill (a fill-in field)" or "a signer's sign list (a signing field)")
      end
    end
    return out
  end
end

local sign_types_check = list(enum("ApproverSignTypes"))
local function sign_types(v, arg)
  local out = sign_types_check(v, arg)
  for _, t in ipairs(out) do
    if t ~= 5 and t ~= 6 then return out end
  end
  fail("%s needs a method besides 5 and 6 (device fingerprint and device face ID)", arg)
end

-- Options of every signer that a person reads and signs for (not company auto-sign).
local SIGNER = {
  sign = { "SignComponents", components(true) },
  fill = { "Components", components(false) },
  role = { "ApproverRoleName", text(20) },
  pre_read_time = { "PreReadTime", integer(3, 300) },
  no_refuse = { "ApproverOption.NoRefuse", boolean },
  no_transfer = { "ApproverOption.NoTransfer", boolean },
  hide_one_key_sign = { "ApproverOption.HideOneKeySign", boolean },
  read_limit = { "ApproverOption.FlowReadLimit", enum("FlowReadLimit") },
  forbid_add_sign_date = { "ApproverOption.ForbidAddSignDate", boolean },
  need_review = { "ApproverNeedSignReview", boolean },
  verify_types = { "ApproverVerifyTypes", list(enum("ApproverVerifyTypes")) },
  sign_types = { "ApproverSignTypes", sign_types },
  signature_styles = { "ComponentLimitType", list(enum("ComponentLimitType")) },
  sign_type_selector = { "SignTypeSelector", integer(0, 1) },
  sign_endpoints = { "SignEndpoints", list(enum("SignEndpoints")) },
  jump_url = { "JumpUrl", text() },
  email = { "ApproverEmail", text() },
}

local IDENTITY = {
  name = { "Name", text() },
  mobile = { "Mobile", mobile },
  id_card_type = { "IdCardType", enum("IdCardType") },
  id_card_number = { "IdCardNumber", text() },
}

-- Signers outside the platform: the API lets the caller choose notification and mobile reconciliation.
local OUTSIDE = {
  notify = { "NotifyType", enum("NotifyType") },
  mobile_mode = { "ApproverOption.ApproverMobileMode", enum("ApproverMobileMode") },
}

local COMPANY = {
  org_name = { "OrganizationName", text() },
  org_open_id = { "OrganizationOpenId", text(64) },
  open_id = { "OpenId", text(64) },
}

local function check_id_card(s)
  if s.IdCardNumber == nil then return end
  local id_type = s.IdCardType or "ID_CARD"
  -- The number itself is not echoed: it is personal data and may end up in logs.
  if not formats.id_card(id_type, s.IdCardNumber) then
    fail("id_card_number is not a valid %s number (%d characters given)", id_type, #s.IdCardNumber)
  end
end

local function signer_builder(name, spec, required, fixed, after)
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

-- Company auto-sign: nobody reads or fills anything, so only placement and identity apply.
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

local CONTRACT = {
  file_id = { "FileIds", function(v, arg) return { text()(v, arg) } end },
  name = { "FlowName", text(limits.FlowName) },
  signers = { "FlowApprovers", list(signer, limits.FlowApprovers) },
  deadline = { "Deadline", unix_seconds },
  description = { "FlowDescription", text(limits.FlowDescription) },
  type = { "FlowType", text(limits.FlowType) },
  unordered = { "Unordered", boolean },
  customer_data = { "CustomerData", text(limits.CustomerData) },
  fill = { "Components", components(false) },
  display_type = { "FlowDisplayType", enum("FlowDisplayType") },
  need_sign_review = { "NeedSignReview", boolean },
  custom_show_map = { "CustomShowMap", text() },
}
local CONTRACT_REQUIRED = { "file_id", "name", "signers" }

M.contract = public("flow.contract", function(opts)
  return convert(opts, CONTRACT, CONTRACT_REQUIRED, {})
end)

---------------------------------------------------------------------------------------------------------------
-- The group (ChannelCreateFlowGroupByFilesRequest)

local GROUP_OPTIONS = {
  self_sign_each = { "SelfOrganizationApproverSignEach", boolean },
  others_sign_each = { "OtherApproverSignEach", boolean },
  no_edit_name = { "NoEditFlowName", boolean },
  no_edit_type = { "NoEditFlowType", boolean },
  no_edit_deadline = { "NoEditDeadline", boolean },
  hide_sign_date = { "SignComponentConfig.HideDate", boolean },
  forbid_edit_watermark = { "ForbidEditWatermark", boolean },
  hide_sign_code_after_start = { "HideSignCodeAfterStart", boolean },
  sign_after_start = { "SignAfterStart", boolean },
  preview_after_start = { "PreviewAfterStart", boolean },
}

local function contract(v, arg)
  if type(v) ~= "table" or v.FileIds == nil then
    fail("%s must be a contract (flow.contract), got %s", arg, shown(v))
  end
  return v
end

-- agent = flow.agent{...} or its options directly.
local function agent(v, arg)
  table_of(v, arg)
  if v.AppId ~= nil then return v end
  return within(arg, build_agent, v)
end

local GROUP = {
  name = { "FlowGroupName", text(limits.FlowGroupName) },
  agent = { "Agent", agent },
  contracts = { "FlowFileInfos", list(contract, limits.FlowFileInfosMax) },
  verify = { "ApproverVerifyType", enum("ApproverVerifyType") },
  options = { "FlowGroupOptions", function(v, arg) return within(arg, convert, v, GROUP_OPTIONS, {}, {}) end },
}
local GROUP_REQUIRED = { "name", "agent", "contracts" }

M.group = public("flow.group", function(opts)
  local g = convert(opts, GROUP, GROUP_REQUIRED, {})
  if #g.FlowFileInfos < limits.FlowFileInfosMin then
    fail("contracts needs at least %d contracts in a group, got %d", limits.FlowFileInfosMin, #g.FlowFileInfos)
  end
  return g
end)

return M
