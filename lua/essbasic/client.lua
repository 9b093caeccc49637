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

local schema_actions = api.schema.actions

local M = {}

M.VERSION = require("essbasic.version")
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
  -- What signer.headers reads, one table per client: the static values set here, the rest by each signing.
  self.sign_parts = { region = self.region, language = self.language, request_client = self.request_client }
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
  -- Every schema action is such a name; only other strings need the pattern.
  if type(action) ~= "string" or not (schema_actions[action] or match(action, "^%a%w*$")) then
    error("essbasic: the action must be a name like 'DescribeFlowDetailInfo', got " .. tostring(action), 3)
  end
  if params ~= nil and type(params) ~= "table" then
    error("essbasic: params must be a table, got " .. type(params), 3)
  end
end

-- validate and encode: the bytes are produced once and signed and sent as they are on every attempt. Validated,
-- one walk does both (validate.request_body); unvalidated, the encoder alone, with the schema's shape hint.
local function encode(self, action, params, call_opts)
  params = params or {}
  local want_validation = self.validate
  if call_opts and call_opts.validate ~= nil then want_validation = call_opts.validate end
  local body, why
  if want_validation then
    body, why = validate.request_body(action, params)
    if not body then return nil, why end
    if why then -- members the schema marks disabled: sent, as the API's own examples do (docs/builders.md)
      log(self, "warn", format("essbasic: %s sends %s, marked disabled in the API's schema (internal or retired): "
        .. "the service may ignore %s", action, table.concat(why, ", "), #why == 1 and "it" or "them"))
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

local function endpoint_for(self, action)
  return api.host_kind(action) == "file" and self.file_endpoint or self.endpoint
end

-- The signed headers of one attempt and the endpoint they are for, or nil and an error.
local function sign(self, action, body, timestamp)
  local creds, err = self.provider.get()
  if not creds then return nil, err end
  local ep = endpoint_for(self, action)
  -- signer.headers keeps no reference to parts and yields nowhere, so concurrent calls (light threads) can share
  -- it; the body is dropped afterwards so the client does not hold the last request's bytes.
  local parts = self.sign_parts
  parts.action, parts.host, parts.body, parts.timestamp = action, ep.host, body, timestamp
  local headers, bad = signer.headers(parts, creds)
  parts.body = nil
  if not headers then
    return nil, errors.new{ kind = "client", code = errors.HEADER_VALUE,
      message = "the credentials give a value with CR, LF or NUL for the " .. bad .. " header" }
  end
  return headers, ep
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
  local headers, ep = sign(self, action, body, ts)
  if not headers then return nil, ep end
  return { method = "POST", url = ep.url, headers = headers, body = body }
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

-- A call in progress, shared by call (one at a time) and call_many (many at once): the three steps below are
-- the whole policy, so both paths retry, limit and report alike.
local function begin(self, action, params, call_opts)
  local body, err = encode(self, action, params, call_opts)
  if not body then
    err.attempts = 0
    return nil, err
  end
  local deadline = call_opts.deadline or self.deadline
  return {
    action = action, body = body, opts = call_opts,
    policy = call_opts.retry ~= nil and retry.policy(call_opts.retry) or self.retry,
    deadline = deadline,
    started = deadline and runtime.now(), -- only a deadline reads it
    attempts = 0, history = {},
  }
end

-- Step 1: a token from the limiter → seconds to wait first, or nil and an error (fail-fast asked).
local function take_token(self, st)
  if not self.limiter then return 0 end
  local wait = self.limiter:take(st.action, st.opts.wait)
  if wait then return wait end
  return nil, errors.new{ kind = "client", code = errors.RATE_LIMITED, attempts = st.attempts, history = st.history,
    message = "no request token left for " .. st.action .. " this second and the call asked not to wait" }
end

-- Step 2: the signed request of the next attempt (fresh timestamp), or nil and an error.
local function next_request(self, st)
  local timeout = st.opts.timeout or self.timeout
  if st.deadline then
    local left = st.deadline - (runtime.now() - st.started)
    if left <= 0 then
      return nil, errors.new{ kind = "client", code = errors.DEADLINE, attempts = st.attempts, history = st.history,
        message = "the call's deadline passed before an attempt could be made", cause = st.last_error }
    end
    if left < timeout then timeout = left end
  end
  local headers, ep = sign(self, st.action, st.body, os_time())
  if not headers then
    ep.attempts, ep.history = st.attempts, st.history
    return nil, ep
  end
  -- conclude reads only status and body: the transport need not build the response's header map.
  local req = { method = "POST", url = ep.url, headers = headers, body = st.body, timeout = timeout,
    response_headers = false }
  st.attempts = st.attempts + 1
  if self.debug then
    log(self, "debug", "essbasic request " .. st.action .. " " .. req.url .. " "
      .. json.encode(signer.redact(req.headers)) .. " body " .. #st.body .. " bytes")
  end
  return req
end

-- Step 3: what the transport gave back → "done", resp, meta | "failed", err | "retry", delay.
local function conclude(self, st, res, err)
  local resp
  if res then
    resp, err = envelope.decode(res.status, res.body)
    if self.debug then
      log(self, "debug", "essbasic response " .. st.action .. " HTTP " .. tostring(res.status) .. " "
        .. (resp and ("RequestId " .. tostring(resp.RequestId)) or tostring(err)))
    end
    if resp then return "done", resp, { attempts = st.attempts, history = st.history } end
  end
  local readonly = api.is_readonly(st.action)
  local decision, class = retry.decide(st.policy, err, readonly, st.attempts)
  st.history[#st.history + 1] = { code = err.code, class = class }
  st.last_error = err
  if decision == "retry" then
    local delay = retry.delay(st.policy, st.attempts)
    if not st.deadline or runtime.now() - st.started + delay < st.deadline then
      log(self, "info", format("essbasic: %s attempt %d failed with %s; retrying in %.2fs", st.action, st.attempts,
        tostring(err.code), delay))
      return "retry", delay
    end
  end
  if class == "unknown" and not readonly then err = outcome_unknown(st.action, err) end
  err.attempts, err.history = st.attempts, st.history
  return "failed", err
end

-- The options of a call made without any: one shared table, never written to (st.opts is only read).
local NO_OPTS = setmetatable({}, {
  __newindex = function() error("essbasic: the shared empty call options are read-only", 2) end,
})

local function check_call_opts(call_opts, level)
  if call_opts ~= nil and type(call_opts) ~= "table" then error("essbasic: call options must be a table", level + 1) end
  return call_opts or NO_OPTS
end

-- Runs a begun call to its end, attempt after attempt → resp, meta or nil, err.
local function run(self, st)
  local err
  while true do
    local wait
    wait, err = take_token(self, st)
    if not wait then return nil, err end
    if wait > 0 then runtime.sleep(wait) end
    local req
    req, err = next_request(self, st)
    if not req then return nil, err end
    local res
    res, err = self.transport:request(req)
    local outcome, a, b = conclude(self, st, res, err)
    if outcome == "done" then return a, b end
    if outcome == "failed" then return nil, a end
    runtime.sleep(a)
  end
end

-- Sends a call; returns the Response table (with RequestId) and metadata { attempts, history },
-- or nil and an error object (with attempts and history).
-- Inside nginx, a phase without cosockets gets a clear error before anything could block or raise
-- (ngx.sleep for a rate-limit wait would raise there).
local function phase_error(self)
  local check = self.transport.check_phase
  if not check then return nil end
  local err = check(self.transport)
  if err then err.attempts = 0 end
  return err
end

function methods.call(self, action, params, call_opts)
  check_call_args(action, params)
  local perr = phase_error(self)
  if perr then return nil, perr end
  local st, err = begin(self, action, params, check_call_opts(call_opts, 2))
  if not st then return nil, err end
  return run(self, st)
end

-- Many calls at once: requests is a list of { action, params [, opts] } (or { action =, params =, opts = });
-- batch_opts: concurrency (default 10), on_done(index, resp, err_or_meta) after each call.
-- Returns a list of results in input order, each { resp, meta } or { nil, err }: every call has its own outcome,
-- with the same validation, rate limit and retry rules as call(). Plain Lua uses libcurl's multi interface;
-- inside nginx, light threads over cosockets.
function methods.call_many(self, requests, batch_opts)
  if type(requests) ~= "table" then error("essbasic: call_many expects a list of requests", 2) end
  batch_opts = batch_opts or {}
  if type(batch_opts) ~= "table" then error("essbasic: call_many options must be a table", 2) end
  local concurrency = batch_opts.concurrency or 10
  if type(concurrency) ~= "number" or concurrency < 1 then error("essbasic: concurrency must be >= 1", 2) end
  local on_done = batch_opts.on_done
  local results, states, queue = {}, {}, {}
  local perr = phase_error(self)
  if perr then
    for i = 1, #requests do results[i] = { nil, perr } end
    return results
  end
  local function finish(i, resp, second)
    results[i] = resp and { resp, second } or { nil, second }
    if on_done then on_done(i, resp, second) end
  end
  for i = 1, #requests do
    local r = requests[i]
    if type(r) ~= "table" then error("essbasic: call_many request " .. i .. " must be a table", 2) end
    local action, params, call_opts = r.action or r[1], r.params or r[2], r.opts or r[3]
    check_call_args(action, params)
    local st, err = begin(self, action, params, check_call_opts(call_opts, 2))
    if st then
      st.index, st.ready_at = i, 0
      states[#states + 1] = st
      queue[#queue + 1] = st
    else
      finish(i, nil, err)
    end
  end
  if #queue == 0 then return results end
  if not self.transport.batch then
    -- A transport without a multi interface (cosockets): light threads, each doing calls one after another.
    local thread = rawget(_G, "ngx").thread
    local next_index, threads = 0, {}
    local function worker()
      while next_index < #states do
        next_index = next_index + 1
        local st = states[next_index]
        finish(st.index, run(self, st))
      end
    end
    for t = 1, math.min(concurrency, #states) do threads[t] = thread.spawn(worker) end
    for t = 1, #threads do thread.wait(threads[t]) end
    return results
  end
  local batch = self.transport:batch()
  local in_flight = 0
  while #queue > 0 or in_flight > 0 do
    local now = runtime.now()
    local soonest
    local i = 1
    while i <= #queue and in_flight < concurrency do
      local st = queue[i]
      if st.ready_at > now then
        soonest = soonest and math.min(soonest, st.ready_at) or st.ready_at
        i = i + 1
      else
        table.remove(queue, i)
        local wait, err = 0, nil
        if not st.has_token then wait, err = take_token(self, st) end
        if not wait then
          finish(st.index, nil, err)
        elseif wait > 0 then
          st.has_token, st.ready_at = true, now + wait -- the token is reserved; send when its time comes
          queue[#queue + 1] = st
        else
          st.has_token = false
          local req
          req, err = next_request(self, st)
          if req then
            batch:add(st, req)
            in_flight = in_flight + 1
          else
            finish(st.index, nil, err)
          end
        end
      end
    end
    local poll_wait = 1
    if soonest then poll_wait = math.max(0, math.min(poll_wait, soonest - runtime.now())) end
    if in_flight == 0 then
      if soonest then runtime.sleep(poll_wait) end
    else
      local done = batch:poll(poll_wait)
      for d = 1, #done do
        local st = done[d].id
        in_flight = in_flight - 1
        local outcome, a, b = conclude(self, st, done[d].res, done[d].err)
        if outcome == "done" then
          finish(st.index, a, b)
        elseif outcome == "failed" then
          finish(st.index, nil, a)
        else
          st.ready_at = runtime.now() + a
          queue[#queue + 1] = st
        end
      end
    end
  end
  return results
end

function methods.close(self)
  if self.transport.close then self.transport:close() end
end

M.Client = Client
M.methods = methods

return M
