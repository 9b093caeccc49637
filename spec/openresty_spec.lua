-- essbasic inside real nginx (LuaJIT, cosockets): the ngx transport against a test upstream, the phase guard,
-- the OpenResty example (examples/openresty/essbasic.conf and its handlers) with a slow API and the sandbox,
-- 50 concurrent calls on one worker, and the rate limit shared through a lua_shared_dict.
-- busted itself drives everything over loopback with the C core's libcurl client.
local core = require("essbasic.core")
local json = require("essbasic.json")
local nginx = require("tools.nginx")
local proxy = require("helpers.proxy")

local monotonic = core.monotonic

local function shell(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local ROOT = shell("pwd")
local EXAMPLE_DIR = ROOT .. "/examples/openresty"

local read_file = require("helpers.files").read

-- The example's http-block configuration with its listen address moved to the test's port.
local function example_conf()
  local conf, n = read_file(EXAMPLE_DIR .. "/essbasic.conf")
    :gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:%%PORT%%;")
  assert(n == 1, "examples/openresty/essbasic.conf no longer listens on 127.0.0.1:8080")
  return conf
end

local function make_cert(prefix, name)
  assert(shell(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
    .. "-subj /CN=127.0.0.1 -keyout %s/%s.key -out %s/%s.pem 2>/dev/null && echo done", prefix, name, prefix, name))
    == "done", "openssl could not make a certificate")
end

-- The upstream every test talks to. Ports: 1 plain HTTP, 2 TLS with certificate "a" (trusted by the test app),
-- 3 TLS with certificate "b" (trusted by nobody), 4 an essbasic-like API that answers after `delay` seconds.
local LOCATIONS = [=[
    location /conn {
      content_by_lua_block {
        ngx.req.read_body()
        ngx.header["X-Conn"] = ngx.var.connection
        ngx.print(require("essbasic.json").encode{
          conn = tonumber(ngx.var.connection), uri = ngx.var.request_uri, host = ngx.var.http_host,
          line = ngx.var.request,
          method = ngx.req.get_method(), body = ngx.req.get_body_data() or "",
          custom = ngx.var.http_x_custom or "", length = ngx.var.http_content_length or "",
        })
      }
    }
    location /slow {
      content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.print("late") }
    }
    location /chunked {
      content_by_lua_block {
        for i = 1, tonumber(ngx.var.arg_n) do
          ngx.print(string.rep(string.char(64 + i % 26), tonumber(ngx.var.arg_size)))
          ngx.flush(true)
        end
      }
    }
    location /closing {
      keepalive_requests 1;
      content_by_lua_block { ngx.print(ngx.var.connection) }
    }
    location /idle-close {
      keepalive_timeout 200ms;
      content_by_lua_block { ngx.print(ngx.var.connection) }
    }
    location /big {
      content_by_lua_block {
        local n = tonumber(ngx.var.arg_n)
        if ngx.var.arg_chunked then
          for _ = 1, n / 100 do ngx.print(string.rep("y", 100)) ngx.flush(true) end
        else
          ngx.header["Content-Length"] = n
          ngx.print(string.rep("x", n))
        end
      }
    }
    location /raw {
      content_by_lua_block {
        local replies = {
          ext = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
            .. "5;name=value;other\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
          eof = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the connection closes",
          interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
          http10 = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold",
          garbage = "SMTP ready\r\n\r\n",
        }
        local case = ngx.var.arg_case
        local sock = assert(ngx.req.socket(true))
        if case == "close_but_open" or case == "drop_next" then
          local header = case == "close_but_open" and "Connection: close\r\n" or ""
          sock:send("HTTP/1.1 200 OK\r\n" .. header .. "Content-Length: 2\r\n\r\nok")
          sock:settimeout(1000)
          local line = sock:receive("*l")
          if line and case == "close_but_open" then
            sock:send("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreused")
          end
          return ngx.exit(444)
        end
        sock:send(replies[case])
        ngx.exit(444)
      }
    }
]=]

local UPSTREAM_CONF = [=[
  lua_shared_dict api 1m;
  server { listen 127.0.0.1:%PORT%; keepalive_requests 10000; @LOCATIONS@ }
  server {
    listen 127.0.0.1:%PORT2% ssl; keepalive_requests 10000;
    ssl_certificate %PREFIX%/a.pem; ssl_certificate_key %PREFIX%/a.key;
    @LOCATIONS@
  }
  server {
    listen 127.0.0.1:%PORT3% ssl;
    ssl_certificate %PREFIX%/b.pem; ssl_certificate_key %PREFIX%/b.key;
    @LOCATIONS@
  }
  server {
    listen 127.0.0.1:%PORT4%;
    keepalive_requests 10000;
    location = /stats {
      content_by_lua_block {
        local d = ngx.shared.api
        ngx.print(require("essbasic.json").encode{ requests = d:get("requests") or 0, conns = d:get("conns") or 0 })
      }
    }
    location = /delay {
      content_by_lua_block { ngx.shared.api:set("delay", tonumber(ngx.var.arg_s)) ngx.print("ok") }
    }
    location / {
      content_by_lua_block {
        local json = require("essbasic.json")
        local d = ngx.shared.api
        ngx.req.read_body()
        local req = json.decode(ngx.req.get_body_data() or "") or {}
        local n = d:incr("requests", 1, 0)
        if d:add("conn:" .. ngx.var.connection, true) then d:incr("conns", 1, 0) end
        ngx.sleep(d:get("delay") or 0.2)
        local ids = {}
        for i = 1, #(req.FlowFileInfos or {}) do ids[i] = tostring(req.FlowGroupName) .. "-flow" .. i end
        ngx.header["Content-Type"] = "application/json"
        ngx.print(json.encode{ Response = { FlowGroupId = "group-" .. tostring(req.FlowGroupName),
          FlowIds = json.array(ids), RequestId = "req-" .. n,
          Action = ngx.var.http_x_tc_action } })
      }
    }
  }
]=]

-- A limiter made per request (its state is in the shared dict): takes a token, waits if told to, and says when
-- it went out and from which worker.
local TAKE_LOCATION = [=[
    location = /take {
      content_by_lua_block {
        local json = require("essbasic.json")
        local ratelimit = require("essbasic.ratelimit")
        local lim = ratelimit.new{ rate = tonumber(ngx.var.arg_rate), wait = ngx.var.arg_wait == "1",
          key = ngx.var.arg_key }
        local w = lim:take("ChannelCreateFlowGroupByFiles")
        -- The slot the limiter booked (now + wait), not the wake-up time: a timer that fires a few ms late on a
        -- loaded machine would move a call booked at x.95 s into the next second, which says nothing about
        -- the limiter's count.
        ngx.update_time()
        local booked = ngx.now() + (w or 0)
        if w and w > 0 then ngx.sleep(w) end
        ngx.print(json.encode{ granted = w ~= nil, at = booked, pid = ngx.worker.pid(),
          shared = getmetatable(lim) == ratelimit.Shared })
      }
    }
]=]

-- The app under test: a tester (global, as nginx handlers need it) running the transport with options from
-- the request body, and the phase probes.
local APP_CONF = [=[
  lua_shared_dict essbasic_ratelimit 1m;
  lua_shared_dict probes 1m;
  lua_ssl_trusted_certificate @UPSTREAM_PREFIX@/a.pem;
  lua_ssl_verify_depth 2;

  init_by_lua_block {
    local json = require("essbasic.json")
    local transport = require("essbasic.transport.ngx")
    tester = {}
    tester.client = require("essbasic").new{ secret_id = "AKIDprobe", secret_key = "probe-secret-key",
      endpoint = "@API@", rate_limit = false, timeout = 5 }
    local GROUP = { FlowGroupName = "probe", FlowFileInfos = { {}, {} } }

    local function describe(res, err)
      if res then return { status = res.status, headers = res.headers, body = res.body, reused = res.reused } end
      return { err = { code = err.code, network = err.network, sent = err.sent, message = err.message,
        kind = err.kind, phase = err.phase } }
    end

    -- body: { opts = transport options, requests = { req, ... }, pause = seconds between them }
    function tester.run()
      ngx.req.read_body()
      local spec = json.decode(ngx.req.get_body_data())
      local t = transport.new(spec.opts)
      local out = {}
      for i, req in ipairs(spec.requests) do
        if i > 1 and spec.pause then ngx.sleep(spec.pause) end
        local started = ngx.now()
        local r = describe(t:request(req))
        ngx.update_time()
        r.seconds = ngx.now() - started
        out[i] = r
      end
      ngx.print(json.encode(json.array(out)))
    end

    function tester.probe(name)
      local resp, err = tester.client:call("ChannelCreateFlowGroupByFiles", GROUP, { validate = false })
      ngx.shared.probes:set(name, json.encode(describe(resp and { body = resp.FlowGroupId }, err)))
    end

  }

  init_worker_by_lua_block {
    tester.probe("init_worker")
    ngx.timer.at(0, function() tester.probe("timer") end)
  }

  server {
    listen 127.0.0.1:%PORT%;
    location = /run { content_by_lua_block { tester.run() } }
    @TAKE@
    location = /probe { content_by_lua_block { ngx.print(ngx.shared.probes:get(ngx.var.arg_name) or "") } }
    location = /logged {
      content_by_lua_block { ngx.print("ok") }
      log_by_lua_block { tester.probe("log") }
    }
    location = /filtered {
      content_by_lua_block { ngx.print("ok") }
      header_filter_by_lua_block { tester.probe("header_filter") }
    }
  }
]=]

local function group_params(name, n)
  local doc = json.decode(read_file(ROOT .. "/spec/data/ChannelCreateFlowGroupByFiles.request.json"))
  doc.Agent = nil
  doc.FlowGroupName = name
  local infos = {}
  for i = 1, n or 2 do infos[i] = doc.FlowFileInfos[(i - 1) % #doc.FlowFileInfos + 1] end
  doc.FlowFileInfos = infos
  return doc
end

local function example_main(endpoint, extra)
  local lines = {
    "env TENCENTCLOUD_SECRET_ID=AKIDexampleOpenResty;",
    "env TENCENTCLOUD_SECRET_KEY=exampleSecretKeyForOpenResty;",
    "env ESSBASIC_ENDPOINT=" .. endpoint .. ";",
    "env ESSBASIC_APP_ID=app0001;",
    "env ESSBASIC_ORG_OPEN_ID=org0001;",
    "env ESSBASIC_OPERATOR_OPEN_ID=operator0001;",
  }
  for _, l in ipairs(extra or {}) do lines[#lines + 1] = l end
  return table.concat(lines, "\n")
end

-- The most granted calls in any one-second window [t, t + 1) that starts at a call (sliding, not aligned).
local function most_in_any_second(results)
  local at = {}
  for _, r in ipairs(results) do if r.granted then at[#at + 1] = r.at end end
  table.sort(at)
  local most, j = 0, 1
  for i = 1, #at do
    while at[j] < at[i] - 1 + 1e-9 do j = j + 1 end
    if i - j + 1 > most then most = i - j + 1 end
  end
  return most
end

-- Granted calls counted per wall-clock second; and how many seconds saw any.
local function per_window(results)
  local counts, windows = {}, 0
  for _, r in ipairs(results) do
    if r.granted then
      local w = math.floor(r.at)
      if not counts[w] then windows = windows + 1 end
      counts[w] = (counts[w] or 0) + 1
    end
  end
  return counts, windows
end

describe("essbasic in nginx", function()
  local upstream, app, http
  local up, tls_a, tls_b, api

  local function get(url)
    local status, headers, body = http:request("GET", url, {}, "")
    assert(status, headers)
    return status, body, headers
  end

  local function post(url, body)
    local status, headers, resp = http:request("POST", url, { ["Content-Type"] = "application/json" }, body)
    assert(status, headers)
    return status, resp
  end

  -- Runs requests through the ngx transport inside the app; returns the decoded results.
  local function run(requests, opts, pause)
    local status, body = post("http://127.0.0.1:" .. app.port .. "/run",
      json.encode{ requests = json.array(requests), opts = opts or {}, pause = pause })
    if status ~= 200 then error("the test app failed:\n" .. app:error_log():sub(-3000)) end
    return json.decode(body)
  end

  local function api_stats()
    return json.decode((select(2, get(api .. "stats"))))
  end

  setup(function()
    http = core.http_session{ timeout = 20 }
    upstream = nginx.start{
      ports = 4,
      http = UPSTREAM_CONF:gsub("@LOCATIONS@", function() return LOCATIONS end),
      setup = function(prefix)
        make_cert(prefix, "a")
        make_cert(prefix, "b")
      end,
    }
    local p = upstream.ports
    up = "http://127.0.0.1:" .. p[1]
    tls_a = "https://127.0.0.1:" .. p[2]
    tls_b = "https://127.0.0.1:" .. p[3]
    api = "http://127.0.0.1:" .. p[4] .. "/"
    app = nginx.start{ http = APP_CONF:gsub("@UPSTREAM_PREFIX@", function() return upstream.prefix end)
      :gsub("@API@", function() return api end):gsub("@TAKE@", function() return TAKE_LOCATION end) }
  end)

  teardown(function()
    if http then http:close() end
    if app then app:stop() end
    if upstream then upstream:stop() end
  end)

  describe("the ngx transport", function()
    it("sends method, headers and body with Content-Length and the URL's Host, and reads the answer", function()
      local body = "{\"a\":1}\0binary\r\n"
      local r = run({ { method = "POST", url = up .. "/conn?x=1", body = body,
        headers = { ["X-Custom"] = "value 1", ["Content-Length"] = "999" } } })[1]
      assert.is_nil(r.err)
      assert.equal(200, r.status)
      local seen = json.decode(r.body)
      assert.equal("POST", seen.method)
      assert.equal(body, seen.body)
      assert.equal(tostring(#body), seen.length)
      assert.equal("value 1", seen.custom)
      assert.equal("/conn?x=1", seen.uri)
      assert.equal("127.0.0.1:" .. upstream.ports[1], seen.host)
      assert.equal(tostring(seen.conn), r.headers["x-conn"])
    end)

    it("takes the Host header from the request headers when given (the signed one)", function()
      local r = run({ { method = "GET", url = up .. "/conn", headers = { Host = "essbasic.example" } } })[1]
      assert.equal("essbasic.example", json.decode(r.body).host)
    end)

    it("keeps the connection alive between requests and between handler runs", function()
      local rs = run({ { url = up .. "/conn" }, { url = up .. "/conn" }, { url = up .. "/conn" } })
      local conn = json.decode(rs[1].body).conn
      for i = 2, 3 do
        assert.equal(conn, json.decode(rs[i].body).conn)
        assert.is_true(rs[i].reused > rs[i - 1].reused)
      end
      local again = run({ { url = up .. "/conn" } })[1]
      assert.equal(conn, json.decode(again.body).conn)
    end)

    it("honours Connection: close, even from a server that leaves the connection open", function()
      -- The server answers "Connection: close" and then waits: a request sent on that connection again would
      -- be answered "reused".
      local rs = run({ { url = up .. "/raw?case=close_but_open" }, { url = up .. "/raw?case=close_but_open" } },
        { pool = "close_but_open" })
      assert.equal("ok", rs[1].body)
      assert.equal("ok", rs[2].body, "a request went out on a connection the server had said it would close")
    end)

    it("sends a repeatable request again on a new connection when a pooled one dies before answering", function()
      -- The server answers once, keeps the connection, reads the next request and hangs up without a word:
      -- what a server closing an idle connection looks like when the close crosses our request, and also what a
      -- lost answer looks like.
      local rs = run({ { url = up .. "/raw?case=drop_next", repeatable = true },
        { url = up .. "/raw?case=drop_next", repeatable = true } }, { pool = "drop_next" })
      assert.equal("ok", rs[2].body, rs[2].err and rs[2].err.message)
      assert.equal(0, rs[2].reused)
      local strict = run({ { url = up .. "/raw?case=drop_next", repeatable = true },
        { url = up .. "/raw?case=drop_next", repeatable = true } }, { retry_stale = false, pool = "drop_next_strict" })
      assert.equal("ok", strict[1].body)
      assert.equal("ClientError.NetworkError", strict[2].err.code)
      assert.is_true(strict[2].err.sent)
    end)

    it("never sends a request that is not repeatable twice, even when a pooled connection dies unanswered", function()
      local rs = run({ { url = up .. "/raw?case=drop_next" }, { method = "POST", url = up .. "/raw?case=drop_next",
        body = "{}" } }, { pool = "drop_next_once" })
      assert.equal("ok", rs[1].body)
      assert.is_nil(rs[2].status)
      assert.equal("ClientError.NetworkError", rs[2].err.code)
      assert.equal("closed", rs[2].err.network)
      assert.is_true(rs[2].err.sent)
    end)

    it("does not use a pooled connection the server closed while idle", function()
      -- the server's keepalive_timeout for this location is 200 ms; the second request waits 0.6 s
      local rs = run({ { url = up .. "/idle-close" }, { url = up .. "/idle-close" } }, nil, 0.6)
      assert.equal(200, rs[2].status, rs[2].err and rs[2].err.message)
      assert.are_not.equal(rs[1].body, rs[2].body)
    end)

    it("reads chunked bodies, with chunk extensions and trailers", function()
      local r = run({ { url = up .. "/chunked?n=40&size=1000" } })[1]
      assert.equal("chunked", r.headers["transfer-encoding"])
      local want = {}
      for i = 1, 40 do want[i] = string.rep(string.char(64 + i % 26), 1000) end
      assert.equal(table.concat(want), r.body)
      local raw = run({ { url = up .. "/raw?case=ext" } }, { pool = "ext" })[1]
      assert.equal("hello world", raw.body)
      assert.equal("1, 2", raw.headers["x-a"])
      assert.is_nil(raw.headers["x-trailer"])
    end)

    it("reads a body that ends with the connection, skips 1xx answers, speaks to HTTP/1.0", function()
      local rs = run({ { url = up .. "/raw?case=eof" }, { url = up .. "/raw?case=interim" },
        { url = up .. "/raw?case=http10", repeatable = true } }, { pool = "raw" })
      assert.equal("until the connection closes", rs[1].body, rs[1].err and rs[1].err.message)
      assert.equal(201, rs[2].status)
      assert.equal("ok", rs[2].body)
      assert.equal("old", rs[3].body)
    end)

    it("caps the response size, with and without Content-Length", function()
      local rs = run({ { url = up .. "/big?n=5000" }, { url = up .. "/big?n=5000&chunked=1" },
        { url = up .. "/big?n=1000" } }, { max_response_bytes = 1000 })
      for i = 1, 2 do
        assert.equal("ClientError.ResponseTooLarge", rs[i].err.code)
        assert.equal("too_large", rs[i].err.network)
      end
      assert.equal(1000, #rs[3].body)
    end)

    it("times out a slow answer as a network timeout, and the worker keeps serving meanwhile", function()
      local m = core.http_multi{ timeout = 10 }
      local slow = json.encode{ requests = json.array{ { url = up .. "/slow?s=3", timeout = 0.5 } } }
      local started = monotonic()
      m:add("slow", "POST", "http://127.0.0.1:" .. app.port .. "/run", {}, slow)
      m:add("quick", "POST", "http://127.0.0.1:" .. app.port .. "/run", {},
        json.encode{ requests = json.array{ { url = up .. "/conn" } } })
      local done, order = {}, {}
      while m:pending() > 0 and monotonic() - started < 10 do
        for _, r in ipairs(m:poll(1)) do
          done[r.id] = { r = r, at = monotonic() - started }
          order[#order + 1] = r.id
        end
      end
      m:close()
      assert.same({ "quick", "slow" }, order)
      assert.is_true(done.quick.at < 0.4, "the quick request waited " .. done.quick.at)
      local err = json.decode(done.slow.r.body)[1].err
      assert.equal("ClientError.NetworkError", err.code)
      assert.equal("timeout", err.network)
      assert.is_true(err.sent)
      -- nginx arms its timers from its cached clock, which can lag real time by a few ms, so a 0.5 s timeout
      -- has been seen to end after 0.4992 s of this process's clock
      assert.is_true(done.slow.at >= 0.45 and done.slow.at < 1.5, "timed out after " .. done.slow.at)
    end)

    it("tells refused connections (not sent) from garbage answers", function()
      local rs = run({ { url = "http://127.0.0.1:1/" }, { url = up .. "/raw?case=garbage" },
        { url = "ftp://127.0.0.1/" } })
      assert.equal("connect", rs[1].err.network)
      assert.is_false(rs[1].err.sent)
      assert.equal("ClientError.NetworkError", rs[2].err.code)
      assert.equal("other", rs[2].err.network)
      assert.is_true(rs[2].err.sent)
      assert.is_false(rs[3].err.sent)
    end)

    it("refuses CR or LF in header values before sending", function()
      local r = run({ { url = up .. "/conn", headers = { ["X-Custom"] = "a\r\nX-Injected: 1" } } })[1]
      assert.equal("ClientError.InvalidHeaderValue", r.err.code)
      assert.is_false(r.err.sent)
    end)

    it("verifies TLS certificates by default, and reuses the TLS connection", function()
      local rs = run({ { url = tls_a .. "/conn" }, { url = tls_a .. "/conn" } })
      assert.equal(200, rs[1].status)
      assert.equal(json.decode(rs[1].body).conn, json.decode(rs[2].body).conn)
      assert.equal(1, rs[2].reused)
      local bad = run({ { url = tls_b .. "/conn" } })[1]
      assert.equal("tls", bad.err.network)
      assert.is_false(bad.err.sent)
      local unchecked = run({ { url = tls_b .. "/conn" } }, { ssl_verify = false })[1]
      assert.equal(200, unchecked.status)
    end)

    it("sends http:// requests through an HTTP proxy with the absolute URL", function()
      local r = run({ { url = "http://essbasic.invalid:8080/conn?q=1" } }, { proxy = up })[1]
      assert.equal(200, r.status, r.err and r.err.message)
      local seen = json.decode(r.body)
      assert.equal("GET http://essbasic.invalid:8080/conn?q=1 HTTP/1.1", seen.line)
      assert.equal("essbasic.invalid:8080", seen.host)
    end)

    it("tunnels https:// through a real proxy's CONNECT, checks the API host's certificate, reuses the tunnel",
      function()
        proxy.with({ {} }, function(px)
          local tls_authority = tls_a:match("^https://(.*)$")
          local rs = run({ { url = tls_a .. "/conn" }, { url = tls_a .. "/conn" } }, { proxy = px.url })
          assert.equal(200, rs[1].status, rs[1].err and rs[1].err.message)
          local seen = json.decode(rs[1].body)
          -- inside the tunnel the API host sees an ordinary request: origin form, its own Host
          assert.equal("GET /conn HTTP/1.1", seen.line)
          assert.equal(tls_authority, seen.host)
          assert.equal(seen.conn, json.decode(rs[2].body).conn)
          assert.equal(1, rs[2].reused)
          assert.same({ "CONNECT " .. tls_authority .. " HTTP/1.1" }, px:requests())
          -- the certificate checked is the API host's: b's is trusted by nobody
          local bad = run({ { url = tls_b .. "/conn" } }, { proxy = px.url })[1]
          assert.equal("tls", bad.err.network)
          assert.is_false(bad.err.sent)
          -- a tunnel the proxy cannot open (nothing listens there): a connect failure, nothing sent
          local dead = run({ { url = "https://127.0.0.1:1/" } }, { proxy = px.url })[1]
          assert.equal("connect", dead.err.network)
          assert.is_false(dead.err.sent)
          assert.truthy(dead.err.message:find("HTTP 500 to CONNECT 127.0.0.1:1", 1, true), dead.err.message)
        end)
      end)

    it("authenticates to a proxy that asks (Basic, from the URL), and never quotes the password", function()
      proxy.with({ { basic_auth = "essbasic pa-ss.w0rd" } }, function(px)
        local with = px.url:gsub("^http://", "http://essbasic:pa%%2Dss.w0rd@")
        local rs = run({ { url = tls_a .. "/conn" }, { url = up .. "/conn" } }, { proxy = with })
        assert.equal(200, rs[1].status, rs[1].err and rs[1].err.message)
        assert.equal(200, rs[2].status, rs[2].err and rs[2].err.message)
        assert.equal("GET " .. up .. "/conn HTTP/1.1", px:requests()[2])
        for _, opts in ipairs({ { proxy = px.url }, { proxy = px.url:gsub("^http://", "http://essbasic:wrong@") } }) do
          local r = run({ { url = tls_a .. "/conn", method = "POST", body = "secret payload" } }, opts)[1]
          assert.equal("connect", r.err.network)
          assert.is_false(r.err.sent)
          -- tinyproxy answers 407 without credentials and 401 to wrong ones
          assert.truthy(r.err.message:find("HTTP 40[17] to CONNECT"), r.err.message)
          assert.is_nil(r.err.message:find("wrong", 1, true))
          assert.is_nil(r.err.message:find("essbasic:", 1, true))
        end
      end)
    end)
  end)

  describe("phases", function()
    local function probe(name)
      local deadline = monotonic() + 5
      while monotonic() < deadline do
        local _, body = get("http://127.0.0.1:" .. app.port .. "/probe?name=" .. name)
        if body ~= "" then return json.decode(body) end
        core.sleep(0.02)
      end
      error("no probe result for " .. name)
    end

    it("refuses calls from init_worker, log and header_filter with a clear error", function()
      get("http://127.0.0.1:" .. app.port .. "/logged")
      get("http://127.0.0.1:" .. app.port .. "/filtered")
      for _, phase in ipairs({ "init_worker", "log", "header_filter" }) do
        local err = probe(phase).err
        assert.equal("ClientError.BlockingCallNotAllowed", err.code)
        assert.equal(phase, err.phase)
        assert.truthy(err.message:find("'" .. phase .. "'", 1, true))
        assert.truthy(err.message:find("ngx.timer.at", 1, true))
      end
      assert.is_nil(app:error_log():find("probe-secret-key", 1, true))
    end)

    it("works from a timer started in init_worker", function()
      assert.equal("group-probe", probe("timer").body)
    end)
  end)

  describe("the OpenResty example", function()
    local example

    setup(function()
      example = nginx.start{
        http = example_conf(),
        main = example_main(api:sub(1, -2), { "env ESSBASIC_RATE_LIMIT=1000;" }),
        lua_path = EXAMPLE_DIR .. "/?.lua",
      }
    end)

    teardown(function()
      if example then example:stop() end
    end)

    local function create(name, n)
      return post("http://127.0.0.1:" .. example.port .. "/flow-groups", json.encode(group_params(name, n)))
    end

    it("creates a flow group and answers its ids; calls go over kept-alive connections", function()
      local before = api_stats()
      for i = 1, 10 do
        local status, body = create("seq" .. i, 3)
        assert.equal(200, status, body)
        local got = json.decode(body)
        assert.equal("group-seq" .. i, got.FlowGroupId)
        assert.same({ "seq" .. i .. "-flow1", "seq" .. i .. "-flow2", "seq" .. i .. "-flow3" }, got.FlowIds)
      end
      local after = api_stats()
      assert.equal(10, after.requests - before.requests)
      assert.equal(1, after.conns - before.conns)
    end)

    it("answers validation problems as 400 without calling the API", function()
      local before = api_stats()
      local status, body = create("bad", 1) -- a group needs at least 2 contracts
      assert.equal(400, status)
      assert.truthy(json.decode(body).error)
      assert.equal(before.requests, api_stats().requests)
    end)

    it("serves 50 concurrent calls to a 200 ms API on one worker in well under a second", function()
      assert.equal(200, (create("warm-up", 2)))
      local m = core.http_multi{ timeout = 15 }
      local started = monotonic()
      for i = 1, 50 do
        m:add(i, "POST", "http://127.0.0.1:" .. example.port .. "/flow-groups",
          { ["Content-Type"] = "application/json" }, json.encode(group_params("c" .. i, 2)))
      end
      local results = {}
      while m:pending() > 0 and monotonic() - started < 15 do
        for _, r in ipairs(m:poll(1)) do results[r.id] = r end
      end
      local elapsed = monotonic() - started
      m:close()
      print(string.format("\n  openresty: 50 concurrent calls to a 200 ms API on one worker: %.3f s", elapsed))
      for i = 1, 50 do
        assert.equal(200, results[i].status, results[i].body or results[i].err_message)
        assert.equal("group-c" .. i, json.decode(results[i].body).FlowGroupId)
      end
      assert.is_true(elapsed < 1.0, "50 calls took " .. elapsed .. " s")
    end)
  end)

  -- The limiter's answers for n concurrent /take requests to srv.
  local function fire(srv, n, query)
    local m = core.http_multi{ timeout = 15 }
    for i = 1, n do m:add(i, "GET", "http://127.0.0.1:" .. srv.port .. "/take?" .. query, {}) end
    local out = {}
    local started = monotonic()
    while m:pending() > 0 and monotonic() - started < 15 do
      for _, r in ipairs(m:poll(1)) do out[#out + 1] = json.decode(r.body) end
    end
    m:close()
    assert.equal(n, #out)
    return out
  end

  describe("the OpenResty example against the offline sandbox", function()
    local sb, example

    setup(function()
      sb = require("helpers.sandbox").start{}
      local a = sb.agent
      example = nginx.start{
        http = example_conf(),
        lua_path = EXAMPLE_DIR .. "/?.lua",
        main = table.concat({
          'env "TENCENTCLOUD_SECRET_ID=' .. sb.secret_id .. '";',
          'env "TENCENTCLOUD_SECRET_KEY=' .. sb.secret_key .. '";',
          'env "ESSBASIC_ENDPOINT=' .. sb.endpoint .. '";',
          'env "ESSBASIC_FILE_ENDPOINT=' .. sb.endpoint .. '";',
          'env "ESSBASIC_APP_ID=' .. a.AppId .. '";',
          'env "ESSBASIC_ORG_OPEN_ID=' .. a.ProxyOrganizationOpenId .. '";',
          'env "ESSBASIC_OPERATOR_OPEN_ID=' .. a.ProxyOperator.OpenId .. '";',
        }, "\n"),
      }
    end)

    teardown(function()
      if example then example:stop() end
      if sb then sb:stop() end
    end)

    it("creates a flow group (signed, checked and stored by the sandbox) and answers its ids", function()
      local client = sb:client()
      local files = { sb:upload(client), sb:upload(client) }
      local request = sb:group_request(files)
      request.Agent = nil -- the example adds its configured Agent
      request.FlowGroupName = "OpenResty onboarding"
      local before = sb:stats().counters.groups_created or 0
      local status, body = post("http://127.0.0.1:" .. example.port .. "/flow-groups", json.encode(request))
      assert.equal(200, status, body)
      local got = json.decode(body)
      assert.is_string(got.FlowGroupId)
      assert.equal(2, #got.FlowIds)
      assert.is_string(got.RequestId)
      assert.equal(before + 1, sb:stats().counters.groups_created)
      client:close()
    end)
  end)

  describe("the rate limit shared through lua_shared_dict", function()
    it("lets one caller through per slot and refuses the rest when asked not to wait", function()
      local results = fire(app, 30, "rate=5&wait=0&key=fast")
      local granted = 0
      for _, r in ipairs(results) do
        assert.is_true(r.shared)
        if r.granted then granted = granted + 1 end
      end
      assert.is_true(most_in_any_second(results) <= 5)
      assert.is_true(granted >= 1 and granted <= 5, granted .. " granted")
    end)

    it("spaces waiting callers (1 + JITTER) / rate apart: no one-second window, aligned or not, over the rate",
      function()
        local results = fire(app, 15, "rate=5&wait=1&key=waiting")
        local counts, windows = per_window(results)
        for w, n in pairs(counts) do assert.is_true(n <= 5, n .. " calls in second " .. w) end
        assert.is_true(windows >= 3, "only " .. windows .. " seconds used")
        assert.is_true(most_in_any_second(results) <= 5, most_in_any_second(results) .. " in one sliding second")
        local at = {}
        for _, r in ipairs(results) do at[#at + 1] = r.at end
        table.sort(at)
        for i = 2, #at do assert.is_true(at[i] - at[i - 1] >= 0.21 - 0.002, "spaced " .. (at[i] - at[i - 1])) end
      end)
  end)

  -- Two worker processes: the count must hold for both together. Needs the nginx helper's `workers` option.
  local helper_has_workers = read_file(ROOT .. "/tools/nginx.lua"):find("opts.workers", 1, true)
  local two_workers = helper_has_workers and it or pending
  two_workers("the rate limit holds for 2 workers together (needs tools/nginx.lua opts.workers)", function()
    local srv = nginx.start{
      workers = 2,
      http = "lua_shared_dict essbasic_ratelimit 1m;\n"
        .. "server { listen 127.0.0.1:%PORT% reuseport; keepalive_requests 1;" .. TAKE_LOCATION .. "}",
    }
    local ok, err = pcall(function()
      assert.truthy(read_file(srv.prefix .. "/nginx.conf"):find("worker_processes 2;", 1, true))
      local results = fire(srv, 30, "rate=10&wait=1&key=two")
      local pids, n = {}, 0
      for _, r in ipairs(results) do
        if not pids[r.pid] then n = n + 1 end
        pids[r.pid] = true
      end
      assert.equal(2, n)
      local counts, windows = per_window(results)
      for w, c in pairs(counts) do assert.is_true(c <= 10, c .. " calls in second " .. w) end
      assert.is_true(windows >= 3, "only " .. windows .. " seconds used")
      assert.is_true(most_in_any_second(results) <= 10)
    end)
    srv:stop()
    assert(ok, err)
  end)
end)
