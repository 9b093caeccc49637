-- Correlation keys: a creation whose answer was lost (ClientError.OutcomeUnknown) can still be found, because the
-- API echoes one thing back on its own: each flow's CustomerData arrives, with the flow's id, in the callbacks
-- Tencent sends for that flow (and in DescribeFlowDetailInfo's CustomData). With `correlate = true` (on
-- essbasic.new or per call) every flow of a creating call carries a key there:
--   * CustomerData left empty (nil or ""): the client fills it with a key of its own, "ess1:" and 22 characters of
--     base64url (16 bytes of OpenSSL's RAND_bytes): short, and unguessable, so no one else's flow echoes it;
--   * CustomerData set by the caller: that value is the key (the caller makes it unique, e.g. their own row id).
-- The caller's params are never modified: the filled-in flows are copies. The call's metadata (a success's third
-- value) and its OutcomeUnknown error carry `correlation = { action, keys, agent }`, keys in request order;
-- client:resolve (essbasic.resolve) turns them into ids once the callbacks arrived.

local core = require("essbasic.core")

local type, pairs, getmetatable, setmetatable = type, pairs, getmetatable, setmetatable
local gsub = string.gsub

local M = {}

M.PREFIX = "ess1:"

-- The creating actions whose flows carry CustomerData (every one in the schema; PrepareFlows, deprecated, creates
-- no flow itself): false = the request is the one flow; a name = the request's list of flows.
M.FLOWS = {
  ChannelCreateFlowByFiles = false,
  ChannelCreateFlowGroupByFiles = "FlowFileInfos",
  ChannelCreateFlowGroupByTemplates = "FlowInfos",
  CreateFlowsByTemplates = "FlowInfos",
}

-- The actions that make one group of all their flows (its id is the answer's FlowGroupId).
M.GROUP = { ChannelCreateFlowGroupByFiles = true, ChannelCreateFlowGroupByTemplates = true }

local BASE64URL = { ["+"] = "-", ["/"] = "_", ["="] = "" }

-- A fresh key: "ess1:" .. base64url(16 random bytes), 27 characters.
function M.new_key()
  return M.PREFIX .. gsub(core.base64_encode(core.random_bytes(16)), "[+/=]", BASE64URL)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return setmetatable(c, getmetatable(t))
end

-- The flow with its key (a copy when the key is new), and the key; nil when CustomerData is not a string (the
-- validation refuses the request before it leaves).
local function keyed(flow)
  local given = flow.CustomerData
  if type(given) == "string" and given ~= "" then return flow, given end
  if given ~= nil and given ~= "" then return nil end
  local key = M.new_key()
  local c = copy(flow)
  c.CustomerData = key
  return c, key
end

-- params with a key in every flow, and { action, keys, agent }; or params and nil when the action makes no flows
-- or the request is malformed (left to the validation).
function M.apply(action, params)
  local where = M.FLOWS[action]
  if where == nil or type(params) ~= "table" then return params, nil end
  local keys = {}
  local out
  if where == false then
    local key
    out, key = keyed(params)
    if not out then return params, nil end
    keys[1] = key
  else
    local flows = params[where]
    if type(flows) ~= "table" or #flows == 0 then return params, nil end
    local list = copy(flows)
    for i = 1, #flows do
      if type(flows[i]) ~= "table" then return params, nil end
      local flow, key = keyed(flows[i])
      if not flow then return params, nil end
      list[i], keys[i] = flow, key
    end
    out = copy(params)
    out[where] = list
  end
  return out, { action = action, keys = keys, agent = params.Agent }
end

-- The params a call sends and its correlation (nil when it does not correlate): the call's own option
-- `correlate`, else the client's (off by default).
function M.params(client, action, params, call_opts)
  local want = call_opts and call_opts.correlate
  if want == nil then want = client.correlate end
  if want ~= true then return params, nil end
  return M.apply(action, params)
end

return M
