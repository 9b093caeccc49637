-- The cosocket transport for nginx (OpenResty, or Debian's nginx with libnginx-mod-http-lua): HTTP/1.1 over
-- ngx.socket.tcp, so a request waiting for the API yields to the other requests of the worker instead of
-- blocking it the way a libcurl call would.
--
-- request(req) → { status, headers (names lowercase, repeats joined by ", "), body } or nil, err, as the transport
-- contract (transport/contract.lua) says, resending only what it allows. The object keeps no per-request state:
-- one client, made once per worker, serves all concurrent requests. This file holds the object, its options and
-- the order of one exchange; the jobs live beside it:
--   ngx/connect.lua   the URL, the TCP connect, the proxy's CONNECT tunnel, the TLS handshake (nothing sent yet)
--   ngx/http1.lua     the request's bytes, and the response read into { status, headers, body, keep }
--   ngx/pool.lua      the pool key, the stale-connection rule, handing a connection back
--
-- TLS: certificate verification is on by default (ssl_verify = false turns it off). nginx checks against
-- `lua_ssl_trusted_certificate` (e.g. /etc/ssl/certs/ca-certificates.crt) with `lua_ssl_verify_depth`; without
-- that directive every verified handshake fails. ca_file / ca_path (the curl transport's) are refused here with
-- what to do instead: nginx has one trust store per http block.
--
-- Proxy: `proxy = "http://[user:password@]host:port"` carries https:// requests through a CONNECT tunnel, TLS end to
-- end with the API host (SNI and certificate checks name the API host, not the proxy), and sends http:// requests
-- to the proxy with the absolute URL. Credentials (percent-encoded in the URL, as for libcurl) go out as
-- Proxy-Authorization: Basic, and nowhere else: messages name the proxy by host and port. Tunnels are pooled per
-- proxy, credentials and API host like any connection; a refused tunnel is a connect error (nothing sent).

local errors = require("essbasic.errors")
local contract = require("essbasic.transport.contract")
local http1 = require("essbasic.transport.ngx.http1")
local connect = require("essbasic.transport.ngx.connect")
local pool = require("essbasic.transport.ngx.pool")
local network_error = contract.network_error

local type, tostring, setmetatable, pairs, error = type, tostring, setmetatable, pairs, error
local gsub, format = string.gsub, string.format
local floor = math.floor

local M = {}

M.DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
M.DEFAULT_KEEPALIVE_MS = pool.DEFAULT_KEEPALIVE_MS
M.MAX_HEADER_BYTES = http1.MAX_HEADER_BYTES
M.parse_url = connect.parse_url

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

-- Every option the ngx transport reads. Options come flat (as ngx.lua has always taken them) or in the nested
-- `http` table (essbasic.new{ http = { ... } }), which wins where both say something; a name the nested table
-- holds that is not here is refused, as a typo would be.
M.OPTIONS = {
  timeout = "number", connect_timeout = "number", ssl_verify = "boolean", proxy = "string",
  max_response_bytes = "number",
  keepalive_timeout = "number", -- seconds a connection may sit idle in the pool (default 60; 0: no limit)
  pool_size = "number",         -- connections kept per pool key and worker (default: lua_socket_pool_size)
  pool = "string",              -- a name that keeps this transport's connections apart from others'
  retry_stale = "boolean",      -- false: never replace a stale pooled connection (see ngx/pool.lua)
  ca_file = "refused", ca_path = "refused",
}

-- What to do instead of ca_file / ca_path: nginx has one trust store per http block, which cosockets use.
function M.ca_refusal(name)
  return "essbasic: " .. name .. " cannot be used inside nginx (cosockets check certificates against nginx's "
    .. "trust store, not a file given per client): put `lua_ssl_trusted_certificate /path/to/ca.pem;` (and "
    .. "`lua_ssl_verify_depth 5;`) in nginx.conf's http block and leave " .. name .. " out"
end

-- level: the error level of new()'s caller.
local function read_options(opts, level)
  local nested = opts.http
  if nested ~= nil and type(nested) ~= "table" then error("essbasic: the http option must be a table", level + 1) end
  local o = {}
  for name in pairs(M.OPTIONS) do
    local v = opts[name]
    if nested and nested[name] ~= nil then v = nested[name] end
    -- false has always meant "not set" here, except for the one boolean that defaults to true
    if v == false and M.OPTIONS[name] ~= "boolean" then v = nil end
    o[name] = v
  end
  for name in pairs(nested or {}) do
    if not M.OPTIONS[name] then
      error("essbasic: the ngx transport has no option http." .. tostring(name), level + 1)
    end
  end
  for name, want in pairs(M.OPTIONS) do
    local v = o[name]
    if v ~= nil then
      if want == "refused" then error(M.ca_refusal(name), level + 1) end
      -- pool has always been tostring'd; a number keeps working
      if type(v) ~= want and not (name == "pool" and type(v) == "number") then
        error(format("essbasic: the ngx transport's %s must be a %s, got %s", name, want, type(v)), level + 1)
      end
    end
  end
  if o.keepalive_timeout and o.keepalive_timeout < 0 then
    error("essbasic: keepalive_timeout must be 0 (no limit) or more seconds", level + 1)
  end
  if o.pool_size and (o.pool_size < 1 or o.pool_size ~= floor(o.pool_size)) then
    error("essbasic: pool_size must be a whole number of connections, 1 or more", level + 1)
  end
  return o
end

-- opts: see M.OPTIONS (flat, or nested in opts.http).
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("transport options must be a table", 2) end
  local o = read_options(opts, 3)
  local proxy
  if o.proxy and o.proxy ~= "" then proxy = connect.parse_proxy(o.proxy, 3) end
  return setmetatable({
    timeout = o.timeout or 60,
    connect_timeout = o.connect_timeout or 10,
    ssl_verify = o.ssl_verify ~= false,
    proxy = proxy,
    max_response_bytes = o.max_response_bytes or M.DEFAULT_MAX_RESPONSE_BYTES,
    keepalive_ms = floor((o.keepalive_timeout or M.DEFAULT_KEEPALIVE_MS / 1000) * 1000),
    pool_size = o.pool_size,
    retry_stale = o.retry_stale ~= false,
    pool = o.pool and tostring(o.pool) or "",
  }, Transport)
end

-- One exchange on one connection. Returns res, or nil, err, stale: a pooled connection the stale rule
-- (ngx/pool.lua) lets the request leave it for another.
local function exchange(self, ngx, req, u, payload, deadline, connect_ms)
  local sock, err = connect.open(ngx, u, { pool_key = pool.key(u, self), proxy = self.proxy,
    ssl_verify = self.ssl_verify, connect_ms = connect_ms })
  if not sock then return nil, err end
  local reused_times = sock:getreusedtimes()
  local reused = reused_times > 0
  local r = http1.reader(ngx, sock, { deadline = deadline, connect_ms = connect_ms, max = self.max_response_bytes,
    where = u.authority })
  if not r:arm() then return r:fail("timeout", "no time left to send", false) end
  local sent_bytes
  sent_bytes, err = sock:send(payload)
  if not sent_bytes then
    if pool.replace_after_write_failure(self, reused, err) then
      sock:close()
      return nil, nil, true
    end
    if err == "timeout" then return r:fail("timeout", "sending the request: timed out", true) end
    return r:fail("other", "sending the request: " .. tostring(err), true)
  end
  local res, unanswered
  res, err, unanswered = http1.read_response(r, req)
  if not res then
    if unanswered and pool.replace_unanswered(self, reused, req) then return nil, nil, true end
    return nil, err
  end
  pool.release(sock, res.keep, self)
  -- reused: how many requests this connection carried before (0 = new); for tests and debugging.
  return { status = res.status, headers = res.headers, body = res.body, reused = reused_times }
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
  local payload, bad = http1.build_request(req, target, u.authority, to_proxy and self.proxy.auth or nil)
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
  -- one, as the stale rule allows (ngx/pool.lua). nginx already drops pooled connections the server closes while
  -- they sit in the pool, so this covers the race of a close just as the connection is taken; retry_stale =
  -- false turns it off.
  for _ = 1, pool.STALE_ROUNDS do
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
