-- The fault-injecting proxy (helpers.fault_proxy) between real clients and the real sandbox: every fault does what
-- it says on the wire, checked with the proxy's raw client (one TCP connection, no libcurl, no retry), with the C
-- core's libcurl session and with essbasic clients (retry = false), against the sandbox's own count of groups.
local core = require("essbasic.core")
local json = require("essbasic.json")
local sandbox = require("helpers.sandbox")
local fault_proxy = require("helpers.fault_proxy")
local tc3 = require("helpers.tc3")

local CREATE, READ, UPLOAD = "ChannelCreateFlowGroupByFiles", "DescribeFlowDetailInfo", "UploadFiles"

describe("fault proxy", function()
  local sb, fp, file_ids

  setup(function()
    sb = sandbox.start{ rate_limit = 100000 }
    fp = fault_proxy.start{ upstream = sb.endpoint }
    file_ids = { sb:upload(), sb:upload() }
  end)
  teardown(function()
    if fp then fp:stop() end
    if sb then sb:stop() end
  end)
  before_each(function() fp:reset() end)

  local function groups() return sb:stats().groups end

  local function client(extra)
    local opts = { endpoint = fp.endpoint, file_endpoint = fp.endpoint, retry = false, timeout = 5 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return sb:client(opts)
  end

  local function create(c)
    return c:ChannelCreateFlowGroupByFiles(sb:group_request(file_ids))
  end

  -- The headers and body of a signed request of action with params, for the proxy's host.
  local function signed(action, params)
    local host = fp.endpoint:match("^http://(.*)$")
    local body = json.encode(params)
    local ts = os.time()
    return {
      ["Host"] = host,
      ["Content-Type"] = "application/json",
      ["X-TC-Action"] = action,
      ["X-TC-Version"] = "2021-05-26",
      ["X-TC-Timestamp"] = tostring(ts),
      ["Authorization"] = tc3.authorization(sb.secret_id, sb.secret_key, host, ts, body),
    }, body
  end

  -- A whole HTTP/1.1 request for the raw client.
  local function raw_request(action, params)
    local headers, body = signed(action, params)
    local lines = { "POST / HTTP/1.1", "Content-Length: " .. #body }
    for name, value in pairs(headers) do lines[#lines + 1] = name .. ": " .. value end
    return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
  end

  -- A creation through the C core's libcurl session s: status, headers, body or nil, kind, message, sent.
  local function curl_create(s)
    local headers, body = signed(CREATE, sb:group_request(file_ids))
    headers.Host = nil -- libcurl writes it from the URL
    return s:request("POST", fp.endpoint .. "/", headers, body)
  end

  local function raw_create() return raw_request(CREATE, sb:group_request(file_ids)) end

  -- The log entries of the proxy, as { fault or "relay", conn_requests, forwarded } triples.
  local function log_summary()
    local out = {}
    for i, e in ipairs(fp:stats().log) do out[i] = { e.fault or "relay", e.conn_requests, e.forwarded } end
    return out
  end

  local function decoded(answer)
    return json.decode(answer.body).Response
  end

  describe("relay", function()
    it("relays 50 creations on one kept-alive client connection, untouched", function()
      local c, before = client(), groups()
      local ids = {}
      for i = 1, 50 do
        local resp, err = create(c)
        assert(resp, tostring(err))
        ids[resp.FlowGroupId] = true
        local entry = fp:stats().log[i]
        assert.equal(i, entry.conn_requests) -- the same client connection, request after request
        assert.equal(resp.RequestId, entry.request_id)
      end
      local n = 0
      for _ in pairs(ids) do n = n + 1 end
      assert.equal(50, n)
      assert.equal(before + 50, groups())
      local st = fp:stats()
      assert.equal(50, st.requests)
      assert.equal(50, st.forwarded)
      assert.same({ [CREATE] = 50 }, st.by_action)
      assert.same({}, st.faults)
      for _, e in ipairs(st.log) do
        assert.equal(CREATE, e.action)
        assert.is_true(e.forwarded)
        assert.equal(200, e.status)
        assert.is_nil(e.fault)
      end
    end)

    it("relays the answer byte for byte in its body and status, with the client's connection kept", function()
      local answers = fp:raw({ raw_create(), raw_request(READ, { Agent = sb.agent, FlowIds = { "nope" } }) })
      assert.equal(2, #answers)
      assert.equal(200, answers[1].status)
      assert.truthy(decoded(answers[1]).FlowGroupId)
      assert.equal(200, answers[2].status)
      assert.truthy(decoded(answers[2]).Error or decoded(answers[2]).FlowDetailInfos)
      assert.same({ { "relay", 1, true }, { "relay", 2, true } }, log_summary())
    end)

    it("relays an UploadFiles body of several MB", function()
      local pdf = sandbox.PDF .. string.rep("%filler\n", 600000) -- 4.8 MB of PDF, 6.4 MB of base64
      local c = client({ timeout = 30 })
      local before = sb:stats().files
      local resp, err = c:UploadFiles{ Agent = sb.agent, BusinessType = "DOCUMENT",
        FileInfos = { { FileName = "big.pdf", FileBody = core.base64_encode(pdf) } } }
      assert(resp, tostring(err))
      assert.equal(1, #resp.FileIds)
      assert.equal(before + 1, sb:stats().files)
      assert.same({ [UPLOAD] = 1 }, fp:stats().by_action)
      -- the file the sandbox stored is the one sent: a group can be made of it
      local made, err2 = client():ChannelCreateFlowGroupByFiles(sb:group_request({ resp.FileIds[1], file_ids[1] }))
      assert(made, tostring(err2))
    end)
  end)

  describe("lose_answer", function()
    for _, close in ipairs({ "orderly", "reset" }) do
      local ended = close == "orderly" and "closed" or "connection reset by peer"

      it("on a reused connection (" .. close .. "): the group is made, the client gets no byte", function()
        fp:plan{ { fault = "lose_answer", action = CREATE, conn = "reused", close = close } }
        local before = groups()
        local answers = fp:raw({ raw_create(), raw_create(), raw_create() })
        assert.equal(2, #answers) -- the raw client stops at the answer that never came
        assert.equal(200, answers[1].status)
        assert.equal(0, answers[2].received)
        assert.equal(ended, answers[2].ended)
        assert.equal(before + 2, groups()) -- both creations were done; the second's answer was lost
        assert.same({ { "relay", 1, true }, { "lose_answer", 2, true } }, log_summary())
        assert.same({ lose_answer = 1 }, fp:stats().faults)
      end)

      it("on a fresh connection (" .. close .. "): libcurl sees nothing received, the group is made", function()
        fp:plan{ { fault = "lose_answer", action = CREATE, conn = "fresh", close = close } }
        local before = groups()
        local s = core.http_session({ timeout = 5 })
        local status, kind, message, sent = curl_create(s)
        s:close()
        assert.is_nil(status)
        assert.equal(close == "orderly" and "closed" or "other", kind)
        assert.is_true(sent)
        -- CURLE_GOT_NOTHING (52) after a FIN, CURLE_RECV_ERROR (56) after an RST: no byte of an answer either way
        assert.matches(close == "orderly" and "Empty reply from server" or "Connection reset by peer", message)
        assert.equal(before + 1, groups())
        assert.same({ { "lose_answer", 1, true } }, log_summary())
      end)
    end

    it("counts one group for every creation the proxy forwarded, whatever the client does on a reused connection",
      function()
        fp:plan{ { fault = "lose_answer", action = CREATE, conn = "reused", times = 1 } }
        local c, before = client(), groups()
        assert(create(c))
        create(c) -- the answer of this one is lost; what libcurl makes of it is the client's business
        local forwarded = 0
        for _, e in ipairs(fp:stats().log) do
          if e.action == CREATE and e.forwarded then forwarded = forwarded + 1 end
        end
        assert.equal(before + forwarded, groups())
        assert.equal("lose_answer", fp:stats().log[2].fault)
        assert.equal(2, fp:stats().log[2].conn_requests)
      end)
  end)

  describe("reset_before", function()
    it("closes before the request is read: the sandbox never sees it", function()
      fp:plan{ { fault = "reset_before", action = CREATE } }
      local before = sb:stats()
      local resp, err = create(client())
      assert.is_nil(resp)
      assert.equal("network", err.kind)
      local after = sb:stats()
      assert.equal(before.groups, after.groups)
      assert.equal(before.requests[CREATE], after.requests[CREATE])
      local st = fp:stats()
      assert.equal(0, st.forwarded)
      assert.same({ reset_before = 1 }, st.faults)
      assert.same({ { "reset_before", 1, false } }, log_summary())
    end)

    it("sends an RST by default and a FIN with close = orderly", function()
      fp:plan{ { fault = "reset_before", conn = "reused" } }
      local answers = fp:raw({ raw_request(READ, { Agent = sb.agent, FlowIds = { "x" } }), raw_create() })
      assert.equal("connection reset by peer", answers[2].ended)
      assert.equal(0, answers[2].received)
      fp:plan{ { fault = "reset_before", conn = "reused", close = "orderly" } }
      answers = fp:raw({ raw_request(READ, { Agent = sb.agent, FlowIds = { "x" } }), raw_create() })
      assert.equal("closed", answers[2].ended)
      assert.equal(0, answers[2].received)
    end)
  end)

  describe("answers spoiled after the work was done", function()
    it("stall: no byte for longer than the client waits; the group is made", function()
      fp:plan{ { fault = "stall", action = CREATE, hold = 5 } }
      local before = groups()
      local answers = fp:raw({ raw_create() }, { timeout = 1 })
      assert.equal("timeout", answers[1].ended)
      assert.equal(0, answers[1].received)
      assert.equal(before + 1, groups())
      local resp, err = create(client({ timeout = 1 }))
      assert.is_nil(resp)
      assert.equal("timeout", err.network)
      assert.equal(before + 2, groups())
    end)

    it("stall: a stalled connection does not keep nginx from stopping at once", function()
      local own = fault_proxy.start{ upstream = sb.endpoint }
      local m = core.http_multi({ timeout = 60 })
      local ok, err = pcall(function()
        own:plan{ { fault = "stall" } } -- the longest hold: 30 s
        m:add(1, "GET", own.endpoint .. "/sandbox/stats", {})
        local deadline = core.monotonic() + 5
        while own:stats().forwarded == 0 and core.monotonic() < deadline do m:poll(0.05) end
        assert.equal(1, own:stats().forwarded)
        local started = core.monotonic()
        own:stop() -- graceful quit; tools.nginx falls back to TERM after 5 s
        assert.is_true(core.monotonic() - started < 3)
      end)
      m:close()
      own:stop()
      assert(ok, err)
    end)

    it("garbage: bytes that are not HTTP, then a close; the group is made", function()
      fp:plan{ { fault = "garbage", action = CREATE } }
      local before = groups()
      local answers = fp:raw({ raw_create() })
      assert.equal("closed", answers[1].ended)
      assert.is_true(answers[1].received > 0)
      assert.is_nil(answers[1].first_bytes:match("^HTTP/"))
      local resp, err = create(client())
      assert.is_nil(resp)
      assert.equal("network", err.kind)
      assert.equal(before + 2, groups())
    end)

    it("cut_body: the status line, the headers and half of the body, then a close", function()
      fp:plan{ { fault = "cut_body", action = CREATE } }
      local before = groups()
      local answers = fp:raw({ raw_create() })
      local a = answers[1]
      assert.equal("closed", a.ended)
      assert.equal(200, a.status)
      assert.matches("Content%-Type: application/json", a.head)
      assert.is_true(a.content_length > 0)
      assert.equal(math.floor(a.content_length / 2), a.body_received)
      local resp, err = create(client())
      assert.is_nil(resp)
      assert.matches("transfer closed with %d+ bytes remaining", err.message)
      assert.equal(before + 2, groups())
    end)

    it("close_after_headers: the status line and the headers, no body, then a close", function()
      fp:plan{ { fault = "close_after_headers", action = CREATE } }
      local before = groups()
      local a = fp:raw({ raw_create() })[1]
      assert.equal("closed", a.ended)
      assert.equal(200, a.status)
      assert.is_true(a.content_length > 0)
      assert.equal(0, a.body_received)
      local resp, err = create(client())
      assert.is_nil(resp)
      assert.matches("transfer closed with %d+ bytes remaining", err.message)
      assert.equal(before + 2, groups())
    end)

    it("slow_answer: the whole answer after the delay, on a connection kept alive", function()
      fp:plan{ { fault = "slow_answer", action = CREATE, delay = 1, nth = 1 } }
      local before = groups()
      local answers = fp:raw({ raw_create(), raw_create() })
      assert.equal(200, answers[1].status)
      assert.is_true(answers[1].seconds >= 1)
      assert.equal(200, answers[2].status)
      assert.is_true(answers[2].seconds < 1)
      assert.equal(before + 2, groups())
      assert.same({ { "slow_answer", 1, true }, { "relay", 2, true } }, log_summary())
    end)
  end)

  describe("accounting", function()
    local function forwarded_creations()
      local n = 0
      for _, e in ipairs(fp:stats().log) do
        if e.action == CREATE and e.forwarded then n = n + 1 end
      end
      return n
    end

    it("under call_many (libcurl multi, 10 at once) every forwarded creation is one group", function()
      fp:plan{ { fault = "lose_answer", action = CREATE, every = 3 } }
      local before = groups()
      local list = {}
      for i = 1, 30 do list[i] = { CREATE, sb:group_request(file_ids) } end
      local results = client():call_many(list, { concurrency = 10 })
      assert.equal(30, #results)
      local st = fp:stats()
      assert.is_true(st.faults.lose_answer >= 10)
      assert.equal(st.requests, #st.log)
      assert.equal(before + forwarded_creations(), groups())
    end)

    it("logs a request as forwarded even when its client hung up before the answer came", function()
      local fault_server = require("helpers.fault_server")
      local slow_server = fault_server.start()
      local slow = fault_proxy.start{ upstream = slow_server.endpoint }
      local ok, err = pcall(function()
        local s = core.http_session({ timeout = 0.5 })
        local status, kind = s:request("POST", slow.endpoint .. "/", { ["Content-Type"] = "application/json" },
          json.encode({ Scenario = "proxy-abort", Steps = { "slow" } }))
        s:close()
        assert.is_nil(status)
        assert.equal("timeout", kind)
        local st = slow:stats()
        assert.equal(1, st.requests)
        assert.equal(1, st.forwarded)
        assert.is_true(st.log[1].forwarded)
        assert.is_nil(st.log[1].status) -- written before the answer came
      end)
      slow:stop()
      slow_server:stop()
      assert(ok, err)
    end)
  end)

  describe("plans", function()
    local STATS = "/sandbox/stats" -- a request without X-TC-Action, answered by the sandbox itself

    -- n GETs on one libcurl session; garbage answers are never resent by libcurl, so the log has n entries.
    local function gets(n)
      local s = core.http_session({ timeout = 5 })
      local statuses = {}
      for i = 1, n do statuses[i] = s:request("GET", fp.endpoint .. STATS, {}, "") or false end
      s:close()
      return statuses
    end

    local function faulted_seqs()
      local out = {}
      for _, e in ipairs(fp:stats().log) do
        if e.fault then out[#out + 1] = e.seq end
      end
      return out
    end

    it("matches fresh and reused connections by connection_requests", function()
      fp:plan{ { fault = "garbage", conn = "reused" } }
      assert.same({ 200, false, 200, false }, gets(4))
      assert.same({ { "relay", 1, true }, { "garbage", 2, true }, { "relay", 1, true }, { "garbage", 2, true } },
        log_summary())
      fp:reset()
      fp:plan{ { fault = "garbage", conn = "fresh" } }
      assert.same({ false, false }, gets(2))
      assert.same({ { "garbage", 1, true }, { "garbage", 1, true } }, log_summary())
    end)

    it("matches by action and leaves the other actions alone", function()
      fp:plan{ { fault = "reset_before", action = READ } }
      local c = client()
      assert(create(c))
      local resp = c:DescribeFlowDetailInfo{ Agent = sb.agent, FlowIds = { "nope" } }
      assert.is_nil(resp)
      assert(create(c))
      -- libcurl resends the read once on a new connection (nothing came back on the reused one): reset again
      local st = fp:stats()
      assert.is_true(st.by_action[READ] >= 1)
      assert.equal(st.by_action[READ], st.faults.reset_before)
      assert.equal(2, st.by_action[CREATE])
      for _, e in ipairs(st.log) do
        assert.equal(e.action == READ and "reset_before" or nil, e.fault)
      end
    end)

    it("nth, every and times select the requests the rule matches", function()
      fp:plan{ { fault = "garbage", nth = 2 } }
      gets(5)
      assert.same({ 2 }, faulted_seqs())
      fp:reset()
      fp:plan{ { fault = "garbage", every = 3 } }
      gets(9)
      assert.same({ 3, 6, 9 }, faulted_seqs())
      fp:reset()
      fp:plan{ { fault = "garbage", every = 2, times = 2 } }
      gets(10)
      assert.same({ 2, 4 }, faulted_seqs())
    end)

    it("the first rule that fires wins; every rule counts its matches on its own", function()
      fp:plan{ { fault = "garbage", every = 2 }, { fault = "close_after_headers", every = 3 } }
      gets(6)
      local faults = {}
      for _, e in ipairs(fp:stats().log) do faults[e.seq] = e.fault or "relay" end
      assert.same({ "relay", "garbage", "close_after_headers", "garbage", "relay", "garbage" }, faults)
    end)

    it("rate with a seed is reproducible and is what fault_proxy.draws predicts", function()
      local function run(seed)
        fp:reset()
        fp:plan{ { fault = "garbage", rate = 0.3, seed = seed } }
        gets(40)
        return faulted_seqs()
      end
      local expected = {}
      for i, v in ipairs(fault_proxy.draws(7, 40)) do
        if v < 0.3 then expected[#expected + 1] = i end
      end
      assert.is_true(#expected > 3 and #expected < 25)
      assert.same(expected, run(7))
      assert.same(expected, run(7))
      assert.are_not.same(expected, run(8))
    end)

    it("replaces the plan and resets the rules' counters; reset clears the stats", function()
      fp:plan{ { fault = "garbage", nth = 1 } }
      gets(1)
      fp:plan{ { fault = "garbage", nth = 1 } }
      gets(2)
      assert.same({ 1, 2 }, faulted_seqs())
      fp:reset()
      gets(1)
      local st = fp:stats()
      assert.equal(1, st.requests)
      assert.same({}, st.faults)
    end)

    it("refuses a bad rule before anything is sent", function()
      assert.has_error(function() fp:plan{ { fault = "explode" } } end)
      assert.has_error(function() fp:plan{ { fault = "garbage", conn = "old" } } end)
      assert.has_error(function() fp:plan{ { fault = "garbage", nth = 1, every = 2 } } end)
      assert.has_error(function() fp:plan{ { fault = "garbage", rate = 2 } } end)
      assert.has_error(function() fp:plan{ { fault = "stall", hold = 60 } } end)
      assert.has_error(function() fp:plan{ { fault = "garbage", nht = 1 } } end)
      assert.has_error(function() fp:plan("garbage") end)
    end)
  end)
end)
