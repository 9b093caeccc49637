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
--                                  (JSON excerpts), and by shape: ID numbers, mobiles (also in groups, +86),
--                                  bank cards (also in groups), passports, Hong Kong and Macao permits, Hong Kong
--                                  and Taiwan ID cards, Taiwan permits, old foreigner residence cards, e-mail
--                                  addresses (non-ASCII, no dot); the first CAP bytes only, in linear time
--
-- The list goes by member name, in every structure that has the name: one list, and a new structure reusing a
-- name (Mobile, IdCardNumber) is covered without an edit. spec/personal_spec.lua scans every member of the
-- schema whose name looks personal (Name, Mobile, IdCard, Email, Bank, Address, Ip, …) and fails unless it is
-- in MEMBERS or in NOT_PERSONAL, so a member added to the schema must be classified before the tests pass.
-- This module needs nothing else (errors.lua uses it for tostring).

local type, tostring, tonumber, next, select, ipairs = type, tostring, tonumber, next, select, ipairs
local floor = math.floor
local byte, sub, rep, find, gsub, format, match, gmatch, reverse = string.byte, string.sub, string.rep,
  string.find, string.gsub, string.format, string.match, string.gmatch, string.reverse
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

-- Free text is examined up to CAP bytes (the cut falls on a character boundary); what lies beyond is not shown, so
-- no text can make the scrub slow or carry unmasked data past it. Every rule below looks at a bounded window per
-- word or per "@": the time is linear in the text (bench/personal_scrub.lua: a 64 KB message, hostile ones too).
M.CAP = 65536

local function cap(text)
  if #text <= M.CAP then return text end
  local cut = M.CAP
  while cut > 0 do -- back to the start of a character
    local b = byte(text, cut + 1)
    if b < 0x80 or b >= 0xC0 then break end
    cut = cut - 1
  end
  return sub(text, 1, cut) .. format("...(%d bytes not shown)", #text - cut)
end

local function is_alnum(b)
  return b and ((b >= 48 and b <= 57) or (b >= 65 and b <= 90) or (b >= 97 and b <= 122))
end

-- YYYYMMDD of a plausible date.
local function is_date(s)
  local y, m, d = tonumber(sub(s, 1, 4)), tonumber(sub(s, 5, 6)), tonumber(sub(s, 7, 8))
  return y >= 1900 and y <= 2199 and m >= 1 and m <= 12 and d >= 1 and d <= 31
end

-- A label just before position i that says a document number follows: 证 (证件, 证号, 通行证, 台胞证, 居住证...),
-- "permit", "ID".
local function after_document_label(text, i)
  local before = sub(text, i > 24 and i - 24 or 1, i - 1)
  return find(before, "\232\175\129", 1, true) or find(before, "ermit", 1, true) or find(before, "ID", 1, true)
end

-- A word of digits (with one letter after it: the X of an ID number, or a mistyped one) bounded by
-- non-alphanumerics: masked when it has the shape of a mainland mobile (11 digits 1[3-9]…, 13 with the 86 prefix),
-- an ID number (15 digits, or 18 characters: 17 digits and a digit or a letter; the new foreigner's permanent
-- residence card and the Hong Kong, Macao and Taiwan residents' residence permit have this shape too) or a bank
-- card (16 to 19 digits); a Taiwan residents' travel permit (8 digits, not a date) after a label (证, permit, ID),
-- or its older form of 10 digits and a letter in parentheses, 1234567890(B). Unix times (10 digits), millisecond
-- times (13) and ids with letters inside stay as they are.
local function digit_words(text)
  return (gsub(text, "()%f[%w](%d+%a?)%f[%W]()", function(i, s, j)
    local n = #s
    local last = byte(s, n)
    if last > 57 then return n == 18 and mask(s) or nil end -- a letter
    if (n == 11 and find(s, "^1[3-9]")) or (n == 13 and find(s, "^861[3-9]")) or (n >= 15 and n <= 19) then
      return mask(s)
    end
    if n == 8 and not is_date(s) and after_document_label(text, i) then return mask(s) end
    if n == 10 and find(text, "^%(%u%)", j) then return mask(s) end
    return nil
  end))
end

-- Letters then digits, a whole word: a passport (1 or 2 letters and 7 to 9 digits: E12345678, EA1234567, G12345678,
-- and most other countries'), a Hong Kong or Macao travel permit (H or M and 8 or 10 digits), a Taiwan ID card
-- (A123456789), a Hong Kong ID card (A123456(7), AB987654(3), or its check digit written without parentheses) and
-- the old foreigner's permanent residence card (a country's 3 letters and 12 digits: USA110012345678).
local function document_words(text)
  return (gsub(text, "%f[%w](%u+)(%d+)()", function(letters, digits, j)
    local nl, nd = #letters, #digits
    local after = byte(text, j)
    if is_alnum(after) then return nil end
    if nl <= 2 and ((nd >= 7 and nd <= 10) or (nd == 6 and find(text, "^%([%dA]%)", j))) then
      return mask(letters .. digits) -- the Hong Kong ID card's check digit in parentheses stays
    end
    if nl == 3 and nd == 12 then return mask(letters .. digits) end
    return nil
  end))
end

-- Numbers written in groups (spaces or dashes between them, a + before them): a mobile (138 0013 8000,
-- 138-0013-8000, +86 138 0013 8000, 0086-13800138000, +8613800138000), a bank card (6222 0212 3456 7890 123) or an
-- ID number (110105 19491231 002X). A run of groups is read left to right, and at each group the longest run of at
-- most 5 groups with one of these shapes is masked (its digits as mask() shows them, separators kept); dates,
-- times and ids with letters in between stay as they are.
local MAX_GROUPS = 5

local function sizes_are(sizes, i, j, ...)
  local want = { ... }
  if j - i + 1 ~= #want then return false end
  for k = 1, #want do
    if sizes[i + k - 1] ~= want[k] then return false end
  end
  return true
end

local function grouped_shape(groups, sizes, i, j, plus, counted)
  local n = counted[j] - counted[i - 1]
  if n < 11 or n > 19 then return false end -- no shape has fewer or more digits
  local digits = concat(groups, "", i, j)
  local prefix = 0 -- the groups of a country code: +86, 86, 0086
  if plus and j == i then return n == 13 and find(digits, "^861[3-9]") ~= nil end -- +8613800138000
  if plus and groups[i] ~= "86" then return false end -- another country's number
  if (plus or groups[i] == "86" or groups[i] == "0086") and j > i then prefix = 1 end
  if prefix == 1 then
    local rest = concat(groups, "", i + 1, j)
    if #rest == 11 and find(rest, "^1[3-9]") then return true end
  end
  if n == 11 and find(digits, "^1[3-9]") and (sizes_are(sizes, i, j, 3, 4, 4) or sizes_are(sizes, i, j, 3, 8)) then
    return true
  end
  if n == 18 and sizes_are(sizes, i, j, 6, 8, 4) then return true end
  if n < 16 or n > 19 or j - i < 3 or sizes[j] > 4 then return false end
  for k = i, j - 1 do -- a bank card: groups of 4, the last one of 1 to 4
    if sizes[k] ~= 4 then return false end
  end
  return true
end

local function grouped(pre, plus, run, post, text)
  if is_alnum(byte(text, pre - 1)) or is_alnum(byte(text, post)) then return nil end
  if #run < 11 or (plus == "" and not find(run, "[ %-]")) then return nil end -- too short; or one word, which
  -- digit_words reads
  local groups, seps = {}, {}
  for g, sep in gmatch(run, "([%dXx]+)([ %-]*)") do
    groups[#groups + 1] = g
    seps[#seps + 1] = sep
  end
  local sizes, counted = {}, { [0] = 0 }
  for k = 1, #groups do
    sizes[k] = #groups[k]
    counted[k] = counted[k - 1] + sizes[k]
  end
  local out, i, changed = {}, 1, false
  while i <= #groups do
    local found
    for j = (i + MAX_GROUPS - 1 < #groups) and i + MAX_GROUPS - 1 or #groups, i, -1 do
      if grouped_shape(groups, sizes, i, j, plus ~= "" and i == 1, counted) then found = j break end
    end
    if found then
      local masked = mask(concat(groups, "", i, found))
      local at = 1
      for k = i, found do
        out[#out + 1] = sub(masked, at, at + sizes[k] - 1)
        at = at + sizes[k]
        out[#out + 1] = seps[k]
      end
      i, changed = found + 1, true
    else
      out[#out + 1] = groups[i]
      out[#out + 1] = seps[i]
      i = i + 1
    end
  end
  if not changed then return nil end
  return plus .. concat(out)
end

local function grouped_numbers(text)
  if not find(text, "%d[ %-]%d") and not find(text, "+", 1, true) then return text end
  return (gsub(text, "()(%+?)(%d[%d %-]*[%dXx])()", function(pre, plus, run, post)
    return grouped(pre, plus, run, post, text)
  end))
end

-- E-mail addresses: around each "@", the local part (ASCII letters, digits, . _ + - and any non-ASCII character
-- but CJK punctuation; at most 64 bytes) and the domain (the same, at most 255 bytes; a dot not required, so
-- user@localhost and 张三@例子.中国 are caught), both not empty.
local LOCAL_MAX, DOMAIN_MAX = 64, 255
local CJK_PUNCTUATION = {}
for _, p in ipairs({ "，", "。", "：", "；", "！", "？", "、", "（", "）", "【", "】", "《", "》", "「", "」", "“", "”", "‘", "’",
  "　" }) do
  CJK_PUNCTUATION[p] = true
end

-- s cut at its first CJK punctuation mark (after its last one when from_end). Every mark of the list is 3 bytes
-- and starts with E2, E3 or EF.
local function before_punctuation(s, from_end)
  local init, cut = 1, nil
  while true do
    local i, j = find(s, "[\226\227\239][\128-\191][\128-\191]", init)
    if not i then break end
    if CJK_PUNCTUATION[sub(s, i, j)] then
      if not from_end then return sub(s, 1, i - 1) end
      cut = j
    end
    init = j + 1
  end
  return cut and sub(s, cut + 1) or s
end

-- The local part's first character and a star for each of the others (a name written before it without a space
-- would otherwise show in mask()'s head), the domain as it is (it names a provider, not a person).
local function mask_email(left, right)
  local starts, n = char_starts(left)
  local first = n > 1 and sub(left, 1, starts[2] - 1) or ""
  return first .. rep("*", n - (n > 1 and 1 or 0)) .. "@" .. right
end

local EMAIL_CHARS = "[%w%._%+%-\128-\255]"
local EMAIL_RUN = "^" .. EMAIL_CHARS .. "*"
local NOT_EMAIL_CHAR = "[^%w%._%+%-\128-\255]"

local function emails(text)
  if not find(text, "@", 1, true) then return text end
  local parts, n, init, scan = {}, 0, 1, 1
  while true do
    local at = find(text, "@", scan, true)
    if not at then break end
    scan = at + 1
    -- an address has something on both sides of its "@"
    if find(sub(text, at - 1, at - 1), EMAIL_CHARS) and find(sub(text, at + 1, at + 1), EMAIL_CHARS) then
      local window = sub(text, (at - LOCAL_MAX > init) and at - LOCAL_MAX or init, at - 1)
      local left = before_punctuation(sub(window, #window - #match(reverse(window), EMAIL_RUN) + 1),
        true)
      local stop = (find(text, NOT_EMAIL_CHAR, at + 1) or #text + 1) - 1
      if stop - at > DOMAIN_MAX then stop = at + DOMAIN_MAX end
      local right = before_punctuation(sub(text, at + 1, stop), false)
      local last = #right
      while byte(right, last) == 46 do last = last - 1 end -- a full stop after the address
      right = sub(right, 1, last)
      if left ~= "" and right ~= "" then
        parts[n + 1] = sub(text, init, at - #left - 1)
        parts[n + 2] = mask_email(left, right)
        n = n + 2
        init = at + #right + 1
        scan = init
      end
    end
  end
  if n == 0 then return text end
  parts[n + 1] = sub(text, init)
  return concat(parts)
end

local function json_pair(key, sep, value)
  if M.MEMBERS[key] and value ~= "" then return '"' .. key .. '"' .. sep .. mask(value) end
  return nil
end

-- scrub(text [, t]) → text with personal data masked (see the top of this file). Not for values known to be
-- personal (mask those): for text that may quote them, such as a service's error message or a body excerpt.
function M.scrub(text, t)
  if type(text) ~= "string" then text = tostring(text) end
  text = cap(text)
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
  text = emails(text)
  text = grouped_numbers(text)
  text = digit_words(text)
  text = document_words(text)
  return text
end


-- Is member `name` in the list?
function M.is_personal(name)
  return M.MEMBERS[name] ~= nil
end

return M
