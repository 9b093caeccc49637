-- The sandbox's configuration: defaults, then a config file (Lua returning a table, or JSON), then environment
-- variables, then explicit overrides (command line, test helpers). Plain Lua: the launcher resolves it, writes it
-- as JSON into the nginx prefix, and the server reads that copy at start.
--
--   port           loopback port (nil: a free one is picked)            ESSBASIC_SANDBOX_PORT
--   data_dir       where state.json and the uploaded files live          ESSBASIC_SANDBOX_DATA
--   credentials    { { secret_id, secret_key, token (optional), apps = { AppId, ... } }, ... }
--                  ESSBASIC_SANDBOX_SECRET_ID / _SECRET_KEY / _APP_ID replace the first entry's values
--   file_ttl       seconds a FileId stays usable (the UploadFiles text says one hour)   ESSBASIC_SANDBOX_FILE_TTL
--   flow_deadline  seconds to a flow's deadline when the request sets none
--   clock_skew     seconds X-TC-Timestamp may differ from the server's clock (the API allows 5 minutes)
--   rate_limit     requests per second per app and action (the API's documented default: 20)
--                  ESSBASIC_SANDBOX_RATE_LIMIT; rate_limits = { Action = n } per action
--   public_url     base of the SignUrls and FileUrls (default: the Host the request came to)
--   sdk_host_service  true (default): also accept the credential scope's service that Tencent's official SDKs
--                  derive from the endpoint they are given (its first dot-separated label: "127" for 127.0.0.1:PORT),
--                  when it is that of the Host the request came to; false: "essbasic" only, as the API
--                  ESSBASIC_SANDBOX_SDK_HOST_SERVICE (0 or 1)
--   sweep_interval seconds between the timer's deadline checks (reads check too)
--   callback       { url, key (32 bytes), token, max_attempts, base_delay, max_delay, timeout }
--                  ESSBASIC_SANDBOX_CALLBACK_URL / _CALLBACK_KEY / _CALLBACK_TOKEN
--   daily_limits   { Action = n }: requests per app, action and UTC day (DescribeUsage: 50, as documented)
--   auto_verify    true: a sub-company is verified as soon as it is named; false: on its console page
--   download_ttl   seconds a document link (DescribeResourceUrlsByFlows, GetDownloadFlowUrl) stays valid (300)
--   templates      { { id (32 characters), name, description, fields = { "name", ... },
--                      recipients = { { role, type, approver_type, sign = { page, x, y, w, h } }, ... } }, ... }
--   faults         { Action or "*" = { latency, error, message, lose_answer, slow_body, times, probability } }
--                  (sandbox/faults.lua; also set at run time through /sandbox/faults)

local M = {}

-- Public, well-known test values: the sandbox accepts nothing else by default, and they are useless anywhere else.
M.DEFAULT_SECRET_ID = "AKIDsandbox0000000000000000000000000"
M.DEFAULT_SECRET_KEY = "sandbox-secret-key-0000000000000000"
M.DEFAULT_APP_ID = "yDsandboxApp0000000000000000000001"

-- One template to start from: an employment contract between a person and the sub-company, with the
-- promoter's three fields. Positions are in points from the page's top-left corner, as the API's components.
M.DEFAULT_TEMPLATES = {
  { id = "5a4d6c1e0b8f4e7d9c2a3b4c5d6e7f80", name = "劳动合同模板", description = "essbasic sandbox template",
    fields = { "员工姓名", "岗位", "月薪" },
    recipients = {
      { role = "员工", type = "INDIVIDUAL", approver_type = "PERSON",
        sign = { page = 1, x = 72, y = 640, w = 200, h = 60 } },
      { role = "企业", type = "ENTERPRISE", approver_type = "ORGANIZATION",
        sign = { page = 1, x = 330, y = 640, w = 200, h = 60 } },
    } },
}

-- Per user, never a shared path: $XDG_RUNTIME_DIR/essbasic-sandbox (the user's private run-time folder), else
-- /tmp/essbasic-sandbox-<uid>. The launcher creates it 0700 and refuses one another user owns (sandbox/launch.lua).
function M.default_data_dir()
  local runtime = os.getenv("XDG_RUNTIME_DIR")
  if runtime and runtime:sub(1, 1) == "/" then return runtime .. "/essbasic-sandbox" end
  local f = io.open("/proc/self/status", "r")
  local status = f and f:read("*a") or ""
  if f then f:close() end
  return "/tmp/essbasic-sandbox-" .. (status:match("\nUid:%s*%d+%s+(%d+)") or "unknown")
end

local function defaults()
  return {
    host = "127.0.0.1",
    port = nil,
    data_dir = M.default_data_dir(),
    credentials = {
      { secret_id = M.DEFAULT_SECRET_ID, secret_key = M.DEFAULT_SECRET_KEY, apps = { M.DEFAULT_APP_ID } },
    },
    file_ttl = 3600,
    flow_deadline = 365 * 86400, -- FlowInfo / ChannelCreateFlowByFilesRequest.Deadline: "默认为合同流程创建后的365天"
    sign_url_ttl = 90 * 86400,
    clock_skew = 300,
    rate_limit = 20,
    rate_limits = {},
    public_url = nil,
    sdk_host_service = true,
    sweep_interval = 1,
    callback = { url = nil, key = nil, token = nil, max_attempts = 6, base_delay = 1, max_delay = 60, timeout = 5 },
    daily_limits = { DescribeUsage = 50 },
    auto_verify = true,
    download_ttl = 300,
    templates = M.DEFAULT_TEMPLATES,
    faults = {},
  }
end

local ENV = {
  { "ESSBASIC_SANDBOX_PORT", "port", tonumber },
  { "ESSBASIC_SANDBOX_DATA", "data_dir" },
  { "ESSBASIC_SANDBOX_FILE_TTL", "file_ttl", tonumber },
  { "ESSBASIC_SANDBOX_RATE_LIMIT", "rate_limit", tonumber },
  { "ESSBASIC_SANDBOX_PUBLIC_URL", "public_url" },
  { "ESSBASIC_SANDBOX_SDK_HOST_SERVICE", "sdk_host_service", function(v) return v ~= "0" and v ~= "false" end },
  { "ESSBASIC_SANDBOX_CALLBACK_URL", "callback.url" },
  { "ESSBASIC_SANDBOX_CALLBACK_KEY", "callback.key" },
  { "ESSBASIC_SANDBOX_CALLBACK_TOKEN", "callback.token" },
  { "ESSBASIC_SANDBOX_SECRET_ID", "credentials.1.secret_id" },
  { "ESSBASIC_SANDBOX_SECRET_KEY", "credentials.1.secret_key" },
  { "ESSBASIC_SANDBOX_APP_ID", "credentials.1.apps.1" },
}

-- Sets a dotted path ("callback.url", "credentials.1.apps.1") in t.
local function set_path(t, path, value)
  local keys = {}
  for k in path:gmatch("[^.]+") do keys[#keys + 1] = tonumber(k) or k end
  for i = 1, #keys - 1 do
    if type(t[keys[i]]) ~= "table" then t[keys[i]] = {} end
    t = t[keys[i]]
  end
  t[keys[#keys]] = value
end

-- Deep merge of src into dst; arrays (credentials, apps) are replaced, not merged.
local function merge(dst, src)
  for k, v in pairs(src) do
    if type(v) == "table" and type(dst[k]) == "table" and v[1] == nil and next(v) ~= nil then
      merge(dst[k], v)
    else
      dst[k] = v
    end
  end
  return dst
end

local read_file = require("sandbox.store").read_file

-- A config file: JSON when it starts with "{", else Lua returning a table.
function M.load_file(path)
  local text, why = read_file(path)
  if not text then error("sandbox config: cannot read " .. path .. ": " .. tostring(why), 0) end
  if text:match("^%s*{") then
    local t, jerr = require("essbasic.json").decode(text)
    if type(t) ~= "table" then error("sandbox config: " .. path .. " is not a JSON object: " .. tostring(jerr), 0) end
    return t
  end
  local chunk, lerr = load(text, "@" .. path, "t", {})
  if not chunk then error("sandbox config: " .. tostring(lerr), 0) end
  local t = chunk()
  if type(t) ~= "table" then error("sandbox config: " .. path .. " must return a table", 0) end
  return t
end

local function check(c)
  local function need(cond, what) if not cond then error("sandbox config: " .. what, 0) end end
  need(c.port == nil or (type(c.port) == "number" and c.port % 1 == 0 and c.port > 0 and c.port < 65536),
    "port must be 1..65535")
  need(type(c.data_dir) == "string" and c.data_dir ~= "", "data_dir must be a path")
  need(type(c.credentials) == "table" and #c.credentials >= 1, "credentials must list at least one key pair")
  for i, cred in ipairs(c.credentials) do
    need(type(cred.secret_id) == "string" and cred.secret_id ~= "", "credentials[" .. i .. "].secret_id missing")
    need(type(cred.secret_key) == "string" and cred.secret_key ~= "", "credentials[" .. i .. "].secret_key missing")
    need(type(cred.apps) == "table" and #cred.apps >= 1, "credentials[" .. i .. "].apps must list an AppId")
  end
  for _, k in ipairs({ "file_ttl", "flow_deadline", "sign_url_ttl", "clock_skew", "rate_limit", "sweep_interval",
    "download_ttl" }) do
    need(type(c[k]) == "number" and c[k] > 0, k .. " must be a positive number")
  end
  need(type(c.sdk_host_service) == "boolean", "sdk_host_service must be true or false")
  local cb = c.callback
  need(type(cb) == "table", "callback must be a table")
  need(cb.key == nil or (type(cb.key) == "string" and #cb.key == 32), "callback.key must be exactly 32 bytes")
  need(cb.url == nil or (type(cb.url) == "string" and cb.url:match("^https?://")), "callback.url must be http(s)")
  for _, k in ipairs({ "max_attempts", "base_delay", "max_delay", "timeout" }) do
    need(type(cb[k]) == "number" and cb[k] > 0, "callback." .. k .. " must be a positive number")
  end
  local fault_problem = require("sandbox.faults").check(c.faults)
  need(fault_problem == nil, tostring(fault_problem))
  need(type(c.daily_limits) == "table", "daily_limits must be a table of action name → requests per day")
  need(type(c.templates) == "table", "templates must be a list")
  for i, t in ipairs(c.templates) do
    local where = "templates[" .. i .. "]"
    need(type(t.id) == "string" and #t.id == 32, where .. ".id must be 32 characters")
    need(type(t.name) == "string" and t.name ~= "", where .. ".name is required")
    need(type(t.recipients) == "table" and #t.recipients >= 1, where .. ".recipients must list a role")
    for j, r in ipairs(t.recipients) do
      need(type(r.role) == "string", where .. ".recipients[" .. j .. "].role is required")
    end
  end
end

-- opts = { file = path or nil, env = true (default) or false, overrides = table or nil } → the resolved config.
function M.resolve(opts)
  opts = opts or {}
  local c = defaults()
  if opts.file then merge(c, M.load_file(opts.file)) end
  if opts.env ~= false then
    for _, e in ipairs(ENV) do
      local v = os.getenv(e[1])
      if v and v ~= "" then set_path(c, e[2], e[3] and e[3](v) or v) end
    end
  end
  if opts.overrides then merge(c, opts.overrides) end
  if c.callback.url == "" then c.callback.url = nil end
  check(c)
  return c
end

return M
