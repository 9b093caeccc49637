-- The client: one call goes params → validate → encode (once) → [rate limit → sign → send → decode]×attempts.
-- Per-action methods (client:ChannelCreateFlowGroupByFiles{…}) are looked up in the schema, not written out.

local api = require("essbasic.api")
local signer = require("essbasic.signer")
local credentials = require("essbasic.credentials")
local transport_mod = require("essbasic.transport")
local ratelimit = require("essbasic.ratelimit")
local retry = require("essbasic.retry")
local call = require("essbasic.call")
local scheduler = require("essbasic.scheduler")
local runtime = require("essbasic.runtime")
local errors = require("essbasic.errors")
local suggest = require("essbasic.validate").suggest
local correlate = require("essbasic.correlate")
local remove_url_credentials = require("essbasic.url_credentials").remove

local type, tostring, setmetatable, error, pairs, floor = type, tostring, setmetatable, error,
  pairs, math.floor
local match = string.match
local os_time = os.time

local schema_actions = api.schema.actions

local M = {}

M.VERSION = require("essbasic.version")
M.DEFAULT_ENDPOINT = "https://essbasic.tencentcloudapi.com"
M.DEFAULT_FILE_ENDPOINT = "https://file.ess.tencent.cn"
-- UploadFiles goes to a file domain of its own: Tencent's production and test environments each have one
-- (the API's UploadFiles description and the official integration kits). Any other endpoint (the sandbox, a
-- gateway, a test server) serves both: files never leave for a Tencent host the endpoint does not name.
M.FILE_HOSTS = {
  ["essbasic.tencentcloudapi.com"] = "file.ess.tencent.cn",
  ["essbasic.test.ess.tencent.cn"] = "file.test.ess.tencent.cn",
}
M.MAX_REQUEST_BYTES = call.MAX_REQUEST_BYTES

local Client = { __name = "essbasic.client" }
local methods = {}

-- The HTTP options, as one table (essbasic.new{ http = { timeout = 10, proxy = ... } }, like the Go SDK's
-- HttpProfile): the transport gets this table and checks it, refusing what it cannot honour (transport/curl.lua,
-- transport/ngx.lua). timeout is also each call's default (a call's own timeout option wins).
local HTTP_OPTIONS = {
  timeout = "number", connect_timeout = "number", proxy = "string", ca_file = "string", ca_path = "string",
  ssl_verify = "boolean", max_response_bytes = "number", keepalive_timeout = "number", pool_size = "number",
  pool = "string",
}

-- Every option new() takes; anything else is a typo and raises. The HTTP options given flat (0.2's way) are still
-- taken, as the same option of http; http = { ... } is the way (CHANGELOG, 0.3.0).
local OPTIONS = {
  secret_id = "string", secret_key = "string", token = "string", credentials = "table",
  endpoint = "string", file_endpoint = "string", region = "string", language = "string",
  http = "table", validate = "boolean", transport = "any",
  retry = "any", rate_limit = "any", request_client = "string", logger = "function", debug = "boolean",
  deadline = "number", debug_personal_data = "boolean", correlate = "boolean",
  -- 0.2's flat HTTP options
  timeout = "number", connect_timeout = "number", proxy = "string", ca_file = "string", ca_path = "string",
  ssl_verify = "boolean", max_response_bytes = "number",
}

M.OPTIONS = OPTIONS -- tools/gen_schema.lua --types annotates them
M.HTTP_OPTIONS = HTTP_OPTIONS

local sorted_keys = require("essbasic.tables").sorted_keys
local OPTION_NAMES, HTTP_OPTION_NAMES = sorted_keys(OPTIONS), sorted_keys(HTTP_OPTIONS)

-- opts checked against the table of names and types `known`; where: "option" or "option http." → nothing or raises.
local function check_table(opts, known, names, where)
  for k, v in pairs(opts) do
    local want = known[k]
    if not want then
      local guess = type(k) == "string" and suggest(k, names)
      error("essbasic.new: unknown " .. where .. "'" .. tostring(k) .. "'" .. (guess and (" (did you mean " ..
        guess .. "?)") or ""), 5)
    end
    if want ~= "any" and type(v) ~= want then
      error("essbasic.new: " .. where .. "'" .. k .. "' must be a " .. want .. ", got " .. type(v), 5)
    end
  end
end

local function check_options(opts)
  check_table(opts, OPTIONS, OPTION_NAMES, "option ")
end

-- The http table the transport gets: opts.http, with 0.2's flat options and the defaults filled in; a name given
-- both ways raises (two values, no way to tell which one was meant).
local function http_options(opts)
  local http = {}
  if opts.http then
    check_table(opts.http, HTTP_OPTIONS, HTTP_OPTION_NAMES, "option http.")
    for k, v in pairs(opts.http) do http[k] = v end
  end
  for k in pairs(HTTP_OPTIONS) do
    if opts[k] ~= nil then
      if http[k] ~= nil then
        error("essbasic.new: '" .. k .. "' is given both flat and in http; give it in http only", 4)
      end
      http[k] = opts[k]
    end
  end
  if http.timeout == nil then http.timeout = 60 end
  if http.connect_timeout == nil then http.connect_timeout = 10 end
  return http
end

-- "https://host[:port][/]" → { url = "https://host[:port]/", host = "host[:port]" }
local function parse_endpoint(name, value)
  if not signer.header_safe(value) then error("essbasic.new: " .. name .. " contains CR, LF or NUL", 4) end
  local scheme, authority = match(value, "^(https?)://([^/?#@%s]+)/?$")
  if not scheme then
    error("essbasic.new: " .. name .. " must look like https://host[:port], got '"
      .. remove_url_credentials(value) .. "'", 4)
  end
  return { url = scheme .. "://" .. authority .. "/", host = authority }
end

-- Production: Tencent's production API and file hosts (essbasic.<region>.tencentcloudapi.com is the API's too).
local function is_production(host)
  host = host:gsub(":%d+$", ""):lower()
  return host == "file.ess.tencent.cn" or host:match("^essbasic%.[%w%-%.]*tencentcloudapi%.com$") ~= nil
end

-- The file endpoint: the option, else the file domain of the endpoint's environment, else the endpoint itself.
-- Production API with a non-production file host, or the reverse, is refused: the FileIds of one environment
-- mean nothing to the other, and a test's PDFs (people's data) must not reach production.
local function file_endpoint(opts, endpoint)
  local fe
  if opts.file_endpoint then
    fe = parse_endpoint("file_endpoint", opts.file_endpoint)
  else
    local host = M.FILE_HOSTS[endpoint.host:lower()]
    if not host and is_production(endpoint.host) then host = M.FILE_HOSTS["essbasic.tencentcloudapi.com"] end
    fe = host and parse_endpoint("file_endpoint", "https://" .. host) or endpoint
  end
  if is_production(endpoint.host) ~= is_production(fe.host) then
    error("essbasic.new: endpoint " .. endpoint.url .. " and file_endpoint " .. fe.url .. " are not the same " ..
      "environment (one is Tencent's production, the other not); set both to the same one", 4)
  end
  return fe
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
  return credentials.default_chain({ logger = opts.logger })
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
  local endpoint = parse_endpoint("endpoint", opts.endpoint or M.DEFAULT_ENDPOINT)
  local http = http_options(opts)
  -- One logger for every part of the client (its calls, the Redis rate limit); by default warnings go to nginx's
  -- error log or stderr, and debug = true logs the debug lines there too.
  local logger = opts.logger or runtime.default_logger(opts.debug == true)
  local rate_limit = opts.rate_limit
  if type(rate_limit) == "table" and rate_limit.redis ~= nil and rate_limit.logger == nil then
    rate_limit = { logger = logger }
    for k, v in pairs(opts.rate_limit) do rate_limit[k] = v end
  end
  local self = {
    endpoint = endpoint,
    file_endpoint = file_endpoint(opts, endpoint),
    region = header_option(opts, "region", nil),
    language = header_option(opts, "language", "zh-CN"),
    request_client = request_client,
    provider = credentials_provider(opts),
    validate = opts.validate ~= false,
    timeout = http.timeout,
    deadline = opts.deadline,
    retry = retry.policy(opts.retry),
    limiter = rate_limit ~= false and ratelimit.new(rate_limit) or nil,
    logger = logger,
    debug = opts.debug or false,
    -- unsafe for production logs: errors and debug lines show ID numbers, mobiles and names unmasked
    debug_personal_data = opts.debug_personal_data == true,
    warned_disabled = {}, -- action → true once its disabled members were reported (call.encode)
    correlate = opts.correlate == true, -- a key in each flow's CustomerData (essbasic.correlate)
  }
  self.transport = transport_mod.resolve(opts.transport, http)
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
  -- A name like an action's (capitalised, letters and digits) that the API does not have: a typo, said here
  -- rather than as "attempt to call a nil value". Other keys (the client's own optional fields) are absent.
  if type(key) == "string" and match(key, "^%u[%w_]*$") then
    local guess = suggest(key, api.actions())
    error("essbasic: the API has no action " .. key .. (guess and (" (did you mean " .. guess .. "?)") or ""), 2)
  end
  return nil
end

function Client.__tostring(self)
  return "essbasic.client (endpoint=" .. self.endpoint.url .. ")"
end

-- essbasic.file's failure in a request (FileInfos = { essbasic.file("typo.pdf") }: a table constructor keeps the
-- error object only): that error, before anything else is checked.
local function file_error(params)
  local infos = type(params) == "table" and params.FileInfos
  if type(infos) ~= "table" then return nil end
  for _, v in pairs(infos) do
    if errors.is_error(v) then return v end
  end
  return nil
end

local function check_call_args(action, params, level)
  -- Every schema action is such a name; only other strings need the pattern.
  if type(action) ~= "string" or not (schema_actions[action] or match(action, "^%a%w*$")) then
    error("essbasic: the action must be a name like 'DescribeFlowDetailInfo', got " .. tostring(action), level + 1)
  end
  if params ~= nil and type(params) ~= "table" then
    error("essbasic: params must be a table, got " .. type(params), level + 1)
  end
end

-- The options of a call made without any: one shared table that nothing writes to (call objects only read it).
local NO_OPTS = setmetatable({}, {
  __newindex = function() error("essbasic: the shared empty call options are read-only", 2) end,
})

local function check_call_opts(call_opts, level)
  if call_opts ~= nil and type(call_opts) ~= "table" then error("essbasic: call options must be a table", level + 1) end
  return call_opts or NO_OPTS
end

-- Returns the signed request without sending it (a dry run): { method, url, headers, body, correlation }.
-- prepare_opts.timestamp fixes the time (tests, known answers).
function methods.prepare(self, action, params, prepare_opts)
  check_call_args(action, params, 2)
  local ts = prepare_opts and prepare_opts.timestamp or os_time()
  if type(ts) ~= "number" or ts ~= floor(ts) or ts < 0 then
    error("essbasic: prepare's timestamp must be a non-negative integer", 2)
  end
  local ferr = file_error(params)
  if ferr then return nil, ferr end
  local correlation
  params, correlation = correlate.params(self, action, params, prepare_opts)
  local body, err = call.encode(self, action, params, prepare_opts)
  if not body then return nil, err end
  local headers, ep = call.sign(self, action, body, ts)
  if not headers then return nil, ep end
  return { method = "POST", url = ep.url, headers = headers, body = body, correlation = correlation }
end

-- What became of a creation whose outcome is unknown, from what the callbacks recorded: essbasic.resolve.
function methods.resolve(self, what, store)
  return require("essbasic.resolve").resolve(self, what, store)
end

-- Inside nginx, a phase without cosockets gets a clear error before anything could block or raise (ngx.sleep for
-- a rate-limit wait would raise there).
local function phase_error(self)
  local check = self.transport.check_phase
  if not check then return nil end
  local err = check(self.transport)
  if err then err.attempts = 0 end
  return err
end

-- Sends a call; returns the Response table (with RequestId) and metadata { attempts, history },
-- or nil and an error object (with attempts and history).
function methods.call(self, action, params, call_opts)
  check_call_args(action, params, 2)
  local perr = phase_error(self) or file_error(params)
  if perr then return nil, perr end
  local c, err = call.begin(self, action, params, check_call_opts(call_opts, 2))
  if not c then return nil, err end
  return scheduler.run(self, c)
end

-- Many calls at once: requests is a list of { action, params [, opts] } (or { action =, params =, opts = });
-- batch_opts: concurrency (default 10), on_done(index, resp, err, meta) after each call.
-- Returns a list of results in input order, each { resp, nil, meta } or { nil, err }: every call has its own outcome,
-- with the same validation, rate limit and retry rules as call(). How they run: essbasic.scheduler. An on_done
-- that raises does not stop the batch; its first error is raised again once every call has finished.
function methods.call_many(self, requests, batch_opts)
  if type(requests) ~= "table" then error("essbasic: call_many expects a list of requests", 2) end
  batch_opts = batch_opts or {}
  if type(batch_opts) ~= "table" then error("essbasic: call_many options must be a table", 2) end
  local concurrency = batch_opts.concurrency or 10
  if type(concurrency) ~= "number" or concurrency < 1 then error("essbasic: concurrency must be >= 1", 2) end
  local on_done = batch_opts.on_done
  if on_done ~= nil and type(on_done) ~= "function" then error("essbasic: on_done must be a function", 2) end
  local calls = {}
  for i = 1, #requests do
    local r = requests[i]
    if type(r) ~= "table" then error("essbasic: call_many request " .. i .. " must be a table", 2) end
    local action, params, call_opts = r.action or r[1], r.params or r[2], r.opts or r[3]
    check_call_args(action, params, 2)
    check_call_opts(call_opts, 2)
  end
  local perr = phase_error(self)
  for i = 1, #requests do
    local r = requests[i]
    local c, err
    err = perr or file_error(r.params or r[2])
    if not err then
      c, err = call.begin(self, r.action or r[1], r.params or r[2], check_call_opts(r.opts or r[3], 2))
    end
    c = c or call.failed(err)
    c.index = i
    calls[i] = c
  end
  return scheduler.many(self, calls, concurrency, on_done, {})
end

function methods.close(self)
  if self.transport.close then self.transport:close() end
end


return M
