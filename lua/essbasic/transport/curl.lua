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
  return setmetatable({ session = core.http_session(M.session_options(opts)) }, Transport)
end

function Transport:request(req)
  local status, headers, body, sent = self.session:request(req.method, req.url, req.headers, req.body, req)
  if not status then return nil, M.network_error(headers, body, sent) end
  return { status = status, headers = headers, body = body }
end

function Transport:info()
  return self.session:info()
end

function Transport:close()
  self.session:close()
end

return M
