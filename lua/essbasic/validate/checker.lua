-- The validator's fast path: walk.lua's compiled schema (from rules.lua) described as plain values for the C
-- checker (src/check.c), built once. checker.check(action, params [, encode]) → the C walk's verdict (true, or
-- with encode the request's JSON; false: ask the Lua walk), then true when a member the schema marks disabled
-- carries a value. Every rule of rules.lua is on it (design: docs/internals.md, "Validation").

local api = require("essbasic.api")
local rules = require("essbasic.rules")
local core = require("essbasic.core")
local walk = require("essbasic.validate.walk")

local pairs, ipairs, error = pairs, ipairs, error
local sort = table.sort

local compiled, action_rules, MAX_DEPTH = walk.compiled, walk.action_rules, walk.MAX_DEPTH
local formats = rules.formats
local EMPTY = {}

---------------------------------------------------------------------------------------------------------------
-- The fast path
---------------------------------------------------------------------------------------------------------------
-- Structures numbered in name order, members with their rules resolved to plain values, formats by name beside
-- rules.formats' entries, the format_by check as data; per action with required, forbidden or one-of rules, its
-- own copies of the structures along those paths with the members marked and the one-of groups on its root.
local checker, action_root
do
  local names = {}
  for name in pairs(compiled) do names[#names + 1] = name end
  sort(names)
  local struct_index = {}
  for i, name in ipairs(names) do struct_index[name] = i end
  local desc = { max_depth = MAX_DEPTH, formats = formats }
  for i, name in ipairs(names) do
    local cs = compiled[name]
    local sd = { name = name }
    for j, fname in ipairs(cs.order) do
      local cf = cs.fields[fname]
      local f = { name = fname, kind = cf.scalar or "struct", struct = cf.struct and struct_index[cf.struct.name],
        list = cf.list, disabled = cf.disabled, required = cs.required_set[fname] }
      -- the member's limits entry as rules.lua writes it (so a new limit needs nothing here), its enum as the set
      for k, v in pairs(cf.limit or EMPTY) do
        if k ~= "code" and k ~= "source" then f[k] = v end
      end
      f.enum = cf.enum
      sd[j] = f
    end
    local checks = cs.checks
    if checks then
      if #checks ~= 1 then error("rules: " .. name .. ": src/check.c takes one structure check per structure") end
      local c = checks[1]
      sd.format_by = { type_field = c.type_field, number_field = c.number_field, default_type = c.default_type,
        formats = c.formats }
    end
    desc[i] = sd
  end

  -- A copy of structure description `i` (its member descriptions copied too, so marks stay in the copy).
  local function copy_struct(i)
    local base, copy = desc[i], {}
    for k, v in pairs(base) do copy[k] = v end
    for j = 1, #base do
      local f = {}
      for k, v in pairs(base[j]) do f[k] = v end
      copy[j] = f
    end
    desc[#desc + 1] = copy
    return #desc
  end
  -- Marks the member at the end of path `segs` (from the action's root copy) with mark = true, and with
  -- "required" every member on the way, copying each structure on the way once per action (copies: path
  -- prefix → index).
  local function mark_path(root, copies, segs, mark)
    local i, prefix = root, ""
    for k = 1, #segs do
      local f = desc[i][compiled[desc[i].name].fields[segs[k]].pos]
      if mark == "required" then f.required = true end
      if k == #segs then
        f[mark] = true
      else
        prefix = prefix .. "." .. segs[k]
        if not copies[prefix] then copies[prefix] = copy_struct(f.struct) end
        f.struct = copies[prefix]
        i = f.struct
      end
    end
  end
  action_root = {}
  for _, aname in ipairs(api.actions()) do
    local root = struct_index[api.action(aname).input]
    local ar = action_rules[aname]
    if ar and (#ar.required > 0 or #ar.forbidden > 0 or #ar.one_of > 0) then
      root = copy_struct(root)
      local copies = {}
      for _, segs in ipairs(ar.required) do mark_path(root, copies, segs, "required") end
      for _, fb in ipairs(ar.forbidden) do mark_path(root, copies, fb.segs, "forbidden") end
      if #ar.one_of > 0 then
        local groups = {}
        for g, group in ipairs(ar.one_of) do groups[g] = group.fields end
        desc[root].one_of = groups
      end
    end
    action_root[aname] = root
  end
  checker = core.schema_checker(desc)
end

local M = {}

function M.check(aname, params, encode)
  return checker(action_root[aname], params, encode)
end

return M
