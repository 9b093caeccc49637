--[==[ A misbehaving essbasic endpoint for the fault specs (issue 6), running in real nginx beside the sandbox.

  local faults = require("helpers.fault_server").start()
  faults.endpoint          -- http://127.0.0.1:PORT  (plain HTTP)
  faults.tls_endpoint      -- https://127.0.0.1:PORT2 (self-signed certificate)
  faults.h2_endpoint       -- https://127.0.0.1:PORT3, where nginx offers HTTP/2 (ALPN) as well
  faults.cert              -- path of that certificate (use as ca_file)
  faults:stats(scenario)   -- { attempts = n, created = m } as the server saw them (+ h2 = n: attempts over HTTP/2)
  faults:stop()

Every request names its scenario in the JSON body: { Scenario = "<unique id>", Steps = { "limit", "limit", "ok" } }
(send with validate = false). The server plays Steps[n] on the n-th attempt of that scenario (the last step
repeats). Steps:
  ok              create (count it) and answer a success envelope with a FlowGroupId
  limit           RequestLimitExceeded envelope; nothing created
  internal        InternalError envelope; nothing created
  error200        HTTP 200 with InvalidParameter.FlowName
  html502         HTTP 502 with an HTML page (a proxy's error page)
  notjson         HTTP 200 whose body is not JSON
  reset           close the connection without answering; nothing created
  create_reset    create, then close without answering (the answer is lost on the way)
  half            create, then send half of a declared body and close
  never_ends      create, then send headers and a little body and stall
  slow            wait 2 s, then as ok
  wait100         wait 0.1 s, then as ok
  huge            HTTP 200 with a 3 MB body
  long_message    HTTP 200 with InvalidParameter.Mobile whose message is 80 KB of one word, then a mobile
  create_huge     create, then as huge
  answer_twice    create, answer, and 50 ms later (the client has read the answer) send the same answer again and
                  keep the connection open until the client closes it; stats(scenario).copies counts the copies
]==]

local nginx = require("tools.nginx")
local core = require("essbasic.core")
local json = require("essbasic.json")

local M = {}

local HANDLER = [=[
lua_shared_dict faults 1m;
init_by_lua_block {
  faults = {}
  local json = require("essbasic.json")
  local dict = ngx.shared.faults
  function faults.reply(status, doc)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.print(type(doc) == "string" and doc or json.encode(doc))
  end
  function faults.raw(bytes, then_stall)
    -- HTTP/2 has no raw socket per request: the stream is reset instead (nothing of an answer either way)
    if ngx.var.server_protocol == "HTTP/2.0" then return ngx.exit(444) end
    local sock = assert(ngx.req.socket(true))
    sock:send(bytes)
    if then_stall then ngx.sleep(30) end
    ngx.exit(444)
  end
  function faults.handle()
    ngx.req.read_body()
    local req = json.decode(ngx.req.get_body_data() or "") or {}
    local id = tostring(req.Scenario)
    local n = dict:incr("attempts:" .. id, 1, 0)
    if ngx.var.server_protocol == "HTTP/2.0" then dict:incr("h2:" .. id, 1, 0) end
    local steps = req.Steps or { "ok" }
    local step = steps[n] or steps[#steps]
    local rid = id .. "-" .. n
    local function create()
      dict:incr("created:" .. id, 1, 0)
      return { Response = { FlowGroupId = "group-" .. id, FlowIds = json.array({ "f1", "f2" }), RequestId = rid } }
    end
    if step == "slow" then ngx.sleep(2); step = "ok" end
    if step == "wait100" then ngx.sleep(0.1); step = "ok" end
    if step == "ok" then return faults.reply(200, create()) end
    if step == "limit" then
      return faults.reply(200, { Response = { Error = { Code = "RequestLimitExceeded", Message = "slow down" },
        RequestId = rid } })
    end
    if step == "internal" then
      return faults.reply(200, { Response = { Error = { Code = "InternalError", Message = "oops" }, RequestId = rid } })
    end
    if step == "error200" then
      return faults.reply(200, { Response = { Error = { Code = "InvalidParameter.FlowName", Message = "bad name" },
        RequestId = rid } })
    end
    if step == "long_message" then -- issue 27: 80 KB of one word, then a mobile (quadratic to 0.2.0's masking)
      return faults.reply(200, { Response = { Error = { Code = "InvalidParameter.Mobile",
        Message = string.rep("a", 80000) .. " 13800138000" }, RequestId = rid } })
    end
    if step == "html502" then
      ngx.status = 502
      ngx.header["Content-Type"] = "text/html"
      return ngx.print("<html><body><h1>502 Bad Gateway</h1></body></html>")
    end
    if step == "notjson" then return faults.reply(200, "this is not json") end
    if step == "huge" then return faults.reply(200, string.rep("x", 3 * 1024 * 1024)) end
    if step == "create_huge" then create(); return faults.reply(200, string.rep("x", 3 * 1024 * 1024)) end
    if step == "reset" then return faults.raw("") end
    if step == "create_reset" then create(); return faults.raw("") end
    local body = json.encode(create())
    if step == "half" then
      return faults.raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
        .. "\r\n\r\n" .. body:sub(1, math.floor(#body / 2)))
    end
    if step == "answer_twice" then
      local answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n\r\n"
        .. body
      local sock = assert(ngx.req.socket(true))
      sock:send(answer)
      ngx.sleep(0.05)
      sock:send(answer)
      dict:incr("copies:" .. id, 1, 0)
      -- the connection stays open until the client closes it (2 s at most): a client that sends its next request
      -- on it finds the copy waiting as its answer
      sock:settimeout(2000)
      sock:receive("*a")
      return ngx.exit(444)
    end
    if step == "never_ends" then
      return faults.raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body
        .. "\r\n\r\n" .. body:sub(1, 10), true)
    end
    return faults.reply(500, "unknown step " .. tostring(step))
  end
}
server {
  listen 127.0.0.1:%PORT%;
  listen 127.0.0.1:%PORT2% ssl;
  listen 127.0.0.1:%PORT3% ssl http2;
  ssl_certificate %PREFIX%/cert.pem;
  ssl_certificate_key %PREFIX%/key.pem;
  location = /stats {
    content_by_lua_block {
      local id = ngx.var.arg_scenario
      local d = ngx.shared.faults
      ngx.say(require("essbasic.json").encode({ attempts = d:get("attempts:" .. id) or 0,
        created = d:get("created:" .. id) or 0, copies = d:get("copies:" .. id), h2 = d:get("h2:" .. id) }))
    }
  }
  location / { content_by_lua_block { faults.handle() } }
}
]=]

local Faults = {}
Faults.__index = Faults

function M.start()
  local srv = nginx.start{
    http = HANDLER,
    ports = 3,
    setup = function(prefix)
      local cmd = ("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
        .. "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1")
        :format(prefix, prefix)
      assert(os.execute(cmd), "openssl could not make a test certificate")
    end,
  }
  return setmetatable({
    srv = srv,
    endpoint = "http://127.0.0.1:" .. srv.port,
    tls_endpoint = "https://127.0.0.1:" .. srv.ports[2],
    h2_endpoint = "https://127.0.0.1:" .. srv.ports[3],
    cert = srv.prefix .. "/cert.pem",
    session = core.http_session({ timeout = 5 }),
  }, Faults)
end

function Faults:stats(scenario)
  local status, _, body = self.session:request("GET", self.endpoint .. "/stats?scenario=" .. scenario, {}, "")
  assert(status == 200, "stats endpoint failed")
  return json.decode(body)
end

function Faults:stop()
  self.session:close()
  self.srv:stop()
end

return M
