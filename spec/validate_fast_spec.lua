-- The validator's two halves must agree: the C checker (src/check.c, validate._internal.fast_check) answers first
-- on every call and the Lua walk (validate._internal.reference_request) is the reference. Here both judge the
-- official examples and thousands of mutations of them; any request one accepts and the other refuses is a bug in
-- the checker. Also core.utf8_len against a pure-Lua definition of text.

local validate = require("essbasic.validate")
local rules = require("essbasic.rules")
local core = require("essbasic.core")
local read = require("helpers.files").read
local api = require("essbasic.api")
local json = require("essbasic.json")

local function validate_input(action) return api.action(action).input end

local examples = assert(core.json_decode(read("spec/data/examples_requests.json")))

-- How many mutations: all of them normally; tools/check runs this spec under valgrind with ESSBASIC_SPEC_SCALE=0.1
-- (a tenth, about 20 s there instead of over two minutes).
local SCALE = tonumber(os.getenv("ESSBASIC_SPEC_SCALE") or "") or 1
local function scaled(n) return math.max(2, math.floor(n * SCALE)) end

-- A small deterministic generator (the same mutations on every run and both VMs: Park-Miller, whose products stay
-- below 2^53 and so are exact in LuaJIT's doubles too).
local function prng(seed)
  local state = seed
  return function(n)
    state = (state * 16807) % 2147483647
    return state % n + 1
  end
end

local deep_copy = require("helpers.tables").deep_copy

-- Every (table, key) pair of a request, in a stable order.
local function slots(root)
  local out = {}
  local function walk(t, depth)
    if depth > 12 then return end
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      out[#out + 1] = { t, k }
      if type(t[k]) == "table" then walk(t[k], depth + 1) end
    end
  end
  walk(root, 0)
  return out
end

local array_mt = core.json_array_mt
local unpack = table.unpack or rawget(_G, "unpack")
-- Values a mutation may put anywhere: every type, the edges of every check.
local VALUES = {
  "", "x", "0", "13800138000", "1380013800", "23800138000", "ID_CARD", "HONGKONG_AND_MACAO", "PASSPORT",
  "110101199003074518", "11010119900307451X", "11010119900307451x", "H1234567890", "M12345678",
  "PERSON", "ORGANIZATION", "ENTERPRISESERVER", "TEMPLATE", "DOCUMENT", "pdf",
  string.rep("名", 60), string.rep("名", 201), string.rep("a", 1000), string.rep("a", 4001),
  "a\0b", "\255", "\192\128", "\237\160\128", "\244\144\128\128", "\229\144", "名\229",
  0, 1, -1, 2, 3, 10, 100, 1000, 1700000000, 33162419560, 33162419561, 999999999, 1.5, 3.0, -0.0,
  2 ^ 53, 2 ^ 53 + 2, 2 ^ 63, -2 ^ 63, math.huge, -math.huge, 0 / 0,
  true, false,
  {}, setmetatable({}, array_mt), { 1, 2 }, { "a", "b" }, { [1] = "a", [3] = "c" }, { x = 1 }, { [1.5] = "a" },
  { { x = 1 } }, { {} }, { [true] = 1 },
  core.json_null, print,
}
-- Member names from the schema (a few), for keys added where they may or may not belong.
local NAMES = { "Deadline", "IdCardType", "IdCardNumber", "Mobile", "ApproverType", "OrganizationName", "Nope",
  "flowName", "Agent", "AppId", "OpenId", "FlowApprovers", "FileIds", "FlowName", "ComponentValue",
  "NotChannelOrganization" }

-- Every object of a request with the name of its structure (following the schema), for members added where they
-- belong.
local function objects(t, sname, out)
  out[#out + 1] = { t, sname }
  local cs = validate._internal.compiled(sname)
  for k, v in pairs(t) do
    local cf = type(k) == "string" and cs.fields[k]
    if cf and cf.struct and type(v) == "table" then
      if cf.list then
        for _, e in ipairs(v) do
          if type(e) == "table" then objects(e, cf.type, out) end
        end
      else
        objects(v, cf.type, out)
      end
    end
  end
  return out
end
-- Plausible values by member type (a value that passes the type check, so only the other rules decide).
local PLAUSIBLE = { string = { "x", "13800138000", "ID_CARD", "2026-11-29" }, int = { 1, 0, 1700000000 },
  uint = { 1, 0, 1700000000 }, float = { 1.5 }, bool = { true, false } }

local function mutate(params, action, rnd)
  local m = deep_copy(params)
  local all = slots(m)
  local op = rnd(10)
  if op >= 8 then
    -- a member of the right structure, with a plausible value (a member this action forbids, say)
    local objs = objects(m, validate_input(action), {})
    local o = objs[rnd(#objs)]
    local cs = validate._internal.compiled(o[2])
    local cf = cs.fields[cs.order[rnd(#cs.order)]]
    local pool = PLAUSIBLE[cf.scalar or "bool"]
    local v = cf.struct and {} or pool[rnd(#pool)]
    if cf.list then v = setmetatable({ v }, array_mt) end
    if cf.disabled and rnd(2) == 1 then v = rnd(2) == 1 and "" or {} end -- how SDKs write "not set"
    o[1][cf.name] = v
    return m
  end
  if #all == 0 or op == 7 then
    -- a key added at the top or in a nested object
    local target = m
    if #all > 0 then
      local s = all[rnd(#all)]
      if type(s[1][s[2]]) == "table" then target = s[1][s[2]] end
    end
    target[NAMES[rnd(#NAMES)]] = VALUES[rnd(#VALUES)]
    return m
  end
  local s = all[rnd(#all)]
  local t, k = s[1], s[2]
  if op == 1 then
    t[k] = nil
  elseif op == 2 then
    t[k] = m -- a cycle back to the top
  elseif op == 3 and type(t[k]) == "table" and #t[k] > 0 then
    for _ = 1, rnd(60) do t[k][#t[k] + 1] = deep_copy(t[k][1]) end -- a longer list
  elseif op == 4 and type(t[k]) == "string" then
    t[k] = t[k] .. VALUES[rnd(30)]
  elseif op == 4 and type(t[k]) == "number" then
    local ways = { -t[k], t[k] + 1, t[k] * 1000, t[k] + 0.5, -1 }
    t[k] = ways[rnd(#ways)]
  elseif op == 5 and type(t[k]) == "table" and #t[k] > 0 then
    t[k][#t[k] + 2] = deep_copy(t[k][1]) -- a hole
  elseif op == 6 and type(t[k]) == "table" and #t[k] > 0 then
    t[k][#t[k]] = nil -- a shorter list
  else
    t[k] = deep_copy(VALUES[rnd(#VALUES)])
  end
  return m
end

-- validate.request_body: for a valid request exactly json.encode's bytes with the hint (the C walk writes them),
-- for an invalid one the same error as validate.request.
local function same_body(action, params, valid, id)
  local body, err = validate.request_body(action, params)
  if valid then
    local want = assert(json.encode(params, api.request_hint(action)))
    if body ~= want then error(id .. ": request_body\n" .. tostring(body) .. "\njson.encode\n" .. want) end
  else
    assert.is_nil(body, id)
    local _, want = validate.request(action, params)
    assert.are.equal(want.message, err.message, id)
  end
end

describe("the C checker", function()
  it("is there, and passes every official example the Lua walk passes", function()
    assert.is_function(core.schema_checker)
    local passed = 0
    for _, e in ipairs(examples) do
      local ref = validate._internal.reference_request(e.Action, e.Params) == true
      assert.are.equal(ref, validate._internal.fast_check(e.Action, e.Params), e.Action .. "#" .. e.Index)
      assert.are.equal(ref, validate.request(e.Action, e.Params) == true, e.Action .. "#" .. e.Index)
      same_body(e.Action, e.Params, ref, e.Action .. "#" .. e.Index)
      if ref then passed = passed + 1 end
    end
    assert.is_true(passed >= 190)
  end)

  it("agrees with the Lua walk on 40 mutations of every example", function()
    local rnd = prng(20261129)
    local compared, refused_by_both, accepted_by_both = 0, 0, 0
    for _, e in ipairs(examples) do
      for n = 1, scaled(40) do
        local m = mutate(e.Params, e.Action, rnd)
        local id = e.Action .. "#" .. e.Index .. " mutation " .. n
        local ref_ok, ref_err = validate._internal.reference_request(e.Action, m)
        ref_ok = ref_ok == true
        local ok = validate.request(e.Action, m) == true
        if ok ~= ref_ok then
          error(id .. ": request says " .. tostring(ok) .. ", the Lua walk " .. tostring(ref_ok) ..
            (ref_err and (" (" .. ref_err.message .. ")") or ""))
        end
        assert.are.equal(ref_ok, validate._internal.fast_check(e.Action, m), id)
        same_body(e.Action, m, ref_ok, id)
        compared = compared + 1
        if ref_ok then accepted_by_both = accepted_by_both + 1 else refused_by_both = refused_by_both + 1 end
      end
    end
    -- the mutations must exercise both answers, or the comparison proves little
    assert.is_true(compared >= scaled(40) * 200)
    assert.is_true(refused_by_both > compared / 3, "refused " .. refused_by_both)
    assert.is_true(accepted_by_both > compared / 20, "accepted " .. accepted_by_both)
  end)

  it("agrees on 600 mutations of the seed ChannelCreateFlowGroupByFiles request", function()
    local seed = assert(core.json_decode(read("spec/data/ChannelCreateFlowGroupByFiles.request.json")))
    local action = "ChannelCreateFlowGroupByFiles"
    assert.is_true(validate._internal.fast_check(action, seed))
    local rnd, refused = prng(42), 0
    for n = 1, scaled(600) do
      local m = mutate(seed, action, rnd)
      local ref_ok = validate._internal.reference_request(action, m) == true
      assert.are.equal(ref_ok, validate._internal.fast_check(action, m), "mutation " .. n)
      same_body(action, m, ref_ok, "mutation " .. n)
      if not ref_ok then refused = refused + 1 end
    end
    assert.is_true(refused > scaled(600) / 3 and refused < scaled(600) * 0.97, "refused " .. refused)
  end)

  it("gives rules.lua's answers for the formats and the ID check it implements itself", function()
    local action = "ChannelCreateFlowGroupByFiles"
    local seed = assert(core.json_decode(read("spec/data/ChannelCreateFlowGroupByFiles.request.json")))
    local rnd, tried = prng(11), 0
    local person -- the first signer who is a person: the one whose Mobile and ID are checked
    for i, ap in ipairs(seed.FlowFileInfos[1].FlowApprovers) do
      if ap.ApproverType == "PERSON" and not person then person = i end
    end
    assert.is_number(person)
    local function agree(what, set)
      local m = deep_copy(seed)
      set(m, m.FlowFileInfos[1].FlowApprovers[person])
      local ref_ok = validate._internal.reference_request(action, m) == true
      assert.are.equal(ref_ok, validate._internal.fast_check(action, m), what)
      tried = tried + 1
      return ref_ok
    end
    -- mobiles: the edges, then random 11-character strings close to a mobile
    local mobiles = { "13800138000", "12800138000", "19999999999", "10000000000", "1380013800a", "138001380000",
      "1380013800", "23800138000", "1A800138000", " 3800138000", "+8613800138" }
    for _ = 1, scaled(300) do
      local cs = {}
      for i = 1, 11 do cs[i] = ("0123456789913a"):sub(rnd(14), nil):sub(1, 1) end
      cs[1] = rnd(4) > 1 and "1" or cs[1]
      mobiles[#mobiles + 1] = table.concat(cs)
    end
    local passed = 0
    for _, v in ipairs(mobiles) do
      if agree("Mobile " .. v, function(_, ap) ap.Mobile = v end) then
        passed = passed + 1
      end
    end
    assert.is_true(passed > 3 and passed < #mobiles - 3)
    -- deadlines (unix_seconds, 0 allowed)
    for _, v in ipairs({ 0, 1, 999999999, 1000000000, 1700000000, 33162419560, 33162419561, 1.7e9, 1.7e9 + 0.5,
      -1700000000, 2 ^ 53, 2 ^ 53 + 2 }) do
      agree("Deadline " .. tostring(v), function(m) m.FlowFileInfos[1].Deadline = v end)
    end
    -- ID numbers by type, the type absent, unknown or of another type
    local types = { false, "ID_CARD", "HONGKONG_AND_MACAO", "HONGKONG_MACAO_AND_TAIWAN", "PASSPORT", "BOGUS", 7 }
    local numbers = { false, "110101199003074518", "11010119900307451X", "11010119900307451x", "H1234567890",
      "M1234567890", "M123456789", "X1234567890", "1101011990030745", "a10101199003074518", 110101199003074518 }
    for _, t in ipairs(types) do
      for _, n in ipairs(numbers) do
        agree("IdCardType " .. tostring(t) .. ", IdCardNumber " .. tostring(n), function(_, ap)
          ap.IdCardType, ap.IdCardNumber = t or nil, n or nil
        end)
      end
    end
    assert.is_true(tried > scaled(300) + 80)
  end)

  it("checks every action's required and forbidden paths (rules.lua) on the way", function()
    local checked = 0
    for _, e in ipairs(examples) do
      local ar = rules.actions[e.Action]
      if ar and validate._internal.reference_request(e.Action, e.Params) == true then
        for _, path in ipairs(ar.required or {}) do
          -- the last member of the path, removed, then empty
          for _, value in ipairs({ false, "" }) do
            local m = deep_copy(e.Params)
            local t, segs = m, {}
            for seg in path:gmatch("[^.]+") do segs[#segs + 1] = seg end
            for i = 1, #segs - 1 do t = t[segs[i]] end
            t[segs[#segs]] = value or nil
            assert.is_nil(validate._internal.reference_request(e.Action, m))
            assert.is_false(validate._internal.fast_check(e.Action, m), e.Action .. " " .. path)
            checked = checked + 1
          end
        end
        for _, fb in ipairs(ar.forbidden or {}) do
          -- the forbidden member set, with a value its type accepts, on the first element along the path
          local m = deep_copy(e.Params)
          local t, segs = m, {}
          for seg in fb.path:gmatch("[^.]+") do segs[#segs + 1] = seg end
          for i = 1, #segs - 1 do
            local name = segs[i]:gsub("%[%]$", "")
            t = t[name]
            if segs[i]:sub(-2) == "[]" then t = t[1] end
          end
          t[segs[#segs]] = 1900000000
          assert.is_nil(validate._internal.reference_request(e.Action, m))
          assert.is_false(validate._internal.fast_check(e.Action, m), e.Action .. " " .. fb.path)
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked >= 40, "checked " .. checked)
  end)

  it("checks every action's one-of groups (rules.lua) on the way, with one meaning of \"not set\"", function()
    local checked = 0
    for _, e in ipairs(examples) do
      local ar = rules.actions[e.Action]
      if ar and ar.one_of and validate._internal.reference_request(e.Action, e.Params) == true then
        for _, g in ipairs(ar.one_of) do
          -- each way of leaving a member unset: absent, null, and "" or {} (a list); then one member set again
          for _, unset in ipairs({ "absent", "null", "empty" }) do
            local m = deep_copy(e.Params)
            local input = api.struct(api.action(e.Action).input)
            for _, f in ipairs(g.fields) do
              if unset == "null" then m[f] = json.null
              elseif unset == "empty" then m[f] = input.fields[f].list and {} or ""
              else m[f] = nil end
            end
            assert.is_nil(validate._internal.reference_request(e.Action, m))
            assert.is_false(validate._internal.fast_check(e.Action, m), e.Action .. " " .. unset)
            assert.are.equal(rules.pick_code(g.code, api.action(e.Action).error_set),
              select(2, validate.request(e.Action, m)).code)
            for _, f in ipairs(g.fields) do m[f] = nil end
            m.FlowGroupId = "yDwhxUUckp3gl8j5UuFX33LSNozpRsbi"
            assert.is_true(validate._internal.reference_request(e.Action, m))
            assert.is_true(validate._internal.fast_check(e.Action, m))
            checked = checked + 1
          end
        end
      end
    end
    assert.is_true(checked >= 6, "checked " .. checked)
  end)

  it("refuses a cycle and a request nested deeper than MAX_DEPTH without looping", function()
    local p = deep_copy(assert(examples[1]).Params)
    p.Agent.ProxyOperator.Channel = p
    assert.is_false(validate._internal.fast_check(examples[1].Action, p))
    assert.is_nil(validate.request(examples[1].Action, p))
  end)

  it("raises on bad arguments like validate.request", function()
    assert.has_error(function() validate._internal.fast_check(1, {}) end)
    assert.has_error(function() validate._internal.fast_check("ChannelCancelFlow", "x") end)
    assert.has_error(function() core.schema_checker({ { { name = "A", kind = "nope" } } }) end)
    assert.has_error(function() core.schema_checker({ { { name = "A", kind = "struct", struct = 9 } } }) end)
    -- a format not declared (no entry in desc.formats) is refused when the checker is built, not skipped
    assert.has_error(function() core.schema_checker({ { { name = "A", kind = "string", format = "nope" } } }) end)
    -- a format kind check.c does not know, or a shape it cannot read, is refused loudly too
    assert.has_error(function() core.schema_checker({ formats = { f = { kind = "luhn" } } }) end)
    for _, shape in ipairs({ "%a", "[%w]", "1*", "[12", ("%d"):rep(33) }) do
      assert.has_error(function() core.schema_checker({ formats = { f = { kind = "shape", shape = shape } } }) end)
    end
  end)

  -- Adding a format is one entry in rules.lua: a format of a known kind needs no C. Here a format declared only
  -- as data, the way rules.lua declares one, is compiled by both walks and gets the same answers from both.
  it("compiles a format declared only as data the same way in Lua and in C", function()
    local rules_formats = { postcode = { kind = "shape", shape = "[1-8]%d%d%d%d[0-9A-C]" },
      year = { kind = "whole_range", min = 1900, max = 2100 } }
    local checker = core.schema_checker({ formats = rules_formats,
      { { name = "P", kind = "string", format = "postcode" }, { name = "Y", kind = "int", format = "year" } } })
    local postcode, year = rules.compile_format(rules_formats.postcode), rules.compile_format(rules_formats.year)
    local passed = 0
    for _, v in ipairs({ "100080", "10008C", "90008C", "1000", "100080 ", "10008D", "0a0080", "8999990" }) do
      assert.are.equal(postcode(v), checker(1, { P = v }), v)
      if postcode(v) then passed = passed + 1 end
    end
    assert.are.equal(2, passed)
    for _, v in ipairs({ 1899, 1900, 2026, 2100, 2101 }) do
      assert.are.equal(year(v), checker(1, { Y = v }), tostring(v))
      assert.are.equal(v >= 1900 and v <= 2100, year(v), tostring(v))
    end
    -- and every format rules.lua declares is one both walks compile
    for name, fmt in pairs(rules.formats) do
      assert.is_function(rules.format_check[name], name)
      assert.is_function(core.schema_checker({ formats = { [name] = fmt } }), name)
    end
  end)
end)

-- One edit in one place: a rule added to rules.lua's tables alone (a new format and the limit that names it, a
-- new one-of group) is honoured by both walks and by the wording describe lists, with nothing else touched. The
-- validator modules are loaded afresh over the edited tables, then the tables restored and reloaded.
describe("a rule is one entry in rules.lua", function()
  local MODULES = { "essbasic.validate", "essbasic.validate.walk", "essbasic.validate.checker" }
  local function reload()
    for _, m in ipairs(MODULES) do package.loaded[m] = nil end
    return require("essbasic.validate")
  end
  local LIMIT, ACTION = "CreateSignUrlsRequest.OpenId", "ChannelCancelFlow"
  local AGENT = { AppId = "yDwFoUUckpsmiu7v", ProxyOrganizationOpenId = "org", ProxyOperator = { OpenId = "op" } }
  local saved_action
  before_each(function()
    saved_action = rules.actions[ACTION]
    rules.formats.open_id_test = { kind = "shape", shape = "[a-z]%d%d%d", expected = "an open id (test)" }
    rules.limits[LIMIT] = { format = "open_id_test", code = { "InvalidParameter" } }
    local copy = {}
    for k, v in pairs(saved_action) do copy[k] = v end
    copy.one_of = { { fields = { "CancelMessage", "CancelMessageFormat" }, code = { "MissingParameter" } } }
    rules.actions[ACTION] = copy
  end)
  after_each(function()
    rules.formats.open_id_test, rules.limits[LIMIT], rules.actions[ACTION] = nil, nil, saved_action
    rawset(rules.format_check, "open_id_test", nil)
    reload()
  end)

  it("a new format and its limit: both walks refuse and accept alike, and describe words it", function()
    local v = reload()
    local p = { Agent = AGENT, FlowIds = { "yDwhxUUckp3gl8j5UuFX33LSNozpRsbi" } }
    for value, good in pairs({ a123 = true, z999 = true, A123 = false, a12 = false, ["a1234"] = false }) do
      p.OpenId = value
      assert.are.equal(good, v._internal.fast_check("CreateSignUrls", p), value)
      assert.are.equal(good, v._internal.reference_request("CreateSignUrls", p) == true, value)
      local body, err = v.request_body("CreateSignUrls", p)
      assert.are.equal(good, body ~= nil, value)
      if not good then
        assert.are.equal("OpenId", err.problems[1].path)
        assert.are.equal("an open id (test)", err.problems[1].expected)
      end
    end
    assert.are.same({ "an open id (test)" }, rules.limit_phrases(rules.limits[LIMIT]))
  end)

  it("a new one-of group: both walks refuse a request without any of its members", function()
    local v = reload()
    local p = { Agent = AGENT, FlowId = "yDwhxUUckp3gl8j5UuFX33LSNozpRsbi" }
    assert.is_false(v._internal.fast_check(ACTION, p))
    local ok, err = v.request(ACTION, p)
    assert.is_nil(ok)
    assert.are.equal("one of CancelMessage, CancelMessageFormat", err.problems[1].expected)
    p.CancelMessage = "wrong party"
    assert.is_true(v._internal.fast_check(ACTION, p))
    assert.is_true(v.request(ACTION, p))
  end)
end)

-- The pure-Lua definition of text core.utf8_len is held to: a byte loop (the same on Lua 5.4 and LuaJIT).
local function lua_len(s)
  if s:find("\0", 1, true) then return nil, "NUL byte" end
  local len, i, cont = #s, 1, 0
  while i <= len do
    local c = s:byte(i)
    if c < 0x80 then
      i = i + 1
    else
      local need, cp, lo
      if c < 0xC2 then return nil, "invalid UTF-8"
      elseif c < 0xE0 then need, cp, lo = 1, c - 0xC0, 0x80
      elseif c < 0xF0 then need, cp, lo = 2, c - 0xE0, 0x800
      elseif c < 0xF5 then need, cp, lo = 3, c - 0xF0, 0x10000
      else return nil, "invalid UTF-8" end
      if i + need > len then return nil, "invalid UTF-8" end
      for k = 1, need do
        local b = s:byte(i + k)
        if b < 0x80 or b > 0xBF then return nil, "invalid UTF-8" end
        cp = cp * 64 + (b - 0x80)
      end
      if cp < lo or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil, "invalid UTF-8" end
      cont = cont + need
      i = i + need + 1
    end
  end
  return len - cont
end

describe("core.utf8_len", function()
  local ALPHABET = { 0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe5,
    0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff }

  it("gives the same answers as the pure-Lua definition on 30,000 byte strings", function()
    local rnd = prng(7)
    for _ = 1, scaled(30000) do
      local bytes = {}
      for i = 1, rnd(9) - 1 do bytes[i] = ALPHABET[rnd(#ALPHABET)] end
      local s = string.char(unpack(bytes))
      local n1, why1 = core.utf8_len(s)
      local n2, why2 = lua_len(s)
      if n1 ~= n2 or why1 ~= why2 then
        error(string.format("%q: core %s %s, Lua %s %s", s, tostring(n1), tostring(why1), tostring(n2),
          tostring(why2)))
      end
    end
  end)

  it("counts characters, and names what is wrong", function()
    assert.are.equal(0, core.utf8_len(""))
    assert.are.equal(5, core.utf8_len("héllo"))
    assert.are.equal(4, core.utf8_len("电子签名"))
    assert.are.equal(1, core.utf8_len("\244\143\191\191")) -- U+10FFFF
    assert.are.same({ nil, "NUL byte" }, { core.utf8_len("a\0") })
    assert.are.same({ nil, "invalid UTF-8" }, { core.utf8_len("\244\144\128\128") }) -- above U+10FFFF
    assert.are.same({ nil, "invalid UTF-8" }, { core.utf8_len("\237\160\128") })     -- a surrogate
    assert.are.same({ nil, "invalid UTF-8" }, { core.utf8_len("\224\128\175") })     -- overlong
    assert.are.same({ nil, "invalid UTF-8" }, { core.utf8_len("\231\148") })         -- cut short
    assert.has_error(function() core.utf8_len({}) end)
  end)

  it("is what rules.text_len uses when the core is loaded", function()
    assert.are.equal(core.utf8_len, rules.text_len)
  end)
end)
