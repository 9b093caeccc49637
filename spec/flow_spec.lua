-- essbasic.flow: every builder's result equals the table a user would write by hand, every early check names
-- the option it refuses, and built groups pass the validator and the JSON encoder.
local flow = require("essbasic.flow")
local schema = require("essbasic.schema")

local SEAL_ID = "yDR1kUU0zproxUy0fKyKg4XBzdcXcTBg"
local AGENT = { app_id = "394fc83e7a1cc97ba27c3342f425c836", org_open_id = "org_hr", operator_open_id = "op_kevin" }

-- Runs fn, which must raise; returns the message.
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.is_string(err)
  return err
end

-- Every key of a built table must be a usable member of the API structure it sits in, with the right shape.
local function check_against_schema(value, struct_name, path)
  local struct = schema.structs[struct_name]
  assert.is_table(struct, "no struct " .. struct_name)
  assert.is_nil(getmetatable(value), path .. " has a metatable")
  for k, v in pairs(value) do
    local field = struct.fields[k]
    assert.is_table(field, path .. "." .. tostring(k) .. " is not a member of " .. struct_name)
    assert.is_not_true(field.disabled, path .. "." .. k .. " is disabled")
    local items = field.list and v or { v }
    if field.list then
      assert.is_table(v, path .. "." .. k)
      assert.is_nil(getmetatable(v), path .. "." .. k .. " has a metatable")
    end
    for i, item in ipairs(items) do
      local where = field.list and (path .. "." .. k .. "[" .. i .. "]") or (path .. "." .. k)
      local t = field.type
      if schema.structs[t] then
        check_against_schema(item, t, where)
      elseif t == "string" then
        assert.is_string(item, where)
      elseif t == "bool" then
        assert.is_boolean(item, where)
      else
        assert.is_number(item, where)
        if t ~= "float" then assert.equals(math.floor(item), item, where) end
      end
    end
  end
end

-- The builder's result equals the hand-written table and uses only members of the API structure.
local function same_as_written(struct, expected, built)
  assert.same(expected, built)
  check_against_schema(built, struct, struct)
end

describe("essbasic.flow builders give the hand-written tables", function()
  it("agent", function()
    same_as_written("Agent", {
      AppId = "394fc83e7a1cc97ba27c3342f425c836",
      ProxyOrganizationOpenId = "org_hr",
      ProxyOperator = { OpenId = "op_kevin" },
    }, flow.agent{ app_id = "394fc83e7a1cc97ba27c3342f425c836", org_open_id = "org_hr", operator_open_id = "op_kevin" })
  end)

  it("at_keyword with every option", function()
    same_as_written("Component", {
      GenerateMode = "KEYWORD", ComponentType = "SIGN_SIGNATURE", ComponentId = "^乙方签字^",
      ComponentWidth = 120, ComponentHeight = 50, OffsetX = -10, OffsetY = 5.5, KeywordIndexes = { 0, 2 },
      KeywordPage = 3, KeywordOrder = "Reverse", RelativeLocation = "Below", ComponentRequired = true,
      ComponentExtra = '{"ComponentTypeLimit":["HANDWRITE"]}',
    }, flow.at_keyword{
      type = "SIGN_SIGNATURE", keyword = "乙方签字", exact = true, width = 120, height = 50,
      offset_x = -10, offset_y = 5.5, indexes = { 0, 2 }, page = 3, order = "Reverse", relative = "Below",
      required = true, extra = '{"ComponentTypeLimit":["HANDWRITE"]}',
    })
  end)

  it("at_position, including a paging seal without x and a last-page field", function()
    same_as_written("Component", {
      GenerateMode = "NORMAL", ComponentType = "SIGN_SEAL", ComponentPage = 1, ComponentPosX = 100,
      ComponentPosY = 200, ComponentWidth = 120, ComponentHeight = 120, ComponentValue = SEAL_ID,
    }, flow.at_position{ type = "SIGN_SEAL", page = 1, x = 100, y = 200, width = 120, height = 120, value = SEAL_ID })
    same_as_written("Component", {
      GenerateMode = "NORMAL", ComponentType = "SIGN_PAGING_SEAL", ComponentPage = 1, ComponentPosY = 300,
      ComponentWidth = 120, ComponentHeight = 120,
    }, flow.at_position{ type = "SIGN_PAGING_SEAL", page = 1, y = 300, width = 120, height = 120 })
    same_as_written("Component", {
      GenerateMode = "NORMAL", ComponentType = "TEXT", ComponentPage = -1, ComponentPosX = 0, ComponentPosY = 0,
      ComponentId = "salary", ComponentName = "月薪", ComponentValue = "20000", LockComponentValue = true,
      ForbidMoveAndDelete = true, Placeholder = "月薪",
    }, flow.at_position{ type = "TEXT", page = -1, x = 0, y = 0, id = "salary", name = "月薪", value = "20000",
      lock_value = true, forbid_move = true, placeholder = "月薪" })
  end)

  it("on_field", function()
    same_as_written("Component", { GenerateMode = "FIELD", ComponentType = "TEXT", ComponentName = "employee_name",
      ComponentValue = "张三", ComponentRequired = true },
      flow.on_field{ type = "TEXT", field = "employee_name", value = "张三", required = true })
  end)

  it("the keyword shorthands", function()
    same_as_written("Component", { GenerateMode = "KEYWORD", ComponentType = "SIGN_SEAL", ComponentId = "甲方（盖章）" },
      flow.seal_at_keyword("甲方（盖章）"))
    same_as_written("Component", { GenerateMode = "KEYWORD", ComponentType = "SIGN_SEAL", ComponentId = "甲方（盖章）",
      ComponentValue = SEAL_ID }, flow.seal_at_keyword("甲方（盖章）", SEAL_ID))
    same_as_written("Component", { GenerateMode = "KEYWORD", ComponentType = "SIGN_SEAL", ComponentId = "甲方（盖章）",
      ComponentValue = SEAL_ID, ComponentWidth = 120, ComponentHeight = 120 },
      flow.seal_at_keyword("甲方（盖章）", { seal_id = SEAL_ID, width = 120, height = 120 }))
    same_as_written("Component", { GenerateMode = "KEYWORD", ComponentType = "SIGN_SIGNATURE", ComponentId = "乙方（签字）",
      KeywordIndexes = { 0 } }, flow.signature_at_keyword("乙方（签字）", { indexes = { 0 } }))
    same_as_written("Component", { GenerateMode = "KEYWORD", ComponentType = "SIGN_DATE", ComponentId = "签署日期",
      RelativeLocation = "Right" }, flow.date_at_keyword("签署日期", { relative = "Right" }))
  end)

  it("person with identity, one sign component and the approver options", function()
    same_as_written("FlowApproverInfo", {
      ApproverType = "PERSON", Name = "张三", Mobile = "13800138000",
      IdCardType = "ID_CARD", IdCardNumber = "11010519491231002X",
      SignComponents = { { GenerateMode = "KEYWORD", ComponentType = "SIGN_SIGNATURE", ComponentId = "乙方" } },
      Components = { { GenerateMode = "FIELD", ComponentType = "TEXT", ComponentName = "address" } },
      ApproverRoleName = "乙方", PreReadTime = 30, NotifyType = "SMS", ApproverEmail = "zhangsan@example.com",
      ApproverOption = { NoRefuse = true, NoTransfer = true, HideOneKeySign = true, FlowReadLimit = "LimitReadTime",
        ForbidAddSignDate = true, ApproverMobileMode = "VALIDATE" },
      ApproverNeedSignReview = false, ApproverVerifyTypes = { 1, 2 }, ApproverSignTypes = { 1, 5 },
      ComponentLimitType = { "HANDWRITE", "OCR_ESIGN" }, SignTypeSelector = 1, SignEndpoints = { "link" },
      JumpUrl = "https://hr.example.com/done",
    }, flow.person{
      name = "张三", mobile = "13800138000", id_card_type = "ID_CARD", id_card_number = "11010519491231002X",
      sign = flow.signature_at_keyword("乙方"), -- one component, no list needed
      fill = { flow.on_field{ type = "TEXT", field = "address" } },
      role = "乙方", pre_read_time = 30, notify = "SMS", email = "zhangsan@example.com",
      no_refuse = true, no_transfer = true, hide_one_key_sign = true, read_limit = "LimitReadTime",
      forbid_add_sign_date = true, mobile_mode = "VALIDATE", need_review = false,
      verify_types = { 1, 2 }, sign_types = { 1, 5 }, signature_styles = { "HANDWRITE", "OCR_ESIGN" },
      sign_type_selector = 1, sign_endpoints = { "link" }, jump_url = "https://hr.example.com/done",
    })
  end)

  it("employee of a sub-client company", function()
    same_as_written("FlowApproverInfo", {
      ApproverType = "ORGANIZATION", Name = "李四", Mobile = "13900139000", OpenId = "hr_lisi",
      OrganizationName = "示例科技有限公司", OrganizationOpenId = "org_hr",
      SignComponents = { { GenerateMode = "KEYWORD", ComponentType = "SIGN_SEAL", ComponentId = "甲方（盖章）" } },
    }, flow.employee{ name = "李四", mobile = "13900139000", open_id = "hr_lisi", org_name = "示例科技有限公司",
      org_open_id = "org_hr", sign = { flow.seal_at_keyword("甲方（盖章）") } })
  end)

  it("employee of a SaaS company", function()
    same_as_written("FlowApproverInfo", {
      ApproverType = "ORGANIZATION", NotChannelOrganization = true, OrganizationName = "外部供应商有限公司",
      Name = "王五", Mobile = "13700137000", NotifyType = "NONE",
    }, flow.saas_employee{ org_name = "外部供应商有限公司", name = "王五", mobile = "13700137000", notify = "NONE" })
  end)

  it("company auto-sign", function()
    same_as_written("FlowApproverInfo", {
      ApproverType = "ENTERPRISESERVER", OrganizationName = "示例科技有限公司", OrganizationOpenId = "org_hr",
      OpenId = "zk",
      SignComponents = { { GenerateMode = "NORMAL", ComponentType = "SIGN_SEAL", ComponentPage = 1,
        ComponentPosX = 100, ComponentPosY = 100, ComponentWidth = 100, ComponentHeight = 100,
        ComponentValue = SEAL_ID } },
    }, flow.auto_sign{ org_name = "示例科技有限公司", org_open_id = "org_hr", open_id = "zk",
      sign = flow.at_position{ type = "SIGN_SEAL", page = 1, x = 100, y = 100, width = 100, height = 100,
        value = SEAL_ID } })
  end)

  it("company to be claimed (dynamic signer, FillType 1)", function()
    same_as_written("FlowApproverInfo", {
      ApproverType = "ORGANIZATION", OrganizationName = "合作方有限公司", OrganizationOpenId = "org_partner",
      ApproverOption = { FillType = 1, NoRefuse = true },
    }, flow.to_be_claimed{ org_name = "合作方有限公司", org_open_id = "org_partner", no_refuse = true })
  end)

  it("contract with every option", function()
    local signer = flow.person{ name = "张三", mobile = "13800138000" }
    same_as_written("FlowFileInfo", {
      FileIds = { "yDR1nUU06b46rUy0fKyKocxqVM6QwE88" }, FlowName = "张三劳动合同",
      FlowApprovers = { { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000" } },
      Deadline = 1893427200, FlowDescription = "2030年入职", FlowType = "劳动合同", Unordered = true,
      CustomerData = "ONB-1", Components = { { GenerateMode = "FIELD", ComponentType = "DATE",
        ComponentName = "start_date", ComponentValue = "2030年01月01日" } },
      FlowDisplayType = 2, NeedSignReview = true, CustomShowMap = "{合同名称}",
    }, flow.contract{
      file_id = "yDR1nUU06b46rUy0fKyKocxqVM6QwE88", name = "张三劳动合同", signers = { signer },
      deadline = 1893427200, description = "2030年入职", type = "劳动合同", unordered = true,
      customer_data = "ONB-1", fill = flow.on_field{ type = "DATE", field = "start_date", value = "2030年01月01日" },
      display_type = 2, need_sign_review = true, custom_show_map = "{合同名称}",
    })
  end)

  it("group, with the agent given as options and every group option", function()
    local function contract(n)
      return flow.contract{ file_id = "file" .. n, name = "合同" .. n,
        signers = { flow.person{ name = "张三", mobile = "13800138000" } } }
    end
    local function hand_written(n)
      return { FileIds = { "file" .. n }, FlowName = "合同" .. n,
        FlowApprovers = { { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000" } } }
    end
    same_as_written("ChannelCreateFlowGroupByFilesRequest", {
      FlowGroupName = "入职签约",
      Agent = { AppId = "394fc83e7a1cc97ba27c3342f425c836", ProxyOrganizationOpenId = "org_hr",
        ProxyOperator = { OpenId = "op_kevin" } },
      FlowFileInfos = { hand_written(1), hand_written(2) },
      ApproverVerifyType = "MobileCheck",
      FlowGroupOptions = { SelfOrganizationApproverSignEach = true, OtherApproverSignEach = false,
        NoEditFlowName = true, NoEditFlowType = true, NoEditDeadline = true, SignComponentConfig = { HideDate = true },
        ForbidEditWatermark = true, HideSignCodeAfterStart = true, SignAfterStart = true, PreviewAfterStart = true },
    }, flow.group{
      name = "入职签约", agent = AGENT, contracts = { contract(1), contract(2) }, verify = "MobileCheck",
      options = { self_sign_each = true, others_sign_each = false, no_edit_name = true, no_edit_type = true,
        no_edit_deadline = true, hide_sign_date = true, forbid_edit_watermark = true,
        hide_sign_code_after_start = true, sign_after_start = true, preview_after_start = true },
    })
    local ok, err = require("essbasic.validate").request("ChannelCreateFlowGroupByFiles", flow.group{
      name = "入职签约", agent = AGENT, contracts = { contract(1), contract(2) }, verify = "MobileCheck",
      options = { self_sign_each = true, hide_sign_date = true } })
    assert.is_true(ok, tostring(err))
    -- An Agent already built (or hand-written) is taken as it is.
    local agent = flow.agent(AGENT)
    assert.equals(agent, flow.group{ name = "g", agent = agent, contracts = { contract(1), contract(2) } }.Agent)
  end)

  it("accepts floats that hold integers and stores integers", function()
    local p = flow.person{ name = "张三", mobile = "13800138000", pre_read_time = 30.0 }
    assert.equals(30, p.PreReadTime)
    if math.type then assert.equals("integer", math.type(p.PreReadTime)) end
  end)

  it("copies lists, so changing the options afterwards changes nothing", function()
    local indexes = { 0, 1 }
    local c = flow.at_keyword{ type = "SIGN_DATE", keyword = "日期", indexes = indexes }
    indexes[3] = 2
    assert.same({ 0, 1 }, c.KeywordIndexes)
    local signers = { flow.person{ name = "张三", mobile = "13800138000" } }
    local k = flow.contract{ file_id = "f", name = "n", signers = signers }
    signers[2] = flow.person{ name = "李四", mobile = "13900139000" }
    assert.equals(1, #k.FlowApprovers)
  end)
end)

describe("essbasic.flow checks its options at once", function()
  local function person(extra)
    local o = { name = "张三", mobile = "13800138000" }
    for k, v in pairs(extra) do o[k] = v end
    local p = flow.person(o) -- not a tail call: Lua 5.1 would put "(tail call)" where the caller's line belongs
    return p
  end
  local two = function()
    local s = { flow.person{ name = "张三", mobile = "13800138000" } }
    return { flow.contract{ file_id = "a", name = "a", signers = s }, flow.contract{ file_id = "b", name = "b",
      signers = s } }
  end
  local cases = {
    { "flow.person: mobile must be 11 digits (mainland China), got '1380*****001'", -- masked
      function() flow.person{ name = "张三", mobile = "138001380001" } end },
    { "flow.person: mobile must be a string, got 1380****000", -- personal data: masked
      function() flow.person{ name = "张三", mobile = 13800138000 } end },
    { "flow.person: unknown option 'mobil' (did you mean 'mobile'?)",
      function() flow.person{ name = "张三", mobil = "13800138000" } end },
    { "flow.person: unknown option 'Mobile' (did you mean 'mobile'?)",
      function() flow.person{ name = "张三", Mobile = "13800138000" } end },
    { "flow.employee: unknown option 'OrganizationName' (did you mean 'org_name'?)",
      function() flow.employee{ name = "李四", mobile = "13900139000", OrganizationName = "x" } end },
    { "flow.person: unknown option 'colour' (options: ", function() person{ colour = "red" } end },
    { "flow.person: options are named (name = value)", function() flow.person{ "张三" } end },
    { "flow.person: expects a table of options, got '张三'", function() flow.person("张三") end },
    { "flow.person: name is required", function() flow.person{ mobile = "13800138000" } end },
    { "flow.person: name must not be empty", function() flow.person{ name = "", mobile = "13800138000" } end },
    { "flow.person: name must be valid UTF-8 text without NUL bytes, got a string with invalid UTF-8",
      function() flow.person{ name = "\255\254", mobile = "13800138000" } end },
    { "flow.person: id_card_number is not a valid ID_CARD number (17 characters given)",
      function() person{ id_card_number = "11010519491231002" } end },
    { "flow.person: id_card_number is not a valid HONGKONG_AND_MACAO number (18 characters given)",
      function() person{ id_card_type = "HONGKONG_AND_MACAO", id_card_number = "11010519491231002X" } end },
    { "flow.person: id_card_type must be one of \"ID_CARD\", \"HONGKONG_AND_MACAO\", " ..
      "\"HONGKONG_MACAO_AND_TAIWAN\", got \"PASSPORT\"",
      function() person{ id_card_type = "PASSPORT" } end },
    { "flow.person: pre_read_time must be a number from 3 to 300, got 2", function() person{ pre_read_time = 2 } end },
    { "flow.person: pre_read_time must be an integer (int64), got 3.5", function() person{ pre_read_time = 3.5 } end },
    { "flow.person: no_refuse must be a boolean, got \"true\"", function() person{ no_refuse = "true" } end },
    { "flow.person: read_limit must be one of \"LimitReadTimeAndBottom\", \"LimitReadTime\", \"LimitBottom\", " ..
      "\"NoReadTimeAndBottom\", got \"LimitReadtime\" (did you mean 'LimitReadTime'?)",
      function() person{ read_limit = "LimitReadtime" } end },
    { "flow.person: verify_types[2] must be one of 1, 2, got 3", function() person{ verify_types = { 1, 3 } } end },
    { "flow.person: verify_types must be a list, got 1", function() person{ verify_types = 1 } end },
    { "flow.person: verify_types must not be empty", function() person{ verify_types = {} } end },
    { "flow.person: sign_types needs a method besides 5 and 6", function() person{ sign_types = { 5, 6 } } end },
    { "flow.person: role must be at most 20 characters, got 21",
      function() person{ role = string.rep("签", 21) } end },
    { "flow.person: sign[1] is a SIGN_SEAL field, which only a company signer can have",
      function() person{ sign = flow.seal_at_keyword("甲方") } end },
    { "flow.person: sign[1] is a TEXT field, which belongs in fill",
      function() person{ sign = flow.on_field{ type = "TEXT", field = "x" } } end },
    { "flow.person: fill[1] is a SIGN_DATE field, which belongs in a signer's sign list",
      function() person{ fill = flow.date_at_keyword("日期") } end },
    { "flow.person: sign[2] must be a component", function() person{ sign = { flow.signature_at_keyword("乙方"),
      { type = "SIGN_SIGNATURE" } } } end },
    { "flow.person: unknown option 'org_name'", function() person{ org_name = "x" } end },
    { "flow.employee: open_id is required", function() flow.employee{ name = "李四", mobile = "13900139000",
      org_name = "示例科技有限公司", org_open_id = "org_hr" } end },
    { "flow.employee: open_id must be at most 64 characters, got 65", function() flow.employee{ name = "李四",
      mobile = "13900139000", org_name = "示例", org_open_id = "org_hr", open_id = string.rep("a", 65) } end },
    { "flow.employee: unknown option 'notify'", function() flow.employee{ name = "李四", mobile = "13900139000",
      org_name = "示例", org_open_id = "org_hr", open_id = "hr", notify = "SMS" } end },
    { "flow.saas_employee: unknown option 'org_open_id'", function() flow.saas_employee{ org_name = "外部",
      name = "王五", mobile = "13700137000", org_open_id = "x" } end },
    { "flow.saas_employee: notify must be one of \"SMS\", \"EMAIL\", \"ALL\", \"NONE\", got \"NODE\" " ..
      "(did you mean 'NONE'?)",
      function() flow.saas_employee{ org_name = "外部", name = "王五", mobile = "13700137000", notify = "NODE" } end },
    { "flow.auto_sign: sign is required", function() flow.auto_sign{ org_name = "示例", org_open_id = "org_hr" } end },
    { "flow.auto_sign: unknown option 'fill'", function() flow.auto_sign{ org_name = "示例", org_open_id = "org_hr",
      sign = flow.seal_at_keyword("甲方"), fill = flow.on_field{ type = "TEXT", field = "x" } } end },
    { "flow.to_be_claimed: org_open_id is required", function() flow.to_be_claimed{ org_name = "合作方" } end },
    { "flow.agent: operator_open_id is required",
      function() flow.agent{ app_id = "a", org_open_id = "o" } end },
    { "flow.at_keyword: type must be one of \"TEXT\",",
      function() flow.at_keyword{ type = "SEAL", keyword = "k" } end },
    { "(did you mean 'SIGN_SEAL'?)", function() flow.at_keyword{ type = "SIGN_SEEL", keyword = "k" } end },
    { "flow.at_keyword: keyword is required", function() flow.at_keyword{ type = "SIGN_SEAL" } end },
    { "flow.at_keyword: keyword must be at most 30 characters, got 31",
      function() flow.at_keyword{ type = "SIGN_SEAL", keyword = string.rep("字", 31) } end },
    { "flow.at_keyword: width must be greater than 0, got 0",
      function() flow.at_keyword{ type = "SIGN_SEAL", keyword = "k", width = 0 } end },
    { "flow.at_keyword: indexes[2] must not be negative, got -1",
      function() flow.at_keyword{ type = "SIGN_SEAL", keyword = "k", indexes = { 0, -1 } } end },
    { "flow.at_keyword: relative must be one of \"Middle\", \"Below\", \"Right\", \"LowerRight\", " ..
      "\"UpperRight\", got \"Left\"",
      function() flow.at_keyword{ type = "SIGN_SEAL", keyword = "k", relative = "Left" } end },
    { "flow.at_keyword: offset_x must be a finite number, got ",
      function() flow.at_keyword{ type = "SIGN_SEAL", keyword = "k", offset_x = 0 / 0 } end },
    { "flow.at_position: page counts from 1 (or from -1 for the last page), got 0",
      function() flow.at_position{ type = "SIGN_SEAL", page = 0, x = 1, y = 1 } end },
    { "flow.at_position: x is required", function() flow.at_position{ type = "SIGN_SEAL", page = 1, y = 1 } end },
    { "flow.at_position: y must not be negative, got -1",
      function() flow.at_position{ type = "SIGN_SEAL", page = 1, x = 1, y = -1 } end },
    { "flow.at_position: a SIGN_PAGING_SEAL field needs width and height",
      function() flow.at_position{ type = "SIGN_PAGING_SEAL", page = 1, y = 1 } end },
    { "flow.on_field: type SIGN_SIGNATURE cannot be placed on a PDF form field",
      function() flow.on_field{ type = "SIGN_SIGNATURE", field = "f" } end },
    { "flow.seal_at_keyword: keyword is required", function() flow.seal_at_keyword(nil) end },
    { "flow.signature_at_keyword: type is set by flow.signature_at_keyword itself",
      function() flow.signature_at_keyword("k", { type = "SIGN_SEAL" }) end },
    { "flow.signature_at_keyword: expects (keyword [, options]), got 'x'",
      function() flow.signature_at_keyword("k", "x") end },
    { "flow.contract: file_id is required", function() flow.contract{ name = "n", signers = {} } end },
    { "flow.contract: signers must be 1 to 5 items, got 6 items", function()
      local p = flow.person{ name = "张三", mobile = "13800138000" }
      flow.contract{ file_id = "f", name = "n", signers = { p, p, p, p, p, p } } end },
    { "flow.contract: signers must be 1 to 5 items, got 0 items",
      function() flow.contract{ file_id = "f", name = "n", signers = {} } end },
    { "flow.contract: signers[1].Mobile must be a valid mobile, got \"1380****00\"", function()
      local hand_written = { ApproverType = "PERSON", Mobile = "1380013800" }
      flow.contract{ file_id = "f", name = "n", signers = { hand_written } } end },
    { "flow.contract: signers[1].Nmae must be a member of FlowApproverInfo, got unknown member \"Nmae\" " ..
      "(did you mean Name?)", function()
      flow.contract{ file_id = "f", name = "n", signers = { { ApproverType = "PERSON", Nmae = "张三" } } } end },
    { "flow.person: sign[1].ComponentId must be at most 30 characters, got 31 characters", function()
      local long = string.rep("字", 31)
      person{ sign = { { GenerateMode = "KEYWORD", ComponentType = "SIGN_SIGNATURE", ComponentId = long } } } end },
    { "flow.contract: signers[1] must be a signer", function() flow.contract{ file_id = "f", name = "n",
      signers = { { name = "张三", mobile = "13800138000" } } } end },
    { "flow.contract: deadline must be a Unix time in seconds (10 digits, not milliseconds), got 1893427200000",
      function() flow.contract{ file_id = "f", name = "n", signers = { person{} }, deadline = 1893427200000 } end },
    { "flow.contract: name must be at most 200 characters, got 201",
      function() flow.contract{ file_id = "f", name = string.rep("合", 201), signers = { person{} } } end },
    { "flow.contract: display_type must be one of 0, 1, 2, 3, got 4",
      function() flow.contract{ file_id = "f", name = "n", signers = { person{} }, display_type = 4 } end },
    { "flow.contract: signers must be a list, got table", function()
      flow.contract{ file_id = "f", name = "n", signers = { [1] = person{}, [3] = person{} } } end },
    { "flow.group: contracts must be 2 to 50 items, got 1 item",
      function() flow.group{ name = "g", agent = AGENT, contracts = { two()[1] } } end },
    { "flow.group: contracts must be 2 to 50 items, got 51 items", function()
      local c = two()[1]
      local list = {}
      for i = 1, 51 do list[i] = c end
      flow.group{ name = "g", agent = AGENT, contracts = list } end },
    { "flow.group: contracts[2] must be a contract (flow.contract), got table",
      function() flow.group{ name = "g", agent = AGENT, contracts = { two()[1], { name = "n" } } } end },
    { "flow.group: agent: app_id is required",
      function() flow.group{ name = "g", agent = { org_open_id = "o" }, contracts = two() } end },
    { "flow.group: verify must be one of \"VerifyCheck\", \"MobileCheck\", got \"FaceCheck\"",
      function() flow.group{ name = "g", agent = AGENT, contracts = two(), verify = "FaceCheck" } end },
    { "flow.group: options: unknown option 'self_sign_eac' (did you mean 'self_sign_each'?)",
      function() flow.group{ name = "g", agent = AGENT, contracts = two(), options = { self_sign_eac = true } } end },
    { "flow.group: options: hide_sign_date must be a boolean, got 1",
      function() flow.group{ name = "g", agent = AGENT, contracts = two(), options = { hide_sign_date = 1 } } end },
    { "flow.group: name must be at most 200 characters, got 201",
      function() flow.group{ name = string.rep("组", 201), agent = AGENT, contracts = two() } end },
  }
  for _, case in ipairs(cases) do
    local expected, fn = case[1], case[2]
    it(expected, function()
      local err = raised(fn)
      assert.is_truthy(err:find(expected, 1, true), "got: " .. err)
      -- error(..., 2): the position is the caller's line in this file, not flow.lua.
      assert.is_truthy(err:find("flow_spec.lua:%d+: "), "not the caller's position: " .. err)
    end)
  end

  it("lets errors that are not the caller's mistake through unchanged", function()
    -- A table whose field access raises stands for a bug outside flow: its error must not be disguised.
    local weird = setmetatable({ 1 }, { __index = function() error("boom from __index") end })
    local err = raised(function() flow.person{ name = "张三", mobile = "13800138000", sign = weird } end)
    assert.is_truthy(err:find("boom from __index", 1, true), err)
    assert.is_falsy(err:find("flow.person: ", 1, true), err)
  end)
end)

describe("the HR onboarding example", function()
  local build_group = dofile("examples/hr_onboarding_group.lua")
  local function params(extra)
    local p = {
      file_ids = { "yDR1nUU06b46rUy0fKyKocxqVM6QwE88", "yDR1nUU06b46rUy0fKyKocxqVM6QwE89",
        "yDR1nUU06b46rUy0fKyKocxqVM6QwE8A" },
      agent = AGENT, company = "示例科技有限公司",
      hr = { name = "李四", mobile = "13900139000", open_id = "hr_lisi" },
      employee = { name = "张三", mobile = "13800138000" },
      deadline = 1893427200, reference = "ONB-1",
    }
    for k, v in pairs(extra or {}) do
      if v == false then p[k] = nil else p[k] = v end
    end
    return p
  end

  it("builds the labour contract exactly as written by hand", function()
    local group = build_group(params())
    assert.equals("张三入职签约", group.FlowGroupName)
    assert.equals(3, #group.FlowFileInfos)
    assert.same({
      FileIds = { "yDR1nUU06b46rUy0fKyKocxqVM6QwE88" }, FlowName = "张三劳动合同", FlowType = "劳动合同",
      Deadline = 1893427200, CustomerData = "ONB-1",
      FlowApprovers = {
        { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000", PreReadTime = 30,
          ApproverOption = { NoTransfer = true },
          SignComponents = { { GenerateMode = "KEYWORD", ComponentType = "SIGN_SIGNATURE", ComponentId = "乙方（签字）",
            ComponentWidth = 120, ComponentHeight = 50 } } },
        { ApproverType = "ORGANIZATION", Name = "李四", Mobile = "13900139000", OpenId = "hr_lisi",
          OrganizationName = "示例科技有限公司", OrganizationOpenId = "org_hr",
          SignComponents = { { GenerateMode = "KEYWORD", ComponentType = "SIGN_SEAL", ComponentId = "甲方（盖章）",
            ComponentWidth = 120, ComponentHeight = 120 } } },
      },
    }, group.FlowFileInfos[1])
    assert.same({ "保密协议", "设备领用确认书" },
      { group.FlowFileInfos[2].FlowType, group.FlowFileInfos[3].FlowName:sub(#"张三" + 1) })
    assert.equals("领用人（签字）", group.FlowFileInfos[3].FlowApprovers[1].SignComponents[1].ComponentId)
    assert.same({ OtherApproverSignEach = true }, group.FlowGroupOptions)
  end)

  it("uses company auto-sign with the seal id when no HR employee is given", function()
    local group = build_group(params{ hr = false, seal_id = "seal_1" })
    local company = group.FlowFileInfos[3].FlowApprovers[2]
    assert.same({ ApproverType = "ENTERPRISESERVER", OrganizationName = "示例科技有限公司",
      OrganizationOpenId = "org_hr", SignComponents = { { GenerateMode = "KEYWORD", ComponentType = "SIGN_SEAL",
        ComponentId = "发放方（盖章）", ComponentValue = "seal_1", ComponentWidth = 120, ComponentHeight = 120 } } },
      company)
  end)

  it("passes a builder's complaint on to its caller", function()
    local err = raised(function() build_group(params{ employee = { name = "张三", mobile = "1380013800" } }) end)
    assert.is_truthy(err:find("flow.person: mobile must be 11 digits", 1, true), err)
    err = raised(function() build_group(params{ file_ids = { "a", "b" } }) end)
    assert.is_truthy(err:find("file_ids must hold 3", 1, true), err)
  end)

  it("writes only API members with the API's types", function()
    check_against_schema(build_group(params()), "ChannelCreateFlowGroupByFilesRequest", "request")
    check_against_schema(build_group(params{ hr = false, seal_id = "s" }), "ChannelCreateFlowGroupByFilesRequest",
      "request")
  end)
end)

describe("a built group and the rest of essbasic", function()
  local build_group = dofile("examples/hr_onboarding_group.lua")
  local P = {
    file_ids = { "fileLabour", "fileSecret", "fileEquipment" },
    agent = { app_id = "app1", org_open_id = "org_hr", operator_open_id = "op1" },
    company = "示例科技有限公司",
    hr = { name = "李四", mobile = "13900139000", open_id = "hr_lisi" },
    employee = { name = "张三", mobile = "13800138000" },
    reference = "ONB-2024-0117",
  }

  it("encodes to JSON with the request hint and decodes back to the same table", function()
    local json = require("essbasic.json")
    local api = require("essbasic.api")
    local group = build_group(P)
    local body = assert(json.encode(group, api.request_hint("ChannelCreateFlowGroupByFiles")))
    assert.same(group, assert(json.decode(body)))
    assert.is_truthy(body:find('"FlowGroupName":"张三入职签约"', 1, true), body)
  end)

  it("is what the example prints when run as a script", function()
    local json = require("essbasic.json")
    local lua = os.getenv("ESSBASIC_LUA") or "lua5.4"
    local cmd = "ESSBASIC_APP_ID=app1 ESSBASIC_ORG_OPEN_ID=org_hr ESSBASIC_OPERATOR_OPEN_ID=op1 " .. lua ..
      " examples/hr_onboarding_group.lua fileLabour fileSecret fileEquipment 2>&1"
    local pipe = assert(io.popen(cmd))
    local out = pipe:read("*a")
    pipe:close()
    local printed = json.decode(out)
    assert.is_table(printed, out)
    local expected = build_group(P)
    -- The script's deadline is "a week from now", taken a moment earlier or later than ours.
    for i, info in ipairs(printed.FlowFileInfos) do
      assert.is_true(math.abs(info.Deadline - expected.FlowFileInfos[i].Deadline) <= 5)
      info.Deadline = expected.FlowFileInfos[i].Deadline
    end
    assert.same(expected, printed)
  end)

  it("passes validate.request, with an HR employee and with company auto-sign", function()
    local validate = require("essbasic.validate")
    local auto = {}
    for k, v in pairs(P) do auto[k] = v end
    auto.hr, auto.seal_id = nil, "seal_1"
    for _, p in ipairs({ P, auto }) do
      local ok, err = validate.request("ChannelCreateFlowGroupByFiles", build_group(p))
      assert.is_true(ok, tostring(err))
    end
  end)
end)
