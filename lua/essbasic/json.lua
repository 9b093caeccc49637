-- essbasic's only JSON module: a thin face over the C codec in essbasic.core (see docs/internals.md,
-- "The JSON codec"). Every other module encodes and decodes through here.
--   encode(value [, hint]) -> string, or nil, message naming the path (FlowFileInfos[2].Deadline)
--   decode(s)              -> value, or nil, message naming the byte offset; arrays come back marked
--   array([t])             -> t (or a new table) marked as an array, so an empty one encodes as []
--   is_array(t)            -> true when t carries the array mark (json.array's, or lua-cjson's array_mt or
--                             empty_array_mt)
--   is_empty_array(v)      -> true when v is lua-cjson's empty_array (OpenResty's), which encodes as []
--   null                   -> the JSON null sentinel (decoded null array elements, top-level null); it equals
--                             cjson.null and ngx.null (all three are a light userdata NULL). A null object member
--                             is absent: encode leaves it out, as decode does.
-- Tables that lua-cjson decoded are taken as they are, whichever copy of cjson the program loaded
-- (package.loaded.cjson or cjson.safe): the C codec and the validator know its markers too.

local core = require("essbasic.core")

local type, getmetatable, setmetatable, error, rawget = type, getmetatable, setmetatable, error, rawget
local array_mt = core.json_array_mt
local loaded = package.loaded
local CJSON_MODULES = { "cjson", "cjson.safe" }

-- true when v is field `name` of a loaded cjson module
local function is_cjson(name, v)
  for i = 1, #CJSON_MODULES do
    local m = loaded[CJSON_MODULES[i]]
    if type(m) == "table" and rawget(m, name) == v then return true end
  end
  return false
end

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
  if type(t) ~= "table" then return false end
  local mt = getmetatable(t)
  return mt ~= nil and (mt == array_mt or is_cjson("array_mt", mt) or is_cjson("empty_array_mt", mt))
end

function M.is_empty_array(v)
  return type(v) == "userdata" and v ~= M.null and is_cjson("empty_array", v)
end

return M
