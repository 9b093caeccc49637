-- The ngx transport's parts, inside real nginx on loopback: the HTTP/1.1 framing module's record result against a
-- server that writes raw bytes (a bad status line, a cut header, chunked bodies, oversized bodies, a silent close),
-- the transport's own options (keepalive_timeout, pool_size, pool; flat or nested in `http`), and the refusal of
-- ca_file / ca_path inside nginx. busted drives it over loopback with the C core's libcurl client.
local core = require("essbasic.core")
local json = require("essbasic.json")
local nginx = require("tools.nginx")
local pool = require("essbasic.transport.ngx.pool")

-- Port 1: the app (the parts under test). Port 2: the upstream, whose /raw answers with the bytes of a case.
local CONF = [=[
  server {
    listen 127.0.0.1:%PORT2%;
    keepalive_requests 10000;
    location /conn { content_by_lua_block { ngx.print(ngx.var.connection) } }
    location /raw {
      content_by_lua_block {
        local big = string.rep("z", 5000)
        local chunks = {}
        for i = 1, 50 do chunks[i] = "64\r\n" .. string.rep("c", 100) .. "\r\n" end
        local replies = {
          ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
          bad_status = "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
          cut_status = "HTTP/1.1 20",
          cut_header = "HTTP/1.1 200 OK\r\nContent-Le",
          silent = "",
          chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            .. "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
          chunked_cut = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
          chunked_bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
          big_length = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" .. big,
          big_chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" .. table.concat(chunks) .. "0\r\n\r\n",
          big_eof = "HTTP/1.1 200 OK\r\n\r\n" .. big,
          at_cap = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" .. string.rep("a", 1000),
          http10 = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold",
          close = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye",
          interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
          head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        }
        local sock = assert(ngx.req.socket(true))
        if ngx.var.arg_case == "twice" then
          -- the answer and a copy of it in one write, then an answer to whatever comes next on this connection
          local c = ngx.var.connection
          local answer = "HTTP/1.1 200 OK\r\nContent-Length: " .. #c .. "\r\n\r\n" .. c
          sock:send(answer .. answer)
          sock:settimeout(1000)
          if sock:receive("*l") then sock:send(answer) end
          return ngx.exit(444)
        end
        if replies[ngx.var.arg_case] ~= "" then sock:send(replies[ngx.var.arg_case]) end
        ngx.exit(444)
      }
    }
  }

  server {
    listen 127.0.0.1:%PORT%;

    # The framing module alone on a fresh cosocket: ?case= (the upstream's), max= (bytes), method=.
    location = /frame {
      content_by_lua_block {
        local http1 = require("essbasic.transport.ngx.http1")
        local json = require("essbasic.json")
        local req = { method = ngx.var.arg_method or "GET", url = "/raw" }
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", %PORT2%))
        assert(sock:send(http1.build_request(req, "/raw?case=" .. ngx.var.arg_case, "127.0.0.1")))
        ngx.update_time()
        local r = http1.reader(ngx, sock, { deadline = ngx.now() + 3, connect_ms = 1000,
          max = tonumber(ngx.var.arg_max) or 1000000, where = "upstream" })
        local out
        if ngx.var.arg_part == "head" then
          local head, why, part = http1.read_head(r)
          out = { head = head, why = why, part = part }
        else
          local res, err, unanswered = http1.read_response(r, req)
          out = { res = res, unanswered = unanswered,
            err = err and { code = err.code, network = err.network, sent = err.sent, message = err.message } }
        end
        sock:close()
        ngx.print(json.encode(out))
      }
    }

    # The transport with options from the body: { opts, rounds = { n, ... }, pause }; round i sends n requests
    # to /conn at once (one light thread each) and answers, per request, the upstream's connection number and
    # how often the connection was reused.
    location = /pooled {
      content_by_lua_block {
        local json = require("essbasic.json")
        ngx.req.read_body()
        local spec = json.decode(ngx.req.get_body_data())
        local t = require("essbasic.transport.ngx").new(spec.opts)
        local url = "http://127.0.0.1:%PORT2%" .. (spec.path or "/conn")
        local out = {}
        for i, n in ipairs(spec.rounds) do
          if i > 1 and spec.pause then ngx.sleep(spec.pause) end
          local threads, round = {}, {}
          for j = 1, n do
            threads[j] = ngx.thread.spawn(function() return assert(t:request({ url = url, repeatable = true })) end)
          end
          for j = 1, n do
            local _, res = ngx.thread.wait(threads[j])
            round[j] = { conn = tonumber(res.body), reused = res.reused }
          end
          out[i] = round
        end
        ngx.print(json.encode(out))
      }
    }

    # What a constructor says: ?how=client (essbasic.new) or transport (transport.ngx.new), options in the body.
    location = /construct {
      content_by_lua_block {
        local json = require("essbasic.json")
        ngx.req.read_body()
        local opts = json.decode(ngx.req.get_body_data())
        local ok, err = pcall(function()
          if ngx.var.arg_how == "client" then
            opts.secret_id, opts.secret_key = "AKIDconstruct", "construct-secret-key"
            return require("essbasic").new(opts)
          end
          return require("essbasic.transport.ngx").new(opts)
        end)
        ngx.print(json.encode{ ok = ok, err = not ok and tostring(err) or nil })
      }
    }
  }
]=]

describe("the ngx transport's parts in nginx", function()
  local srv, http

  local function request(method, path, body)
    local status, headers, resp = http:request(method, "http://127.0.0.1:" .. srv.port .. path,
      { ["Content-Type"] = "application/json" }, body or "")
    assert(status, headers)
    if status ~= 200 then error("the app failed (" .. status .. "):\n" .. srv:error_log():sub(-3000)) end
    return json.decode(resp)
  end

  local function frame(case, query) return request("GET", "/frame?case=" .. case .. (query or "")) end

  setup(function()
    http = core.http_session{ timeout = 20 }
    srv = nginx.start{ ports = 2, http = CONF }
  end)

  teardown(function()
    if http then http:close() end
    if srv then srv:stop() end
  end)

  describe("HTTP/1.1 framing (transport/ngx/http1.lua)", function()
    it("reads a response into { status, headers, body, keep }", function()
      local res = frame("ok").res
      assert.same({ status = 200, body = "hello", keep = true,
        headers = { ["content-length"] = "5", ["x-a"] = "1, 2" } }, res)
    end)

    it("returns a head as a record, and a failure as nil, the error text and the part read, never in a slot", function()
      local ok = frame("ok", "&part=head")
      assert.same({ status = 200, minor = "1", headers = { ["content-length"] = "5", ["x-a"] = "1, 2" } }, ok.head)
      assert.is_nil(ok.why)
      local bad = frame("bad_status", "&part=head")
      assert.is_nil(bad.head)
      assert.equal("malformed status line", bad.why)
      assert.equal("status", bad.part)
      local cut = frame("cut_header", "&part=head")
      assert.is_nil(cut.head)
      assert.equal("closed", cut.why)
      assert.equal("headers", cut.part)
    end)

    it("refuses a bad status line as a transfer failure after sending", function()
      local r = frame("bad_status")
      assert.is_nil(r.res)
      assert.equal("ClientError.NetworkError", r.err.code)
      assert.equal("other", r.err.network)
      assert.is_true(r.err.sent)
      assert.matches("malformed status line", r.err.message, 1, true)
      assert.is_false(r.unanswered)
    end)

    it("tells a cut header and a cut status line from a close before any byte", function()
      local header = frame("cut_header")
      assert.equal("other", header.err.network)
      assert.matches("reading the response headers: closed", header.err.message, 1, true)
      assert.is_true(header.err.sent)
      assert.is_false(header.unanswered)
      local status = frame("cut_status")
      assert.equal("other", status.err.network)
      assert.is_false(status.unanswered)
      local silent = frame("silent")
      assert.equal("closed", silent.err.network)
      assert.is_true(silent.err.sent)
      assert.is_true(silent.unanswered)
    end)

    it("reads chunked bodies (extensions, trailers dropped) and refuses cut or malformed chunks", function()
      local ok = frame("chunked").res
      assert.equal("hello world", ok.body)
      assert.is_true(ok.keep)
      assert.is_nil(ok.headers["x-trailer"])
      local cut = frame("chunked_cut")
      assert.is_nil(cut.res)
      assert.matches("reading a chunk: closed", cut.err.message, 1, true)
      assert.is_true(cut.err.sent)
      local bad = frame("chunked_bad")
      assert.matches("malformed chunk size line", bad.err.message, 1, true)
    end)

    it("refuses bodies over the cap with and without a length, and takes one exactly at it", function()
      for _, case in ipairs({ "big_length", "big_chunked", "big_eof" }) do
        local r = frame(case, "&max=1000")
        assert.is_nil(r.res, case)
        assert.equal("ClientError.ResponseTooLarge", r.err.code, case)
        assert.equal("too_large", r.err.network, case)
        assert.is_true(r.err.sent, case)
      end
      assert.equal(5000, #frame("big_chunked", "&max=5000").res.body)
      assert.equal(5000, #frame("big_eof", "&max=5000").res.body)
      local at = frame("at_cap", "&max=1000").res
      assert.equal(1000, #at.body)
    end)

    it("says when the connection may carry another request", function()
      assert.is_false(frame("http10").res.keep)
      assert.equal("old", frame("http10").res.body)
      assert.is_false(frame("close").res.keep)
      assert.is_false(frame("big_eof").res.keep)
      local interim = frame("interim").res
      assert.equal(201, interim.status)
      assert.equal("ok", interim.body)
      local head = frame("head", "&method=HEAD").res
      assert.equal("", head.body)
      assert.is_true(head.keep)
    end)
  end)

  describe("options", function()
    local function pooled(opts, rounds, pause, path)
      return request("POST", "/pooled",
        json.encode{ opts = opts, rounds = json.array(rounds), pause = pause, path = path })
    end

    -- nginx refuses to pool a socket with bytes left in its buffer ("unread data in buffer"), and pool.release
    -- closes it then: the copy is never read as the next request's answer.
    it("never pools a connection that holds unread bytes", function()
      local rounds = pooled({ http = { pool = "twice" } }, { 1, 1 }, nil, "/raw?case=twice")
      assert.equal(0, rounds[2][1].reused)
      assert.are_not.equal(rounds[1][1].conn, rounds[2][1].conn)
    end)

    it("keepalive_timeout (nested in http, or flat) bounds how long a connection waits in the pool", function()
      local short = pooled({ http = { keepalive_timeout = 0.1, pool = "kt-short" } }, { 1, 1 }, 0.4)
      assert.equal(0, short[2][1].reused)
      assert.are_not.equal(short[1][1].conn, short[2][1].conn)
      local flat = pooled({ keepalive_timeout = 0.1, pool = "kt-flat" }, { 1, 1 }, 0.4)
      assert.equal(0, flat[2][1].reused)
      local long = pooled({ http = { pool = "kt-long" } }, { 1, 1 }, 0.4)
      assert.equal(1, long[2][1].reused)
      assert.equal(long[1][1].conn, long[2][1].conn)
    end)

    it("pool_size caps the connections kept per pool", function()
      local function reused_in_second_round(opts)
        local rounds = pooled(opts, { 2, 2 })
        assert.equal(0, rounds[1][1].reused + rounds[1][2].reused)
        return rounds[2][1].reused + rounds[2][2].reused
      end
      assert.equal(1, reused_in_second_round({ http = { pool_size = 1, pool = "size-one" } }))
      assert.equal(2, reused_in_second_round({ http = { pool = "size-default" } }))
    end)

    it("pool keeps connections apart by name", function()
      local a = pooled({ http = { pool = "apart-a" } }, { 1 })[1][1]
      local b = pooled({ http = { pool = "apart-b" } }, { 1 })[1][1]
      local a2 = pooled({ http = { pool = "apart-a" } }, { 1 })[1][1]
      assert.equal(0, b.reused)
      assert.are_not.equal(a.conn, b.conn)
      assert.equal(a.conn, a2.conn)
    end)

    local function construct(how, opts)
      return request("POST", "/construct?how=" .. how, json.encode(opts))
    end

    it("refuses ca_file and ca_path inside nginx, saying to use lua_ssl_trusted_certificate", function()
      for _, case in ipairs({
        { "client", { ca_file = "/etc/ssl/certs/ca-certificates.crt" }, "ca_file" },
        { "client", { ca_path = "/etc/ssl/certs" }, "ca_path" },
        { "transport", { ca_file = "/x/ca.pem" }, "ca_file" },
        { "transport", { http = { ca_path = "/x" } }, "ca_path" },
      }) do
        local r = construct(case[1], case[2])
        assert.is_false(r.ok, case[3])
        assert.matches(case[3] .. " cannot be used inside nginx", r.err, 1, true)
        assert.matches("lua_ssl_trusted_certificate", r.err, 1, true)
      end
      assert.is_true(construct("client", {}).ok)
    end)

    it("refuses an option it does not have in http, and options of the wrong type", function()
      local typo = construct("transport", { http = { pool_sise = 2 } })
      assert.is_false(typo.ok)
      assert.matches("no option http.pool_sise", typo.err, 1, true)
      local wrong = construct("transport", { http = { keepalive_timeout = "60" } })
      assert.matches("keepalive_timeout must be a number", wrong.err, 1, true)
      assert.matches("pool_size must be a whole number", construct("transport", { pool_size = 0.5 }).err, 1, true)
      assert.is_true(construct("transport", { pool = 7, keepalive_timeout = 0 }).ok)
    end)
  end)
end)

describe("the ngx transport's pool key (transport/ngx/pool.lua)", function()
  local u = { scheme = "https", host = "ess.example", port = 443 }

  it("names every slot, the host once", function()
    local key = pool.key(u, { pool = "p", ssl_verify = true })
    assert.equal("essbasic|name=p|scheme=https|host=ess.example|port=443|verify=true|proxy=-|proxy_auth=-", key)
    local _, hosts = key:gsub("ess%.example", "")
    assert.equal(1, hosts)
  end)

  it("keeps apart what differs: verification, proxy, proxy credentials, and a name that mimics a slot", function()
    local keys = {
      pool.key(u, { pool = "", ssl_verify = true }),
      pool.key(u, { pool = "", ssl_verify = false }),
      pool.key(u, { pool = "", ssl_verify = true, proxy = { authority = "px:3128" } }),
      pool.key(u, { pool = "", ssl_verify = true, proxy = { authority = "px:3128", auth_id = "aaaa" } }),
      pool.key(u, { pool = "", ssl_verify = true, proxy = { authority = "px:3128", auth_id = "bbbb" } }),
      pool.key(u, { pool = "|scheme=https", ssl_verify = true }),
    }
    local seen = {}
    for i, k in ipairs(keys) do
      assert.is_nil(seen[k], "key " .. i .. " repeats key " .. tostring(seen[k]))
      seen[k] = i
    end
    assert.matches("name=%7Cscheme=https|", keys[6], 1, true)
  end)
end)
