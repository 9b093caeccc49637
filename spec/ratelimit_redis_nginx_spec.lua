-- The fleet-wide rate limit inside nginx (lua-resty-redis over cosockets): two nginx instances sharing one limit
-- against the sandbox, beside the same two with their own (lua_shared_dict) limits, figures printed; Redis
-- stopped in the middle of their run and restarted; a Redis that hangs. The nginx side is spec/helpers/fleet_nginx.lua.
local core = require("essbasic.core")
local json = require("essbasic.json")
local nginx = require("tools.nginx")
local redis_server = require("tools.redis_server")
local sandbox = require("helpers.sandbox")
local summary = require("helpers.fleet").summary

local monotonic = core.monotonic

-- nginx's runtime is LuaJIT whatever runs busted: these run once per make test, in the Lua 5.4 pass.
local once = (os.getenv("ESSBASIC_ABI") or "5.4") == "5.4" and describe or pending

local GATEWAY = [=[
  lua_shared_dict essbasic_ratelimit 1m;
  server {
    listen 127.0.0.1:%PORT%;
    location = /run { content_by_lua_block { require("helpers.fleet_nginx").run() } }
    location = /take {
      content_by_lua_block {
        local json = require("essbasic.json")
        local rl_redis = require("essbasic.ratelimit.redis")
        rl_redis.RETRY_INTERVAL = tonumber(ngx.var.arg_retry or "1")
        local lim = require("essbasic.ratelimit").new{ key = ngx.var.arg_key, rate = 10,
          redis = { url = ngx.unescape_uri(ngx.var.arg_url), timeout = 0.05 } }
        local out = {}
        for i = 1, tonumber(ngx.var.arg_n or "1") do
          ngx.update_time()
          local t0 = ngx.now()
          local w = lim:take("A")
          ngx.update_time()
          out[i] = { wait = w, took = ngx.now() - t0, down = rl_redis.is_down(lim) }
        end
        ngx.print(json.encode(json.array(out)))
      }
    }
  }
]=]

local function key()
  return "ngx" .. core.hex(core.random_bytes(4))
end

local function ngx_escape(s)
  return (s:gsub("[^%w%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

once("two nginx instances against the sandbox (rate_limit = 20 per app and action)", function()
  local srv, sb, gw
  setup(function()
    srv = redis_server.start{}
    sb = sandbox.start{ rate_limit = 20 }
    gw = { nginx.start{ http = GATEWAY }, nginx.start{ http = GATEWAY } }
  end)
  teardown(function()
    for _, g in ipairs(gw or {}) do g:stop() end
    if sb then sb:stop() end
    if srv then srv:close() end
  end)

  -- Both gateways run `calls` calls each from the same moment on, while events ({ at = seconds after that moment,
  -- fn }) happen; → their results, the refusals the sandbox counted.
  local function run(rate_limit, calls, events)
    events = events or {}
    local before = sb:stats().refused.RequestLimitExceeded or 0
    -- a second after the last call of the run before: no one-second window of the sandbox holds calls of both
    local start_at = core.time() + 1.0
    local m = core.http_multi{ timeout = 60 }
    for i = 1, 2 do
      m:add(i, "POST", "http://127.0.0.1:" .. gw[i].port .. "/run", { ["Content-Type"] = "application/json" },
        json.encode{ endpoint = sb.endpoint, secret_id = sb.secret_id, secret_key = sb.secret_key, agent = sb.agent,
          calls = calls, start_at = start_at, concurrency = 4, rate_limit = rate_limit })
    end
    local results = {}
    local deadline = monotonic() + 60
    local next_event = 1
    while m:pending() > 0 and monotonic() < deadline do
      local e = events[next_event]
      if e and core.time() >= start_at + e.at then
        e.fn()
        next_event = next_event + 1
      end
      for _, r in ipairs(m:poll(0.02)) do
        results[r.id] = json.decode(r.body or "") or error("gateway " .. r.id .. ": " .. tostring(r.body)
          .. tostring(r.err_message) .. gw[r.id]:error_log():sub(-2000))
      end
    end
    m:close()
    for i = 1, 2 do assert(results[i], "gateway " .. i .. " did not answer") end
    local s = summary(results)
    s.refused = (sb:stats().refused.RequestLimitExceeded or 0) - before
    return s
  end

  it("share one limit through Redis; with a limit each they draw refusals", function()
    local k = key()
    local own = run(nil, 75)
    local shared = run({ redis = srv.url, key = k }, 75)
    print(string.format("\n  2 nginx x 75 calls (call_many, concurrency 4), sandbox limit 20/s:\n"
      .. "    per-instance limiters (lua_shared_dict): %d refusals per %d calls, %d attempts, %d failed, %.2f s\n"
      .. "    shared on Redis:                         %d refusals per %d calls, %d attempts, %d failed, %.2f s",
      own.refused, own.calls, own.attempts, own.calls - own.ok, own.elapsed,
      shared.refused, shared.calls, shared.attempts, shared.calls - shared.ok, shared.elapsed))
    assert.equal(150, shared.ok, json.encode(shared.failed))
    assert.is_true(shared.refused <= 5, shared.refused .. " refusals with the shared limit")
    assert.is_true(own.refused >= 15, own.refused .. " refusals with a limit per instance")
    assert.is_true(shared.elapsed > 7 and shared.elapsed < 9.5, shared.elapsed .. " s")
  end)

  it("lose no call when Redis stops in the middle of their run, and share again once it is back", function()
    local k = key()
    -- stopped after every gateway's second heartbeat (one a second), which counted both
    local s = run({ redis = srv.url, key = k }, 60, { { at = 1.6, fn = function() srv:stop() end },
      { at = 2.8, fn = function() srv:start() end } })
    print(string.format("\n  2 nginx x 60 calls, Redis stopped at 1.6 s and back at 2.8 s: %d of %d calls "
      .. "completed, %d refusals, %d attempts, %.2f s", s.ok, s.calls, s.refused, s.attempts, s.elapsed))
    assert.equal(120, s.ok, json.encode(s.failed))
    for i = 1, 2 do
      local log = gw[i]:error_log()
      local _, downs = log:gsub("limiting locally %(outage = closed: this process at 1/2 of the rate, for a fleet "
        .. "of 2 seen by Redis%)", "")
      local _, ups = log:gsub("answers again after", "")
      assert.equal(1, downs, "gateway " .. i .. ":\n" .. log:sub(-3000))
      assert.equal(1, ups, "gateway " .. i .. ":\n" .. log:sub(-3000))
    end
    assert.equal("1", srv:cli("EXISTS", "essbasic:rl:" .. k .. ":DescribeFlowDetailInfo"))
  end)

  it("log in with the URL's password and select its db, on new pooled connections only", function()
    local secured = redis_server.start{ password = "ngx pw" }
    finally(function() secured:close() end)
    local http = core.http_session{ timeout = 10 }
    finally(function() http:close() end)
    local k = key()
    local function take(url)
      local status, _, body = http:request("GET", "http://127.0.0.1:" .. gw[2].port .. "/take?retry=0&n=3&key=" .. k
        .. "&url=" .. ngx_escape(url), {}, "")
      assert.equal(200, status, body)
      return json.decode(body)
    end
    local good = "redis://:ngx%20pw@127.0.0.1:" .. secured.port .. "/3"
    for _ = 1, 2 do -- the second request reuses the pooled, logged-in connection
      for _, r in ipairs(take(good)) do assert.is_false(r.down) end
    end
    assert.equal("1", secured:cli("-n", "3", "EXISTS", "essbasic:rl:" .. k .. ":A"))
    local out = take("redis://:wrong@127.0.0.1:" .. secured.port .. "/3")
    assert.is_true(out[1].down)
    -- the limiter's own lines (nginx adds the request line, which holds this test's URL)
    local lines = {}
    for line in gw[2]:error_log():gmatch("essbasic rate limit: [^\n]-, client:") do lines[#lines + 1] = line end
    local text = table.concat(lines, "\n")
    assert.truthy(text:find("AUTH failed", 1, true), text)
    assert.is_nil(text:find("wrong", 1, true))
    assert.is_nil(text:find("ngx pw", 1, true))
  end)

  it("do not wait for a Redis that hangs longer than its timeout", function()
    local http = core.http_session{ timeout = 10 }
    finally(function() http:close() end)
    local k = key()
    local url = "http://127.0.0.1:" .. gw[1].port .. "/take?retry=30&n=3&key=" .. k .. "&url=" .. ngx_escape(srv.url)
    local status, _, body = http:request("GET", url, {}, "")
    assert.equal(200, status, body)
    for _, r in ipairs(json.decode(body)) do assert.is_false(r.down) end
    srv:pause()
    local ok, err = pcall(function()
      status, _, body = http:request("GET", url, {}, "")
      assert.equal(200, status, body)
      local out = json.decode(body)
      assert.is_true(out[1].took >= 0.04 and out[1].took < 0.3, "the first take took " .. out[1].took .. " s")
      for i = 1, 3 do assert.is_true(out[i].down) end
      assert.is_true(out[2].took + out[3].took < 0.02)
    end)
    srv:resume()
    assert(ok, err)
  end)
end)
