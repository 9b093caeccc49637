-- Getting a connection for the ngx transport: the URL and proxy URL read, the TCP connect (from nginx's pool when
-- one is kept under the key), the proxy's CONNECT tunnel and the TLS handshake. Every failure here happened before
-- any of the request was written: its error says sent = false.
--
--   parse_url(url)     → { scheme, host, bare_host, port, authority, path }, or nil and why
--   parse_proxy(url)   → the proxy as parse_url reads it, with auth (the Proxy-Authorization value) and auth_id (a
--                        digest that tells credentials apart in the pool key); raises on a proxy it cannot use
--   open(ngx, u, opts) → a connected socket (tunnelled and TLS-wrapped when needed), or nil, err

local contract = require("essbasic.transport.contract")
local http1 = require("essbasic.transport.ngx.http1")
local network_error = contract.network_error

local tostring, tonumber, error = tostring, tonumber, error
local lower, find, sub, match, gsub, char = string.lower, string.find, string.sub, string.match, string.gsub,
  string.char

local M = {}

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

-- level: the error level of the caller's caller (the constructor's user).
function M.parse_proxy(url, level)
  -- the credentials are taken out before anything else reads the URL, so no message can quote them
  local user, password
  local head, userinfo, rest = match(url, "^(%a[%w+.-]*://)([^/?#@]*)@(.*)$")
  if head then
    url = head .. rest
    user, password = match(userinfo, "^([^:]*):(.*)$")
    if not user then user, password = userinfo, "" end
  end
  local p, why = M.parse_url(url)
  if not p or p.scheme ~= "http" then
    error("essbasic: the ngx transport takes an http://[user:password@]host:port proxy ("
      .. (why or "https proxy") .. ")", level + 1)
  end
  if user then
    local core = require("essbasic.core")
    local function unescape(v) return (gsub(v, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end)) end
    p.auth = "Basic " .. core.base64_encode(unescape(user) .. ":" .. unescape(password))
    -- pooled tunnels are kept apart per credentials without putting them in the pool key
    p.auth_id = sub(core.sha256_hex("essbasic proxy pool\0" .. p.auth), 1, 16)
  end
  return p
end

-- Asks the proxy on sock for a tunnel to u (CONNECT host:port) → true, or nil, the error kind and what happened.
-- Within the connect timeout, like libcurl's; the proxy's answer (read by http1.read_head, so capped the same way)
-- must be 2xx, and its headers are dropped.
local function open_tunnel(sock, u, auth)
  local authority = u.host .. ":" .. u.port
  local ok, err = sock:send("CONNECT " .. authority .. " HTTP/1.1\r\nHost: " .. authority .. "\r\n"
    .. (auth and ("Proxy-Authorization: " .. auth .. "\r\n") or "") .. "\r\n")
  if not ok then return nil, err == "timeout" and "timeout" or "connect", "sending CONNECT: " .. tostring(err) end
  local head, why, part = http1.read_head({ receive = function(_, pattern) return sock:receive(pattern) end })
  if not head then
    return nil, why == "timeout" and "timeout" or "connect",
      "reading the proxy's answer to CONNECT (" .. part .. "): " .. tostring(why)
  end
  if head.status < 200 or head.status > 299 then
    return nil, "connect", "the proxy answered HTTP " .. head.status .. " to CONNECT " .. authority
  end
  return true
end

-- opts: pool_key (pool.key's), proxy (parse_proxy's or nil), ssl_verify, connect_ms. A pooled connection comes
-- back as it was left: tunnelled and TLS-wrapped already (its key names the proxy, credentials and API host).
function M.open(ngx, u, opts)
  local sock = ngx.socket.tcp()
  local connect_ms, proxy = opts.connect_ms, opts.proxy
  sock:settimeouts(connect_ms, connect_ms, connect_ms)
  local target = proxy or u
  local ok, err = sock:connect(target.bare_host, target.port, { pool = opts.pool_key })
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
    if proxy then
      local tunnel, kind, what = open_tunnel(sock, u, proxy.auth)
      if not tunnel then
        sock:close()
        return nil, network_error(kind, what .. " (proxy " .. proxy.authority .. ")", false)
      end
    end
    -- The name goes out as SNI and is what nginx checks the certificate against (as lua-resty-http does).
    -- reused_session = false: no session object is wanted (the pooled connection itself is the reuse), and
    -- lua-resty-core 0.1.25 (Debian 12) trips an assertion fetching one after a handshake that finished at once.
    -- A failed certificate check that completes at once can still answer true, with nginx having logged the
    -- verify error and closed the socket (seen with Debian 12's lua-nginx-module; about one run in ten of the
    -- untrusted-certificate spec): a socket that is closed after the handshake failed the handshake.
    local session
    session, err = sock:sslhandshake(false, u.bare_host, opts.ssl_verify)
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

return M
