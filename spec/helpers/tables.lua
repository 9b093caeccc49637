-- Table helpers for specs.
local M = {}

-- A deep copy of v that keeps each table's metatable (json.array marks, cjson's).
function M.deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = M.deep_copy(x) end
  return setmetatable(t, getmetatable(v))
end

return M
