-- The fleet-wide rate limit on Redis (essbasic.ratelimit.redis, essbasic.redis), with a real redis-server on
-- loopback: the options and URLs, the GCRA spacing, fail-fast, per-action and per-app keys, EVALSHA falling back
-- to EVAL, a Redis that is down or hangs (the call goes on with the local limiter, one log line per outage), and
-- five plain-Lua processes sharing one limit against the sandbox, with the figures printed beside per-process
-- limiters, and Redis stopped and restarted in the middle of such a run. The nginx side is in
-- spec/ratelimit_redis_nginx_spec.lua.
local ratelimit = require("essbasic.ratelimit")
local rl_redis = require("essbasic.ratelimit.redis")
local redis = require("essbasic.redis")
local core = require("essbasic.core")
local json = require("essbasic.json")
local redis_server = require("tools.redis_server")
local sandbox = require("helpers.sandbox")
local summary = require("helpers.fleet").summary

local monotonic = core.monotonic

local function new_key()
  return "spec" .. core.hex(core.random_bytes(4))
end

describe("essbasic.redis.parse", function()
  it("reads redis://[[user]:password@]host[:port][/db][?timeout=&prefix=]", function()
    local c = redis.parse("redis://127.0.0.1:6380/2", "x")
    assert.same({ "127.0.0.1", 6380, 2, nil, nil }, { c.host, c.port, c.db, c.password, c.username })
    assert.equal("127.0.0.1:6380/2", c.id)
    c = redis.parse("redis://:s%40cret@cache.internal", "x")
    assert.same({ "cache.internal", 6379, 0, "s@cret" }, { c.host, c.port, c.db, c.password })
    c = redis.parse("redis://app:pw@[::1]:7000/5?timeout=0.05&prefix=p:", "x")
    assert.same({ "::1", 7000, 5, "pw", "app", 0.05, "p:" },
      { c.host, c.port, c.db, c.password, c.username, c.timeout, c.prefix })
    assert.equal("[::1]:7000/5", c.id)
    assert.is_nil(c.id:find("pw", 1, true))
  end)

  it("takes a table with host, port, db, username, password, prefix, timeout (or url)", function()
    local c = redis.parse({ host = "10.0.0.5", port = 6390, db = 1, password = "p", prefix = "x:", timeout = 0.2 },
      "x", { prefix = "d:" })
    assert.same({ "10.0.0.5", 6390, 1, "p", "x:", 0.2 }, { c.host, c.port, c.db, c.password, c.prefix, c.timeout })
    c = redis.parse({ url = "redis://h:1/3", db = 4 }, "x", { prefix = "d:" })
    assert.same({ "h", 1, 4, "d:", redis.DEFAULT_TIMEOUT }, { c.host, c.port, c.db, c.prefix, c.timeout })
  end)

  it("raises on what it cannot read", function()
    for _, bad in ipairs({ "http://h:1", "redis://", "redis://h:99999", "redis://h:1/x", "redis://h?timeout=soon",
      "redis://h?color=red", { hots = "h" }, { port = "6379" }, { timeout = 0 }, 6379 }) do
      assert.has_error(function() redis.parse(bad, "rate_limit.redis") end)
    end
  end)
end)

describe("rate_limit options", function()
  it("raise on an unknown key, in ratelimit.new and in essbasic.new", function()
    assert.has_error(function() ratelimit.new{ rate = 5, wiat = false } end, "rate_limit: unknown option 'wiat'")
    assert.has_error(function()
      require("essbasic").new{ secret_id = "a", secret_key = "b", rate_limit = { rates = 3 } }
    end, "rate_limit: unknown option 'rates'")
    assert.has_error(function() ratelimit.new{ rate = "5" } end, "rate_limit.rate must be a number, got string")
    assert.has_error(function() ratelimit.new{ per_action = { UploadFiles = 0 } } end)
  end)

  it("raise on Redis-only keys without redis, and on a bad outage choice", function()
    assert.has_error(function() ratelimit.new{ outage = "open" } end,
      "rate_limit.outage applies only with rate_limit.redis")
    assert.has_error(function() ratelimit.new{ redis = "redis://127.0.0.1:1", outage = "shut" } end)
    assert.has_error(function() ratelimit.new{ redis = "redis://127.0.0.1:1", outage = "open", fleet = 3 } end,
      "rate_limit.fleet applies only with outage = \"closed\"")
    assert.has_error(function() ratelimit.new{ redis = "redis://127.0.0.1:1", fleet = 2.5 } end)
    assert.has_error(function() ratelimit.new{ redis = { host = "h", bogus = 1 } } end,
      "rate_limit.redis: unknown key 'bogus'")
  end)

  it("the local limiter keeps separate buckets per app when take is given one", function()
    local lim = ratelimit.new{ rate = 1, now = function() return 0 end }
    assert.equal(0, lim:take("A", false, "app1"))
    assert.is_nil(lim:take("A", false, "app1"))
    assert.equal(0, lim:take("A", false, "app2"))
    assert.equal(0, lim:take("A", false))
  end)
end)

describe("the Redis limiter", function()
  local srv
  local saved_interval = rl_redis.RETRY_INTERVAL
  setup(function() srv = redis_server.start{} end)
  teardown(function()
    rl_redis.RETRY_INTERVAL = saved_interval
    if srv then srv:close() end
  end)

  local function limiter(extra)
    local logs = {}
    -- jitter = 0: the waits below are multiples of 1/rate (plus the 1 ms sleep margin)
    local opts = { redis = srv.url, key = new_key(), jitter = 0,
      logger = function(level, m) logs[#logs + 1] = level .. " " .. m end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local lim = ratelimit.new(opts)
    assert.equal(rl_redis.Redis, getmetatable(lim))
    return lim, logs
  end

  it("spaces tokens 1/rate apart, booked in Redis, for every limiter of that key", function()
    local a = limiter{ rate = 10 }
    local b = ratelimit.new{ redis = srv.url, key = a.base:match(":([^:]+):$"), rate = 10, jitter = 0 }
    local waits = {}
    for i = 1, 6 do waits[i] = (i % 2 == 1 and a or b):take("DescribeFlowDetailInfo") end
    assert.equal(0, waits[1])
    for i = 2, 6 do
      assert.is_true(math.abs(waits[i] - (i - 1) * 0.1) < 0.03, "wait " .. i .. " was " .. waits[i])
    end
    -- one key per limit, expiring a little after its last booking
    local ttl = tonumber(srv:cli("PTTL", a.base .. "DescribeFlowDetailInfo"))
    assert.is_true(ttl > 1000 and ttl <= 1700, "PTTL " .. tostring(ttl))
  end)

  it("spaces by (1 + jitter) / rate, 5% more than 1/rate by default", function()
    local lim = ratelimit.new{ redis = srv.url, key = new_key(), rate = 10 }
    assert.equal(0, lim:take("A"))
    local w = lim:take("A")
    assert.is_true(w > 0.104 and w < 0.107, tostring(w))
    lim = ratelimit.new{ redis = srv.url, key = new_key(), rate = 10, jitter = 0.2 }
    assert.equal(0, lim:take("A"))
    w = lim:take("A")
    assert.is_true(w > 0.118 and w < 0.122, tostring(w))
    assert.has_error(function() ratelimit.new{ redis = srv.url, jitter = 1 } end)
    assert.has_error(function() ratelimit.new{ jitter = 0.1 } end,
      "rate_limit.jitter applies only with rate_limit.redis")
  end)

  it("fails fast without taking anything when wait is false", function()
    local lim = limiter{ rate = 2 }
    assert.equal(0, lim:take("A", false))
    assert.is_nil(lim:take("A", false))
    assert.is_nil(lim:take("A", false))
    -- nothing was booked by the refusals: a waiting caller gets the next slot, 0.5 s after the first
    local w = lim:take("A", true)
    assert.is_true(w > 0.4 and w <= 0.502, tostring(w))
    local fast = limiter{ rate = 2, wait = false }
    assert.equal(0, fast:take("A"))
    assert.is_nil(fast:take("A"))
  end)

  it("has per-action rates, a key per action, and a key per app when take is given one", function()
    local lim = limiter{ rate = 20, per_action = { UploadFiles = 1 } }
    assert.equal(0, lim:take("UploadFiles"))
    local w = lim:take("UploadFiles")
    assert.is_true(w > 0.95 and w <= 1.002, tostring(w))
    assert.equal(0, lim:take("DescribeFlowDetailInfo"))
    assert.equal(0, lim:take("UploadFiles", false, "app-A"))
    assert.is_nil(lim:take("UploadFiles", false, "app-A"))
    assert.equal(0, lim:take("UploadFiles", false, "app-B"))
    assert.equal("1", srv:cli("EXISTS", "essbasic:rl:app-A:UploadFiles"))
    assert.equal("1", srv:cli("EXISTS", lim.base .. "UploadFiles"))
  end)

  it("allows `burst` tokens at once when asked (the default is none: strict spacing)", function()
    local lim = limiter{ rate = 10, burst = 3 }
    assert.same({ 0, 0, 0 }, { lim:take("A"), lim:take("A"), lim:take("A") })
    assert.is_true(lim:take("A") > 0.05)
  end)

  it("sends the script's source (EVAL) when Redis no longer knows its SHA1, and uses EVALSHA after", function()
    local lim = limiter{ rate = 100 }
    assert.equal(0, lim:take("A"))
    local sha = rl_redis.SCRIPT.sha
    assert.equal(40, #sha)
    assert.equal("1", srv:cli("SCRIPT", "EXISTS", sha))
    assert.equal("OK", srv:cli("SCRIPT", "FLUSH"))
    assert.equal("0", srv:cli("SCRIPT", "EXISTS", sha))
    assert.is_number(lim:take("A"))
    assert.is_false(rl_redis.is_down(lim))
    assert.equal("1", srv:cli("SCRIPT", "EXISTS", sha))
  end)

  it("uses the URL's password and db, and treats a wrong password as an outage", function()
    local secured = redis_server.start{ password = "pa:ss" }
    finally(function() secured:close() end)
    local url = "redis://:pa%3Ass@127.0.0.1:" .. secured.port .. "/3"
    local lim = ratelimit.new{ redis = url, key = "k", logger = function() end }
    assert.equal(0, lim:take("A"))
    assert.equal("1", secured:cli("-n", "3", "EXISTS", "essbasic:rl:k:A"))
    local logs = {}
    local wrong = ratelimit.new{ redis = "redis://:nope@127.0.0.1:" .. secured.port .. "/4", rate = 1,
      logger = function(_, m) logs[#logs + 1] = m end }
    assert.equal(0, wrong:take("A"))
    assert.equal(1, #logs)
    assert.truthy(logs[1]:find("AUTH failed", 1, true), logs[1])
    assert.is_nil(logs[1]:find("nope", 1, true))
  end)

  it("goes on with the local limiter when Redis is down, logs once, and comes back when it answers", function()
    rl_redis.RETRY_INTERVAL = 0.3
    local lim, logs = limiter{ rate = 5 }
    assert.equal(0, lim:take("A"))
    srv:stop()
    finally(function() srv:start() end)
    local t0 = monotonic()
    local waits = {}
    for i = 1, 8 do waits[i] = lim:take("A") end
    assert.is_true(monotonic() - t0 < 0.1, "the takes during the outage took " .. (monotonic() - t0) .. " s")
    -- the local limiter (5 per second, spaced 0.21 s) answered
    assert.equal(0, waits[1])
    for i = 2, 8 do assert.near((i - 1) * 0.21, waits[i], 0.02) end
    assert.is_true(rl_redis.is_down(lim))
    core.sleep(0.35)
    lim:take("B") -- a probe while still down: no new line
    assert.equal(1, #logs)
    assert.truthy(logs[1]:find("^warn essbasic rate limit: redis 127%.0%.0%.1:%d+/0: connect: .*; limiting locally "
      .. "%(outage = closed: this process at the full rate, the only one seen by Redis%)"), logs[1])
    srv:start()
    core.sleep(0.35)
    assert.equal(0, lim:take("C"))
    assert.is_false(rl_redis.is_down(lim))
    assert.equal(2, #logs)
    assert.truthy(logs[2]:find("^warn essbasic rate limit: Redis 127%.0%.0%.1:%d+/0 answers again"), logs[2])
    -- Redis counts again
    local w = lim:take("C")
    assert.is_true(w > 0.15 and w <= 0.202, tostring(w))
    assert.equal("1", srv:cli("EXISTS", lim.base .. "C"))
  end)

  it("hands the spacing over to the local bucket and back, so the stream stays even across an outage", function()
    rl_redis.RETRY_INTERVAL = 0.2
    local lim = limiter{ rate = 10, fleet = 2 } -- outage = closed: 5 per second locally
    assert.equal(0, lim:take("H"))
    lim:take("H")
    -- slots as points in time (monotonic), each take's wait added to when it was taken
    local function slot(w) return monotonic() + w end
    local last_redis = slot(lim:take("H")) -- booked about 0.2 s ahead
    srv:stop()
    finally(function() srv:start() end)
    local l1, l2 = slot(lim:take("H")), slot(lim:take("H"))
    assert.is_true(rl_redis.is_down(lim))
    -- the first local token comes 1/5 s after the last Redis slot, not at once
    assert.is_true(math.abs(l1 - (last_redis + 0.2)) < 0.02, "first local slot " .. (l1 - last_redis))
    assert.is_true(math.abs(l2 - (last_redis + 0.4)) < 0.02, "second local slot " .. (l2 - last_redis))
    srv:start()
    core.sleep(0.25)
    -- back on Redis: its next slot comes one interval (1/10 s) after this process's last local booking
    local r = slot(lim:take("H"))
    assert.is_false(rl_redis.is_down(lim))
    assert.is_true(math.abs(r - (l2 + 0.1)) < 0.02, "first Redis slot " .. (r - l2) .. " after the last local one")
    local r2 = slot(lim:take("H"))
    assert.is_true(math.abs(r2 - r - 0.1) < 0.02, "then 1/rate later: " .. (r2 - r))
  end)

  it("gives up on a Redis that does not answer after its timeout, and tries again later", function()
    rl_redis.RETRY_INTERVAL = 0.3
    local lim, logs = limiter{ rate = 5, redis = { url = srv.url, timeout = 0.05 } }
    assert.equal(0, lim:take("A"))
    srv:pause()
    local ok, err = pcall(function()
      local t0 = monotonic()
      assert.equal(0, lim:take("A"))
      local first = monotonic() - t0
      assert.is_true(first >= 0.04 and first < 0.3, "the first take during the hang took " .. first .. " s")
      t0 = monotonic()
      for _ = 1, 3 do lim:take("A") end
      assert.is_true(monotonic() - t0 < 0.02, "takes after the first waited for Redis again")
      assert.equal(1, #logs)
      assert.truthy(logs[1]:find("timeout", 1, true), logs[1])
    end)
    srv:resume()
    assert(ok, err)
    core.sleep(0.35)
    lim:take("B")
    assert.is_false(rl_redis.is_down(lim))
  end)

  it("with outage = \"closed\" and a fleet of 4, each process takes rate / 4, evenly spaced, while Redis is down",
    function()
    rl_redis.RETRY_INTERVAL = 30
    local logs = {}
    local down = ratelimit.new{ redis = "redis://127.0.0.1:1/0", rate = 20, fleet = 4,
      per_action = { UploadFiles = 8 }, logger = function(_, m) logs[#logs + 1] = m end }
    -- 5 per second, starting empty (the next token as the fleet's spacing would have given it)
    local w = down:take("A")
    assert.truthy(logs[1]:find("outage = closed: this process at 1/4 of the rate, for a fleet of 4)", 1, true),
      logs[1])
    -- (spaced (1 + JITTER) / (rate / 4), as every limiter spaces)
    assert.is_true(w > 0.2 and w <= 0.2101, tostring(w))
    w = down:take("A")
    assert.is_true(w > 0.41 and w <= 0.4201, tostring(w))
    w = down:take("UploadFiles") -- 2 per second
    assert.is_true(w > 0.51 and w <= 0.5251, tostring(w))
    assert.is_nil(down:take("UploadFiles", false))
  end)

  it("with outage = \"open\", each process takes the full rate while Redis is down", function()
    rl_redis.RETRY_INTERVAL = 30
    local logs = {}
    local down = ratelimit.new{ redis = "redis://127.0.0.1:2/0", rate = 4, outage = "open",
      logger = function(_, m) logs[#logs + 1] = m end }
    local waits = { down:take("A"), down:take("A"), down:take("A") }
    assert.equal(0, waits[1])
    assert.near(0.2625, waits[2], 0.01)
    assert.near(0.525, waits[3], 0.01)
    assert.is_nil(down:take("A", false))
    assert.equal(1, #logs)
    assert.truthy(logs[1]:find("outage = open: this process at the full rate", 1, true), logs[1])
  end)

  it("counts the processes of a key in a members set, once a HEARTBEAT each", function()
    local lim = limiter{ rate = 100 }
    lim:take("A")
    lim:take("B")
    assert.equal("1", srv:cli("ZCARD", lim.members_key))
    assert.equal(1, lim.fleet_seen)
    local ttl = tonumber(srv:cli("PTTL", lim.members_key))
    assert.is_true(ttl > 29000 and ttl <= 30000, tostring(ttl))
  end)

  it("is what essbasic.new builds from rate_limit = { redis = URL }, and a call goes through it", function()
    local key = new_key()
    local sent = 0
    local transport = { request = function()
      sent = sent + 1
      return { status = 200, body = '{"Response":{"RequestId":"r"}}' }
    end }
    local client = require("essbasic").new{ secret_id = "a", secret_key = "b", transport = transport,
      rate_limit = { redis = srv.url, key = key, rate = 50, jitter = 0 } }
    assert.equal(rl_redis.Redis, getmetatable(client.limiter))
    local t0 = monotonic()
    for _ = 1, 6 do assert(client:call("DescribeFlowDetailInfo", {}, { validate = false })) end
    local took = monotonic() - t0
    assert.equal(6, sent)
    assert.is_true(took >= 0.09 and took < 0.5, took .. " s for 6 calls at 50/s")
    assert.equal("1", srv:cli("EXISTS", "essbasic:rl:" .. key .. ":DescribeFlowDetailInfo"))
  end)
end)

-- ---------------------------------------------------------------------------------------------------------------
-- Processes against the sandbox.

local LUA = os.getenv("ESSBASIC_LUA") or "lua5.4"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Starts n worker processes (spec/helpers/fleet_worker.lua) at once; returns a function that waits for them and
-- gives their results and stderr texts.
local function launch(n, cfg_of)
  local start_at = core.time() + 1.0 -- every process has started and connected by then
  local pipes, errs = {}, {}
  for i = 1, n do
    local cfg = cfg_of(i)
    cfg.start_at = start_at
    errs[i] = os.tmpname()
    pipes[i] = assert(io.popen("timeout 90 " .. LUA .. " spec/helpers/fleet_worker.lua "
      .. shell_quote(json.encode(cfg)) .. " 2>" .. errs[i]))
  end
  return function()
    local results, stderr = {}, {}
    for i = 1, n do
      local out = pipes[i]:read("*a")
      pipes[i]:close()
      local f = io.open(errs[i], "rb")
      stderr[i] = f and f:read("*a") or ""
      if f then f:close() end
      os.remove(errs[i])
      results[i] = json.decode(out) or error("worker " .. i .. " printed no result: " .. out .. stderr[i])
    end
    return results, stderr
  end
end

local function refused(sb)
  return sb:stats().refused.RequestLimitExceeded or 0
end

describe("five plain-Lua processes against the sandbox (rate_limit = 20 per app and action)", function()
  local srv, sb
  setup(function()
    srv = redis_server.start{}
    sb = sandbox.start{ rate_limit = 20 }
  end)
  teardown(function()
    if sb then sb:stop() end
    if srv then srv:close() end
  end)

  local function worker_cfg(rate_limit, calls)
    return { endpoint = sb.endpoint, secret_id = sb.secret_id, secret_key = sb.secret_key, agent = sb.agent,
      calls = calls, rate_limit = rate_limit }
  end

  local function run(rate_limit_of, n, calls)
    local before = refused(sb)
    local results = launch(n, function(i) return worker_cfg(rate_limit_of(i), calls) end)()
    local s = summary(results)
    s.refused = refused(sb) - before
    return s
  end

  it("share one limit through Redis: at most 5 refusals in 150 calls, where per-process limiters draw many",
    function()
      local key = new_key()
      local per_process = run(function() return nil end, 5, 30)
      local shared = run(function() return { redis = srv.url, key = key } end, 5, 30)
      print(string.format("\n  fleet of 5 processes x 30 calls (%s), sandbox limit 20/s:\n"
        .. "    per-process limiters: %d refusals per %d calls, %d attempts, %d calls failed, %.2f s\n"
        .. "    shared on Redis:      %d refusals per %d calls, %d attempts, %d calls failed, %.2f s "
        .. "(the limit's own pace: 7.5 s)",
        LUA, per_process.refused, per_process.calls, per_process.attempts, per_process.calls - per_process.ok,
        per_process.elapsed, shared.refused, shared.calls, shared.attempts, shared.calls - shared.ok, shared.elapsed))
      assert.equal(150, shared.ok, json.encode(shared.failed))
      assert.is_true(shared.refused <= 5, shared.refused .. " refusals with the shared limit")
      assert.is_true(per_process.refused >= 3 * math.max(shared.refused, 5),
        per_process.refused .. " refusals with per-process limiters")
      -- 150 calls at 20 per second: the first of each second goes at once, so at least 7 s, and not much more
      assert.is_true(shared.elapsed > 7 and shared.elapsed < 9.5, shared.elapsed .. " s")
    end)

  it("an outage of Redis in the middle of a run costs no call: each process limits itself, then shares again",
    function()
      local key = new_key()
      local before = refused(sb)
      local wait = launch(3, function()
        return worker_cfg({ redis = srv.url, key = key }, 40)
      end)
      local t0 = monotonic()
      core.sleep(1.0 + 1.5) -- start_at + 1.5 s of shared limiting
      srv:stop()
      local down_at = monotonic() - t0
      core.sleep(1.5)
      srv:start()
      local up_at = monotonic() - t0
      local results, stderr = wait()
      local s = summary(results)
      s.refused = refused(sb) - before
      print(string.format("\n  3 processes x 40 calls (outage = closed), Redis stopped at %.1f s and back at %.1f s: "
        .. "%d of %d calls completed, %d refusals, %d attempts, %.2f s, slowest call %.2f s", down_at - 1, up_at - 1,
        s.ok, s.calls, s.refused, s.attempts, s.elapsed, s.slowest))
      assert.equal(120, s.ok, json.encode(s.failed))
      assert.is_true(s.slowest < 3, "a call took " .. s.slowest .. " s")
      for i = 1, 3 do
        assert.truthy(stderr[i]:find("this process at 1/3 of the rate, for a fleet of 3 seen by Redis", 1, true),
          stderr[i])
        local _, downs = stderr[i]:gsub("limiting locally", "")
        local _, ups = stderr[i]:gsub("answers again after", "")
        assert.equal(1, downs, "process " .. i .. ": " .. stderr[i])
        assert.equal(1, ups, "process " .. i .. ": " .. stderr[i])
      end
      assert.equal("1", srv:cli("EXISTS", "essbasic:rl:" .. key .. ":DescribeFlowDetailInfo"))
    end)
end)
