-- The validator's reporting walk: rules.lua's data compiled once into per-structure lookups, and the Lua walk that
-- finds every problem of a request and names it with its path, code and rules.expected's wording (design:
-- docs/internals.md, "Validation"). Tables are iterated raw with `next`; the path of a field is a stack of
-- segments that becomes a string only when a problem is reported. A problem's found masks personal data
-- (found_of, essbasic.personal) unless the run shows it (the client's debug_personal_data).

local api = require("essbasic.api")
local rules = require("essbasic.rules")
local personal = require("essbasic.personal")
local core = require("essbasic.core")
local json = require("essbasic.json")

local type, next, rawget, tostring, error = type, next, rawget, tostring, error
local pairs, ipairs = pairs, ipairs
local floor, huge, min = math.floor, math.huge, math.min
local math_type = math.type -- nil on LuaJIT, where every number is a double
local concat, sort = table.concat, table.sort
local format, lower, sub, byte = string.format, string.lower, string.sub, string.byte

local text_len, pick_code, is_unset, wording = rules.text_len, rules.pick_code, rules.unset, rules.expected
local formats, format_check, enum_sets = rules.formats, rules.format_check, rules.enum_sets
local CODES = rules.codes

-- null (json.null, cjson.null: a light userdata NULL) as an object member means "absent", in a list it is sent as
-- null; lists may carry json.array's or lua-cjson's marks, and cjson.empty_array is an empty list (essbasic.json).
local NULL = core.json_null
local is_array, is_empty_array = json.is_array, json.is_empty_array
local EMPTY = {}

local MAX_PROBLEMS = 100
local MAX_DEPTH = 32          -- the deepest request in the schema nests 5 structures; cycles stop here
local TWO53 = 9007199254740992

local M = { MAX_PROBLEMS = MAX_PROBLEMS, MAX_DEPTH = MAX_DEPTH, CODES = CODES }

---------------------------------------------------------------------------------------------------------------
-- Compiled schema: per struct, its fields with their rules resolved, the required ones as a list
---------------------------------------------------------------------------------------------------------------
local SCALAR = { string = "string", date = "string", int64 = "int", uint64 = "uint", float = "float", bool = "bool" }

local compiled = {}

local function compile(name)
  local st = api.struct(name)
  local cs = { name = name, fields = {}, required = {}, required_set = {}, order = st.order, nfields = #st.order,
    checks = rules.struct_checks[name] }
  for _, c in ipairs(cs.checks or EMPTY) do
    if c.check ~= "format_by" then error("rules: " .. name .. ": unknown structure check " .. tostring(c.check)) end
  end
  compiled[name] = cs
  for pos, fname in ipairs(st.order) do
    local f = st.fields[fname]
    local limit = rules.limits[name .. "." .. fname]
    local cf = { name = fname, pos = pos, list = f.list == true, disabled = f.disabled == true,
      scalar = SCALAR[f.type], type = f.type, limit = limit,
      enum = limit and limit.enum and enum_sets[limit.enum] or nil,
      format = limit and limit.format and format_check[limit.format] or nil }
    if limit and limit.enum and not cf.enum then error("rules: unknown enum " .. limit.enum) end
    if limit and limit.format and not (cf.format and formats[limit.format].expected) then
      error("rules: " .. name .. "." .. fname .. ": format " .. limit.format .. " unknown or without its wording")
    end
    cs.fields[fname] = cf
    if f.required then
      cs.required[#cs.required + 1] = cf
      cs.required_set[fname] = true
    end
  end
  return cs
end

for name in pairs(api.schema.structs) do
  if not compiled[name] then compile(name) end
end
for _, cs in pairs(compiled) do
  for _, cf in pairs(cs.fields) do
    if not cf.scalar then cf.struct = compiled[cf.type] end
  end
end

-- Per-action rules with their dotted paths split into segments once.
local action_rules = {}
local function split_path(p)
  local segs = {}
  for seg in p:gmatch("[^.]+") do segs[#segs + 1] = seg end
  return segs
end
for aname, ar in pairs(rules.actions) do
  local c = { required = {}, one_of = ar.one_of or {}, forbidden = {} }
  for i, p in ipairs(ar.required or {}) do c.required[i] = split_path(p) end
  for i, fb in ipairs(ar.forbidden or {}) do
    -- "Name[]" (every element of the list Name) → name "Name", list true
    local segs, lists = split_path(fb.path), {}
    for k, sg in ipairs(segs) do
      if sub(sg, -2) == "[]" then segs[k], lists[k] = sub(sg, 1, -3), true end
    end
    c.forbidden[i] = { segs = segs, lists = lists, code = fb.code }
  end
  action_rules[aname] = c
end

---------------------------------------------------------------------------------------------------------------
-- The state of one validation run, `r`, passed down the walk (a key's __tostring may run user code that
-- validates too, so nothing of a run lives at module level):
--   seg, pos     path stack: segment (field name or 1-based index) and its sort position
--   problems, n  kept problems, total count
--   codes        set of the action's documented error codes
--   missing      paths already reported missing (struct flags and action rules overlap)
--   visiting     tables on the current path (cycle detection)
--   show         true: personal data shown unmasked (the caller's debug_personal_data)
--   disabled     paths of the disabled members that carry a value (sent, with a warning)
---------------------------------------------------------------------------------------------------------------

local function describe(v)
  local t = type(v)
  if t == "string" then
    local n = #v
    if n == 0 then return 'an empty string' end
    if n <= 40 and text_len(v) then return (format("%q", v):gsub("\\\n", "\\n")) end
    local cut = min(n, 32)
    -- do not cut a UTF-8 sequence in half
    while cut > 0 and cut < n and (byte(v, cut + 1) or 0) >= 0x80 and (byte(v, cut + 1) or 0) < 0xC0 do
      cut = cut - 1
    end
    local head = sub(v, 1, cut)
    if not text_len(head) then return format("a string of %d bytes", n) end
    return format('"%s…" (%d bytes)', head, n)
  elseif t == "number" then
    if math_type and math_type(v) == "float" and v == floor(v) and v > -1e15 and v < 1e15 then
      return format("%.1f", v)
    end
    return tostring(v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    if is_array(v) then return "a list" end
    local k = next(v)
    if k == nil then return "an empty table" end
    if type(k) == "number" then return "a list (table with numeric keys)" end
    return "an object"
  elseif v == NULL then
    return "null"
  end
  return "a " .. t
end

-- What a problem says it found in member `name`: describe(v), where the value of a personal-data member
-- (essbasic.personal) is masked and any other value shaped like an ID number, a mobile or a bank card too, unless
-- the run shows personal data.
local personal_members, mask, scrub = personal.MEMBERS, personal.mask, personal.scrub
local function found_of(r, name, v)
  if r.show then return describe(v) end
  if not personal_members[name] then return scrub(describe(v)) end
  local t = type(v)
  if t == "number" then return mask(v) end
  if t ~= "string" or v == "" then return describe(v) end
  if not text_len(v) then return format("a string of %d bytes", #v) end
  return describe(mask(v))
end

local function path_string(r, d, extra)
  local parts = {}
  for i = 1, d do
    local s = r.seg[i]
    if type(s) == "number" then
      parts[#parts + 1] = "[" .. s .. "]"
    elseif i == 1 then
      parts[#parts + 1] = s
    else
      parts[#parts + 1] = "." .. s
    end
  end
  if extra then parts[#parts + 1] = (d > 0 and "." or "") .. extra end
  return concat(parts)
end

-- d: depth of the path stack that names the offending value; extra: a member name below it (or nil).
-- extra_pos: that member's sort position.
local function report(r, d, code, expected, found, extra, extra_pos, hint)
  r.n = r.n + 1
  if r.n > MAX_PROBLEMS then return end
  local path = path_string(r, d, extra)
  local key = {}
  for i = 1, d do key[i] = r.pos[i] end
  if extra then key[d + 1] = extra_pos or 0 end
  if type(code) ~= "string" then code = pick_code(code, r.codes) end
  local msg = (path == "" and "request" or path) .. ": expected " .. expected .. ", found " .. found
  if hint then msg = msg .. " (" .. hint .. ")" end
  r.problems[#r.problems + 1] = { path = path, code = code, expected = expected, found = found, message = msg,
    hint = hint, _key = key, _seq = r.n }
  return path
end

local function report_missing(r, d, name, p, code)
  local path = path_string(r, d, name)
  if r.missing[path] then return end
  r.missing[path] = true
  report(r, d, code or CODES.missing, "a value (required)", "nothing", name, p)
end

---------------------------------------------------------------------------------------------------------------
-- Did-you-mean
---------------------------------------------------------------------------------------------------------------
local function distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = byte(a, i)
    for j = 1, lb do
      local cost = (ca == byte(b, j)) and 0 or 1
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

-- The closest name among candidates (case-insensitive match first, then edit distance ≤ a third of the length).
local function suggest(name, candidates)
  local lname = lower(name)
  local best, best_d
  for _, c in ipairs(candidates) do
    if lower(c) == lname then return c end
  end
  if #name > 64 then return nil end
  for _, c in ipairs(candidates) do
    local dd = distance(lname, lower(c))
    if dd <= math.max(2, floor(#c / 3)) and (best_d == nil or dd < best_d) then best, best_d = c, dd end
  end
  return best
end
M.suggest = suggest

---------------------------------------------------------------------------------------------------------------
-- The walk
---------------------------------------------------------------------------------------------------------------
local check_struct

-- A whole-structure check c (rules.struct_checks, kind format_by) on table t: true when it finds a problem. It
-- looks only at a string number and a type it has a format for (a bad IdCardType is reported once, by its enum).
local function struct_check_fails(t, c)
  local tv, nv = rawget(t, c.type_field), rawget(t, c.number_field)
  if tv == nil or tv == NULL then tv = c.default_type end
  local fmt = type(nv) == "string" and type(tv) == "string" and c.formats[tv]
  return fmt and not format_check[fmt](nv) or false
end

-- Checks a scalar value v for field cf; the path stack names v at depth d. Returns true when it passed.
local function check_scalar(r, cf, v, d)
  local kind = cf.scalar
  local limit = cf.limit
  if kind == "string" then
    if type(v) ~= "string" then
      report(r, d, CODES.type, "a string", found_of(r, cf.name, v))
      return false
    end
    if v == "" then return true end -- "not set" (see rules.lua); required members are checked apart
    local max_chars = limit and limit.max_chars
    local n
    if max_chars and #v > 4 * max_chars then
      -- certainly too long whatever the encoding: say so without scanning a huge string
      report(r, d, limit.code, wording.max_chars(limit), format("%d bytes", #v))
      return false
    end
    local why
    n, why = text_len(v)
    if not n then
      report(r, d, CODES.type, "valid UTF-8 text without NUL bytes", "a string with " .. (why == "NUL byte" and
        "a NUL byte" or "invalid UTF-8"))
      return false
    end
    if limit == nil then return true end
    if max_chars and n > max_chars then
      report(r, d, limit.code, wording.max_chars(limit), format("%d characters", n))
      return false
    end
    if limit.min_chars and n < limit.min_chars then
      report(r, d, limit.code, wording.min_chars(limit), format("%d characters", n))
      return false
    end
  elseif kind == "int" or kind == "uint" then
    local ok = type(v) == "number"
    if ok and not (math_type and math_type(v) == "integer") then
      -- a float: accepted when it holds an integer exactly (3.0), within the doubles' exact range
      ok = v == floor(v) and v >= -TWO53 and v <= TWO53
    end
    if not ok then
      report(r, d, CODES.type, kind == "int" and "an integer (int64)" or "a non-negative integer (uint64)",
        found_of(r, cf.name, v))
      return false
    end
    if kind == "uint" and v < 0 then
      report(r, d, CODES.type, "a non-negative integer (uint64)", found_of(r, cf.name, v))
      return false
    end
    if limit == nil then return true end
    if limit.min and v < limit.min or limit.max and v > limit.max then
      report(r, d, limit.code, wording.range(limit), found_of(r, cf.name, v))
      return false
    end
  elseif kind == "float" then
    if type(v) ~= "number" or v ~= v or v == huge or v == -huge then
      report(r, d, CODES.type, "a finite number", found_of(r, cf.name, v))
      return false
    end
    if limit == nil then return true end
  else -- bool
    if type(v) ~= "boolean" then
      report(r, d, CODES.type, "a boolean", found_of(r, cf.name, v))
      return false
    end
    return true
  end
  -- enum and format (the value has the right type here)
  local enum = cf.enum
  if enum and not enum[v] then
    report(r, d, limit.code, wording.enum(limit), found_of(r, cf.name, v))
    return false
  end
  local fmt = cf.format
  if fmt and not (limit.allow_zero and v == 0) and not fmt(v) then
    report(r, d, limit.code, wording.format(limit), found_of(r, cf.name, v))
    return false
  end
  return true
end

-- Checks value v of struct type cs; the path stack names v at depth d.
local function check_object(r, cs, v, d)
  if type(v) ~= "table" or is_array(v) then
    report(r, d, CODES.type, "an object (" .. cs.name .. ")", found_of(r, r.seg[d], v))
    return
  end
  if rawget(v, 1) ~= nil then
    -- a list, or a list-like table: one problem, not one per missing member
    report(r, d, CODES.type, "an object (" .. cs.name .. ")", "a table with numeric keys (a list?)")
    return
  end
  check_struct(r, cs, v, d)
end

-- Checks a list value v of field cf at depth d.
local function check_list(r, cf, v, d)
  if is_empty_array(v) then v = EMPTY end
  if type(v) ~= "table" then
    report(r, d, CODES.type, "a list", found_of(r, cf.name, v))
    return
  end
  local n, maxk, badk = 0, 0, nil
  for k in next, v do
    if type(k) == "number" and k >= 1 and k == floor(k) then
      n = n + 1
      if k > maxk then maxk = k end
    else
      badk = k
      break
    end
  end
  if badk ~= nil then
    report(r, d, CODES.type, "a list", type(badk) == "string" and ("an object (key " .. format("%q", badk) .. ")")
      or ("a table with key " .. tostring(badk)))
    return
  end
  if n ~= maxk then
    report(r, d, CODES.type, "a list without holes", format("a sparse table (%d entries, highest index %s)", n,
      tostring(maxk)))
    return
  end
  local limit = cf.limit
  if limit then
    if limit.max_items and n > limit.max_items then
      report(r, d, limit.code, wording.items(limit), format("%d items", n))
      return -- do not walk a list that is too long (it may be huge)
    end
    if limit.min_items and n < limit.min_items then
      report(r, d, limit.code, wording.items(limit), format("%d item%s", n, n == 1 and "" or "s"))
    end
  end
  local d1 = d + 1
  -- a null element is sent as null: the API documents no error for it
  local scalar, cs = cf.scalar, cf.struct
  for i = 1, n do
    r.seg[d1], r.pos[d1] = i, i
    local x = v[i]
    if x ~= NULL then
      if scalar then check_scalar(r, cf, x, d1) else check_object(r, cs, x, d1) end
    end
  end
end

function check_struct(r, cs, t, d)
  if d >= MAX_DEPTH then
    report(r, d, CODES.type, "nesting at most " .. MAX_DEPTH .. " levels deep", "deeper nesting")
    return
  end
  if r.visiting[t] then
    report(r, d, CODES.type, "a tree of tables", "a cycle (this table contains itself)")
    return
  end
  r.visiting[t] = true
  local fields = cs.fields
  local d1 = d + 1
  local bad_key_reported = false
  for k, v in next, t do
    local cf = fields[k]
    if v == NULL then -- luacheck: ignore 542
      -- a null member is absent, whatever its name (the official SDKs drop null members)
    elseif cf then
      r.seg[d1], r.pos[d1] = k, cf.pos
      -- a disabled member: "" and {} are how SDKs and examples.json write "not set"; a value is checked like any
      -- member's, sent, and named in the client's warning (docs/builders.md, "What validation refuses")
      local unset = cf.disabled and is_unset(v)
      if cf.disabled and not unset then r.disabled[#r.disabled + 1] = path_string(r, d1) end
      if unset then -- luacheck: ignore 542
        -- nothing to check
      elseif cf.list then
        check_list(r, cf, v, d1)
      elseif cf.scalar then
        check_scalar(r, cf, v, d1)
      else
        check_object(r, cf.struct, v, d1)
      end
    elseif type(k) ~= "string" then
      if not bad_key_reported then
        bad_key_reported = true
        report(r, d, CODES.type, "an object (" .. cs.name .. ") with string keys",
          "a table with key " .. tostring(k) .. (type(k) == "number" and " (a list?)" or ""))
      end
    else
      local s = suggest(k, cs.order)
      report(r, d, CODES.unknown, "a member of " .. cs.name, "unknown member " .. format("%q", k), k,
        cs.nfields + 1, s and ("did you mean " .. s .. "?") or nil)
    end
  end
  local req = cs.required
  for i = 1, #req do
    local cf = req[i]
    local v = rawget(t, cf.name)
    if v == nil or v == NULL or (v == "" and cf.scalar == "string") then report_missing(r, d, cf.name, cf.pos) end
  end
  local checks = cs.checks
  if checks then
    for i = 1, #checks do
      local c = checks[i]
      if struct_check_fails(t, c) then
        report(r, d, c.code, c.expected, found_of(r, c.number_field, rawget(t, c.number_field)), c.path,
          fields[c.path].pos)
      end
    end
  end
  r.visiting[t] = nil
end

-- Action rules: required paths, one-of groups, forbidden paths. The request table is at depth 0.
local function walk_forbidden(r, t, segs, i, d, rule)
  if type(t) ~= "table" then return end
  local name, list = segs[i], rule.lists[i]
  local v = rawget(t, name)
  if v == nil or v == NULL then return end
  local d1 = d + 1
  r.seg[d1], r.pos[d1] = name, 0
  if i == #segs then
    report(r, d1, rule.code, "no value (not supported by this action)", found_of(r, name, v))
  elseif list then
    if type(v) ~= "table" then return end
    local d2 = d1 + 1
    for k = 1, #v do
      r.seg[d2], r.pos[d2] = k, k
      walk_forbidden(r, v[k], segs, i + 1, d2, rule)
    end
  else
    walk_forbidden(r, v, segs, i + 1, d1, rule)
  end
end

local function check_action_rules(r, aname, params)
  local ar = action_rules[aname]
  if not ar then return end
  local req = ar.required
  for k = 1, #req do
    local segs = req[k]
    local t, d = params, 0
    for i = 1, #segs do
      local v = rawget(t, segs[i])
      if v == nil or v == "" or v == NULL then
        report_missing(r, d, segs[i], 0)
        break
      end
      if i < #segs then
        -- not an object: a type problem, already reported
        if type(v) ~= "table" or rawget(v, 1) ~= nil or is_array(v) then break end
        d = d + 1
        r.seg[d], r.pos[d] = segs[i], 0
        t = v
      end
    end
  end
  for _, g in ipairs(ar.one_of) do
    local any = false
    for _, f in ipairs(g.fields) do
      if not is_unset(rawget(params, f)) then any = true end
    end
    if not any then
      report(r, 0, g.code, wording.one_of(g), "none of them", nil, nil)
    end
  end
  for _, fb in ipairs(ar.forbidden) do walk_forbidden(r, params, fb.segs, 1, 0, fb) end
end

-- Runs walk(x, y) with fresh run state (error_set: the action's codes, or nil; shows: personal data unmasked)
-- → the problems kept, their total count, and the sorted paths of the disabled members that carry a value (nil
-- when none).
local function with_state(error_set, walk, x, y, shows)
  local r = { seg = {}, pos = {}, problems = {}, n = 0, codes = error_set, missing = {}, visiting = {},
    show = shows == true, disabled = {} }
  walk(r, x, y)
  local list, total, disabled = r.problems, r.n, r.disabled
  if #disabled == 0 then return list, total, nil end
  sort(disabled)
  return list, total, disabled
end

local function walk_request(r, aname, params)
  local cs = compiled[api.action(aname).input]
  if is_array(params) then
    report(r, 0, CODES.type, "an object (" .. cs.name .. ")", "a list")
  else
    check_struct(r, cs, params, 0)
    check_action_rules(r, aname, params)
  end
end

local function walk_member(r, cf, value)
  r.seg[1], r.pos[1] = cf.name, cf.pos
  if cf.list then check_list(r, cf, value, 1)
  elseif cf.scalar then check_scalar(r, cf, value, 1)
  else check_object(r, cf.struct, value, 1) end
end


M.compiled = compiled         -- struct name → its compiled view (fields with their rules resolved)
M.action_rules = action_rules -- action name → { required = {segs}, one_of = {groups}, forbidden = {rules} }
M.run = with_state
M.request = walk_request
M.member = walk_member

return M
