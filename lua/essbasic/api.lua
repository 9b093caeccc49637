-- Lookups over the generated schema and the hand-written rules. Builds, once, its own index over the generated
-- schema (which it leaves as generated: facts only): per structure a copy that also holds its name, whose
-- struct-typed fields are copies linked to their structure (`field.struct`, and `field.fields` = that
-- structure's fields, which is the shape hint the JSON encoder takes); per action a copy with its name and its
-- error codes as a set. The index has cycles through these links; nothing here walks it recursively.

local schema = require("essbasic.schema")
local rules = require("essbasic.rules")

local pairs, type, error = pairs, type, error

local function shallow_copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A scalar field's entry is the generated one itself (nothing is added to it); a struct-typed field gets a copy
-- that carries the links.
local structs, actions = {}, {}
for name, st in pairs(schema.structs) do
  local entry = shallow_copy(st)
  entry.name, entry.fields = name, {}
  for fname, field in pairs(st.fields) do
    entry.fields[fname] = schema.structs[field.type] and shallow_copy(field) or field
  end
  structs[name] = entry
end
for _, st in pairs(structs) do
  for _, field in pairs(st.fields) do
    local target = structs[field.type]
    if target then
      field.struct = target
      field.fields = target.fields
    end
  end
end

-- Per action: its name, and its error codes as a set (the validator picks codes from it).
for name, a in pairs(schema.actions) do
  local entry = shallow_copy(a)
  entry.name = name
  local set = {}
  for _, code in pairs(a.errors or {}) do set[code] = true end
  entry.error_set = set
  actions[name] = entry
end

local names = require("essbasic.tables").sorted_keys(actions)

local M = {
  version = schema.version,
  service = schema.service,
  schema = schema, -- the generated facts, as generated (read only)
  rules = rules,
}

local function check_name(name)
  if type(name) ~= "string" then error("action name must be a string", 3) end
end

-- Returns the action entry ({input, output, status, readonly, errors, error_set, name}) or nil.
function M.action(name)
  check_name(name)
  return actions[name]
end

-- Returns the structure entry ({kind, order, fields, name}) or nil.
function M.struct(name)
  if type(name) ~= "string" then error("struct name must be a string", 2) end
  return structs[name]
end

-- The encoder's shape hint for an action's request (the request structure's linked `fields`), or nil.
function M.request_hint(name)
  check_name(name)
  local a = actions[name]
  return a and structs[a.input].fields
end

function M.response_hint(name)
  check_name(name)
  local a = actions[name]
  return a and structs[a.output].fields
end

-- Sorted list of every action name (a fresh copy: callers may keep or change it).
function M.actions()
  local copy = {}
  for i = 1, #names do copy[i] = names[i] end
  return copy
end

function M.is_readonly(name)
  check_name(name)
  local a = actions[name]
  return a ~= nil and a.readonly == true
end

-- "file" for actions that must go to the file domain (UploadFiles), "api" for the rest; nil for unknown names.
function M.host_kind(name)
  check_name(name)
  if not actions[name] then return nil end
  return rules.host_kinds[name] or "api"
end

return M
