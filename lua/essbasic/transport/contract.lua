-- The transport contract: what the client hands a transport, what it gets back, and the one rule about sending
-- twice. Every transport (libcurl, cosockets, or an object of the caller's with a request method) is held to it.
--
-- A request:
--   method, url, headers, body     what to send (headers: name → value)
--   timeout, connect_timeout       seconds
--   response_headers               false: the caller reads only status and body (a transport may skip the map)
--   repeatable                     true: the request may be sent a second time (read-only actions, from the
--                                  schema); absent or false: it must not
-- A result is { status = number, headers = table | nil, body = string }, or nil and an error object whose `sent`
-- says whether any of the request may have reached the server (false only when that is certain).
--
-- The rule: a transport sends a request a second time only when it is repeatable, or when it can prove that no
-- complete request left the machine (a pooled connection found dead before the request was written, a write
-- that failed part-way). "No byte of the answer arrived" is not proof: a server that carried the request out and
-- then lost the connection looks exactly like a server that closed an idle connection.

--
-- What a transport declares: its concurrency model, the field `concurrency` (one of M.CONCURRENCY), from which the
-- scheduler (essbasic.scheduler) picks how client:call_many runs many calls. An object without one is "serial".
--   "serial"          request(req) only: calls run one after another
--   "batch"           request(req), and batch() → an object with add(id, req) and poll(seconds) → a list of
--                     { id =, res = } or { id =, err = }, and abandon_batch() (drop what a batch left behind)
--   "light_threads"   request(req) yields (nginx cosockets): calls run at once on runtime.light_threads
-- A transport object of the caller's may declare "light_threads" when its request yields; it is checked to be
-- able to (inside nginx).

local errors = require("essbasic.errors")
local runtime = require("essbasic.runtime")

local type, tostring, pcall, setmetatable, error = type, tostring, pcall, setmetatable, error

local M = {}

M.CONCURRENCY = { serial = true, batch = true, light_threads = true }

-- The concurrency model a transport declares, checked against what it offers and where the code runs.
function M.concurrency(transport)
  local model = transport.concurrency or "serial"
  if not M.CONCURRENCY[model] then
    error("essbasic: a transport's concurrency must be serial, batch or light_threads, not " .. tostring(model), 0)
  end
  if model == "batch" and (type(transport.batch) ~= "function" or type(transport.abandon_batch) ~= "function") then
    error("essbasic: a transport of concurrency 'batch' needs batch() and abandon_batch()", 0)
  end
  if model == "light_threads" and not runtime.light_threads then
    error("essbasic: a transport of concurrency 'light_threads' runs only inside nginx", 0)
  end
  return model
end

-- The network kinds a transport reports, each with the start of its message.
M.NETWORK_KINDS = {
  dns = "could not resolve the host",
  connect = "could not connect",
  tls = "TLS handshake or certificate check failed",
  timeout = "timed out",
  closed = "connection closed",
  too_large = "response too large",
  other = "transfer failed",
}

-- The error object of a failed exchange. sent: false only when nothing of the request can have reached the server.
function M.network_error(kind, message, sent)
  if kind == "too_large" then
    return errors.new{ code = errors.RESPONSE_TOO_LARGE, kind = "network", network = kind, sent = sent,
      message = "the response exceeded max_response_bytes" }
  end
  if not M.NETWORK_KINDS[kind] then kind = "other" end
  return errors.new{ code = errors.NETWORK, kind = "network", network = kind, sent = sent,
    message = M.NETWORK_KINDS[kind] .. ": " .. tostring(message) }
end

-- May a request that may have reached the server be sent again? Only a repeatable one.
function M.may_resend(req)
  return req.repeatable == true
end

-- A transport object of the caller's, held to the contract: a raised error or a result of the wrong shape becomes
-- a network error whose outcome is unknown (sent = true), so the client's retry rules still decide, and a bug in
-- the caller's transport can neither crash a batch nor pass for a success.
local Checked = { __name = "essbasic.transport.checked" }
Checked.__index = Checked

local function broken(why)
  return nil, M.network_error("other", "the transport " .. why, true)
end

function Checked:request(req)
  local ok, res, err = pcall(self.inner.request, self.inner, req)
  if not ok then return broken("raised: " .. tostring(res)) end
  if res == nil then
    if errors.is_error(err) then
      if err.sent == nil then err.sent = true end
      return nil, err
    end
    return broken("failed: " .. tostring(err))
  end
  if type(res) ~= "table" or type(res.status) ~= "number" or type(res.body) ~= "string" then
    return broken("returned something other than { status = number, body = string }")
  end
  return res
end

function Checked:check_phase()
  if type(self.inner.check_phase) == "function" then return self.inner:check_phase() end
  return nil
end

function Checked:close()
  if type(self.inner.close) == "function" then self.inner:close() end
end

-- The caller's object keeps its declared concurrency; one without a declaration is "serial", except inside nginx,
-- where a request() that did not yield would block the worker anyway, and one that does runs on light threads.
function M.checked(obj)
  local model = obj.concurrency
  if model == nil then model = runtime.light_threads and "light_threads" or "serial" end
  if model ~= "serial" and model ~= "light_threads" then
    error("essbasic: a transport object of the caller's declares concurrency serial or light_threads", 0)
  end
  return setmetatable({ inner = obj, concurrency = model }, Checked)
end

return M
