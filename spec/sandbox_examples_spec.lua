-- Tencent's published example requests (spec/data/examples_requests.json, written by tools/gen_examples.py from
-- the examples file) replayed against the sandbox for every action it emulates, with the example's Agent replaced
-- by the sandbox's and its FileIds by a file uploaded here (an example's ids name Tencent's files). Each one is
-- accepted, or refused with the code listed below for the reason given there. An action the sandbox does not
-- emulate answers UnsupportedOperation; the spec checks that exactly the 26 emulated actions were replayed.
local sandbox = require("helpers.sandbox")
local json = require("essbasic.json")
local read = require("helpers.files").read

local ROOT = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/spec/[^/]+$") or "."

-- The refusals, each for a reason the issue allows: an id that does not exist here, placeholder base64, or a
-- feature sandbox/README.md ("Known limits") documents as not emulated. Each entry: the code the sandbox answers,
-- the reason, and the examples ("Action#Index") it covers.
local NO_FLOW = "names a FlowId of Tencent's that does not exist here"
local REFUSALS = {
  { code = "ResourceNotFound.Flow", why = NO_FLOW, examples = { "ChannelCancelFlow#1", "ChannelCreateFlowSignUrl#1",
    "ChannelCreateFlowSignUrl#2", "ChannelCreateFlowSignUrl#3", "ChannelCreateFlowSignUrl#4",
    "ChannelCreateFlowSignUrl#5", "ChannelCreateFlowSignUrl#6", "ChannelDescribeFlowComponents#1",
    "GetDownloadFlowUrl#1", "ModifyFlowDeadline#1", "ModifyFlowDeadline#2", "ModifyFlowDeadline#3",
    "ModifyFlowDeadline#4" } },
  -- these actions' own error lists have no ResourceNotFound.Flow: the sandbox answers with a code from each list
  { code = "InvalidParameter", why = NO_FLOW, examples = { "ChannelCreateBatchSignUrl#1", "ChannelCreateBatchSignUrl#2",
    "ChannelCreateBatchSignUrl#3", "ChannelCreateBatchSignUrl#6" } },
  { code = "InvalidParameter.FlowIds", why = NO_FLOW, examples = { "CreateSignUrls#1", "CreateSignUrls#2",
    "CreateSignUrls#3", "CreateSignUrls#4", "CreateSignUrls#5", "CreateSignUrls#6", "CreateSignUrls#7",
    "CreateSignUrls#8", "DescribeFlowDetailInfo#1" } },
  { code = "ResourceNotFound.FlowGroup", why = "names a FlowGroupId of Tencent's that does not exist here",
    examples = { "CreateSignUrls#9", "CreateSignUrls#10" } },
  { code = "ResourceNotFound.Template", why = "names a TemplateId of Tencent's; the sandbox has its own templates",
    examples = { "ChannelCreateFlowGroupByTemplates#1", "ChannelCreateFlowGroupByTemplates#2",
      "CreateFlowsByTemplates#1", "CreateFlowsByTemplates#2", "CreateFlowsByTemplates#3", "CreateFlowsByTemplates#4",
      "CreateFlowsByTemplates#5", "DescribeTemplates#1", "DescribeTemplates#3" } },
  { code = "ResourceNotFound", why = "names a cancel TaskId of Tencent's that does not exist here",
    examples = { "DescribeCancelFlowsTask#1", "DescribeCancelFlowsTask#2" } },
  { code = "InvalidParameter.ParamError", why = "names a sub-company (org_zhangsan) that does not exist here",
    examples = { "CreateChannelSubOrganizationActive#1", "CreateChannelSubOrganizationActive#2" } },
  { code = "FailedOperation", why = "names a staff member (by Tencent's id) that does not exist here",
    examples = { "SyncProxyOrganizationOperators#1" } },
  { code = "InvalidParameter.Image", why = "SealImage is a placeholder, not base64 of an image",
    examples = { "CreateSealByImage#4" } },
  { code = "InvalidParameter", why = "FileBody is a placeholder, not base64 of a file",
    examples = { "UploadFiles#1" } },
  { code = "MissingParameter", why = "FlowBatchUrlInfo for dynamic signers: not emulated (sandbox/README.md, "
    .. "Known limits), so the signer lacks Name and Mobile", examples = { "ChannelCreateBatchSignUrl#4",
    "ChannelCreateBatchSignUrl#5" } },
}

-- "Action#Index" -> its refusal
local REFUSED = {}
for _, r in ipairs(REFUSALS) do
  for _, key in ipairs(r.examples) do
    assert(not REFUSED[key], key .. " listed twice")
    REFUSED[key] = r
  end
end

local EMULATED_COUNT = 26

describe("Tencent's example requests against the sandbox", function()
  local sb, client

  setup(function()
    sb = sandbox.start{ rate_limit = 1000 }
    client = sb:client({ retry = false, validate = false })
  end)
  teardown(function() if sb then sb:stop() end end)

  it("are accepted, or refused only for a listed reason, for every emulated action", function()
    local examples = json.decode(read(ROOT .. "/spec/data/examples_requests.json"))
    local file = sb:upload(client)
    local emulated, replayed, accepted, unexpected, listed_seen = {}, 0, 0, {}, {}
    for _, ex in ipairs(examples) do
      local p, key = ex.Params, ex.Action .. "#" .. ex.Index
      p.Agent = sb.agent
      if p.FileIds then p.FileIds = { file } end
      for _, info in ipairs(p.FlowFileInfos or {}) do
        if info.FileIds then info.FileIds = { file } end
      end
      local resp, err = client:call(ex.Action, p)
      if not (err and err.code == "UnsupportedOperation" and tostring(err.message):find("is not emulated", 1, true))
      then
        emulated[ex.Action] = true
        replayed = replayed + 1
        local want = REFUSED[key]
        if resp then
          accepted = accepted + 1
          if want then unexpected[#unexpected + 1] = key .. ": accepted, but listed as refused with " .. want.code end
        elseif not want or want.code ~= err.code then
          unexpected[#unexpected + 1] = key .. ": " .. tostring(err.code) .. ": " .. tostring(err.message)
        else
          listed_seen[key] = true
        end
      end
    end
    for key in pairs(REFUSED) do
      if not listed_seen[key] then
        unexpected[#unexpected + 1] = key .. ": listed (" .. REFUSED[key].why .. ") but not refused with "
        .. REFUSED[key].code
      end
    end
    local n = 0
    for _ in pairs(emulated) do n = n + 1 end
    assert.are.equal(EMULATED_COUNT, n)
    assert.are.same({}, unexpected)
    assert.is_true(accepted > 0 and replayed > 0)
  end)
end)
