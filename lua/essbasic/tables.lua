-- Table helpers for the modules that share nothing else (flow, client, api, the schema generator).

local pairs, sort = pairs, table.sort

local M = {}

-- The keys of t, sorted: a hash table in a stable order (generated files, option lists, messages).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  return keys
end

return M
