-- "Never lost": a creation whose answer was lost (ClientError.OutcomeUnknown) is resolved from the API's own
-- callbacks, attacked from outside. Creations go through the fault proxy (helpers/fault_proxy.lua) to the sandbox
-- with a quarter of the answers lost; the flow callbacks are built from the sandbox's own state (its state.json:
-- which flow holds which CustomerData, in which group), encrypted and signed with the openssl command line
-- (tools/callback_sender.lua) and POSTed to a real receiver: `essbasic callback serve` (nginx + SQLite) for the
-- plain-Lua client, callback.handle with a shared dict inside nginx for the nginx client. (Today's sandbox sends
-- callbacks only when a flow's status changes, not at its creation; the INIT message with CustomerData is the
-- sandbox issue's.) Then client:resolve must answer `created` with the ids the sandbox itself holds, nothing may be
-- carried out twice or resent, a forged callback must resolve nothing, and a creation whose callback never came
-- stays not_yet_known.
local json = require("essbasic.json")
local core = require("essbasic.core")
local essbasic = require("essbasic")
local callback = require("essbasic.callback")
local callback_store = require("essbasic.callback_store")
local correlate = require("essbasic.correlate")
local sandbox = require("helpers.sandbox")
local fault_proxy = require("helpers.fault_proxy")
local cli_helper = require("helpers.cli")
local callback_serve = require("helpers.callback_serve")
local redis_server = require("tools.redis_server")
local files = require("helpers.files")
local nginx = require("tools.nginx")
local sender = require("tools.callback_sender")

local CREATE = "ChannelCreateFlowGroupByFiles"
local KEY, TOKEN = sender.KEY, sender.TOKEN
local N = 8 -- creations per run; the proxy loses every 4th answer

-- Inside nginx: /cb receives callbacks into a shared dict store; /create runs call_many with correlate = true;
-- /resolve runs client:resolve on that store.
local APP = [=[
lua_shared_dict cbstore 4m;
server {
  listen 127.0.0.1:%PORT%;
  client_body_buffer_size 4m;
  location = /cb { content_by_lua_block {
    local store = require("essbasic.callback_store").shared_dict("cbstore")
    require("essbasic.callback").handle({ key = "KEY", token = "TOKEN", store = store }, function() return true end)
  } }
  location /run { content_by_lua_block {
    local json = require("essbasic.json")
    ngx.req.read_body()
    local job = json.decode(ngx.req.get_body_data())
    local c = require("essbasic").new{ secret_id = job.secret_id, secret_key = job.secret_key,
      endpoint = job.endpoint, file_endpoint = job.endpoint, rate_limit = false, timeout = 1.5, correlate = true,
      transport = require("essbasic.transport.ngx").new{ timeout = 1.5 }, retry = { base_delay = 0.01 } }
    local out = json.array()
    if job.create then
      for i, r in ipairs(c:call_many(job.create, { concurrency = 2 })) do
        local resp, err, meta = r[1], r[2], r[3]
        out[i] = resp and { ok = true, group = resp.FlowGroupId, flows = resp.FlowIds, correlation = meta.correlation }
          or { ok = false, code = err.code, correlation = err.correlation }
      end
    else
      local store = require("essbasic.callback_store").shared_dict("cbstore")
      for i, what in ipairs(job.resolve) do
        local state, ids = c:resolve(what, store)
        out[i] = { state = state, ids = ids }
      end
    end
    ngx.print(json.encode(out))
  } }
}
]=]

local function post(http, url, body, headers)
  local status, _, resp = http:request("POST", url, headers or { ["Content-Type"] = "application/json" }, body)
  return status, resp
end

describe("never lost", function()
  local sb, fp, http, file_id
  setup(function()
    sb = sandbox.start{ rate_limit = 100000 }
    fp = fault_proxy.start{ upstream = sb.endpoint }
    http = core.http_session({ timeout = 30 })
    file_id = sb:upload()
  end)
  teardown(function()
    if http then http:close() end
    if fp then fp:stop() end
    if sb then sb:stop() end
  end)

  local function requests(tag)
    local list = {}
    for i = 1, N do list[i] = { CREATE, sb:group_request({ file_id, file_id }, { name = tag .. i }) } end
    return list
  end

  -- The sandbox's own truth: CustomerData → { flow, group }, from its state file.
  local function truth()
    local state = json.decode(assert(files.read(sb.data_dir .. "/state.json")))
    local by_key = {}
    for id, f in pairs(state.flows) do
      if f.customer_data then by_key[f.customer_data] = { flow = id, group = f.group, name = f.name } end
    end
    return by_key, state.counters.groups_created
  end

  -- The FlowStatusChange message the API sends for a flow (fields as sandbox/callbacks.lua names them), encrypted
  -- and signed by openssl; with_group = false leaves FlowGroupId out (resolve must then look it up).
  local function wire(key, t, opts)
    opts = opts or {}
    local msg = { MsgId = core.hex(core.random_bytes(16)), MsgType = "FlowStatusChange", MsgVersion = "ThirdPartyApp",
      MsgData = { ApplicationId = sb.app_id, FlowId = t.flow, FlowGroupId = opts.with_group ~= false and t.group or nil,
        FlowName = t.name, FlowStatus = "INIT", FlowCallbackStatus = 1, CustomerData = key, OccurTime = os.time() } }
    local body = sender.encrypted_body(json.encode(msg), KEY)
    local headers = { ["Content-Type"] = "application/json" }
    if opts.token ~= false then headers["Content-Signature"] = sender.signature(body, opts.token or TOKEN) end
    return body, headers
  end

  local function deliver(url, keys, t, opts)
    for _, key in ipairs(keys) do
      local body, headers = wire(key, t[key], opts)
      local status = post(http, url, body, headers)
      assert.equal(opts and opts.expect or 200, status)
    end
  end

  -- After a run: the outcomes, none twice, nothing resent, the keys in the sandbox's flows.
  local function check_run(results, before)
    local t, after = truth()
    local unknown = {}
    for i, r in ipairs(results) do
      assert.is_table(r.correlation, "result " .. i .. " carries its correlation")
      assert.equal(2, #r.correlation.keys)
      if r.ok then
        for j, key in ipairs(r.correlation.keys) do
          assert.matches("^ess1:[%w_-]+$", key)
          assert.equal(27, #key)
          assert.equal(r.flows[j], t[key].flow, "the key went out in flow " .. j)
        end
      else
        assert.equal("ClientError.OutcomeUnknown", r.code)
        unknown[#unknown + 1] = r.correlation
      end
    end
    assert.equal(N / 4, #unknown, "a quarter of the answers were lost")
    assert.equal(N, after - before, "each creation carried out once")
    assert.equal(N, fp:stats().by_action[CREATE], "nothing resent")
    assert.equal(N, fp:stats().forwarded)
    return unknown, t
  end

  local function expect_created(state, ids, c, t)
    assert.equal("created", state)
    assert.is_true(ids.complete, json.encode(ids))
    local group = t[c.keys[1]].group
    assert.equal(group, ids.FlowGroupId, "the group the sandbox holds")
    for j, key in ipairs(c.keys) do assert.equal(t[key].flow, ids.FlowIds[j], "flow " .. j .. " in request order") end
  end

  it("plain Lua: essbasic callback serve records, client:resolve finds every unknown creation, forged ones never",
    function()
      local cli = cli_helper.new()
      local db = cli.dir .. "/run.db"
      files.write(cli.dir .. "/key", KEY)
      files.write(cli.dir .. "/token", TOKEN .. "\n")
      local receiver = callback_serve.start(cli, { key = cli.dir .. "/key", token = cli.dir .. "/token", store = db })
      finally(function()
        assert.is_true(receiver:stop())
        cli:remove()
      end)
      local url = receiver.url

      fp:reset()
      fp:plan{ { fault = "lose_answer", action = CREATE, every = 4 } }
      local _, before = truth()
      local c = sb:client{ endpoint = fp.endpoint, file_endpoint = fp.endpoint, rate_limit = false, timeout = 1.5,
        correlate = true, retry = { base_delay = 0.01 } }
      local results = {}
      for i, r in ipairs(c:call_many(requests("nl-lua-"), { concurrency = 2 })) do
        local resp, err, meta = r[1], r[2], r[3]
        results[i] = resp and { ok = true, flows = resp.FlowIds, correlation = meta.correlation }
          or { ok = false, code = err.code, correlation = err.correlation }
      end
      local unknown, t = check_run(results, before)
      local resolver = sb:client{ rate_limit = false, retry = { base_delay = 0.01 } }
      local store = callback_store.sqlite(db)

      -- Before any callback: not yet known (never "not created").
      for _, u in ipairs(unknown) do assert.equal("not_yet_known", resolver:resolve(u, store)) end
      -- Forged: no signature, then the wrong token: refused (401), nothing recorded.
      deliver(url, unknown[1].keys, t, { token = false, expect = 401 })
      deliver(url, unknown[1].keys, t, { token = "not-the-token", expect = 401 })
      assert.equal("not_yet_known", resolver:resolve(unknown[1], store))
      -- The first unknown creation's callbacks come (one of them without a group id); the second's never do.
      deliver(url, { unknown[1].keys[1] }, t, { with_group = false })
      deliver(url, { unknown[1].keys[2] }, t)
      local state, ids = resolver:resolve(unknown[1], store)
      expect_created(state, ids, unknown[1], t)
      assert.equal("not_yet_known", resolver:resolve(unknown[2], store), "no callback: stays unknown")
      -- Only the first flow's callback, without its group: DescribeFlowDetailInfo gives the group and the other id.
      deliver(url, { unknown[2].keys[1] }, t, { with_group = false })
      state, ids = resolver:resolve(unknown[2], store)
      expect_created(state, ids, unknown[2], t)
      assert.equal(N, fp:stats().by_action[CREATE], "resolving resent nothing")
      store:close()
      c:close()
      resolver:close()
    end)

  it("inside nginx: call_many with correlate, callback.handle with a shared dict, client:resolve", function()
    local app = nginx.start{ http = APP:gsub('"KEY"', string.format("%q", KEY)):gsub('"TOKEN"',
      string.format("%q", TOKEN)) }
    finally(function() app:stop() end)
    local base = "http://127.0.0.1:" .. app.port
    local function run(job)
      job.secret_id, job.secret_key = sb.secret_id, sb.secret_key
      local status, body = post(http, base .. "/run", json.encode(job))
      assert.equal(200, status, tostring(body) .. app:error_log():sub(-2000))
      return json.decode(body)
    end
    fp:reset()
    fp:plan{ { fault = "lose_answer", action = CREATE, every = 4 } }
    local _, before = truth()
    local create = {}
    for i, r in ipairs(requests("nl-ngx-")) do create[i] = { r[1], r[2] } end
    local unknown, t = check_run(run{ endpoint = fp.endpoint, create = create }, before)
    local function resolve() return run{ endpoint = sb.endpoint, resolve = unknown } end
    for _, r in ipairs(resolve()) do assert.equal("not_yet_known", r.state) end
    deliver(base .. "/cb", unknown[1].keys, t, { token = false, expect = 401 })
    deliver(base .. "/cb", unknown[1].keys, t)
    local r = resolve()
    expect_created(r[1].state, r[1].ids, unknown[1], t)
    assert.equal("not_yet_known", r[2].state, "no callback: stays unknown")
    deliver(base .. "/cb", unknown[2].keys, t, { with_group = false })
    r = resolve()
    expect_created(r[2].state, r[2].ids, unknown[2], t)
    assert.equal(N, fp:stats().by_action[CREATE], "resolving resent nothing")
  end)
end)

describe("correlation keys", function()
  local c = essbasic.new{ secret_id = "AKIDexample", secret_key = "secret", rate_limit = false }
  local function flows(n, given)
    local list = {}
    for i = 1, n do list[i] = { FlowName = "f" .. i, CustomerData = given and given[i] or nil } end
    return list
  end

  it("fills empty CustomerData per flow, keeps the caller's, never changes the caller's table", function()
    local params = { FlowFileInfos = flows(3, { nil, "row-17", "" }) }
    local sent, corr = correlate.apply(CREATE, params)
    assert.is_nil(params.FlowFileInfos[1].CustomerData)
    assert.equal("", params.FlowFileInfos[3].CustomerData)
    assert.equal("row-17", corr.keys[2])
    for _, i in ipairs({ 1, 3 }) do
      assert.matches("^ess1:[%w_-]+$", corr.keys[i])
      assert.equal(27, #corr.keys[i])
      assert.equal(corr.keys[i], sent.FlowFileInfos[i].CustomerData)
    end
    local seen = {}
    for _ = 1, 2000 do
      local k = correlate.new_key()
      assert.is_nil(seen[k])
      seen[k] = true
    end
  end)

  it("covers every action whose flows carry CustomerData, and only when asked", function()
    local cases = {
      ChannelCreateFlowByFiles = { FlowName = "x" },
      ChannelCreateFlowGroupByFiles = { FlowFileInfos = flows(2) },
      ChannelCreateFlowGroupByTemplates = { FlowInfos = flows(2) },
      CreateFlowsByTemplates = { FlowInfos = flows(3) },
    }
    for action, params in pairs(cases) do
      local req = assert(c:prepare(action, params, { validate = false, correlate = true }))
      assert.is_table(req.correlation, action)
      for _, key in ipairs(req.correlation.keys) do assert.is_truthy(req.body:find(key, 1, true), action) end
      local plain = assert(c:prepare(action, params, { validate = false }))
      assert.is_nil(plain.correlation)
      assert.is_nil(plain.body:find("ess1:", 1, true))
    end
    assert.is_nil(assert(c:prepare("DescribeFlowDetailInfo", { FlowIds = { "x" } },
      { correlate = true, validate = false })).correlation)
    local on = essbasic.new{ secret_id = "AKIDexample", secret_key = "secret", rate_limit = false, correlate = true }
    assert.is_table(assert(on:prepare(CREATE, { FlowFileInfos = flows(1) }, { validate = false })).correlation)
    assert.is_nil(assert(on:prepare(CREATE, { FlowFileInfos = flows(1) },
      { validate = false, correlate = false })).correlation)
    assert.has_error(function() essbasic.new{ correlate = "yes" } end)
  end)
end)

describe("callback records", function()
  local function signed(data, token)
    local body = json.encode({ MsgId = core.hex(core.random_bytes(8)), MsgType = "FlowStatusChange",
      MsgData = data })
    return callback.parse{ body = body, token = token or TOKEN, signature = sender.signature(body, token or TOKEN) }
  end
  local function handler() return true end

  local function behaves(store)
    local key = "ess1:" .. core.hex(core.random_bytes(8))
    assert.is_false(callback_store.recall(store, key))
    assert.equal("handled", callback_store.process(store, assert(signed({ FlowId = "F1", FlowGroupId = "G1",
      CustomerData = key, FlowStatus = "INIT" })), handler))
    assert.equal("handled", callback_store.process(store, assert(signed({ FlowId = "F1", FlowGroupId = "G1",
      CustomerData = key, FlowStatus = "ALL" })), handler))
    local rec = callback_store.recall(store, key)
    assert.same({ FlowId = "F1", FlowGroupId = "G1", FlowStatus = "INIT", MsgType = "FlowStatusChange" }, rec,
      "the first callback's record is kept")
    -- Forged: a message made by hand, or one parsed without a token, never records.
    local forged = "ess1:forged" .. core.hex(core.random_bytes(4))
    local hand = { MsgId = "hand-" .. forged, MsgType = "FlowStatusChange", MsgData = { FlowId = "F9",
      CustomerData = forged } }
    assert.equal("handled", callback_store.process(store, hand, handler))
    local unsigned = assert(callback.parse{ body = json.encode(hand), allow_unsigned = true })
    unsigned.MsgId = "unsigned-" .. forged
    assert.equal("handled", callback_store.process(store, unsigned, handler))
    assert.is_false(callback_store.recall(store, forged))
  end

  it("memory", function() behaves(callback_store.memory()) end)

  it("takes the key from MsgData.UserData too (the name Tencent's callback dispatcher reads)", function()
    local store = callback_store.memory()
    local key = "ess1:" .. core.hex(core.random_bytes(8))
    assert.equal("handled", callback_store.process(store, assert(signed({ FlowId = "F2", FlowGroupId = "G2",
      UserData = key, FlowStatus = "INIT" })), handler))
    assert.same({ FlowId = "F2", FlowGroupId = "G2", FlowStatus = "INIT", MsgType = "FlowStatusChange" },
      callback_store.recall(store, key))
  end)

  it("sqlite, shared by two connections", function()
    local path = os.tmpname()
    finally(function() os.remove(path) os.remove(path .. "-wal") os.remove(path .. "-shm") end)
    local a, b = callback_store.sqlite(path), callback_store.sqlite(path)
    behaves(a)
    assert.equal("new", b:claim("m", "t1"))
    assert.equal("busy", a:claim("m", "t2"))
    assert.is_true(b:finish("m", "t1"))
    assert.equal("done", a:claim("m", "t3"))
    a:close()
    b:close()
  end)

  it("redis (a real redis-server)", function()
    local srv = redis_server.start{}
    finally(function() srv:close() end)
    local store = callback_store.redis(srv.url)
    behaves(store)
    store:close()
    srv:stop()
    local down = callback_store.redis(srv.url)
    local rec, err = callback_store.recall(down, "ess1:x")
    assert.is_nil(rec)
    assert.is_string(err)
    assert.equal("unavailable", callback_store.process(down, assert(signed({ FlowId = "F", CustomerData = "k" })),
      handler), "a record that cannot be kept: the message is refused, so it comes again")
    down:close()
  end)
end)

describe("resolve without a group", function()
  local c = essbasic.new{ secret_id = "AKIDexample", secret_key = "secret", rate_limit = false }
  local function record(store, key, flow_id)
    local body = json.encode({ MsgId = core.hex(core.random_bytes(8)), MsgType = "FlowStatusChange",
      MsgData = { FlowId = flow_id, CustomerData = key, FlowStatus = "INIT" } })
    local msg = assert(callback.parse{ body = body, token = TOKEN, signature = sender.signature(body, TOKEN) })
    assert.equal("handled", callback_store.process(store, msg, function() return true end))
  end

  it("ChannelCreateFlowByFiles: its one flow", function()
    local store = callback_store.memory()
    local corr = { action = "ChannelCreateFlowByFiles", keys = { correlate.new_key() } }
    assert.equal("not_yet_known", c:resolve({ correlation = corr }, store))
    record(store, corr.keys[1], "F-single")
    local state, ids = c:resolve({ correlation = corr }, store)
    assert.equal("created", state)
    assert.same({ FlowId = "F-single", FlowIds = { "F-single" }, complete = true }, ids)
  end)

  it("CreateFlowsByTemplates: each flow on its own callback; the others stay holes", function()
    local store = callback_store.memory()
    local corr = { action = "CreateFlowsByTemplates", keys = { correlate.new_key(), correlate.new_key(),
      correlate.new_key() } }
    record(store, corr.keys[2], "F-two")
    local state, ids = c:resolve(corr, store)
    assert.equal("created", state)
    assert.is_false(ids.complete)
    assert.is_nil(ids.FlowIds[1])
    assert.equal("F-two", ids.FlowIds[2])
    assert.is_nil(ids.FlowIds[3])
    assert.equal("not_yet_known", c:resolve({ corr.keys[1], corr.keys[3] }, store), "a plain list of keys")
  end)

  it("refuses what it cannot resolve", function()
    assert.has_error(function() c:resolve({ code = "x" }, callback_store.memory()) end)
    assert.has_error(function() c:resolve({ "k" }, { claim = true }) end)
  end)
end)

describe("essbasic callback serve", function()
  it("refuses to run without a token, a store or a sane address (exit 2, nothing started)", function()
    local cli = cli_helper.new()
    finally(function() cli:remove() end)
    local db = cli.dir .. "/run.db"
    local r = cli:run({ "callback", "serve", "--store", db, "--port", "1" })
    assert.equal(2, r.status)
    assert.matches("token", r.err)
    r = cli:run({ "callback", "serve", "--token", "t", "--port", "1" })
    assert.equal(2, r.status)
    assert.matches("%-%-store", r.err)
    r = cli:run({ "callback", "serve", "--token", "t", "--store", db, "--port", "1", "--listen", "1.2.3.4; user x" })
    assert.equal(2, r.status)
    assert.is_nil(io.open(db, "rb"), "nothing was opened")
  end)
end)
