-- The JSON codec (src/json.c through lua/essbasic/json.lua): shapes, exact numbers, escapes, every error with its
-- path or byte offset, robustness against hostile input. Runs under Lua 5.4 and LuaJIT.
local json = require("essbasic.json")
local core = require("essbasic.core")

local is54 = math.type ~= nil
local encode, decode = json.encode, json.decode

-- encode, failing the test with the codec's own message when it refuses
local function enc(v, hint)
  local s, err = encode(v, hint)
  assert.is_string(s, err)
  return s
end

local function dec(s)
  local v, err = decode(s)
  assert.is_not_nil(v, err)
  return v
end

local function enc_err(v, hint)
  local s, err = encode(v, hint)
  assert.is_nil(s)
  assert.is_string(err)
  return err
end

local function dec_err(s)
  local v, err = decode(s)
  assert.is_nil(v)
  assert.is_string(err)
  return err
end

describe("essbasic.json module", function()
  it("is the C codec with its sentinel and metatable", function()
    assert.equal(core.json_encode, json.encode)
    assert.equal(core.json_decode, json.decode)
    assert.equal(core.json_null, json.null)
    assert.equal("userdata", type(json.null))
    assert.equal("table", type(core.json_array_mt))
  end)

  it("marks arrays, new or existing, and recognises them", function()
    local a = json.array()
    assert.is_true(json.is_array(a))
    assert.equal("[]", enc(a))
    local t = { 1, 2 }
    assert.equal(t, json.array(t))
    assert.is_true(json.is_array(t))
    assert.equal(t, json.array(t)) -- marking twice is harmless
    assert.is_false(json.is_array({ 1, 2 }))
    assert.is_false(json.is_array("x"))
  end)

  it("raises on programming errors", function()
    assert.has_error(function() json.array("x") end)
    assert.has_error(function() json.array(setmetatable({}, {})) end)
    assert.has_error(function() encode() end)
    assert.has_error(function() encode({}, "not a hint") end)
    assert.has_error(function() decode(nil) end)
    assert.has_error(function() decode({}) end)
  end)

  it("keeps one array metatable per state when the core is loaded again", function()
    local saved = package.loaded["essbasic.core"]
    package.loaded["essbasic.core"] = nil
    local again = require("essbasic.core")
    package.loaded["essbasic.core"] = saved
    assert.equal(core.json_array_mt, again.json_array_mt)
    assert.equal("[]", again.json_encode(json.array()))
  end)
end)

describe("json round trips", function()
  -- canonical: compact, one key per object (so key order cannot differ), numbers as the encoder prints them
  local canonical = {
    '{"a":[1,-2,3.5,"x\\u0000\\n\\"\\\\/",true,false,null,{},[],{"b":[[]]}]}',
    '[0.1,1e+300,-2.5e-07,0.3333333333333333,1700000000,33162419560,9007199254740992]',
    '"\\u0001\\u001f\\b\\f\\n\\r\\t\127"',
    '{"中文":"合同组 — 采购"}',
    '[[[[{"x":{"y":[null,null]}}]]]]',
    '{}', '[]',
  }
  if is54 then
    canonical[#canonical + 1] = '[12345678901234567,9223372036854775807,-9223372036854775808]'
  end

  it("gives back the same bytes for canonical documents", function()
    for _, s in ipairs(canonical) do
      assert.equal(s, enc(dec(s)))
    end
  end)

  it("decode -> encode -> decode gives the same structure", function()
    local docs = {
      ' { "b" : [ 1 , 2 , { "c" : "d" } ] , "e" : { } , "f" : [ ] , "g" : "\\/\\u00e9" } ',
      '{"Response":{"FlowGroupId":"x","FlowIds":["a","b"],"RequestId":"r-1","Err":null}}',
    }
    for _, s in ipairs(docs) do
      local v = dec(s)
      assert.same(v, dec(enc(v)))
    end
  end)
end)

describe("json empty list versus empty object", function()
  it("encodes {} as an object without a hint and [] when marked", function()
    assert.equal("{}", enc({}))
    assert.equal('{"a":{}}', enc({ a = {} }))
    assert.equal('{"a":[]}', enc({ a = json.array() }))
    assert.equal("[[],{}]", enc({ json.array(), {} }))
  end)

  it("encodes an empty table as [] where the hint says list", function()
    assert.equal('{"FileIds":[]}', enc({ FileIds = {} }, { FileIds = { list = true, type = "string" } }))
    assert.equal('{"Agent":{}}', enc({ Agent = {} }, { Agent = { type = "Agent", fields = {} } }))
    -- the top-level value with a hint is an object, even empty
    assert.equal("{}", enc({}, { FileIds = { list = true } }))
    -- a hint for another field changes nothing
    assert.equal('{"X":{}}', enc({ X = {} }, { FileIds = { list = true } }))
  end)

  it("applies a list-of-structs hint to every element and a nested struct hint below", function()
    local approver = { SignComponents = { list = true, type = "Component" }, Name = { type = "string" } }
    local info = {
      FileIds = { list = true, type = "string" },
      FlowApprovers = { list = true, type = "FlowApproverInfo", fields = approver },
      Extra = { type = "Extra", fields = { Tags = { list = true } } },
    }
    local hint = { FlowFileInfos = { list = true, type = "FlowFileInfo", fields = info }, Empty = { list = true } }
    local s = enc({
      FlowFileInfos = { { FileIds = {}, FlowApprovers = { { SignComponents = {} }, {} }, Extra = { Tags = {} } }, {} },
      Empty = {},
    }, hint)
    local v = dec(s)
    assert.is_true(json.is_array(v.Empty))
    local first = v.FlowFileInfos[1]
    assert.is_true(json.is_array(first.FileIds))
    assert.is_true(json.is_array(first.FlowApprovers[1].SignComponents))
    assert.is_false(json.is_array(first.FlowApprovers[2])) -- an empty element of a struct list is an object
    assert.is_true(json.is_array(first.Extra.Tags))
    assert.is_false(json.is_array(v.FlowFileInfos[2]))
    assert.truthy(s:find('"SignComponents":[]', 1, true))
    assert.truthy(s:find('"Tags":[]', 1, true))
    assert.truthy(s:find('"FlowApprovers":[{"SignComponents":[]},{}]', 1, true))
  end)

  it("decodes [] as a marked array and {} as a plain table, so both round-trip", function()
    local v = dec('{"l":[],"o":{}}')
    assert.is_true(json.is_array(v.l))
    assert.is_nil(getmetatable(v.o))
    assert.same({ l = {}, o = {} }, v)
    assert.equal('{"x":[]}', enc(dec('{"x":[]}')))
    assert.equal('{"x":{}}', enc(dec('{"x":{}}')))
  end)
end)

describe("json numbers", function()
  it("prints integers exactly", function()
    assert.equal("0", enc(0))
    assert.equal("-1", enc(-1))
    assert.equal("1700000000", enc(1700000000))
    assert.equal("33162419560", enc(33162419560))
    assert.equal("9007199254740992", enc(2 ^ 53))
    assert.equal("-9007199254740992", enc(-(2 ^ 53)))
    assert.equal("1700000000", enc(1700000000.0))
    assert.equal("[0,-1,33162419560]", enc(dec("[0,-1,33162419560]")))
  end)

  local it54 = is54 and it or function() end
  local itjit = is54 and function() end or it

  it54("keeps the full int64 range on Lua 5.4", function()
    assert.equal("9223372036854775807", enc(math.maxinteger))
    assert.equal("-9223372036854775808", enc(math.mininteger))
    assert.equal("12345678901234567", enc(12345678901234567))
    assert.equal("9007199254740993", enc(9007199254740993))
    local v = dec("[12345678901234567,9223372036854775807,-9223372036854775808,1700000000,-0]")
    assert.equal(12345678901234567, v[1])
    assert.equal(math.maxinteger, v[2])
    assert.equal(math.mininteger, v[3])
    for i = 1, 5 do assert.equal("integer", math.type(v[i])) end
    -- beyond int64, and anything with a fraction or exponent, is a float
    assert.equal("float", math.type(dec("9223372036854775808")))
    assert.equal(9223372036854775808.0, dec("9223372036854775808"))
    assert.equal("float", math.type(dec("-9223372036854775809")))
    assert.equal("float", math.type(dec("1.0")))
    assert.equal("float", math.type(dec("1e2")))
  end)

  itjit("gives doubles on LuaJIT, integral ones printed without exponent", function()
    assert.equal(12345678901234568, dec("12345678901234567"))
    assert.equal("12345678901234568", enc(dec("12345678901234567")))
    assert.equal(-9223372036854775808, dec("-9223372036854775808"))
  end)

  it("prints floats shortest-round-trip", function()
    assert.equal("3.5", enc(3.5))
    assert.equal("0.1", enc(0.1))
    assert.equal(0.1, dec(enc(0.1)))
    assert.equal("1e+300", enc(1e300))
    assert.equal(1e300, dec(enc(1e300)))
    assert.equal("0.3333333333333333", enc(1 / 3))
    assert.equal("-2.5e-07", enc(-2.5e-7))
    assert.equal("1.7976931348623157e+308", enc(1.7976931348623157e308))
    -- the smallest denormal has few significant bits: 15 digits already read back exactly
    assert.equal(4.9406564584124654e-324, dec(enc(4.9406564584124654e-324)))
  end)

  it("round-trips random doubles bit for bit", function()
    math.randomseed(20211526)
    for _ = 1, 3000 do
      local x = (math.random() - 0.5) * 10 ^ math.random(-30, 30)
      local s = enc(x)
      assert.equal(x, dec(s), s)
      assert.is_nil(s:find("[^%d%.eE+-]")) -- never a locale comma, never a space
    end
  end)

  it("decodes numbers by hand where the result is exact and by strtod elsewhere", function()
    assert.equal(0.1, dec("0.1"))
    assert.equal(0.1, dec("1e-1"))
    assert.equal(0.1, dec("0.00000000000000000000000000000000001e34"))
    assert.equal(123.456, dec("123456e-3"))
    assert.equal(1.5e-300, dec("1.5e-300"))
    assert.equal(1.2345678901234568e+29, dec("123456789012345678901234567890.5"))
    assert.equal(0.0, dec("1e-400"))
    assert.equal(-2.5, dec("-2.5E+0"))
    assert.equal(0, dec("-0.0e-99999999999999999"))
  end)

  it("refuses NaN and infinities, with the path", function()
    assert.matches("NaN at top level", enc_err(0 / 0), 1, true)
    assert.matches("inf at top level", enc_err(1 / 0), 1, true)
    assert.matches("-inf at top level", enc_err(-1 / 0), 1, true)
    assert.matches("NaN at Agent.Ratio", enc_err({ Agent = { Ratio = 0 / 0 } }), 1, true)
    assert.matches("at byte 1", dec_err("NaN"), 1, true)
    assert.matches("at byte 2", dec_err("[Infinity]"), 1, true)
    assert.matches("number out of range at byte 2", dec_err("[1e400]"), 1, true)
    assert.matches("number out of range at byte 1", dec_err("-1e400"), 1, true)
  end)
end)

describe("json strings", function()
  it("escapes quotes, backslashes and control characters only", function()
    assert.equal('"a\\u0000b"', enc("a\0b"))
    assert.equal('"\\u0001\\u001f\\u000b"', enc("\1\31\11"))
    assert.equal('"\\b\\f\\n\\r\\t"', enc("\b\f\n\r\t"))
    assert.equal('"\\"\\\\"', enc('"\\'))
    assert.equal('"a/b"', enc("a/b"))
    assert.equal('"\127"', enc("\127"))
    assert.equal('"采购合同"', enc("采购合同"))
    assert.equal('"\255\128"', enc("\255\128")) -- UTF-8 is checked by validation, not here
    assert.equal('{"k\\n":"v"}', enc({ ["k\n"] = "v" }))
  end)

  it("escapes every byte value at every position of an 8-byte block, in short and long strings", function()
    -- the encoder tests 8 bytes at a time for bytes to escape; each position of a block must be seen
    local expected = {}
    for b = 0, 255 do
      local c = string.char(b)
      local named = ({ ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
        ["\r"] = "\\r", ["\t"] = "\\t" })[c]
      expected[b] = named or (b < 0x20 and string.format("\\u%04x", b)) or c
    end
    for _, size in ipairs({ 17, 600 }) do
      for b = 0, 255 do
        for at = 1, 17 do
          local s = string.rep("x", at - 1) .. string.char(b) .. string.rep("y", size - at)
          local want = '"' .. string.rep("x", at - 1) .. expected[b] .. string.rep("y", size - at) .. '"'
          if enc(s) ~= want then error(string.format("byte %d at %d of %d", b, at, size)) end
        end
      end
    end
  end)

  it("encodes long strings and buffers past the initial size", function()
    local long = string.rep("ab\"c\0", 20000)
    local s = enc({ long, long })
    assert.equal(long, dec(s)[2])
    assert.equal(2 + 2 * (2 + 20000 * 11) + 1, #s)
  end)

  it("decodes every escape, \\u with surrogate pairs, to UTF-8", function()
    assert.equal('"\\/\b\f\n\r\t', dec('"\\"\\\\\\/\\b\\f\\n\\r\\t"'))
    assert.equal("\0", dec('"\\u0000"'))
    assert.equal("é中", dec('"\\u00e9\\u4E2D"'))
    assert.equal("\240\159\152\128", dec('"\\ud83d\\ude00"'))
    assert.equal("x\240\144\128\128y", dec('"x\\uD800\\uDC00y"'))
    assert.equal("\244\143\191\191", dec('"\\udbff\\udfff"'))
    assert.equal("\127 \255", dec('"\127 \255"'))
    assert.equal("中", dec('"中"'))
  end)

  it("refuses bad strings with the byte offset", function()
    assert.matches("lone high surrogate in \\u escape at byte 3", dec_err('["\\ud83d"]'), 1, true)
    assert.matches("lone high surrogate in \\u escape at byte 2", dec_err('"\\ud83d\\u0041"'), 1, true)
    assert.matches("lone high surrogate", dec_err('"\\ud83dx"'), 1, true)
    assert.matches("lone low surrogate in \\u escape at byte 4", dec_err('"ab\\ude00"'), 1, true)
    assert.matches("invalid \\u escape at byte 2", dec_err('"\\u12"'), 1, true)
    assert.matches("invalid \\u escape at byte 2", dec_err('"\\u12g4"'), 1, true)
    assert.matches("invalid escape in string at byte 3", dec_err('"a\\x"'), 1, true)
    assert.matches("control character in string at byte 3", dec_err('"a\tb"'), 1, true)
    assert.matches("control character in string at byte 6", dec_err('"a\\nb\n"'), 1, true)
    assert.matches("unterminated string at byte 2", dec_err('["abc'), 1, true)
    assert.matches("unterminated string at byte 1", dec_err('"ab\\'), 1, true)
    assert.matches("unterminated string at byte 1", dec_err('"ab\\n'), 1, true)
  end)

  it("works in a locale whose decimal separator is a comma", function()
    local lua = os.getenv("ESSBASIC_LUA")
    local have = lua and io.open("/usr/share/i18n/locales/de_DE") and os.execute("command -v localedef >/dev/null")
    if not have then return pending("needs localedef, the de_DE source and ESSBASIC_LUA (tools/run-tests)") end
    local dir = os.tmpname()
    os.remove(dir)
    assert.truthy(os.execute("mkdir " .. dir .. " && localedef -i de_DE -f UTF-8 " .. dir .. "/de_DE.UTF-8"
      .. " >/dev/null 2>&1 || test -d " .. dir .. "/de_DE.UTF-8"))
    local script = [[
      assert(os.setlocale("de_DE.UTF-8", "numeric"), "locale")
      local c = require("essbasic.core")
      local v = c.json_decode("[3.5,0.1,-2.5e-7,123456789012345678901234567890.5,1.5e-300]")
      io.write(c.json_encode({ 3.5, 1 / 3, 1e300, -2.5e-7 }), " ",
        tostring(v[1] == 3.5 and v[2] == 0.1 and v[3] == -2.5e-7 and v[4] == 1.2345678901234568e+29
          and v[5] == 1.5e-300))
    ]]
    local p = io.popen("LOCPATH=" .. dir .. " " .. lua .. " -e '" .. script .. "' 2>&1")
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf " .. dir)
    assert.equal("[3.5,0.3333333333333333,1e+300,-2.5e-07] true", out)
  end)
end)

describe("json encoding errors name the path", function()
  it("refuses functions, threads and userdata other than null", function()
    local doc = { FlowFileInfos = { { FlowApprovers = {} }, { FlowApprovers = { { Mobile = print } } } } }
    local err = enc_err(doc)
    assert.matches("function at FlowFileInfos[2].FlowApprovers[1].Mobile", err, 1, true)
    assert.matches("thread at co", enc_err({ co = coroutine.create(function() end) }), 1, true)
    assert.matches("userdata at [2]", enc_err({ 1, io.stdout }), 1, true)
    -- null in a list is null; a null member is absent, as the decoder reads {"a":null}
    assert.equal('[null,{}]', enc({ json.null, { a = json.null } }))
    assert.equal("null", enc(nil))
  end)

  it("refuses sparse arrays, holes and mixed keys", function()
    assert.matches("sparse array: missing element (use json.null for null) at a[2]",
      enc_err({ a = { 1, nil, 3 } }), 1, true)
    assert.matches("sparse array", enc_err({ [2] = "x" }), 1, true)
    assert.matches("at [1]", enc_err({ [2] = "x" }), 1, true)
    assert.matches("at x.y[4]", enc_err({ x = { y = { 1, 2, 3, [5] = 5 } } }), 1, true)
    assert.matches("mixes string keys and array indexes at a", enc_err({ a = { 1, x = 2 } }), 1, true)
    assert.matches("mixes string keys and array indexes at top level", enc_err({ x = 1, [1] = 2 }), 1, true)
    assert.matches("marked as an array has string keys at l", enc_err({ l = json.array({ x = 1 }) }), 1, true)
    assert.matches("mixes", enc_err({ l = json.array({ 1, x = 1 }) }), 1, true)
    assert.matches("sparse", enc_err({ l = json.array({ [3] = 1 }) }), 1, true)
  end)

  it("refuses keys that are neither strings nor array indexes", function()
    assert.matches("key of type number", enc_err({ a = { [1.5] = 1 } }), 1, true)
    assert.matches("at a", enc_err({ a = { [1.5] = 1 } }), 1, true)
    assert.matches("key of type boolean", enc_err({ [true] = 1 }), 1, true)
    assert.matches("key of type number", enc_err({ [0] = "a", [1] = "b" }), 1, true)
    assert.matches("key of type number", enc_err({ [-1] = "a" }), 1, true)
    assert.matches("key of type table", enc_err({ [{}] = 1 }), 1, true)
  end)

  it("allows 100 levels, refuses 101 and catches cycles without crashing", function()
    local t = {}
    for _ = 1, 99 do t = { t } end
    assert.equal(string.rep("[", 99) .. "{}" .. string.rep("]", 99), enc(t))
    assert.matches("nested too deep (cycle?)", enc_err({ t }), 1, true)
    local c = {}
    c.self = c
    assert.matches("nested too deep (cycle?) at self.self.self", enc_err(c), 1, true)
    local a = {}
    a[1] = a
    assert.matches("nested too deep (cycle?) at [1][1][1]", enc_err(a), 1, true)
  end)
end)

describe("json decoding", function()
  it("drops null members, keeps nulls in arrays and lets the last duplicate win", function()
    local v = dec('{"a":null,"b":1}')
    assert.is_nil(v.a)
    assert.is_nil(next(v, next(v))) -- only one key
    local arr = dec("[null,1,null]")
    assert.equal(3, #arr)
    assert.equal(json.null, arr[1])
    assert.equal(json.null, arr[3])
    assert.equal(2, dec('{"a":1,"a":2}').a)
    assert.is_nil(dec('{"a":1,"a":null}').a)
    assert.equal(json.null, dec(" null "))
    assert.is_true(dec("true"))
    assert.is_false(dec("false"))
    assert.equal("s", dec('"s"'))
  end)

  it("reports the byte offset of every syntax error", function()
    local cases = {
      { "", "empty input at byte 1" },
      { "   ", "empty input at byte 4" },
      { "[1,]", "unexpected ']', expected a value at byte 4" },
      { '{"a" 1}', "unexpected '1', expected ':' at byte 6" },
      { '{"a":1,}', "unexpected '}', expected a string key at byte 8" },
      { "{1:2}", "expected a string key at byte 2" },
      { "[1 2]", "expected ',' or ']' at byte 4" },
      { '{"a":1 "b":2}', "expected ',' or '}' at byte 8" },
      { "[1", "unexpected end of input, expected ',' or ']' at byte 3" },
      { '{"a":', "unexpected end of input, expected a value at byte 6" },
      { "tru", "expected a value at byte 1" },
      { "nul", "expected a value at byte 1" },
      { "01", "unexpected data after the value at byte 2" },
      { "[1] x", "unexpected data after the value at byte 5" },
      { "-", "invalid number at byte 1" },
      { "[-a]", "invalid number at byte 2" },
      { "1.", "invalid number at byte 1" },
      { "1.e3", "invalid number at byte 1" },
      { "1e", "invalid number at byte 1" },
      { "1e+", "invalid number at byte 1" },
      { "+1", "unexpected '+', expected a value at byte 1" },
      { ".5", "expected a value at byte 1" },
      { "\239\187\191{}", "unexpected byte 0xef, expected a value at byte 1" },
      { "[\0]", "unexpected byte 0x00, expected a value at byte 2" },
      { "{} {}", "unexpected data after the value at byte 4" },
    }
    for _, c in ipairs(cases) do
      assert.matches(c[2], dec_err(c[1]), 1, true)
    end
  end)

  it("allows 200 levels and refuses deeper nesting without crashing", function()
    assert.is_table(dec(string.rep("[", 200) .. string.rep("]", 200)))
    local too_deep = string.rep("[", 201) .. string.rep("]", 201)
    assert.matches("nesting deeper than 200 at byte 201", dec_err(too_deep), 1, true)
    assert.matches("nesting deeper than 200", dec_err(string.rep("[", 10000)), 1, true)
    assert.matches("nesting deeper than 200", dec_err(string.rep('{"a":', 10000)), 1, true)
    assert.matches("nesting deeper than 200", dec_err(string.rep('[{"a":', 5000)), 1, true)
  end)
end)

-- A ChannelCreateFlowGroupByFiles request as a user builds it, with the schema's shape hint for the fields used.
local function sample_request()
  return {
    Agent = { AppId = "394fc83e7a1cc97ba27c3342f425c836", ProxyOrganizationOpenId = "org_1",
      ProxyOperator = { OpenId = "kevin" } },
    FlowGroupName = "采购合同组",
    FlowFileInfos = {
      {
        FileIds = { "yDR1nUU06b46rUy0fKyKocxqVM6QwE88" },
        FlowName = "番茄的采购合同", FlowType = "采购合同", Deadline = 1700000000, Unordered = true,
        CustomerData = "a/b\"c\\d\n",
        FlowApprovers = {
          { ApproverType = "ENTERPRISESERVER", OrganizationOpenId = "org_1", OpenId = "zk",
            SignComponents = { { ComponentType = "SIGN_SEAL", FileIndex = 0, ComponentPage = 1,
              ComponentPosX = 100.5, ComponentPosY = 100, ComponentWidth = 100, ComponentHeight = 100,
              ComponentRequired = true } } },
          { ApproverType = "PERSON", Name = "典子谦", Mobile = "13200000000", SignComponents = {} },
        },
        CcInfos = {},
      },
      { FileIds = { "f2" }, FlowName = "黄瓜的采购合同", FlowApprovers = { { ApproverType = "PERSON" } },
        NeedSignReview = false, Deadline = 33162419560 },
    },
  }
end

local function sample_hint()
  local component = { ComponentPosX = { type = "float" }, FileIndex = { type = "int64" } }
  local approver = { SignComponents = { list = true, type = "Component", fields = component },
    Mobile = { type = "string" } }
  local info = {
    FileIds = { list = true, type = "string" },
    FlowApprovers = { list = true, type = "FlowApproverInfo", fields = approver },
    CcInfos = { list = true, type = "CcInfo", fields = { Mobile = { type = "string" } } },
    Deadline = { type = "int64" },
  }
  return {
    Agent = { type = "Agent", fields = { ProxyOperator = { type = "UserInfo", fields = {} } } },
    FlowFileInfos = { list = true, type = "FlowFileInfo", fields = info },
    FlowGroupName = { type = "string" },
  }
end

describe("json with an essbasic request", function()
  it("encodes the request to the expected structure with [] for empty lists", function()
    local s = enc(sample_request(), sample_hint())
    local expected = sample_request()
    local v = dec(s)
    assert.same(expected, v)
    assert.is_true(json.is_array(v.FlowFileInfos[1].CcInfos))
    assert.is_true(json.is_array(v.FlowFileInfos[1].FlowApprovers[2].SignComponents))
    for _, frag in ipairs({ '"CcInfos":[]', '"SignComponents":[]', '"Deadline":1700000000',
      '"Deadline":33162419560', '"ComponentPosX":100.5', '"FileIds":["f2"]', '"FlowGroupName":"采购合同组"',
      '"CustomerData":"a/b\\"c\\\\d\\n"', '"NeedSignReview":false' }) do
      assert.truthy(s:find(frag, 1, true), frag)
    end
    assert.is_nil(s:find("[\n\r\t ]"), "no whitespace between tokens")
    -- without the hint the empty lists become objects: the reason the hint exists
    local plain = enc(sample_request())
    assert.truthy(plain:find('"CcInfos":{}', 1, true))
  end)

  it("gives the same bytes each time for the same table", function()
    local t = sample_request()
    assert.equal(enc(t, sample_hint()), enc(t, sample_hint()))
  end)
end)

describe("json against hostile input", function()
  local alphabet = '{}[]":,0123456789.-+eE tfnrual\\/u\0\n\255dD'

  local function check(s)
    local ok, v, err = pcall(decode, s)
    assert.is_true(ok, v)
    if v == nil then
      assert.is_string(err)
      assert.truthy(err:find(" at byte %d+$"), err)
    else
      -- whatever decodes must encode again and decode to the same thing
      local again = enc(v)
      assert.same(v, dec(again))
    end
  end

  it("survives 2000 random byte strings", function()
    math.randomseed(42)
    local bytes = {}
    for i = 1, 2000 do
      local n = math.random(0, 48)
      for j = 1, n do
        if i % 2 == 0 then
          bytes[j] = string.char(math.random(0, 255))
        else
          local k = math.random(1, #alphabet)
          bytes[j] = alphabet:sub(k, k)
        end
      end
      check(table.concat(bytes, "", 1, n))
    end
  end)

  it("encodes 2000 random tables with random hints: a decodable string or an error, never a crash", function()
    math.randomseed(99)
    local names = { "a", "b", "FileIds", "", "k\0" }
    local leaves = { 1, -1.5, 0 / 0, 1 / 0, "s\1\"", true, false, print, json.null, 2 ^ 60 }
    local function gen(depth)
      local r = math.random(1, 10)
      if depth > 4 or r <= 4 then return leaves[math.random(1, #leaves)] end
      local t = r == 5 and json.array() or {}
      for i = 1, math.random(0, 4) do
        local k = ({ i, names[math.random(1, #names)], math.random(1, 6), 1.5 })[math.random(1, 4)]
        t[k] = gen(depth + 1)
      end
      return t
    end
    local function gen_hint(depth)
      local h = {}
      if depth > 3 then return h end
      for _, name in ipairs(names) do
        if math.random(1, 2) == 1 then
          h[name] = { list = math.random(1, 2) == 1, fields = math.random(1, 2) == 1 and gen_hint(depth + 1) or nil }
        end
      end
      return h
    end
    local encoded = 0
    for _ = 1, 2000 do
      local ok, s, err = pcall(encode, gen(1), gen_hint(1))
      assert.is_true(ok, s)
      if s then
        encoded = encoded + 1
        assert.is_not_nil(decode(s), s)
      else
        assert.truthy(err:find(" at "), err)
      end
    end
    assert.is_true(encoded > 100, "some random tables encode: " .. encoded)
  end)

  it("survives 2000 random mutations of a valid request", function()
    math.randomseed(7)
    local base = "[" .. enc(sample_request(), sample_hint()) .. ',["\\ud83d\\ude00",-1.5e-3,null,{}]]'
    assert.is_table(dec(base))
    local decoded_some = 0
    for _ = 1, 2000 do
      local s = base
      for _ = 1, math.random(1, 4) do
        local pos = math.random(1, #s)
        local what = math.random(1, 4)
        local byte = string.char(math.random(0, 255))
        if what == 1 then
          s = s:sub(1, pos - 1) .. byte .. s:sub(pos + 1)
        elseif what == 2 then
          s = s:sub(1, pos - 1) .. byte .. s:sub(pos)
        elseif what == 3 then
          s = s:sub(1, pos - 1) .. s:sub(pos + 1)
        else
          s = s:sub(1, pos)
        end
      end
      check(s)
      if decode(s) ~= nil then decoded_some = decoded_some + 1 end
    end
    assert.is_true(decoded_some > 50, "some mutations stay valid: " .. decoded_some)
  end)
end)

describe("lua-cjson interop: a request as an OpenResty handler has it", function()
  -- Debian's lua-cjson 2.1.0 (tools/install-deps): null only, numbers decoded as floats on Lua 5.4.
  local cjson = require("cjson")
  local validate = require("essbasic.validate")
  local api = require("essbasic.api")
  local read = require("helpers.files").read
  local ACTION = "ChannelCreateFlowGroupByFiles"
  local TEXT = read("spec/data/ChannelCreateFlowGroupByFiles.request.json")

  -- OpenResty's cjson markers (spec/helpers/openresty_cjson.c), built for this interpreter, loaded as `name`.
  local markers
  local function with_openresty_cjson(name, fn)
    if not markers then
      local dir = assert(io.popen("mktemp -d /tmp/essbasic-cjson.XXXXXX")):read("*l")
      local inc = rawget(_G, "jit") and "/usr/include/luajit-2.1" or ("/usr/include/lua" .. _VERSION:match("%d%.%d"))
      local so = dir .. "/cjson.so"
      local cmd = string.format("cc -shared -fPIC -I%s -o %s spec/helpers/openresty_cjson.c 2>&1", inc, so)
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      assert.is_true(p:close(), out)
      markers = assert(package.loadlib(so, "luaopen_cjson"))()
      os.remove(so)
      os.remove(dir)
    end
    local saved = package.loaded[name]
    package.loaded[name] = markers
    local ok, err = pcall(fn, markers)
    package.loaded[name] = saved
    assert(ok, err)
  end

  it("is the same null: cjson.null is json.null", function()
    assert.equal(json.null, cjson.null)
  end)

  it("takes the official example as cjson decodes it, with optional members set to cjson.null", function()
    local r = cjson.decode(TEXT)
    local component = r.FlowFileInfos[1].FlowApprovers[1].SignComponents[1]
    if is54 then assert.equal("float", math.type(component.ComponentPage)) end -- 1.0: cjson 2.1.0 on Lua 5.4
    r.ApproverVerifyType = cjson.null -- the member of the issue: "expected a string, found null" before
    r.FlowFileInfos[1].FlowDescription = cjson.null
    r.FlowFileInfos[2].FlowApprovers[1].NotifyType = cjson.null
    component.ComponentValue = cjson.null
    local body, err = validate.request_body(ACTION, r)
    assert.is_string(body, err and err.message)
    -- the same request decoded by essbasic, without those members
    local want = dec(TEXT)
    want.FlowFileInfos[1].FlowDescription = nil
    want.FlowFileInfos[1].FlowApprovers[1].SignComponents[1].ComponentValue = nil
    assert.are.same(want, dec(body))
    assert.is_nil(body:find("null", 1, true))
    assert.is_nil(body:find("%d%.0[,}%]]"), body) -- integral floats go out as integers
    assert.is_truthy(body:find('"ComponentPage":1', 1, true))
    -- unvalidated, the encoder alone writes the same members
    local plain = enc(r, api.request_hint(ACTION))
    assert.are.same(dec(body), dec(plain))
  end)

  it("counts a required member that is cjson.null as missing", function()
    local r = cjson.decode(TEXT)
    r.FlowGroupName = cjson.null
    r.Agent.ProxyOperator.OpenId = cjson.null
    local ok, err = validate.request(ACTION, r)
    assert.is_nil(ok)
    assert.are.same({ "Agent.ProxyOperator.OpenId", "FlowGroupName" },
      { err.problems[1].path, err.problems[2].path })
    assert.are.same({ "MissingParameter", "MissingParameter" }, { err.problems[1].code, err.problems[2].code })
  end)

  it("sends cjson.null in a list as null", function()
    local params = cjson.decode('{"Agent":{"AppId":"a","ProxyOrganizationOpenId":"o","ProxyOperator":{"OpenId":"p"}},'
      .. '"FlowIds":["f1",null,"f3"]}')
    assert.equal(cjson.null, params.FlowIds[2])
    local body = assert(validate.request_body("DescribeFlowDetailInfo", params))
    assert.is_truthy(body:find('"FlowIds":["f1",null,"f3"]', 1, true), body)
    assert.equal('["f1",null]', enc({ "f1", cjson.null }))
  end)

  for _, name in ipairs({ "cjson", "cjson.safe" }) do
    it("honours OpenResty's empty_array, array_mt and empty_array_mt (loaded as " .. name .. ")", function()
      with_openresty_cjson(name, function(or_cjson)
        assert.equal(json.null, or_cjson.null)
        -- the codec
        assert.equal("[]", enc(or_cjson.empty_array))
        assert.equal('{"a":[]}', enc({ a = or_cjson.empty_array }))
        assert.equal("[]", enc(setmetatable({}, or_cjson.empty_array_mt)))
        assert.equal("[]", enc(setmetatable({}, or_cjson.array_mt)))
        assert.equal('["x"]', enc(setmetatable({ "x" }, or_cjson.array_mt)))
        assert.is_true(json.is_array(setmetatable({}, or_cjson.array_mt)))
        assert.is_true(json.is_empty_array(or_cjson.empty_array))
        assert.is_false(json.is_empty_array(json.null))
        -- the validator: an empty optional list, a marked list, a marked table where an object is wanted
        local r = cjson.decode(TEXT)
        r.FlowFileInfos[1].Components = or_cjson.empty_array
        r.FlowFileInfos[2].FlowApprovers = setmetatable(r.FlowFileInfos[2].FlowApprovers, or_cjson.array_mt)
        r.FlowFileInfos[2].FlowApprovers[2].SignComponents = setmetatable({}, or_cjson.empty_array_mt)
        local body, err = validate.request_body(ACTION, r)
        assert.is_string(body, err and err.message)
        local sent = dec(body)
        assert.are.same({}, sent.FlowFileInfos[1].Components)
        assert.is_true(json.is_array(sent.FlowFileInfos[1].Components))
        assert.is_truthy(body:find('"SignComponents":[]', 1, true))
        r.Agent = setmetatable({}, or_cjson.empty_array_mt)
        local ok, why = validate.request(ACTION, r)
        assert.is_nil(ok)
        assert.are.equal("Agent", why.problems[1].path)
        assert.are.equal("a list", why.problems[1].found)
        -- a required list given as empty_array is still too short
        r = cjson.decode(TEXT)
        r.FlowFileInfos = or_cjson.empty_array
        ok, why = validate.request(ACTION, r)
        assert.is_nil(ok)
        assert.are.equal("FlowFileInfos", why.problems[1].path)
        assert.are.equal("0 items", why.problems[1].found)
      end)
      -- unloaded again: the markers are nothing special
      assert.is_false(json.is_empty_array(markers.empty_array))
      assert.is_truthy(enc_err(markers.empty_array):find("light userdata", 1, true))
    end)
  end
end)
