-- The client: one call goes params → validate → encode (once) → [rate limit → sign → send → decode]×attempts.
-- Per-action methods (client:ChannelCreateFlowGroupByFiles{…}) are looked up in the schema, not written out.

local api = require("essbasic.api")
local validate = require("essbasic.validate")
local json = require("essbasic.json")
local errors = require("essbasic.errors")
local signer = require("essbasic.signer")
local envelope = require("essbasic.envelope")
local credentials = require("essbasic.credentials")
local transport_mod = require("essbasic.transport")
local ratelimit = require("essbasic.ratelimit")
local retry = require("essbasic.retry")
local runtime = require("essbasic.runtime")

local type, tostring, setmetatable, error, pairs, floor = type, tostring, setmetatable, error,
  pairs, math.floor
local match, format = string.match, string.format
local os_time = os.time

local M = {}

M.VERSION = "0.1.0"
M.DEFAULT_ENDPOINT = "https://essbasic.tencentcloudapi.com"
M.DEFAULT_FILE_ENDPOINT = "https://file.ess.tencent.cn"
M.MAX_REQUEST_BYTES = 10 * 1024 * 1024 -- a TC3-signed POST may carry at most 10 MB

local Client = { __name = "essbasic.client" }
local methods = {}

-- Every option new() takes; anything else is a typo and raises.
local OPTIONS = {
  secret_id = "string", secret_key = "string", token = "string", credentials = "table",
  endpoint = "string", file_endpoint = "string", region = "string", language = "string",
  timeout = "number", connect_timeout = "number", proxy = "string", ca_file = "string", ca_path = "string",
  ssl_verify = "boolean", max_response_bytes = "number", validate = "boolean", transport = "any",
  retry = "any", rate_limit = "any", request_client = "string", logger = "function", debug = "boolean",
  deadline = "number",
}

local function check_options(opts)
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then error("essbasic.new: unknown option '" .. tostring(k) .. "'", 4) end
    if want ~= "any" and type(v) ~= want then
      error("essbasic.new: option '" .. k .. "' must be a " .. want .. ", got " .. type(v), 4)
    end
  end
end

-- "https://host[:port][/]" → { url = "https://host[:port]/", host = "host[:port]" }
local function parse_endpoint(name, value)
  if not signer.header_safe(value) then error("essbasic.new: " .. name .. " contains CR, LF or NUL", 4) end
  local scheme, authority = match(value, "^(https?)://([^/?#@%s]+)/?$")
  if not scheme then
    error("essbasic.new: " .. name .. " must look like https://host[:port], got '" .. value .. "'", 4)
  end
  return { url = scheme .. "://" .. authority .. "/", host = authority }
end

local function header_option(opts, name, default)
  local v = opts[name]
  if v == nil then return default end
  if not signer.header_safe(v) then error("essbasic.new: " .. name .. " contains CR, LF or NUL", 4) end
  return v
end

-- The credentials of a client: explicit keys, a provider, or the default chain (environment, profile file).
local function credentials_provider(opts)
  if opts.credentials then
    if not credentials.is_provider(opts.credentials) then
      error("essbasic.new: credentials must be a provider from essbasic.credentials", 4)
    end
    return opts.credentials
  end
  if opts.secret_id or opts.secret_key then
    return credentials.static{ secret_id = opts.secret_id, secret_key = opts.secret_key, token = opts.token }
  end
  return credentials.default_chain()
end

function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("essbasic.new expects a table of options", 3) end
  check_options(opts)
  local request_client = "SDK_LUA_ESSBASIC_" .. M.VERSION
  if opts.request_client then
    if not match(opts.request_client, "^[%w%-_ ,;.]+$") or #opts.request_client > 100 then
      error("essbasic.new: request_client may hold only letters, digits and -_ ,;. (at most 100)", 3)
    end
    request_client = request_client .. "; " .. opts.request_client
  end
  local self = {
    endpoint = parse_endpoint("endpoint", opts.endpoint or M.DEFAULT_ENDPOINT),
    file_endpoint = parse_endpoint("file_endpoint", opts.file_endpoint or M.DEFAULT_FILE_ENDPOINT),
    region = header_option(opts, "region", nil),
    language = header_option(opts, "language", "zh-CN"),
    request_client = request_client,
    provider = credentials_provider(opts),
    validate = opts.validate ~= false,
    timeout = opts.timeout or 60,
    deadline = opts.deadline,
    retry = retry.policy(opts.retry),
    limiter = opts.rate_limit ~= false and ratelimit.new(opts.rate_limit) or nil,
    logger = opts.logger,
    debug = opts.debug or false,
  }
  self.transport = transport_mod.resolve(opts.transport, {
    timeout = self.timeout, connect_timeout = opts.connect_timeout or 10, proxy = opts.proxy,
    ca_file = opts.ca_file, ca_path = opts.ca_path, ssl_verify = opts.ssl_verify,
    max_response_bytes = opts.max_response_bytes,
  })
  return setmetatable(self, Client)
end

function Client.__index(self, key)
  local m = methods[key]
  if m then return m end
  if type(key) == "string" and api.action(key) then
    -- One closure per action, shared by every client.
    m = function(client, params, call_opts) return client:call(key, params, call_opts) end
    methods[key] = m
    return m
  end
  return nil
end

function Client.__tostring(self)
  return "essbasic.client (endpoint=" .. self.endpoint.url .. ")"
end

local function log(self, level, message)
  if self.logger and (level ~= "debug" or self.debug) then self.logger(level, message) end
end

local function check_call_args(action, params)
  if type(action) ~= "string" or not match(action, "^%a%w*$") then
    error("essbasic: the action must be a name like 'DescribeFlowDetailInfo', got " .. tostring(action), 3)
  end
  if params ~= nil and type(params) ~= "table" then
    error("essbasic: params must be a table, got " .. type(params), 3)
  end
end

-- validate and encode: the bytes are produced once and signed and sent as they are on every attempt.
local function encode(self, action, params, call_opts)
  params = params or {}
  local want_validation = self.validate
  if call_opts and call_opts.validate ~= nil then want_validation = call_opts.validate end
  if want_validation then
    local ok, err = validate.request(action, params)
    if not ok then return nil, err end
  end
  local body, why = json.encode(params, api.request_hint(action))
  if not body then return nil, errors.new{ kind = "client", code = errors.ENCODE, message = why } end
  if #body > M.MAX_REQUEST_BYTES then
    return nil, errors.new{ kind = "client", code = errors.REQUEST_TOO_LARGE,
      message = format("the request is %d bytes; the API accepts at most %d", #body, M.MAX_REQUEST_BYTES) }
  end
  return body
end

local function endpoint_for(self, action)
  return api.host_kind(action) == "file" and self.file_endpoint or self.endpoint
end

-- The signed request { method, url, headers, body } for one attempt.
local function sign(self, action, body, timestamp)
  local creds, err = self.provider.get()
  if not creds then return nil, err end
  local ep = endpoint_for(self, action)
  local headers, bad = signer.headers({
    action = action, host = ep.host, body = body, timestamp = timestamp,
    region = self.region, language = self.language, request_client = self.request_client,
  }, creds)
  if not headers then
    return nil, errors.new{ kind = "client", code = errors.HEADER_VALUE,
      message = "the credentials give a value with CR, LF or NUL for the " .. bad .. " header" }
  end
  return { method = "POST", url = ep.url, headers = headers, body = body }
end

-- Returns the signed request without sending it (a dry run): { method, url, headers, body }.
-- prepare_opts.timestamp fixes the time (tests, known answers).
function methods.prepare(self, action, params, prepare_opts)
  check_call_args(action, params)
  local ts = prepare_opts and prepare_opts.timestamp or os_time()
  if type(ts) ~= "number" or ts ~= floor(ts) or ts < 0 then
    error("essbasic: prepare's timestamp must be a non-negative integer", 2)
  end
  local body, err = encode(self, action, params, prepare_opts)
  if not body then return nil, err end
  return sign(self, action, body, ts)
end

-- One attempt: sign with a fresh timestamp, send, decode.
local function attempt(self, action, body, timeout)
  local req, err = sign(self, action, body, os_time())
  if not req then return nil, err end
  req.timeout = timeout
  if self.debug then
    log(self, "debug", "essbasic request " .. action .. " " .. req.url .. " " .. json.encode(signer.redact(req.headers))
      .. " body " .. #body .. " bytes")
  end
  local res
  res, err = self.transport:request(req)
  if not res then return nil, err end
  local resp
  resp, err = envelope.decode(res.status, res.body)
  if self.debug then
    log(self, "debug", "essbasic response " .. action .. " HTTP " .. tostring(res.status) .. " "
      .. (resp and ("RequestId " .. tostring(resp.RequestId)) or tostring(err)))
  end
  return resp, err
end

local function outcome_unknown(action, err)
  local how = (action == "ChannelCreateFlowGroupByFiles" or action == "ChannelCreateFlowByFiles")
    and " Look for the flows with DescribeFlowDetailInfo (or in the callbacks) before creating them again."
    or " Check the result with a Describe action before sending it again."
  return errors.new{ kind = err.kind, code = errors.OUTCOME_UNKNOWN, cause = err, network = err.network,
    http_status = err.http_status, request_id = err.request_id,
    message = action .. " may or may not have been carried out (" .. tostring(err.code) .. ": "
      .. tostring(err.message) .. ")." .. how }
end

-- Sends a call; returns the Response table (with RequestId) and metadata { attempts, history },
-- or nil and an error object (with attempts and history).
function methods.call(self, action, params, call_opts)
  check_call_args(action, params)
  if call_opts ~= nil and type(call_opts) ~= "table" then error("essbasic: call options must be a table", 2) end
  call_opts = call_opts or {}
  local body, err = encode(self, action, params, call_opts)
  if not body then
    err.attempts = 0
    return nil, err
  end
  local policy = call_opts.retry ~= nil and retry.policy(call_opts.retry) or self.retry
  local readonly = api.is_readonly(action)
  local started = runtime.now()
  local deadline = call_opts.deadline or self.deadline
  local history = {}
  local attempts = 0
  while true do
    if self.limiter then
      local wait = self.limiter:take(action, call_opts.wait)
      if not wait then
        return nil, errors.new{ kind = "client", code = errors.RATE_LIMITED, attempts = attempts, history = history,
          message = "no request token left for " .. action .. " this second and the call asked not to wait" }
      end
      if wait > 0 then runtime.sleep(wait) end
    end
    local timeout = call_opts.timeout or self.timeout
    if deadline then
      local left = deadline - (runtime.now() - started)
      if left <= 0 then
        return nil, errors.new{ kind = "client", code = errors.DEADLINE, attempts = attempts, history = history,
          message = "the call's deadline passed before an attempt could be made", cause = err }
      end
      if left < timeout then timeout = left end
    end
    attempts = attempts + 1
    local resp
    resp, err = attempt(self, action, body, timeout)
    if resp then return resp, { attempts = attempts, history = history } end
    local decision, class = retry.decide(policy, err, readonly, attempts)
    history[#history + 1] = { code = err.code, class = class }
    if decision == "retry" then
      local delay = retry.delay(policy, attempts)
      if deadline and runtime.now() - started + delay >= deadline then
        decision = "stop"
      else
        log(self, "info", format("essbasic: %s attempt %d failed with %s; retrying in %.2fs", action, attempts,
          tostring(err.code), delay))
        runtime.sleep(delay)
      end
    end
    if decision == "stop" then
      if class == "unknown" and not readonly then err = outcome_unknown(action, err) end
      err.attempts, err.history = attempts, history
      return nil, err
    end
  end
end

function methods.close(self)
  if self.transport.close then self.transport:close() end
end

M.Client = Client
M.methods = methods

return M
