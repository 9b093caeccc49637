-- Credential providers. Each provider has get() → creds or nil, err, where creds is ONE table holding
-- secret_id, signer (the C TC3 signer that owns the secret key) and token, so a caller can never combine values
-- from two refreshes. The secret key itself is handed to the C signer and not kept in any Lua table.
--
-- Providers: static, env, profile (INI file), cvm_role (the CVM metadata service), and chain.
-- The default chain is env → profile; the CVM role is used only when asked for (it needs the network).

local core = require("essbasic.core")
local errors = require("essbasic.errors")
local json = require("essbasic.json")

local type, setmetatable, tostring, tonumber, os_getenv, io_open = type, setmetatable, tostring, tonumber, os.getenv,
  io.open
local string_sub, string_match = string.sub, string.match

local M = {}

-- What tostring shows of a secret id: enough to tell two apart, not enough to use.
local function mask(id)
  if type(id) ~= "string" then return "<none>" end
  if #id <= 8 then return "****" end
  return string_sub(id, 1, 4) .. "****" .. string_sub(id, -4)
end
M.mask = mask

local Creds = { __name = "essbasic.credentials" }
Creds.__index = Creds
function Creds.__tostring(c)
  return "essbasic.credentials (secret_id=" .. mask(c.secret_id) .. (c.token and ", token=<hidden>" or "") .. ")"
end

-- secret_id, secret_key, token (optional), expires_at (optional, wall-clock seconds)
function M.new_creds(secret_id, secret_key, token, expires_at)
  return setmetatable({
    secret_id = secret_id,
    signing_key = core.tc3_signer(secret_key), -- the secret key, held in C: it signs and is never shown
    token = token,
    expires_at = expires_at,
  }, Creds)
end

local function cred_error(message)
  return errors.new{ code = errors.CREDENTIAL, kind = "client", message = message }
end

-- A provider that has nothing to offer says so with this error, so a chain moves on to the next one.
local NOT_CONFIGURED = "not configured"
local function not_configured(what)
  local e = cred_error(what .. ": " .. NOT_CONFIGURED)
  e.not_configured = true
  return e
end

local Provider = { __name = "essbasic.credentials_provider" }
Provider.__index = Provider
function Provider.__tostring(p) return "essbasic.credentials_provider (" .. p.name .. ")" end

local function provider(name, get)
  return setmetatable({ name = name, get = get }, Provider)
end

function M.static(opts)
  if type(opts) ~= "table" then error("credentials.static expects a table", 2) end
  local id, key, token = opts.secret_id, opts.secret_key, opts.token
  if type(id) ~= "string" or id == "" then error("credentials.static: secret_id must be a non-empty string", 2) end
  if type(key) ~= "string" or key == "" then error("credentials.static: secret_key must be a non-empty string", 2) end
  if token ~= nil and type(token) ~= "string" then error("credentials.static: token must be a string", 2) end
  local creds = M.new_creds(id, key, token)
  return provider("static", function() return creds end)
end

-- TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY (and TENCENTCLOUD_SESSION_TOKEN for temporary keys).
-- Read at the first get(): inside nginx, environment variables must be listed with the `env` directive.
function M.env(getenv)
  getenv = getenv or os_getenv
  local creds
  return provider("env", function()
    if creds then return creds end
    local id, key = getenv("TENCENTCLOUD_SECRET_ID"), getenv("TENCENTCLOUD_SECRET_KEY")
    if not id or id == "" or not key or key == "" then
      return nil, not_configured("environment (TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY)")
    end
    local token = getenv("TENCENTCLOUD_SESSION_TOKEN")
    creds = M.new_creds(id, key, token ~= "" and token or nil)
    return creds
  end)
end

-- The INI profile file of the official SDKs: [default] secret_id = …, secret_key = ….
local function read_profile(path, section)
  local f = io_open(path, "r")
  if not f then return nil end
  local values, current = {}, nil
  for line in f:lines() do
    local name = string_match(line, "^%s*%[%s*([^%]]-)%s*%]%s*$")
    if name then
      current = name
    elseif current == section then
      local k, v = string_match(line, "^%s*([%w_]+)%s*=%s*(.-)%s*$")
      if k then values[k] = v end
    end
  end
  f:close()
  return values
end

-- A profile file others may read holds a secret key they can use: warned about once per file and process, as
-- OpenSSH does for a private key (it refuses one). The file is still read: refusing would stop a running fleet on
-- an upgrade. The warning goes to logger(level, message) when the client has one, else to nginx's error log or
-- stderr. (Checked against tccli 3.0: it reads ~/.tccli/*.credential with no mode check.)
local warned = {}

local function warn_if_readable(path, logger)
  if warned[path] then return end
  local mode = core.file_mode(path)
  if not mode or mode % 64 == 0 then return end -- no bit for group or others (mode & 077)
  warned[path] = true
  local message = string.format("essbasic: the credentials profile file %s is readable or writable by others "
    .. "(mode %o), and it holds a secret key: chmod 600 it", path, mode)
  if logger then
    logger("warn", message)
  else
    require("essbasic.runtime").warn(message)
  end
end

-- opts: path, profile (the section), getenv, logger (function(level, message), for the warning above).
function M.profile(opts)
  opts = opts or {}
  local getenv = opts.getenv or os_getenv
  local section = opts.profile or "default"
  local creds
  return provider("profile", function()
    if creds then return creds end
    local path = opts.path or getenv("TENCENTCLOUD_CREDENTIALS_FILE")
    if not path then
      local home = getenv("HOME")
      if not home then return nil, not_configured("profile file (no HOME)") end
      path = home .. "/.tencentcloud/credentials"
    end
    local values = read_profile(path, section)
    if not values then return nil, not_configured("profile file") end
    warn_if_readable(path, opts.logger)
    if not values.secret_id or values.secret_id == "" or not values.secret_key or values.secret_key == "" then
      return nil, cred_error("profile file: section [" .. section .. "] lacks secret_id or secret_key")
    end
    creds = M.new_creds(values.secret_id, values.secret_key)
    return creds
  end)
end

-- The CVM role: GET <endpoint> gives the role name, GET <endpoint><role> gives
-- {TmpSecretId, TmpSecretKey, Token, ExpiredTime, Code}. Refreshed `refresh_before` seconds before expiry; when a
-- refresh fails while the old credentials are still valid, the old ones are kept.
-- opts: endpoint, role, transport (anything with request(req)), now (clock), refresh_before, timeout.
M.CVM_METADATA = "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials/"

function M.cvm_role(opts)
  opts = opts or {}
  local endpoint = opts.endpoint or M.CVM_METADATA
  local now = opts.now or core.time
  local refresh_before = opts.refresh_before or 300
  local timeout = opts.timeout or 5
  local transport = opts.transport
  local current, role = nil, opts.role

  local function get_text(url)
    if not transport then transport = require("essbasic.transport").default({ timeout = timeout }) end
    local res, err = transport:request{ method = "GET", url = url, headers = {}, body = "", timeout = timeout }
    if not res then
      local e = cred_error("CVM metadata: " .. tostring(err.message))
      e.cause = err
      return nil, e
    end
    if res.status ~= 200 then return nil, cred_error("CVM metadata answered HTTP " .. tostring(res.status)) end
    return res.body
  end

  local function fetch()
    if not role then
      local body, err = get_text(endpoint)
      if not body then return nil, err end
      role = string_match(body, "^%s*(%S+)")
      if not role then return nil, cred_error("CVM metadata returned no role name") end
    end
    local body, err = get_text(endpoint .. role)
    if not body then return nil, err end
    local doc = json.decode(body)
    if type(doc) ~= "table" or doc.Code ~= "Success" or type(doc.TmpSecretId) ~= "string"
        or type(doc.TmpSecretKey) ~= "string" or type(doc.Token) ~= "string" then
      return nil, cred_error("CVM metadata returned no usable credentials for the role")
    end
    return M.new_creds(doc.TmpSecretId, doc.TmpSecretKey, doc.Token, tonumber(doc.ExpiredTime))
  end

  return provider("cvm_role", function()
    local t = now()
    if current and (not current.expires_at or t < current.expires_at - refresh_before) then return current end
    local fresh, err = fetch()
    if fresh then
      current = fresh
      return current
    end
    if current and current.expires_at and t < current.expires_at then return current end
    return nil, err
  end)
end

-- Tries providers in order; moves on only when one is not configured, stops at a real failure.
function M.chain(providers)
  if type(providers) ~= "table" then error("credentials.chain expects a list of providers", 2) end
  return provider("chain", function()
    local reasons = {}
    for i = 1, #providers do
      local creds, err = providers[i].get()
      if creds then return creds end
      if not (err and err.not_configured) then return nil, err end
      reasons[#reasons + 1] = err.message
    end
    return nil, cred_error("no credentials found (" .. table.concat(reasons, "; ") .. ")")
  end)
end

-- opts: logger, handed to the profile provider.
function M.default_chain(opts)
  return M.chain({ M.env(), M.profile({ logger = opts and opts.logger }) })
end

function M.is_provider(v)
  return getmetatable(v) == Provider
end

return M
