--[==[ A fault-injecting HTTP/1.1 proxy between an essbasic client and the sandbox (issue 12), in real nginx.

  local fault_proxy = require("helpers.fault_proxy")
  local fp = fault_proxy.start{ upstream = sb.endpoint }  -- upstream: http://IPv4:PORT (plain HTTP)
  fp.endpoint                  -- http://127.0.0.1:PORT of the proxy: point the client's endpoint/file_endpoint here
  fp:plan{ rule, ... }         -- replaces the plan (and the rules' counters); no rule matches = relay untouched
  fp:stats()                   -- { requests = n, forwarded = n, by_action = { Action = n }, faults = { fault = n },
                               --   log = { { seq, action, conn_requests, fault, forwarded, status, request_id,
                               --             error }, ... } }
  fp:reset()                   -- clears the plan and the stats
  fp:raw({ request, ... }, { timeout = s }) -- whole HTTP/1.1 requests sent on ONE new TCP connection by a cosocket
                               --   client inside the proxy's nginx (no libcurl, no retry); what came back, per answer
  fault_proxy.draws(seed, n)   -- the numbers a rate rule with this seed draws (to predict which requests fail)
  fp:error_log(), fp:stop()    -- stop() is idempotent; call it in teardown

The log has one entry per request in arrival order (seq = its index): action (nil without X-TC-Action),
conn_requests ($connection_requests: 1 on a fresh client connection), fault (nil: relayed), forwarded (true once the
whole request was written to the upstream; false for reset_before or when the upstream could not be reached),
status (the upstream's HTTP status, once its whole answer was read), request_id (the answer's Response.RequestId,
to match an entry with what a client saw), error (what went wrong with the upstream). The
entry is written on arrival and rewritten as the request goes, so a client that hung up mid-request (nginx then ends
the handler: lua_check_client_abort) still leaves it. stats.forwarded counts the entries with forwarded = true.

A rule: { fault = "lose_answer", action = "ChannelCreateFlowGroupByFiles" (the X-TC-Action header; nil = any),
  conn = "fresh" | "reused" | nil (any), and at most one selector: nth = 2 (the 2nd request the rule matches, only)
  | every = 3 (the 3rd, 6th, ...) | rate = 0.1 with seed = 7 (deterministic: fault_proxy.draws(seed, n) are the
  numbers drawn, one per matching request, a fault when draw < rate) | none (every matching request);
  times = N (at most N injections by this rule); close = "orderly" | "reset"; hold = s (stall);
  delay = s (slow_answer) }.
Every rule counts the requests its action/conn filters match, independently of the others; of the rules that fire
on a request, the first in the plan wins. With concurrent clients the order in which requests reach the rules is
the order they arrive in; the draws of a rate rule are the same sequence whatever that order. "fresh" is the first
request on a client connection ($connection_requests = 1), "reused" any later one: the proxy keeps its clients'
connections alive (nginx keep-alive, 100000 requests, 300 s idle).

Faults, on the client's real TCP connection (the upstream gets its own connection per request, Connection: close):
  lose_answer          forward, read the upstream's whole answer, close without sending a byte
  reset_before         close before the request body is read (close = "reset", the default) or once it was read and
                       dropped (close = "orderly": unread bytes would turn the FIN into an RST); nothing forwarded
  stall                forward, read the answer, send nothing for rule.hold seconds (default and at most 30; it ends
                       early when the client hangs up or nginx quits), then close
  garbage              forward, read the answer, send bytes that are not HTTP, close
  cut_body             forward, send the status line, the headers (Content-Length = the whole body) and half of the
                       body, close
  close_after_headers  forward, send the status line and the headers only, close
  slow_answer          forward, wait rule.delay seconds (default 1), relay the answer normally (connection kept)
close = "orderly" (default, except reset_before): a FIN after what was sent. close = "reset": the proxy waits until
the bytes it sent are acknowledged, sets SO_LINGER {on, 0} on the connection's socket (LuaJIT FFI: the fd read from
the request's ngx_connection_t and checked with getpeername against $remote_port), then lets nginx close it: the
kernel sends an RST instead of a FIN. (ngx.exit(444) alone gives a FIN, or an RST only by accident: when request
bytes were left unread.) libcurl sees no byte of an answer either way: "Empty reply from server" (CURLE_GOT_NOTHING)
after the FIN, "Recv failure: Connection reset by peer" (CURLE_RECV_ERROR) after the RST; on a reused connection
it treats both as a stale connection and silently sends the request again on a new one (visible in the log).

Relayed answers are re-framed by nginx (Content-Length, Connection: keep-alive, its own Date and Server); status,
other headers and body are the upstream's. Request bodies up to 64 MB are relayed (held in memory; larger: 413).
The state (plan, counters, log) lives in a lua_shared_dict of the single worker; a second port serves the
plan/stats/reset/raw calls, so control traffic never counts as proxied.
]==]

-- luacheck: globals ngx

local M = {}

local FAULTS = {
  lose_answer = true, reset_before = true, stall = true, garbage = true, cut_body = true,
  close_after_headers = true, slow_answer = true,
}
local MAX_HOLD = 30
local UPSTREAM_TIMEOUT_MS = 30000
local GARBAGE = "\0\1\2 this is not HTTP \255\254\r\n\r\n"

-- Park-Miller "minimal standard" generator: exact in doubles and in 5.4 integers, so the specs (Lua 5.4 or LuaJIT)
-- can predict what the proxy (LuaJIT in nginx) draws for a seed.
local PM_M, PM_A = 2147483647, 16807

local function pm_start(seed)
  local s = math.floor(seed) % (PM_M - 1) + 1
  for _ = 1, 3 do s = (s * PM_A) % PM_M end -- small seeds start with tiny draws: skip them
  return s
end

local function pm_next(state)
  local s = (state * PM_A) % PM_M
  return s, s / PM_M
end

-- The first n numbers (in [0, 1)) a rule with this seed draws, one per request it matches.
function M.draws(seed, n)
  local out, s = {}, pm_start(seed)
  for i = 1, n do
    local v
    s, v = pm_next(s)
    out[i] = v
  end
  return out
end

-------------------------------------------------------------------------------------------------------------------
-- Test side: start, plan, stats, reset, stop.

local RULE_KEYS = { fault = "string", action = "string", conn = "string", nth = "number", every = "number",
  rate = "number", seed = "number", times = "number", close = "string", hold = "number", delay = "number" }

local function check_rule(i, rule)
  local where = "fault_proxy rule " .. i
  if type(rule) ~= "table" then error(where .. ": a table expected", 3) end
  for k, v in pairs(rule) do
    if RULE_KEYS[k] == nil then error(where .. ": unknown key " .. tostring(k), 3) end
    if type(v) ~= RULE_KEYS[k] then error(where .. ": " .. k .. " must be a " .. RULE_KEYS[k], 3) end
  end
  if not FAULTS[rule.fault] then error(where .. ": unknown fault " .. tostring(rule.fault), 3) end
  if rule.conn ~= nil and rule.conn ~= "fresh" and rule.conn ~= "reused" then
    error(where .. ": conn must be \"fresh\" or \"reused\"", 3)
  end
  if rule.close ~= nil and rule.close ~= "orderly" and rule.close ~= "reset" then
    error(where .. ": close must be \"orderly\" or \"reset\"", 3)
  end
  local selectors = (rule.nth and 1 or 0) + (rule.every and 1 or 0) + (rule.rate and 1 or 0)
  if selectors > 1 then error(where .. ": nth, every and rate exclude each other", 3) end
  for _, k in ipairs({ "nth", "every", "times" }) do
    if rule[k] and (rule[k] < 1 or rule[k] % 1 ~= 0) then
      error(where .. ": " .. k .. " must be a whole number >= 1", 3)
    end
  end
  if rule.rate and (rule.rate < 0 or rule.rate > 1) then error(where .. ": rate must be within [0, 1]", 3) end
  if rule.seed and not rule.rate then error(where .. ": seed goes with rate", 3) end
  if rule.hold and (rule.hold < 0 or rule.hold > MAX_HOLD) then error(where .. ": hold must be within [0, 30]", 3) end
  if rule.delay and (rule.delay < 0 or rule.delay > MAX_HOLD) then
    error(where .. ": delay must be within [0, 30]", 3)
  end
end

local CONF = [=[
lua_shared_dict fault_proxy 32m;
lua_check_client_abort on;  # a client that hangs up ends its handler (a stall) at once
server {
  listen 127.0.0.1:%PORT%;
  keepalive_requests 100000;
  keepalive_timeout 300s;
  client_max_body_size 64m;
  client_body_buffer_size 64m;  # request bodies stay in memory
  location / { content_by_lua_block { require("helpers.fault_proxy").serve_proxy("%UPHOST%", %UPPORT%) } }
}
server {
  listen 127.0.0.1:%PORT2%;
  client_max_body_size 1m;
  client_body_buffer_size 1m;
  location / { content_by_lua_block { require("helpers.fault_proxy").serve_control(%PORT%) } }
}
]=]

local Proxy = {}
Proxy.__index = Proxy

function M.start(opts)
  if type(opts) ~= "table" or type(opts.upstream) ~= "string" then
    error("fault_proxy.start: opts.upstream (http://host:port) expected", 2)
  end
  -- An IP literal: nginx's cosockets resolve names only with a resolver directive.
  local host, port = opts.upstream:match("^http://(%d+%.%d+%.%d+%.%d+):(%d+)/?$")
  if not host then error("fault_proxy.start: upstream must be http://IPv4:port, got " .. opts.upstream, 2) end
  local nginx = require("tools.nginx")
  local core = require("essbasic.core")
  local http = CONF:gsub("%%UPHOST%%", host):gsub("%%UPPORT%%", port)
  local srv = nginx.start{ http = http, ports = 2 }
  return setmetatable({
    srv = srv,
    endpoint = "http://127.0.0.1:" .. srv.ports[1],
    control = "http://127.0.0.1:" .. srv.ports[2],
    session = core.http_session({ timeout = 10 }),
  }, Proxy)
end

local function control_call(self, method, path, doc, session)
  local json = require("essbasic.json")
  local status, _, body = (session or self.session):request(method, self.control .. path,
    { ["Content-Type"] = "application/json" }, doc and json.encode(doc) or "")
  if status ~= 200 then error("fault_proxy " .. path .. ": " .. tostring(status) .. " " .. tostring(body), 3) end
  return json.decode(body)
end

function Proxy:plan(rules)
  if type(rules) ~= "table" then error("fault_proxy:plan: a list of rules expected", 2) end
  for i, rule in ipairs(rules) do check_rule(i, rule) end
  local json = require("essbasic.json")
  local list = json.array()
  for i, rule in ipairs(rules) do list[i] = rule end
  control_call(self, "POST", "/plan", { rules = list })
end

function Proxy:stats()
  return control_call(self, "GET", "/stats")
end

function Proxy:reset()
  control_call(self, "POST", "/reset")
end

-- Sends the raw requests (strings, whole HTTP/1.1 requests) one after the other on ONE new TCP connection to the
-- proxy, from inside the proxy's nginx (a cosocket: no libcurl, no retry), and returns what came back:
-- { { status, head, content_length, body, received, seconds } ..., and for the answer that did not come whole:
-- { received = bytes, first_bytes, and once the head came: status, head, content_length, body_received;
--   ended = "closed" | "connection reset by peer" | "timeout" } }.
-- opts.timeout: seconds per read (default 5).
function Proxy:raw(requests, opts)
  if type(requests) ~= "table" then error("fault_proxy:raw: a list of requests expected", 2) end
  local json = require("essbasic.json")
  local list = json.array()
  for i, r in ipairs(requests) do
    if type(r) ~= "string" then error("fault_proxy:raw: request " .. i .. " must be a string", 2) end
    list[i] = r
  end
  local timeout = opts and opts.timeout or 5
  if type(timeout) ~= "number" or timeout <= 0 then error("fault_proxy:raw: opts.timeout must be > 0", 2) end
  -- A session of its own, used once: libcurl never resends this exchange after a stale kept-alive connection.
  local once = require("essbasic.core").http_session({ timeout = timeout * (#list + 1) + 5 })
  local ok, out = pcall(control_call, self, "POST", "/raw", { requests = list, timeout = timeout }, once)
  once:close()
  if not ok then error(out, 2) end
  if out.error then error("fault_proxy:raw: " .. out.error, 2) end
  return out.answers
end

function Proxy:error_log()
  return self.srv:error_log()
end

function Proxy:stop()
  if self.stopped then return end
  self.stopped = true
  self.session:close()
  self.srv:stop()
end

-------------------------------------------------------------------------------------------------------------------
-- nginx side (LuaJIT, one worker): the proxy handler and the control handler.

local function dict() return ngx.shared.fault_proxy end

-- The plan, decoded once per version.
local cached_plan, cached_version

local function current_plan()
  local d = dict()
  local version = d:get("plan_version") or 0
  if version ~= cached_version then
    local json = require("essbasic.json")
    local text = d:get("plan")
    cached_plan = text and json.decode(text).rules or {}
    cached_version = version
  end
  return cached_plan, version
end

-- Counts the request against every rule whose filters match; the first that fires wins (counted in fired:).
local function choose(action, conn)
  local d = dict()
  local rules, version = current_plan()
  local chosen
  for i, rule in ipairs(rules) do
    if (rule.action == nil or rule.action == action) and (rule.conn == nil or rule.conn == conn) then
      local key = version .. ":" .. i
      local n = d:incr("seen:" .. key, 1, 0)
      local fires = true
      if rule.nth then
        fires = n == rule.nth
      elseif rule.every then
        fires = n % rule.every == 0
      elseif rule.rate then
        local state, draw = pm_next(d:get("rng:" .. key) or pm_start(rule.seed or 1))
        d:set("rng:" .. key, state)
        fires = draw < rule.rate
      end
      if fires and rule.times and (d:get("fired:" .. key) or 0) >= rule.times then fires = false end
      if fires and not chosen then
        chosen = rule
        d:incr("fired:" .. key, 1, 0)
      end
    end
  end
  return chosen
end

-- LuaJIT FFI, loaded on first use: the client connection's socket, to turn nginx's close into an RST.
local ffi_api

local function load_ffi()
  if ffi_api then return ffi_api end
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { uint32_t signature; void *connection; } fault_proxy_request_head;
    typedef struct { void *data; void *read; void *write; int fd; } fault_proxy_connection_head;
    typedef struct { uint16_t family; uint8_t port[2]; uint8_t addr[4]; uint8_t zero[8]; } fault_proxy_sockaddr_in;
    typedef struct { int l_onoff; int l_linger; } fault_proxy_linger;
    int getpeername(int sockfd, void *addr, uint32_t *addrlen);
    int setsockopt(int sockfd, int level, int optname, const void *optval, uint32_t optlen);
    int ioctl(int fd, unsigned long request, ...);
  ]]
  local base = require("resty.core.base")
  ffi_api = {
    SOL_SOCKET = 1, SO_LINGER = 13, SIOCOUTQ = 0x5411, -- Linux
    ffi = ffi, C = ffi.C, get_request = base.get_request,
  }
  return ffi_api
end

local function peer_port(api, fd)
  local sa = api.ffi.new("fault_proxy_sockaddr_in")
  local len = api.ffi.new("uint32_t[1]", api.ffi.sizeof(sa))
  if api.C.getpeername(fd, sa, len) ~= 0 then return nil end
  return sa.port[0] * 256 + sa.port[1]
end

-- The fd of this request's client connection, checked against $remote_port.
local function client_fd(api)
  local r = api.ffi.cast("fault_proxy_request_head *", api.get_request())
  local c = api.ffi.cast("fault_proxy_connection_head *", r.connection)
  local fd = c.fd
  if peer_port(api, fd) ~= tonumber(ngx.var.remote_port) then
    return nil, "the request's socket does not have the client's port"
  end
  return fd
end

-- Closes the client's connection: orderly (FIN) or with an RST. Does not return.
local function close_client(how)
  if how == "reset" then
    local api = load_ffi()
    local fd, err = client_fd(api)
    if not fd then
      ngx.log(ngx.ERR, "fault_proxy: no RST: ", err)
    else
      -- What was sent must arrive before the RST (an RST drops unsent and unacknowledged bytes).
      local queued = api.ffi.new("int[1]")
      local deadline = ngx.now() + 2
      while api.C.ioctl(fd, api.SIOCOUTQ, queued) == 0 and queued[0] > 0 and ngx.now() < deadline do
        ngx.sleep(0.001)
        ngx.update_time()
      end
      local linger = api.ffi.new("fault_proxy_linger", { 1, 0 })
      if api.C.setsockopt(fd, api.SOL_SOCKET, api.SO_LINGER, linger, api.ffi.sizeof(linger)) ~= 0 then
        ngx.log(ngx.ERR, "fault_proxy: setsockopt(SO_LINGER) failed")
      end
    end
  end
  ngx.exit(444)
end

local HOP_BY_HOP = {
  connection = true, ["keep-alive"] = true, ["proxy-connection"] = true, te = true, trailer = true,
  ["transfer-encoding"] = true, upgrade = true, expect = true, ["content-length"] = true,
}

-- client_body_buffer_size = client_max_body_size: a body nginx accepts is never in a file.
local function request_body()
  ngx.req.read_body()
  return ngx.req.get_body_data() or ""
end

-- The request as the upstream gets it: the client's headers minus the hop-by-hop ones, an exact Content-Length.
local function upstream_request(body)
  local lines = { ngx.req.get_method() .. " " .. ngx.var.request_uri .. " HTTP/1.1" }
  for line in ngx.req.raw_header(true):gmatch("[^\r\n]+") do
    local name = line:match("^([^:]+):")
    if name and not HOP_BY_HOP[name:lower()] then lines[#lines + 1] = line end
  end
  lines[#lines + 1] = "Content-Length: " .. #body
  lines[#lines + 1] = "Connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
end

local function read_chunked(sock)
  local parts = {}
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, "chunk size: " .. tostring(err) end
    local size = tonumber(line:match("^%s*(%x+)"), 16)
    if not size then return nil, "bad chunk size line" end
    if size == 0 then
      repeat
        line, err = sock:receive("*l")
        if not line then return nil, "trailer: " .. tostring(err) end
      until line == ""
      return table.concat(parts)
    end
    local data
    data, err = sock:receive(size)
    if not data then return nil, "chunk: " .. tostring(err) end
    parts[#parts + 1] = data
    line, err = sock:receive("*l")
    if not line then return nil, "chunk end: " .. tostring(err) end
  end
end

-- Opens a new upstream connection and writes the whole request: the socket, or nil, err.
local function send_upstream(host, port, raw)
  local sock = ngx.socket.tcp()
  sock:settimeouts(UPSTREAM_TIMEOUT_MS, UPSTREAM_TIMEOUT_MS, UPSTREAM_TIMEOUT_MS)
  local ok, err = sock:connect(host, port)
  if not ok then return nil, "connect: " .. tostring(err) end
  ok, err = sock:send(raw)
  if not ok then
    sock:close()
    return nil, "send: " .. tostring(err)
  end
  return sock
end

-- Reads the upstream's whole answer and closes: { status, reason, headers = { { name, value }, ... }, body }, or
-- nil, err.
local function read_upstream(sock)
  local function fail(what)
    sock:close()
    return nil, what
  end
  local line, err = sock:receive("*l")
  if not line then return fail("status line: " .. tostring(err)) end
  local status, reason = line:match("^HTTP/1%.%d (%d%d%d) ?(.*)$")
  if not status then return fail("bad status line") end
  local res = { status = tonumber(status), reason = reason, headers = {} }
  local length, chunked
  while true do
    line, err = sock:receive("*l")
    if not line then return fail("header: " .. tostring(err)) end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      local lower = name:lower()
      if lower == "content-length" then length = tonumber(value) end
      if lower == "transfer-encoding" and value:lower():find("chunked", 1, true) then chunked = true end
      res.headers[#res.headers + 1] = { name, value }
    end
  end
  if res.status == 204 or res.status == 304 or ngx.req.get_method() == "HEAD" then
    res.body = ""
  elseif chunked then
    res.body, err = read_chunked(sock)
  elseif length then
    res.body, err = sock:receive(length)
  else
    res.body, err = sock:receive("*a")
  end
  sock:close()
  if not res.body then return nil, "body: " .. tostring(err) end
  return res
end

-- The upstream's status line and headers, re-framed with Content-Length for its whole body.
local function answer_head(res)
  local lines = { ("HTTP/1.1 %d %s"):format(res.status, res.reason) }
  for _, h in ipairs(res.headers) do
    if not HOP_BY_HOP[h[1]:lower()] then lines[#lines + 1] = h[1] .. ": " .. h[2] end
  end
  lines[#lines + 1] = "Content-Length: " .. #res.body
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

local function send_raw(bytes)
  local sock, err = ngx.req.socket(true)
  if not sock then
    ngx.log(ngx.ERR, "fault_proxy: no raw socket: ", err)
    return
  end
  local ok
  ok, err = sock:send(bytes)
  if not ok then ngx.log(ngx.INFO, "fault_proxy: client send failed: ", err) end
end

local NOT_SENT_BY_NGINX = { date = true, server = true }

local function relay(res)
  ngx.status = res.status
  local merged = {}
  for _, h in ipairs(res.headers) do
    local lower = h[1]:lower()
    if not HOP_BY_HOP[lower] and not NOT_SENT_BY_NGINX[lower] then
      local v = merged[h[1]]
      if v == nil then merged[h[1]] = h[2]
      elseif type(v) == "table" then v[#v + 1] = h[2]
      else merged[h[1]] = { v, h[2] } end
    end
  end
  for name, value in pairs(merged) do ngx.header[name] = value end
  ngx.header["Content-Length"] = #res.body
  ngx.print(res.body)
end

-- The RequestId of an API answer ({"Response":{..., "RequestId": ...}}), to match the log with what clients saw.
local function request_id(body)
  local json = require("essbasic.json")
  local doc = json.decode(body)
  local response = type(doc) == "table" and doc.Response
  return type(response) == "table" and type(response.RequestId) == "string" and response.RequestId or nil
end

-- The log entry is written when the request arrives and rewritten as it goes, so a handler that ends early (the
-- client hung up: lua_check_client_abort) still leaves what it did.
local function save(entry)
  local json = require("essbasic.json")
  local ok, err = dict():set("log:" .. entry.seq, json.encode(entry))
  if not ok then ngx.log(ngx.ERR, "fault_proxy: log full: ", err) end
end

function M.serve_proxy(host, port)
  local d = dict()
  local seq = d:incr("requests", 1, 0)
  local action = ngx.var.http_x_tc_action
  if action then d:incr("action:" .. action, 1, 0) end
  local conn_requests = tonumber(ngx.var.connection_requests)
  local rule = choose(action, conn_requests == 1 and "fresh" or "reused")
  local fault = rule and rule.fault
  if fault then d:incr("fault:" .. fault, 1, 0) end
  local entry = { seq = seq, action = action, conn_requests = conn_requests, fault = fault, forwarded = false }
  save(entry)

  if fault == "reset_before" then
    -- An orderly close with unread request bytes in the kernel would still go out as an RST: read them, drop them.
    if rule.close == "orderly" then ngx.req.read_body() end
    return close_client(rule.close or "reset")
  end

  local sock, err = send_upstream(host, port, upstream_request(request_body()))
  local res
  if sock then
    d:incr("forwarded", 1, 0)
    entry.forwarded = true
    save(entry)
    res, err = read_upstream(sock)
  end
  entry.status, entry.error = res and res.status, err
  entry.request_id = res and request_id(res.body)
  save(entry)
  if not res then
    ngx.log(ngx.ERR, "fault_proxy: upstream: ", err)
    return close_client("orderly")
  end

  local close = rule and rule.close or "orderly"
  if fault == nil then
    return relay(res)
  elseif fault == "slow_answer" then
    ngx.sleep(rule.delay or 1)
    return relay(res)
  elseif fault == "lose_answer" then
    return close_client(close)
  elseif fault == "stall" then
    local until_time = ngx.now() + math.min(rule.hold or MAX_HOLD, MAX_HOLD)
    while ngx.now() < until_time and not ngx.worker.exiting() do
      ngx.sleep(0.05)
    end
    return close_client(close)
  elseif fault == "garbage" then
    send_raw(GARBAGE)
  elseif fault == "cut_body" then
    send_raw(answer_head(res) .. res.body:sub(1, math.floor(#res.body / 2)))
  elseif fault == "close_after_headers" then
    send_raw(answer_head(res))
  end
  return close_client(close)
end

local function stats_json()
  local json = require("essbasic.json")
  local d = dict()
  local by_action, faults = {}, {}
  for _, key in ipairs(d:get_keys(0)) do
    local a = key:match("^action:(.*)$")
    if a then by_action[#by_action + 1] = json.encode(a) .. ":" .. d:get(key) end
    local f = key:match("^fault:(.*)$")
    if f then faults[#faults + 1] = json.encode(f) .. ":" .. d:get(key) end
  end
  local log = {}
  for i = 1, d:get("requests") or 0 do log[i] = d:get("log:" .. i) or "null" end
  return ('{"requests":%d,"forwarded":%d,"by_action":{%s},"faults":{%s},"log":[%s]}'):format(
    d:get("requests") or 0, d:get("forwarded") or 0, table.concat(by_action, ","), table.concat(faults, ","),
    table.concat(log, ","))
end

-- The raw client (POST /raw): one TCP connection to the proxy, the given requests sent one after the other, each
-- answer read by Content-Length; what arrived is reported byte for byte. No retry, no reconnect: it stops at the
-- first answer that does not come whole.
local function read_answer(sock, buffered)
  local buf, result = buffered, { received = 0 }
  local head_end, length
  while true do
    if not head_end then
      head_end = buf:find("\r\n\r\n", 1, true)
      if head_end then
        local head = buf:sub(1, head_end - 1)
        result.status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
        result.head = head
        length = tonumber(head:lower():match("\r\ncontent%-length:%s*(%d+)"))
        result.content_length = length
      end
    end
    if head_end and length and #buf >= head_end + 3 + length then
      result.body = buf:sub(head_end + 4, head_end + 3 + length)
      result.received = head_end + 3 + length
      return result, buf:sub(head_end + 4 + length)
    end
    local data, err = sock:receiveany(1048576)
    if not data then
      result.received = #buf
      result.first_bytes = buf:sub(1, 64)
      result.body_received = head_end and #buf - head_end - 3 or nil
      result.ended = err -- "closed" (FIN), "connection reset by peer" (RST), "timeout"
      return result
    end
    buf = buf .. data
  end
end

local function raw_exchange(proxy_port, doc)
  local sock = ngx.socket.tcp()
  local ms = math.floor((doc.timeout or 5) * 1000)
  sock:settimeouts(ms, ms, ms)
  local ok, err = sock:connect("127.0.0.1", proxy_port)
  if not ok then return { error = "connect: " .. tostring(err) } end
  local answers, rest = {}, ""
  local json = require("essbasic.json")
  for i, raw in ipairs(doc.requests) do
    local started = ngx.now()
    ok, err = sock:send(raw)
    if not ok then
      answers[i] = { sent = false, ended = err }
      break
    end
    local answer
    answer, rest = read_answer(sock, rest)
    ngx.update_time()
    answer.seconds = ngx.now() - started
    answers[i] = answer
    if answer.ended then break end
  end
  sock:close()
  return { answers = json.array(answers) }
end

function M.serve_control(proxy_port)
  local d = dict()
  local path = ngx.var.uri
  ngx.header["Content-Type"] = "application/json"
  if path == "/plan" then
    ngx.req.read_body()
    local json = require("essbasic.json")
    local doc = json.decode(ngx.req.get_body_data() or "")
    if type(doc) ~= "table" or type(doc.rules) ~= "table" then
      ngx.status = 400
      return ngx.print('{"error":"rules expected"}')
    end
    d:set("plan", json.encode(doc))
    d:incr("plan_version", 1, 0)
    return ngx.print("{}")
  elseif path == "/raw" then
    ngx.req.read_body()
    local json = require("essbasic.json")
    return ngx.print(json.encode(raw_exchange(proxy_port, json.decode(request_body()))))
  elseif path == "/stats" then
    return ngx.print(stats_json())
  elseif path == "/reset" then
    local version = d:get("plan_version") or 0
    d:flush_all()
    d:flush_expired()
    d:set("plan_version", version + 1) -- a new version: the worker drops its cached plan
    return ngx.print("{}")
  end
  ngx.status = 404
  ngx.print('{"error":"no such control path"}')
end

return M
