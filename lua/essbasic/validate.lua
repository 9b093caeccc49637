-- Request validation: the public face (arguments, the order of the problems, the error object). The rules are
-- rules.lua's data; the C walk (validate/checker.lua → src/check.c) answers first, the Lua walk (validate/walk.lua)
-- names the problems of a request it refuses. The design is told once, in docs/internals.md ("Validation").
-- validate.request(action, params) → true, or nil, err where err is an essbasic error of kind "validation"
-- carrying every problem found (up to MAX_PROBLEMS), each with its path.

local api = require("essbasic.api")
local errors = require("essbasic.errors")
local walk = require("essbasic.validate.walk")
local checker = require("essbasic.validate.checker")

local type, error, tostring, ipairs, require, select, assert = type, error, tostring, ipairs, require, select,
  assert
local min = math.min
local concat, sort = table.concat, table.sort
local format = string.format

local CODES, suggest, with_state, compiled = walk.CODES, walk.suggest, walk.run, walk.compiled
local walk_request, walk_member = walk.request, walk.member

local M = { MAX_PROBLEMS = walk.MAX_PROBLEMS, MAX_DEPTH = walk.MAX_DEPTH, suggest = suggest }

-- What the specs look at besides the public API (the two halves apart, the compiled view); not for users.
local internal = {}
M._internal = internal

local function by_position(a, b)
  local ka, kb = a._key, b._key
  for i = 1, min(#ka, #kb) do
    if ka[i] ~= kb[i] then return ka[i] < kb[i] end
  end
  if #ka ~= #kb then return #ka < #kb end
  return a._seq < b._seq
end

-- shows: the problems show personal data unmasked (err.personal_data_shown tells tostring not to scrub).
local function fail(aname, list, total, shows)
  sort(list, by_position)
  local lines = { format("%d problem%s in the %s request:", total, total == 1 and "" or "s", aname) }
  for i, p in ipairs(list) do
    p._key, p._seq = nil, nil
    lines[i + 1] = "  " .. p.message
  end
  if total > #list then lines[#lines + 1] = format("  … and %d more", total - #list) end
  return nil, errors.new({ kind = "validation", code = list[1].code, message = concat(lines, "\n"),
    problems = list, action = aname, personal_data_shown = shows == true or nil })
end

local function known_action(aname, params)
  if type(aname) ~= "string" then error("validate.request: action name must be a string", 3) end
  if params ~= nil and type(params) ~= "table" then
    error("validate.request: params must be a table or nil, got " .. type(params), 3)
  end
  local action = api.action(aname)
  if action then return action end
  local s = suggest(aname, api.actions())
  local p = { path = "", code = CODES.action, expected = "an essbasic " .. api.version .. " action name",
    found = format("%q", aname), hint = s and ("did you mean " .. s .. "?") or nil }
  p.message = "action: expected " .. p.expected .. ", found " .. p.found .. (p.hint and (" (" .. p.hint .. ")")
    or "")
  return nil, errors.new({ kind = "validation", code = CODES.action, message = p.message, problems = { p },
    action = aname })
end

-- The Lua walk alone, whatever the fast path says: the reference the C checker is tested against.
function internal.reference_request(aname, params, show_personal_data)
  local action, err = known_action(aname, params)
  if not action then return nil, err end
  local list, total, disabled = with_state(action.error_set, walk_request, aname, params or {}, show_personal_data)
  if total == 0 then return true, disabled end
  return fail(aname, list, total, show_personal_data)
end

-- The C checker's verdict (every rule): true or false; then true when a disabled member carries a value.
function internal.fast_check(aname, params)
  assert(known_action(aname, params))
  return checker.check(aname, params or {})
end

-- The fast path's verdict, or with encode the request's JSON when it passes: the C walk. A false answer only
-- means "ask the Lua walk". The second result: the paths of the disabled members that carry a value, or nil (the
-- Lua walk names them, only when the C walk saw one).
local function fast(action, aname, params, encode)
  local passed, disabled_seen = checker.check(aname, params, encode)
  if not passed then return false end
  if disabled_seen then return passed, select(3, with_state(action.error_set, walk_request, aname, params)) end
  return passed
end

-- Both public entries: the fast path first (encode: with the request's JSON), then the Lua walk for a request it
-- does not pass → the fast path's answer, or true (valid after all), or nil, err; then the disabled members' paths.
local function validated(aname, params, show_personal_data, encode)
  local action, err = known_action(aname, params)
  if not action then return nil, err end
  params = params or {}
  local passed, disabled = fast(action, aname, params, encode)
  if passed then return passed, disabled end
  local list, total
  list, total, disabled = with_state(action.error_set, walk_request, aname, params, show_personal_data)
  if total > 0 then return fail(aname, list, total, show_personal_data) end
  return true, disabled
end

-- validate.request(action, params [, show_personal_data]) → true, or nil, err (see the top of this file). A
-- request that passes while members the schema marks disabled carry values gets their paths as a second result (a
-- sorted list), so the caller can warn: the API's own examples send such members, so they are sent
-- (docs/builders.md). show_personal_data = true: the problems show personal data unmasked (essbasic.new's
-- debug_personal_data).
function M.request(aname, params, show_personal_data)
  return validated(aname, params, show_personal_data, false)
end

-- validate.request_body(action, params [, show_personal_data]) → the request's JSON (exactly what
-- json.encode(params, hint) writes) and the disabled members' paths as validate.request gives them, or nil, err as
-- validate.request gives it. The C walk that checks a request writes its JSON on the way, so a validated call
-- walks its params once, not twice.
function M.request_body(aname, params, show_personal_data)
  local body, disabled = validated(aname, params, show_personal_data, true)
  if body ~= true then return body, disabled end
  -- valid after all (the spec holds the checker to the Lua walk's verdicts, so this is not expected)
  return require("essbasic.json").encode(params or {}, api.request_hint(aname)), disabled
end

-- The compiled view of a structure: fields with their rules resolved.
function internal.compiled(name)
  return compiled[name]
end

-- Exposed for builders that check single values early: the same string/number checks as the walk, for one
-- member of one structure. Returns true, or nil, problem (its found masked as in validate.request).
function M.member(struct_name, member, value, action_name, show_personal_data)
  local cs = compiled[struct_name]
  if not cs then error("validate.member: unknown structure " .. tostring(struct_name), 2) end
  local cf = cs.fields[member]
  if not cf then error("validate.member: " .. struct_name .. " has no member " .. tostring(member), 2) end
  local a = action_name and api.action(action_name)
  local list = with_state(a and a.error_set, walk_member, cf, value, show_personal_data)
  if #list == 0 then return true end
  sort(list, by_position)
  for _, p in ipairs(list) do p._key, p._seq = nil, nil end
  return nil, list[1]
end

return M
