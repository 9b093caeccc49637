-- Personal data stays out of errors and logs by default (issue 19): essbasic.personal's one list of members and
-- its masking, through validation problems (the C checker refuses, the Lua walk names the problem), tostring,
-- call errors and debug log lines, callback failures and the sandbox's log. A test here fails when a member whose
-- name looks personal appears in the schema without being classified in lua/essbasic/personal.lua.

local personal = require("essbasic.personal")
local validate = require("essbasic.validate")
local errors = require("essbasic.errors")
local api = require("essbasic.api")
local core = require("essbasic.core")
local json = require("essbasic.json")
local callback = require("essbasic.callback")
local essbasic = require("essbasic")
local read = require("helpers.files").read

local structs = api.schema.structs
local mask = personal.mask

-- Names that look personal: every string member of the schema whose name matches one of these must be in
-- personal.MEMBERS (masked) or personal.NOT_PERSONAL (with the reason it is not).
local LOOKS_PERSONAL = { "Name", "Mobile", "Phone", "Tel", "IdCard", "Card", "Email", "Mail", "Bank", "Account",
  "Address", "Addr", "Ip$", "Legal", "Passport", "Birth", "Signer", "Contact" }

local copy = require("helpers.tables").deep_copy

local EXAMPLE = assert(core.json_decode(read("spec/data/ChannelCreateFlowGroupByFiles.request.json")))
local GROUP = "ChannelCreateFlowGroupByFiles"

local function problem_at(err, path)
  for _, p in ipairs(err.problems) do
    if p.path == path then return p end
  end
end

local function lacks(text, raw, what)
  assert.is_nil(text:find(raw, 1, true), (what or "text") .. " holds " .. raw .. ": " .. text)
end

-- Every way the validator is asked: the C checker first (validate.request, request_body) and the Lua walk alone.
local VALIDATORS = {
  request = validate.request, request_body = validate.request_body,
  reference_request = validate._internal.reference_request,
}

-- Checks that every validator refuses params with a problem at path whose found is `found` (masked), that no
-- message or tostring holds `raw`, and that show_personal_data = true shows `shown` instead.
local function masked_everywhere(action, params, path, found, raw, shown)
  if validate._internal.fast_check(action, params) ~= nil then
    assert.is_false(validate._internal.fast_check(action, params), "the C checker let " .. path .. " through")
  end
  for name, fn in pairs(VALIDATORS) do
    local ok, err = fn(action, params)
    assert.is_nil(ok, name)
    local p = problem_at(err, path)
    assert.is_table(p, name .. ": no problem at " .. path .. " in " .. err.message)
    assert.are.equal(found, p.found, name .. " " .. path)
    lacks(p.message, raw, name .. " problem message")
    lacks(err.message, raw, name .. " message")
    lacks(tostring(err), raw, name .. " tostring")
    assert.is_nil(err.personal_data_shown)
    local _, shown_err = fn(action, params, true)
    assert.are.equal(shown, problem_at(shown_err, path).found, name .. " with show_personal_data")
    assert.is_true(shown_err.personal_data_shown)
    assert.truthy(tostring(shown_err):find(raw, 1, true), name .. ": tostring under show_personal_data")
  end
end

describe("personal.mask", function()
  local cases = {
    -- ID numbers of every kind (mainland ID card and residence permit: 18; old ID card: 15; HK/Macao permit: 11
    -- and the old 9)
    { "11010519491231002X", "110105********002X" },
    { "11010519491231002Y", "110105********002Y" },
    { "810000194912310021", "810000********0021" },
    { "110105491231002", "11010******1002" },
    { "H1234567890", "H123****890" },
    { "M12345678", "M12****78" },
    -- mobiles (and the 10-digit typo of the issue)
    { "13800138000", "1380****000" },
    { 13800138000, "1380****000" },
    { 13800138000.0, "1380****000" },
    { "1380013800", "1380****00" },
    { "+8613800138000", "+8613******000" },
    -- names (characters, not bytes)
    { "张", "*" }, { "张三", "张*" }, { "张三丰", "张*丰" }, { "欧阳娜娜", "欧**娜" },
    { "Zhang San", "Zha****an" },
    -- e-mail, bank account, IP address
    { "zhangsan@example.com", "zhangs**********.com" },
    { "6222021234567890123", "622202*********0123" },
    { "203.0.113.5", "203.****3.5" },
    { "", "" },
  }
  for _, c in ipairs(cases) do
    it("masks " .. tostring(c[1]) .. " as " .. c[2], function()
      assert.are.equal(c[2], mask(c[1]))
    end)
  end

  it("keeps the length in characters, hides at least a third and never more than 6 + 4 characters show", function()
    for _, unit in ipairs({ "7", "合" }) do
      for n = 1, 60 do
        local s = unit:rep(n)
        local m = mask(s)
        local stars = select(2, m:gsub("%*", ""))
        local chars = select(2, m:gsub("[^\128-\191]", ""))
        assert.are.equal(n, chars, "length of " .. m)
        assert.is_true(stars >= 1 and stars >= n / 3 and n - stars <= 10, m)
      end
    end
  end)

  it("leaves values that hold no personal data as tostring gives them", function()
    assert.are.equal("true", mask(true))
    assert.are.equal("nil", mask(nil))
  end)
end)

-- Every string member (or list of strings) of every structure of a schema, by name → { "Struct.Member", ... }.
local function string_members(of)
  local members = {}
  for sname, st in pairs(of) do
    for fname, f in pairs(st.fields) do
      if f.type == "string" then
        members[fname] = members[fname] or {}
        table.insert(members[fname], sname .. "." .. fname)
      end
    end
  end
  return members
end

-- The string members of a schema whose names look personal and that neither list classifies.
local function unclassified(of)
  local found = {}
  for fname, where in pairs(string_members(of)) do
    for _, pat in ipairs(LOOKS_PERSONAL) do
      if fname:find(pat) and not personal.MEMBERS[fname] and not personal.NOT_PERSONAL[fname] then
        table.sort(where)
        found[#found + 1] = fname .. " (" .. table.concat(where, ", ") .. ")"
        break
      end
    end
  end
  table.sort(found)
  return found
end

describe("personal.MEMBERS, the one list", function()
  local members = string_members(structs)

  it("classifies every member of the schema whose name looks personal", function()
    assert.are.same({}, unclassified(structs),
      "add these to personal.MEMBERS (masked) or personal.NOT_PERSONAL (why not)")
  end)

  it("fails on a personal-looking member that a new schema would bring", function()
    local grown, fields = {}, {}
    for name, st in pairs(structs) do grown[name] = st end
    for name, f in pairs(structs.FlowApproverInfo.fields) do fields[name] = f end
    fields.GuardianIdCardNumber = { type = "string" }
    fields.GuardianPhone = { type = "string" }
    fields.GuardianAge = { type = "int64" } -- not a string: nothing to echo
    grown.FlowApproverInfo = { fields = fields }
    assert.are.same({ "GuardianIdCardNumber (FlowApproverInfo.GuardianIdCardNumber)",
      "GuardianPhone (FlowApproverInfo.GuardianPhone)" }, unclassified(grown))
  end)

  it("names only members the schema has, each in one of the two lists, with a known kind", function()
    local kinds = { id_number = true, mobile = true, name = true, email = true, bank_account = true, ip = true }
    for fname, kind in pairs(personal.MEMBERS) do
      assert.is_table(members[fname], fname .. " is in no structure")
      assert.is_true(kinds[kind], fname .. ": kind " .. tostring(kind))
      assert.is_nil(personal.NOT_PERSONAL[fname], fname .. " is in both lists")
      assert.is_true(personal.is_personal(fname))
    end
    for fname, why in pairs(personal.NOT_PERSONAL) do
      assert.is_table(members[fname], fname .. " is in no structure")
      assert.is_string(why)
    end
  end)

  it("covers ID numbers of every kind, mobiles, names, e-mail and bank fields of the schema", function()
    for fname in pairs(members) do
      if fname:find("IdCardNumber$") then assert.are.equal("id_number", personal.MEMBERS[fname], fname) end
      if fname:find("Mobile$") then assert.are.equal("mobile", personal.MEMBERS[fname], fname) end
      if fname:find("Email") then assert.are.equal("email", personal.MEMBERS[fname], fname) end
      if fname:find("^Bank") then assert.are.equal("bank_account", personal.MEMBERS[fname], fname) end
    end
    for _, fname in ipairs({ "Name", "ApproverName", "UserName", "LegalName", "AdminName" }) do
      assert.are.equal("name", personal.MEMBERS[fname], fname)
    end
  end)
end)

describe("validation problems mask personal data", function()
  local function approver(r, contract, n) return r.FlowFileInfos[contract].FlowApprovers[n] end

  it("prints the issue's example masked: the ID number in message, found and tostring", function()
    local r = copy(EXAMPLE)
    approver(r, 1, 2).IdCardType = "ID_CARD"
    approver(r, 1, 2).IdCardNumber = "11010519491231002Y"
    local path = "FlowFileInfos[1].FlowApprovers[2].IdCardNumber"
    masked_everywhere(GROUP, r, path, '"110105********002Y"', "11010519491231002Y", '"11010519491231002Y"')
    local _, err = validate.request(GROUP, r)
    assert.are.equal("essbasic: InvalidParameter: 1 problem in the ChannelCreateFlowGroupByFiles "
      .. "request:\n  " .. path .. ': expected an ID number matching IdCardType, found "110105********002Y"',
      tostring(err))
  end)

  it("masks an ID number of every IdCardType that does not match its type", function()
    local cases = {
      { nil, "1101051949123100", '"110105******3100"' },               -- no type: ID_CARD, 16 characters
      { "ID_CARD", "11010519491231002x", '"110105********002x"' },      -- lower-case x
      { "HONGKONG_AND_MACAO", "H123456789", '"H123****89"' },           -- 10 characters
      { "HONGKONG_AND_MACAO", "11010519491231002X", '"110105********002X"' },
      { "HONGKONG_MACAO_AND_TAIWAN", "81000019491231002", '"810000*******1002"' },
    }
    for _, c in ipairs(cases) do
      local r = copy(EXAMPLE)
      approver(r, 2, 1).IdCardType, approver(r, 2, 1).IdCardNumber = c[1], c[2]
      masked_everywhere(GROUP, r, "FlowFileInfos[2].FlowApprovers[1].IdCardNumber", c[3], c[2], '"' .. c[2] .. '"')
    end
    local ok, err = validate.request("CreateSignUrls", { Agent = EXAMPLE.Agent, FlowIds = { "f" },
      IdCardType = "HONGKONG_AND_MACAO", IdCardNumber = "M1234567890123" })
    assert.is_nil(ok)
    assert.are.equal('"M1234******123"', problem_at(err, "IdCardNumber").found)
  end)

  it("masks a mobile that fails its format, in FlowApproverInfo and in CreateSignUrls", function()
    local r = copy(EXAMPLE)
    approver(r, 3, 1).Mobile = "1380013800"
    masked_everywhere(GROUP, r, "FlowFileInfos[3].FlowApprovers[1].Mobile", '"1380****00"', "1380013800",
      '"1380013800"')
    masked_everywhere("CreateSignUrls", { Agent = EXAMPLE.Agent, FlowIds = { "f" }, Mobile = "+8613800138000" },
      "Mobile", '"+8613******000"', "8613800138000", '"+8613800138000"')
  end)

  it("masks a name, an e-mail and an IP address where the problem echoes them", function()
    local r = copy(EXAMPLE)
    approver(r, 1, 1).Name = 12345
    masked_everywhere(GROUP, r, "FlowFileInfos[1].FlowApprovers[1].Name", "12**5", "12345", "12345")
    r = copy(EXAMPLE)
    approver(r, 1, 1).ApproverEmail = { "zhangsan@example.com" }
    local ok, err = validate.request(GROUP, r)
    assert.is_nil(ok) -- a list for a string: no value is echoed at all
    lacks(tostring(err), "zhangsan")
    -- a disabled member is sent (docs/builders.md), but checked like any other: a number for its string is refused
    masked_everywhere("ChannelDescribeUserAutoSignStatus", { Agent = EXAMPLE.Agent,
      SceneKey = "E_PRESCRIPTION_AUTO_SIGN", Operator = { OpenId = "op", ClientIp = 2030113005 } },
      "Operator.ClientIp", "2030****05", "2030113005", "2030113005")
  end)

  it("masks a value shaped like an ID number or a mobile in a member that is not on the list", function()
    local r = copy(EXAMPLE)
    approver(r, 1, 1).ApproverType = "13800138000" -- fields swapped by mistake
    masked_everywhere(GROUP, r, "FlowFileInfos[1].FlowApprovers[1].ApproverType", '"1380****000"', "13800138000",
      '"13800138000"')
    -- and leaves other values alone
    r = copy(EXAMPLE)
    approver(r, 1, 1).ApproverType = "PERSONS"
    local _, err = validate.request(GROUP, r)
    assert.are.equal('"PERSONS"', problem_at(err, "FlowFileInfos[1].FlowApprovers[1].ApproverType").found)
  end)

  -- The paths from an action's input to each personal member, through structures (a list: one element), no
  -- structure twice on a path, no disabled structure on the way.
  local function personal_paths(sname, segs, on_path, out)
    local st = structs[sname]
    for _, fname in ipairs(st.order) do
      local f = st.fields[fname]
      local here = { name = fname, list = f.list, disabled = f.disabled }
      if structs[f.type] then
        if not on_path[f.type] and not f.disabled and #segs < 6 then
          on_path[f.type] = true
          segs[#segs + 1] = here
          personal_paths(f.type, segs, on_path, out)
          segs[#segs] = nil
          on_path[f.type] = nil
        end
      elseif personal.MEMBERS[fname] and f.type == "string" then
        local p = {}
        for i = 1, #segs do p[i] = segs[i] end
        p[#p + 1] = here
        out[#out + 1] = p
      end
    end
    return out
  end

  local function request_for(segs, leaf_value)
    local params, path = {}, {}
    local cur = params
    for i = 1, #segs - 1 do
      local obj = {}
      cur[segs[i].name] = segs[i].list and { obj } or obj
      path[#path + 1] = (i > 1 and "." or "") .. segs[i].name .. (segs[i].list and "[1]" or "")
      cur = obj
    end
    local leaf = segs[#segs]
    cur[leaf.name] = leaf.list and { leaf_value } or leaf_value
    path[#path + 1] = (#segs > 1 and "." or "") .. leaf.name .. (leaf.list and "[1]" or "")
    return params, table.concat(path)
  end

  it("masks every member on the list, in every request that reaches it (C checker, then the Lua walk)", function()
    local checked = {}
    for _, action in ipairs(api.actions()) do
      for _, segs in ipairs(personal_paths(api.action(action).input, {}, {}, {})) do
        local leaf = segs[#segs]
        -- a string member given a number (a mobile without quotes); disabled members are checked alike
        local params, path = request_for(segs, 13800138000)
        masked_everywhere(action, params, path, "1380****000", "13800138000", "13800138000")
        checked[leaf.name] = true
      end
    end
    -- every member of the list that a request can hold was reached
    for fname in pairs(personal.MEMBERS) do
      local in_request = false
      for sname, st in pairs(structs) do
        if st.fields[fname] and st.kind ~= "response" and sname:find("Request$") then in_request = true end
      end
      if in_request then assert.is_true(checked[fname], fname .. " was not reached") end
    end
  end)

  it("masks every member on the list in every structure, through validate.member (the builders' check)", function()
    for sname, st in pairs(structs) do
      for fname, f in pairs(st.fields) do
        if personal.MEMBERS[fname] and f.type == "string" then
          local ok, p = validate.member(sname, fname, f.list and { 13800138000 } or 13800138000)
          assert.is_nil(ok)
          assert.are.equal("1380****000", p.found, sname .. "." .. fname)
          lacks(p.message, "13800138000", sname .. "." .. fname)
          local _, shown = validate.member(sname, fname, 13800138000, nil, true)
          assert.truthy(shown.found:find("13800138000", 1, true))
        end
      end
    end
  end)

  it("keeps the full value in the request table itself", function()
    local r = copy(EXAMPLE)
    approver(r, 1, 1).Mobile = "1380013800"
    validate.request(GROUP, r)
    assert.are.equal("1380013800", approver(r, 1, 1).Mobile)
  end)
end)

describe("tostring of an error", function()
  local ECHO = "手机号13800138000与身份证号11010519491231002X不匹配; 通行证H1234567890; mail zhangsan@example.com"

  it("masks ID numbers, mobiles, permits and e-mail addresses a message quotes, leaving the message as made", function()
    local err = errors.new{ kind = "service", code = "InvalidParameter.Mobile", message = ECHO, request_id = "r-1" }
    local s = tostring(err)
    for _, raw in ipairs({ "13800138000", "11010519491231002X", "H1234567890", "zhangsan@" }) do lacks(s, raw) end
    assert.truthy(s:find("手机号1380****000与身份证号110105********002X不匹配", 1, true))
    assert.truthy(s:find("[request_id=r-1]", 1, true))
    assert.are.equal(ECHO, err.message)
  end)

  it("masks members of a JSON excerpt, even one cut short", function()
    local err = errors.new{ kind = "parse", code = errors.PARSE_JSON, message = 'the body is not JSON: '
      .. '{"Response":{"FlowDetailInfos":[{"Name":"张三丰","Mobile":"13800138000","FlowName":"劳动合同"},{"Name":"李' }
    local s = tostring(err)
    assert.truthy(s:find('"Name":"张*丰","Mobile":"1380****000","FlowName":"劳动合同"},{"Name":"*', 1, true), s)
  end)

  it("leaves ids, times and sizes alone", function()
    local message = "FlowId yDwFoUUckpsmiu7vUuO4bPRevHaxW8nm, RequestId 0b6e4b1c-5c3a-4d2e-9f8a-123456789012, "
      .. "Deadline 1700000000 (1700000000000 ms), 10485761 bytes, AppId yDRSRUUgygj6rn3fUuO4zjEBJ0G2ehtl"
    assert.are.equal("essbasic: X: " .. message, tostring(errors.new{ kind = "client", code = "X", message = message }))
  end)

  it("shows everything for an error made under debug_personal_data", function()
    local err = errors.new{ kind = "client", code = "X", message = ECHO, personal_data_shown = true }
    assert.are.equal("essbasic: X: " .. ECHO, tostring(err))
  end)
end)

describe("personal.scrub", function()
  it("masks the personal values of a request wherever a text quotes them (names too)", function()
    local request = { FlowApprovers = { { Name = "张三", Mobile = 13800138000 }, { Name = "李四" } } }
    assert.are.equal("签署人张*的手机号1380****000与李*不一致",
      personal.scrub("签署人张三的手机号13800138000与李四不一致", request))
    assert.are.equal("nothing here", personal.scrub("nothing here", request))
  end)
end)

-- Issue 27, findings 3 and 4: the forms a service message, a response or a cell may quote personal data in, other
-- than the request's own values; in linear time with a cap on the text examined.
describe("personal.scrub of free text (issue 27)", function()
  local FORMS = {
    -- { what, text quoting it, the raw part that must be gone, the masked text expected }
    { "a passport", "护照号E12345678不一致", "E12345678", "护照号E12****78不一致" },
    { "a passport, 2 letters", "passport EA1234567.", "EA1234567", "passport EA1****67." },
    { "a foreign passport", "passport K98765432,", "K98765432", "passport K98****32," },
    { "a Hong Kong ID card", "HKID A123456(7) mismatch", "A123456", "HKID A1***56(7) mismatch" },
    { "a Hong Kong ID card, 2 letters", "HKID AB987654(3)", "AB987654", "HKID AB9***54(3)" },
    { "a Hong Kong and Macao permit", "通行证H1234567890错误", "H1234567890", "通行证H123****890错误" },
    { "a Taiwan residents' permit", "台胞证号12345678，请核对", "12345678", "台胞证号123***78，请核对" },
    { "a Taiwan residents' permit, old form", "台胞证1234567890(B)", "1234567890", "台胞证1234****90(B)" },
    { "a Taiwan ID card", "身份证A123456789", "A123456789", "身份证A123****89" },
    { "an old foreigner's permanent residence card", "居留证USA110012345678无效", "USA110012345678",
      "居留证USA11******5678无效" },
    { "a mobile with spaces", "mobile 138 0013 8000 wrong", "0013", "mobile 138 0*** *000 wrong" },
    { "a mobile with dashes", "tel 138-0013-8000.", "0013", "tel 138-0***-*000." },
    { "a mobile with +86 and spaces", "tel +86 138 0013 8000", "0013", "tel +86 138 **** *000" },
    { "a mobile with +86", "tel +8613800138000;", "13800138000", "tel +86138*****000;" },
    { "a mobile with 0086", "tel 0086-13800138000", "13800138000", "tel 0086-1******8000" },
    { "a mobile with (+86)", "tel (+86)13800138000", "13800138000", "tel (+86)1380****000" },
    { "a mobile 3-8", "tel 138 00138000", "00138000", "tel 138 0****000" },
    { "a bank card with spaces", "卡号6222 0212 3456 7890 123", "3456", "卡号6222 02** **** ***0 123" },
    { "a bank card with dashes", "card 6222-0212-3456-7890,", "3456", "card 6222-02**-****-7890," },
    { "an ID number in groups", "ID 110105 19491231 002X", "19491231", "ID 110105 ******** 002X" },
    { "an e-mail address", "mail zhangsan@example.com.", "zhangsan", "mail z*******@example.com." },
    { "an e-mail address with a non-ASCII local part", "邮箱张三@example.com无效", "张三@",
      "邮***@example.com无效" }, -- the words before it without a space count as the local part
    { "an e-mail address with a non-ASCII domain", "mail：zhang@例子.中国，请核对", "zhang@",
      "mail：z****@例子.中国，请核对" },
    { "an e-mail address without a dot", "mail zhang.san@localhost wrong", "zhang.san",
      "mail z********@localhost wrong" },
  }
  for _, f in ipairs(FORMS) do
    it("masks " .. f[1], function()
      local s = personal.scrub(f[2])
      lacks(s, f[3], f[1])
      assert.are.equal(f[4], s)
      local e = tostring(errors.new{ kind = "client", code = "X", message = f[2] })
      lacks(e, f[3], f[1])
    end)
  end

  it("leaves FlowIds, RequestIds, dates, times, sizes, versions and other countries' numbers alone", function()
    local message = "FlowId yDwFoUUckpsmiu7vUuO4bPRevHaxW8nm, RequestId 0b6e4b1c-5c3a-4d2e-9f8a-123456789012, "
      .. "RequestId 12345678-1234-1234-1234-123456789012, FlowId YDWFOUUCKP1234567890ABCDEFGHIJKL, "
      .. "at 2024-01-02 12:30:00 (20240102), 10485761 bytes, 1700000000, v1.2.3, +1 650 253 0000, code E10001, "
      .. "TC3-HMAC-SHA256, AppId yDRSRUUgygj6rn3fUuO4zjEBJ0G2ehtl, @here, a @ b"
    assert.are.equal(message, personal.scrub(message))
    assert.are.equal("essbasic: X: " .. message, tostring(errors.new{ kind = "client", code = "X", message = message }))
  end)

  -- The hostile shapes of a 64 KB message (the benchmark, bench/personal_scrub.lua, times them): a quadratic scrub
  -- takes 16 times as long for 4 times the text, a linear one 4 times. Best of 3 of each, a generous bound.
  local function fill(unit, n) return (string.rep(unit, math.floor(n / #unit) + 1)):sub(1, n) end
  local function best(text)
    local b = math.huge
    for _ = 1, 3 do
      local t = os.clock()
      personal.scrub(text)
      b = math.min(b, os.clock() - t)
    end
    return b
  end
  for _, unit in ipairs({ "a", "a@", "abcdefgh@", "1 ", "138 0013 8000, ", '"Name": "', "张三@", "E1234567 " }) do
    it("takes linear time on " .. string.format("%q", unit) .. " repeated", function()
      local small, large = best(fill(unit, 16384)), best(fill(unit, 65536))
      assert.is_true(large < 10 * small + 0.005, string.format("16 KB: %.1f ms, 64 KB: %.1f ms", small * 1000,
        large * 1000))
    end)
  end

  it("answers a call whose service error is an 80 KB message at once, masked (0.2.0: over a minute)", function()
    local faults = require("helpers.fault_server").start()
    finally(function() faults:stop() end)
    local c = essbasic.new{ secret_id = "AKIDpersonal", secret_key = "k", endpoint = faults.endpoint, validate = false,
      retry = false, rate_limit = false }
    local t = os.clock()
    local _, err = c:call("DescribeFlowDetailInfo", { Scenario = "long-" .. os.time(), Steps = { "long_message" } })
    local text = tostring(err)
    local cpu = os.clock() - t
    assert.equal("InvalidParameter.Mobile", err.code)
    lacks(text, "13800138000")
    assert.truthy(text:find("bytes not shown", 1, true), "capped")
    assert.is_true(cpu < 2, string.format("%.2f s of CPU", cpu))
  end)

  it("examines at most personal.CAP bytes and says how much it did not show", function()
    local text = string.rep("张", 30000) .. " 13800138000"
    local s = personal.scrub(text)
    assert.is_true(#s <= personal.CAP + 40, #s)
    lacks(s, "13800138000")
    assert.truthy(s:find("%.%.%.%(%d+ bytes not shown%)$"), s:sub(-60))
    local kept = s:match("^(.-)%.%.%.%(")
    assert.are.equal(string.rep("张", #kept / 3), kept) -- cut on a character boundary
  end)
end)

describe("call errors and debug log lines", function()
  local agent = require("helpers.tc3").agent
  local function scripted(status, body)
    return { request = function() return { status = status, body = body } end }
  end
  local function client(transport, opts)
    local lines = {}
    local o = { secret_id = "AKIDpersonal", secret_key = "personal-key", endpoint = "http://127.0.0.1:9",
      transport = transport, rate_limit = false, retry = false, debug = true,
      logger = function(_, line) lines[#lines + 1] = line end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return essbasic.new(o), lines
  end
  local function sign_urls(mobile)
    return { Agent = agent(), FlowIds = { "f" }, Name = "张三丰", Mobile = mobile }
  end
  local TENCENT_ECHO = json.encode({ Response = { RequestId = "r-echo", Error = { Code = "InvalidParameter.Mobile",
    Message = "签署人张三丰的手机号13800138000与身份证11010519491231002X不一致" } } })

  it("a validation failure of a call shows the mobile masked", function()
    local c = client(scripted(200, "{}"))
    local resp, err = c:call("CreateSignUrls", sign_urls("1380013800"))
    assert.is_nil(resp)
    assert.are.equal('"1380****00"', problem_at(err, "Mobile").found)
    lacks(tostring(err), "1380013800")
  end)

  it("tostring of a service error that echoes an ID number and a mobile, and the debug lines, mask them", function()
    local c, lines = client(scripted(200, TENCENT_ECHO))
    local _, err = c:call("CreateSignUrls", sign_urls("13800138000"))
    assert.are.equal("service", err.kind)
    lacks(tostring(err), "13800138000")
    lacks(tostring(err), "11010519491231002X")
    assert.is_true(#lines >= 2)
    for _, line in ipairs(lines) do
      lacks(line, "13800138000", "debug line")
      lacks(line, "11010519491231002X", "debug line")
    end
  end)

  it("a service error's message and the debug lines mask the request's names too", function()
    local c, lines = client(scripted(200, TENCENT_ECHO))
    local _, err = c:call("CreateSignUrls", sign_urls("13800138000"))
    for _, text in ipairs({ err.message, tostring(err), table.concat(lines, "\n") }) do
      lacks(text, "张三丰")
      lacks(text, "13800138000")
    end
  end)

  it("essbasic.new{ debug_personal_data = true } shows values unmasked", function()
    local c = client(scripted(200, "{}"), { debug_personal_data = true })
    local _, err = c:call("CreateSignUrls", sign_urls("1380013800"))
    assert.are.equal('"1380013800"', problem_at(err, "Mobile").found)
    assert.truthy(tostring(err):find("1380013800", 1, true))
  end)
end)

describe("callback failures", function()
  local KEY = "0123456789abcdefGHIJKLMNOPQRSTUV"
  local PERSONAL = '"MsgData":{"Approvers":[{"Name":"张三丰","Mobile":"13800138000",'
    .. '"IdCardNumber":"11010519491231002X"}]}'
  local RAW = { "张三丰", "13800138000", "11010519491231002X" }
  local function encrypted(plaintext)
    return json.encode({ encrypt = core.base64_encode(core.aes256cbc_encrypt(KEY, KEY:sub(1, 16), plaintext)) })
  end
  local function no_personal_data(err)
    for _, raw in ipairs(RAW) do
      lacks(tostring(err), raw, "tostring")
      lacks(err.message, raw, "message")
    end
  end

  it("carry no decrypted content: not JSON, not an object, cut short, without MsgType", function()
    local plaintexts = {
      "Name=张三丰&Mobile=13800138000&IdCardNumber=11010519491231002X",
      "[" .. PERSONAL:sub(11) .. "]",
      "{" .. PERSONAL,
      "{" .. PERSONAL .. "}",
      '{"MsgType":13800138000,' .. PERSONAL .. "}",
    }
    for _, plaintext in ipairs(plaintexts) do
      local msg, err = callback.parse{ body = encrypted(plaintext), key = KEY }
      assert.is_nil(msg, plaintext)
      no_personal_data(err)
    end
  end)

  it("carry no content of a plain body, a tampered one or one decrypted with the wrong key", function()
    local body = "{" .. PERSONAL
    local _, err = callback.parse{ body = body }
    no_personal_data(err)
    _, err = callback.parse{ body = "{" .. PERSONAL .. "}", token = "t", signature = "sha256=" .. ("0"):rep(64) }
    no_personal_data(err)
    _, err = callback.parse{ body = encrypted('{"MsgType":"x",' .. PERSONAL .. "}"), key = ("k"):rep(32) }
    no_personal_data(err)
  end)

  -- callback.handle with a stand-in for ngx, its log lines going to the caller's logger (the logger option).
  local function handle(body, on_message)
    local lines = {}
    local fake = { ERR = 4, WARN = 5, INFO = 7, header = {}, var = {},
      req = { get_method = function() return "POST" end, read_body = function() end,
        get_body_data = function() return body end, get_body_file = function() return nil end },
      print = function() end }
    local saved = rawget(_G, "ngx")
    rawset(_G, "ngx", fake)
    local ok, status = pcall(callback.handle, { key = KEY, allow_unsigned = true,
      logger = function(level, message) lines[#lines + 1] = level .. " " .. message end },
      on_message or function() return true end)
    rawset(_G, "ngx", saved)
    assert(ok, status)
    return status, table.concat(lines, "\n")
  end

  it("callback.handle logs a refused message without its content", function()
    local status, log = handle(encrypted("{" .. PERSONAL))
    assert.are.equal(400, status)
    assert.truthy(log:find("refused", 1, true))
    for _, raw in ipairs(RAW) do lacks(log, raw, "log") end
  end)

  it("callback.handle logs a raising handler's error without the message's personal data", function()
    local status, log = handle(encrypted('{"MsgType":"FlowStatusChange",' .. PERSONAL .. "}"), function(msg)
      local a = msg.MsgData.Approvers[1]
      error("cannot store " .. a.Name .. " " .. a.Mobile .. " " .. a.IdCardNumber)
    end)
    assert.are.equal(500, status)
    for _, raw in ipairs(RAW) do lacks(log, raw, "log") end
  end)
end)

describe("the sandbox", function()
  local sandbox = require("helpers.sandbox")
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)

  it("refuses a request with a bad mobile and ID number without them in its answer or its log", function()
    local c = sb:client({ retry = false })
    local contract = { FileIds = { "x" }, FlowName = "劳动合同", FlowApprovers = { { ApproverType = "PERSON",
      Name = "张三丰", Mobile = "1380013800", IdCardType = "ID_CARD", IdCardNumber = "11010519491231002Y" } } }
    local resp, err = c:call(GROUP, { Agent = sb.agent, FlowGroupName = "g", FlowFileInfos = { contract,
      copy(contract) } }, { validate = false })
    assert.is_nil(resp)
    assert.are.equal("service", err.kind)
    assert.truthy(err.message:find('"1380****00"', 1, true), err.message)
    for _, text in ipairs({ err.message, tostring(err), sb:error_log() }) do
      lacks(text, "1380013800")
      lacks(text, "11010519491231002Y")
    end
    assert.truthy(sb:error_log():find("110105********002Y", 1, true), "the refusal is logged, masked")
  end)
end)
