-- One call of the client, as an object: the params validated and encoded once, then attempts until one of three
-- named outcomes. client:call and every scheduler of client:call_many drive calls through the same four steps
-- (take_token → next_request → the transport → conclude), so they validate, limit, sign, retry and report alike.
--
--   local c, err = call.begin(client, action, params, call_opts)   -- nil, err when the request is invalid
--   local wait, err = c:take_token()        -- seconds to wait before sending; nil, err: fail-fast asked
--   local req, err = c:next_request()       -- the signed request of the next attempt (transport contract)
--   local outcome = c:conclude(res, err)    -- call.DONE, call.FAILED, or call.RETRY (c.retry_delay seconds)
--   c:result()                              -- resp, nil, meta or nil, err, once DONE or FAILED
-- The call object is also what a scheduler hands the transport as the identity of its transfer.

local api = require("essbasic.api")
local validate = require("essbasic.validate")
local json = require("essbasic.json")
local errors = require("essbasic.errors")
local signer = require("essbasic.signer")
local envelope = require("essbasic.envelope")
local retry = require("essbasic.retry")
local runtime = require("essbasic.runtime")
local personal = require("essbasic.personal")
local correlate = require("essbasic.correlate")

local tostring, setmetatable, format, concat = tostring, setmetatable, string.format, table.concat
local os_time = os.time

local M = {}

M.MAX_REQUEST_BYTES = 10 * 1024 * 1024 -- a TC3-signed POST may carry at most 10 MB

local function outcome(name)
  return setmetatable({}, { __tostring = function() return "essbasic.call." .. name end })
end

M.DONE = outcome("DONE")     -- the API answered with a Response: c.resp, c.meta
M.FAILED = outcome("FAILED") -- no more attempts: c.err
M.RETRY = outcome("RETRY")   -- another attempt after c.retry_delay seconds

local Call = { __name = "essbasic.call" }
Call.__index = Call

local function log(client, level, message)
  if client.logger and (level ~= "debug" or client.debug) then client.logger(level, message) end
end
M.log = log

-- The request body, produced once and signed and sent as it is on every attempt. Validated, one walk does both
-- (validate.request_body); unvalidated, the encoder alone with the schema's shape hint. → body or nil, err.
function M.encode(client, action, params, call_opts)
  params = params or {}
  local want_validation = client.validate
  if call_opts and call_opts.validate ~= nil then want_validation = call_opts.validate end
  local body, why
  if want_validation then
    body, why = validate.request_body(action, params, client.debug_personal_data)
    if not body then return nil, why end
    -- Members the schema marks disabled: sent, as the API's own examples do (docs/builders.md), with one warning
    -- per client and action, so a batch of a thousand such calls logs it once.
    if why and not client.warned_disabled[action] then
      client.warned_disabled[action] = true
      log(client, "warn", format("essbasic: %s sends %s, marked disabled in the API's schema (internal or retired): "
        .. "the service may ignore %s", action, concat(why, ", "), #why == 1 and "it" or "them"))
    end
  else
    body, why = json.encode(params, api.request_hint(action))
    if not body then return nil, errors.new{ kind = "client", code = errors.ENCODE, message = why } end
  end
  if #body > M.MAX_REQUEST_BYTES then
    return nil, errors.new{ kind = "client", code = errors.REQUEST_TOO_LARGE,
      message = format("the request is %d bytes; the API accepts at most %d", #body, M.MAX_REQUEST_BYTES) }
  end
  return body
end

-- The signed headers of one attempt and the endpoint they are for, or nil and an error.
function M.sign(client, action, body, timestamp)
  local creds, err = client.provider.get()
  if not creds then return nil, err end
  local ep = api.host_kind(action) == "file" and client.file_endpoint or client.endpoint
  local headers, bad = signer.headers({ action = action, host = ep.host, body = body, timestamp = timestamp,
    region = client.region, language = client.language, request_client = client.request_client }, creds)
  if not headers then
    return nil, errors.new{ kind = "client", code = errors.HEADER_VALUE,
      message = "the credentials give a value with CR, LF or NUL for the " .. bad .. " header" }
  end
  return headers, ep
end

-- A creating call that may or may not have been carried out: what the caller must do before sending it again,
-- by what the action creates (the actions that create flows are named once, in correlate.FLOWS).
local ADVICE = {
  flows = " Look for the flows with DescribeFlowDetailInfo (or in the callbacks) before creating them again.",
  other = " Check the result with a Describe action before sending it again.",
}

local function outcome_unknown(action, err)
  local how = correlate.FLOWS[action] ~= nil and ADVICE.flows or ADVICE.other
  return errors.new{ kind = err.kind, code = errors.OUTCOME_UNKNOWN, cause = err, network = err.network,
    http_status = err.http_status, request_id = err.request_id, sent = err.sent,
    message = action .. " may or may not have been carried out (" .. tostring(err.code) .. ": "
      .. tostring(err.message) .. ")." .. how }
end

-- call_opts: the per-call options (deadline, retry, timeout, validate, wait), read only.
function M.begin(client, action, params, call_opts)
  local correlation
  params, correlation = correlate.params(client, action, params, call_opts)
  local body, err = M.encode(client, action, params, call_opts)
  if not body then
    err.attempts = 0
    return nil, err
  end
  local deadline = call_opts.deadline or client.deadline
  return setmetatable({
    client = client, action = action, params = params, body = body, opts = call_opts, correlation = correlation,
    policy = call_opts.retry ~= nil and retry.policy(call_opts.retry) or client.retry,
    readonly = api.is_readonly(action),
    deadline = deadline,
    started = deadline and runtime.interval_clock(), -- only a deadline reads it
    attempts = 0, history = {},
  }, Call)
end

-- A call that ended before it began (an invalid request): it only carries its error.
function M.failed(err)
  return setmetatable({ err = err, attempts = 0, history = {} }, Call)
end

-- Ends the call with err (attempts and history attached) → FAILED.
function Call:fail(err)
  err.attempts, err.history = self.attempts, self.history
  -- the keys that let client:resolve find what a lost answer would have said (essbasic.correlate)
  if self.correlation and err.code == errors.OUTCOME_UNKNOWN then err.correlation = self.correlation end
  self.err = err
  return M.FAILED
end

-- A token from the client's limiter → seconds to wait first, or nil and an error (fail-fast asked).
function Call:take_token()
  local limiter = self.client.limiter
  if not limiter then return 0 end
  local wait = limiter:take(self.action, self.opts.wait)
  if wait then return wait end
  return nil, errors.new{ kind = "client", code = errors.RATE_LIMITED, attempts = self.attempts,
    history = self.history,
    message = "no request token left for " .. self.action .. " this second and the call asked not to wait" }
end

-- The signed request of the next attempt (fresh timestamp), or nil and an error.
function Call:next_request()
  local client = self.client
  local timeout = self.opts.timeout or client.timeout
  if self.deadline then
    local left = self.deadline - (runtime.interval_clock() - self.started)
    if left <= 0 then
      return nil, errors.new{ kind = "client", code = errors.DEADLINE, attempts = self.attempts,
        history = self.history, cause = self.last_error,
        message = "the call's deadline passed before an attempt could be made" }
    end
    if left < timeout then timeout = left end
  end
  local headers, ep = M.sign(client, self.action, self.body, os_time())
  if not headers then
    ep.attempts, ep.history = self.attempts, self.history
    return nil, ep
  end
  -- conclude reads only status and body: the transport need not build the response's header map. Only a
  -- read-only action may be sent twice by the transport itself (transport/contract.lua).
  local req = { method = "POST", url = ep.url, headers = headers, body = self.body, timeout = timeout,
    response_headers = false, repeatable = self.readonly }
  self.attempts = self.attempts + 1
  if client.debug then
    log(client, "debug", "essbasic request " .. self.action .. " " .. req.url .. " "
      .. json.encode(signer.redact(req.headers)) .. " body " .. #self.body .. " bytes")
  end
  return req
end

-- What the transport gave back → DONE (c.resp, c.meta), FAILED (c.err) or RETRY (c.retry_delay).
function Call:conclude(res, err)
  local client = self.client
  if res then
    local resp
    resp, err = envelope.decode(res.status, res.body)
    if err then
      -- The API's message (or a quoted answer) can echo the request's own names, mobiles and ID numbers.
      if client.debug_personal_data then
        err.personal_data_shown = true
      else
        err.message = personal.scrub(err.message, self.params)
      end
    end
    if client.debug then
      log(client, "debug", "essbasic response " .. self.action .. " HTTP " .. tostring(res.status) .. " "
        .. (resp and ("RequestId " .. tostring(resp.RequestId)) or tostring(err)))
    end
    if resp then
      self.resp, self.meta = resp, { attempts = self.attempts, history = self.history, correlation = self.correlation }
      return M.DONE
    end
  end
  local decision, class = retry.decide(self.policy, err, self.readonly, self.attempts)
  self.history[#self.history + 1] = { code = err.code, class = class }
  self.last_error = err
  if decision == "retry" then
    local delay = retry.delay(self.policy, self.attempts)
    if not self.deadline or runtime.interval_clock() - self.started + delay < self.deadline then
      log(client, "info", format("essbasic: %s attempt %d failed with %s; retrying in %.2fs", self.action,
        self.attempts, tostring(err.code), delay))
      self.retry_delay = delay
      return M.RETRY
    end
  end
  if (class == "unknown" or class == "unread") and not self.readonly then err = outcome_unknown(self.action, err) end
  return self:fail(err)
end

-- A call that raised (a bug, or a caller's credentials provider) ends as an error, never as a hole in a batch.
-- After an attempt of a creating action, its outcome is unknown.
function Call:fail_raised(why)
  local err = errors.new{ kind = "client", code = errors.UNEXPECTED, sent = self.attempts > 0,
    message = "the call raised an error: " .. tostring(why) }
  if self.attempts > 0 and not self.readonly then err = outcome_unknown(self.action, err) end
  return self:fail(err)
end

-- resp, nil, meta or nil, err: the usual `local resp, err = ...; if err then` holds, and the metadata
-- ({ attempts, history }) is the third value for those who want it (the error carries the same members).
function Call:result()
  if self.resp then return self.resp, nil, self.meta end
  return nil, self.err
end

return M
