-- The committed schema (lua/essbasic/schema.lua) against the facts read straight from api.json
-- (spec/data/schema_facts.lua, written by tools/gen_schema.lua --facts), and the lookups of essbasic.api.

local api = require("essbasic.api")
local schema = require("essbasic.schema")
local facts = require("data.schema_facts")
local core = require("essbasic.core")

local JSON_TYPE = { string = "string", date = "string", int64 = "int", uint64 = "int", float = "float", bool = "bool" }

-- the generated facts of a field, without the links essbasic.api adds (struct, fields)
local function flags(f)
  return { type = f.type, list = f.list, required = f.required, disabled = f.disabled }
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("schema", function()
  it("has the 100 actions and 302 objects of api.json", function()
    assert.are.equal(100, facts.action_count)
    assert.are.equal(302, facts.object_count)
    assert.are.equal(facts.action_count, count(schema.actions))
    assert.are.equal(facts.object_count, count(schema.structs))
    assert.are.equal("2021-05-26", schema.version)
    assert.are.equal("essbasic", schema.service)
  end)

  it("splits the objects into 100 requests, 100 responses and 102 data structures", function()
    local kinds = { request = 0, response = 0, data = 0 }
    for _, st in pairs(schema.structs) do kinds[st.kind] = kinds[st.kind] + 1 end
    assert.are.same({ request = 100, response = 100, data = 102 }, kinds)
  end)

  it("gives every action its input, output and status as in api.json", function()
    for name, f in pairs(facts.actions) do
      local a = schema.actions[name]
      assert.is_table(a, name)
      assert.are.same(f, { a.input, a.output, a.status }, name)
      assert.are.equal("request", schema.structs[a.input].kind, name)
      assert.are.equal("response", schema.structs[a.output].kind, name)
    end
    local deprecated = {}
    for name, a in pairs(schema.actions) do
      if a.status == "deprecated" then deprecated[#deprecated + 1] = name end
    end
    table.sort(deprecated)
    assert.are.same({ "ChannelRenewAutoSignLicense", "PrepareFlows" }, deprecated)
  end)

  it("gives every member its name, order, type, list, required and disabled flags as in api.json", function()
    local members = 0
    for name, sig in pairs(facts.objects) do
      local st = schema.structs[name]
      assert.is_table(st, name)
      assert.are.equal(#sig, #st.order, name)
      assert.are.equal(#sig, count(st.fields), name)
      for i, fname in ipairs(st.order) do
        local f = st.fields[fname]
        local jt = f.list and "list" or (JSON_TYPE[f.type] or "object")
        local got = fname .. ":" .. jt .. ":" .. f.type .. (f.required and ":R" or "") .. (f.disabled and ":D" or "")
        assert.are.equal(sig[i], got, name .. "." .. fname)
        members = members + 1
      end
    end
    assert.is_true(members > 1000)
  end)

  it("has the flow-group closure as the digest describes it", function()
    local ffi = schema.structs.FlowFileInfo.fields
    assert.are.same({ type = "string", list = true, required = true }, flags(ffi.FileIds))
    assert.are.same({ type = "FlowApproverInfo", list = true, required = true }, flags(ffi.FlowApprovers))
    assert.are.same({ type = "int64" }, flags(ffi.Deadline))
    assert.are.same({ type = "string", disabled = true }, flags(ffi.CallbackUrl))
    assert.are.equal("FileIds", schema.structs.FlowFileInfo.order[1])
    assert.is_true(schema.structs.ComponentLimit.fields.ComponentType.required)
    assert.is_true(schema.structs.ChannelCreateFlowGroupByFilesResponse.fields.FlowIds.output_required)
  end)

  it("marks read-only actions by rule, as data", function()
    local ro = {}
    for name, a in pairs(schema.actions) do
      assert.is_boolean(a.readonly, name)
      if a.readonly then ro[#ro + 1] = name end
    end
    assert.are.equal(25, #ro)
    for _, name in ipairs({ "DescribeFlowDetailInfo", "ChannelVerifyPdf", "GetDownloadFlowUrl",
      "ChannelGetTaskResultApi", "ChannelDescribeEmployees", "DescribeCancelFlowsTask" }) do
      assert.is_true(api.is_readonly(name), name)
    end
    for _, name in ipairs({ "ChannelCreateFlowGroupByFiles", "UploadFiles", "ChannelCancelFlow", "CreateSignUrls",
      "ChannelBatchCancelFlows", "CreateFlowBlockchainEvidenceUrl" }) do
      assert.is_false(api.is_readonly(name), name)
    end
    assert.is_false(api.is_readonly("NoSuchAction"))
  end)

  it("carries each action's documented error codes", function()
    local codes = schema.actions.ChannelCreateFlowGroupByFiles.errors
    assert.are.equal(53, #codes)
    assert.is_true(api.action("ChannelCreateFlowGroupByFiles").error_set["InvalidParameter.FlowName"])
    assert.is_nil(api.action("ChannelCreateFlowGroupByFiles").error_set["InvalidParameter.Mobile"])
  end)
end)

describe("essbasic.api", function()
  it("looks up actions and structures", function()
    local a = api.action("ChannelCreateFlowGroupByFiles")
    assert.are.equal("ChannelCreateFlowGroupByFilesRequest", a.input)
    assert.is_nil(api.action("ChannelCreateFlowGroupByFile"))
    assert.are.equal("FlowFileInfo", api.struct("FlowFileInfo").name)
    assert.is_nil(api.struct("Nope"))
    assert.has_error(function() api.action(42) end)
  end)

  it("builds its own index and leaves the generated schema as generated", function()
    assert.is_table(api.struct("FlowFileInfo").fields.FlowApprovers.struct)
    assert.is_table(api.action("ChannelCreateFlowGroupByFiles").error_set)
    for name, st in pairs(schema.structs) do
      assert.is_nil(rawget(st, "name"), name)
      for fname, f in pairs(st.fields) do
        assert.is_nil(rawget(f, "struct"), name .. "." .. fname)
        assert.is_nil(rawget(f, "fields"), name .. "." .. fname)
      end
      assert.are_not.equal(st, api.struct(name))
    end
    for name, a in pairs(schema.actions) do
      assert.is_nil(rawget(a, "error_set"), name)
      assert.is_nil(rawget(a, "name"), name)
    end
  end)

  it("lists the action names sorted, in a fresh table", function()
    local names = api.actions()
    assert.are.equal(100, #names)
    for i = 2, #names do assert.is_true(names[i - 1] < names[i]) end
    names[1] = "changed"
    assert.are_not.equal("changed", api.actions()[1])
  end)

  it("links struct-typed fields: request_hint is the request's fields with nested hints", function()
    local hint = api.request_hint("ChannelCreateFlowGroupByFiles")
    assert.are.equal(api.struct("ChannelCreateFlowGroupByFilesRequest").fields, hint)
    assert.is_true(hint.FlowFileInfos.list)
    assert.are.equal(api.struct("FlowFileInfo"), hint.FlowFileInfos.struct)
    local approver = hint.FlowFileInfos.fields.FlowApprovers
    assert.are.equal(api.struct("FlowApproverInfo").fields, approver.fields)
    assert.are.equal("string", approver.fields.SignComponents.fields.ComponentType.type)
    assert.are.equal(api.struct("UserInfo").fields, hint.Agent.fields.ProxyOperator.fields)
    assert.is_nil(hint.FlowGroupName.fields)
    -- the only recursive structure links to itself
    local perm = api.struct("Permission")
    assert.are.equal(perm, perm.fields.Children.struct)
    assert.are.equal(api.struct("ChannelCreateFlowGroupByFilesResponse").fields,
      api.response_hint("ChannelCreateFlowGroupByFiles"))
    assert.is_nil(api.request_hint("Nope"))
  end)

  it("links every struct-typed field of every structure", function()
    for name in pairs(schema.structs) do
      for fname, f in pairs(api.struct(name).fields) do
        local target = api.struct(f.type)
        if target then
          assert.are.equal(target.fields, f.fields, name .. "." .. fname)
        else
          assert.is_nil(f.fields, name .. "." .. fname)
        end
      end
    end
  end)

  it("gives the encoder the hint it needs: empty lists go out as []", function()
    local hint = api.request_hint("ChannelCreateFlowGroupByFiles")
    local value = { FlowFileInfos = { { FileIds = {}, FlowApprovers = { { SignComponents = {} } } } } }
    local s = assert(core.json_encode(value, hint))
    assert.are.equal('{"FlowFileInfos":[{', s:sub(1, 19))
    assert.truthy(s:find('"FileIds":[]', 1, true))
    assert.truthy(s:find('"SignComponents":[]', 1, true))
  end)

  it("sends UploadFiles to the file domain and everything else to the API domain", function()
    assert.are.equal("file", api.host_kind("UploadFiles"))
    assert.are.equal("api", api.host_kind("ChannelCreateFlowGroupByFiles"))
    assert.is_nil(api.host_kind("Nope"))
    local file = 0
    for _, name in ipairs(api.actions()) do
      if api.host_kind(name) == "file" then file = file + 1 end
    end
    assert.are.equal(1, file)
  end)
end)

describe("tools/gen_schema.lua", function()
  -- SPEC_DIR: the folder holding the official spec files (not in the repository; the check needs them)
  local spec_dir = os.getenv("SPEC_DIR")
  local api_json = (spec_dir or "") .. "/essbasic-2021-05-26.api.json"
  local f = spec_dir and io.open(api_json, "rb")
  if f then f:close() end
  local have = f ~= nil and f ~= false

  it("regenerates byte-identical files when the spec is available (determinism)", function()
    if not have then
      -- the project must test without the spec files; this check needs them
      assert.is_false(have)
      return
    end
    local tmp = os.tmpname()
    local cmd = string.format("LUA_PATH='lua/?.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 tools/gen_schema.lua %s " ..
      "--schema %s.schema --reference %s.md --facts %s.facts", api_json, tmp, tmp, tmp)
    local rc = os.execute(cmd)
    assert.is_true(rc == true or rc == 0)
    local read = require("helpers.files").read
    assert.are.equal(read("lua/essbasic/schema.lua"), read(tmp .. ".schema"))
    assert.are.equal(read("docs/reference.md"), read(tmp .. ".md"))
    assert.are.equal(read("spec/data/schema_facts.lua"), read(tmp .. ".facts"))
    os.remove(tmp .. ".schema"); os.remove(tmp .. ".md"); os.remove(tmp .. ".facts"); os.remove(tmp)
  end)
end)
