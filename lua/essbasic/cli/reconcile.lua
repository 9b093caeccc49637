-- Settling a batch's `unknown` rows from the callbacks: `essbasic batch ... --callbacks STORE` (on each run, before
-- anything is sent) and `essbasic batch reconcile --journal run.db --callbacks STORE [--output FILE]` (sends
-- nothing). STORE is the SQLite file `essbasic callback serve --store` writes (callback_store.sqlite): it holds,
-- for each correlation key an authenticated callback carried, the flow's FlowId and FlowGroupId.
--
-- Each send of a row whose flows carry CustomerData recorded its keys in the journal before it went out (an
-- attempt). For an unknown row every attempt is looked up with essbasic.resolve: a proven creation makes the row
-- `done` with the ids its lost answer would have held (FlowGroupId and FlowIds in request order, or FlowId), and
-- `resolved` says so; resolved.complete = false when some id is still missing (a lookup failed, or
-- CreateFlowsByTemplates made only some flows): the row is created all the same and is never sent again. Silence
-- leaves the row `unknown`: never "not created". When two sends of one row were both carried out (a row sent again with
-- --retry-unknown or --resend-unknown-after whose first send's callback came late), the row is done with the
-- first one's ids and `resolved.duplicates` lists the other's: a contract made twice, for a person to cancel.

local callback_store = require("essbasic.callback_store")
local resolve = require("essbasic.resolve")
local json = require("essbasic.json")
local common = require("essbasic.cli.common")

local EXIT, fail = common.EXIT, common.fail
local type, ipairs, pcall, tostring, format = type, ipairs, pcall, tostring, string.format

local M = {}

-- The store of --callbacks, opened; fails the command when the file is not there (a typo would otherwise make an
-- empty store that resolves nothing, silently).
function M.open_store(path)
  local f = io.open(path, "rb")
  if not f then
    fail(EXIT.usage, "--callbacks " .. path .. ": no such file (it is the --store of a running `essbasic callback "
      .. "serve`)")
  end
  f:close()
  local ok, store = pcall(callback_store.sqlite, path)
  if not ok then fail(EXIT.failure, tostring(store)) end
  return store
end

-- What a lost answer would have held, from resolve's ids.
local function response_of(action, ids)
  if action == "ChannelCreateFlowByFiles" then return { FlowId = ids.FlowId } end
  return { FlowGroupId = ids.FlowGroupId, FlowIds = json.array(ids.FlowIds) }
end

-- The attempts of a row that the callbacks prove carried out: { { try, response, complete } ... }, or
-- raises with the store's error (nothing may be decided, or sent, on a store that did not answer).
local function proven(j, client, line)
  local out, seen = {}, {}
  for _, a in ipairs(j:attempts(line)) do
    local c = a.correlation
    -- A send again with the row's own CustomerData carries the same keys: its callbacks cannot be told from the
    -- first send's (the store keeps the first callback of a key), so it counts once.
    local same = type(c) == "table" and type(c.keys) == "table" and table.concat(c.keys, "\0")
    if same and not seen[same] then
      seen[same] = true
      if not client then c.agent = nil end -- no client: no DescribeFlowDetailInfo lookups
      local state, ids = resolve.resolve(client, c, j.store)
      if state == nil then error({ store = true, message = ids and ids.message or tostring(ids) }, 0) end
      if state == resolve.CREATED then
        out[#out + 1] = { try = a.try, response = response_of(c.action, ids), complete = ids.complete }
      end
    end
  end
  return out
end

-- Settles the journal's correlated rows from store. → { resolved = n, duplicates = { line ... }, lines = { line
-- ... resolved } }, or nil and the store's error message.
function M.settle(j, client, store)
  local result = { resolved = 0, duplicates = {}, lines = {} }
  j.store = store
  local ok, err = pcall(j.each_correlated, j, function(r)
    local found = proven(j, client, r.line)
    if #found == 0 then return end
    if r.state == "unknown" then
      local dups = json.array()
      for i = 2, #found do dups[#dups + 1] = found[i].response end
      j:resolved(r.line, found[1].response, { from = "callbacks", try = found[1].try,
        complete = found[1].complete, duplicates = #dups > 0 and dups or nil })
      result.resolved = result.resolved + 1
      result.lines[#result.lines + 1] = r.line
      if #dups > 0 then result.duplicates[#result.duplicates + 1] = r.line end
      return
    end
    -- A done row: the send that made it done (the answered one is its last send) and any other carried out too.
    local had = r.resolved and json.decode(r.resolved) or nil
    local own = type(had) == "table" and had.try or r.tries
    local dups = json.array()
    for _, f in ipairs(found) do
      if f.try ~= own then
        dups[#dups + 1] = f.response
      elseif type(had) == "table" and had.complete == false and f.complete then
        -- settled earlier with an id missing (a lookup failed): now every id is known
        had.complete = nil
        j:resolved(r.line, f.response, had)
      end
    end
    if #dups > 0 then
      local t = type(had) == "table" and had or { from = "answer", try = own }
      if not t.duplicates or #t.duplicates < #dups then
        t.duplicates = dups
        j:duplicated(r.line, t)
      end
      result.duplicates[#result.duplicates + 1] = r.line
    end
  end)
  j.store = nil
  if not ok then
    return nil, type(err) == "table" and (err.message or err.sqlite) or tostring(err)
  end
  return result
end

-- The notice of a settlement, for people (nil when there is nothing to say).
function M.describe(result, line_list)
  local parts = {}
  if result.resolved > 0 then
    parts[#parts + 1] = format("%d unknown rows are done: their callbacks came (lines %s)", result.resolved,
      line_list(result.lines))
  end
  if #result.duplicates > 0 then
    parts[#parts + 1] = format("CREATED TWICE (both sends of the row were carried out; --output lists both "
      .. "creations under resolved.duplicates: cancel one): lines %s", line_list(result.duplicates))
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "\n")
end

return M
