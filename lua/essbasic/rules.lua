-- Constraints that the essbasic 2021-05-26 spec states only in its prose (api.json `document` texts), written by
-- hand beside the generated schema. Every entry names its source: "Struct.Member" means that member's document
-- in api.json; "digest §N" means a section of the project's digest of the spec (research notes, not shipped).
-- Data only, plus the Lua checks compiled from the format entries.
--
-- Only what the API documents as an error is a rule here: a request the API takes must not be refused on the way
-- (docs/builders.md, "What validation refuses"). So members the schema marks disabled are checked and sent (the
-- client warns), and prose the API is not known to enforce is left out (see FlowGroupName below).
--
-- An empty string in an optional member means "not set" (the official SDKs send "" for unset strings and
-- examples.json does so for enumerations such as CreateSignUrls Endpoint), so these rules apply to non-empty
-- values only; a required member that is "" counts as missing.
--
-- Error codes: `code` is a preference list. The validator uses the first code that the Go SDK lists for the
-- action being validated (schema.actions[A].errors, from action-errors.json); the last entry is a platform-wide
-- common code that every action may return, so there is always an answer.

local type, tonumber, find, pairs, error, tostring, require, next, setmetatable, rawset = type, tonumber,
  string.find, pairs, error, tostring, require, next, setmetatable, rawset
local floor = math.floor

local M = {}

-- Platform-wide common codes (Tencent Cloud API 3.0 common errors; digest §5.3): used when the schema itself is
-- violated rather than a prose rule.
M.codes = {
  missing = "MissingParameter",       -- a required member is absent (or an empty string)
  unknown = "UnknownParameter",       -- a member name the structure does not have
  type = "InvalidParameter",          -- wrong JSON type: the API answers type mismatches with InvalidParameter
  action = "InvalidAction",           -- an action name the API does not have
  value = "InvalidParameter",         -- fallback for prose rules without a more specific code
}

--------------------------------------------------------------------------------------------------------------
-- Enumerations: ordered lists of allowed values (enum_sets below gives the same as sets).
--------------------------------------------------------------------------------------------------------------
M.enums = {
  -- FlowApproverInfo.ApproverType
  ApproverType = { "PERSON", "PERSON_AUTO_SIGN", "ORGANIZATION", "ENTERPRISESERVER" },
  -- ChannelCreateFlowGroupByFilesRequest.ApproverVerifyType (flow-group level)
  ApproverVerifyType = { "VerifyCheck", "MobileCheck" },
  -- FlowApproverInfo.IdCardType, CreateSignUrlsRequest.IdCardType
  IdCardType = { "ID_CARD", "HONGKONG_AND_MACAO", "HONGKONG_MACAO_AND_TAIWAN" },
  -- Component.ComponentType: fill-in fields, then signing fields. WATERMARK is not in that member's list but
  -- Component.ComponentExtra documents its options and examples.json (ChannelCreateFlowByFiles) uses it.
  ComponentType = {
    "TEXT", "MULTI_LINE_TEXT", "CHECK_BOX", "FILL_IMAGE", "DYNAMIC_TABLE", "ATTACHMENT", "SELECTOR", "DATE",
    "DISTRICT", "VIRTUAL_COMBINATION", "WATERMARK",
    "SIGN_SEAL", "SIGN_DATE", "SIGN_SIGNATURE", "SIGN_PAGING_SIGNATURE", "SIGN_PAGING_SEAL", "SIGN_OPINION",
    "SIGN_VIRTUAL_COMBINATION", "SIGN_MULTI_LINE_TEXT", "SIGN_SELECTOR", "SIGN_LEGAL_PERSON_SEAL",
  },
  -- ComponentLimit.ComponentType
  ComponentLimitComponentType = { "SIGN_SEAL", "SIGN_PAGING_SEAL", "SIGN_LEGAL_PERSON_SEAL", "SIGN_SIGNATURE" },
  -- Component.GenerateMode
  GenerateMode = { "NORMAL", "FIELD", "KEYWORD" },
  -- FlowApproverInfo.NotifyType. The member's own enumeration block spells the last value "NODE", its prose
  -- (and the meaning, "do not notify") says NONE: read as a typo, NONE only.
  NotifyType = { "SMS", "EMAIL", "ALL", "NONE" },
  -- ApproverOption.FlowReadLimit
  FlowReadLimit = { "LimitReadTimeAndBottom", "LimitReadTime", "LimitBottom", "NoReadTimeAndBottom" },
  -- ApproverOption.ApproverMobileMode ("" is the documented default)
  ApproverMobileMode = { "REPLACE", "GIVEN", "VALIDATE", "" },
  -- Component.KeywordOrder
  KeywordOrder = { "Positive", "Reverse" },
  -- Component.RelativeLocation
  RelativeLocation = { "Middle", "Below", "Right", "LowerRight", "UpperRight" },
  -- FlowApproverInfo.ComponentLimitType (signature styles for SIGN_SIGNATURE)
  ComponentLimitType = { "HANDWRITE", "HANDWRITTEN_ESIGN", "OCR_ESIGN", "ESIGN", "IMG_ESIGN", "SYSTEM_ESIGN" },
  -- FlowApproverInfo.ApproverVerifyTypes: 1 face, 2 mobile match
  ApproverVerifyTypes = { 1, 2 },
  -- FlowApproverInfo.ApproverSignTypes: 1 face, 2 signing password, 3 carrier three-factor, 5 fingerprint, 6 FaceID
  ApproverSignTypes = { 1, 2, 3, 5, 6 },
  -- FlowFileInfo.FlowDisplayType: 0 合同, 1 文件, 2 协议, 3 文书
  FlowDisplayType = { 0, 1, 2, 3 },
  -- ApproverOption.FillType: 1 dynamic signer (0 is the Go zero value, "no supplement", the default)
  FillType = { 0, 1 },
  -- FlowApproverInfo.SignTypeSelector: 0 signer chooses, 1 first method recommended
  SignTypeSelector = { 0, 1 },
  -- FlowApproverInfo.SignEndpoints
  SignEndpoints = { "link" },
  -- Intention.IntentionType: 1 Q&A, 2 nod
  IntentionType = { 1, 2 },
  -- RuleIdConfig.Speed
  Speed = { 0, 1, 2, 3 },
  -- ChannelCancelFlowRequest.CancelMessageFormat, ChannelBatchCancelFlowsRequest.CancelMessageFormat
  CancelMessageFormat = { 0, 1, 2, 3 },
  -- DescribeCancelFlowsTaskRequest.CancelType
  CancelType = { 0, 1 },
  -- CreateSignUrlsRequest.Endpoint
  Endpoint = { "WEIXINAPP", "CHANNEL", "APP", "LONGURL2WEIXINAPP" },
  -- CreateSignUrlsRequest.GenerateType
  GenerateType = { "ALL", "CHANNEL", "NOT_CHANNEL", "PERSON", "FOLLOWER", "RECIPIENT" },
  -- CreateSignUrlsRequest.Hides
  Hides = { 0, 1, 2, 3, 4, 5 },
  -- UploadFilesRequest.BusinessType
  BusinessType = { "TEMPLATE", "DOCUMENT", "SEAL", "ARCHIVE", "BUSINESSLICENSE" },
}

M.enum_sets = {}
for name, list in pairs(M.enums) do
  local set = {}
  for i = 1, #list do set[list[i]] = true end
  M.enum_sets[name] = set
end

--------------------------------------------------------------------------------------------------------------
-- Formats: each declared here once, as data that both walks compile (validate.lua's Lua walk through
-- M.format_check, src/check.c's C walk from the same entry). A format has a kind, the kind's parameters, and its
-- wording when a member limit names it: `expected` is what a validation problem says it expected, `explained`
-- what a builder option's error says (in words a caller can act on; flow.lua). The ID formats are named by the
-- format_by check below, which carries its own wording. The kinds, and the only ones src/check.c knows (FORMAT_KINDS
-- there; it refuses any other when the checker is built):
--   shape        a string of exactly the characters the pattern gives, one class per position: a literal
--                character, %d, or a set [...] of literals, %d and ranges a-z (a Lua pattern, anchored)
--   whole_range  a number, or a string tonumber reads as one, holding a whole number within [min, max]
-- Adding a format of one of these kinds is one entry here (and its test).
--------------------------------------------------------------------------------------------------------------
local D17 = string.rep("%d", 17)
M.formats = {
  -- FlowApproverInfo.Mobile: 11 digits, mainland numbers only, no +86. Component.ComponentValue gives the
  -- mainland ranges: 13x-19x.
  mobile = { kind = "shape", shape = "1[3-9]" .. string.rep("%d", 9),
    expected = "a valid mobile", explained = "11 digits (mainland China)" },
  -- FlowFileInfo.Deadline: Unix seconds, "ten-digit", at most 33162419560 (year 3020, which is 11 digits).
  unix_seconds = { kind = "whole_range", min = 1000000000, max = 33162419560,
    expected = "a valid unix seconds", explained = "a Unix time in seconds (10 digits, not milliseconds)" },
  -- FlowApproverInfo.IdCardNumber for IdCardType ID_CARD (and HONGKONG_MACAO_AND_TAIWAN, the same format): 18
  -- characters, digits and uppercase X (X only as the check character).
  id_card_18 = { kind = "shape", shape = D17 .. "[%dX]" },
  -- FlowApproverInfo.IdCardNumber for IdCardType HONGKONG_AND_MACAO: 11 characters, H or M then 10 digits.
  hk_macao_pass = { kind = "shape", shape = "[HM]" .. string.rep("%d", 10) },
}

-- The Lua check of each kind, compiled from a format's entry: fmt → function(value) → boolean.
local FORMAT_KINDS = {
  shape = function(fmt)
    local pattern = "^" .. fmt.shape .. "$"
    return function(s) return type(s) == "string" and find(s, pattern) ~= nil end
  end,
  whole_range = function(fmt)
    local lo, hi = fmt.min, fmt.max
    return function(n)
      if type(n) == "string" then n = tonumber(n) end
      return type(n) == "number" and n == floor(n) and n >= lo and n <= hi
    end
  end,
}
function M.compile_format(fmt, name)
  local kind = FORMAT_KINDS[fmt.kind]
  if not kind then error("rules: format " .. tostring(name) .. " has unknown kind " .. tostring(fmt.kind)) end
  return kind(fmt)
end
-- name → the Lua check of M.formats[name]: every declared format compiled now (a bad entry raises at load), and
-- one declared later on first use, so a format is only ever its entry in M.formats.
M.format_check = setmetatable({}, { __index = function(checks, name)
  local fmt = M.formats[name]
  if fmt == nil then return nil end
  local check = M.compile_format(fmt, name)
  rawset(checks, name, check)
  return check
end })
for name in pairs(M.formats) do local _ = M.format_check[name] end

-- FlowApproverInfo.IdCardNumber by FlowApproverInfo.IdCardType (ID_CARD when absent, its documented default):
-- the format of each IdCardType value.
M.id_card_formats = { ID_CARD = "id_card_18", HONGKONG_MACAO_AND_TAIWAN = "id_card_18",
  HONGKONG_AND_MACAO = "hk_macao_pass" }
M.id_card_default_type = "ID_CARD"

-- Whether `number` is a valid ID number of type id_type (nil: the default type); false for an unknown type.
function M.id_card(id_type, number)
  local fmt = M.id_card_formats[id_type or M.id_card_default_type]
  return fmt ~= nil and M.format_check[fmt](number)
end

--------------------------------------------------------------------------------------------------------------
-- Per-member limits, keyed "Struct.Member". Keys of an entry:
--   max_chars/min_chars  length in UTF-8 characters (names are Chinese: characters, not bytes)
--   min_items/max_items  list length
--   min/max              numeric range
--   enum                 name in M.enums (for lists: every element)
--   format               name in M.formats (for lists: every element); allow_zero: 0 also passes
--   code                 preference list (see the top of this file); source: where the text says so
--------------------------------------------------------------------------------------------------------------
local CARD = { "InvalidParameter.CardNumber", "InvalidParameter" }
local MOBILE = { "InvalidParameter.Mobile", "InvalidParameter" }
local COMPONENT_TYPE = { "InvalidParameter.UnsupportedComponentType", "InvalidParameter.ComponentType",
  "InvalidParameter" }
local CANCEL_REASON = { "InvalidParameter.CancelReason", "InvalidParameter.ParamError", "InvalidParameter" }
local FLOW_IDS = { "LimitExceeded.FlowIds", "InvalidParameter.FlowIds", "InvalidParameter.ParamError",
  "InvalidParameter" }

M.limits = {
  -- ChannelCreateFlowGroupByFiles
  ["ChannelCreateFlowGroupByFilesRequest.FlowFileInfos"] = { min_items = 2, max_items = 50,
    code = { "InvalidParameter" },
    source = "ChannelCreateFlowGroupByFilesRequest.FlowFileInfos (at least 2, at most 50 contracts)" },
  -- The text of this member (and of 16 others: FlowName, CancelMessage, RoleName...) also says "只能由中文、字母、
  -- 数字和下划线组成" (Chinese characters, letters, digits and _ only). Not checked here: the official example of
  -- ChannelBatchCancelFlows sends CancelMessage "合同内容错误，需要修正" (a full-width comma) under the same sentence,
  -- so the sentence is not a rule the API is known to enforce, and refusing what the API takes would be worse than
  -- letting it answer.
  ["ChannelCreateFlowGroupByFilesRequest.FlowGroupName"] = { max_chars = 200, code = { "InvalidParameter" },
    source = "ChannelCreateFlowGroupByFilesRequest.FlowGroupName (length at most 200)" },
  ["ChannelCreateFlowGroupByFilesRequest.ApproverVerifyType"] = { enum = "ApproverVerifyType",
    code = { "InvalidParameter.ApproverVerifyType", "InvalidParameter" },
    source = "ChannelCreateFlowGroupByFilesRequest.ApproverVerifyType" },

  ["FlowFileInfo.FileIds"] = { min_items = 1, max_items = 1,
    code = { "InvalidParameter.FlowFileIds", "InvalidParameter" },
    source = "FlowFileInfo.FileIds (only a single file is supported)" },
  ["FlowFileInfo.FlowName"] = { max_chars = 200,
    code = { "InvalidParameter.FlowName", "InvalidParameter" },
    source = "FlowFileInfo.FlowName (at most 200 characters)" },
  ["FlowFileInfo.FlowApprovers"] = { min_items = 1, max_items = 5,
    code = { "InvalidParameter.FlowApprovers", "InvalidParameter" },
    source = "FlowFileInfo.FlowApprovers (at most 5 parties); errors.json InvalidParameter.FlowApprovers" ..
      " (the number of participants may be neither empty nor above the limit)" },
  ["FlowFileInfo.Deadline"] = { format = "unix_seconds", allow_zero = true,
    code = { "InvalidParameter.FlowDeadLine", "InvalidParameter" },
    source = "FlowFileInfo.Deadline (ten-digit Unix seconds, max 33162419560); 0 as in examples.json" },
  ["FlowFileInfo.FlowDescription"] = { max_chars = 1000,
    code = { "InvalidParameter.FlowDescription", "InvalidParameter" },
    source = "FlowFileInfo.FlowDescription (at most 1000 characters)" },
  ["FlowFileInfo.FlowType"] = { max_chars = 255, code = { "InvalidParameter.FlowType", "InvalidParameter" },
    source = "FlowFileInfo.FlowType (at most 255 characters)" },
  ["FlowFileInfo.CustomerData"] = { max_chars = 1000, code = { "InvalidParameter.CustomerData", "InvalidParameter" },
    source = "FlowFileInfo.CustomerData (at most 1000 characters)" },
  ["FlowFileInfo.FlowDisplayType"] = { enum = "FlowDisplayType", code = { "InvalidParameter" },
    source = "FlowFileInfo.FlowDisplayType (0-3)" },

  -- FlowApproverInfo (a signer) and what it contains
  ["FlowApproverInfo.ApproverType"] = { enum = "ApproverType",
    code = { "InvalidParameter.ApproverType", "InvalidParameter" }, source = "FlowApproverInfo.ApproverType" },
  ["FlowApproverInfo.IdCardType"] = { enum = "IdCardType", code = { "InvalidParameter.CardType", "InvalidParameter" },
    source = "FlowApproverInfo.IdCardType" },
  ["FlowApproverInfo.Mobile"] = { format = "mobile", code = MOBILE,
    source = "FlowApproverInfo.Mobile (11 digits, mainland only); Component.ComponentValue (13x-19x)" },
  ["FlowApproverInfo.OpenId"] = { max_chars = 64, code = { "InvalidParameter.OpenId", "InvalidParameter" },
    source = "FlowApproverInfo.OpenId (length at most 64)" },
  ["FlowApproverInfo.OrganizationOpenId"] = { max_chars = 64, code = { "InvalidParameter" },
    source = "FlowApproverInfo.OrganizationOpenId (at most 64 characters)" },
  ["FlowApproverInfo.ComponentLimitType"] = { enum = "ComponentLimitType", code = { "InvalidParameter" },
    source = "FlowApproverInfo.ComponentLimitType" },
  ["FlowApproverInfo.PreReadTime"] = { min = 3, max = 300, code = { "InvalidParameter" },
    source = "FlowApproverInfo.PreReadTime (3 to 300 seconds)" },
  ["FlowApproverInfo.ApproverVerifyTypes"] = { enum = "ApproverVerifyTypes", code = { "InvalidParameter" },
    source = "FlowApproverInfo.ApproverVerifyTypes (1 or 2)" },
  ["FlowApproverInfo.ApproverSignTypes"] = { enum = "ApproverSignTypes", code = { "InvalidParameter" },
    source = "FlowApproverInfo.ApproverSignTypes (1, 2, 3, 5, 6)" },
  ["FlowApproverInfo.NotifyType"] = { enum = "NotifyType", code = { "InvalidParameter" },
    source = "FlowApproverInfo.NotifyType" },
  ["FlowApproverInfo.ApproverRoleName"] = { max_chars = 20, code = { "InvalidParameter" },
    source = "FlowApproverInfo.ApproverRoleName (length at most 20)" },
  ["FlowApproverInfo.SignTypeSelector"] = { enum = "SignTypeSelector", code = { "InvalidParameter" },
    source = "FlowApproverInfo.SignTypeSelector (0 or 1)" },
  ["FlowApproverInfo.SignEndpoints"] = { enum = "SignEndpoints", code = { "InvalidParameter" },
    source = "FlowApproverInfo.SignEndpoints (empty or link)" },
  ["ApproverOption.FillType"] = { enum = "FillType", code = { "InvalidParameter" },
    source = "ApproverOption.FillType (1 = dynamic signer)" },
  ["ApproverOption.FlowReadLimit"] = { enum = "FlowReadLimit", code = { "InvalidParameter" },
    source = "ApproverOption.FlowReadLimit" },
  ["ApproverOption.ApproverMobileMode"] = { enum = "ApproverMobileMode", code = { "InvalidParameter" },
    source = "ApproverOption.ApproverMobileMode" },
  ["ComponentLimit.ComponentType"] = { enum = "ComponentLimitComponentType", code = COMPONENT_TYPE,
    source = "ComponentLimit.ComponentType" },
  ["Component.ComponentType"] = { enum = "ComponentType", code = COMPONENT_TYPE,
    source = "Component.ComponentType" },
  ["Component.GenerateMode"] = { enum = "GenerateMode", code = { "InvalidParameter" },
    source = "Component.GenerateMode" },
  ["Component.KeywordOrder"] = { enum = "KeywordOrder", code = { "InvalidParameter" },
    source = "Component.KeywordOrder" },
  ["Component.RelativeLocation"] = { enum = "RelativeLocation", code = { "InvalidParameter" },
    source = "Component.RelativeLocation" },
  ["Component.ComponentId"] = { max_chars = 30, code = { "InvalidParameter" },
    source = "Component.ComponentId (NORMAL mode: at most 30; a keyword is the whole id)" },
  ["Intention.IntentionType"] = { enum = "IntentionType", code = { "InvalidParameter" },
    source = "Intention.IntentionType (1 or 2)" },
  ["Intention.IntentionQuestions"] = { min_items = 1, max_items = 10, code = { "InvalidParameter" },
    source = "Intention.IntentionQuestions (1 to 10 rounds)" },
  ["Intention.IntentionActions"] = { min_items = 1, max_items = 10, code = { "InvalidParameter" },
    source = "Intention.IntentionActions (1 to 10 rounds)" },
  ["IntentionQuestion.Question"] = { max_chars = 250, code = { "InvalidParameter" },
    source = "IntentionQuestion.Question (at most 250 characters)" },
  ["IntentionAction.Text"] = { max_chars = 150, code = { "InvalidParameter" },
    source = "IntentionAction.Text (at most 150 characters)" },
  ["RuleIdConfig.Speed"] = { enum = "Speed", code = { "InvalidParameter" }, source = "RuleIdConfig.Speed (0-3)" },

  ["Agent.ProxyOrganizationOpenId"] = { max_chars = 64, code = { "InvalidParameter" },
    source = "Agent.ProxyOrganizationOpenId (at most 64 characters)" },
  ["UserInfo.OpenId"] = { max_chars = 64, code = { "InvalidParameter.OpenId", "InvalidParameter" },
    source = "UserInfo.OpenId (at most 64 characters)" },

  -- The sibling actions of the flow-group workflow (digest §3)
  ["ChannelCancelFlowRequest.CancelMessage"] = { max_chars = 200, code = CANCEL_REASON,
    source = "ChannelCancelFlowRequest.CancelMessage (length at most 200)" },
  ["ChannelCancelFlowRequest.CancelMessageFormat"] = { enum = "CancelMessageFormat", code = CANCEL_REASON,
    source = "ChannelCancelFlowRequest.CancelMessageFormat (0-3)" },
  ["ChannelBatchCancelFlowsRequest.FlowIds"] = { min_items = 1, max_items = 100, code = FLOW_IDS,
    source = "ChannelBatchCancelFlowsRequest.FlowIds (at most 100; more are silently not processed)" },
  ["ChannelBatchCancelFlowsRequest.CancelMessage"] = { max_chars = 200, code = CANCEL_REASON,
    source = "ChannelBatchCancelFlowsRequest.CancelMessage (length at most 200)" },
  ["ChannelBatchCancelFlowsRequest.CancelMessageFormat"] = { enum = "CancelMessageFormat", code = CANCEL_REASON,
    source = "ChannelBatchCancelFlowsRequest.CancelMessageFormat (0-3)" },
  ["DescribeCancelFlowsTaskRequest.CancelType"] = { enum = "CancelType", code = { "InvalidParameter" },
    source = "DescribeCancelFlowsTaskRequest.CancelType (0 or 1)" },
  ["CreateSignUrlsRequest.FlowIds"] = { max_items = 100, code = FLOW_IDS,
    source = "CreateSignUrlsRequest.FlowIds (at most 100)" },
  ["CreateSignUrlsRequest.Endpoint"] = { enum = "Endpoint",
    code = { "InvalidParameter.EndPoint", "InvalidParameter" }, source = "CreateSignUrlsRequest.Endpoint" },
  ["CreateSignUrlsRequest.GenerateType"] = { enum = "GenerateType",
    code = { "InvalidParameter.GenerateType", "InvalidParameter" }, source = "CreateSignUrlsRequest.GenerateType" },
  ["CreateSignUrlsRequest.Mobile"] = { format = "mobile", code = MOBILE,
    source = "CreateSignUrlsRequest.Mobile (11 digits, mainland)" },
  ["CreateSignUrlsRequest.IdCardType"] = { enum = "IdCardType",
    code = { "InvalidParameter.CardType", "InvalidParameter" }, source = "CreateSignUrlsRequest.IdCardType" },
  ["CreateSignUrlsRequest.Hides"] = { enum = "Hides", code = { "InvalidParameter" },
    source = "CreateSignUrlsRequest.Hides (0-5)" },
  ["CreateSignUrlsRequest.JumpUrl"] = { max_chars = 1000, code = { "InvalidParameter" },
    source = "CreateSignUrlsRequest.JumpUrl (at most 1000 characters)" },
  ["DescribeFlowDetailInfoRequest.FlowIds"] = { max_items = 100, code = FLOW_IDS,
    source = "DescribeFlowDetailInfoRequest.FlowIds (at most 100)" },
  ["UploadFilesRequest.BusinessType"] = { enum = "BusinessType", code = { "InvalidParameter" },
    source = "UploadFilesRequest.BusinessType" },
  ["UploadFilesRequest.FileInfos"] = { max_items = 20, code = { "InvalidParameter" },
    source = "UploadFilesRequest.FileInfos (at most 20 files per call)" },
  ["UploadFile.FileName"] = { max_chars = 200, code = { "InvalidParameter" },
    source = "UploadFile.FileName (at most 200 characters)" },
}

-- Checks over a whole structure (several members together). The one kind, "format_by": when the member
-- number_field is a string and type_field is absent (then default_type) or one of the keys of formats, the number
-- must pass that type's format; any other type is its enum's problem, not this check's. Both walks compile it.
local ID_CARD_CHECK = { check = "format_by", type_field = "IdCardType", number_field = "IdCardNumber",
  formats = M.id_card_formats, default_type = M.id_card_default_type, path = "IdCardNumber", code = CARD,
  expected = "an ID number matching IdCardType" }
local function id_card_check(source)
  local c = { source = source }
  for k, v in pairs(ID_CARD_CHECK) do c[k] = v end
  return { c }
end
M.struct_checks = {
  FlowApproverInfo = id_card_check("FlowApproverInfo.IdCardNumber (format by IdCardType)"),
  CreateSignUrlsRequest = id_card_check("CreateSignUrlsRequest.IdCardNumber (format by IdCardType)"),
}

--------------------------------------------------------------------------------------------------------------
-- Per-action rules:
--   required  dotted member paths the action's text makes mandatory although the flags may say optional;
--             a missing prefix is reported once (Agent missing → "Agent", not its three members)
--   one_of    groups of members of which at least one must be present
--   forbidden dotted paths ("[]" = every element) that this action does not support
--------------------------------------------------------------------------------------------------------------
local AGENT_FULL = { "Agent.AppId", "Agent.ProxyOrganizationOpenId", "Agent.ProxyOperator.OpenId" }
local AGENT_SOURCE = "Request.Agent document: AppId, ProxyOrganizationOpenId and ProxyOperator.OpenId required here"

M.actions = {
  ChannelCreateFlowGroupByFiles = { required = AGENT_FULL, required_source = AGENT_SOURCE .. "; digest §2.1, §7",
    forbidden = { { path = "FlowFileInfos[].FlowApprovers[].Deadline", code = { "InvalidParameter" },
      source = "FlowApproverInfo.Deadline (not supported for flow-group sub-contracts)" } } },
  ChannelCancelFlow = { required = AGENT_FULL, required_source = AGENT_SOURCE .. "; digest §7" },
  ChannelBatchCancelFlows = { required = AGENT_FULL, required_source = AGENT_SOURCE },
  DescribeCancelFlowsTask = { required = AGENT_FULL, required_source = AGENT_SOURCE },
  UploadFiles = { required = AGENT_FULL, required_source = AGENT_SOURCE },
  CreateSignUrls = { required = AGENT_FULL, required_source = AGENT_SOURCE,
    one_of = { { fields = { "FlowIds", "FlowGroupId" },
      code = { "MissingParameter.FlowIdsOrFlowGroupId", "MissingParameter" },
      source = "CreateSignUrlsRequest.FlowIds / FlowGroupId (one of the two must be given)" } } },
  DescribeFlowDetailInfo = { required = AGENT_FULL, required_source = AGENT_SOURCE,
    one_of = { { fields = { "FlowIds", "FlowGroupId" },
      code = { "MissingParameter.FlowIdsOrFlowGroupId", "MissingParameter" },
      source = "DescribeFlowDetailInfoRequest.FlowIds / FlowGroupId (query a group or a list of flows)" } } },
}

-- Which host an action goes to: UploadFiles must be sent to the file domain (file.ess.tencent.cn, test
-- file.test.ess.tencent.cn) — UploadFiles action document; digest §3.1, §5.1. Every other action: "api".
M.host_kinds = { UploadFiles = "file" }
M.host_kinds_source = "UploadFiles action document (file domain); digest §3.1 and §5.1"

-- Resolve a code preference list against the action's list of possible codes (a set).
function M.pick_code(pref, action_codes)
  if type(pref) == "string" then return pref end
  local n = #pref
  if action_codes then
    for i = 1, n - 1 do
      if action_codes[pref[i]] then return pref[i] end
    end
  end
  return pref[n]
end

-- The wording of each rule: what a validation problem says it expected (validate/walk.lua) and what `essbasic
-- describe` lists as a member's limits (cli/call.lua), so the two cannot say different things. l: a limits entry.
local format, concat, quoted = string.format, table.concat, "%q"
M.expected = {
  max_chars = function(l) return format("at most %d characters", l.max_chars) end,
  min_chars = function(l) return format("at least %d characters", l.min_chars) end,
  items = function(l)
    if l.min_items and l.max_items then return format("%d to %d items", l.min_items, l.max_items) end
    if l.max_items then return format("at most %d items", l.max_items) end
    return format("at least %d items", l.min_items)
  end,
  range = function(l) return format("a number from %s to %s", tostring(l.min), tostring(l.max)) end,
  enum = function(l)
    local list, shown = M.enums[l.enum], {}
    for i = 1, #list do shown[i] = type(list[i]) == "string" and format(quoted, list[i]) or tostring(list[i]) end
    return "one of " .. concat(shown, ", ")
  end,
  format = function(l) return M.formats[l.format].expected .. (l.allow_zero and " (or 0)" or "") end,
  one_of = function(group) return "one of " .. concat(group.fields, ", ") end,
}

-- Every limit of entry l, worded as M.expected words it, in a fixed order.
function M.limit_phrases(l)
  local out, e = {}, M.expected
  if l.min_items or l.max_items then out[#out + 1] = e.items(l) end
  if l.min_chars then out[#out + 1] = e.min_chars(l) end
  if l.max_chars then out[#out + 1] = e.max_chars(l) end
  if l.min or l.max then out[#out + 1] = e.range(l) end
  if l.enum then out[#out + 1] = e.enum(l) end
  if l.format then out[#out + 1] = e.format(l) end
  return out
end

-- What "not set" means, for a disabled member and a one-of group (src/check.c's is_unset is the same): absent,
-- null (json.null, cjson.null), "" or an empty table, the ways SDKs and examples.json write an unset member. A
-- required member is missing when absent, null or "" (a string member); {} there is a type problem instead.
local NULL = require("essbasic.core").json_null
function M.unset(v)
  return v == nil or v == "" or v == NULL or (type(v) == "table" and next(v) == nil)
end

-- Text checks kept here so builders and the validator agree on what a character is: M.text_len(s) → number of
-- UTF-8 characters, or nil, reason ("NUL byte" or "invalid UTF-8"). Overlong forms, surrogates, values above
-- U+10FFFF and truncated sequences are refused. It is the core's one-pass core.utf8_len (src/check.c, the same
-- rules as the C validator); spec/validate_fast_spec.lua holds it to a pure-Lua definition.
M.text_len = require("essbasic.core").utf8_len

return M
