-- HTTP/1.1 framing for the ngx transport: the request as one string, and the response read from a cosocket into a
-- record. It knows nothing of pools, proxies or TLS: it is handed a connected socket and a deadline.
--
--   build_request(req, target, host, proxy_auth) → the request bytes, or nil and the offending header name
--   reader(ngx, sock, opts)                       → a reader: every receive within the request's total deadline
--   read_head(r)      → { status, headers, minor } (1xx skipped), or nil, the socket's error text, the part read
--   read_response(r, req) → { status, headers, body, keep }, or nil, err (an error object, the socket closed),
--                           unanswered (true when the connection closed before a byte of the answer)
-- headers: names lowercase, repeats joined by ", ". keep: the connection may carry another request (the whole
-- body was read and neither side asked to close).

local contract = require("essbasic.transport.contract")
local network_error = contract.network_error

local tostring, tonumber, setmetatable, pairs = tostring, tonumber, setmetatable, pairs
local lower, find, match = string.lower, string.find, string.match
local concat = table.concat
local floor = math.floor

local M = {}

M.MAX_HEADER_BYTES = 64 * 1024
local READ_CHUNK = 65536

local function header_unsafe(v)
  return find(v, "\r", 1, true) or find(v, "\n", 1, true) or find(v, "\0", 1, true)
end

-- The request head and body as one string (one send; one packet for small calls). Host, Content-Length and
-- the framing headers are ours; a Host in req.headers (the signed one) wins over the URL's authority.
function M.build_request(req, target, host, proxy_auth)
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

-- A reader around one socket: a total deadline for the response, the size cap, and error construction.
local Reader = {}
Reader.__index = Reader

-- opts: deadline (ngx.now() seconds), connect_ms, max (bytes of body), where (host:port, for messages)
function M.reader(ngx, sock, opts)
  return setmetatable({ ngx = ngx, sock = sock, deadline = opts.deadline, connect_ms = opts.connect_ms,
    max = opts.max, where = opts.where }, Reader)
end

-- Closes the socket (a connection whose response was not read whole is never reused) and builds the error.
function Reader:fail(kind, what, sent)
  self.sock:close()
  return nil, network_error(kind, what .. " (" .. self.where .. ")", sent)
end

function Reader:remaining_ms()
  local ngx = self.ngx
  ngx.update_time()
  local left = floor((self.deadline - ngx.now()) * 1000)
  return left > 0 and left or 0
end

-- Every receive gets what is left of the request's total timeout, so a slow drip cannot outlast it.
function Reader:arm()
  local left = self:remaining_ms()
  if left <= 0 then return false end
  self.sock:settimeouts(self.connect_ms, left, left)
  return true
end

function Reader:receive(pattern)
  if not self:arm() then return nil, "timeout" end
  return self.sock:receive(pattern)
end

function Reader:receiveany(max)
  if not self:arm() then return nil, "timeout" end
  return self.sock:receiveany(max)
end

-- The request was written: whatever fails now, it may have reached the server.
local function read_error(r, err, what)
  if err == "timeout" then return r:fail("timeout", what .. ": timed out", true) end
  return r:fail("other", what .. ": " .. tostring(err), true)
end

-- Status line and headers; 1xx interim responses are skipped. On failure: nil, the socket's error text (or what
-- was wrong), the part being read ("status" or "headers"), and for the status line whatever bytes did arrive.
function M.read_head(r)
  while true do
    local line, err, partial = r:receive("*l")
    if not line then return nil, err, "status", partial end
    local status = match(line, "^HTTP/1%.[01] (%d%d%d)")
    if not status then return nil, "malformed status line", "status", line end
    status = tonumber(status)
    local headers, size = {}, 0
    while true do
      local h
      h, err = r:receive("*l")
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
    if status >= 200 or status < 100 then
      return { status = status, headers = headers, minor = match(line, "^HTTP/1%.([01])") }
    end
  end
end

local function read_chunked(r)
  local parts, total = {}, 0
  while true do
    local line, err = r:receive("*l")
    if not line then return read_error(r, err, "reading a chunk size") end
    -- chunk extensions (";name=value") are allowed and ignored
    local hex = match(line, "^%s*(%x+)%s*[;]?")
    if not hex or #hex > 8 then return r:fail("other", "malformed chunk size line", true) end
    local size = tonumber(hex, 16)
    if size == 0 then
      -- trailers, up to the empty line; their fields are not merged into the headers
      repeat
        line, err = r:receive("*l")
        if not line then return read_error(r, err, "reading the trailers") end
      until line == ""
      return concat(parts)
    end
    total = total + size
    if total > r.max then return r:fail("too_large", "chunked body over max_response_bytes", true) end
    local data
    data, err = r:receive(size)
    if not data then return read_error(r, err, "reading a chunk") end
    parts[#parts + 1] = data
    local crlf
    crlf, err = r:receive(2)
    if crlf ~= "\r\n" then
      if not crlf then return read_error(r, err, "reading a chunk") end
      return r:fail("other", "chunk not followed by CRLF", true)
    end
  end
end

local function read_until_close(r)
  local parts, total = {}, 0
  while true do
    local data, err = r:receiveany(READ_CHUNK)
    if not data then
      if err == "closed" then return concat(parts) end
      return read_error(r, err, "reading the body")
    end
    total = total + #data
    if total > r.max then return r:fail("too_large", "body over max_response_bytes", true) end
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

-- The error of a head that could not be read, after the request was written. unanswered: the connection closed
-- (or was reset) before a single byte of the answer.
local function head_error(r, why, part, partial)
  local unanswered = part == "status" and (partial == nil or partial == "")
    and (why == "closed" or find(tostring(why), "reset", 1, true) ~= nil)
  if why == "timeout" then
    local _, err = read_error(r, "timeout", "waiting for the response")
    return nil, err, false
  end
  if unanswered then
    local _, err = r:fail("closed", "the connection closed after the request was sent, before any answer", true)
    return nil, err, true
  end
  local _, err = r:fail("other", "reading the response " .. part .. ": " .. tostring(why), true)
  return nil, err, false
end

-- The whole response to req (its method decides whether a body follows). Socket errors after the request was
-- written are sent = true: the server may have acted on it.
function M.read_response(r, req)
  local head, why, part, partial = M.read_head(r)
  if not head then return head_error(r, why, part, partial) end
  local status, headers, minor = head.status, head.headers, head.minor
  local body, err
  local keep = minor == "1" and not has_token(headers.connection, "close")
    or minor == "0" and has_token(headers.connection, "keep-alive")
  local te, cl = headers["transfer-encoding"], headers["content-length"]
  if req.method == "HEAD" or status == 204 or status == 304 then
    body = ""
  elseif te and not has_token(te, "identity") then
    if not has_token(te, "chunked") then return r:fail("other", "unsupported transfer-encoding " .. te, true) end
    body, err = read_chunked(r)
  elseif cl then
    local n = match(cl, "^(%d+)$")
    n = n and #n <= 15 and tonumber(n)
    if not n then return r:fail("other", "malformed content-length", true) end
    if n > r.max then return r:fail("too_large", "content-length " .. n .. " over max_response_bytes", true) end
    if n == 0 then
      body = ""
    else
      body, err = r:receive(n)
      if not body then return read_error(r, err, "reading the body") end
    end
  else
    keep = false
    body, err = read_until_close(r)
  end
  if not body then return nil, err end
  return { status = status, headers = headers, body = body, keep = keep }
end

return M
