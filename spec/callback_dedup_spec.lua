-- Callback deduplication (essbasic.callback_store): a message is handled once per MsgId, marked only after its
-- handler succeeded, run once when delivered twice at once; stores in memory, in Redis (plain Lua and nginx) and in
-- a lua_shared_dict; and the same callback delivered to two nginx gateways at once and again later.
local callback_store = require("essbasic.callback_store")
local core = require("essbasic.core")
local json = require("essbasic.json")
local nginx = require("tools.nginx")
local redis_server = require("tools.redis_server")

local function message(id)
  return { MsgId = id, MsgType = "FlowStatusChange", MsgData = { FlowId = "f1" } }
end

local function counting_handler(result)
  local h = { runs = 0 }
  h.fn = function(msg)
    h.runs = h.runs + 1
    h.last = msg
    if result == "raise" then error("handler exploded") end
    return result
  end
  return h
end

-- The semantics every store must have; new_store() gives a fresh one.
local function store_semantics(new_store)
  it("runs the handler once: later deliveries are duplicates, answered 200", function()
    local store, h = new_store(), counting_handler(true)
    assert.equal("handled", (callback_store.process(store, message("m1"), h.fn)))
    assert.equal("duplicate", (callback_store.process(store, message("m1"), h.fn)))
    assert.equal("duplicate", (callback_store.process(store, message("m1"), h.fn)))
    assert.equal(1, h.runs)
    assert.equal(200, callback_store.HTTP_STATUS.handled)
    assert.equal(200, callback_store.HTTP_STATUS.duplicate)
    assert.equal("handled", (callback_store.process(store, message("m2"), h.fn)))
    assert.equal(2, h.runs)
  end)

  it("marks nothing when the handler fails, returns something else than true, or raises", function()
    local store = new_store()
    for _, result in ipairs({ false, "raise", nil }) do
      local h = counting_handler(result)
      local outcome, detail = callback_store.process(store, message("m-fail"), h.fn)
      assert.equal(result == "raise" and "failed" or "not_handled", outcome)
      if result == "raise" then assert.truthy(tostring(detail):find("handler exploded", 1, true)) end
      assert.equal(1, h.runs)
      assert.is_true(callback_store.HTTP_STATUS[outcome] >= 500)
    end
    -- the lock was given back each time: the next delivery runs the handler at once
    local ok = counting_handler(true)
    assert.equal("handled", (callback_store.process(store, message("m-fail"), ok.fn)))
    assert.equal(1, ok.runs)
  end)

  it("keeps the marks of 7 and \"7\" apart, and of two long MsgIds that differ at the end (issue 27)", function()
    local store, h = new_store(), counting_handler(true)
    assert.equal("handled", (callback_store.process(store, message(7), h.fn)))
    assert.equal("handled", (callback_store.process(store, message("7"), h.fn)))
    assert.equal("duplicate", (callback_store.process(store, message(7), h.fn)))
    assert.equal("duplicate", (callback_store.process(store, message("7"), h.fn)))
    local long = string.rep("z", 70000)
    assert.equal("handled", (callback_store.process(store, message(long .. "a"), h.fn)))
    assert.equal("handled", (callback_store.process(store, message(long .. "b"), h.fn)))
    assert.equal("duplicate", (callback_store.process(store, message(long .. "a"), h.fn)))
    assert.equal(4, h.runs)
  end)

  it("answers busy, without running the handler, while another delivery holds the message", function()
    local store, h = new_store(), counting_handler(true)
    assert.equal("new", store:claim("m-busy", "other-gateway"))
    local outcome = callback_store.process(store, message("m-busy"), h.fn)
    assert.equal("busy", outcome)
    assert.equal(503, callback_store.HTTP_STATUS.busy)
    assert.equal(0, h.runs)
    -- the same delivery asking again (a retried claim) still holds it
    assert.equal("new", store:claim("m-busy", "other-gateway"))
    assert.is_true(store:release("m-busy", "someone-else")) -- not theirs to give back
    assert.equal("busy", (callback_store.process(store, message("m-busy"), h.fn)))
    assert.is_true(store:release("m-busy", "other-gateway"))
    assert.equal("handled", (callback_store.process(store, message("m-busy"), h.fn)))
    assert.equal(1, h.runs)
  end)

  it("cannot deduplicate a message without MsgId: the handler runs, and says so", function()
    local store, h = new_store(), counting_handler(true)
    local msg = { MsgType = "FlowStatusChange" }
    local outcome, detail = callback_store.process(store, msg, h.fn)
    assert.equal("handled", outcome)
    assert.truthy(detail:find("no MsgId", 1, true))
    callback_store.process(store, msg, h.fn)
    assert.equal(2, h.runs)
  end)

  it("wrap gives callback.handle a handler: true for handled and duplicate, raising again what raised", function()
    local store, h = new_store(), counting_handler(true)
    local wrapped = callback_store.wrap(store, h.fn)
    assert.is_true(wrapped(message("w1")))
    assert.is_true(wrapped(message("w1")))
    assert.equal(1, h.runs)
    local bad = callback_store.wrap(store, counting_handler("raise").fn)
    assert.has_error(function() bad(message("w2")) end, nil)
    assert.is_false(callback_store.wrap(store, counting_handler(false).fn)(message("w2")))
    assert.is_true(wrapped(message("w2")))
  end)
end

describe("callback_store.memory", function()
  store_semantics(function() return callback_store.memory() end)

  it("lets a lock expire after lock_ttl, and a mark after ttl", function()
    local t = 0
    local store = callback_store.memory{ lock_ttl = 10, ttl = 100, now = function() return t end }
    local h = counting_handler(true)
    assert.equal("new", store:claim("m", "dead-gateway"))
    assert.equal("busy", (callback_store.process(store, message("m"), h.fn)))
    t = 10
    assert.equal("handled", (callback_store.process(store, message("m"), h.fn)))
    t = 109
    assert.equal("duplicate", (callback_store.process(store, message("m"), h.fn)))
    t = 111
    assert.equal("handled", (callback_store.process(store, message("m"), h.fn)))
    assert.equal(2, h.runs)
  end)

  it("raises on wrong arguments and unknown options", function()
    assert.has_error(function() callback_store.memory{ ttl = "1d" } end)
    assert.has_error(function() callback_store.memory{ lock = 5 } end,
      "callback_store.memory: unknown option 'lock'")
    assert.has_error(function() callback_store.process({}, message("x"), function() end) end,
      "callback_store.process expects a store")
    assert.has_error(function() callback_store.wrap(callback_store.memory(), "f") end,
      "callback_store.wrap expects a handler function")
    assert.has_error(function() callback_store.redis("redis://127.0.0.1:1", { unavailable = "ignore" }) end)
  end)
end)

describe("callback_store.redis in plain Lua", function()
  local srv
  setup(function() srv = redis_server.start{} end)
  teardown(function() if srv then srv:close() end end)

  local n = 0
  store_semantics(function()
    n = n + 1
    return callback_store.redis(srv.url, { prefix = "spec" .. n .. ":" })
  end)

  it("keeps the mark for ttl and the lock for lock_ttl, both keys in one cluster slot", function()
    local store = callback_store.redis(srv.url, { prefix = "ttl:", ttl = 3600, lock_ttl = 7 })
    assert.equal("new", store:claim("m-ttl", "tok"))
    local lock_ttl = tonumber(srv:cli("PTTL", "ttl:lock:{m-ttl}"))
    assert.is_true(lock_ttl > 6000 and lock_ttl <= 7000, tostring(lock_ttl))
    assert.is_true(store:finish("m-ttl", "tok"))
    assert.equal("0", srv:cli("EXISTS", "ttl:lock:{m-ttl}"))
    local mark_ttl = tonumber(srv:cli("TTL", "ttl:done:{m-ttl}"))
    assert.is_true(mark_ttl > 3590 and mark_ttl <= 3600, tostring(mark_ttl))
  end)

  it("refuses (503) without running the handler when Redis is down, or runs it with unavailable = \"handle\"",
    function()
      local down = callback_store.redis("redis://127.0.0.1:1/0")
      local h = counting_handler(true)
      local outcome, detail = callback_store.process(down, message("m-down"), h.fn)
      assert.equal("unavailable", outcome)
      assert.equal(503, callback_store.HTTP_STATUS.unavailable)
      assert.truthy(detail:find("127.0.0.1:1/0", 1, true), detail)
      assert.equal(0, h.runs)
      local lenient = callback_store.redis("redis://127.0.0.1:1/0", { unavailable = "handle" })
      outcome, detail = callback_store.process(lenient, message("m-down"), h.fn)
      assert.equal("handled", outcome)
      assert.truthy(detail:find("not deduplicated", 1, true), detail)
      assert.equal(1, h.runs)
    end)

  it("uses the password and db of the URL, and never puts the password in an error", function()
    local secured = redis_server.start{ password = "cb-secret" }
    finally(function() secured:close() end)
    local store = callback_store.redis("redis://:cb-secret@127.0.0.1:" .. secured.port .. "/2")
    assert.equal("handled", (callback_store.process(store, message("m-auth"), counting_handler(true).fn)))
    assert.equal("1", secured:cli("-n", "2", "EXISTS", "essbasic:cb:done:{m-auth}"))
    local wrong = callback_store.redis("redis://:nope@127.0.0.1:" .. secured.port .. "/2")
    local outcome, detail = callback_store.process(wrong, message("m-auth2"), counting_handler(true).fn)
    assert.equal("unavailable", outcome)
    assert.is_nil(detail:find("nope", 1, true))
    assert.is_nil(detail:find("cb-secret", 1, true))
  end)
end)

-- ---------------------------------------------------------------------------------------------------------------
-- nginx: callback.handle with a store, behind two gateways.

local TOKEN = "dedup-token-7"

local GATEWAY = [=[
  lua_shared_dict runs 1m;
  lua_shared_dict callbacks 1m;
  server {
    listen 127.0.0.1:%PORT%;
    location = /cb {
      set $redis_url "@REDIS@";
      content_by_lua_block { require("helpers.fleet_nginx").receive("@TOKEN@") }
    }
    location = /cb-dict {
      set $redis_url "";
      content_by_lua_block { require("helpers.fleet_nginx").receive("@TOKEN@") }
    }
    location = /runs { content_by_lua_block { ngx.print(ngx.shared.runs:get(ngx.var.arg_id) or 0) } }
  }
]=]

local function body_of(id)
  return json.encode(message(id))
end

local function signature(body)
  return "sha256=" .. core.hex(core.hmac_sha256(TOKEN, body))
end

describe("one callback delivered to two nginx gateways sharing a Redis store", function()
  local srv, gw
  setup(function()
    srv = redis_server.start{}
    local conf = GATEWAY:gsub("@REDIS@", srv.url):gsub("@TOKEN@", TOKEN)
    gw = { nginx.start{ http = conf }, nginx.start{ http = conf } }
  end)
  teardown(function()
    for _, g in ipairs(gw or {}) do g:stop() end
    if srv then srv:close() end
  end)

  -- Delivers the message to each listed gateway at the same time → statuses in order.
  local function deliver(id, targets, query)
    local body = body_of(id)
    local m = core.http_multi{ timeout = 15 }
    for i, t in ipairs(targets) do
      m:add(i, "POST", "http://127.0.0.1:" .. gw[t.gw].port .. (t.path or "/cb") .. (query or ""),
        { ["Content-Type"] = "application/json", ["Content-Signature"] = signature(body) }, body)
    end
    local statuses = {}
    local deadline = core.monotonic() + 15
    while m:pending() > 0 and core.monotonic() < deadline do
      for _, r in ipairs(m:poll(0.5)) do statuses[r.id] = r.status or r.err_message end
    end
    m:close()
    return statuses
  end

  local function runs(id, path_gw)
    local total = 0
    for i = 1, 2 do
      if not path_gw or path_gw == i then
        local http = core.http_session{ timeout = 5 }
        local status, _, text = http:request("GET", "http://127.0.0.1:" .. gw[i].port .. "/runs?id=" .. id, {}, "")
        http:close()
        assert.equal(200, status)
        total = total + tonumber(text)
      end
    end
    return total
  end

  it("runs the handler once when both get it at once, and answers 200 to both when it comes again", function()
    local statuses = deliver("m-twice", { { gw = 1 }, { gw = 2 } }, "?sleep=0.5")
    table.sort(statuses, function(a, b) return tostring(a) < tostring(b) end)
    -- the second is refused while the first runs (503, callback_store.HTTP_STATUS.busy): essbasic delivers again
    assert.same({ 200, callback_store.HTTP_STATUS.busy }, statuses)
    assert.equal(1, runs("m-twice"))
    assert.same({ 200, 200 }, deliver("m-twice", { { gw = 1 }, { gw = 2 } }))
    assert.same({ 200 }, deliver("m-twice", { { gw = 2 } }))
    assert.equal(1, runs("m-twice"))
    assert.truthy(gw[1]:error_log():find("was handled before", 1, true) or
      gw[2]:error_log():find("was handled before", 1, true))
  end)

  it("runs it again after a failed run, on the other gateway, and then never again", function()
    assert.same({ 500 }, deliver("m-retry", { { gw = 1 } }, "?fail=1"))
    assert.equal("0", srv:cli("EXISTS", "essbasic:cb:done:{m-retry}"))
    assert.equal("0", srv:cli("EXISTS", "essbasic:cb:lock:{m-retry}"))
    assert.same({ 200 }, deliver("m-retry", { { gw = 2 } }))
    assert.same({ 200, 200 }, deliver("m-retry", { { gw = 1 }, { gw = 2 } }))
    assert.equal(2, runs("m-retry"))
    assert.equal("1", srv:cli("EXISTS", "essbasic:cb:done:{m-retry}"))
  end)

  it("refuses a message while Redis is down, so that essbasic delivers it again, and handles it once it is back",
    function()
      srv:stop()
      local ok, err = pcall(function()
        assert.same({ callback_store.HTTP_STATUS.unavailable }, deliver("m-outage", { { gw = 1 } }))
        assert.equal(0, runs("m-outage"))
      end)
      srv:start()
      assert(ok, err)
      assert.same({ 200 }, deliver("m-outage", { { gw = 2 } }))
      assert.same({ 200 }, deliver("m-outage", { { gw = 1 } }))
      assert.equal(1, runs("m-outage"))
      assert.truthy(gw[1]:error_log():find("the deduplication store did not answer", 1, true))
    end)

  it("with a lua_shared_dict store, runs it once for deliveries to one nginx at once", function()
    local statuses = deliver("m-dict", { { gw = 1, path = "/cb-dict" }, { gw = 1, path = "/cb-dict" } }, "?sleep=0.3")
    table.sort(statuses, function(a, b) return tostring(a) < tostring(b) end)
    assert.same({ 200, 503 }, statuses)
    assert.same({ 200 }, deliver("m-dict", { { gw = 1, path = "/cb-dict" } }))
    assert.equal(1, runs("m-dict", 1))
  end)

  -- Issue 27, finding 8.
  it("answers 'being handled elsewhere' with the status callback_store.HTTP_STATUS gives, and logs no MsgId",
    function()
      assert.equal(503, callback_store.HTTP_STATUS.busy)
      local id = "m-secret-id-" .. os.time()
      local statuses = deliver(id, { { gw = 1 }, { gw = 2 } }, "?sleep=0.5")
      table.sort(statuses, function(a, b) return tostring(a) < tostring(b) end)
      assert.same({ 200, callback_store.HTTP_STATUS.busy }, statuses)
      assert.same({ 200 }, deliver(id, { { gw = 1 } }))
      local logs = gw[1]:error_log() .. gw[2]:error_log()
      assert.truthy(logs:find("is being handled by another delivery", 1, true)) -- the lines are there
      assert.truthy(logs:find("message #" .. callback_store.id_for_log({ MsgId = id }):sub(2), 1, true))
      assert.is_nil(logs:find(id, 1, true), "the MsgId is in the log")
    end)

  it("delivers a MsgId over 64 KB with the lua_shared_dict store, once", function()
    local id = "long-" .. string.rep("x", 70000)
    assert.same({ 200 }, deliver(id, { { gw = 1, path = "/cb-dict" } }))
    assert.same({ 200 }, deliver(id, { { gw = 1, path = "/cb-dict" } }))
    assert.is_nil(gw[1]:error_log():find("xxxxxxxxxxxxxxxx", 1, true), "the MsgId is in the log")
  end)
end)
