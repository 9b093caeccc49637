-- The libcurl transport for plain Lua: one kept-alive connection per client (the C session owns the easy handle),
-- and a multi for call_many. It keeps the transport contract (transport/contract.lua): the C side gives libcurl a
-- pre-request callback that refuses to send a request that is not repeatable a second time, and that alone says
-- whether a request may have left (src/http.c, on_prereq).

local core = require("essbasic.core")
local contract = require("essbasic.transport.contract")

local setmetatable, pairs, error = setmetatable, pairs, error

local M = {}

local network_error = contract.network_error

-- The error object of a failed transfer, as the C side reports it: the one place this transport builds one.
local function failure(kind, message, sent)
  return network_error(kind, message, sent)
end

local Transport = { __name = "essbasic.transport.curl", concurrency = "batch" } -- call_many: libcurl's multi
Transport.__index = Transport

function M.session_options(opts)
  return {
    timeout = opts.timeout, connect_timeout = opts.connect_timeout, proxy = opts.proxy,
    ca_file = opts.ca_file, ca_path = opts.ca_path, ssl_verify = opts.ssl_verify,
    max_response_bytes = opts.max_response_bytes,
  }
end

-- What an http table (essbasic.new{ http = ... }) may ask that libcurl here cannot honour, and what to do instead.
-- libcurl keeps its own connection cache per session (one per client, one per call_many multi), kept alive until
-- the server or libcurl closes it: it has no idle timeout, size or name to set from here.
local NOT_HONOURED = {
  keepalive_timeout = "libcurl keeps a connection until the server closes it; leave keepalive_timeout out",
  pool_size = "libcurl keeps one connection cache per client; use fewer clients, or call_many's concurrency",
  pool = "each client has its own libcurl connection cache already; leave pool out",
}

-- opts: the http table of essbasic.new (client.HTTP_OPTIONS). Raises on an option it cannot honour.
function M.new(opts)
  opts = opts or {}
  for name, advice in pairs(NOT_HONOURED) do
    if opts[name] ~= nil then
      error("essbasic: the libcurl transport cannot honour http." .. name .. " (" .. advice .. ")", 0)
    end
  end
  local options = M.session_options(opts)
  return setmetatable({ session = core.http_session(options), options = options }, Transport)
end

-- req as in the contract; the C session reads timeout, connect_timeout, response_headers and repeatable from it.
-- req.response_headers = false: res.headers is nil (the C session skips building the map).
function Transport:request(req)
  local status, headers, body, sent = self.session:request(req.method, req.url, req.headers, req.body, req)
  if not status then return nil, failure(headers, body, sent) end
  return { status = status, headers = headers, body = body }
end

-- Many requests at once over libcurl's multi interface (the call_many scheduler).
local Batch = { __name = "essbasic.transport.curl.batch" }
Batch.__index = Batch

-- One multi per transport, kept between batches so its connections stay alive.
function Transport:batch()
  self.multi = self.multi or core.http_multi(self.options)
  return setmetatable({ multi = self.multi }, Batch)
end

-- After a batch that could not finish (an error raised in the scheduler): the multi and whatever transfers it
-- still holds are dropped, so nothing of that batch can finish inside the next one.
function Transport:abandon_batch()
  if self.multi then self.multi:close() end
  self.multi = nil
end

-- id: any Lua value the caller wants back with the result (the scheduler passes the call object).
function Batch:add(id, req)
  self.multi:add(id, req.method, req.url, req.headers, req.body, req)
end

-- Waits up to `seconds` → a list of { id =, res = { status, headers, body } } or { id =, err = }.
function Batch:poll(seconds)
  local finished = self.multi:poll(seconds)
  local out = {}
  for i = 1, #finished do
    local f = finished[i]
    if f.status then
      out[i] = { id = f.id, res = { status = f.status, headers = f.headers, body = f.body } }
    else
      out[i] = { id = f.id, err = failure(f.err_kind, f.err_message, f.sent) }
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
