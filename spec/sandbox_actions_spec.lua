-- The sandbox's partner-platform lifecycle, driven by the real client over loopback: sub-company onboarding and
-- console, staff, activation, seals, templates and contracts from them, single contracts, links, reminders,
-- deadlines, components, signed documents (checked with qpdf and pdftotext), usage. Each action's rules are
-- exercised with the error code the API documents for it, and at the end every code the sandbox answered is
-- checked against that action's documented list.
local sandbox = require("helpers.sandbox")
local core = require("essbasic.core")
local json = require("essbasic.json")
local api = require("essbasic.api")

local wait_for = sandbox.wait_for

-- Codes any action may answer (the common error codes, before an action's own rules).
local COMMON = { RequestLimitExceeded = true }

local http = core.http_session({ timeout = 20 })

local function shell(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  local ok, _, code = p:close()
  return out, (ok == true or ok == 0) and 0 or code
end

local write = require("helpers.files").write

describe("sandbox lifecycle", function()
  local sb, client, tmp

  setup(function()
    sb = sandbox.start{ rate_limit = 1000, daily_limits = { DescribeUsage = 5 } }
    client = sb:client({ retry = false, validate = false })
    tmp = shell("mktemp -d /tmp/essbasic-actions-spec.XXXXXX"):gsub("%s+$", "")
  end)
  teardown(function()
    if sb then sb:stop() end
    if tmp then os.execute("rm -rf '" .. tmp .. "'") end
  end)

  local function agent(org, operator)
    return { AppId = sb.app_id, ProxyOrganizationOpenId = org or "spec_org",
      ProxyOperator = { OpenId = operator or "spec_operator" } }
  end

  -- A successful call (the answer has the response struct's shape), and a refusal with the given code.
  local function ok(action, params) return sandbox.ok(client, action, params) end
  local function refused(code, action, params) return sandbox.refused(client, code, action, params) end

  local function get(url)
    local status, headers, body = http:request("GET", url, {}, "")
    return status, body, headers
  end

  local function person(name, mobile) return { ApproverType = "PERSON", Name = name, Mobile = mobile } end

  local function detail(flow_id)
    return ok("DescribeFlowDetailInfo", { Agent = agent(), FlowIds = { flow_id } }).FlowInfo[1]
  end

  local function single_flow(approvers, extra)
    local params = { Agent = agent(), FlowName = "单份合同", FileIds = { sb:upload(client) },
      FlowApprovers = approvers or { person("王五", "13700137000") } }
    for k, v in pairs(extra or {}) do params[k] = v end
    return ok("ChannelCreateFlowByFiles", params).FlowId
  end

  local function sign_url(flow_id, who)
    local resp = ok("ChannelCreateFlowSignUrl", { Agent = agent(), FlowId = flow_id, FlowApproverInfos = { who } })
    return resp.FlowApproverUrlInfos[1].SignUrl
  end

  describe("onboarding", function()
    it("CreateConsoleLoginUrl records the sub-company and its operator and gives a console page", function()
      local resp = ok("CreateConsoleLoginUrl", { Agent = agent("org_a", "op_a"), ProxyOrganizationName = "甲公司",
        ProxyOperatorName = "赵六", ProxyOperatorMobile = "13600136000" })
      assert.is_false(resp.IsActivated)
      assert.is_true(resp.ProxyOperatorIsVerified)
      local status, page = get(resp.ConsoleUrl)
      assert.are.equal(200, status)
      assert.truthy(page:find("甲公司", 1, true))
      local orgs = ok("DescribeChannelOrganizations", { Agent = agent("org_a"), Limit = 10,
        OrganizationOpenId = "org_a" })
      assert.are.equal(1, orgs.Total)
      local o = orgs.ChannelOrganizationInfos[1]
      assert.are.equal("甲公司", o.OrganizationName)
      assert.are.equal("VERIFIED", o.AuthorizationStatus)
      assert.are.equal("赵六", o.AdminName)
      assert.are.equal("13600136000", o.AdminMobile)
    end)

    it("CreateConsoleLoginUrl: the documented refusals", function()
      local a = agent("org_b")
      a.ProxyOperator = nil
      refused("MissingParameter.ProxyOperatorOpenId", "CreateConsoleLoginUrl", { Agent = a,
        ProxyOrganizationName = "乙公司" })
      refused("MissingParameter.OrgOpenId", "CreateConsoleLoginUrl", { Agent = { AppId = sb.app_id,
        ProxyOperator = { OpenId = "x" } }, ProxyOrganizationName = "乙公司" })
      refused("InvalidParameter.UniformSocialCreditCode", "CreateConsoleLoginUrl", { Agent = agent("org_b"),
        ProxyOrganizationName = "乙公司", UniformSocialCreditCode = "123" })
      -- a verified sub-company keeps its name
      refused("InvalidParameter.OrganizationName", "CreateConsoleLoginUrl", { Agent = agent("org_a", "op_a"),
        ProxyOrganizationName = "别的名字" })
      -- the refused new one was not recorded
      assert.are.equal(0, ok("DescribeChannelOrganizations", { Agent = agent(), Limit = 10,
        OrganizationOpenId = "org_b" }).Total)
    end)

    it("with auto_verify = false the sub-company is verified on its console page", function()
      local other = sandbox.start{ auto_verify = false }
      local c = other:client({ retry = false })
      local a = { AppId = other.app_id, ProxyOrganizationOpenId = "org_v", ProxyOperator = { OpenId = "op_v" } }
      local ok_, resp = pcall(function()
        local r = assert(c:CreateConsoleLoginUrl{ Agent = a, ProxyOrganizationName = "丙公司" })
        assert.is_false(r.ProxyOperatorIsVerified)
        local info = assert(c:DescribeChannelOrganizations{ Agent = a, Limit = 5 })
        assert.are.equal("UNVERIFIED", info.ChannelOrganizationInfos[1].AuthorizationStatus)
        local _, err = c:CreateChannelSubOrganizationActive{ Agent = a, SubOrganizationOpenIds = { "org_v" } }
        assert.are.equal("OperationDenied", err.code)
        local token = r.ConsoleUrl:match("token=(%x+)")
        local status = http:request("POST", other.endpoint .. "/sandbox/console",
          { ["Content-Type"] = "application/x-www-form-urlencoded" }, "token=" .. token)
        assert.are.equal(200, status)
        info = assert(c:DescribeChannelOrganizations{ Agent = a, Limit = 5 })
        return info.ChannelOrganizationInfos[1].AuthorizationStatus
      end)
      other:stop()
      assert(ok_, resp)
      assert.are.equal("VERIFIED", resp)
    end)

    it("SyncProxyOrganization updates the sub-company; a bad credit code is refused", function()
      ok("SyncProxyOrganization", { Agent = agent("org_s"), ProxyOrganizationName = "丁公司",
        UniformSocialCreditCode = "91440300MA5ABCDE1X", ProxyLegalName = "钱七" })
      local o = ok("DescribeChannelOrganizations", { Agent = agent(), Limit = 10, OrganizationOpenId = "org_s" })
        .ChannelOrganizationInfos[1]
      assert.are.equal("91440300MA5ABCDE1X", o.UnifiedSocialCreditCode)
      assert.are.equal("钱七", o.LegalName)
      refused("InvalidParameter.UniformSocialCreditCode", "SyncProxyOrganization", { Agent = agent("org_s"),
        ProxyOrganizationName = "丁公司", UniformSocialCreditCode = "abc" })
      local a = agent()
      a.ProxyOrganizationOpenId = nil
      refused("MissingParameter", "SyncProxyOrganization", { Agent = a, ProxyOrganizationName = "x" })
    end)

    it("SyncProxyOrganizationOperators creates, updates and resigns staff; partial and total failures", function()
      local created = ok("SyncProxyOrganizationOperators", { Agent = agent("org_s"), OperatorType = "CREATE",
        ProxyOrganizationOperators = { { Id = "s1", Name = "员工一", Mobile = "13500135001" },
          { Id = "s2", Name = "员工二", Mobile = "13500135002" } } })
      assert.are.equal(1, created.Status)
      assert.are.equal(0, #created.FailedList)
      local partial = ok("SyncProxyOrganizationOperators", { Agent = agent("org_s"), OperatorType = "UPDATE",
        ProxyOrganizationOperators = { { Id = "s1", Name = "员工壹" }, { Id = "nobody" } } })
      assert.are.equal(2, partial.Status)
      assert.are.equal("nobody", partial.FailedList[1].Id)
      ok("SyncProxyOrganizationOperators", { Agent = agent("org_s"), OperatorType = "RESIGN",
        ProxyOrganizationOperators = { { Id = "s2" } } })
      refused("FailedOperation", "SyncProxyOrganizationOperators", { Agent = agent("org_s"), OperatorType = "UPDATE",
        ProxyOrganizationOperators = { { Id = "s2", Name = "x" } } }) -- resigned: nothing synchronised
      refused("OperationDenied.OperateType", "SyncProxyOrganizationOperators", { Agent = agent("org_s"),
        OperatorType = "FIRE", ProxyOrganizationOperators = { { Id = "s1" } } })
      local many = {}
      for i = 1, 201 do many[i] = { Id = "m" .. i } end
      refused("LimitExceeded.ProxyOrganizationOperator", "SyncProxyOrganizationOperators", { Agent = agent("org_s"),
        OperatorType = "CREATE", ProxyOrganizationOperators = many })
    end)

    it("DescribeChannelOrganizations pages and filters; Limit is 1 to 200", function()
      local all = ok("DescribeChannelOrganizations", { Agent = agent(), Limit = 200 })
      assert.is_true(all.Total >= 2)
      local page = ok("DescribeChannelOrganizations", { Agent = agent(), Limit = 1, Offset = 1 })
      assert.are.equal(1, #page.ChannelOrganizationInfos)
      assert.are.equal(all.ChannelOrganizationInfos[2].OrganizationOpenId,
        page.ChannelOrganizationInfos[1].OrganizationOpenId)
      local none = ok("DescribeChannelOrganizations", { Agent = agent(), Limit = 5,
        AuthorizationStatusList = { "UNVERIFIED" } })
      assert.are.equal(0, none.Total)
      refused("InvalidParameter.ParamError", "DescribeChannelOrganizations", { Agent = agent(), Limit = 201 })
    end)

    it("CreateChannelSubOrganizationActive activates once, renews by a year, refuses the rest", function()
      ok("CreateChannelSubOrganizationActive", { Agent = agent(), SubOrganizationOpenIds = { "org_a" } })
      local o = ok("DescribeChannelOrganizations", { Agent = agent(), Limit = 1, OrganizationOpenId = "org_a" })
        .ChannelOrganizationInfos[1]
      assert.are.equal(1, o.ActiveStatus)
      local first = o.LicenseExpireTime
      assert.is_true(first > os.time() + 364 * 86400)
      refused("OperationDenied", "CreateChannelSubOrganizationActive", { Agent = agent(),
        SubOrganizationOpenIds = { "org_a" } })
      ok("CreateChannelSubOrganizationActive", { Agent = agent(), SubOrganizationOpenIds = { "org_a" }, Renew = true })
      o = ok("DescribeChannelOrganizations", { Agent = agent(), Limit = 1, OrganizationOpenId = "org_a" })
        .ChannelOrganizationInfos[1]
      assert.are.equal(first + 365 * 86400, o.LicenseExpireTime)
      refused("OperationDenied", "CreateChannelSubOrganizationActive", { Agent = agent(),
        SubOrganizationOpenIds = { "org_s" }, Renew = true })
      refused("InvalidParameter.ParamError", "CreateChannelSubOrganizationActive", { Agent = agent(),
        SubOrganizationOpenIds = { "no_such_org" } })
    end)
  end)

  describe("seals", function()
    local PNG = "\137PNG\r\n\26\n" .. string.rep("\0", 32)

    it("a verified sub-company has its OFFICIAL seal; CreateSealByImage adds more, by the rules", function()
      local seals = ok("ChannelDescribeOrganizationSeals", { Agent = agent("org_a", "op_a") })
      assert.are.equal(1, seals.TotalCount)
      assert.are.equal("OFFICIAL", seals.Seals[1].SealType)
      assert.are.equal("甲公司公章", seals.Seals[1].SealName)
      local made = ok("CreateSealByImage", { Agent = agent("org_a", "op_a"), SealName = "合同专用章",
        SealType = "CONTRACT", SealImage = core.base64_encode(PNG) })
      assert.are.equal(32, #made.SealId)
      ok("CreateSealByImage", { Agent = agent("org_a", "op_a"), SealName = "人事章", SealType = "PERSONNEL",
        GenerateSource = "SealGenerateSourceSystem" })
      seals = ok("ChannelDescribeOrganizationSeals", { Agent = agent("org_a", "op_a"), SealTypes = { "CONTRACT" },
        InfoType = 1 })
      assert.are.equal(1, seals.TotalCount)
      assert.are.equal(made.SealId, seals.Seals[1].SealId)
      assert.are.equal("op_a", seals.Seals[1].AuthorizedUsers[1].OpenId)
      local one = ok("ChannelDescribeOrganizationSeals", { Agent = agent("org_a", "op_a"), SealId = made.SealId })
      assert.are.equal(1, one.TotalCount)
      assert.are.equal(3, ok("ChannelDescribeOrganizationSeals", { Agent = agent("org_a", "op_a") }).TotalCount)
      local a = agent("org_a")
      a.ProxyOperator = nil
      refused("MissingParameter.UserId", "ChannelDescribeOrganizationSeals", { Agent = a })
      refused("InvalidParameter", "ChannelDescribeOrganizationSeals", { Agent = agent("org_a"), Limit = 101 })
    end)

    it("CreateSealByImage: the documented refusals", function()
      local a = agent("org_a", "op_a")
      refused("FailedOperation.ExistSameSealName", "CreateSealByImage", { Agent = a, SealName = "合同专用章",
        SealType = "CONTRACT", SealImage = core.base64_encode(PNG) })
      refused("OperationDenied.AlreadyHas", "CreateSealByImage", { Agent = a, SealName = "第二个公章",
        SealType = "OFFICIAL", SealImage = core.base64_encode(PNG) })
      refused("MissingParameter.SealImage", "CreateSealByImage", { Agent = a, SealName = "财务章", SealType = "FINANCE" })
      refused("InvalidParameter.Image", "CreateSealByImage", { Agent = a, SealName = "财务章", SealType = "FINANCE",
        SealImage = core.base64_encode("GIF89a not a png") })
      refused("InvalidParameter.LimitSealName", "CreateSealByImage", { Agent = a, SealName = string.rep("章", 51),
        SealType = "FINANCE", GenerateSource = "SealGenerateSourceSystem" })
      refused("InvalidParameter.ParamError", "CreateSealByImage", { Agent = a, SealName = "怪章", SealType = "ODD",
        GenerateSource = "SealGenerateSourceSystem" })
    end)
  end)

  describe("templates", function()
    local template

    it("DescribeTemplates lists the configured template with its roles and fields", function()
      local resp = ok("DescribeTemplates", { Agent = agent(), QueryAllComponents = true, WithPdfUrl = true })
      assert.are.equal(1, resp.TotalCount)
      template = resp.Templates[1]
      assert.are.equal("劳动合同模板", template.TemplateName)
      assert.are.equal(2, #template.Recipients)
      assert.are.equal(3, #template.Components)
      assert.are.equal(2, #template.SignComponents)
      local status, body = get(template.PdfUrl)
      assert.are.equal(200, status)
      assert.are.equal("%PDF-", body:sub(1, 5))
      local list = ok("DescribeTemplates", { Agent = agent(), ContentType = 1 })
      assert.are.same({}, list.Templates[1].Recipients) -- ContentType 1: no recipients, the member still sent
      assert.are.equal(0, ok("DescribeTemplates", { Agent = agent(), TemplateName = "不存在" }).TotalCount)
      refused("ResourceNotFound.Template", "DescribeTemplates", { Agent = agent(), TemplateId = string.rep("0", 32) })
      refused("ResourceNotFound.Template", "DescribeTemplates", { Agent = agent(),
        TemplateIds = { template.TemplateId, string.rep("1", 32) } })
      refused("InvalidParameter.ContentType", "DescribeTemplates", { Agent = agent(), ContentType = 7 })
    end)

    local function flow_info(name, fields)
      return { FlowName = name, Deadline = os.time() + 86400, TemplateId = template.TemplateId,
        FlowApprovers = { person("孙八", "13400134000"), { ApproverType = "ORGANIZATION", OpenId = "spec_hr",
          OrganizationOpenId = "spec_org", OrganizationName = "示例科技有限公司", Name = "李四",
          Mobile = "13900139000" } },
        FormFields = fields or { { ComponentName = "员工姓名", ComponentValue = "孙八" },
          { ComponentName = "岗位", ComponentValue = "工程师" } } }
    end

    it("CreateFlowsByTemplates makes one contract per FlowInfo, with the promoter's fields filled", function()
      local resp = ok("CreateFlowsByTemplates", { Agent = agent(), FlowInfos = { flow_info("模板合同一") } })
      assert.are.equal(1, #resp.FlowIds)
      assert.are.equal("", resp.ErrorMessages[1])
      local fid = resp.FlowIds[1]
      assert.are.equal("INIT", detail(fid).FlowStatus)
      local comps = ok("ChannelDescribeFlowComponents", { Agent = agent(), FlowId = fid }).RecipientComponentInfos
      assert.is_true(comps[1].IsPromoter)
      local values = {}
      for _, c in ipairs(comps[1].Components) do values[c.ComponentName] = c.ComponentValue end
      assert.are.same({ ["员工姓名"] = "孙八", ["岗位"] = "工程师", ["月薪"] = "" }, values)
      assert.are.equal("0", comps[1].RecipientFillStatus) -- 月薪 is still empty
      assert.are.equal(3, #comps) -- the promoter and both signers
      refused("ResourceNotFound.Flow", "ChannelDescribeFlowComponents", { Agent = agent(),
        FlowId = string.rep("a", 32) })
    end)

    it("CreateFlowsByTemplates: preview, and the documented refusals", function()
      local preview = ok("CreateFlowsByTemplates", { Agent = agent(), NeedPreview = true,
        FlowInfos = { flow_info("预览") } })
      assert.are.equal(0, #preview.FlowIds)
      assert.are.equal(1, #preview.PreviewUrls)
      refused("InvalidParameter.DataNotFound", "CreateFlowsByTemplates", { Agent = agent(), FlowInfos = {
        flow_info("x", { { ComponentName = "没有这个", ComponentValue = "1" } }) } })
      local short = flow_info("x")
      short.FlowApprovers = { short.FlowApprovers[1] }
      refused("InvalidParameter.ParamError", "CreateFlowsByTemplates", { Agent = agent(), FlowInfos = { short } })
      local gone = flow_info("x")
      gone.TemplateId = string.rep("9", 32)
      refused("ResourceNotFound.Template", "CreateFlowsByTemplates", { Agent = agent(), FlowInfos = { gone } })
      local many = {}
      for i = 1, 21 do many[i] = flow_info("批量" .. i) end
      refused("LimitExceeded.CreateFlowNum", "CreateFlowsByTemplates", { Agent = agent(), FlowInfos = many })
    end)

    it("ChannelCreateFlowGroupByTemplates makes a group of 2 to 50 contracts", function()
      local resp = ok("ChannelCreateFlowGroupByTemplates", { Agent = agent(), FlowGroupName = "模板合同组",
        FlowInfos = { flow_info("组一"), flow_info("组二") } })
      assert.are.equal(2, #resp.FlowIds)
      local d = ok("DescribeFlowDetailInfo", { Agent = agent(), FlowGroupId = resp.FlowGroupId })
      assert.are.equal("模板合同组", d.FlowGroupName)
      assert.are.equal(2, #d.FlowInfo)
      refused("InvalidParameter.FlowInfos", "ChannelCreateFlowGroupByTemplates", { Agent = agent(),
        FlowGroupName = "太少", FlowInfos = { flow_info("一") } })
    end)
  end)

  describe("single contracts and links", function()
    it("ChannelCreateFlowByFiles makes one flow outside any group; the documented refusals", function()
      local fid = single_flow()
      local d = ok("DescribeFlowDetailInfo", { Agent = agent(), FlowIds = { fid } })
      assert.are.equal("", d.FlowGroupId) -- the API sends every member: "" when empty
      local links = ok("CreateSignUrls", { Agent = agent(), FlowIds = { fid } })
      assert.are.equal(fid, links.SignUrlInfos[1].FlowId)
      assert.are.equal("", links.SignUrlInfos[1].FlowGroupId) -- a single contract belongs to no flow group
      assert.are.equal("单份合同", d.FlowInfo[1].FlowName)
      refused("ResourceNotFound.FlowGroup", "DescribeFlowDetailInfo", { Agent = agent(),
        FlowGroupId = string.rep("c", 32) })
      refused("InvalidParameter.FlowFileIds", "ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "x",
        FileIds = { string.rep("d", 32) }, FlowApprovers = { person("a", "13700137000") } })
      refused("InvalidParameter.FlowApprovers", "ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "x",
        FileIds = { sb:upload(client) }, FlowApprovers = { { ApproverType = "PERSON", Name = "无手机" } } })
      refused("InvalidParameter.FlowDeadLine", "ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "x",
        FileIds = { sb:upload(client) }, FlowApprovers = { person("a", "13700137000") }, Deadline = os.time() - 10 })
      refused("InvalidParameter.FlowName", "ChannelCreateFlowByFiles", { Agent = agent(),
        FileIds = { sb:upload(client) }, FlowApprovers = { person("a", "13700137000") } })
    end)

    it("ChannelCreateFlowSignUrl gives the signer's link; signing through it completes the flow", function()
      local fid = single_flow()
      local url = sign_url(fid, person("王五", "13700137000"))
      assert.truthy(url:find("/sandbox/sign?token=", 1, true))
      local status = sb:sign(url)
      assert.are.equal(200, status)
      assert.are.equal("ALL", detail(fid).FlowStatus)
      refused("OperationDenied", "ChannelCreateFlowSignUrl", { Agent = agent(), FlowId = fid,
        FlowApproverInfos = { person("王五", "13700137000") } })
    end)

    it("ChannelCreateFlowSignUrl's link ends after ExpiredOn (30 minutes by default), across a restart", function()
      local other = sandbox.start{}
      local ok_, why = pcall(function()
        local c = other:client({ retry = false })
        local fid = assert(c:ChannelCreateFlowByFiles{ Agent = other.agent, FlowName = "过期", FileIds = {
          other:upload(c) }, FlowApprovers = { person("王五", "13700137000") } }).FlowId
        local url = assert(c:ChannelCreateFlowSignUrl{ Agent = other.agent, FlowId = fid,
          FlowApproverInfos = { person("王五", "13700137000") } }).FlowApproverUrlInfos[1].SignUrl
        local token = url:match("token=(%x+)")
        other:halt()
        local path = other.data_dir .. "/state.json"
        local state = json.decode(assert(io.open(path, "rb")):read("*a"))
        local made = state.tokens[token].expires - os.time()
        assert.is_true(made > 1790 and made <= 1800, tostring(made))
        state.tokens[token].expires = os.time() - 1 -- as if 30 minutes had passed
        write(path, json.encode(state))
        other:restart()
        local status, page = get(other.endpoint .. "/sandbox/sign?token=" .. token)
        assert.are.equal(404, status)
        assert.truthy(page:find("expired", 1, true), page)
        assert.are.equal(404, (other:sign(token)))
      end)
      other:stop()
      assert(ok_, why)
    end)

    it("ChannelCreateFlowSignUrl: the documented refusals", function()
      local fid = single_flow()
      refused("InvalidParameter", "ChannelCreateFlowSignUrl", { Agent = agent(), FlowId = fid,
        FlowApproverInfos = { person("陌生人", "13000000000") } })
      refused("InvalidParameter", "ChannelCreateFlowSignUrl", { Agent = agent(), FlowId = fid, ExpiredOn = 60,
        FlowApproverInfos = { person("王五", "13700137000") } })
      refused("MissingParameter", "ChannelCreateFlowSignUrl", { Agent = agent(), FlowId = fid,
        FlowApproverInfos = { { Name = "王五", Mobile = "13700137000" } } })
      refused("ResourceNotFound.Flow", "ChannelCreateFlowSignUrl", { Agent = agent(), FlowId = string.rep("e", 32),
        FlowApproverInfos = { person("王五", "13700137000") } })
    end)

    it("ChannelCreateBatchSignUrl signs several contracts of one person through one link", function()
      local a, b = single_flow(), single_flow()
      local resp = ok("ChannelCreateBatchSignUrl", { Agent = agent(), Name = "王五", Mobile = "13700137000",
        FlowIds = { a, b } })
      assert.is_true(resp.ExpiredTime > os.time() + 6 * 86400)
      local status, page = get(resp.SignUrl)
      assert.are.equal(200, status)
      assert.truthy(page:find(a, 1, true) and page:find(b, 1, true))
      assert.are.equal(200, (sb:sign(resp.SignUrl)))
      assert.are.equal("ALL", detail(a).FlowStatus)
      assert.are.equal("ALL", detail(b).FlowStatus)
      refused("OperationDenied", "ChannelCreateBatchSignUrl", { Agent = agent(), Name = "王五",
        Mobile = "13700137000", FlowIds = { single_flow({ person("别人", "13100131000") }) } })
      refused("MissingParameter", "ChannelCreateBatchSignUrl", { Agent = agent(), Name = "王五", FlowIds = { a } })
    end)
  end)

  describe("reminders and deadlines", function()
    it("ChannelCreateFlowReminds reminds each waiting signer whose turn it is, once", function()
      local fid = single_flow()
      local first = ok("ChannelCreateFlowReminds", { Agent = agent(), FlowIds = { fid, string.rep("f", 32) } })
      assert.is_true(first.RemindFlowRecords[1].CanRemind)
      assert.is_false(first.RemindFlowRecords[2].CanRemind)
      local again = ok("ChannelCreateFlowReminds", { Agent = agent(), FlowIds = { fid } })
      assert.is_false(again.RemindFlowRecords[1].CanRemind)
      assert.truthy(again.RemindFlowRecords[1].RemindMessage:find("once", 1, true))
      local many = {}
      for i = 1, 101 do many[i] = fid end
      refused("InvalidParameterValue", "ChannelCreateFlowReminds", { Agent = agent(), FlowIds = many })
    end)

    it("answers a list too long with the code of the rules alone (the handlers do not check again)", function()
      local ids, files = {}, {}
      for i = 1, 101 do ids[i] = string.format("yDwF%028d", i) end
      local pdf = core.base64_encode(sandbox.PDF)
      for i = 1, 21 do files[i] = { FileName = "f" .. i .. ".pdf", FileBody = pdf } end
      refused("LimitExceeded.FlowIds", "DescribeFlowDetailInfo", { Agent = agent(), FlowIds = ids })
      refused("InvalidParameter.ParamError", "ChannelBatchCancelFlows", { Agent = agent(), FlowIds = ids })
      refused("InvalidParameter", "UploadFiles", { Agent = agent(), BusinessType = "DOCUMENT", FileInfos = files })
    end)

    it("ModifyFlowDeadline extends a flow, or one signer of an ordered flow", function()
      local fid = single_flow({ person("王五", "13700137000"), person("赵六", "13600136000") })
      local d = detail(fid)
      local later = d.DeadLine + 86400
      refused("InvalidParameter.ParamError", "ModifyFlowDeadline", { Agent = agent(), FlowId = fid,
        Deadline = d.DeadLine - 10 })
      ok("ModifyFlowDeadline", { Agent = agent(), FlowId = fid, Deadline = later })
      assert.are.equal(later, detail(fid).DeadLine)
      local first_rid = d.FlowApproverInfos[1].RecipientId
      -- ModifyFlowDeadlineRequest.RecipientId: "只调整签署流程中此签署人的签署截止时间" — in an ordered flow too
      -- (this one is); past the flow's deadline it carries the flow's along
      ok("ModifyFlowDeadline", { Agent = agent(), FlowId = fid, RecipientId = first_rid, Deadline = later + 10 })
      assert.are.equal(later + 10, detail(fid).DeadLine)
      refused("InvalidParameter.ParamError", "ModifyFlowDeadline", { Agent = agent(), FlowId = fid,
        RecipientId = "not-a-recipient", Deadline = later - 10 })
      -- an earlier own deadline than the flow's is not an extension
      refused("InvalidParameter.ParamError", "ModifyFlowDeadline", { Agent = agent(), FlowId = fid,
        RecipientId = first_rid, Deadline = later - 10 })
      ok("ModifyFlowDeadline", { Agent = agent(), FlowId = fid, RecipientId = d.FlowApproverInfos[2].RecipientId,
        Deadline = later + 20 })
    end)

    it("ModifyFlowDeadline: a signer's deadline that passes ends the flow; group flows and ended ones refused",
      function()
      local fid = single_flow(nil, { Deadline = os.time() + 3 })
      local g = ok("ChannelCreateFlowGroupByFiles", sb:group_request({ sb:upload(client), sb:upload(client) }))
      refused("OperationDenied", "ModifyFlowDeadline", { Agent = agent(), FlowId = g.FlowIds[1],
        Deadline = os.time() + 30 * 86400 })
      assert.truthy(wait_for(function() return detail(fid).FlowStatus == "DEADLINE" end, 10))
      refused("InvalidParameter.Status", "ModifyFlowDeadline", { Agent = agent(), FlowId = fid,
        Deadline = os.time() + 86400 })
      refused("ResourceNotFound.Flow", "ModifyFlowDeadline", { Agent = agent(), FlowId = string.rep("b", 32),
        Deadline = os.time() + 86400 })
    end)
  end)

  describe("signed documents", function()
    local function check_pdf(bytes, name)
      local path = tmp .. "/" .. name .. ".pdf"
      write(path, bytes)
      local out, rc = shell("qpdf --check '" .. path .. "' 2>&1")
      assert.are.equal(0, rc, out)
      assert.truthy(out:find("No syntax or stream encoding errors", 1, true), out)
      local text = shell("pdftotext -q '" .. path .. "' - 2>/dev/null")
      return text, path
    end

    local function resource_url(fid)
      local resp = ok("DescribeResourceUrlsByFlows", { Agent = agent(), FlowIds = { fid } })
      assert.are.equal("", resp.ErrorMessages[1])
      return resp.FlowResourceUrlInfos[1].ResourceUrlInfos[1].Url
    end

    it("a signed contract is the upload plus a visible mark per signature at its component", function()
      local file = assert(io.open("examples/pdf/labour_contract.pdf", "rb")):read("*a")
      local up = ok("UploadFiles", { Agent = agent(), BusinessType = "DOCUMENT",
        FileInfos = { { FileName = "labour.pdf", FileBody = core.base64_encode(file) } } })
      local fid = ok("ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "劳动合同", FileIds = up.FileIds,
        FlowApprovers = { { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000",
          SignComponents = { { ComponentType = "SIGN_SIGNATURE", ComponentPage = 1, ComponentPosX = 300,
            ComponentPosY = 500, ComponentWidth = 180, ComponentHeight = 60 } } },
          person("李四", "13900139000") } }).FlowId
      -- before anyone signed: the upload as it was
      local status, body, headers = get(resource_url(fid))
      assert.are.equal(200, status)
      assert.are.equal(file, body)
      assert.truthy(headers["expires"] or headers["Expires"])
      assert.are.equal(200, (sb:sign(sign_url(fid, person("张三", "13800138000")))))
      status, body = get(resource_url(fid))
      assert.are.equal(200, status)
      local text = check_pdf(body, "one")
      assert.truthy(text:find("Labour Contract", 1, true), text) -- the original content is still there
      assert.truthy(text:find("张三", 1, true), text)
      -- the mobile masked as the API's signed documents print it, never in full
      assert.truthy(text:find("138****8000", 1, true), text)
      assert.falsy(text:find("13800138000", 1, true), text)
      assert.truthy(text:find(os.date("!%Y-%m-%d"), 1, true), text)
      assert.falsy(text:find("139****9000", 1, true)) -- 李四 has not signed
      assert.truthy(shell("pdfinfo '" .. tmp .. "/one.pdf'"):find("Pages:%s+1\n"))
      -- the mark sits where the component is: page 1, from x = 300, 500 pt below the top
      local bbox = shell("pdftotext -q -bbox '" .. tmp .. "/one.pdf' - | grep 张三")
      local x = tonumber(bbox:match('xMin="([%d.]+)"'))
      local y = tonumber(bbox:match('yMin="([%d.]+)"'))
      assert.is_true(x > 300 and x < 310, bbox)
      assert.is_true(y > 500 and y < 520, bbox)
      -- 李四 has no component: the mark goes on an appended signature page
      assert.are.equal(200, (sb:sign(sign_url(fid, person("李四", "13900139000")))))
      assert.are.equal("ALL", detail(fid).FlowStatus)
      text = check_pdf(select(2, get(resource_url(fid))), "two")
      assert.truthy(text:find("139****9000", 1, true), text)
      assert.truthy(text:find("Signatures", 1, true), text)
      assert.truthy(shell("pdfinfo '" .. tmp .. "/two.pdf'"):find("Pages:%s+2\n"))
    end)

    it("a keyword-placed component puts the mark by the keyword, a phrase of several words too", function()
      local file = assert(io.open("examples/pdf/labour_contract.pdf", "rb")):read("*a")
      local up = ok("UploadFiles", { Agent = agent(), BusinessType = "DOCUMENT",
        FileInfos = { { FileName = "labour.pdf", FileBody = core.base64_encode(file) } } })
      local function at(keyword)
        return { { ComponentType = "SIGN_SIGNATURE", GenerateMode = "KEYWORD", ComponentId = keyword,
          RelativeLocation = "Right", OffsetX = 10, ComponentWidth = 150, ComponentHeight = 40 } }
      end
      local signers = { person("张三", "13800138000"), person("李四", "13900139000") }
      signers[1].SignComponents = at("乙方（签字）") -- in the PDF at x 72-144, y 331-343 (from the top)
      signers[2].SignComponents = at("Labour Contract") -- two words, x 72-201, y 59-76
      local fid = ok("ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "关键字", FileIds = up.FileIds,
        FlowApprovers = signers, Unordered = true }).FlowId
      assert.are.equal(200, (sb:sign(sign_url(fid, person("张三", "13800138000")))))
      assert.are.equal(200, (sb:sign(sign_url(fid, person("李四", "13900139000")))))
      local _, path = check_pdf(select(2, get(resource_url(fid))), "keyword")
      local bbox = shell("pdftotext -q -bbox '" .. path .. "' - | grep -F '138****8000'")
      local x = tonumber(bbox:match('xMin="([%d.]+)"'))
      local y = tonumber(bbox:match('yMin="([%d.]+)"'))
      assert.is_true(x > 154 and x < 200, bbox) -- right of the keyword (144) + OffsetX 10
      assert.is_true(y > 310 and y < 360, bbox) -- on the keyword's line
      bbox = shell("pdftotext -q -bbox '" .. path .. "' - | grep -F '139****9000'")
      x, y = tonumber(bbox:match('xMin="([%d.]+)"')), tonumber(bbox:match('yMin="([%d.]+)"'))
      assert.is_true(x > 211 and x < 260, bbox) -- right of "Contract" (201) + OffsetX 10
      assert.is_true(y > 40 and y < 95, bbox)
      assert.truthy(shell("pdfinfo '" .. path .. "'"):find("Pages:%s+1\n")) -- every mark found its place
      -- Component.ComponentId (KEYWORD): a keyword not in the document is refused (InvalidParameter.Keyword,
      -- "关键字格式错误或者不存在"), as is a ComponentPage past the last page ("页面编号不能超过PDF文件的页码总数")
      signers[2].SignComponents = at("丙方")
      refused("InvalidParameter.Keyword", "ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "关键字",
        FileIds = up.FileIds, FlowApprovers = signers })
      signers[2].SignComponents = at("Labour Contract")
      signers[2].SignComponents[1].KeywordPage = 2
      refused("InvalidParameter.Keyword", "ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "关键字",
        FileIds = up.FileIds, FlowApprovers = signers })
      signers[2].SignComponents = { { ComponentType = "SIGN_SIGNATURE", ComponentPage = 9, ComponentPosX = 100,
        ComponentPosY = 100, ComponentWidth = 100, ComponentHeight = 40 } }
      refused("InvalidParameter", "ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "页码",
        FileIds = up.FileIds, FlowApprovers = signers })
      local group = sb:group_request({ up.FileIds[1] })
      group.FlowFileInfos[1].FlowApprovers[1].SignComponents = signers[2].SignComponents
      refused("InvalidParameter", "ChannelCreateFlowGroupByFiles", group)
      signers[2].SignComponents[1].ComponentPage = -1 -- the last page
      ok("ChannelCreateFlowByFiles", { Agent = agent(), FlowName = "页码", FileIds = up.FileIds,
        FlowApprovers = signers })
    end)

    it("a contract from a sloppy PDF without pages still yields a valid signed document", function()
      local fid = single_flow()
      assert.are.equal(200, (sb:sign(sign_url(fid, person("王五", "13700137000")))))
      local text = check_pdf(select(2, get(resource_url(fid))), "sloppy")
      assert.truthy(text:find("王五", 1, true), text)
      assert.truthy(text:find("137****7000", 1, true), text)
    end)

    it("template contracts carry the marks at the template's places; the signer page links the PDF", function()
      local tpl = ok("DescribeTemplates", { Agent = agent() }).Templates[1]
      local resp = ok("CreateFlowsByTemplates", { Agent = agent(), FlowInfos = { { FlowName = "模板签署",
        Deadline = os.time() + 86400, TemplateId = tpl.TemplateId, FlowApprovers = { person("周九", "13300133000"),
          person("吴十", "13200132000") } } } })
      local fid = resp.FlowIds[1]
      local url = sign_url(fid, person("周九", "13300133000"))
      assert.are.equal(200, (sb:sign(url)))
      local _, page = get(url)
      local link = page:match('href="(/sandbox/sign/document%?[^"]+)"'):gsub("&amp;", "&")
      local status, body = get(sb.endpoint .. link)
      assert.are.equal(200, status)
      local text, path = check_pdf(body, "tpl")
      assert.truthy(text:find("周九", 1, true), text)
      local bbox = shell("pdftotext -q -bbox '" .. path .. "' - | grep 周九")
      local x = tonumber(bbox:match('xMin="([%d.]+)"'))
      local y = tonumber(bbox:match('yMin="([%d.]+)"'))
      assert.is_true(x > 72 and x < 82, bbox) -- the template's 员工 place: x = 72, 640 pt below the top
      assert.is_true(y > 640 and y < 660, bbox)
      assert.truthy(shell("pdfinfo '" .. path .. "'"):find("Pages:%s+1\n")) -- no signature page needed
    end)

    it("DescribeResourceUrlsByFlows: per-flow errors, at most 50, links that expire", function()
      local fid = single_flow()
      local resp = ok("DescribeResourceUrlsByFlows", { Agent = agent(), FlowIds = { string.rep("7", 32), fid } })
      assert.truthy(resp.ErrorMessages[1]:find("does not exist", 1, true))
      assert.are.equal("", resp.ErrorMessages[2])
      -- api.json, DescribeResourceUrlsByFlowsResponse.ErrorMessages: "如果某个序号的合同流程生成PDF下载链接失败,
      -- 对应序号的值为错误的原因": the lists line up with FlowIds, a failed flow keeps its place (no links)
      assert.are.equal(2, #resp.FlowResourceUrlInfos)
      assert.are.same({ string.rep("7", 32), {} }, { resp.FlowResourceUrlInfos[1].FlowId,
        resp.FlowResourceUrlInfos[1].ResourceUrlInfos })
      assert.are.equal(fid, resp.FlowResourceUrlInfos[2].FlowId)
      assert.are.equal(1, #resp.FlowResourceUrlInfos[2].ResourceUrlInfos)
      local many = {}
      for i = 1, 51 do many[i] = fid end
      refused("InvalidParameter.ParamError", "DescribeResourceUrlsByFlows", { Agent = agent(), FlowIds = many })
      refused("MissingParameter.FlowId", "DescribeResourceUrlsByFlows", { Agent = agent(), FlowIds = {} })
      ok("ChannelCancelFlow", { Agent = agent(), FlowId = fid, CancelMessage = "不要了" })
      local task = ok("ChannelBatchCancelFlows", { Agent = agent(), FlowIds = { single_flow() } }).TaskId
      assert.are.equal("END", ok("DescribeCancelFlowsTask", { Agent = agent(), TaskId = task }).TaskStatus)
      resp = ok("DescribeResourceUrlsByFlows", { Agent = agent(), FlowIds = { fid } })
      assert.truthy(resp.ErrorMessages[1]:find("CANCEL", 1, true))
      assert.are.equal(404, (get(sb.endpoint .. "/sandbox/download/" .. string.rep("ab", 32))))
    end)

    it("GetDownloadFlowUrl: a page of the folders' contracts, usable once", function()
      local a, b = single_flow(), single_flow()
      local resp = ok("GetDownloadFlowUrl", { Agent = agent(), DownLoadFlows = {
        { FileName = "2026入职合同", FlowIdList = { a, b } } } })
      local status, page = get(resp.DownLoadUrl)
      assert.are.equal(200, status)
      assert.truthy(page:find("2026入职合同", 1, true))
      local links = {}
      for href in page:gmatch('class="contract" href="([^"]+)"') do links[#links + 1] = href end
      assert.are.equal(2, #links)
      local s1, pdf = get(links[1])
      assert.are.equal(200, s1)
      assert.are.equal("%PDF-", pdf:sub(1, 5))
      assert.are.equal(410, (get(resp.DownLoadUrl)))
      local twenty_one = {}
      for i = 1, 21 do twenty_one[i] = a end
      refused("FailedOperation.FlowNumExceed", "GetDownloadFlowUrl", { Agent = agent(), DownLoadFlows = {
        { FileName = "太多", FlowIdList = twenty_one } } })
      refused("UnauthorizedOperation.UnauthorizedOperationOrganization", "GetDownloadFlowUrl", {
        Agent = agent("org_a"), DownLoadFlows = { { FileName = "别人的", FlowIdList = { a } } } })
      refused("ResourceNotFound.Flow", "GetDownloadFlowUrl", { Agent = agent(), DownLoadFlows = {
        { FileName = "x", FlowIdList = { string.rep("5", 32) } } } })
    end)
  end)

  describe("usage", function()
    it("DescribeUsage counts today's contracts and cancellations per sub-company", function()
      local today = os.date("!%Y-%m-%d")
      local resp = ok("DescribeUsage", { Agent = agent(), StartDate = today, EndDate = today })
      local mine
      for _, d in ipairs(resp.Details) do
        if d.ProxyOrganizationOpenId == "spec_org" then mine = d end
      end
      assert.is_table(mine)
      assert.are.equal(today, mine.Date)
      assert.is_true(mine.Usage >= 10)
      assert.is_true(mine.Cancel >= 1)
      assert.are.equal(sb:stats().counters.flows_created, (function()
        local n = 0
        for _, d in ipairs(resp.Details) do n = n + d.Usage end
        return n
      end)())
      local agg = ok("DescribeUsage", { Agent = agent(), StartDate = "2026-01-01", EndDate = "2026-03-31",
        NeedAggregate = true })
      for _, d in ipairs(agg.Details) do assert.are.equal("1970-01-01", d.Date) end
      refused("InvalidParameter.Date", "DescribeUsage", { Agent = agent(), StartDate = "2026-01-01",
        EndDate = "2026-04-01" })
      refused("InvalidParameter.Date", "DescribeUsage", { Agent = agent(), StartDate = today,
        EndDate = "2000-01-01" })
      refused("InvalidParameter.Limit", "DescribeUsage", { Agent = agent(), StartDate = today, EndDate = today,
        Limit = 1001 })
      -- daily_limits.DescribeUsage = 5 in this spec (the API's 50 per day)
      refused("LimitExceeded.CallTimes", "DescribeUsage", { Agent = agent(), StartDate = today, EndDate = today })
    end)
  end)

  describe("the API's rules", function()
    it("at least 25 actions are emulated, and every one ran in this spec file or sandbox_spec.lua", function()
      local stats = sb:stats()
      assert.is_true(stats.emulated >= 25, tostring(stats.emulated))
      local seen = 0
      for _ in pairs(stats.requests) do seen = seen + 1 end
      assert.is_true(seen >= 22, json.encode(stats.requests))
    end)

    -- Every success answer above went through conforms_response (the helper): exactly the members of the
    -- action's output structure in the schema, none missing, none extra, each typed, nested structures too.
    it("every emulated action's answer was compared with its output structure", function()
      local emulated = { "ChannelBatchCancelFlows", "ChannelCancelFlow", "ChannelCreateBatchSignUrl",
        "ChannelCreateFlowByFiles", "ChannelCreateFlowGroupByFiles", "ChannelCreateFlowGroupByTemplates",
        "ChannelCreateFlowReminds", "ChannelCreateFlowSignUrl", "ChannelDescribeFlowComponents",
        "ChannelDescribeOrganizationSeals", "CreateChannelSubOrganizationActive", "CreateConsoleLoginUrl",
        "CreateFlowsByTemplates", "CreateSealByImage", "CreateSignUrls", "DescribeCancelFlowsTask",
        "DescribeChannelOrganizations", "DescribeFlowDetailInfo", "DescribeResourceUrlsByFlows", "DescribeTemplates",
        "DescribeUsage", "GetDownloadFlowUrl", "ModifyFlowDeadline", "SyncProxyOrganization",
        "SyncProxyOrganizationOperators", "UploadFiles" }
      assert.are.equal(#emulated, sb:stats().emulated)
      local missing = {}
      for _, action in ipairs(emulated) do
        if not sandbox.checked[action] then missing[#missing + 1] = action end
      end
      assert.are.same({}, missing)
    end)

    it("every error code the sandbox answered is one the API documents for that action", function()
      local by_action = sb:stats().refused_by_action
      local checked = 0
      for action, codes in pairs(by_action) do
        local documented = api.action(action).error_set
        for code in pairs(codes) do
          checked = checked + 1
          assert.is_true(documented[code] or COMMON[code] or false, action .. " answered " .. code
            .. ", which its documentation does not list")
        end
      end
      assert.is_true(checked >= 45, tostring(checked))
    end)
  end)
end)
