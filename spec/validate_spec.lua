-- validate.request: the official example passes, every kind of bad request is refused with the API's own code
-- and the path of the problem, all problems come back at once, and hostile inputs fail fast without crashing.

local validate = require("essbasic.validate")
local errors = require("essbasic.errors")
local api = require("essbasic.api")
local core = require("essbasic.core")

local ACTION = "ChannelCreateFlowGroupByFiles"

local read = require("helpers.files").read

local EXAMPLE = assert(core.json_decode(read("spec/data/ChannelCreateFlowGroupByFiles.request.json")))

local copy = require("helpers.tables").deep_copy

local function example() return copy(EXAMPLE) end

local function approver(r, contract, n) return r.FlowFileInfos[contract].FlowApprovers[n] end

local function problem_at(err, path)
  for _, p in ipairs(err.problems) do
    if p.path == path then return p end
  end
end

local function cjk(n) return ("合"):rep(n) end

describe("validate.request", function()
  it("passes the official example request (3 contracts)", function()
    local r = example()
    assert.are.equal(3, #r.FlowFileInfos)
    assert.is_true(validate.request(ACTION, r))
  end)

  it("refuses a one-contract group with the API's code and the path (the API wants 2-50)", function()
    local r = example()
    r.FlowFileInfos = { r.FlowFileInfos[1] }
    local ok, err = validate.request(ACTION, r)
    assert.is_nil(ok)
    assert.is_true(errors.is_error(err))
    assert.are.equal("validation", err.kind)
    assert.are.equal("InvalidParameter", err.code)
    assert.are.equal(1, #err.problems)
    local p = err.problems[1]
    assert.are.equal("FlowFileInfos", p.path)
    assert.are.equal("2 to 50 items", p.expected)
    assert.are.equal("1 item", p.found)
    assert.truthy(tostring(err):find("^essbasic: InvalidParameter: 1 problem in the ChannelCreateFlowGroupByFiles"))
    assert.truthy(err.message:find("FlowFileInfos: expected 2 to 50 items, found 1 item", 1, true))
    -- and a corrected one (two contracts) passes
    r.FlowFileInfos[2] = copy(r.FlowFileInfos[1])
    assert.is_true(validate.request(ACTION, r))
  end)

  -- Each case: a change to the official example, the code the API would answer and the path of the problem.
  local S201, S1001 = cjk(201), cjk(1001)
  local cases = {
    { "one contract", function(r) r.FlowFileInfos[2], r.FlowFileInfos[3] = nil, nil end, "InvalidParameter",
      "FlowFileInfos" },
    { "51 contracts", function(r) for i = 4, 51 do r.FlowFileInfos[i] = copy(r.FlowFileInfos[1]) end end,
      "InvalidParameter", "FlowFileInfos" },
    { "no contracts member", function(r) r.FlowFileInfos = nil end, "MissingParameter", "FlowFileInfos" },
    { "empty contract list", function(r) r.FlowFileInfos = {} end, "InvalidParameter", "FlowFileInfos" },
    { "contract list is a string", function(r) r.FlowFileInfos = "x" end, "InvalidParameter", "FlowFileInfos" },
    { "contract list is a map", function(r) r.FlowFileInfos = { a = r.FlowFileInfos[1] } end, "InvalidParameter",
      "FlowFileInfos" },
    { "contract list with a hole", function(r) r.FlowFileInfos[2] = nil end, "InvalidParameter", "FlowFileInfos" },
    { "contract list marked as a JSON array but sparse", function(r)
      r.FlowFileInfos = setmetatable({ r.FlowFileInfos[1], nil, r.FlowFileInfos[3] }, core.json_array_mt) end,
      "InvalidParameter", "FlowFileInfos" },
    { "no group name", function(r) r.FlowGroupName = nil end, "MissingParameter", "FlowGroupName" },
    { "empty group name", function(r) r.FlowGroupName = "" end, "MissingParameter", "FlowGroupName" },
    { "group name of 201 characters", function(r) r.FlowGroupName = S201 end, "InvalidParameter", "FlowGroupName" },
    { "group name is a number", function(r) r.FlowGroupName = 123 end, "InvalidParameter", "FlowGroupName" },
    { "no Agent", function(r) r.Agent = nil end, "MissingParameter", "Agent" },
    { "no Agent.AppId", function(r) r.Agent.AppId = nil end, "MissingParameter", "Agent.AppId" },
    { "no ProxyOrganizationOpenId", function(r) r.Agent.ProxyOrganizationOpenId = nil end, "MissingParameter",
      "Agent.ProxyOrganizationOpenId" },
    { "no ProxyOperator", function(r) r.Agent.ProxyOperator = nil end, "MissingParameter", "Agent.ProxyOperator" },
    { "no ProxyOperator.OpenId", function(r) r.Agent.ProxyOperator.OpenId = nil end, "MissingParameter",
      "Agent.ProxyOperator.OpenId" },
    { "empty ProxyOperator.OpenId", function(r) r.Agent.ProxyOperator.OpenId = "" end, "MissingParameter",
      "Agent.ProxyOperator.OpenId" },
    { "Agent is a string", function(r) r.Agent = "app" end, "InvalidParameter", "Agent" },
    { "Agent is a list", function(r) r.Agent = { r.Agent } end, "InvalidParameter", "Agent" },
    -- disabled members are sent (see below), but checked like any member
    { "disabled Agent.ProxyOrganizationId as a number", function(r) r.Agent.ProxyOrganizationId = 5 end,
      "InvalidParameter", "Agent.ProxyOrganizationId" },
    { "disabled Operator with an unknown member", function(r) r.Operator = { Nope = "x" } end, "UnknownParameter",
      "Operator.Nope" },
    { "OpenId of 65 characters", function(r) r.Agent.ProxyOperator.OpenId = ("a"):rep(65) end, "InvalidParameter",
      "Agent.ProxyOperator.OpenId" },
    { "bad ApproverVerifyType", function(r) r.ApproverVerifyType = "Face" end, "InvalidParameter.ApproverVerifyType",
      "ApproverVerifyType" },
    { "unknown top-level member", function(r) r.FlowGroupNames = "x" end, "UnknownParameter", "FlowGroupNames" },
    { "FlowGroupOptions is a list", function(r) r.FlowGroupOptions = { true, false } end, "InvalidParameter",
      "FlowGroupOptions" },
    { "HideDate is a string", function(r) r.FlowGroupOptions = { SignComponentConfig = { HideDate = "no" } } end,
      "InvalidParameter", "FlowGroupOptions.SignComponentConfig.HideDate" },
    { "no FlowName", function(r) r.FlowFileInfos[2].FlowName = nil end, "MissingParameter",
      "FlowFileInfos[2].FlowName" },
    { "FlowName of 201 characters", function(r) r.FlowFileInfos[3].FlowName = S201 end, "InvalidParameter.FlowName",
      "FlowFileInfos[3].FlowName" },
    { "FlowName is a boolean", function(r) r.FlowFileInfos[1].FlowName = true end, "InvalidParameter",
      "FlowFileInfos[1].FlowName" },
    { "FlowName with a NUL byte", function(r) r.FlowFileInfos[1].FlowName = "a\0b" end, "InvalidParameter",
      "FlowFileInfos[1].FlowName" },
    { "FlowName not UTF-8", function(r) r.FlowFileInfos[1].FlowName = "\195\040" end, "InvalidParameter",
      "FlowFileInfos[1].FlowName" },
    { "FlowName with a UTF-16 surrogate", function(r) r.FlowFileInfos[1].FlowName = "\237\160\128" end,
      "InvalidParameter", "FlowFileInfos[1].FlowName" },
    { "no file", function(r) r.FlowFileInfos[1].FileIds = {} end, "InvalidParameter.FlowFileIds",
      "FlowFileInfos[1].FileIds" },
    { "two files", function(r) r.FlowFileInfos[1].FileIds = { "a", "b" } end, "InvalidParameter.FlowFileIds",
      "FlowFileInfos[1].FileIds" },
    { "no FileIds", function(r) r.FlowFileInfos[1].FileIds = nil end, "MissingParameter", "FlowFileInfos[1].FileIds" },
    { "FileIds element is a number", function(r) r.FlowFileInfos[1].FileIds = { 1 } end, "InvalidParameter",
      "FlowFileInfos[1].FileIds[1]" },
    { "FileIds is a string", function(r) r.FlowFileInfos[1].FileIds = "id" end, "InvalidParameter",
      "FlowFileInfos[1].FileIds" },
    { "no signers", function(r) r.FlowFileInfos[1].FlowApprovers = {} end, "InvalidParameter.FlowApprovers",
      "FlowFileInfos[1].FlowApprovers" },
    { "six signers", function(r)
      local list = r.FlowFileInfos[2].FlowApprovers
      for i = 3, 6 do list[i] = copy(list[2]) end end, "InvalidParameter.FlowApprovers",
      "FlowFileInfos[2].FlowApprovers" },
    { "no FlowApprovers", function(r) r.FlowFileInfos[1].FlowApprovers = nil end, "MissingParameter",
      "FlowFileInfos[1].FlowApprovers" },
    { "Deadline 3.5", function(r) r.FlowFileInfos[1].Deadline = 3.5 end, "InvalidParameter",
      "FlowFileInfos[1].Deadline" },
    { "Deadline of 5 digits", function(r) r.FlowFileInfos[1].Deadline = 12345 end, "InvalidParameter.FlowDeadLine",
      "FlowFileInfos[1].Deadline" },
    { "Deadline after year 3020", function(r) r.FlowFileInfos[1].Deadline = 33162419561 end,
      "InvalidParameter.FlowDeadLine", "FlowFileInfos[1].Deadline" },
    { "Deadline as a string", function(r) r.FlowFileInfos[1].Deadline = "1700000000" end, "InvalidParameter",
      "FlowFileInfos[1].Deadline" },
    { "Deadline NaN", function(r) r.FlowFileInfos[1].Deadline = 0 / 0 end, "InvalidParameter",
      "FlowFileInfos[1].Deadline" },
    { "FlowDescription of 1001 characters", function(r) r.FlowFileInfos[1].FlowDescription = S1001 end,
      "InvalidParameter.FlowDescription", "FlowFileInfos[1].FlowDescription" },
    { "FlowType of 256 characters", function(r) r.FlowFileInfos[1].FlowType = cjk(256) end,
      "InvalidParameter.FlowType", "FlowFileInfos[1].FlowType" },
    { "CustomerData of 1001 characters", function(r) r.FlowFileInfos[1].CustomerData = ("a"):rep(1001) end,
      "InvalidParameter.CustomerData", "FlowFileInfos[1].CustomerData" },
    { "Unordered as a string", function(r) r.FlowFileInfos[1].Unordered = "true" end, "InvalidParameter",
      "FlowFileInfos[1].Unordered" },
    { "NeedSignReview as 1", function(r) r.FlowFileInfos[1].NeedSignReview = 1 end, "InvalidParameter",
      "FlowFileInfos[1].NeedSignReview" },
    { "disabled CallbackUrl as a boolean", function(r) r.FlowFileInfos[1].CallbackUrl = true end, "InvalidParameter",
      "FlowFileInfos[1].CallbackUrl" },
    { "FlowDisplayType 4", function(r) r.FlowFileInfos[1].FlowDisplayType = 4 end, "InvalidParameter",
      "FlowFileInfos[1].FlowDisplayType" },
    { "unknown contract member (did you mean)", function(r) r.FlowFileInfos[1].flowname = "x" end, "UnknownParameter",
      "FlowFileInfos[1].flowname" },
    { "a contract with a numeric key", function(r) r.FlowFileInfos[1][1] = "x" end, "InvalidParameter",
      "FlowFileInfos[1]" },
    { "a contract that is a string", function(r) r.FlowFileInfos[1] = "x" end, "InvalidParameter", "FlowFileInfos[1]" },
    { "bad ApproverType", function(r) approver(r, 1, 1).ApproverType = "COMPANY" end, "InvalidParameter.ApproverType",
      "FlowFileInfos[1].FlowApprovers[1].ApproverType" },
    { "10-digit mobile", function(r) approver(r, 1, 2).Mobile = "1320000000" end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].Mobile" },
    { "12-digit mobile", function(r) approver(r, 2, 2).Mobile = "132000000001" end, "InvalidParameter",
      "FlowFileInfos[2].FlowApprovers[2].Mobile" },
    { "mobile with +86", function(r) approver(r, 3, 2).Mobile = "+8613200000000" end, "InvalidParameter",
      "FlowFileInfos[3].FlowApprovers[2].Mobile" },
    { "mobile not starting with 1", function(r) approver(r, 1, 2).Mobile = "23200000000" end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].Mobile" },
    { "mobile as a number", function(r) approver(r, 1, 2).Mobile = 13200000000 end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].Mobile" },
    { "bad IdCardType", function(r) approver(r, 1, 2).IdCardType = "PASSPORT" end, "InvalidParameter.CardType",
      "FlowFileInfos[1].FlowApprovers[2].IdCardType" },
    { "short ID card number", function(r) approver(r, 1, 2).IdCardNumber = "123" end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].IdCardNumber" },
    { "lowercase x in an ID card number", function(r) approver(r, 1, 2).IdCardNumber = "11010519491231002x" end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].IdCardNumber" },
    { "HK/Macau pass with a bad letter", function(r)
      approver(r, 1, 2).IdCardType = "HONGKONG_AND_MACAO"; approver(r, 1, 2).IdCardNumber = "A1234567890" end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].IdCardNumber" },
    { "HK/Macau pass given an 18-character ID", function(r)
      approver(r, 1, 2).IdCardType = "HONGKONG_AND_MACAO"; approver(r, 1, 2).IdCardNumber = "11010519491231002X" end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].IdCardNumber" },
    { "PreReadTime 2", function(r) approver(r, 1, 2).PreReadTime = 2 end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].PreReadTime" },
    { "PreReadTime 301", function(r) approver(r, 1, 2).PreReadTime = 301 end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].PreReadTime" },
    { "ApproverRoleName of 21 characters", function(r) approver(r, 1, 2).ApproverRoleName = cjk(21) end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].ApproverRoleName" },
    { "bad NotifyType", function(r) approver(r, 1, 2).NotifyType = "WECHAT" end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].NotifyType" },
    { "bad ComponentLimitType element", function(r) approver(r, 1, 2).ComponentLimitType = { "ESIGN", "FINGER" } end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].ComponentLimitType[2]" },
    { "ApproverVerifyTypes 3", function(r) approver(r, 1, 2).ApproverVerifyTypes = { 3 } end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].ApproverVerifyTypes[1]" },
    { "ApproverSignTypes 4", function(r) approver(r, 1, 2).ApproverSignTypes = { 1, 4 } end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].ApproverSignTypes[2]" },
    { "SignTypeSelector -1 (uint64)", function(r) approver(r, 1, 2).SignTypeSelector = -1 end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].SignTypeSelector" },
    { "per-signer Deadline (not for groups)", function(r) approver(r, 2, 1).Deadline = 1900000000 end,
      "InvalidParameter", "FlowFileInfos[2].FlowApprovers[1].Deadline" },
    { "disabled signer CallbackUrl as a list", function(r) approver(r, 1, 1).CallbackUrl = { "https://x" } end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].CallbackUrl" },
    { "bad FlowReadLimit", function(r) approver(r, 1, 2).ApproverOption = { FlowReadLimit = "Never" } end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].ApproverOption.FlowReadLimit" },
    { "bad ApproverMobileMode", function(r) approver(r, 1, 2).ApproverOption = { ApproverMobileMode = "SWAP" } end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].ApproverOption.ApproverMobileMode" },
    { "FillType 2", function(r) approver(r, 1, 2).ApproverOption = { FillType = 2 } end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].ApproverOption.FillType" },
    { "NoRefuse as a string", function(r) approver(r, 1, 2).ApproverOption = { NoRefuse = "yes" } end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[2].ApproverOption.NoRefuse" },
    { "bad sign ComponentType", function(r) approver(r, 1, 1).SignComponents[1].ComponentType = "SIGN_FOO" end,
      "InvalidParameter.UnsupportedComponentType",
      "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].ComponentType" },
    { "bad GenerateMode", function(r) approver(r, 1, 1).SignComponents[1].GenerateMode = "ABSOLUTE" end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].GenerateMode" },
    { "bad KeywordOrder", function(r) approver(r, 1, 1).SignComponents[1].KeywordOrder = "Up" end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].KeywordOrder" },
    { "bad RelativeLocation", function(r) approver(r, 1, 1).SignComponents[1].RelativeLocation = "Left" end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].RelativeLocation" },
    { "ComponentPosX as a string", function(r) approver(r, 1, 1).SignComponents[1].ComponentPosX = "100" end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].ComponentPosX" },
    { "ComponentPosY infinite", function(r) approver(r, 1, 1).SignComponents[1].ComponentPosY = math.huge end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].ComponentPosY" },
    { "ComponentPage 1.5", function(r) approver(r, 1, 1).SignComponents[1].ComponentPage = 1.5 end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].ComponentPage" },
    { "KeywordIndexes with a fraction", function(r) approver(r, 1, 1).SignComponents[1].KeywordIndexes = { 0, 0.5 } end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].KeywordIndexes[2]" },
    { "ComponentId of 31 characters", function(r) approver(r, 1, 1).SignComponents[1].ComponentId = ("c"):rep(31) end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents[1].ComponentId" },
    { "SignComponents is an object", function(r) approver(r, 1, 1).SignComponents = { ComponentType = "SIGN_SEAL" } end,
      "InvalidParameter", "FlowFileInfos[1].FlowApprovers[1].SignComponents" },
    { "limit without ComponentType", function(r) approver(r, 1, 1).AddSignComponentsLimits = { {} } end,
      "MissingParameter", "FlowFileInfos[1].FlowApprovers[1].AddSignComponentsLimits[1].ComponentType" },
    { "limit with a fill-in type", function(r)
      approver(r, 1, 1).AddSignComponentsLimits = { { ComponentType = "TEXT" } } end,
      "InvalidParameter.UnsupportedComponentType",
      "FlowFileInfos[1].FlowApprovers[1].AddSignComponentsLimits[1].ComponentType" },
    { "IntentionType 3", function(r) approver(r, 1, 2).Intention = { IntentionType = 3 } end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].Intention.IntentionType" },
    { "11 intention questions", function(r)
      local q = {}
      for i = 1, 11 do q[i] = { Question = "同意吗", Answers = { "同意" } } end
      approver(r, 1, 2).Intention = { IntentionType = 1, IntentionQuestions = q } end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].Intention.IntentionQuestions" },
    { "Speed 4", function(r) approver(r, 1, 2).Intention = { RuleIdConfig = { Speed = 4 } } end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].Intention.RuleIdConfig.Speed" },
    { "Question of 251 characters", function(r)
      approver(r, 1, 2).Intention = { IntentionQuestions = { { Question = cjk(251) } } } end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[2].Intention.IntentionQuestions[1].Question" },
    { "signer that is a boolean", function(r) r.FlowFileInfos[1].FlowApprovers[1] = true end, "InvalidParameter",
      "FlowFileInfos[1].FlowApprovers[1]" },
    { "contract-level Components with a bad type", function(r)
      r.FlowFileInfos[1].Components = { { ComponentType = "TEXTAREA" } } end,
      "InvalidParameter.UnsupportedComponentType", "FlowFileInfos[1].Components[1].ComponentType" },
  }

  it("has at least 60 bad-request cases", function()
    assert.is_true(#cases >= 60, #cases)
  end)

  for i, c in ipairs(cases) do
    local name, mutate, code, path = c[1], c[2], c[3], c[4]
    it(string.format("refuses #%d %s: %s at %s", i, name, code, path), function()
      local r = example()
      mutate(r)
      local ok, err = validate.request(ACTION, r)
      assert.is_nil(ok)
      assert.are.equal("validation", err.kind)
      assert.are.equal(1, #err.problems, err.message)
      local p = err.problems[1]
      assert.are.equal(path, p.path, err.message)
      assert.are.equal(code, p.code, err.message)
      assert.are.equal(code, err.code)
      assert.is_string(p.expected)
      assert.is_string(p.found)
      assert.are.equal(p.path .. ": expected " .. p.expected .. ", found " .. p.found ..
        (p.hint and (" (" .. p.hint .. ")") or ""), p.message)
    end)
  end

  it("reports every problem at once, in spec order, one line each", function()
    local r = example()
    approver(r, 2, 2).Mobile = "123"                   -- FlowFileInfos[2]...
    r.FlowGroupName = nil                              -- a top-level member
    r.FlowFileInfos[1].FlowName = cjk(300)             -- FlowFileInfos[1]...
    local ok, err = validate.request(ACTION, r)
    assert.is_nil(ok)
    assert.are.equal(3, #err.problems)
    assert.are.same({ "FlowFileInfos[1].FlowName", "FlowFileInfos[2].FlowApprovers[2].Mobile", "FlowGroupName" },
      { err.problems[1].path, err.problems[2].path, err.problems[3].path })
    assert.are.same({ "InvalidParameter.FlowName", "InvalidParameter", "MissingParameter" },
      { err.problems[1].code, err.problems[2].code, err.problems[3].code })
    assert.are.equal("InvalidParameter.FlowName", err.code)
    local lines = {}
    for line in err.message:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal(4, #lines)
    assert.are.equal("3 problems in the ChannelCreateFlowGroupByFiles request:", lines[1])
    -- a mobile is personal data: masked (essbasic.personal), its length kept
    assert.are.equal("  FlowFileInfos[2].FlowApprovers[2].Mobile: expected a valid mobile, found \"1*3\"", lines[3])
  end)

  it("caps the list at 100 problems and counts the rest", function()
    local r = example()
    local idx = {}
    for i = 1, 150 do idx[i] = "x" end
    approver(r, 1, 1).SignComponents[1].KeywordIndexes = idx
    local ok, err = validate.request(ACTION, r)
    assert.is_nil(ok)
    assert.are.equal(100, #err.problems)
    assert.truthy(err.message:find("… and 50 more", 1, true))
    assert.are.equal("FlowFileInfos[1].FlowApprovers[1].SignComponents[1].KeywordIndexes[1]", err.problems[1].path)
  end)

  it("suggests the right name for unknown members", function()
    local r = example()
    r.FlowFileInfos[1].flowname = "x"
    r.flowGroupNmae = "y"
    approver(r, 1, 2).Mobil = "13200000000"
    local _, err = validate.request(ACTION, r)
    assert.are.equal(3, #err.problems)
    assert.are.equal("did you mean FlowName?", problem_at(err, "FlowFileInfos[1].flowname").hint)
    assert.are.equal("did you mean FlowGroupName?", problem_at(err, "flowGroupNmae").hint)
    assert.are.equal("did you mean Mobile?", problem_at(err, "FlowFileInfos[1].FlowApprovers[2].Mobil").hint)
    assert.truthy(err.message:find("FlowFileInfos[1].flowname: expected a member of FlowFileInfo, found unknown " ..
      "member \"flowname\" (did you mean FlowName?)", 1, true))
    r = example()
    r.Zzzzzzzz = 1
    _, err = validate.request(ACTION, r)
    assert.is_nil(err.problems[1].hint)
  end)

  it("passes disabled members with a value and names them; an empty value is not set", function()
    -- The API's own examples send members the schema marks disabled, so the API takes them: they are sent, and
    -- the caller is told which (the client logs one warning).
    local r = example()
    r.FlowFileInfos[2].CallbackUrl = "https://example.com/cb"
    r.Operator = { OpenId = "x" }
    local ok, disabled = validate.request(ACTION, r)
    assert.is_true(ok)
    assert.are.same({ "FlowFileInfos[2].CallbackUrl", "Operator" }, disabled)
    local body, disabled_too = validate.request_body(ACTION, r)
    assert.are.same(disabled, disabled_too)
    local sent = core.json_decode(body)
    assert.are.equal("https://example.com/cb", sent.FlowFileInfos[2].CallbackUrl)
    assert.are.equal("x", sent.Operator.OpenId)
    assert.are.same({ true }, { validate._internal.reference_request(ACTION, r) == true })
    assert.are.same(disabled, select(2, validate._internal.reference_request(ACTION, r)))
    r.FlowFileInfos[2].CallbackUrl = ""
    r.Operator = {}
    ok, disabled = validate.request(ACTION, r)
    assert.is_true(ok)
    assert.is_nil(disabled)
    assert.is_nil(select(2, validate.request_body(ACTION, r)))
  end)

  it("counts UTF-8 characters, not bytes: 200 Chinese characters (600 bytes) pass, 201 fail", function()
    local r = example()
    local name = cjk(200)
    assert.are.equal(600, #name)
    r.FlowFileInfos[1].FlowName = name
    r.FlowGroupName = name
    assert.is_true(validate.request(ACTION, r))
    r.FlowFileInfos[1].FlowName = name .. "合"
    local _, err = validate.request(ACTION, r)
    assert.are.equal("InvalidParameter.FlowName", err.code)
    assert.are.equal("201 characters", err.problems[1].found)
    -- 4-byte characters count once too
    r.FlowFileInfos[1].FlowName = ("\240\159\152\128"):rep(200)
    assert.is_true(validate.request(ACTION, r))
  end)

  it("takes integral floats as integers and refuses the rest", function()
    local r = example()
    r.FlowFileInfos[1].Deadline = 1900000000.0
    approver(r, 1, 2).PreReadTime = 10.0
    assert.is_true(validate.request(ACTION, r))
    r.FlowFileInfos[1].Deadline = 2 ^ 60 -- integral but beyond what a double holds exactly
    local _, err = validate.request(ACTION, r)
    assert.are.equal("FlowFileInfos[1].Deadline", err.problems[1].path)
  end)

  it("accepts lists marked with json.array, including empty optional ones", function()
    local r = example()
    r.FlowFileInfos = setmetatable(r.FlowFileInfos, core.json_array_mt)
    r.FlowFileInfos[1].Components = setmetatable({}, core.json_array_mt)
    assert.is_true(validate.request(ACTION, r))
    r.FlowGroupOptions = setmetatable({}, core.json_array_mt)
    local _, err = validate.request(ACTION, r)
    assert.are.equal("FlowGroupOptions", err.problems[1].path)
  end)

  it("refuses huge inputs quickly without walking them", function()
    local r = example()
    local many = {}
    for i = 1, 100000 do many[i] = r.FlowFileInfos[1] end
    r.FlowFileInfos = many
    local t0 = os.clock()
    local _, err = validate.request(ACTION, r)
    assert.is_true(os.clock() - t0 < 0.5)
    assert.are.equal(1, #err.problems)
    assert.are.equal("100000 items", err.problems[1].found)

    r = example()
    local ids = {}
    for i = 1, 100000 do ids[i] = "id" end
    r.FlowFileInfos[1].FileIds = ids
    _, err = validate.request(ACTION, r)
    assert.are.equal(1, #err.problems)
    assert.are.equal("InvalidParameter.FlowFileIds", err.code)

    r = example()
    local big = ("合"):rep(7 * 1024 * 1024) -- 21 MB
    r.FlowFileInfos[1].FlowName = big
    t0 = os.clock()
    _, err = validate.request(ACTION, r)
    assert.is_true(os.clock() - t0 < 0.5)
    assert.are.equal("InvalidParameter.FlowName", err.code)
    assert.truthy(#err.message < 400)

    -- a 20 MB value without a length rule is still checked for UTF-8, at C speed
    r = example()
    approver(r, 1, 1).SignComponents[1].ComponentValue = ("a"):rep(20 * 1024 * 1024) .. "\255"
    t0 = os.clock()
    _, err = validate.request(ACTION, r)
    assert.is_true(os.clock() - t0 < 1)
    assert.are.equal("FlowFileInfos[1].FlowApprovers[1].SignComponents[1].ComponentValue", err.problems[1].path)
    assert.truthy(#err.message < 400)
  end)

  it("stops at cycles and at absurd nesting", function()
    local perm = { Name = "root" }
    perm.Children = { perm }
    local r = { Name = "role", Agent = { AppId = "a" }, PermissionGroups = { { Permissions = { perm } } } }
    local ok, err = validate.request("ChannelCreateRole", r)
    assert.is_nil(ok)
    assert.are.equal("PermissionGroups[1].Permissions[1].Children[1]", err.problems[1].path)
    assert.truthy(err.problems[1].found:find("cycle", 1, true))

    local deep = { Name = "leaf" }
    for _ = 1, 60 do deep = { Children = { deep } } end
    r.PermissionGroups = { { Permissions = { deep } } }
    ok, err = validate.request("ChannelCreateRole", r)
    assert.is_nil(ok)
    assert.are.equal(1, #err.problems)
    assert.truthy(err.problems[1].expected:find("nesting", 1, true))

    -- a table shared by several contracts is not a cycle
    r = example()
    r.FlowFileInfos[2].FlowApprovers[1] = r.FlowFileInfos[1].FlowApprovers[1]
    assert.is_true(validate.request(ACTION, r))
    -- a request that contains itself where the schema has no recursion
    r = example()
    r.Agent.ProxyOperator = r
    ok, err = validate.request(ACTION, r)
    assert.is_nil(ok)
    local p = problem_at(err, "Agent.ProxyOperator")
    assert.truthy(p.found:find("cycle", 1, true))
  end)

  it("refuses an unknown action with InvalidAction and a suggestion", function()
    local ok, err = validate.request("channelcreateflowgroupbyfiles", {})
    assert.is_nil(ok)
    assert.are.equal("InvalidAction", err.code)
    assert.are.equal("did you mean ChannelCreateFlowGroupByFiles?", err.problems[1].hint)
  end)

  it("raises on wrong argument types (programming errors)", function()
    assert.has_error(function() validate.request(nil, {}) end)
    assert.has_error(function() validate.request(ACTION, "params") end)
  end)

  it("refuses a list where the request object is wanted", function()
    local _, err = validate.request(ACTION, setmetatable({}, core.json_array_mt))
    assert.are.equal("InvalidParameter", err.code)
    _, err = validate.request(ACTION, { 1, 2 })
    assert.are.equal("InvalidParameter", err.problems[1].code)
  end)
end)

describe("validate.request for the other actions of the workflow", function()
  local AGENT = { AppId = "yDwhxUUckp3gl8j5UuFX33LSNozpRsbi", ProxyOrganizationOpenId = "org_dianziqian",
    ProxyOperator = { OpenId = "n9527" } }
  local function ids(n)
    local t = {}
    for i = 1, n do t[i] = string.format("yDwiBUUckpo27hh3UuLiduR83BEL%04d", i) end
    return t
  end

  local function refused(action, params, code, path)
    local ok, err = validate.request(action, params)
    assert.is_nil(ok, action)
    local p = problem_at(err, path)
    assert.is_table(p, err.message)
    assert.are.equal(code, p.code, err.message)
  end

  it("CreateSignUrls", function()
    assert.is_true(validate.request("CreateSignUrls", { Agent = copy(AGENT), FlowGroupId = "g1" }))
    assert.is_true(validate.request("CreateSignUrls", { Agent = copy(AGENT), FlowIds = ids(100),
      GenerateType = "PERSON", Name = "张三", Mobile = "13800000000" }))
    refused("CreateSignUrls", { Agent = copy(AGENT) }, "MissingParameter.FlowIdsOrFlowGroupId", "")
    refused("CreateSignUrls", { Agent = copy(AGENT), FlowIds = ids(101) }, "InvalidParameter.FlowIds", "FlowIds")
    refused("CreateSignUrls", { Agent = copy(AGENT), FlowGroupId = "g", Endpoint = "SMS" }, "InvalidParameter.EndPoint",
      "Endpoint")
    refused("CreateSignUrls", { Agent = copy(AGENT), FlowGroupId = "g", GenerateType = "ANY" },
      "InvalidParameter.GenerateType", "GenerateType")
    refused("CreateSignUrls", { Agent = copy(AGENT), FlowGroupId = "g", Mobile = "555" }, "InvalidParameter", "Mobile")
    refused("CreateSignUrls", { Agent = copy(AGENT), FlowGroupId = "g", IdCardNumber = "123" }, "InvalidParameter",
      "IdCardNumber")
    refused("CreateSignUrls", { FlowGroupId = "g" }, "MissingParameter", "Agent")
  end)

  it("DescribeFlowDetailInfo", function()
    assert.is_true(validate.request("DescribeFlowDetailInfo", { Agent = copy(AGENT), FlowIds = ids(2) }))
    refused("DescribeFlowDetailInfo", { Agent = copy(AGENT), FlowIds = ids(101) }, "LimitExceeded.FlowIds", "FlowIds")
    refused("DescribeFlowDetailInfo", { Agent = copy(AGENT) }, "MissingParameter.FlowIdsOrFlowGroupId", "")
    refused("DescribeFlowDetailInfo", { Agent = { AppId = "a" }, FlowGroupId = "g" }, "MissingParameter",
      "Agent.ProxyOrganizationOpenId")
  end)

  it("ChannelCancelFlow", function()
    assert.is_true(validate.request("ChannelCancelFlow", { Agent = copy(AGENT), FlowId = "f",
      CancelMessage = cjk(200) }))
    refused("ChannelCancelFlow", { Agent = copy(AGENT), FlowId = "f", CancelMessage = cjk(201) },
      "InvalidParameter.CancelReason", "CancelMessage")
    refused("ChannelCancelFlow", { Agent = copy(AGENT) }, "MissingParameter", "FlowId")
    -- the flag says Agent is optional, the text says it is required
    refused("ChannelCancelFlow", { FlowId = "f" }, "MissingParameter", "Agent")
    refused("ChannelCancelFlow", { Agent = copy(AGENT), FlowId = "f", CancelMessageFormat = 4 },
      "InvalidParameter.CancelReason", "CancelMessageFormat")
  end)

  it("ChannelBatchCancelFlows and DescribeCancelFlowsTask", function()
    assert.is_true(validate.request("ChannelBatchCancelFlows", { Agent = copy(AGENT), FlowIds = ids(100) }))
    -- neither LimitExceeded.FlowIds nor InvalidParameter.FlowIds is listed for this action: ParamError is
    refused("ChannelBatchCancelFlows", { Agent = copy(AGENT), FlowIds = ids(101) }, "InvalidParameter.ParamError",
      "FlowIds")
    refused("ChannelBatchCancelFlows", { Agent = copy(AGENT), FlowIds = ids(1), CancelMessage = cjk(201) },
      "InvalidParameter.ParamError", "CancelMessage")
    assert.is_true(validate.request("DescribeCancelFlowsTask", { Agent = copy(AGENT), TaskId = "t", CancelType = 1 }))
    refused("DescribeCancelFlowsTask", { Agent = copy(AGENT), TaskId = "t", CancelType = 2 }, "InvalidParameter",
      "CancelType")
    refused("DescribeCancelFlowsTask", { Agent = copy(AGENT) }, "MissingParameter", "TaskId")
  end)

  it("UploadFiles", function()
    local files = {}
    for i = 1, 20 do files[i] = { FileBody = "JVBERi0xLjQK", FileName = "合同" .. i .. ".pdf" } end
    assert.is_true(validate.request("UploadFiles", { Agent = copy(AGENT), BusinessType = "DOCUMENT",
      FileInfos = files }))
    files[21] = { FileBody = "JVBERi0xLjQK" }
    refused("UploadFiles", { Agent = copy(AGENT), BusinessType = "DOCUMENT", FileInfos = files }, "InvalidParameter",
      "FileInfos")
    refused("UploadFiles", { Agent = copy(AGENT), BusinessType = "DOCUMENT",
      FileInfos = { { FileBody = "x", FileName = cjk(197) .. ".pdf" } } }, "InvalidParameter", "FileInfos[1].FileName")
    refused("UploadFiles", { Agent = copy(AGENT), BusinessType = "DOCUMENT", FileInfos = { { FileName = "a.pdf" } } },
      "MissingParameter", "FileInfos[1].FileBody")
    refused("UploadFiles", { Agent = copy(AGENT), BusinessType = "PHOTO" }, "InvalidParameter", "BusinessType")
    assert.are.equal("file", api.host_kind("UploadFiles"))
  end)

  it("an action without required members takes no params at all", function()
    local found
    for _, name in ipairs(api.actions()) do
      local st = api.struct(api.action(name).input)
      local required = false
      for _, f in pairs(st.fields) do if f.required then required = true end end
      if not required and not api.rules.actions[name] then found = name break end
    end
    assert.is_string(found)
    assert.is_true(validate.request(found, nil))
    assert.is_true(validate.request(found, {}))
    local ok, err = validate.request(found, { Nope = 1 })
    assert.is_nil(ok)
    assert.are.equal("UnknownParameter", err.code)
  end)
end)

describe("validate.request over every request in examples.json", function()
  -- The official examples, as decoded JSON (spec/data/examples_requests.json). All 227 pass but these 4, each of
  -- which breaks a rule the API documents (docs/builders.md, "What validation refuses"):
  local KNOWN = {
    -- FlowApproverInfo.Mobile: "11 digits, mainland numbers only"; the example sends the placeholder text "员工手机号"
    ["ChannelCreateDynamicFlowApprover#2"] = { "InvalidParameter", "FillDynamicFlowList[1].FlowApprovers[1].Mobile" },
    ["ChannelCreateDynamicFlowApprover#3"] = { "InvalidParameter", "FillDynamicFlowList[1].FlowApprovers[3].Mobile" },
    -- ChannelCreateSealPolicyRequest.SealId is required; the example sends "" (not set), and the API answers a
    -- missing required member with MissingParameter
    ["ChannelCreateSealPolicy#2"] = { "MissingParameter", "SealId" },
    ["ChannelCreateSealPolicy#3"] = { "MissingParameter", "SealId" },
  }
  -- Passed, with the disabled members they send named (the API's examples send them, so it takes them).
  local DISABLED = {
    ["ChannelCreateMultiFlowSignQRCode#1"] = "QrEffectiveDay",
    ["ChannelCreateMultiFlowSignQRCode#2"] = "QrEffectiveDay",
    ["ChannelCreateMultiFlowSignQRCode#3"] = "QrEffectiveDay",
    ["ChannelCreatePreparedPersonalEsign#1"] = "EnableAutoSign",
    ["ChannelDescribeAccountBillDetail#1"] = "Agent.ProxyOrganizationId",
  }
  local examples = assert(core.json_decode(read("spec/data/examples_requests.json")))

  it("passes the official examples, and refuses the known bad ones for the known reason", function()
    assert.is_true(#examples >= 200)
    local actions, refused = {}, 0
    for _, e in ipairs(examples) do
      actions[e.Action] = true
      local id = e.Action .. "#" .. e.Index
      local ok, err = validate.request(e.Action, e.Params)
      local known = KNOWN[id]
      if known then
        refused = refused + 1
        assert.is_nil(ok, id)
        local p = problem_at(err, known[2])
        assert.is_table(p, id .. ": " .. err.message)
        assert.are.equal(known[1], p.code, id)
        for _, q in ipairs(err.problems) do assert.are.equal(p.code, q.code, err.message) end -- that rule only
      else
        assert.is_true(ok, not ok and err and (id .. ": " .. err.message) or id)
        local disabled = err -- on success: the disabled members sent, or nil
        if DISABLED[id] then
          assert.are.same({ DISABLED[id] }, disabled, id)
        else
          assert.is_nil(disabled, id)
        end
      end
    end
    assert.are.equal(227, #examples)
    assert.are.equal(4, refused)
    local n = 0
    for _ in pairs(actions) do n = n + 1 end
    assert.are.equal(100, n)
  end)
end)

describe("a client and the disabled members", function()
  local essbasic = require("essbasic")
  local examples = assert(core.json_decode(read("spec/data/examples_requests.json")))
  local function official(id)
    for _, e in ipairs(examples) do
      if e.Action .. "#" .. e.Index == id then return e.Action, copy(e.Params) end
    end
    error("no example " .. id)
  end

  local function client_with_log()
    local log = {}
    local client = essbasic.new{ secret_id = "AKIDexample", secret_key = "key", endpoint = "http://127.0.0.1:9",
      logger = function(level, message) log[#log + 1] = { level, message } end }
    return client, log
  end

  it("sends them, as the API's own examples do, with one warning per client and action naming every one", function()
    local client, log = client_with_log()
    local action, params = official("ChannelCreateMultiFlowSignQRCode#1")
    params.Agent.ProxyOrganizationId = "yDxbNUyKQDx3oAUuO4zjEBQGidlGe4hP" -- a second one
    local req = assert(client:prepare(action, params, { timestamp = 1700000000 }))
    local sent = core.json_decode(req.body)
    assert.are.equal(params.QrEffectiveDay, sent.QrEffectiveDay)
    assert.are.equal("yDxbNUyKQDx3oAUuO4zjEBQGidlGe4hP", sent.Agent.ProxyOrganizationId)
    assert.are.equal(1, #log)
    assert.are.equal("warn", log[1][1])
    assert.are.equal("essbasic: ChannelCreateMultiFlowSignQRCode sends Agent.ProxyOrganizationId, QrEffectiveDay, "
      .. "marked disabled in the API's schema (internal or retired): the service may ignore them", log[1][2])
    assert(client:prepare(action, params, { timestamp = 1700000000 }))
    assert.are.equal(1, #log, "the second call of the action is not reported again")
  end)

  it("logs nothing for a request without them", function()
    local client, log = client_with_log()
    assert(client:prepare(ACTION, example(), { timestamp = 1700000000 }))
    assert.are.same({}, log)
  end)
end)

describe("validate.request called again from inside a run", function()
  -- A key's __tostring is user code that runs while a problem is worded; if it validates too, neither run may
  -- see the other's problems or path (the state of a run is its own, not the module's).
  it("keeps each run's problems and paths its own", function()
    local bad_key = {}
    local function outer_request()
      local r = example()
      r.FlowFileInfos[2].FlowApprovers[1][bad_key] = true
      approver(r, 3, 1).Mobile = "123"
      return r
    end
    local inner_runs = 0
    setmetatable(bad_key, { __tostring = function()
      inner_runs = inner_runs + 1
      local r = example()
      r.FlowGroupName = cjk(201)
      r.Agent = nil
      local ok, err = validate.request(ACTION, r)
      assert.is_nil(ok)
      assert.are.equal(2, #err.problems)
      return "K"
    end })
    local _, err = validate.request(ACTION, outer_request())
    assert.are.equal(1, inner_runs)
    local paths = {}
    for i, p in ipairs(err.problems) do paths[i] = p.path end
    assert.are.same({ "FlowFileInfos[2].FlowApprovers[1]", "FlowFileInfos[3].FlowApprovers[1].Mobile" }, paths)
    assert.matches("with key K", err.problems[1].found, 1, true)
  end)
end)
