-- The envelopes the sandbox answers with, as the API writes them (essbasic.envelope is the client's reader):
--   success  {"Response": {..., "RequestId": "…"}}
--   failure  {"Response": {"Error": {"Code": "…", "Message": "…"}, "RequestId": "…"}}
-- and the one place that gives a success answer every member of its response structure: the API sends each
-- member of the output structure, with its empty value when there is nothing to say ("" for strings, 0 for
-- numbers, false for booleans, [] for lists, a structure with its own members filled the same way), so a handler
-- writes only what it knows and cannot forget one.

local json = require("essbasic.json")
local api = require("essbasic.api")

local pairs, ipairs, type = pairs, ipairs, type

local M = {}

local EMPTY = { string = "", date = "", int64 = 0, uint64 = 0, float = 0, bool = false }

local complete

-- A member's value: the handler's, completed when it is a structure, or the type's empty value.
local function member(field, v, depth)
  if field.list then
    local list = json.array()
    for i, x in ipairs(type(v) == "table" and v or {}) do
      list[i] = field.struct and complete(field.struct, x, depth + 1) or x
    end
    return list
  end
  if field.struct then return complete(field.struct, v, depth + 1) end
  if v == nil then return EMPTY[field.type] end
  return v
end

-- st: an api.struct entry; t: the handler's table (or nil). Returns a new table (handlers may answer with tables
-- of the state, which must not change). Members outside the structure are copied as they are
-- (spec/helpers/sandbox.lua's conforms_response fails on them), so a handler's mistake shows instead of vanishing.
function complete(st, t, depth)
  local out = {}
  for k, v in pairs(type(t) == "table" and t or {}) do out[k] = v end
  if depth > 8 then return out end -- no output structure nests this deep; a guard against a cycle in the schema
  for name, field in pairs(st.fields) do
    if name ~= "RequestId" then out[name] = member(field, out[name], depth) end
  end
  return out
end

-- The response of `action` with every member of its output structure (a new table).
function M.complete(action, response)
  return complete(api.struct(api.action(action).output), response, 0)
end

function M.error_body(code, message, request_id)
  return json.encode({ Response = { Error = { Code = code, Message = message }, RequestId = request_id } })
end

-- response: the Response members a handler wrote, completed here from the action's output structure.
function M.success_body(action, response, request_id)
  response = M.complete(action, response)
  response.RequestId = request_id
  return json.encode({ Response = response }, { Response = { fields = api.response_hint(action) } })
end

return M
