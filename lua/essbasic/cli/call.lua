-- essbasic call ACTION [--input '{json}' | --input @file.json | --input -] [--dry-run] [--compact]
-- essbasic actions [--json]
-- essbasic describe ACTION|STRUCTURE [--all] [--json]
--
-- call prints the Response as JSON on stdout and exits 0; a failure prints the error object as JSON on stderr and
-- exits with the code of its kind (common.EXIT). --dry-run prints the signed request instead of sending it, with
-- the signature and any token redacted (signer.redact).

local api = require("essbasic.api")
local json = require("essbasic.json")
local signer = require("essbasic.signer")
local common = require("essbasic.cli.common")
local args = require("essbasic.cli.args")
local config = require("essbasic.cli.config")

local EXIT, fail = common.EXIT, common.fail
local ipairs, type, sort, concat = ipairs, type, table.sort, table.concat
local format, rep = string.format, string.rep

local M = {}

-- An action name given on the command line, or a usage failure that suggests the closest name.
function M.action_named(name)
  if type(name) ~= "string" or name == "" then fail(EXIT.usage, "name an action (essbasic actions lists them)") end
  if api.action(name) then return api.action(name) end
  local guess = args.closest(name, api.actions())
  fail(EXIT.usage, "no action " .. name .. " in essbasic " .. api.version
    .. (guess and (" (did you mean " .. guess .. "?)") or " (essbasic actions lists them)"))
end

---------------------------------------------------------------------------------------------------------------
-- call
---------------------------------------------------------------------------------------------------------------

M.CALL_OPTIONS = {
  input = { value = true, arg = "IN", help = "the request: '{json}', @file.json or - (standard input)" },
  ["dry-run"] = { help = "print the signed request, do not send it" },
  compact = { help = "one-line JSON" },
  ["no-validate"] = { help = "send the request as it is, without the API's rules" },
  json = { help = "a failure as a JSON error object, also on a terminal" },
}
M.CALL_SYNOPSIS = "essbasic call ACTION --input '{json}' | @file.json | - [options]"

function M.call(opts, words, ctx)
  local action = M.action_named(words[1])
  if words[2] then fail(EXIT.usage, "call takes one action; the request goes in --input") end
  local params = common.read_object(opts.input, "--input")
  local client = config.client(opts, ctx)
  local out_struct = api.struct(action.output)
  if opts["dry-run"] then
    local req, err = client:prepare(action.name, params)
    if not req then return common.print_error(err, opts.compact, opts.json) end
    local shown = { method = req.method, url = req.url, headers = signer.redact(req.headers), body = req.body }
    common.stdout(common.to_json(shown, { order = { "method", "url", "headers", "body" } }, opts.compact), "\n")
    return EXIT.ok
  end
  local resp, err = client:call(action.name, params)
  client:close()
  if not resp then return common.print_error(err, opts.compact, opts.json) end
  common.stdout(common.to_json(resp, out_struct, opts.compact), "\n")
  return EXIT.ok
end

---------------------------------------------------------------------------------------------------------------
-- actions
---------------------------------------------------------------------------------------------------------------

M.ACTIONS_OPTIONS = { json = { help = "as JSON" } }
M.ACTIONS_SYNOPSIS = "essbasic actions [--json]"

local function kind_of(a)
  return a.readonly and "read-only" or "changes"
end

function M.actions(opts, words)
  if words[1] then fail(EXIT.usage, "actions takes no arguments (essbasic describe ACTION shows one)") end
  local names = api.actions()
  if opts.json then
    local list = json.array()
    for i, name in ipairs(names) do
      local a = api.action(name)
      list[i] = { name = name, readonly = a.readonly == true, host = api.host_kind(name), status = a.status }
    end
    common.stdout(common.to_json(list, { order = { "name", "readonly", "host", "status" } }), "\n")
    return EXIT.ok
  end
  local width = 0
  for _, name in ipairs(names) do if #name > width then width = #name end end
  local lines = {}
  for i, name in ipairs(names) do
    local a = api.action(name)
    local notes = { kind_of(a) }
    if api.host_kind(name) == "file" then notes[#notes + 1] = "file endpoint" end
    if a.status and a.status ~= "online" then notes[#notes + 1] = a.status end
    lines[i] = name .. rep(" ", width - #name + 2) .. concat(notes, ", ")
  end
  common.stdout(concat(lines, "\n"), "\n")
  return EXIT.ok
end

---------------------------------------------------------------------------------------------------------------
-- describe
---------------------------------------------------------------------------------------------------------------

M.DESCRIBE_OPTIONS = { json = { help = "as JSON" }, all = { help = "every member, nested structures too" } }
M.DESCRIBE_SYNOPSIS = "essbasic describe ACTION|STRUCTURE [--all] [--json]"

local function type_text(f)
  return (f.list and "list of " or "") .. f.type
end

-- The limits the hand-written rules put on Struct.Member, worded as a validation problem words them
-- (rules.limit_phrases).
local function limits_of(struct_name, member)
  local l = api.rules.limits[struct_name .. "." .. member]
  return l and api.rules.limit_phrases(l) or nil
end

-- The action's hand-written rules about its request's top-level members: required paths (Agent.AppId, ...)
-- and one-of groups, as notes per member name.
local function action_notes(action)
  local r = action and api.rules.actions[action.name]
  if not r then return {} end
  local notes = {}
  local function add(name, note)
    local list = notes[name] or {}
    for _, n in ipairs(list) do if n == note then return end end
    list[#list + 1] = note
    notes[name] = list
  end
  local needs, order = {}, {}
  for _, path in ipairs(r.required or {}) do
    local top, rest = path:match("^([^.]+)%.?(.*)$")
    if not needs[top] then needs[top] = {}; order[#order + 1] = top end
    if rest ~= "" then needs[top][#needs[top] + 1] = rest end
  end
  for _, top in ipairs(order) do
    add(top, #needs[top] > 0 and ("required here, with " .. concat(needs[top], ", ")) or "required here")
  end
  for _, group in ipairs(r.one_of or {}) do
    for _, name in ipairs(group.fields) do add(name, api.rules.expected.one_of(group)) end
  end
  return notes
end

local function members(struct, notes)
  local list = {}
  for i, name in ipairs(struct.order or {}) do
    local f = struct.fields[name]
    local limits = limits_of(struct.name, name)
    for _, n in ipairs(notes and notes[name] or {}) do
      limits = limits or {}
      limits[#limits + 1] = n
    end
    list[i] = { name = name, type = f.type, list = f.list == true, required = f.required == true,
      disabled = f.disabled == true, limits = limits }
  end
  return list
end

-- The structures reachable from the given ones, in the order first met (each once: the graph has cycles).
local function reachable(roots)
  local seen, order, queue = {}, {}, {}
  for _, s in ipairs(roots) do seen[s.name] = true; queue[#queue + 1] = s end
  local i = 1
  while i <= #queue do
    local s = queue[i]
    i = i + 1
    for _, name in ipairs(s.order or {}) do
      local target = s.fields[name].struct
      if target and not seen[target.name] then
        seen[target.name] = true
        order[#order + 1] = target
        queue[#queue + 1] = target
      end
    end
  end
  return order
end

local function struct_lines(lines, struct, title, notes)
  lines[#lines + 1] = title
  local ms = members(struct, notes)
  if #ms == 0 then lines[#lines + 1] = "  (no members)" return end
  local w1, w2 = 0, 0
  for _, m in ipairs(ms) do
    if #m.name > w1 then w1 = #m.name end
    local t = type_text(m)
    if #t > w2 then w2 = #t end
  end
  for _, m in ipairs(ms) do
    local said = {}
    if m.required then said[#said + 1] = "required" end
    if m.disabled then said[#said + 1] = "disabled (do not send)" end
    for _, l in ipairs(m.limits or {}) do said[#said + 1] = l end
    local t = type_text(m)
    lines[#lines + 1] = format("  %s%s  %s%s%s", m.name, rep(" ", w1 - #m.name), t,
      #said > 0 and rep(" ", w2 - #t + 2) or "", concat(said, "; "))
  end
end

local function struct_json(struct, notes)
  local ms = members(struct, notes)
  for _, m in ipairs(ms) do
    if m.limits then m.limits = json.array(m.limits) end
  end
  return { name = struct.name, members = json.array(ms) }
end

local MEMBER_ORDER = { order = { "name", "type", "list", "required", "disabled", "limits" } }
local STRUCT_ORDER = { order = { "name", "members" }, fields = { members = { struct = MEMBER_ORDER } } }

function M.describe(opts, words)
  local name = words[1]
  if not name then fail(EXIT.usage, "describe needs an action or structure name") end
  local action = api.action(name)
  local struct = not action and api.struct(name)
  if not action and not struct then M.action_named(name) end
  local roots = action and { api.struct(action.input), api.struct(action.output) } or { struct }
  local nested = reachable(roots)
  if opts.json then
    local doc
    local structs = json.array()
    for i, s in ipairs(nested) do structs[i] = struct_json(s) end
    if action then
      local errs = json.array()
      for i, code in ipairs(action.errors or {}) do errs[i] = code end
      doc = { action = action.name, readonly = action.readonly == true, host = api.host_kind(action.name),
        status = action.status, request = struct_json(roots[1], action_notes(action)), response = struct_json(roots[2]),
        structures = structs, errors = errs }
    else
      doc = struct_json(struct)
      doc.structures = structs
    end
    local shape = { order = { "action", "readonly", "host", "status", "request", "response", "name", "members",
      "structures", "errors" }, fields = { request = { struct = STRUCT_ORDER }, response = { struct = STRUCT_ORDER },
      members = { struct = MEMBER_ORDER }, structures = { struct = STRUCT_ORDER } } }
    common.stdout(common.to_json(doc, shape), "\n")
    return EXIT.ok
  end
  local lines = {}
  if action then
    lines[1] = format("%s (essbasic %s): %s%s", action.name, api.version,
      action.readonly and "read-only, retried after any failure"
        or "creates or changes something: never resent when it may have arrived",
      api.host_kind(action.name) == "file" and "; goes to the file endpoint" or "")
    lines[2] = ""
    struct_lines(lines, roots[1], "Request (" .. roots[1].name .. "):", action_notes(action))
    lines[#lines + 1] = ""
    struct_lines(lines, roots[2], "Response (" .. roots[2].name .. "):")
  else
    struct_lines(lines, struct, "Structure " .. struct.name .. ":")
  end
  if #nested > 0 then
    lines[#lines + 1] = ""
    if opts.all then
      for _, s in ipairs(nested) do
        struct_lines(lines, s, s.name .. ":")
        lines[#lines + 1] = ""
      end
      lines[#lines] = nil
    else
      local ns = {}
      for i, s in ipairs(nested) do ns[i] = s.name end
      sort(ns)
      lines[#lines + 1] = "Structures used (essbasic describe NAME, or --all): " .. concat(ns, ", ")
    end
  end
  if action and action.errors and #action.errors > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Error codes: " .. concat(action.errors, ", ")
  end
  common.stdout(concat(lines, "\n"), "\n")
  return EXIT.ok
end

return M
