-- The cosocket transport for nginx (OpenResty, or Debian's nginx with libnginx-mod-http-lua): HTTP/1.1 over
-- ngx.socket.tcp, so a request waiting for the API yields to the other requests of the worker instead of
-- blocking it the way a libcurl call would.
--
-- request(req) → { status, headers (names lowercase, repeats joined by ", "), body } or nil, err, as the transport
-- contract (transport/contract.lua) says, resending only what it allows. The object keeps no per-request state:
-- one client, made once per worker, serves all concurrent requests. Connections live in nginx's per-worker
-- pool (setkeepalive), keyed like lua-resty-http does so that different TLS or proxy settings never share one.
--
-- TLS: certificate verification is on by default (ssl_verify = false turns it off). nginx checks against
-- `lua_ssl_trusted_certificate` (e.g. /etc/ssl/certs/ca-certificates.crt) with `lua_ssl_verify_depth`; without
-- that directive every verified handshake fails. The ca_file/ca_path options of the curl transport do not apply
-- here: nginx has one trust store per http block.
--
-- Proxy: `proxy = "http://[user:password@]host:port"` carries https:// requests through a CONNECT tunnel, TLS end to
-- end with the API host (SNI and certificate checks name the API host, not the proxy), and sends http:// requests
-- to the proxy with the absolute URL. Credentials (percent-encoded in the URL, as for libcurl) go out as
-- Proxy-Authorization: Basic, and nowhere else: messages name the proxy by host and port. Tunnels are pooled per
-- proxy, credentials and API host like any connection; a refused tunnel is a connect error (nothing sent).

local errors = require("essbasic.errors")
local contract = require("essbasic.transport.contract")
local network_error = contract.network_error

local type, tostring, tonumber, setmetatable, pairs, error = type, tostring, tonumber, setmetatable, pairs, error
local lower, find, sub, match, format, gsub, char = string.lower, string.find, string.sub, string.match,
  string.format, string.gsub, string.char
local concat = table.concat
local floor = math.floor

local M = {}

M.DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
M.DEFAULT_KEEPALIVE_MS = 60000
M.MAX_HEADER_BYTES = 64 * 1024
local READ_CHUNK = 65536
local STALE_RETRIES = 4

-- Phases in which cosockets (and ngx.sleep) work. Everything else (init, init_worker, set, header_filter,
-- body_filter, log, balancer, exit_worker, ssl_session_store) must not make the call at all.
M.COSOCKET_PHASES = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

local Transport = { __name = "essbasic.transport.ngx", concurrency = "light_threads" } -- cosockets yield
Transport.__index = Transport

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.socket) ~= "table" then
    error("essbasic.transport.ngx works only inside nginx's Lua module", 3)
  end
  return ngx
end

-- The error for a call from a phase without cosockets: never block the worker, never fall back to libcurl.
function M.phase_error(phase)
  return errors.new{ code = errors.PHASE, kind = "client", phase = phase, sent = false,
    message = "essbasic calls cannot run in nginx's '" .. tostring(phase) .. "' phase (no cosockets there, and a "
      .. "blocking call would stall the worker); run them from a rewrite, access or content handler, or in a "
      .. "timer started with ngx.timer.at(0, fn)" }
end

-- nil when this phase may use cosockets, else the error object.
function M.check_phase()
  local ngx = rawget(_G, "ngx")
  local phase = type(ngx) == "table" and type(ngx.get_phase) == "function" and ngx.get_phase() or "unknown"
  if M.COSOCKET_PHASES[phase] then return nil end
  return M.phase_error(phase)
end

local DEFAULT_PORTS = { http = 80, https = 443 }

-- "https://host[:port][/path]" → { scheme, host, port, authority, path }; IPv6 literals in brackets.
function M.parse_url(url)
  local scheme, authority, rest = match(url, "^(%a[%w+.-]*)://([^/?#]+)(.*)$")
  if not scheme then return nil, "not an absolute http(s) URL" end
  scheme = lower(scheme)
  if not DEFAULT_PORTS[scheme] then return nil, "unsupported scheme '" .. scheme .. "'" end
  if find(authority, "@", 1, true) then return nil, "user information in URLs is not supported" end
  local host, port = match(authority, "^%[([%x:.]+)%]:?(%d*)$")
  if host then
    host = "[" .. host .. "]"
  else
    host, port = match(authority, "^([^:]+):?(%d*)$")
    if not host then return nil, "cannot read the host and port" end
  end
  port = port ~= "" and tonumber(port) or DEFAULT_PORTS[scheme]
  if port < 1 or port > 65535 then return nil, "port out of range" end
  local path = gsub(rest, "#.*$", "")
  if path == "" then
    path = "/"
  elseif sub(path, 1, 1) == "?" then
    path = "/" .. path
  end
  return { scheme = scheme, host = host, bare_host = gsub(host, "^%[(.*)%]$", "%1"), port = port,
    authority = authority, path = path }
end

-- opts: timeout, connect_timeout (seconds), ssl_verify (default true), proxy, max_response_bytes,
-- keepalive_timeout (seconds idle in the pool, default 60), pool_size (default: lua_socket_pool_size),
-- retry_stale (default true: see request()), pool (a name that keeps this transport's connections apart).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("transport options must be a table", 2) end
  local proxy
  if opts.proxy and opts.proxy ~= "" then
    -- the credentials are taken out before anything else reads the URL, so no message can quote them
    local url, user, password = opts.proxy, nil, nil
    local head, userinfo, rest = match(url, "^(%a[%w+.-]*://)([^/?#@]*)@(.*)$")
    if head then
      url = head .. rest
      user, password = match(userinfo, "^([^:]*):(.*)$")
      if not user then user, password = userinfo, "" end
    end
    local p, why = M.parse_url(url)
    if not p or p.scheme ~= "http" then
      error("essbasic: the ngx transport takes an http://[user:password@]host:port proxy ("
        .. (why or "https proxy") .. ")", 3)
    end
    if user then
      local core = require("essbasic.core")
      local function unescape(v) return (gsub(v, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end)) end
      p.auth = "Basic " .. core.base64_encode(unescape(user) .. ":" .. unescape(password))
      -- pooled tunnels are kept apart per credentials without putting them in the pool's name
      p.auth_id = sub(core.sha256_hex("essbasic proxy pool\0" .. p.auth), 1, 16)
    end
    proxy = p
  end
  return setmetatable({
    timeout = opts.timeout or 60,
    connect_timeout = opts.connect_timeout or 10,
    ssl_verify = opts.ssl_verify ~= false,
    proxy = proxy,
    max_response_bytes = opts.max_response_bytes or M.DEFAULT_MAX_RESPONSE_BYTES,
    keepalive_ms = floor((opts.keepalive_timeout or M.DEFAULT_KEEPALIVE_MS / 1000) * 1000),
    pool_size = opts.pool_size,
    retry_stale = opts.retry_stale ~= false,
    pool = opts.pool and tostring(opts.pool) or "",
  }, Transport)
end

local function header_unsafe(v)
  return find(v, "\r", 1, true) or find(v, "\n", 1, true) or find(v, "\0", 1, true)
end

-- The request head and body as one string (one send; one packet for small calls). Host, Content-Length and
-- the framing headers are ours; a Host in req.headers (the signed one) wins over the URL's authority.
local function build_request(req, target, host, proxy_auth)
  local body = req.body or ""
  local fields = { proxy_auth and ("Proxy-Authorization: " .. proxy_auth .. "\r\n") or nil }
  for name, value in pairs(req.headers or {}) do
    name, value = tostring(name), tostring(value)
    if header_unsafe(name) or header_unsafe(value) or find(name, ":", 1, true) then return nil, name end
    local lname = lower(name)
    if lname == "host" then
      host = value
    elseif lname ~= "content-length" and lname ~= "transfer-encoding" and lname ~= "connection" then
      fields[#fields + 1] = name .. ": " .. value .. "\r\n"
    end
  end
  return (req.method or "GET") .. " " .. target .. " HTTP/1.1\r\nHost: " .. host .. "\r\n" .. concat(fields)
    .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
end

-- A small reader around one socket: a total deadline for the response, the cap, and error construction.
local Conn = {}
Conn.__index = Conn

local function fail(c, kind, what, sent)
  c.sock:close()
  c.sock = nil
  return nil, network_error(kind, what .. " (" .. c.where .. ")", sent)
end

function Conn:remaining_ms()
  local ngx = self.ngx
  ngx.update_time()
  local left = floor((self.deadline - ngx.now()) * 1000)
  return left > 0 and left or 0
end

-- Every receive gets what is left of the request's total timeout, so a slow drip cannot outlast it.
function Conn:receive(pattern)
  local left = self:remaining_ms()
  if left <= 0 then return nil, "timeout" end
  self.sock:settimeouts(self.connect_ms, left, left)
  return self.sock:receive(pattern)
end

function Conn:receiveany(max)
  local left = self:remaining_ms()
  if left <= 0 then return nil, "timeout" end
  self.sock:settimeouts(self.connect_ms, left, left)
  return self.sock:receiveany(max)
end

local function read_error(c, err, what)
  if err == "timeout" then return fail(c, "timeout", what .. ": timed out", true) end
  return fail(c, "other", what .. ": " .. tostring(err), true)
end

-- Status line and headers; 1xx interim responses are skipped.
local function read_head(c)
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err, "status" end
    local status = match(line, "^HTTP/1%.[01] (%d%d%d)")
    if not status then return nil, "malformed status line", "status" end
    status = tonumber(status)
    local headers, size = {}, 0
    while true do
      local h
      h, err = c:receive("*l")
      if not h then return nil, err, "headers" end
      if h == "" then break end
      size = size + #h
      if size > M.MAX_HEADER_BYTES then return nil, "response headers too large", "headers" end
      local name, value = match(h, "^([^:%s]+)%s*:%s*(.-)%s*$")
      if name then
        name = lower(name)
        local prev = headers[name]
        headers[name] = prev and (prev .. ", " .. value) or value
      end
    end
    if status >= 200 or status < 100 then return status, headers, match(line, "^HTTP/1%.([01])") end
  end
end

local function read_chunked(c)
  local parts, total = {}, 0
  while true do
    local line, err = c:receive("*l")
    if not line then return read_error(c, err, "reading a chunk size") end
    -- chunk extensions (";name=value") are allowed and ignored
    local hex = match(line, "^%s*(%x+)%s*[;]?")
    if not hex or #hex > 8 then return fail(c, "other", "malformed chunk size line", true) end
    local size = tonumber(hex, 16)
    if size == 0 then
      -- trailers, up to the empty line; their fields are not merged into the headers
      repeat
        line, err = c:receive("*l")
        if not line then return read_error(c, err, "reading the trailers") end
      until line == ""
      return concat(parts)
    end
    total = total + size
    if total > c.max then return fail(c, "too_large", "chunked body over max_response_bytes", true) end
    local data
    data, err = c:receive(size)
    if not data then return read_error(c, err, "reading a chunk") end
    parts[#parts + 1] = data
    local crlf
    crlf, err = c:receive(2)
    if crlf ~= "\r\n" then
      if not crlf then return read_error(c, err, "reading a chunk") end
      return fail(c, "other", "chunk not followed by CRLF", true)
    end
  end
end

local function read_until_close(c)
  local parts, total = {}, 0
  while true do
    local data, err = c:receiveany(READ_CHUNK)
    if not data then
      if err == "closed" then return concat(parts) end
      return read_error(c, err, "reading the body")
    end
    total = total + #data
    if total > c.max then return fail(c, "too_large", "body over max_response_bytes", true) end
    parts[#parts + 1] = data
  end
end

local function has_token(value, token)
  if not value then return false end
  for t in value:gmatch("[^,%s]+") do
    if lower(t) == token then return true end
  end
  return false
end

-- Asks the proxy on sock for a tunnel to u (CONNECT host:port) → true, or nil, the error kind and what happened.
-- Within the connect timeout, like libcurl's; the proxy's answer (read by read_head, so capped the same way) must be
-- 2xx, and its headers are dropped.
local function open_tunnel(sock, u, auth)
  local authority = u.host .. ":" .. u.port
  local ok, err = sock:send("CONNECT " .. authority .. " HTTP/1.1\r\nHost: " .. authority .. "\r\n"
    .. (auth and ("Proxy-Authorization: " .. auth .. "\r\n") or "") .. "\r\n")
  if not ok then return nil, err == "timeout" and "timeout" or "connect", "sending CONNECT: " .. tostring(err) end
  local status, why, what = read_head({ receive = function(_, pattern) return sock:receive(pattern) end })
  if not status then
    return nil, why == "timeout" and "timeout" or "connect",
      "reading the proxy's answer to CONNECT (" .. what .. "): " .. tostring(why)
  end
  if status < 200 or status > 299 then
    return nil, "connect", "the proxy answered HTTP " .. status .. " to CONNECT " .. authority
  end
  return true
end

-- Connect (through a tunnel when an https:// URL goes through a proxy; with TLS when needed); the pool name keeps
-- connections with different settings apart, so a pooled tunnel is only reused for the same proxy, proxy
-- credentials and API host.
local function connect(self, ngx, u, connect_ms)
  local sock = ngx.socket.tcp()
  sock:settimeouts(connect_ms, connect_ms, connect_ms)
  local target = self.proxy or u
  local pool = format("essbasic:%s:%s:%s:%d:%s:%s", self.pool, u.scheme, u.host, u.port, tostring(self.ssl_verify),
    u.host)
  if self.proxy then pool = pool .. ":proxy=" .. self.proxy.authority .. ":" .. (self.proxy.auth_id or "") end
  local ok, err = sock:connect(target.bare_host, target.port, { pool = pool })
  if not ok then
    sock:close()
    local kind = "connect"
    if err == "timeout" then
      kind = "timeout"
    elseif find(err, "resol", 1, true) or find(err, "not found", 1, true) then
      kind = "dns"
    end
    return nil, network_error(kind, "connecting to " .. target.authority .. ": " .. tostring(err), false)
  end
  if u.scheme == "https" and sock:getreusedtimes() == 0 then
    if self.proxy then
      local tunnel, kind, what = open_tunnel(sock, u, self.proxy.auth)
      if not tunnel then
        sock:close()
        return nil, network_error(kind, what .. " (proxy " .. self.proxy.authority .. ")", false)
      end
    end
    -- The name goes out as SNI and is what nginx checks the certificate against (as lua-resty-http does).
    -- reused_session = false: no session object is wanted (the pooled connection itself is the reuse), and
    -- lua-resty-core 0.1.25 (Debian 12) trips an assertion fetching one after a handshake that finished at once.
    -- A failed certificate check that completes at once can still answer true, with nginx having logged the
    -- verify error and closed the socket (seen with Debian 12's lua-nginx-module; about one run in ten of the
    -- untrusted-certificate spec): a socket that is closed after the handshake failed the handshake.
    local session
    session, err = sock:sslhandshake(false, u.bare_host, self.ssl_verify)
    if session and not sock:getreusedtimes() then
      session, err = nil, "handshake failed (certificate verification, see nginx's error log)"
    end
    if not session then
      sock:close()
      return nil, network_error(err == "timeout" and "timeout" or "tls",
        "TLS with " .. u.authority .. ": " .. tostring(err), false)
    end
  end
  return sock
end

-- One exchange on one connection. Returns res, or nil, err, stale: a pooled connection that failed before the
-- request could have been read whole (the request may go out on another connection), or, for a repeatable
-- request only, one that closed before a byte of the answer.
local function exchange(self, ngx, req, u, payload, deadline, connect_ms)
  local sock, err = connect(self, ngx, u, connect_ms)
  if not sock then return nil, err end
  local reused_times = sock:getreusedtimes()
  local reused = reused_times > 0
  local c = setmetatable({ ngx = ngx, sock = sock, deadline = deadline, connect_ms = connect_ms,
    max = self.max_response_bytes, where = u.authority }, Conn)
  local left = c:remaining_ms()
  if left <= 0 then return fail(c, "timeout", "no time left to send", false) end
  sock:settimeouts(connect_ms, left, left)
  local sent_bytes
  sent_bytes, err = sock:send(payload)
  if not sent_bytes then
    -- A failed write left at most part of the request, which no server acts on (its body is what it waits for).
    if reused and err ~= "timeout" and self.retry_stale then
      sock:close()
      return nil, nil, true
    end
    return read_error(c, err, "sending the request")
  end
  local status, headers, minor = read_head(c)
  if not status then
    -- headers is the error text here, minor what was being read. Closed (or reset) before a byte of the answer
    -- is what an idle close of a pooled connection looks like, and also what a lost answer looks like: only a
    -- repeatable request may be sent again after it.
    local closed = minor == "status" and (headers == "closed" or find(headers, "reset", 1, true) ~= nil)
    if closed and reused and self.retry_stale and contract.may_resend(req) then
      sock:close()
      return nil, nil, true
    end
    if headers == "timeout" then return read_error(c, "timeout", "waiting for the response") end
    if closed then
      return fail(c, "closed", "the connection closed after the request was sent, before any answer", true)
    end
    return fail(c, "other", "reading the response " .. minor .. ": " .. tostring(headers), true)
  end
  local body
  local keep = minor == "1" and not has_token(headers.connection, "close")
    or minor == "0" and has_token(headers.connection, "keep-alive")
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if req.method == "HEAD" or status == 204 or status == 304 then
    body = ""
  elseif te and not has_token(te, "identity") then
    if not has_token(te, "chunked") then return fail(c, "other", "unsupported transfer-encoding " .. te, true) end
    body, err = read_chunked(c)
  elseif cl then
    local n = match(cl, "^(%d+)$")
    n = n and #n <= 15 and tonumber(n)
    if not n then return fail(c, "other", "malformed content-length", true) end
    if n > c.max then return fail(c, "too_large", "content-length " .. n .. " over max_response_bytes", true) end
    if n == 0 then
      body = ""
    else
      body, err = c:receive(n)
    end
    if not body then return read_error(c, err, "reading the body") end
  else
    keep = false
    body, err = read_until_close(c)
  end
  if not body then return nil, err end
  if keep then
    local ok = sock:setkeepalive(self.keepalive_ms, self.pool_size)
    if not ok then sock:close() end
  else
    sock:close()
  end
  -- reused: how many requests this connection carried before (0 = new); for tests and debugging.
  return { status = status, headers = headers, body = body, reused = reused_times }
end

function Transport:request(req)
  if type(req) ~= "table" then error("request expects a table", 2) end
  local perr = M.check_phase()
  if perr then return nil, perr end
  local ngx = ngx_api()
  local url = req.url
  if type(url) ~= "string" then error("request: url must be a string", 2) end
  local u, why = M.parse_url(url)
  if not u then return nil, network_error("other", "bad URL: " .. why, false) end
  -- through a proxy, http:// goes in absolute form (with the proxy's credentials); https:// goes through a tunnel,
  -- where the API host sees the path
  local to_proxy = self.proxy and u.scheme == "http"
  local target = to_proxy and (u.scheme .. "://" .. u.authority .. u.path) or u.path
  local payload, bad = build_request(req, target, u.authority, to_proxy and self.proxy.auth or nil)
  if not payload then
    return nil, errors.new{ code = errors.HEADER_VALUE, kind = "client", sent = false,
      message = "the request header '" .. gsub(bad, "[%c:]", "?") .. "' holds CR, LF, NUL or a bad name" }
  end
  local timeout = req.timeout or self.timeout
  local connect_ms = floor((req.connect_timeout or self.connect_timeout) * 1000)
  if connect_ms < 1 then connect_ms = 1 end
  ngx.update_time()
  local deadline = ngx.now() + timeout
  -- A pooled connection that the server closed while it sat idle is dropped and the request goes out on another
  -- one, within the contract (see exchange). nginx already drops pooled connections the server closes while they
  -- sit in the pool, so this covers the race of a close just as the connection is taken. Each stale connection
  -- is closed as it is found, so the pool empties in a few rounds; retry_stale = false turns this off.
  for _ = 1, STALE_RETRIES do
    local res, err, stale = exchange(self, ngx, req, u, payload, deadline, connect_ms)
    if not stale then return res, err end
  end
  return nil, network_error("other", "the server closed the connection without answering", true)
end

-- nil when a call may run in the current phase, else the BlockingCallNotAllowed error (for callers that want
-- to refuse before doing other work, e.g. before a rate-limit wait that would need ngx.sleep).
function Transport:check_phase()
  return M.check_phase()
end

function Transport:close()
  -- Connections belong to the worker's pool, not to this object: nothing to release.
end

return M
