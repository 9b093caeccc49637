-- Personal data: the one list of the schema's members that hold it, and the masking every error, log line and
-- tostring goes through (issue 19). A value is masked by default wherever essbasic shows it; the full value
-- stays in the request table that holds it. `debug_personal_data = true` (essbasic.new, or the last argument of
-- validate.request) shows values unmasked: for a developer's terminal, never for production logs.
--
--   personal.MEMBERS[name]       → the kind of data a member of that name holds ("id_number", "mobile", "name",
--                                  "email", "bank_account", "ip"), or nil
--   personal.NOT_PERSONAL[name]  → why a member whose name looks personal is not masked
--   personal.mask(v)             → v (a string or a number) masked, its length in characters kept:
--                                  13800138000 → 1380****000, 11010519491231002Y → 110105********002Y,
--                                  张三丰 → 张*丰
--   personal.scrub(text [, request]) → text with personal data masked: the personal members' values of `request`
--                                  (any table: a request, a response), "Member": "value" pairs of such members
--                                  (JSON excerpts), digit runs shaped like an ID number, a mobile or a bank card,
--                                  Hong Kong and Macao permit numbers, e-mail addresses
--
-- The list goes by member name, in every structure that has the name: one list, and a new structure reusing a
-- name (Mobile, IdCardNumber) is covered without an edit. spec/personal_spec.lua scans every member of the
-- schema whose name looks personal (Name, Mobile, IdCard, Email, Bank, Address, Ip, …) and fails unless it is
-- in MEMBERS or in NOT_PERSONAL, so a member added to the schema must be classified before the tests pass.
-- This module needs nothing else (errors.lua uses it for tostring).

local type, tostring, next, select = type, tostring, next, select
local floor = math.floor
local byte, sub, rep, find, gsub, format = string.byte, string.sub, string.rep, string.find, string.gsub,
  string.format
local concat, sort = table.concat, table.sort

local M = {}

M.MEMBERS = {
  -- ID numbers of every kind: the mainland ID card, the Hong Kong and Macao permit, the residence permit (the type
  -- is the sibling *IdCardType member, not personal itself). Sensitive personal information under PIPL.
  IdCardNumber = "id_number",              -- signers, preset and released approvers, operators, sign-url filters
  ApproverIdCardNumber = "id_number",      -- CommonFlowApprover, FillApproverInfo, NeedReviewApproverInfo
  AdminIdCardNumber = "id_number",         -- an organisation's super administrator
  NewAdminIdCardNumber = "id_number",
  OldAdminIdCardNumber = "id_number",
  LegalIdCardNumber = "id_number",         -- the legal representative
  ProxyLegalIdCardNumber = "id_number",
  ProxyOperatorIdCardNumber = "id_number",
  -- Mobile numbers (the sign-in and notification identity of a person)
  Mobile = "mobile",
  ApproverMobile = "mobile",
  AdminMobile = "mobile",
  NewAdminMobile = "mobile",
  OldAdminMobile = "mobile",
  NewLegalMobile = "mobile",
  NewMobile = "mobile",
  ProxyOperatorMobile = "mobile",
  NotifyAddress = "mobile",                -- ChannelCreateUserAutoSignEnableUrl: the mobile SMS notices go to
  -- A person's name. Name is masked in all of its 20 structures: in 12 it is a signer's, an operator's or a cc
  -- recipient's name; in the others (role, permission, resource, contract-type, extension names) masking costs
  -- a little legibility in a rare type error, and going by name keeps the list one list.
  Name = "name",
  ApproverName = "name",
  ApproveName = "name",                    -- FlowApproverDetail (sic)
  AdminName = "name",
  NewAdminName = "name",
  OldAdminName = "name",
  LegalName = "name",                      -- the legal representative's name
  ProxyLegalName = "name",
  ProxyOperatorName = "name",
  UserName = "name",                       -- the person of a personal seal or certificate
  OperatorName = "name",                   -- ChannelBillUsageDetail: the contract's operators
  DisplayName = "name",                    -- Staff (the API masks it itself; masked here too)
  SignerName = "name",                     -- PdfVerifyResult: "ESS@<name>@<ID number>@…" for a person
  -- E-mail addresses
  ApproverEmail = "email",
  Email = "email",
  -- Bank accounts: CreateConsoleLoginUrl's account for the verification transfer (an organisation's account, but
  -- an account number all the same)
  BankAccountNumber = "bank_account",
  -- IP addresses of the operator (UserInfo, OrganizationInfo). Disabled members, so any value sent is refused and
  -- shown in the problem.
  ClientIp = "ip",
  ProxyIp = "ip",
}

-- Members whose names match the personal-looking patterns of spec/personal_spec.lua but hold no personal data.
local ORGANISATION = "an organisation's name (public in the business register), not a person's"
local LABEL = "a label the application chooses (flow, file, template, role...), not a person's name"
M.NOT_PERSONAL = {
  OrganizationName = ORGANISATION, ProxyOrganizationName = ORGANISATION, AuthorizedOrganizationName = ORGANISATION,
  AuthorizedOrganizationNames = ORGANISATION, CreateOrganizationName = ORGANISATION,
  SelfName = "the organisation's own short name",
  FlowName = LABEL, FlowGroupName = LABEL, TemplateName = LABEL, ChannelTemplateName = LABEL, FileName = LABEL,
  ResourceName = LABEL, RoleName = LABEL, ApproverRoleName = LABEL, ComponentName = LABEL, DepartmentName = LABEL,
  GroupName = LABEL, QrCodeName = LABEL, QuotaName = LABEL,
  SealName = "the name of a seal, chosen by its owner",
  ApproverMobileMode = "an enumeration (REPLACE, GIVEN, VALIDATE): how the mobile is passed, not a mobile",
  IdCardType = "the kind of document (ID_CARD...), an enumeration",
  ApproverIdCardType = "the kind of document, an enumeration", AdminIdCardType = "the kind of document",
  NewAdminIdCardType = "the kind of document", OldAdminIdCardType = "the kind of document",
  LegalIdCardType = "the kind of document", ProxyLegalIdCardType = "the kind of document",
  ProxyOrganizationIdCardType = "the kind of an organisation's licence (USCC...)",
  Address = "an organisation's registered address (public in the business register)",
  ProxyAddress = "an organisation's registered address (public in the business register)",
  LegalOpenId = "an identifier the application assigns (OpenIds are how rows are found)",
}

---------------------------------------------------------------------------------------------------------------
-- Masking
---------------------------------------------------------------------------------------------------------------

-- Byte offsets where the characters of s start (a byte that is not a UTF-8 continuation byte starts one).
local function char_starts(s)
  local starts, n = {}, 0
  for i = 1, #s do
    local b = byte(s, i)
    if b < 0x80 or b >= 0xC0 then
      n = n + 1
      starts[n] = i
    end
  end
  return starts, n
end

-- mask(v): n characters keep about 60% of them, at most 6 at the head and 4 at the tail, and never all: 1 → "*",
-- 2 → 1+1*, 3 → 1+1*+1, 11 → 4+4*+3, 18 → 6+8*+4. Numbers are masked as their digits; other values are returned
-- as tostring gives them (nil, booleans and tables hold no personal data).
function M.mask(v)
  local t = type(v)
  if t == "number" then
    v = (v == floor(v) and v > -1e15 and v < 1e15) and format("%d", v) or tostring(v)
  elseif t ~= "string" then
    return tostring(v)
  end
  local starts, n = char_starts(v)
  if n == 0 then return v end
  local visible = floor((6 * n + 5) / 10)
  if visible > 10 then visible = 10 end
  if visible >= n then visible = n - 1 end
  local head = floor((6 * visible + 5) / 10)
  local tail = visible - head
  local head_end = head < n and starts[head + 1] - 1 or #v
  local tail_start = tail > 0 and starts[n - tail + 1] or #v + 1
  return sub(v, 1, head_end) .. rep("*", n - head - tail) .. sub(v, tail_start)
end

local mask = M.mask

---------------------------------------------------------------------------------------------------------------
-- Free text
---------------------------------------------------------------------------------------------------------------

-- The values of personal members anywhere in table t (strings of 2 characters or more, whole numbers of 2
-- digits or more), the elements of a list under a personal member included.
local function collect(t, out, seen, depth, under_personal)
  if depth > 32 or seen[t] then return end
  seen[t] = true
  for k, v in next, t do
    local personal = M.MEMBERS[k] ~= nil or (under_personal and type(k) == "number")
    if type(v) == "table" then
      collect(v, out, seen, depth + 1, personal)
    elseif personal then
      if type(v) == "number" and v == floor(v) and v >= 10 and v < 1e15 then v = format("%d", v) end
      if type(v) == "string" and #v >= 2 and select(2, char_starts(v)) >= 2 then out[#out + 1] = v end
    end
  end
end

local function by_length(a, b)
  if #a ~= #b then return #a > #b end
  return a < b
end

-- Every plain occurrence of value in text replaced by its mask.
local function replace_plain(text, value, masked)
  local parts, init = {}, 1
  while true do
    local i, j = find(text, value, init, true)
    if not i then break end
    parts[#parts + 1] = sub(text, init, i - 1)
    parts[#parts + 1] = masked
    init = j + 1
  end
  if init == 1 then return text end
  parts[#parts + 1] = sub(text, init)
  return concat(parts)
end

-- A digit run (with one letter after it: the X of an ID number, or a mistyped one) bounded by non-alphanumerics:
-- masked when it has the shape of a mainland mobile (11 digits 1[3-9]…, 13 with the 86 prefix), an ID number (15
-- digits, or 18 characters: 17 digits and a digit or a letter) or a bank card (16 to 19 digits). Unix times (10
-- digits), millisecond times (13) and ids with letters inside stay as they are.
local function digits_shape(s)
  local n = #s
  local last = byte(s, n)
  if last > 57 then return n == 18 and mask(s) or nil end -- a letter
  if (n == 11 and find(s, "^1[3-9]")) or (n == 13 and find(s, "^861[3-9]")) or (n >= 15 and n <= 19) then
    return mask(s)
  end
  return nil
end

-- H or M and 8 or 10 digits: a Hong Kong or Macao permit.
local function permit_shape(s)
  local n = #s
  return (n == 9 or n == 11) and mask(s) or nil
end

local function json_pair(key, sep, value)
  if M.MEMBERS[key] and value ~= "" then return '"' .. key .. '"' .. sep .. mask(value) end
  return nil
end

-- scrub(text [, t]) → text with personal data masked (see the top of this file). Not for values known to be
-- personal (mask those): for text that may quote them, such as a service's error message or a body excerpt.
function M.scrub(text, t)
  if type(text) ~= "string" then text = tostring(text) end
  if type(t) == "table" then
    local values = {}
    collect(t, values, {}, 0, false)
    sort(values, by_length)
    for i = 1, #values do
      local v = values[i]
      if i == 1 or v ~= values[i - 1] then text = replace_plain(text, v, mask(v)) end
    end
  end
  -- "Member": "value" and "Member": 123 of personal members (a JSON excerpt, possibly cut short)
  text = gsub(text, '"(%w+)"(%s*:%s*)("[^"]*)', function(key, sep, quoted)
    if M.MEMBERS[key] and #quoted > 1 then return '"' .. key .. '"' .. sep .. '"' .. mask(sub(quoted, 2)) end
    return nil
  end)
  text = gsub(text, '"(%w+)"(%s*:%s*)(%d+)', json_pair)
  text = gsub(text, "%f[%w](%d+%a?)%f[%W]", digits_shape)
  text = gsub(text, "%f[%w]([HM]%d+)%f[%W]", permit_shape)
  text = gsub(text, "[%w%._%+%-]+@[%w%-]+%.[%w%.%-]*%a", mask)
  return text
end

-- Is member `name` in the list?
function M.is_personal(name)
  return M.MEMBERS[name] ~= nil
end

return M
