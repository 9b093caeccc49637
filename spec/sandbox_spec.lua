-- The sandbox driven by the real client over loopback: the flow-group workflow (sign, reject, cancel, deadline,
-- FileId expiry), each refusal with the API's code, a request signed the official SDKs' way, callbacks received and
-- checked by a second nginx (and cross-checked with the openssl CLI), state across a restart, concurrent requests.
local sandbox = require("helpers.sandbox")
local core = require("essbasic.core")
local json = require("essbasic.json")
local validate = require("essbasic.validate")

local CALLBACK_KEY = "0123456789abcdef0123456789ABCDEF" -- 32 bytes
local CALLBACK_TOKEN = "spec-callback-token"

local wait_for, conforms_response = sandbox.wait_for, sandbox.conforms_response

local function start_receiver()
  return sandbox.start_receiver(CALLBACK_TOKEN, CALLBACK_KEY)
end

local http = core.http_session({ timeout = 10 })

local function get_json(url)
  local status, _, body = http:request("GET", url, {}, "")
  assert.are.equal(200, status)
  return json.decode(body)
end

local function shell(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

describe("sandbox", function()
  local sb, client, receiver

  setup(function()
    receiver = start_receiver()
    sb = sandbox.start{ rate_limit = 1000, callback = { url = "http://127.0.0.1:" .. receiver.port .. "/cb",
      key = CALLBACK_KEY, token = CALLBACK_TOKEN, base_delay = 0.1, max_delay = 0.5, max_attempts = 5 } }
    client = sb:client({ retry = false })
  end)
  teardown(function()
    if sb then sb:stop() end
    if receiver then receiver:stop() end
  end)

  local function received()
    return get_json("http://127.0.0.1:" .. receiver.port .. "/got")
  end

  local function messages_for(flow_id, status)
    local out = {}
    for _, r in ipairs(received()) do
      if r.msg.MsgData.FlowId == flow_id and (not status or r.msg.MsgData.FlowStatus == status) then
        out[#out + 1] = r
      end
    end
    return out
  end

  local function new_group(n, opts)
    local ids = {}
    for i = 1, n or 3 do ids[i] = sb:upload(client) end
    local req = sb:group_request(ids, opts)
    local resp, err = client:ChannelCreateFlowGroupByFiles(req)
    assert.is_table(resp, tostring(err))
    return resp, req
  end

  local function describe_group(group_id)
    local resp, err = client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = group_id }
    assert.is_table(resp, tostring(err))
    conforms_response("DescribeFlowDetailInfo", resp)
    return resp
  end

  local function statuses(resp)
    local out = {}
    for i, f in ipairs(resp.FlowInfo) do
      local aps = {}
      for j, ap in ipairs(f.FlowApproverInfos) do aps[j] = ap.ApproveStatus end
      out[i] = f.FlowStatus .. ":" .. table.concat(aps, ",")
    end
    return out
  end

  local function links(group_id)
    local resp, err = client:CreateSignUrls{ Agent = sb.agent, FlowGroupId = group_id }
    assert.is_table(resp, tostring(err))
    conforms_response("CreateSignUrls", resp)
    local by_name = {}
    for _, info in ipairs(resp.SignUrlInfos) do by_name[info.Name] = info.SignUrl end
    return by_name, resp
  end

  describe("workflow", function()
    it("uploads, creates a group, signs as each signer: INIT → PART → ALL, with callbacks", function()
      local up, uerr = client:UploadFiles{ Agent = sb.agent, BusinessType = "DOCUMENT",
        FileInfos = { { FileName = "a.pdf", FileBody = core.base64_encode(sandbox.PDF) } } }
      assert.is_table(up, tostring(uerr))
      conforms_response("UploadFiles", up)
      assert.are.equal(1, up.TotalCount)
      assert.are.equal(32, #up.FileIds[1])
      assert.is_true(up.Deadline > os.time() + 3500 and up.Deadline <= os.time() + 3601)
      local status, _, bytes = http:request("GET", up.FileUrls[1], {}, "")
      assert.are.equal(200, status)
      assert.are.equal(sandbox.PDF, bytes)

      local before = sb:stats().counters.groups_created
      local created, req = new_group(3)
      conforms_response("ChannelCreateFlowGroupByFiles", created)
      assert.are.equal(32, #created.FlowGroupId)
      assert.are.equal(3, #created.FlowIds)
      assert.are.equal(3, #created.Approvers)
      for i, a in ipairs(created.Approvers) do
        assert.are.equal(created.FlowIds[i], a.FlowId)
        assert.are.equal(2, #a.Approvers)
        assert.are.equal(32, #a.Approvers[1].SignId)
        assert.is_string(a.Approvers[1].RecipientId)
      end
      assert.are.equal(before + 1, sb:stats().counters.groups_created)

      -- FlowIds come in the order of FlowFileInfos
      local by_ids = client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowIds = created.FlowIds }
      for i, f in ipairs(by_ids.FlowInfo) do
        assert.are.equal(created.FlowIds[i], f.FlowId)
        assert.are.equal(req.FlowFileInfos[i].FlowName, f.FlowName)
      end
      assert.are.equal(created.FlowGroupId, by_ids.FlowGroupId)

      local d = describe_group(created.FlowGroupId)
      assert.are.equal("入职签约", d.FlowGroupName)
      assert.are.same({ "INIT:PENDING,PENDING", "INIT:PENDING,PENDING", "INIT:PENDING,PENDING" }, statuses(d))

      local urls = links(created.FlowGroupId)
      assert.are.equal(sb.endpoint .. "/sandbox/sign?token=", urls["张三"]:sub(1, #sb.endpoint + 20))
      local page_status, _, page = http:request("GET", urls["张三"], {}, "")
      assert.are.equal(200, page_status)
      assert.truthy(page:find("入职签约", 1, true))

      -- ordered signing: the company cannot seal before the employee signed
      local st, answer = sb:sign(urls["李四"])
      assert.are.equal(409, st)
      assert.truthy(answer.error:find("turn", 1, true))

      st = sb:sign(urls["张三"])
      assert.are.equal(200, st)
      assert.are.same({ "PART:ACCEPT,PENDING", "PART:ACCEPT,PENDING", "PART:ACCEPT,PENDING" },
        statuses(describe_group(created.FlowGroupId)))
      st = sb:sign(urls["李四"])
      assert.are.equal(200, st)
      assert.are.same({ "ALL:ACCEPT,ACCEPT", "ALL:ACCEPT,ACCEPT", "ALL:ACCEPT,ACCEPT" },
        statuses(describe_group(created.FlowGroupId)))
      -- a finished group has nothing to sign
      st = sb:sign(urls["张三"])
      assert.are.equal(409, st)

      -- one callback per flow and status, decrypted and signature-checked by the receiver
      for _, fid in ipairs(created.FlowIds) do
        local got = wait_for(function()
          local n = #messages_for(fid, "INIT") + #messages_for(fid, "PART") + #messages_for(fid, "ALL")
          return n >= 3 and messages_for(fid, "ALL")[1]
        end)
        assert.is_table(got, "no ALL callback for " .. fid)
        local m = got.msg
        assert.are.equal("FlowStatusChange", m.MsgType)
        assert.are.equal("ThirdPartyApp", m.MsgVersion)
        assert.are.equal(created.FlowGroupId, m.MsgData.FlowGroupId)
        assert.are.equal(4, m.MsgData.FlowCallbackStatus)
        assert.are.equal(sb.app_id, m.MsgData.ApplicationId)
        assert.are.equal("ACCEPT", m.MsgData.FlowApproverInfos[2].ApproveStatus)
      end
    end)

    it("sends callbacks the openssl CLI can verify and decrypt", function()
      local created = new_group(2)
      local got = wait_for(function() return messages_for(created.FlowIds[1], "INIT")[1] end)
      assert.is_table(got)
      local dir = shell("mktemp -d")
      local f = assert(io.open(dir .. "/body", "wb")); f:write(got.body); f:close()
      local mac = shell("openssl dgst -sha256 -hmac '" .. CALLBACK_TOKEN .. "' -r < " .. dir .. "/body"):match("^(%x+)")
      assert.are.equal("sha256=" .. mac, got.signature)
      local enc = json.decode(got.body).encrypt
      f = assert(io.open(dir .. "/enc", "wb")); f:write(enc); f:close()
      local plain = shell(("openssl enc -d -aes-256-cbc -A -base64 -K %s -iv %s < %s/enc"):format(
        core.hex(CALLBACK_KEY), core.hex(CALLBACK_KEY:sub(1, 16)), dir))
      os.execute("rm -rf '" .. dir .. "'")
      local msg = json.decode(plain)
      assert.are.equal(got.msg.MsgId, msg.MsgId)
      assert.are.equal(created.FlowIds[1], msg.MsgData.FlowId)
      assert.are.equal("INIT", msg.MsgData.FlowStatus)
    end)

    it("a single contract's callbacks name no flow group", function()
      local fid = assert(client:ChannelCreateFlowByFiles{ Agent = sb.agent, FlowName = "单份", FileIds = {
        sb:upload(client) }, FlowApprovers = { { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } },
        CustomerData = "single-1" }).FlowId
      local url = assert(client:ChannelCreateFlowSignUrl{ Agent = sb.agent, FlowId = fid, FlowApproverInfos = {
        { ApproverType = "PERSON", Name = "王五", Mobile = "13700137000" } } }).FlowApproverUrlInfos[1].SignUrl
      assert.are.equal(200, (sb:sign(url)))
      local got = wait_for(function() local m = messages_for(fid, "ALL") return #m > 0 and m end)
      assert.is_table(got, "no ALL callback for the single contract")
      local data = got[1].msg.MsgData
      assert.is_nil(data.FlowGroupId)
      assert.is_nil(data.FlowGroupName)
      assert.are.equal("single-1", data.CustomerData)
      assert.are.equal(4, data.FlowCallbackStatus)
    end)

    it("retries a callback until the receiver answers 200", function()
      local created = new_group(2)
      local urls = links(created.FlowGroupId)
      -- nothing else in flight, so the one 500 meets one of this test's two messages
      assert.is_true(wait_for(function() return sb:stats().callbacks.pending == 0 end))
      local failed_before = sb:stats().callbacks.failed_attempts
      get_json("http://127.0.0.1:" .. receiver.port .. "/fail?n=1")
      assert.are.equal(200, (sb:sign(urls["张三"])))
      local got = wait_for(function()
        local a, b = messages_for(created.FlowIds[1], "PART")[1], messages_for(created.FlowIds[2], "PART")[1]
        return a and b and { a, b }
      end)
      assert.is_table(got, "the PART callbacks never arrived")
      -- exactly one of the two deliveries met the 500 and came again
      local attempts = got[1].attempts + got[2].attempts
      assert.are.equal(3, attempts)
      assert.are.equal(failed_before + 1, sb:stats().callbacks.failed_attempts)
    end)

    it("rejects: the flows go to REJECT and the other signers stop", function()
      local created = new_group(2)
      local urls = links(created.FlowGroupId)
      local st, answer = sb:reject(urls["张三"], "wrong salary")
      assert.are.equal(200, st)
      assert.is_true(answer.ok)
      local d = describe_group(created.FlowGroupId)
      assert.are.same({ "REJECT:REJECT,STOP", "REJECT:REJECT,STOP" }, statuses(d))
      assert.are.equal("wrong salary", d.FlowInfo[1].FlowMessage)
      assert.are.equal(409, (sb:sign(urls["李四"])))
      assert.is_table(wait_for(function() return messages_for(created.FlowIds[1], "REJECT")[1] end))
      -- no more links for finished flows
      local resp, err = client:CreateSignUrls{ Agent = sb.agent, FlowGroupId = created.FlowGroupId }
      assert.is_nil(resp)
      assert.are.equal("FailedOperation", err.code)
    end)

    it("cancels one flow, then the rest in a batch task", function()
      local created = new_group(3)
      local resp, err = client:ChannelCancelFlow{ Agent = sb.agent, FlowId = created.FlowIds[1],
        CancelMessage = "offer withdrawn" }
      assert.is_table(resp, tostring(err))
      conforms_response("ChannelCancelFlow", resp)
      resp, err = client:ChannelCancelFlow{ Agent = sb.agent, FlowId = created.FlowIds[1] }
      assert.is_nil(resp)
      assert.are.equal("OperationDenied.FlowHasTerminated", err.code)

      local unknown = string.rep("0", 32)
      resp, err = client:ChannelBatchCancelFlows{ Agent = sb.agent,
        FlowIds = { created.FlowIds[2], created.FlowIds[3], unknown } }
      assert.is_table(resp, tostring(err))
      conforms_response("ChannelBatchCancelFlows", resp)
      assert.are.same({ "", "" }, { resp.FailMessages[1], resp.FailMessages[2] })
      assert.are.not_equal("", resp.FailMessages[3])
      local task
      task, err = client:DescribeCancelFlowsTask{ Agent = sb.agent, TaskId = resp.TaskId }
      assert.is_table(task, tostring(err))
      conforms_response("DescribeCancelFlowsTask", task)
      assert.are.equal("END", task.TaskStatus)
      assert.are.same({ created.FlowIds[2], created.FlowIds[3] }, { task.SuccessFlowIds[1], task.SuccessFlowIds[2] })
      assert.are.equal(1, #task.FailureFlows)
      assert.are.equal(unknown, task.FailureFlows[1].FlowId)
      assert.are.same({ "CANCEL:CANCEL,CANCEL", "CANCEL:CANCEL,CANCEL", "CANCEL:CANCEL,CANCEL" },
        statuses(describe_group(created.FlowGroupId)))
      assert.are.equal("offer withdrawn", describe_group(created.FlowGroupId).FlowInfo[1].FlowMessage)
      assert.is_table(wait_for(function() return messages_for(created.FlowIds[3], "CANCEL")[1] end))
    end)

    it("moves unsigned flows to DEADLINE when their deadline passes", function()
      local created = new_group(2, { deadline = os.time() + 2 })
      local done = wait_for(function()
        local s = statuses(describe_group(created.FlowGroupId))
        return s[1] == "DEADLINE:DEADLINE,DEADLINE" and s[2] == "DEADLINE:DEADLINE,DEADLINE"
      end, 15)
      assert.is_true(done)
      local got = wait_for(function() return messages_for(created.FlowIds[2], "DEADLINE")[1] end)
      assert.are.equal(5, got.msg.MsgData.FlowCallbackStatus)
    end)

    it("refuses unknown and foreign FileIds", function()
      local req = sb:group_request({ string.rep("a", 32), sb:upload(client) })
      local resp, err = client:ChannelCreateFlowGroupByFiles(req)
      assert.is_nil(resp)
      assert.are.equal("InvalidParameter.FlowFileIds", err.code)
      assert.truthy(err.message:find("does not exist", 1, true))
      assert.truthy(err.request_id)
    end)

    it("answers the signing page and the signer API 404 for an unknown token", function()
      local st = sb:sign(string.rep("f", 64))
      assert.are.equal(404, st)
      local status = http:request("GET", sb.endpoint .. "/sandbox/sign?token=nope", {}, "")
      assert.are.equal(404, status)
    end)
  end)

  describe("refusals", function()
    local function expect(code, resp, err)
      assert.is_nil(resp)
      assert.are.equal(code, err.code)
      assert.are.equal(200, err.http_status)
      assert.is_string(err.request_id)
      return err
    end

    -- Sends a prepared request after changing it; returns the decoded Response.
    local function send(req)
      local status, _, body = http:request(req.method, req.url, req.headers, req.body)
      assert.are.equal(200, status)
      return json.decode(body).Response
    end

    local function prepared(params, ts)
      return assert(client:prepare("DescribeFlowDetailInfo", params or { Agent = sb.agent, FlowGroupId = "x" },
        { timestamp = ts or os.time() }))
    end

    it("a wrong secret key: AuthFailure.SignatureFailure", function()
      local bad = sb:client({ secret_key = "not-the-key", retry = false })
      expect("AuthFailure.SignatureFailure", bad:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = "x" })
    end)

    it("a body changed after signing: AuthFailure.SignatureFailure", function()
      local req = prepared()
      req.body = req.body:gsub('"x"', '"y"')
      assert.are.equal("AuthFailure.SignatureFailure", send(req).Error.Code)
    end)

    it("an unknown SecretId: AuthFailure.SecretIdNotFound", function()
      local bad = sb:client({ secret_id = "AKIDunknown", retry = false })
      expect("AuthFailure.SecretIdNotFound", bad:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = "x" })
    end)

    it("a timestamp more than 300 s away: AuthFailure.SignatureExpire", function()
      assert.are.equal("AuthFailure.SignatureExpire", send(prepared(nil, os.time() - 400)).Error.Code)
      assert.are.equal("AuthFailure.SignatureExpire", send(prepared(nil, os.time() + 400)).Error.Code)
      assert.are.equal("ResourceNotFound.FlowGroup", send(prepared(nil, os.time() - 200)).Error.Code)
    end)

    it("a credential scope with another date or service", function()
      local req = prepared()
      req.headers.Authorization = req.headers.Authorization:gsub("/%d%d%d%d%-%d%d%-%d%d/", "/2001-01-01/")
      assert.are.equal("AuthFailure.SignatureFailure", send(req).Error.Code)
      req = prepared()
      req.headers.Authorization = req.headers.Authorization:gsub("/essbasic/", "/cvm/")
      assert.are.equal("AuthFailure.InvalidAuthorization", send(req).Error.Code)
      req = prepared()
      req.headers.Authorization = nil
      assert.are.equal("AuthFailure.InvalidAuthorization", send(req).Error.Code)
    end)

    it("another version: NoSuchVersion", function()
      local req = prepared()
      req.headers["X-TC-Version"] = "2020-01-01"
      local r = send(req)
      assert.are.equal("NoSuchVersion", r.Error.Code)
      assert.is_string(r.RequestId)
    end)

    it("an unknown action: InvalidAction", function()
      local req = prepared()
      req.headers["X-TC-Action"] = "DescribeNothing"
      assert.are.equal("InvalidAction", send(req).Error.Code)
    end)

    it("invalid parameters: the validator's code and message", function()
      local params = { Agent = sb.agent, FlowGroupName = "bad name!", FlowFileInfos = {} }
      local _, local_err = validate.request("ChannelCreateFlowGroupByFiles", params)
      local raw = sb:client({ validate = false, retry = false })
      local err = expect(local_err.code, raw:ChannelCreateFlowGroupByFiles(params))
      -- zh-CN (the default): the code's documented text, then the detail
      assert.truthy(err.message:find(local_err.message, 1, true), err.message)
    end)

    it("an action the sandbox does not emulate: UnsupportedOperation naming it", function()
      local err = expect("UnsupportedOperation", client:call("ChannelCreateEmbedWebUrl", {}, { validate = false }))
      assert.truthy(err.message:find("ChannelCreateEmbedWebUrl", 1, true))
    end)

    it("an AppId of another account: ResourceNotFound.Application", function()
      local agent = { AppId = "someone-else", ProxyOrganizationOpenId = "o", ProxyOperator = { OpenId = "p" } }
      expect("ResourceNotFound.Application", client:DescribeFlowDetailInfo{ Agent = agent, FlowGroupId = "x" })
    end)

    it("answers every refusal with a fresh RequestId", function()
      local seen = {}
      for _ = 1, 5 do
        local _, err = client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = "x" }
        assert.is_nil(seen[err.request_id])
        seen[err.request_id] = true
      end
    end)
  end)

  describe("a request signed the official SDKs' way", function()
    local function sdk_request(content_type)
      local body = json.encode({ Agent = sb.agent, FlowGroupId = "nothing-here" })
      local ts = os.time()
      local signer = core.tc3_signer(sb.secret_key)
      -- host without the port (as Go/C++/Python sign it), while curl sends Host with the port
      local sig, signed, scope = signer:sign(ts, "essbasic", "POST", "",
        { "content-type", content_type, "host", "127.0.0.1" }, body)
      local s = core.http_session({ timeout = 5 })
      local status, _, answer = s:request("POST", sb.endpoint .. "/", {
        ["Content-Type"] = content_type,
        ["Authorization"] = "TC3-HMAC-SHA256 Credential=" .. sb.secret_id .. "/" .. scope .. ", SignedHeaders="
          .. signed .. ", Signature=" .. sig,
        ["X-TC-Action"] = "DescribeFlowDetailInfo", ["X-TC-Version"] = "2021-05-26",
        ["X-TC-Timestamp"] = tostring(ts),
      }, body)
      s:close()
      assert.are.equal(200, status)
      return json.decode(answer).Response
    end

    it("is accepted with Content-Type: application/json and the Host name without port", function()
      -- past the signature: the group does not exist, which only an authenticated request can learn
      assert.are.equal("ResourceNotFound.FlowGroup", sdk_request("application/json").Error.Code)
      assert.are.equal("ResourceNotFound.FlowGroup", sdk_request("application/json; charset=utf-8").Error.Code)
    end)
  end)

  describe("concurrency", function()
    it("creates 20 groups from 20 concurrent requests without losing or mixing any", function()
      local ids = {}
      for i = 1, 20 do ids[i] = sb:upload(client) end
      local before = sb:stats()
      local multi = core.http_multi({ timeout = 10 })
      for i = 1, 20 do
        local req = assert(client:prepare("ChannelCreateFlowGroupByFiles",
          sb:group_request({ ids[i], ids[(i % 20) + 1] }, { name = "并发" .. i })))
        multi:add(i, req.method, req.url, req.headers, req.body)
      end
      local results = {}
      wait_for(function()
        for _, r in ipairs(multi:poll(0.1)) do results[r.id] = r end
        return multi:pending() == 0
      end, 20)
      multi:close()
      local groups = {}
      for i = 1, 20 do
        assert.are.equal(200, results[i].status)
        local resp = json.decode(results[i].body).Response
        assert.is_nil(resp.Error)
        assert.is_nil(groups[resp.FlowGroupId])
        groups[resp.FlowGroupId] = i
      end
      local after = sb:stats()
      assert.are.equal(before.counters.groups_created + 20, after.counters.groups_created)
      assert.are.equal(before.groups + 20, after.groups)
      assert.are.equal(before.flows + 40, after.flows)
      for gid, i in pairs(groups) do
        local d = client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = gid }
        assert.are.equal("并发" .. i, d.FlowGroupName)
        assert.are.equal(2, #d.FlowInfo)
      end
      local f = assert(io.open(sb.data_dir .. "/state.json", "rb"))
      local state = json.decode(f:read("*a"))
      f:close()
      for gid in pairs(groups) do assert.is_table(state.groups[gid]) end
    end)
  end)
end)

describe("sandbox with its own settings", function()
  it("expires FileIds after the configured TTL", function()
    local sb = sandbox.start{ file_ttl = 1 }
    finally(function() sb:stop() end)
    local client = sb:client({ retry = false })
    local id = sb:upload(client)
    local err = wait_for(function()
      local resp, e = client:ChannelCreateFlowGroupByFiles(sb:group_request({ id, sb:upload(client) }))
      assert.is_true(resp ~= nil or e.code == "InvalidParameter.FlowFileIds")
      return not resp and e
    end, 10)
    assert.are.equal("InvalidParameter.FlowFileIds", err.code)
    assert.truthy(err.message:find("expired", 1, true))
  end)

  it("answers RequestLimitExceeded beyond the per-app, per-action limit", function()
    local sb = sandbox.start{ rate_limit = 3 }
    finally(function() sb:stop() end)
    local client = sb:client({ retry = false, rate_limit = false })
    local multi = core.http_multi({ timeout = 5 })
    for i = 1, 10 do
      local req = assert(client:prepare("DescribeFlowDetailInfo", { Agent = sb.agent, FlowGroupId = "x" }))
      multi:add(i, req.method, req.url, req.headers, req.body)
    end
    local codes = {}
    wait_for(function()
      for _, r in ipairs(multi:poll(0.1)) do
        local code = json.decode(r.body).Response.Error.Code
        codes[code] = (codes[code] or 0) + 1
      end
      return multi:pending() == 0
    end)
    multi:close()
    -- ten requests within at most two one-second windows: at most 6 get through
    assert.is_true((codes.RequestLimitExceeded or 0) >= 4)
    assert.is_true((codes["ResourceNotFound.FlowGroup"] or 0) >= 3)
    -- the limit is per action: another action still gets through
    local _, err = client:DescribeCancelFlowsTask{ Agent = sb.agent, TaskId = "none" }
    assert.are.equal("ResourceNotFound", err.code)
  end)

  it("asks for X-TC-Token when the credential has one", function()
    local sb = sandbox.start{ credentials = { { secret_id = "AKIDtemp", secret_key = "temp-key", token = "tok-1",
      apps = { "app-temp" } } } }
    finally(function() sb:stop() end)
    local agent = { AppId = "app-temp", ProxyOrganizationOpenId = "o", ProxyOperator = { OpenId = "p" } }
    local _, err = sb:client({ retry = false }):DescribeFlowDetailInfo{ Agent = agent, FlowGroupId = "x" }
    assert.are.equal("AuthFailure.TokenFailure", err.code)
    _, err = sb:client({ retry = false, token = "tok-1" }):DescribeFlowDetailInfo{ Agent = agent, FlowGroupId = "x" }
    assert.are.equal("ResourceNotFound.FlowGroup", err.code)
  end)

  it("keeps its state across a restart", function()
    local sb = sandbox.start{}
    finally(function() sb:stop() end)
    local client = sb:client({ retry = false })
    local created = assert(client:ChannelCreateFlowGroupByFiles(sb:group_request({ sb:upload(client),
      sb:upload(client) })))
    local spare = sb:upload(client)
    local urls = {}
    for _, info in ipairs(assert(client:CreateSignUrls{ Agent = sb.agent, FlowGroupId = created.FlowGroupId })
      .SignUrlInfos) do urls[info.Name] = info.SignUrl end
    assert.are.equal(200, (sb:sign(urls["张三"])))

    sb:restart()
    client = sb:client({ retry = false })
    local d = assert(client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowGroupId = created.FlowGroupId })
    assert.are.equal("PART", d.FlowInfo[1].FlowStatus)
    assert.are.equal(created.FlowIds[2], d.FlowInfo[2].FlowId)
    -- the old link's token and the uploaded files survived too
    assert.are.equal(200, (sb:sign(urls["李四"])))
    d = assert(client:DescribeFlowDetailInfo{ Agent = sb.agent, FlowIds = created.FlowIds })
    assert.are.equal("ALL", d.FlowInfo[2].FlowStatus)
    local again = assert(client:ChannelCreateFlowGroupByFiles(sb:group_request({ spare, sb:upload(client) })))
    assert.are.equal(32, #again.FlowGroupId)
    assert.are.equal(2, sb:stats().counters.groups_created)
  end)
end)
