-- The libcurl transport for plain Lua: one kept-alive connection per client (the C session owns the easy handle).

local core = require("essbasic.core")
local errors = require("essbasic.errors")

local setmetatable = setmetatable

local M = {}

local Transport = { __name = "essbasic.transport.curl" }
Transport.__index = Transport

local NETWORK_MESSAGES = {
  dns = "could not resolve the host",
  connect = "could not connect",
  tls = "TLS handshake or certificate check failed",
  timeout = "timed out",
  other = "transfer failed",
}

-- The C session answers nil, kind, message, sent; this turns that into the error object users see.
function M.network_error(kind, message, sent)
  if kind == "too_large" then
    return errors.new{ code = errors.RESPONSE_TOO_LARGE, kind = "network", network = kind, sent = sent,
      message = "the response exceeded max_response_bytes" }
  end
  return errors.new{ code = errors.NETWORK, kind = "network", network = kind, sent = sent,
    message = (NETWORK_MESSAGES[kind] or NETWORK_MESSAGES.other) .. ": " .. tostring(message) }
end

function M.session_options(opts)
  return {
    timeout = opts.timeout, connect_timeout = opts.connect_timeout, proxy = opts.proxy,
    ca_file = opts.ca_file, ca_path = opts.ca_path, ssl_verify = opts.ssl_verify,
    max_response_bytes = opts.max_response_bytes,
  }
end

function M.new(opts)
  opts = opts or {}
  local options = M.session_options(opts)
  return setmetatable({ session = core.http_session(options), options = options }, Transport)
end

-- req.response_headers = false: res.headers is nil (the C session skips building the map).
function Transport:request(req)
  local status, headers, body, sent = self.session:request(req.method, req.url, req.headers, req.body, req)
  if not status then return nil, M.network_error(headers, body, sent) end
  return { status = status, headers = headers, body = body }
end

-- Many requests at once over libcurl's multi interface (used by client:call_many).
local Batch = { __name = "essbasic.transport.curl.batch" }
Batch.__index = Batch

-- One multi per transport, kept between batches so its connections stay alive.
function Transport:batch()
  self.multi = self.multi or core.http_multi(self.options)
  return setmetatable({ multi = self.multi, ids = {}, next_id = 0 }, Batch)
end

-- id: any value the caller wants back with the result.
function Batch:add(id, req)
  self.next_id = self.next_id + 1
  self.ids[self.next_id] = id
  self.multi:add(self.next_id, req.method, req.url, req.headers, req.body, req)
end

-- Waits up to `seconds` → a list of { id =, res = { status, headers, body } } or { id =, err = }.
function Batch:poll(seconds)
  local finished = self.multi:poll(seconds)
  local out = {}
  for i = 1, #finished do
    local f = finished[i]
    local id = self.ids[f.id]
    self.ids[f.id] = nil
    if f.status then
      out[i] = { id = id, res = { status = f.status, headers = f.headers, body = f.body } }
    else
      out[i] = { id = id, err = M.network_error(f.err_kind, f.err_message, f.sent) }
    end
  end
  return out
end

function Transport:info()
  return self.session:info()
end

function Transport:close()
  self.session:close()
  if self.multi then self.multi:close() end
end

return M
