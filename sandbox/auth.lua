-- The checks essbasic makes before it reads a request's parameters, in its order: protocol, the TC3
-- Authorization header (algorithm, credential, scope, freshness, signature), the token, the version, the action.
-- Each refusal is (nil, code, message) with the API's own common error codes.
--
-- The signature is recomputed with the project's C signer (essbasic.core tc3_signer) over the exact body bytes
-- and the headers the client listed in SignedHeaders, with their values as received. The official SDKs sign the
-- Host header's name without its port while sending it with the port, so a host with a port is tried both ways.

local core = require("essbasic.core")
local api = require("essbasic.api")

local type, tonumber, tostring, ipairs, floor, abs = type, tonumber, tostring, ipairs, math.floor, math.abs
local match, gmatch, lower, format, find, gsub = string.match, string.gmatch, string.lower, string.format,
  string.find, string.gsub
local ct_equal = core.ct_equal

local M = {}

M.VERSION = api.schema.version -- written once: the generated schema
M.SERVICE = api.schema.service
M.ALGORITHM = "TC3-HMAC-SHA256"

-- secret_id → { cred = config entry, signing_key = the C signer holding its secret key }; built once per config.
function M.keyring(credentials)
  local ring = {}
  for _, cred in ipairs(credentials) do
    local apps = {}
    for _, app in ipairs(cred.apps) do apps[app] = true end
    ring[cred.secret_id] = { cred = cred, apps = apps, signing_key = core.tc3_signer(cred.secret_key) }
  end
  return ring
end

-- The UTC calendar date (YYYY-MM-DD) of a Unix time, as the credential scope must carry it.
function M.utc_date(t)
  return os.date("!%Y-%m-%d", t)
end

-- "TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=a;b, Signature=hex"
function M.parse_authorization(value)
  if type(value) ~= "string" then return nil end
  local algorithm, rest = match(value, "^%s*(%S+)%s+(.-)%s*$")
  if not algorithm then return nil end
  local parts = {}
  for k, v in gmatch(rest, "(%w+)=([^,%s]+)") do parts[k] = v end
  local cred = parts.Credential
  if not cred or not parts.SignedHeaders or not parts.Signature then return nil end
  local id, date, service, terminator = match(cred, "^([^/]+)/([^/]+)/([^/]+)/([^/]+)$")
  if not id then return nil end
  return { algorithm = algorithm, secret_id = id, date = date, service = service, terminator = terminator,
    signed_headers = parts.SignedHeaders, signature = lower(parts.Signature) }
end

local function signature_for(signing_key, timestamp, service, names, headers, body, host_override)
  local flat = {}
  for _, name in ipairs(names) do
    local v = name == "host" and host_override or headers[name]
    if type(v) == "table" then v = v[1] end
    flat[#flat + 1] = name
    flat[#flat + 1] = v or ""
  end
  return (signing_key:sign(timestamp, service, "POST", "", flat, body))
end

-- The service Tencent's official SDKs put in the credential scope for an endpoint: its first dot-separated label
-- (tencentcloud-sdk-nodejs 4.1.313, common/abstract_client.js: `service: this.endpoint.split(".")[0]`), which is
-- "essbasic" for essbasic.tencentcloudapi.com and "127" for an endpoint of 127.0.0.1:PORT. The Host header is the
-- endpoint the client was given.
function M.sdk_service(host)
  return (match(host or "", "^[^.]*"))
end

-- req = { method, headers (map, names lowercase), body, now }, ring from keyring(), config
-- → { action, secret_id, apps } or nil, code, message
function M.check(req, ring, config)
  if req.method ~= "POST" then
    return nil, "UnsupportedProtocol", "the sandbox accepts only POST requests (TC3-HMAC-SHA256 with a JSON body)"
  end
  local h = req.headers
  local ctype = lower(h["content-type"] or "")
  if not match(ctype, "^application/json%s*;?") and ctype ~= "application/json" then
    return nil, "InvalidParameter", "Content-Type must be application/json, got '" .. (h["content-type"] or "") .. "'"
  end
  for _, name in ipairs({ "x-tc-action", "x-tc-version", "x-tc-timestamp" }) do
    if not h[name] or h[name] == "" then
      return nil, "MissingParameter", "the request is missing the " .. name .. " header"
    end
  end
  local auth = M.parse_authorization(h["authorization"])
  if not auth then
    return nil, "AuthFailure.InvalidAuthorization", "the Authorization header is missing or not in the TC3 form"
  end
  if auth.algorithm ~= M.ALGORITHM or auth.terminator ~= "tc3_request" then
    return nil, "AuthFailure.InvalidAuthorization", "the sandbox supports only TC3-HMAC-SHA256 signatures"
  end
  local key = ring[auth.secret_id]
  if not key then
    return nil, "AuthFailure.SecretIdNotFound", "the SecretId " .. auth.secret_id .. " is not known"
  end
  local ts = tonumber(h["x-tc-timestamp"])
  if not ts or ts ~= floor(ts) or ts < 0 then
    return nil, "InvalidParameter", "X-TC-Timestamp must be Unix seconds, got '" .. h["x-tc-timestamp"] .. "'"
  end
  if abs(req.now - ts) > config.clock_skew then
    return nil, "AuthFailure.SignatureExpire", format("the request's timestamp %d is %d s away from the server's "
      .. "clock (at most %d s allowed)", ts, floor(abs(req.now - ts)), config.clock_skew)
  end
  if auth.service ~= M.SERVICE and not (config.sdk_host_service and auth.service == M.sdk_service(h["host"])) then
    return nil, "AuthFailure.InvalidAuthorization", "the credential scope names service '" .. auth.service
      .. "'; essbasic requests are signed for 'essbasic'"
  end
  if auth.date ~= M.utc_date(ts) then
    return nil, "AuthFailure.SignatureFailure", "the credential scope date " .. auth.date
      .. " is not the UTC date of X-TC-Timestamp (" .. M.utc_date(ts) .. ")"
  end
  local names = {}
  for name in gmatch(auth.signed_headers, "[^;]+") do names[#names + 1] = lower(name) end
  local has = {}
  for _, n in ipairs(names) do has[n] = true end
  if not has["content-type"] or not has["host"] then
    return nil, "AuthFailure.SignatureFailure", "SignedHeaders must include content-type and host"
  end
  local host = h["host"] or ""
  local expected = signature_for(key.signing_key, ts, auth.service, names, h, req.body, host)
  local ok = #expected == #auth.signature and ct_equal(expected, auth.signature)
  if not ok and find(host, ":%d+$") then
    expected = signature_for(key.signing_key, ts, auth.service, names, h, req.body, (gsub(host, ":%d+$", "")))
    ok = #expected == #auth.signature and ct_equal(expected, auth.signature)
  end
  if not ok then
    return nil, "AuthFailure.SignatureFailure", "the signature does not match the request (check the secret key, "
      .. "the signed headers and that the body is sent exactly as signed)"
  end
  local want_token = key.cred.token
  if want_token and want_token ~= "" then
    local token = h["x-tc-token"] or ""
    if #token ~= #want_token or not ct_equal(token, want_token) then
      return nil, "AuthFailure.TokenFailure", "the X-TC-Token is missing or not valid for this SecretId"
    end
  end
  if h["x-tc-version"] ~= M.VERSION then
    return nil, "NoSuchVersion", "the version " .. tostring(h["x-tc-version"]) .. " does not exist; essbasic is "
      .. M.VERSION
  end
  local action = h["x-tc-action"]
  if not match(action, "^%a%w*$") or not api.action(action) then
    return nil, "InvalidAction", "the action " .. action .. " does not exist in essbasic " .. M.VERSION
  end
  return { action = action, secret_id = auth.secret_id, apps = key.apps }
end

return M
