-- "A creating call is never sent twice when it may have arrived", attacked from outside: a fault-injecting proxy
-- (helpers/fault_proxy.lua, real TCP in nginx) between the client and the sandbox loses answers, resets, stalls,
-- garbles and cuts, on fresh and on reused connections. Every case counts the groups the sandbox itself created.
-- Clients: client:call and client:call_many over libcurl in this process, and the same inside real nginx
-- (cosockets, light threads).
local json = require("essbasic.json")
local sandbox = require("helpers.sandbox")
local fault_proxy = require("helpers.fault_proxy")
local nginx = require("tools.nginx")
local core = require("essbasic.core")

local CREATE = "ChannelCreateFlowGroupByFiles"
local READ = "DescribeFlowDetailInfo"
local FAULTS = { "lose_answer", "reset_before", "stall", "garbage", "cut_body", "close_after_headers" }
local TIMEOUT = 1.5 -- the client's timeout; a stall outlasts it

-- Runs one client job inside nginx: { endpoint, pool, validate, retry,
--   steps = { { action, params } | { many = {...}, concurrency } | { wait_for = url, text = "..." } } }
-- → per step { ok, code, network, id } or, for many, a list of them.
local APP = [=[
server {
  listen 127.0.0.1:%PORT%;
  client_body_buffer_size 16m;
  location /run {
    content_by_lua_block {
      local json = require("essbasic.json")
      ngx.req.read_body()
      local job = json.decode(ngx.req.get_body_data())
      local essbasic = require("essbasic")
      local transport = require("essbasic.transport.ngx").new{ pool = job.pool, timeout = job.timeout }
      local c = essbasic.new{ secret_id = job.secret_id, secret_key = job.secret_key, endpoint = job.endpoint,
        file_endpoint = job.endpoint, rate_limit = false, timeout = job.timeout, transport = transport,
        validate = job.validate, retry = job.retry or { base_delay = 0.01, max_delay = 0.05 } }
      local function out(resp, err)
        if resp then return { ok = true, id = resp.FlowGroupId or (resp.FileIds and resp.FileIds[1]) } end
        return { ok = false, code = err.code, network = err.network }
      end
      local results = json.array()
      for i, step in ipairs(job.steps) do
        if step.wait_for then
          -- Asks step.wait_for (a GET URL) until its answer holds step.text (each ask yields to the event loop).
          local seen
          local asker = require("essbasic.transport.ngx").new{ pool = "wait_for" }
          for _ = 1, 500 do
            local res = asker:request{ method = "GET", url = step.wait_for, headers = {}, body = "", timeout = 5 }
            seen = res and res.body:find(step.text, 1, true)
            if seen then break end
            ngx.sleep(0.01)
          end
          results[i] = seen and true or false
        elseif step.many then
          local list = json.array()
          local rs = c:call_many(step.many, { concurrency = step.concurrency })
          for j, r in ipairs(rs) do list[j] = out(r[1], r[2]) end
          results[i] = list
        else
          results[i] = out(c:call(step[1], step[2]))
        end
      end
      ngx.print(json.encode(results))
    }
  }
}
]=]

describe("never twice", function()
  local sb, fp, app, http
  setup(function()
    sb = sandbox.start{ rate_limit = 100000 }
    fp = fault_proxy.start{ upstream = sb.endpoint }
    app = nginx.start{ http = APP }
    http = core.http_session({ timeout = 60 })
  end)
  teardown(function()
    if http then http:close() end
    if app then app:stop() end
    if fp then fp:stop() end
    if sb then sb:stop() end
  end)

  local function groups() return sb:stats().groups end

  local function lua_client()
    return sb:client{ endpoint = fp.endpoint, file_endpoint = fp.endpoint, rate_limit = false, timeout = TIMEOUT,
      retry = { base_delay = 0.01, max_delay = 0.05 } }
  end

  local pool_seq = 0
  -- The same job, done by a client in this process (curl) or inside nginx (ngx).
  local function run_job(kind, steps)
    if kind == "ngx" then
      pool_seq = pool_seq + 1
      local status, _, body = http:request("POST", "http://127.0.0.1:" .. app.port .. "/run", {},
        json.encode{ endpoint = fp.endpoint, pool = "job" .. pool_seq, timeout = TIMEOUT, steps = steps,
          secret_id = sb.secret_id, secret_key = sb.secret_key })
      assert.equal(200, status, tostring(body) .. "\n" .. app:error_log():sub(-2000))
      return json.decode(body)
    end
    local c = lua_client()
    local out = {}
    local function one(resp, err)
      if resp then return { ok = true, id = resp.FlowGroupId or (resp.FileIds and resp.FileIds[1]) } end
      return { ok = false, code = err.code, network = err.network }
    end
    for i, step in ipairs(steps) do
      if step.many then
        local list = {}
        for j, r in ipairs(c:call_many(step.many, { concurrency = step.concurrency })) do list[j] = one(r[1], r[2]) end
        out[i] = list
      else
        out[i] = one(c:call(step[1], step[2]))
      end
    end
    c:close()
    return out
  end

  local file_id
  local function create_params(name)
    file_id = file_id or sb:upload()
    return sb:group_request({ file_id, file_id }, { name = name })
  end

  -- A batch's results: how many succeeded, how many are OutcomeUnknown (no other failure is allowed).
  local function successes_and_unknown(results)
    local ok, unknown = 0, 0
    for i = 1, #results do
      if results[i].ok then
        ok = ok + 1
      else
        assert.equal("ClientError.OutcomeUnknown", results[i].code)
        unknown = unknown + 1
      end
    end
    return ok, unknown
  end

  local function forwarded(action)
    local n = 0
    for _, entry in ipairs(fp:stats().log) do
      if entry.action == action and entry.forwarded then n = n + 1 end
    end
    return n
  end

  for _, kind in ipairs({ "curl", "ngx" }) do
    for _, conn in ipairs({ "fresh", "reused" }) do
      for _, fault in ipairs(FAULTS) do
        it(("%s: a creation whose exchange suffers %s on a %s connection is never repeated and never a success")
          :format(kind, fault, conn), function()
          local params = create_params("nt-" .. kind .. "-" .. conn .. "-" .. fault)
          fp:reset()
          fp:plan{ { fault = fault, action = CREATE, conn = conn, times = 1, hold = TIMEOUT + 1 } }
          local before = groups()
          -- reused: an upload first, on the same client connection; fresh: the creation opens the connection
          local upload = { "UploadFiles", { Agent = sb.agent, BusinessType = "DOCUMENT",
            FileInfos = { { FileName = "a.pdf", FileBody = core.base64_encode(sandbox.PDF) } } } }
          local steps = conn == "reused" and { upload, { CREATE, params } } or { { CREATE, params } }
          local results = run_job(kind, steps)
          local r = results[#results]
          local st = fp:stats()
          assert.equal(1, st.faults[fault], "the proxy injected the fault once: " .. json.encode(st.log))
          local faulted
          for _, e in ipairs(st.log) do if e.action == CREATE and e.fault then faulted = e end end
          assert.equal(conn == "fresh" and 1 or 2, faulted.conn_requests)
          local made = groups() - before
          assert.equal(forwarded(CREATE), made, "the sandbox created one group per request that reached it")
          assert.is_true(made <= 1, "a creation was carried out " .. made .. " times")
          if fault == "reset_before" then
            -- Nothing reached the sandbox. A transport that can prove the body never left may send it again
            -- (libcurl does when the reset came before it read the body): then one group and a real answer.
            assert.equal(r.ok and 1 or 0, made)
            if not r.ok then assert.equal("ClientError.OutcomeUnknown", r.code) end
          else
            assert.equal(1, st.by_action[CREATE], "the creation went out once: " .. json.encode(st.log))
            assert.is_false(r.ok, "a creation whose answer was lost was reported as a success")
            assert.equal("ClientError.OutcomeUnknown", r.code)
          end
        end)
      end

      for _, fault in ipairs(FAULTS) do
        it(("%s: a read-only call whose exchange suffers %s on a %s connection is retried to success")
          :format(kind, fault, conn), function()
          local created = run_job(kind, { { CREATE, create_params("nt-read-" .. kind .. conn .. fault) } })[1]
          assert.is_true(created.ok, json.encode(created))
          fp:reset()
          fp:plan{ { fault = fault, action = READ, conn = conn, times = 1, hold = TIMEOUT + 1 } }
          local steps = { { READ, { Agent = sb.agent, FlowGroupId = created.id } } }
          if conn == "reused" then table.insert(steps, 1, { READ, { Agent = sb.agent, FlowGroupId = created.id } }) end
          local results = run_job(kind, steps)
          local r = results[#results]
          assert.is_true(r.ok, json.encode(r))
          assert.equal(1, fp:stats().faults[fault])
        end)
      end
    end

    for _, fault in ipairs(FAULTS) do
      it(kind .. ": call_many, 6 creations, every second one suffering " .. fault .. ": none carried out twice",
        function()
          fp:reset()
          fp:plan{ { fault = fault, action = CREATE, every = 2, hold = TIMEOUT + 1 } }
          local many = {}
          for i = 1, 6 do many[i] = { CREATE, create_params("nt-many-" .. kind .. fault .. i) } end
          local before = groups()
          local results = run_job(kind, { { many = many, concurrency = 3 } })[1]
          local ok, unknown = successes_and_unknown(results)
          local made = groups() - before
          assert.equal(forwarded(CREATE), made, "one group per request that reached the sandbox")
          assert.is_true(made <= 6)
          if fault == "reset_before" then
            assert.is_true(ok >= 3 and made == ok, json.encode(results))
          else
            assert.equal(3, fp:stats().faults[fault])
            assert.equal(6, fp:stats().by_action[CREATE], "6 creations went out, none twice")
            assert.equal(3, ok)
            assert.equal(3, unknown)
            assert.equal(6, made)
          end
        end)
    end

    it(kind .. ": call_many, 30 creations with every third answer lost: 20 successes, 10 unknown, 30 groups", function()
      fp:reset()
      fp:plan{ { fault = "lose_answer", action = CREATE, every = 3 } }
      local many = {}
      for i = 1, 30 do many[i] = { CREATE, create_params("nt-many-" .. kind .. i) } end
      local before = groups()
      local results = run_job(kind, { { many = many, concurrency = 5 } })[1]
      local ok, unknown = successes_and_unknown(results)
      local st = fp:stats()
      assert.equal(10, st.faults.lose_answer)
      assert.equal(20, ok)
      assert.equal(10, unknown)
      assert.equal(30, st.by_action[CREATE], "30 creations went out, none twice")
      assert.equal(30, groups() - before)
      local reused = 0
      for _, e in ipairs(st.log) do if e.fault and e.conn_requests > 1 then reused = reused + 1 end end
      assert.is_true(reused > 0, "some lost answers were on reused connections")
    end)
  end

  it("soak: 200 creations, 10% of the answers lost at random, concurrency 10: not one group twice", function()
    local f = require("helpers.soak").run{ sb = sb, fp = fp, n = 200, loss = 0.1, concurrency = 10, seed = 3,
      tag = "spec" }
    print("  " .. require("helpers.soak").format(f))
    assert.is_true(f.lost > 0)
    assert.equal(0, f.duplicates)
    assert.equal(200, f.sent)
    assert.equal(f.successes + f.unknown, f.groups)
    assert.equal(f.lost, f.unknown)
    assert.equal(0, f.other_failures)
  end)
end)

-- libcurl resends a request by itself when a reused connection dies before a byte of the answer (a lost answer
-- looks the same): these cases make that resend's new connection fail without sending anything — refused while the
-- server restarts, reset during the TLS handshake, a proxy refusing the tunnel — and check with the server's own
-- count that the creation was carried out once and reported as OutcomeUnknown, never as a success or "not sent".
describe("never twice: a failed reconnect after a lost answer, and stray answers (libcurl)", function()
  local essbasic = require("essbasic")
  local faults_server = require("helpers.fault_server")
  local gate_helper = require("helpers.gate")
  local proxy_helper = require("helpers.proxy")
  local faults, tinyproxy
  local n = 0
  setup(function()
    faults = faults_server.start()
    tinyproxy = proxy_helper.start()
  end)
  teardown(function()
    if faults then faults:stop() end
    if tinyproxy then tinyproxy:stop() end
  end)

  local function port_of(url) return tonumber(url:match(":(%d+)$")) end

  -- route: "http", "https" or "tunnel" (https through tinyproxy's CONNECT); the gate stands before the server.
  local function client(route, gate, extra)
    local https = route ~= "http"
    local endpoint = (https and "https" or "http") .. "://127.0.0.1:" .. gate.port
    local o = { secret_id = "AKIDnever", secret_key = "never-twice-secret-0123456789abcdef", endpoint = endpoint,
      file_endpoint = endpoint, validate = false, rate_limit = false, timeout = 3,
      -- the client's own retry waits longer than the refusal lasts: a wrong "not sent" would be sent again
      retry = { base_delay = 0.4, max_delay = 0.4 },
      ca_file = https and faults.cert or nil, proxy = route == "tunnel" and tinyproxy.url or nil }
    for k, v in pairs(extra or {}) do o[k] = v end
    return essbasic.new(o)
  end

  local function scenario(steps)
    n = n + 1
    return { Scenario = ("nt%d-%d-%d"):format(n, os.time(), math.random(1e6)), Steps = steps }
  end

  local function run(c, how, params)
    if how == "call" then return c:call(CREATE, params) end
    local r = c:call_many({ { action = CREATE, params = params } })[1]
    return r[1], r[2]
  end

  local CASES = {
    { "http", "refuse" }, { "https", "refuse" }, { "https", "reset" }, { "tunnel", "refuse" },
  }
  for _, case in ipairs(CASES) do
    local route, mode = case[1], case[2]
    for _, how in ipairs({ "call", "call_many" }) do
      for _, retry in ipairs({ "default", "off" }) do
        it(("%s, %s, retry %s: an answer lost on a reused connection, the reconnect %s: carried out once, "
          .. "OutcomeUnknown"):format(route, how, retry, mode == "refuse" and "refused" or "reset"), function()
          local upstream = port_of(route == "http" and faults.endpoint or faults.tls_endpoint)
          local gate = gate_helper.start{ upstream_port = upstream, mode = mode, hold = 0.15 }
          local ok, why = pcall(function()
            local c = client(route, gate, retry == "off" and { retry = false } or nil)
            local first = scenario({ "ok" })
            assert.truthy((run(c, how, first)), "the first creation makes the kept-alive connection")
            local second = scenario({ "create_reset", "ok" })
            local resp, err = run(c, how, second)
            local seen = faults:stats(second.Scenario)
            assert.equal(1, seen.created, "the server carried the creation out once")
            assert.is_nil(resp, "not a success: its answer was lost")
            assert.equal("ClientError.OutcomeUnknown", err.code)
            assert.is_not_false(err.sent)
            c:close()
          end)
          gate:stop()
          assert(ok, why)
        end)
      end
    end
  end

  for _, route in ipairs({ "http", "https" }) do
    for _, how in ipairs({ "call", "call_many" }) do
      it(route .. ", " .. how .. ": a copy of A's answer waiting on the connection is never read as B's", function()
        local endpoint = route == "http" and faults.endpoint or faults.tls_endpoint
        local c = essbasic.new{ secret_id = "AKIDnever", secret_key = "never-twice-secret-0123456789abcdef",
          endpoint = endpoint, file_endpoint = endpoint, validate = false, rate_limit = false, timeout = 3,
          retry = false, ca_file = faults.cert }
        local a, b = scenario({ "answer_twice" }), scenario({ "ok" })
        local ra = assert(run(c, how, a))
        assert.equal("group-" .. a.Scenario, ra.FlowGroupId)
        -- the copy is on its way once the server counted it
        for _ = 1, 500 do
          if faults:stats(a.Scenario).copies then break end
          require("socket").sleep(0.01)
        end
        local rb, err = run(c, how, b)
        assert.is_nil(err)
        assert.equal("group-" .. b.Scenario, rb.FlowGroupId, "B reads B's answer")
        assert.same({ attempts = 1, created = 1 }, faults:stats(b.Scenario))
        c:close()
      end)
    end
  end

  it("essbasic batch: a row whose reconnect was refused after its lost answer is unknown, never sent again", function()
    local cli = require("helpers.cli").new()
    local gate = gate_helper.start{ upstream_port = port_of(faults.endpoint), mode = "refuse", hold = 0.15 }
    local ok, why = pcall(function()
      local a, b = scenario({ "ok" }), scenario({ "create_reset", "ok" })
      local input, journal = cli.dir .. "/rows.jsonl", cli.dir .. "/rows.db"
      require("helpers.files").write(input, json.encode(a) .. "\n" .. json.encode(b) .. "\n")
      local env = { TENCENTCLOUD_SECRET_ID = "AKIDnever", TENCENTCLOUD_SECRET_KEY = "never-twice-secret",
        ESSBASIC_ENDPOINT = "http://127.0.0.1:" .. gate.port }
      -- one row at a time: the second goes out on the connection the first kept alive
      local argv = { "batch", "--action", CREATE, "--input", input, "--journal", journal, "--no-validate", "--quiet",
        "--concurrency", "1" }
      local r = cli:run(argv, { env = env })
      assert.equal("1 done, 0 failed, 1 unknown\n", r.out, r.err)
      local again = cli:run(argv, { env = env })
      assert.equal("1 done, 0 failed, 1 unknown\n", again.out, again.err)
      assert.same({ attempts = 1, created = 1 }, faults:stats(b.Scenario))
    end)
    gate:stop()
    cli:remove()
    assert(ok, why)
  end)

  -- nginx closes a pooled connection on which bytes arrive when its event loop sees them, and setkeepalive refuses
  -- one that holds unread bytes (lua-nginx-module 0.10.23: ngx_http_lua_socket_keepalive_close_handler, "unread
  -- data in buffer", "connection in dubious state"); the transport closes what setkeepalive refuses.
  it("ngx, call and call_many: a copy of A's answer that arrived before B is never read as B's", function()
    local app = nginx.start{ http = APP }
    local ok, why = pcall(function()
      local http = core.http_session({ timeout = 30 })
      local stats = faults.endpoint .. "/stats?scenario="
      local a1, b1, a2, b2 = scenario({ "answer_twice" }), scenario({ "ok" }), scenario({ "answer_twice" }),
        scenario({ "ok" })
      local status, _, body = http:request("POST", "http://127.0.0.1:" .. app.port .. "/run", {}, json.encode{
        endpoint = faults.endpoint, pool = "copies", timeout = 3, validate = false, retry = false,
        secret_id = "AKIDnever", secret_key = "never-twice-secret-0123456789abcdef",
        steps = { { CREATE, a1 }, { wait_for = stats .. a1.Scenario, text = '"copies"' }, { CREATE, b1 },
          { many = { { action = CREATE, params = a2 } } }, { wait_for = stats .. a2.Scenario, text = '"copies"' },
          { many = { { action = CREATE, params = b2 } } } } })
      http:close()
      assert.equal(200, status, tostring(body))
      local r = json.decode(body)
      assert.is_true(r[2] and r[5], "the copies were sent")
      assert.equal("group-" .. a1.Scenario, r[1].id)
      assert.equal("group-" .. b1.Scenario, r[3].id, "B reads B's answer")
      assert.equal("group-" .. a2.Scenario, r[4][1].id)
      assert.equal("group-" .. b2.Scenario, r[6][1].id, "B reads B's answer (call_many)")
      assert.same({ attempts = 1, created = 1 }, faults:stats(b1.Scenario))
      assert.same({ attempts = 1, created = 1 }, faults:stats(b2.Scenario))
    end)
    app:stop()
    assert(ok, why)
  end)

  -- libcurl offers HTTP/2 over TLS by default (ALPN); on_prereq runs once per request there too (lib/multi.c,
  -- MSTATE_DO, per transfer), and HTTP/2 connections are not checked for unread bytes (frames of other streams).
  describe("HTTP/2 over TLS", function()
    local function h2_client()
      return essbasic.new{ secret_id = "AKIDnever", secret_key = "never-twice-secret-0123456789abcdef",
        endpoint = faults.h2_endpoint, file_endpoint = faults.h2_endpoint, validate = false, rate_limit = false,
        timeout = 3, ca_file = faults.cert, retry = { base_delay = 0.01, max_delay = 0.02 } }
    end

    it("sequential and concurrent creations: each carried out once, on one connection each way", function()
      local c = h2_client()
      local list = {}
      for i = 1, 10 do
        local s = scenario({ "ok" })
        local resp = assert(c:call(CREATE, s))
        assert.equal("group-" .. s.Scenario, resp.FlowGroupId)
        list[i] = { action = CREATE, params = scenario({ "wait100" }) }
      end
      local rs = c:call_many(list, { concurrency = 10 })
      for i, r in ipairs(rs) do
        assert.equal("group-" .. list[i].params.Scenario, r[1].FlowGroupId)
        assert.same({ attempts = 1, created = 1, h2 = 1 }, faults:stats(list[i].params.Scenario))
      end
      local info = c.transport:info()
      assert.equal(1, info.connects, "the sequential calls shared one HTTP/2 connection")
      c:close()
    end)

    for _, how in ipairs({ "call", "call_many" }) do
      it(how .. ": a stream reset after the creation on a reused connection: carried out once, OutcomeUnknown",
        function()
          local c = h2_client()
          assert.truthy((run(c, how, scenario({ "ok" }))))
          local s = scenario({ "create_reset", "ok" })
          local resp, err = run(c, how, s)
          assert.is_nil(resp)
          assert.equal("ClientError.OutcomeUnknown", err.code)
          assert.same({ attempts = 1, created = 1, h2 = 1 }, faults:stats(s.Scenario))
          c:close()
        end)
    end
  end)

  it("an oversized answer to a creation is OutcomeUnknown (carried out), not a final ResponseTooLarge", function()
    local c = essbasic.new{ secret_id = "AKIDnever", secret_key = "never-twice-secret-0123456789abcdef",
      endpoint = faults.endpoint, file_endpoint = faults.endpoint, validate = false, rate_limit = false,
      timeout = 3, max_response_bytes = 1024 * 1024 }
    for _, how in ipairs({ "call", "call_many" }) do
      local s = scenario({ "create_huge" })
      local resp, err = run(c, how, s)
      assert.is_nil(resp)
      assert.equal("ClientError.OutcomeUnknown", err.code)
      assert.equal("ClientError.ResponseTooLarge", err.cause.code)
      assert.same({ attempts = 1, created = 1 }, faults:stats(s.Scenario))
    end
    c:close()
  end)
end)
