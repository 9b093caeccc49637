-- The sandbox follows the API's documentation where it once differed (issue 23, point 2). Each test names the
-- text it follows: api.json's member descriptions, Tencent's published example requests (spec/data/
-- examples_requests.json, taken from the examples file) and the action error lists (lua/essbasic/schema.lua).
local sandbox = require("helpers.sandbox")
local json = require("essbasic.json")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local ROOT = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/spec/[^/]+$") or "."

describe("sandbox semantics follow the documentation", function()
  local sb, client

  setup(function()
    sb = sandbox.start{ rate_limit = 1000 }
    client = sb:client({ retry = false, validate = false })
  end)
  teardown(function() if sb then sb:stop() end end)

  local function ok(action, params) return sandbox.ok(client, action, params) end
  local function refused(code, action, params) return sandbox.refused(client, code, action, params) end

  local function single_flow(extra)
    local params = { Agent = sb.agent, FlowName = "单份合同", FileIds = { sb:upload(client) },
      FlowApprovers = { { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } } }
    for k, v in pairs(extra or {}) do params[k] = v end
    return ok("ChannelCreateFlowByFiles", params).FlowId
  end

  -- Tencent's example requests for ChannelCreateFlowGroupByFiles send "Deadline": 0; those for
  -- ChannelCreateFlowByFiles many shapes of signers. With our Agent and a fresh upload in place of their ids, the
  -- sandbox accepts each one.
  it("accepts Tencent's published example requests for the contract actions (\"Deadline\": 0 included)", function()
    local examples = json.decode(read(ROOT .. "/spec/data/examples_requests.json"))
    local tried = 0
    for _, ex in ipairs(examples) do
      if ex.Action == "ChannelCreateFlowGroupByFiles" or ex.Action == "ChannelCreateFlowByFiles" then
        local p = ex.Params
        p.Agent = sb.agent
        local file = sb:upload(client)
        if p.FileIds then p.FileIds = { file } end
        for _, info in ipairs(p.FlowFileInfos or {}) do info.FileIds = { file } end
        local resp, err = client:call(ex.Action, p)
        assert.is_table(resp, ex.Action .. " example " .. ex.Index .. ": "
          .. tostring(err and (tostring(err.code) .. ": " .. tostring(err.message))))
        tried = tried + 1
      end
    end
    assert.is_true(tried >= 3, tostring(tried))
  end)

  -- ChannelCreateFlowByFilesRequest.Deadline: "如果未设置签署截止时间，则默认为合同流程创建后的365天时截止";
  -- FlowInfo.Deadline says the same.
  it("a contract without Deadline (or with 0) ends 365 days after it was created", function()
    for _, extra in ipairs({ {}, { Deadline = 0 } }) do
      local fid = single_flow(extra)
      local f = ok("DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { fid } }).FlowInfo[1]
      assert.are.equal(365 * 86400, f.DeadLine - f.CreateOn)
    end
  end)

  -- DescribeResourceUrlsByFlowsResponse.ErrorMessages: "如果某个序号的合同流程生成PDF下载链接失败, 对应序号的值为错误的原因"
  it("DescribeResourceUrlsByFlows keeps each flow at its place, failed ones too", function()
    local fid = single_flow()
    local unknown = string.rep("7", 32)
    local resp = ok("DescribeResourceUrlsByFlows", { Agent = sb.agent, FlowIds = { unknown, fid, unknown } })
    assert.are.equal(3, #resp.FlowResourceUrlInfos)
    assert.are.same({ unknown, fid, unknown }, { resp.FlowResourceUrlInfos[1].FlowId,
      resp.FlowResourceUrlInfos[2].FlowId, resp.FlowResourceUrlInfos[3].FlowId })
    assert.are.same({}, resp.FlowResourceUrlInfos[1].ResourceUrlInfos)
    assert.are.equal(1, #resp.FlowResourceUrlInfos[2].ResourceUrlInfos)
    assert.are.equal("", resp.ErrorMessages[2])
    assert.are.not_equal("", resp.ErrorMessages[3])
  end)

  -- CreateSignUrlsRequest.GenerateType: "ALL：（默认）…注意：此中类型不支持多个合同ID（FlowIds）"
  it("CreateSignUrls refuses GenerateType ALL with several FlowIds", function()
    local a, b = single_flow(), single_flow()
    refused("InvalidParameter.GenerateType", "CreateSignUrls", { Agent = sb.agent, FlowIds = { a, b } })
    refused("InvalidParameter.GenerateType", "CreateSignUrls", { Agent = sb.agent, FlowIds = { a, b },
      GenerateType = "ALL" })
    assert.are.equal(1, #ok("CreateSignUrls", { Agent = sb.agent, FlowIds = { a } }).SignUrlInfos)
    assert.are.equal(2, #ok("CreateSignUrls", { Agent = sb.agent, FlowIds = { a, b }, GenerateType = "PERSON" })
      .SignUrlInfos)
  end)

  -- ChannelCreateFlowSignUrlRequest.FlowApproverInfos: "生成发起方预览链接时，该字段（FlowApproverInfos）传空或者不传"
  it("ChannelCreateFlowSignUrl without FlowApproverInfos gives the promoter's preview link", function()
    local fid = single_flow()
    local resp = ok("ChannelCreateFlowSignUrl", { Agent = sb.agent, FlowId = fid })
    assert.are.equal(1, #resp.FlowApproverUrlInfos)
    local url = resp.FlowApproverUrlInfos[1].SignUrl
    local status, _, body = sb.http:request("GET", url, {}, "")
    assert.are.equal(200, status)
    assert.truthy(body:find("单份合同", 1, true))
    local sign_status = sb:sign(url)
    assert.are.equal(409, sign_status) -- a preview signs nothing
    assert.are.equal("INIT", ok("DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { fid } })
      .FlowInfo[1].FlowStatus)
  end)

  -- CreateConsoleLoginUrlRequest.Endpoint: PC (default), CHANNEL, SHORT_URL, WEIXIN_QRCODE_URL, APP, H5, SHORT_H5
  it("CreateConsoleLoginUrl takes the documented Endpoint values only", function()
    local params = { Agent = sb.agent, ProxyOrganizationName = "示例科技有限公司" }
    for _, e in ipairs({ "PC", "CHANNEL", "SHORT_URL", "WEIXIN_QRCODE_URL", "APP", "H5", "SHORT_H5" }) do
      params.Endpoint = e
      ok("CreateConsoleLoginUrl", params)
    end
    params.Endpoint = "NOPE"
    refused("InvalidParameter.EndPoint", "CreateConsoleLoginUrl", params)
  end)

  -- FlowApproverDetail.ApproveType: "ORGANIZATION :企业签署人, PERSON :个人签署人";
  -- ChannelOrganizationInfo.AuthorizationType: AuthorizationInit / File / LegalPerson / LegalIdentity
  it("answers only documented enum values (ApproveType, AuthorizationType)", function()
    local created = ok("ChannelCreateFlowByFiles", { Agent = sb.agent, FlowName = "自动签", FileIds = {
      sb:upload(client) }, FlowApprovers = {
        { ApproverType = "ENTERPRISESERVER", OrganizationName = "示例科技有限公司", OrganizationOpenId = "spec_org",
          OpenId = "spec_operator" },
        { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } } })
    local f = ok("DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { created.FlowId } }).FlowInfo[1]
    assert.are.same({ "ORGANIZATION", "PERSON" }, { f.FlowApproverInfos[1].ApproveType,
      f.FlowApproverInfos[2].ApproveType })
    local orgs = ok("DescribeChannelOrganizations", { Agent = sb.agent, Limit = 10 }).ChannelOrganizationInfos
    local documented = { AuthorizationInit = true, AuthorizationFile = true, AuthorizationLegalPerson = true,
      AuthorizationLegalIdentity = true }
    assert.is_true(#orgs > 0)
    for _, o in ipairs(orgs) do assert.is_true(documented[o.AuthorizationType], o.AuthorizationType) end
  end)

  -- Common parameters: Language "zh-CN" (the default) or "en-US" chooses the language of the answer.
  it("error messages follow X-TC-Language: zh-CN by default, en-US when asked", function()
    local _, zh = client:call("ChannelCreateFlowSignUrl", { Agent = sb.agent, FlowId = string.rep("7", 32) })
    local text = require("sandbox.error_texts")[zh.code] -- the code's documented description (errors.json)
    assert.are.equal(text, zh.message:sub(1, #text))
    local en_client = sb:client({ retry = false, validate = false, language = "en-US" })
    local _, en = en_client:call("ChannelCreateFlowSignUrl", { Agent = sb.agent, FlowId = string.rep("7", 32) })
    assert.are.equal(zh.code, en.code)
    assert.is_nil(en.message:find("[\128-\255]"), en.message)
    assert.truthy(zh.message:find(en.message, 1, true), zh.message)
  end)

  -- The action error lists (essbasic-2021-05-26.action-errors.json): a refusal uses a code of the action's own
  -- list. Every emulated action, sent with nothing but the Agent or with members of the wrong kind.
  it("every refusal of every emulated action uses a code from that action's documented list", function()
    local api = require("essbasic.api")
    local codes = 0
    for action in pairs(require("essbasic.schema").actions) do
      local emulated = select(2, client:call(action, { Agent = sb.agent }))
      if not (emulated and emulated.code == "UnsupportedOperation") then
        for _, params in ipairs({ { Agent = sb.agent }, { Agent = { AppId = sb.app_id } },
          { Agent = sb.agent, FlowIds = { 1 }, FlowId = {}, Limit = -1, FileIds = "x", FlowInfos = 3 } }) do
          local resp, err = client:call(action, params)
          if not resp then
            codes = codes + 1
            assert.is_true(api.action(action).error_set[err.code] or false, action .. " answered " .. err.code
              .. ", which its documentation does not list")
          end
        end
      end
    end
    assert.is_true(codes >= 40, tostring(codes))
  end)
end)
