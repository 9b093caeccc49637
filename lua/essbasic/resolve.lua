-- client:resolve(what, store): what became of a creation whose answer was lost (ClientError.OutcomeUnknown), from
-- the flow callbacks the store recorded (callback_store.record) under the call's correlation keys
-- (essbasic.correlate).
--
--   local state, ids = client:resolve(err, store)       -- err: the OutcomeUnknown error of a correlated call
--   state == "created":       ids = { FlowGroupId = ..., FlowIds = { ... in request order }, complete = true }
--                             (complete = false: some ids are not known yet; lookup_error: why, if a lookup failed)
--   state == "not_yet_known": no authenticated callback carried any of the keys (yet); ids = nil
--   nil, err:                 the store (or DescribeFlowDetailInfo) did not answer
--
-- Never "not created": silence proves nothing (a callback may be late, queued, or lost on its way). What counts
-- as proof is one recorded callback, and a callback is recorded only after its signature was checked:
--   * a group (ChannelCreateFlowGroupByFiles / ...ByTemplates) is created whole, so one flow's callback proves the
--     group; the FlowGroupId comes from the message, or from DescribeFlowDetailInfo with that FlowId; the FlowIds
--     of flows without a callback yet come from DescribeFlowDetailInfo by the group, matched by CustomData;
--   * ChannelCreateFlowByFiles: its one flow;
--   * CreateFlowsByTemplates makes its flows one by one (some may fail): each flow is created only when its own
--     callback came; the others stay holes (complete = false), and the state is "created" if any was.
-- `what` may also be the correlation table itself ({ action, keys, agent }, from meta.correlation, a journal...)
-- or a plain list of keys (then treated one flow at a time, with no group lookups).

local errors = require("essbasic.errors")
local correlate = require("essbasic.correlate")
local callback_store = require("essbasic.callback_store")

local type, error, ipairs = type, error, ipairs

local M = {}

M.CREATED = "created"
M.NOT_YET_KNOWN = "not_yet_known"

local function correlation_of(what)
  if type(what) ~= "table" then return nil end
  if type(what.correlation) == "table" then return what.correlation end
  if type(what.keys) == "table" then return what end
  if #what > 0 then return { keys = what } end
  return nil
end

local function store_error(why)
  return errors.new{ kind = "client", code = errors.STORE, message = "the callback store did not answer: "
    .. tostring(why) }
end

-- DescribeFlowDetailInfo → FlowGroupId and CustomData → FlowId, or nil, err.
local function describe(client, agent, request)
  request.Agent = agent
  local resp, err = client:call("DescribeFlowDetailInfo", request)
  if not resp then return nil, err end
  local by_key = {}
  for _, info in ipairs(resp.FlowInfo or {}) do
    if type(info.CustomData) == "string" and info.CustomData ~= "" then by_key[info.CustomData] = info.FlowId end
  end
  return resp.FlowGroupId, by_key
end

local function all_known(flow_ids, n)
  for i = 1, n do if not flow_ids[i] then return false end end
  return true
end

-- A group whose flow callbacks gave `records` (some may be missing) → its id, whether every FlowId is known, and
-- the lookup's error (the group was created all the same); or nil, nil, err when the records disagree.
local function whole_group(client, c, records, flow_ids)
  local group_id, first_flow
  for i = 1, #c.keys do
    local r = records[i]
    if r then
      first_flow = first_flow or r.FlowId
      if r.FlowGroupId and group_id and group_id ~= r.FlowGroupId then
        return nil, nil, errors.new{ kind = "client", code = errors.STORE, message = "the callbacks recorded two "
          .. "groups for one creation's keys: a CustomerData the caller set is not unique" }
      end
      group_id = group_id or r.FlowGroupId
    end
  end
  local complete = group_id ~= nil and all_known(flow_ids, #c.keys)
  if complete or type(c.agent) ~= "table" then return group_id, complete end
  -- A recorded FlowId is ours (its callback was authenticated): its group is this creation's. By FlowIds the
  -- answer lists those flows only; by the group, all of them.
  if not group_id then
    local gid, err = describe(client, c.agent, { FlowIds = { first_flow } })
    if not gid then return nil, false, err end
    group_id = gid
    if all_known(flow_ids, #c.keys) then return group_id, true end
  end
  local gid, by_key = describe(client, c.agent, { FlowGroupId = group_id })
  if not gid then return group_id, false, by_key end
  complete = true
  for i, key in ipairs(c.keys) do
    flow_ids[i] = flow_ids[i] or by_key[key]
    if not flow_ids[i] then complete = false end
  end
  return group_id, complete
end

function M.resolve(client, what, store)
  local c = correlation_of(what)
  if not c then
    error("essbasic: resolve expects an OutcomeUnknown error of a correlated call, its correlation, or a list of "
      .. "keys", 3)
  end
  if not callback_store.is_store(store) or type(store.recall) ~= "function" then
    error("essbasic: resolve expects a callback store that keeps records (callback_store.memory, shared_dict, "
      .. "redis, sqlite)", 3)
  end
  local records, flow_ids, any = {}, {}, false
  for i, key in ipairs(c.keys) do
    if type(key) ~= "string" then error("essbasic: resolve: key " .. i .. " is not a string", 3) end
    local rec, why = callback_store.recall(store, key)
    if rec == nil then return nil, store_error(why) end
    if rec then
      records[i], flow_ids[i], any = rec, rec.FlowId, true
    end
  end
  if not any then return M.NOT_YET_KNOWN end
  local ids = { FlowIds = flow_ids }
  if correlate.GROUP[c.action] then
    local group_id, complete, lookup_error = whole_group(client, c, records, flow_ids)
    if complete == nil then return nil, lookup_error end
    ids.FlowGroupId, ids.complete, ids.lookup_error = group_id, complete, lookup_error
  else
    ids.complete = all_known(flow_ids, #c.keys)
    if c.action == "ChannelCreateFlowByFiles" then ids.FlowId = flow_ids[1] end
  end
  return M.CREATED, ids
end

return M
