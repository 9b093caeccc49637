-- essbasic's only JSON module: a thin face over the C codec in essbasic.core (see docs/internals.md,
-- "The JSON codec"). Every other module encodes and decodes through here.
--   encode(value [, hint]) -> string, or nil, message naming the path (FlowFileInfos[2].Deadline)
--   decode(s)              -> value, or nil, message naming the byte offset; arrays come back marked
--   array([t])             -> t (or a new table) marked as an array, so an empty one encodes as []
--   is_array(t)            -> true when t carries the array mark
--   null                   -> the JSON null sentinel (decoded null array elements, top-level null)

local core = require("essbasic.core")

local type, getmetatable, setmetatable, error = type, getmetatable, setmetatable, error
local array_mt = core.json_array_mt

local M = {
  encode = core.json_encode,
  decode = core.json_decode,
  null = core.json_null,
}

function M.array(t)
  if t == nil then return setmetatable({}, array_mt) end
  if type(t) ~= "table" then error("json.array expects a table or nil, got " .. type(t), 2) end
  local mt = getmetatable(t)
  if mt == array_mt then return t end
  if mt ~= nil then error("json.array: the table already has a metatable", 2) end
  return setmetatable(t, array_mt)
end

function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == array_mt
end

return M
