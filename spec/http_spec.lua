-- essbasic.core HTTP (libcurl sessions and multis) against real nginx servers on loopback.
local core = require("essbasic.core")
local nginx = require("tools.nginx")
local proxy = require("helpers.proxy")

local http_session, http_multi, monotonic = core.http_session, core.http_multi, core.monotonic

-- A port nobody listens on: privileged and unused on loopback.
local REFUSED_URL = "http://127.0.0.1:1/"

local HTTP_CONF = [=[
  lua_check_client_abort on;  # handlers whose client hung up end at once, so stop() never waits for them
  server {
    listen 127.0.0.1:%PORT%;
    client_max_body_size 8m;
    client_body_buffer_size 8m;
    keepalive_requests 1000;

    location /echo {
      content_by_lua_block {
        ngx.req.read_body()
        local body = ngx.req.get_body_data()
        if not body then
          local path = ngx.req.get_body_file()
          if path then
            local f = io.open(path, "rb")
            body = f:read("*a")
            f:close()
          end
        end
        body = body or ""
        ngx.header["X-Method"] = ngx.req.get_method()
        ngx.header["X-Body-Length"] = #body
        ngx.header["X-Conn"] = ngx.var.connection
        ngx.header["X-Expect"] = ngx.var.http_expect or "none"
        ngx.header["X-Custom"] = ngx.var.http_x_custom or "none"
        ngx.header["X-Empty-Seen"] = ngx.var.http_x_empty and ("[" .. ngx.var.http_x_empty .. "]") or "absent"
        ngx.header["X-Accept-Encoding"] = ngx.var.http_accept_encoding or "none"
        ngx.print(body)
      }
    }
    location /headers {
      content_by_lua_block {
        ngx.header["X-One"] = "1"
        ngx.header["X-Dup"] = { "a", "b" }
        ngx.header["X-Spaced"] = "  padded value"
        ngx.print("ok")
      }
    }
    location /fail {
      content_by_lua_block {
        ngx.status = 500
        ngx.header["X-Reason"] = "on purpose"
        ngx.print("boom")
      }
    }
    location /redirect {
      return 302 /echo;
    }
    location /sleep {
      content_by_lua_block {
        ngx.sleep(tonumber(ngx.var.arg_s))
        ngx.header["X-Conn"] = ngx.var.connection
        ngx.print(ngx.var.arg_id or "")
      }
    }
    location /big {
      content_by_lua_block {
        local n = tonumber(ngx.var.arg_n)
        if ngx.var.arg_chunked then
          -- no Content-Length: only the write callback can notice the size
          for _ = 1, n / 100 do
            ngx.print(string.rep("y", 100))
            ngx.flush(true)
          end
        else
          ngx.header["Content-Length"] = n
          ngx.print(string.rep("x", n))
        end
      }
    }
  }
]=]

local TLS_CONF = [=[
  server {
    listen 127.0.0.1:%PORT% ssl;
    ssl_certificate %PREFIX%/cert.pem;
    ssl_certificate_key %PREFIX%/key.pem;
    location / { content_by_lua_block { ngx.print("tls ok") } }
  }
  server {
    # the handshake stalls: the server holds its certificate back
    listen 127.0.0.1:%PORT2% ssl;
    ssl_certificate %PREFIX%/cert.pem;
    ssl_certificate_key %PREFIX%/key.pem;
    ssl_certificate_by_lua_block { ngx.sleep(1) }
    location / { return 200; }
  }
]=]

local function make_cert(prefix)
  local cmd = string.format(
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1"
      .. " -addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem 2>/dev/null", prefix, prefix)
  local ok = os.execute(cmd)
  assert(ok == true or ok == 0, "openssl could not make a certificate")
end

-- 1 MiB in which every byte value occurs, NUL and CR/LF included.
local function binary_body(size)
  local bytes = {}
  for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
  local block = table.concat(bytes)
  return string.rep(block, math.ceil(size / #block)):sub(1, size)
end

describe("essbasic.core http", function()
  local srv, base

  setup(function()
    srv = nginx.start({ http = HTTP_CONF })
    base = "http://127.0.0.1:" .. srv.port
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  describe("session", function()
    local s
    before_each(function() s = http_session({ timeout = 5 }) end)
    after_each(function() s:close() end)

    it("round-trips a GET", function()
      local status, headers, body = s:request("GET", base .. "/echo", { ["X-Custom"] = "hello" }, "")
      assert.are.equal(200, status)
      assert.are.equal("GET", headers["x-method"])
      assert.are.equal("0", headers["x-body-length"])
      assert.are.equal("hello", headers["x-custom"])
      assert.are.equal("", body)
    end)

    it("POSTs a 1 MiB body with NUL bytes and gets the same bytes back", function()
      local payload = binary_body(1024 * 1024)
      assert.is_truthy(payload:find("\0", 1, true))
      local octets = { ["Content-Type"] = "application/octet-stream" }
      local status, headers, body = s:request("POST", base .. "/echo", octets, payload)
      assert.are.equal(200, status)
      assert.are.equal("POST", headers["x-method"])
      assert.are.equal(tostring(#payload), headers["x-body-length"])
      assert.are.equal(#payload, #body)
      assert.is_true(body == payload)
      assert.are.equal(core.sha256_hex(payload), core.sha256_hex(body))
    end)

    it("sends custom headers, including an empty value, and no Accept-Encoding", function()
      local status, headers = s:request("GET", base .. "/echo", { ["X-Custom"] = "v1", ["X-Empty"] = "" })
      assert.are.equal(200, status)
      assert.are.equal("v1", headers["x-custom"])
      assert.are.equal("[]", headers["x-empty-seen"])
      assert.are.equal("none", headers["x-accept-encoding"])
    end)

    it("refuses CR, LF and NUL in header names and values, and bad methods or bodies", function()
      local url = base .. "/echo"
      assert.has_error(function() s:request("GET", url, { ["X-A"] = "v\r\nX-Injected: 1" }) end)
      assert.has_error(function() s:request("GET", url, { ["X-A"] = "v\nw" }) end)
      assert.has_error(function() s:request("GET", url, { ["X-A"] = "v\0w" }) end)
      assert.has_error(function() s:request("GET", url, { ["X-A\r\nB"] = "v" }) end)
      assert.has_error(function() s:request("GET", url, { ["X-A:"] = "v" }) end)
      assert.has_error(function() s:request("GET", url, { [1] = "v" }) end)
      assert.has_error(function() s:request("GET", url, { ["X-A"] = {} }) end)
      assert.has_error(function() s:request("PUT", url, {}, "") end)
      assert.has_error(function() s:request("GET", url, {}, "a body") end)
      assert.has_error(function() s:request("GET", url, "not a table") end)
      assert.has_error(function() s:request("GET", url, {}, "", { timeout = -1 }) end)
      -- the error message never carries the value, which may be a secret
      local ok, err = pcall(s.request, s, "GET", url, { ["X-Token"] = "s3cret\r\n" })
      assert.is_false(ok)
      assert.is_nil(tostring(err):find("s3cret", 1, true))
      assert.is_truthy(tostring(err):find("X-Token", 1, true))
      -- and the session still works after the refused calls
      assert.are.equal(200, (s:request("GET", url, {})))
    end)

    it("returns response headers as a map with lowercase names", function()
      local status, headers, body = s:request("GET", base .. "/headers", nil)
      assert.are.equal(200, status)
      assert.are.equal("ok", body)
      assert.are.equal("1", headers["x-one"])
      assert.are.equal("a, b", headers["x-dup"])
      assert.are.equal("padded value", headers["x-spaced"])
      assert.are.equal("nginx", headers["server"]:match("^nginx"))
      assert.is_nil(headers["X-One"])
    end)

    it("returns an HTTP 500 as a status, with its headers and body", function()
      local status, headers, body = s:request("GET", base .. "/fail", {})
      assert.are.equal(500, status)
      assert.are.equal("on purpose", headers["x-reason"])
      assert.are.equal("boom", body)
    end)

    it("does not follow redirects", function()
      local status, headers = s:request("GET", base .. "/redirect", {})
      assert.are.equal(302, status)
      assert.is_truthy(headers["location"]:find("/echo", 1, true))
    end)

    it("reports a refused connection as connect, not sent", function()
      local status, kind, message, sent = s:request("POST", REFUSED_URL, {}, "x")
      assert.is_nil(status)
      assert.are.equal("connect", kind)
      assert.are.equal("string", type(message))
      assert.is_true(#message > 0)
      assert.is_false(sent)
    end)

    it("reports an unresolvable name as dns, not sent", function()
      local t0 = monotonic()
      local status, kind, message, sent = s:request("GET", "http://no-such-host.invalid/", {})
      assert.is_nil(status)
      assert.are.equal("dns", kind)
      assert.is_truthy(message:find("no-such-host.invalid", 1, true))
      assert.is_false(sent)
      assert.is_true(monotonic() - t0 < 5)
    end)

    it("refuses schemes other than http and https without sending", function()
      local status, kind, _, sent = s:request("GET", "file:///etc/passwd", {})
      assert.is_nil(status)
      assert.are.equal("other", kind)
      assert.is_false(sent)
    end)

    it("times out on a server that never answers, quickly, as sent (session timeout)", function()
      local short = http_session({ timeout = 0.3 })
      local t0 = monotonic()
      local status, kind, _, sent = short:request("POST", base .. "/sleep?s=5", {}, "payload")
      local elapsed = monotonic() - t0
      short:close()
      assert.is_nil(status)
      assert.are.equal("timeout", kind)
      assert.is_true(sent)
      assert.is_true(elapsed >= 0.25 and elapsed < 0.8, "took " .. elapsed)
    end)

    it("takes a per-call timeout over the session's", function()
      local t0 = monotonic()
      local status, kind, _, sent = s:request("GET", base .. "/sleep?s=5", {}, nil, { timeout = 0.3 })
      local elapsed = monotonic() - t0
      assert.is_nil(status)
      assert.are.equal("timeout", kind)
      assert.is_true(sent)
      assert.is_true(elapsed < 0.8, "took " .. elapsed)
      -- the next call on the same session uses the session's timeout again
      assert.are.equal(200, (s:request("GET", base .. "/sleep?s=0.5", {})))
    end)

    it("stops reading past max_response_bytes (with and without Content-Length)", function()
      local small = http_session({ max_response_bytes = 1000 })
      local status, kind, message, sent = small:request("GET", base .. "/big?n=5000", {})
      assert.is_nil(status)
      assert.are.equal("too_large", kind)
      assert.is_truthy(message:find("max_response_bytes", 1, true))
      assert.is_true(sent)
      status, kind = small:request("GET", base .. "/big?n=5000&chunked=1", {})
      assert.is_nil(status)
      assert.are.equal("too_large", kind)
      -- exactly at the limit is fine, and the session is still usable
      local _, body
      status, _, body = small:request("GET", base .. "/big?n=1000", {})
      assert.are.equal(200, status)
      assert.are.equal(1000, #body)
      status, _, body = small:request("GET", base .. "/big?n=1000&chunked=1", {})
      assert.are.equal(200, status)
      assert.are.equal(1000, #body)
      small:close()
    end)

    it("keeps one connection alive across 20 sequential requests", function()
      local conns = {}
      for i = 1, 20 do
        local status, headers = s:request(i % 2 == 0 and "POST" or "GET", base .. "/echo", {},
          i % 2 == 0 and "body" or nil)
        assert.are.equal(200, status)
        conns[headers["x-conn"]] = true
      end
      local distinct = 0
      for _ in pairs(conns) do distinct = distinct + 1 end
      assert.are.equal(1, distinct)
      local info = s:info()
      assert.are.equal(1, info.connects)
      assert.are.equal(20, info.requests)
    end)

    -- The handle keeps its session's options between requests (src/http.c, xfer_prepare): what one request brought
    -- (method, body, headers, timeout) must not carry over into the next, nor survive a failed transfer.
    it("sends each request of a session with its own method, body, headers and timeout", function()
      local function echo(method, hdrs, body, opts)
        local status, headers, got = s:request(method, base .. "/echo", hdrs, body, opts)
        assert.are.equal(200, status)
        return headers, got
      end
      local h, got = echo("POST", { ["X-Custom"] = "one" }, "first body")
      assert.are.same({ "POST", "10", "one", "first body" }, { h["x-method"], h["x-body-length"], h["x-custom"], got })
      h, got = echo("POST", {}, "second")
      assert.are.same({ "POST", "6", "second" }, { h["x-method"], h["x-body-length"], got })
      assert.are.equal("none", h["x-custom"])
      h = echo("GET", { ["X-Custom"] = "three" })
      assert.are.same({ "GET", "0", "three" }, { h["x-method"], h["x-body-length"], h["x-custom"] })
      local status, kind = s:request("GET", base .. "/sleep?s=5", {}, nil, { timeout = 0.2 })
      assert.is_nil(status)
      assert.are.equal("timeout", kind)
      h, got = echo("POST", {}, "after a failure")
      assert.are.same({ "POST", "15", "after a failure" }, { h["x-method"], h["x-body-length"], got })
      -- the per-call timeout of 0.2 s did not stay with the handle: the session's 5 s applies again
      assert.are.equal(200, (s:request("GET", base .. "/sleep?s=0.5", {})))
    end)

    it("leaves the header map out when asked (response_headers = false), and only then", function()
      local status, headers, body = s:request("POST", base .. "/echo", {}, "abc", { response_headers = false })
      assert.are.equal(200, status)
      assert.is_nil(headers)
      assert.are.equal("abc", body)
      headers = select(2, s:request("POST", base .. "/echo", {}, "abcd", { response_headers = true }))
      assert.are.equal("4", headers["x-body-length"])
      headers = select(2, s:request("POST", base .. "/echo", {}, "abcde", {}))
      assert.are.equal("5", headers["x-body-length"])
      assert.has_error(function() s:request("GET", base .. "/echo", {}, nil, { response_headers = "no" }) end)
      -- a failure answers as before
      local nothing, kind = s:request("GET", REFUSED_URL, {}, nil, { response_headers = false })
      assert.is_nil(nothing)
      assert.are.equal("connect", kind)
    end)

    it("sends each request its own header lines while the list's memory is reused", function()
      -- 40 headers (more than the first allocation of nodes), then fewer and different ones, then none
      local many = {}
      for i = 1, 40 do many["X-H" .. i] = string.rep("v", i) end
      many["X-Custom"] = "first"
      local status, headers = s:request("GET", base .. "/echo", many)
      assert.are.equal(200, status)
      assert.are.equal("first", headers["x-custom"])
      assert.are.equal("none", headers["x-expect"])
      headers = select(2, s:request("GET", base .. "/echo", { ["X-Custom"] = "second, longer than the first" }))
      assert.are.equal("second, longer than the first", headers["x-custom"])
      status, headers = s:request("GET", base .. "/echo", nil)
      assert.are.equal(200, status)
      assert.are.equal("none", headers["x-custom"])
      -- a refused header leaves the session usable for the next request
      assert.has_error(function() s:request("GET", base .. "/echo", { ["X-A"] = "ok", ["X-B"] = "v\nw" }) end)
      headers = select(2, s:request("GET", base .. "/echo", { ["X-Custom"] = "third" }))
      assert.are.equal("third", headers["x-custom"])
    end)

    it("never sends Expect: 100-continue, even for a 2 KB body", function()
      local body = string.rep("e", 2048)
      local t0 = monotonic()
      local status, headers = s:request("POST", base .. "/echo", { ["Content-Type"] = "application/json" }, body)
      assert.are.equal(200, status)
      assert.are.equal("none", headers["x-expect"])
      assert.are.equal("2048", headers["x-body-length"])
      assert.is_true(monotonic() - t0 < 0.5)
    end)
  end)

  describe("lifecycle", function()
    it("closes twice without harm and refuses use after close", function()
      local s = http_session()
      assert.are.equal(200, (s:request("GET", base .. "/echo", {})))
      s:close()
      s:close()
      local ok, err = pcall(s.request, s, "GET", base .. "/echo", {})
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("used after close", 1, true))
      assert.has_error(function() s:info() end)
      assert.are.equal("essbasic.http_session", tostring(s))

      local m = http_multi()
      m:add(1, "GET", base .. "/sleep?s=0.5", {})
      m:close() -- with a transfer in flight
      m:close()
      ok, err = pcall(m.poll, m, 0)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("used after close", 1, true))
      assert.has_error(function() m:add(2, "GET", base .. "/echo", {}) end)
      assert.has_error(function() m:pending() end)
      assert.are.equal("essbasic.http_multi", tostring(m))
      -- the classes' metatables are sealed: getmetatable gives the name, setmetatable refuses
      assert.are.equal("essbasic.http_multi", getmetatable(m))
      assert.has_error(function() setmetatable(s, {}) end)
    end)

    it("collects unclosed sessions and multis without crashing", function()
      for i = 1, 100 do
        local s = http_session({ proxy = "", ca_path = "/nonexistent" })
        if i % 10 == 0 then s:request("GET", base .. "/echo", {}) end
        local m = http_multi({ timeout = 2 })
        if i % 25 == 0 then
          m:add({ n = i }, "POST", base .. "/sleep?s=0.5", {}, "in flight")
          m:poll(0)
        end
      end
      collectgarbage()
      collectgarbage()
      local s = http_session()
      assert.are.equal(200, (s:request("GET", base .. "/echo", {})))
      s:close()
    end)

    it("rejects malformed options", function()
      assert.has_error(function() http_session({ timeout = "fast" }) end)
      assert.has_error(function() http_session({ timeout = 0 }) end)
      assert.has_error(function() http_session({ ssl_verify = "no" }) end)
      assert.has_error(function() http_session({ proxy = 5 }) end)
      assert.has_error(function() http_session({ max_response_bytes = -1 }) end)
      assert.has_error(function() http_session({ max_response_bytes = 1.5 }) end)
      assert.has_error(function() http_session("nope") end)
      assert.has_error(function() http_multi({ connect_timeout = -3 }) end)
    end)
  end)

  describe("multi", function()
    local function drain(m, seconds)
      local results, deadline = {}, monotonic() + seconds
      while m:pending() > 0 and monotonic() < deadline do
        for _, r in ipairs(m:poll(deadline - monotonic())) do results[#results + 1] = r end
      end
      return results
    end

    it("runs 20 slow requests at once, each result matched to its id", function()
      local m = http_multi({ timeout = 5 })
      local t0 = monotonic()
      for i = 1, 20 do
        m:add("req" .. i, i % 2 == 0 and "POST" or "GET", base .. "/sleep?s=0.2&id=req" .. i, {},
          i % 2 == 0 and "b" or nil)
      end
      assert.are.equal(20, m:pending())
      local results = drain(m, 5)
      local elapsed = monotonic() - t0
      assert.is_true(elapsed < 1, "took " .. elapsed)
      assert.are.equal(20, #results)
      assert.are.equal(0, m:pending())
      local seen = {}
      for _, r in ipairs(results) do
        assert.are.equal(200, r.status)
        assert.are.equal(r.id, r.body)
        assert.is_nil(seen[r.id])
        seen[r.id] = true
      end

      -- a second round reuses the 20 kept-alive connections
      for i = 1, 20 do m:add(i, "GET", base .. "/sleep?s=0.01&id=" .. i, {}) end
      results = drain(m, 5)
      assert.are.equal(20, #results)
      for _, r in ipairs(results) do assert.are.equal(tostring(r.id), r.body) end
      local info = m:info()
      assert.are.equal(40, info.requests)
      assert.are.equal(20, info.connects)
      m:close()
    end)

    it("reports failures per transfer, with ids of any type", function()
      local m = http_multi({ timeout = 0.3 })
      local id_table = { "mine" }
      m:add(id_table, "GET", REFUSED_URL, {})
      m:add(false, "GET", base .. "/sleep?s=5", {})
      m:add(7, "GET", base .. "/fail", {})
      local results = drain(m, 3)
      assert.are.equal(3, #results)
      local by_kind = {}
      for _, r in ipairs(results) do by_kind[r.err_kind or r.status] = r end
      assert.are.equal(id_table, by_kind.connect.id)
      assert.is_false(by_kind.connect.sent)
      assert.are.equal("string", type(by_kind.connect.err_message))
      assert.are.equal(false, by_kind.timeout.id)
      assert.is_true(by_kind.timeout.sent)
      assert.are.equal(7, by_kind[500].id)
      assert.are.equal("boom", by_kind[500].body)
      m:close()
    end)

    it("leaves the header map out of a result when its request asked (response_headers = false)", function()
      local m = http_multi()
      m:add("without", "POST", base .. "/echo", { ["X-Custom"] = "a" }, "12", { response_headers = false })
      m:add("with", "POST", base .. "/echo", { ["X-Custom"] = "b" }, "123")
      local results = drain(m, 3)
      assert.are.equal(2, #results)
      for _, r in ipairs(results) do
        assert.are.equal(200, r.status)
        if r.id == "without" then
          assert.is_nil(r.headers)
          assert.are.equal("12", r.body)
        else
          assert.are.equal("b", r.headers["x-custom"])
          assert.are.equal("3", r.headers["x-body-length"])
        end
      end
      m:close()
    end)

    it("returns an empty array when nothing finished within the wait", function()
      local m = http_multi()
      assert.are.same({}, m:poll(0))
      m:add("slow", "GET", base .. "/sleep?s=0.4", {})
      local t0 = monotonic()
      assert.are.same({}, m:poll(0.1))
      assert.is_true(monotonic() - t0 >= 0.09)
      assert.are.equal(1, m:pending())
      local results = drain(m, 3)
      assert.are.equal("slow", results[1].id)
      m:close()
    end)
  end)
end)

describe("essbasic.core https", function()
  local srv, url, stall_url, cert

  setup(function()
    srv = nginx.start({ http = TLS_CONF, ports = 2, setup = make_cert })
    url = "https://127.0.0.1:" .. srv.ports[1] .. "/"
    stall_url = "https://127.0.0.1:" .. srv.ports[2] .. "/"
    cert = srv.prefix .. "/cert.pem"
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("refuses a self-signed certificate by default, before sending", function()
    local s = http_session()
    local status, kind, message, sent = s:request("POST", url, {}, "secret payload")
    s:close()
    assert.is_nil(status)
    assert.are.equal("tls", kind)
    assert.is_false(sent)
    assert.is_nil(message:find("secret payload", 1, true))
  end)

  it("accepts the certificate given as ca_file", function()
    local s = http_session({ ca_file = cert })
    local status, _, body = s:request("GET", url, {})
    assert.are.equal(200, status)
    assert.are.equal("tls ok", body)
    assert.are.equal(200, (s:request("GET", url, {})))
    assert.are.equal(1, s:info().connects)
    s:close()
  end)

  it("accepts any certificate with ssl_verify = false", function()
    local s = http_session({ ssl_verify = false })
    local status, _, body = s:request("GET", url, {})
    s:close()
    assert.are.equal(200, status)
    assert.are.equal("tls ok", body)
  end)

  it("honours CURL_CA_BUNDLE when ca_file is not set", function()
    local lua = os.getenv("ESSBASIC_LUA") or (jit and "luajit" or "lua5.4")
    local script = "local s = require('essbasic.core').http_session()"
      .. " print((s:request('GET', os.getenv('ESSBASIC_TEST_URL'), {})))"
    local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
    local function run(env)
      local cmd = string.format("%s ESSBASIC_TEST_URL=%s LUA_CPATH=%s %s -e %s 2>&1", env, q(url), q(package.cpath),
        lua, q(script))
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      return (out:gsub("%s+$", ""))
    end
    assert.are.equal("200", run("CURL_CA_BUNDLE=" .. q(cert)))
    assert.are.equal("nil", run("CURL_CA_BUNDLE=/dev/null"))
  end)

  it("goes through an HTTP proxy (tinyproxy): one CONNECT tunnel, the API host's certificate checked", function()
    proxy.with({ {} }, function(px)
      local s = http_session({ proxy = px.url, ca_file = cert })
      local status, _, body = s:request("GET", url, {})
      assert.are.equal(200, status)
      assert.are.equal("tls ok", body)
      assert.are.equal(200, (s:request("GET", url, {})))
      s:close()
      assert.are.same({ "CONNECT 127.0.0.1:" .. srv.ports[1] .. " HTTP/1.1" }, px:requests())
      -- the certificate is the API host's, so without ca_file the tunnelled handshake fails
      local strict = http_session({ proxy = px.url })
      local st, kind, _, sent = strict:request("POST", url, {}, "x")
      strict:close()
      assert.is_nil(st)
      assert.are.equal("tls", kind)
      assert.is_false(sent)
    end)
  end)

  it("calls a tunnel the proxy refuses a connect failure, nothing sent (a 500 and a 407)", function()
    proxy.with({ {}, { basic_auth = "user secret" } }, function(open, auth)
      for _, case in ipairs({ { open, "https://127.0.0.1:1/", "500" }, { auth, url, "407" } }) do
        local s = http_session({ proxy = case[1].url, ca_file = cert })
        local status, kind, message, sent = s:request("POST", case[2], {}, "secret payload")
        s:close()
        assert.is_nil(status)
        assert.are.equal("connect", kind)
        assert.is_false(sent)
        assert.truthy(message:find(case[3], 1, true), message)
      end
    end)
  end)

  it("authenticates to a proxy with the credentials of the proxy URL, and never quotes the password", function()
    proxy.with({ { basic_auth = "essbasic pa-ss.w0rd" } }, function(px)
      local s = http_session({ proxy = px.url:gsub("^http://", "http://essbasic:pa%%2Dss.w0rd@"), ca_file = cert })
      local status, _, body = s:request("GET", url, {})
      s:close()
      assert.are.equal(200, status)
      assert.are.equal("tls ok", body)
      local wrong = http_session({ proxy = px.url:gsub("^http://", "http://essbasic:wrong@"), ca_file = cert })
      local st, kind, message, sent = wrong:request("POST", url, {}, "x")
      wrong:close()
      assert.is_nil(st)
      assert.are.equal("connect", kind)
      assert.is_false(sent)
      assert.is_nil(message:find("wrong", 1, true), message)
    end)
  end)

  it("times out in a stalled handshake as not sent", function()
    local s = http_session({ ssl_verify = false, timeout = 0.3 })
    local t0 = monotonic()
    local status, kind, _, sent = s:request("POST", stall_url, {}, "x")
    local elapsed = monotonic() - t0
    s:close()
    assert.is_nil(status)
    assert.are.equal("timeout", kind)
    assert.is_false(sent)
    assert.is_true(elapsed < 0.8, "took " .. elapsed)
  end)
end)
