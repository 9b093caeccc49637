#!/usr/bin/env lua5.4
-- Generates lua/essbasic/schema.lua (data only), docs/reference.md and the test fact file from the official
-- tccli api.json of essbasic 2021-05-26 (plus the Go SDK's per-action error lists). Development time only: the
-- module never reads api.json at run time. Run through `make schema`.
--
-- Usage: lua5.4 tools/gen_schema.lua API_JSON [--errors ACTION_ERRORS_JSON] [--schema OUT] [--reference OUT]
--                                             [--facts OUT] [--types OUT]
-- --types writes the LuaCATS annotations (library/essbasic.lua, for lua-language-server): needs essbasic.client
-- on package.path (the options of essbasic.new are its OPTIONS).
-- Needs essbasic.core (json_decode) on LUA_CPATH and lua/ on LUA_PATH (for essbasic.rules, used in the reference).

local core = require("essbasic.core")
local rules = require("essbasic.rules")

local concat, sort, insert = table.concat, table.sort, table.insert
local format = string.format

local SCALARS = { string = true, int64 = true, uint64 = true, float = true, bool = true, date = true }

-- Which actions only read. Rule: the name starts with Describe, Get, ChannelDescribe or ChannelGet (queries by
-- the API's own naming), plus ChannelVerifyPdf (it checks a signed PDF and changes nothing). Every other name
-- was read in the list of 100: Create*/Channel*Create* make links, tasks or flows; Cancel*, Delete*, Modify*,
-- Operate*, Sync*, Prepare*, Archive*, Upload*, ChannelDisable*, ChannelUpdate*, ChannelRenew* change state.
-- Create…Url actions are left out on purpose: each call mints a new link or task on the server.
local READONLY_PREFIXES = { "Describe", "Get", "ChannelDescribe", "ChannelGet" }
local READONLY_EXTRA = { ChannelVerifyPdf = true }

local function is_readonly(name)
  if READONLY_EXTRA[name] then return true end
  for _, p in ipairs(READONLY_PREFIXES) do
    if name:sub(1, #p) == p then return true end
  end
  return false
end

local function die(msg)
  io.stderr:write("gen_schema: ", msg, "\n")
  os.exit(1)
end

local function read_json(path)
  local f, err = io.open(path, "rb")
  if not f then die(err) end
  local s = f:read("a")
  f:close()
  local v, derr = core.json_decode(s)
  if v == nil then die(path .. ": " .. tostring(derr)) end
  return v
end

local sorted_keys = require("essbasic.tables").sorted_keys

local function write_file(path, text)
  local tmp = path .. ".new"
  local f, err = io.open(tmp, "wb")
  if not f then die(err) end
  f:write(text)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then die(rerr) end
end

---------------------------------------------------------------------------------------------------------------
-- Arguments
---------------------------------------------------------------------------------------------------------------
local api_path
local opts = {}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--errors" or a == "--schema" or a == "--reference" or a == "--facts" or a == "--error-texts"
      or a == "--codes" or a == "--types" then
      opts[a:sub(3)] = arg[i + 1] or die(a .. " needs a path")
      i = i + 2
    elseif a:sub(1, 2) == "--" then
      die("unknown option " .. a)
    else
      api_path = a
      i = i + 1
    end
  end
end
if not api_path then
  die("usage: gen_schema.lua API_JSON [--errors F] [--schema OUT] [--reference OUT] [--facts OUT] [--types OUT]")
end
if not opts.errors then
  local guess = api_path:gsub("%.api%.json$", ".action-errors.json")
  if guess ~= api_path and io.open(guess, "rb") then opts.errors = guess end
end

local api = read_json(api_path)
local action_errors = opts.errors and read_json(opts.errors) or nil
local api_file = api_path:match("[^/]+$")
local version = api.metadata.apiVersion
local service = api.metadata.serviceShortName

---------------------------------------------------------------------------------------------------------------
-- Build the schema (facts only: names, types, flags; no document text)
---------------------------------------------------------------------------------------------------------------
local kind_of = {}
for _, a in pairs(api.actions) do
  kind_of[a.input] = "request"
  kind_of[a.output] = "response"
end

local function member_type(m)
  -- tccli: type is string/int/float/bool/object/list; the element or scalar type is in `member`
  local t = m.member
  if SCALARS[t] then return t end
  if api.objects[t] == nil then die("member " .. m.name .. " refers to unknown type " .. tostring(t)) end
  return t
end

local schema = { version = version, service = service, actions = {}, structs = {} }

for name, a in pairs(api.actions) do
  local entry = { input = a.input, output = a.output, status = a.status, readonly = is_readonly(name) }
  if action_errors then
    local codes = action_errors[name]
    if not codes then die("no error list for action " .. name) end
    local copy = {}
    for i = 1, #codes do copy[i] = codes[i] end
    sort(copy)
    entry.errors = copy
  end
  schema.actions[name] = entry
end

for name, o in pairs(api.objects) do
  local st = { kind = kind_of[name] or "data", order = {}, fields = {} }
  for i, m in ipairs(o.members) do
    st.order[i] = m.name
    local f = { type = member_type(m) }
    if m.type == "list" then f.list = true end
    if m.required == true then f.required = true end
    if m.disabled == true then f.disabled = true end
    if m.output_required == true then f.output_required = true end
    if m.value_allowed_null == true then f.nullable = true end
    if st.fields[m.name] then die("duplicate member " .. name .. "." .. m.name) end
    st.fields[m.name] = f
  end
  schema.structs[name] = st
end

---------------------------------------------------------------------------------------------------------------
-- Lua serialisation: sorted keys, so regenerating gives no diff
---------------------------------------------------------------------------------------------------------------
local function lua_string(s)
  return format("%q", s)
end

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function inline(v)
  local t = type(v)
  if t == "string" then return lua_string(v) end
  if t == "boolean" or t == "number" then return tostring(v) end
  local parts = {}
  if #v > 0 or next(v) == nil then
    for i = 1, #v do parts[i] = inline(v[i]) end
  else
    -- fixed key order for the small field tables: type first, then flags alphabetically
    local keys = sorted_keys(v)
    if v.type ~= nil then
      for i, k in ipairs(keys) do if k == "type" then table.remove(keys, i) break end end
      insert(keys, 1, "type")
    end
    for _, k in ipairs(keys) do
      parts[#parts + 1] = (is_ident(k) and k or "[" .. lua_string(k) .. "]") .. " = " .. inline(v[k])
    end
  end
  return "{ " .. concat(parts, ", ") .. " }"
end

local function key(k)
  return is_ident(k) and k or "[" .. lua_string(k) .. "]"
end

local function emit_schema()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("-- GENERATED by tools/gen_schema.lua from " .. api_file .. (opts.errors and
    (" and " .. opts.errors:match("[^/]+$")) or "") .. " (make schema). Do not edit.\n")
  w("-- Facts only: member names, types, list/required/disabled flags, action status and error codes.\n")
  w("return {\n")
  w("  version = " .. lua_string(version) .. ", service = " .. lua_string(service) .. ",\n")
  w("  actions = {\n")
  for _, name in ipairs(sorted_keys(schema.actions)) do
    local a = schema.actions[name]
    w("    " .. key(name) .. " = { input = " .. lua_string(a.input) .. ", output = " .. lua_string(a.output) ..
      ", status = " .. lua_string(a.status) .. ", readonly = " .. tostring(a.readonly) .. ",\n")
    if a.errors then w("      errors = " .. inline(a.errors) .. ",\n") end
    w("    },\n")
  end
  w("  },\n")
  w("  structs = {\n")
  for _, name in ipairs(sorted_keys(schema.structs)) do
    local st = schema.structs[name]
    w("    " .. key(name) .. " = {\n")
    w("      kind = " .. lua_string(st.kind) .. ",\n")
    w("      order = " .. inline(st.order) .. ",\n")
    w("      fields = {\n")
    for _, fname in ipairs(sorted_keys(st.fields)) do
      w("        " .. key(fname) .. " = " .. inline(st.fields[fname]) .. ",\n")
    end
    w("      },\n")
    w("    },\n")
  end
  w("  },\n")
  w("}\n")
  return concat(out)
end

---------------------------------------------------------------------------------------------------------------
-- Facts for spec/schema_spec.lua, computed straight from api.json (not from the schema tables above), so the
-- test compares two independent readings of the spec.
---------------------------------------------------------------------------------------------------------------
local function emit_facts()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("-- GENERATED by tools/gen_schema.lua --facts from " .. api_file .. ": what spec/schema_spec.lua checks the\n")
  w("-- committed schema against (the tests must run without the spec files).\n")
  w("-- luacheck: no max line length\n")
  w("return {\n")
  w("  action_count = " .. #sorted_keys(api.actions) .. ", object_count = " .. #sorted_keys(api.objects) .. ",\n")
  w("  actions = {\n")
  for _, name in ipairs(sorted_keys(api.actions)) do
    local a = api.actions[name]
    w("    " .. key(name) .. " = { " .. lua_string(a.input) .. ", " .. lua_string(a.output) .. ", " ..
      lua_string(a.status) .. " },\n")
  end
  w("  },\n")
  -- per object: the members as "Name:jsontype:member[:R][:D]" in spec order
  w("  objects = {\n")
  for _, name in ipairs(sorted_keys(api.objects)) do
    local sig = {}
    for i, m in ipairs(api.objects[name].members) do
      sig[i] = m.name .. ":" .. m.type .. ":" .. m.member .. (m.required == true and ":R" or "") ..
        (m.disabled == true and ":D" or "")
    end
    w("    " .. key(name) .. " = " .. inline(sig) .. ",\n")
  end
  w("  },\n")
  w("}\n")
  return concat(out)
end

---------------------------------------------------------------------------------------------------------------
-- docs/reference.md
---------------------------------------------------------------------------------------------------------------
local function anchor(name)
  return name:lower()
end

local function describe_rule(struct, field)
  local notes = {}
  local r = rules.limits[struct .. "." .. field]
  if r then
    if r.enum then
      local vals = {}
      for i, v in ipairs(rules.enums[r.enum]) do
        vals[i] = type(v) == "string" and ("`" .. (v == "" and '""' or v) .. "`") or tostring(v)
      end
      notes[#notes + 1] = "one of " .. concat(vals, ", ")
    end
    if r.min_items and r.max_items then
      notes[#notes + 1] = r.min_items == r.max_items and (r.min_items .. " item(s) exactly") or
        (r.min_items .. "–" .. r.max_items .. " items")
    elseif r.max_items then
      notes[#notes + 1] = "at most " .. r.max_items .. " items"
    end
    if r.max_chars then notes[#notes + 1] = "at most " .. r.max_chars .. " characters" end
    if r.min and r.max then notes[#notes + 1] = r.min .. "–" .. r.max end
    if r.format then notes[#notes + 1] = "format: " .. r.format end
  end
  return concat(notes, "; ")
end

local function type_cell(f)
  if SCALARS[f.type] then return f.type end
  return "[" .. f.type .. "](#" .. anchor(f.type) .. ")"
end

local function struct_table(w, name, response)
  local st = schema.structs[name]
  if #st.order == 0 then
    w("(no members)\n\n")
    return
  end
  if response then
    w("| Member | Type | List | Always present | Nullable |\n|---|---|---|---|---|\n")
  else
    w("| Member | Type | List | Required | Disabled | Rules (rules.lua) |\n|---|---|---|---|---|---|\n")
  end
  for _, fname in ipairs(st.order) do
    local f = st.fields[fname]
    if response then
      w(format("| %s | %s | %s | %s | %s |\n", fname, type_cell(f), f.list and "yes" or "", f.output_required and
        "yes" or "", f.nullable and "yes" or ""))
    else
      w(format("| %s | %s | %s | %s | %s | %s |\n", fname, type_cell(f), f.list and "yes" or "",
        f.required and "yes" or "", f.disabled and "yes" or "", describe_rule(name, fname)))
    end
  end
  w("\n")
end

local function emit_reference()
  local out = {}
  local function w(s) out[#out + 1] = s end
  local actions = sorted_keys(schema.actions)
  local data = {}
  for _, name in ipairs(sorted_keys(schema.structs)) do
    if schema.structs[name].kind == "data" then data[#data + 1] = name end
  end
  w("<!-- GENERATED by tools/gen_schema.lua from " .. api_file .. " (make schema). Do not edit. -->\n\n")
  w("# essbasic " .. version .. " reference: actions and structures\n\n")
  w(format("%d actions and %d data structures, generated from the official API description. Member names, " ..
    "types and flags come from the spec; the Rules column lists the constraints that the spec states only in " ..
    "prose, as kept in `lua/essbasic/rules.lua` and checked by the validator. Member meanings are in Tencent's " ..
    "API documentation.\n\n", #actions, #data))
  w("Types: `string`, `int64`, `uint64`, `float`, `bool`, `date` (a string), or a structure. List = a JSON " ..
    "array of that type. Read-only actions only query (retries are safe).\n\n")
  w("## Index\n\n### Actions\n\n")
  for _, name in ipairs(actions) do
    local a = schema.actions[name]
    local tags = {}
    if a.status ~= "online" then tags[#tags + 1] = a.status end
    if a.readonly then tags[#tags + 1] = "read-only" end
    if rules.host_kinds[name] then tags[#tags + 1] = rules.host_kinds[name] .. " domain" end
    w("- [" .. name .. "](#" .. anchor(name) .. ")" .. (#tags > 0 and (" (" .. concat(tags, ", ") .. ")") or "")
      .. "\n")
  end
  w("\n### Structures\n\n")
  for _, name in ipairs(data) do w("- [" .. name .. "](#" .. anchor(name) .. ")\n") end
  w("\n## Actions\n\n")
  for _, name in ipairs(actions) do
    local a = schema.actions[name]
    w("### " .. name .. "\n\n")
    w("Status: " .. a.status .. ". Read-only: " .. (a.readonly and "yes" or "no") .. ". Host: " ..
      (rules.host_kinds[name] or "api") .. ".\n\n")
    w("Request (`" .. a.input .. "`):\n\n")
    struct_table(w, a.input, false)
    local ar = rules.actions[name]
    if ar then
      if ar.required then w("Also required by this action's text: " .. concat(ar.required, ", ") .. ".\n\n") end
      for _, g in ipairs(ar.one_of or {}) do w("At least one of: " .. concat(g.fields, ", ") .. ".\n\n") end
      for _, fb in ipairs(ar.forbidden or {}) do w("Not supported here: " .. fb.path .. ".\n\n") end
    end
    w("Response (`" .. a.output .. "`):\n\n")
    struct_table(w, a.output, true)
  end
  w("## Structures\n\n")
  for _, name in ipairs(data) do
    w("### " .. name .. "\n\n")
    struct_table(w, name, false)
  end
  return concat(out)
end

-- The error codes' documented descriptions (essbasic-2021-05-26.errors.json: code → zh-CN text), for the sandbox's
-- zh-CN error messages (sandbox/error_texts.lua). --codes names the file; by default it sits beside API_JSON.
local function emit_error_texts()
  local path = opts.codes or api_path:gsub("%.api%.json$", ".errors.json")
  local texts = read_json(path)
  local codes = {}
  for code in pairs(texts) do codes[#codes + 1] = code end
  sort(codes)
  local out = {
    "-- GENERATED by tools/gen_schema.lua from " .. path:match("[^/]+$") .. " (make schema). Do not edit.\n",
    "-- Each error code's description as the API documents it (zh-CN).\nreturn {\n" }
  for _, code in ipairs(codes) do out[#out + 1] = "  " .. key(code) .. " = " .. lua_string(texts[code]) .. ",\n" end
  out[#out + 1] = "}\n"
  return concat(out)
end

-- Anchors are lowercased names: make sure no action and structure collide.
do
  local seen = {}
  for name in pairs(schema.actions) do seen[anchor(name)] = name end
  for name, st in pairs(schema.structs) do
    if st.kind == "data" and seen[anchor(name)] then die("anchor collision: " .. name) end
  end
end

---------------------------------------------------------------------------------------------------------------
-- LuaCATS annotations (--types): a class per structure, request and response, essbasic.Client's method per action,
-- essbasic.new's options. Descriptions: the first line of the API description's text, as docs/reference.md.
---------------------------------------------------------------------------------------------------------------
local CATS_SCALARS = { string = "string", int64 = "integer", uint64 = "integer", float = "number", bool = "boolean",
  date = "string" }

local function cats_doc(text)
  local line = tostring(text or ""):gsub("<br/?>", " "):gsub("<[^>]*>", ""):match("^%s*([^\n]*)") or ""
  line = line:gsub("%s+$", "")
  if #line > 200 then line = line:sub(1, 200):gsub("[\128-\191]*$", ""):gsub("[\192-\255]$", "") .. "..." end
  return line
end

-- The description's first line as a doc comment, when there is one.
local function cats_comment(w, text)
  local doc = cats_doc(text)
  if doc ~= "" then w("---" .. doc .. "\n") end
end

local function cats_type(f)
  local t = CATS_SCALARS[f.type] or ("essbasic." .. f.type)
  return f.list and (t .. "[]") or t
end

local function emit_types()
  local client = require("essbasic.client")
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("---@meta essbasic\n")
  w("-- GENERATED by tools/gen_schema.lua --types from " .. api_file .. " (make schema). Do not edit.\n")
  w("-- LuaCATS annotations for lua-language-server: add this folder to Lua.workspace.library. The descriptions are\n")
  w("-- Tencent Cloud's (NOTICE); the meaning of each action and member: Tencent Cloud's API documentation.\n\n")
  w("---@class essbasic.Error\n---@field code string\n---@field message string\n---@field kind string\n")
  w("---@field request_id string?\n---@field http_status integer?\n---@field attempts integer?\n\n")
  w("---@class essbasic.CallMeta\n---@field attempts integer\n---@field history table\n\n")
  -- the per-call options call.lua reads (essbasic.call: deadline, retry, timeout, validate, wait)
  w("---@class essbasic.CallOptions\n---@field deadline number?\n---@field retry any?\n---@field timeout number?\n")
  w("---@field validate boolean?\n---@field wait boolean?\n\n")
  w("---The options of essbasic.new.\n---@class essbasic.Options\n")
  local option_types = { string = "string", number = "number", boolean = "boolean", table = "table",
    ["function"] = "fun(level: string, message: string)", any = "any" }
  for _, name in ipairs(sorted_keys(client.OPTIONS)) do
    local t = name == "http" and "essbasic.HttpOptions" or option_types[client.OPTIONS[name]]
    w("---@field " .. name .. " " .. t .. "?\n")
  end
  w("\n---The http options of essbasic.new (the transport checks them).\n---@class essbasic.HttpOptions\n")
  for _, name in ipairs(sorted_keys(client.HTTP_OPTIONS)) do
    w("---@field " .. name .. " " .. option_types[client.HTTP_OPTIONS[name]] .. "?\n")
  end
  w("\n")
  for _, name in ipairs(sorted_keys(schema.structs)) do
    local st = schema.structs[name]
    cats_comment(w, api.objects[name].document)
    w("---@class essbasic." .. name .. "\n")
    local docs = {}
    for _, m in ipairs(api.objects[name].members) do docs[m.name] = cats_doc(m.document) end
    for _, fname in ipairs(st.order) do
      local f = st.fields[fname]
      local optional = not (st.kind == "request" and f.required) and not (st.kind ~= "request" and f.output_required)
      w("---@field " .. fname .. " " .. cats_type(f) .. (optional and "?" or "") ..
        (docs[fname] ~= "" and (" " .. docs[fname]) or "") .. "\n")
    end
    w("\n")
  end
  w("---@class essbasic.Client\nlocal Client = {}\n\n")
  for _, name in ipairs(sorted_keys(schema.actions)) do
    local a = schema.actions[name]
    cats_comment(w, api.actions[name].document)
    w("---@param params essbasic." .. a.input .. "\n---@param opts? essbasic.CallOptions\n")
    w("---@return essbasic." .. a.output .. "? resp\n---@return essbasic.Error? err\n")
    w("---@return essbasic.CallMeta? meta\n")
    w("function Client:" .. name .. "(params, opts) end\n\n")
  end
  w("---@class essbasic\nlocal essbasic = {}\n\n")
  w("---@param opts? essbasic.Options\n---@return essbasic.Client\nfunction essbasic.new(opts) end\n\n")
  w("---An UploadFile from a file on disk; err, err when it cannot be read.\n")
  w("---@param path string\n---@param name? string\n---@return essbasic.UploadFile|essbasic.Error file\n")
  w("---@return essbasic.Error? err\nfunction essbasic.file(path, name) end\n\nreturn essbasic\n")
  return concat(out)
end

if opts.schema then write_file(opts.schema, emit_schema()) end
if opts.types then write_file(opts.types, emit_types()) end
if opts.reference then write_file(opts.reference, emit_reference()) end
if opts.facts then write_file(opts.facts, emit_facts()) end
if opts["error-texts"] then write_file(opts["error-texts"], emit_error_texts()) end
if not (opts.schema or opts.reference or opts.facts or opts.types or opts["error-texts"]) then
  io.write(emit_schema())
end
