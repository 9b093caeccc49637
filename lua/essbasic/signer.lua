-- The header builder: turns an encoded request into its signed headers (TC3-HMAC-SHA256, the way the official
-- SDKs sign: only content-type and host). The hashing and HMACs happen in the credentials' signing_key (the C
-- tc3_signer holding the secret key); this file only decides which headers exist and what they say.

local type, pairs, setmetatable = type, pairs, setmetatable
local find, format = string.find, string.format

local schema = require("essbasic.api").schema

local M = {}

-- The API version and service: written once, in the schema (generated from the API's own description).
M.VERSION = schema.version
M.SERVICE = schema.service
M.CONTENT_TYPE = "application/json"
M.ALGORITHM = "TC3-HMAC-SHA256"

local SERVICE, CONTENT_TYPE, VERSION = M.SERVICE, M.CONTENT_TYPE, M.VERSION

-- CR, LF or NUL in a header value would let a value forge headers of its own.
local function header_safe(value)
  return type(value) == "string" and not find(value, "[\r\n%z]")
end
M.header_safe = header_safe

-- Per creds table, what does not change between its calls: the checks of secret_id and token and the start of the
-- Authorization value. Weak keys: a refreshed set of credentials is a new table and the old entry goes with it.
-- The entry remembers the values it was made from, so a creds table changed in place is checked afresh.
local per_creds = setmetatable({}, { __mode = "k" })

-- → the entry, or nil and the name of the header whose value is unsafe (nothing is cached then).
local function creds_entry(creds)
  local id, token = creds.secret_id, creds.token
  local e = per_creds[creds]
  if e and e.secret_id == id and e.token == token then return e end
  if not header_safe(id) then return nil, "Authorization" end
  if token ~= nil and not header_safe(token) then return nil, "X-TC-Token" end
  e = { secret_id = id, token = token, prefix = M.ALGORITHM .. " Credential=" .. id .. "/",
    send_token = token ~= nil and token ~= "" }
  per_creds[creds] = e
  return e
end

-- parts: { action, host, body, timestamp, region, language, request_client, version }; the client checked the
-- static values (host, region, language, request client) once and the action on every call.
-- creds: { secret_id, signer, token } from a credentials provider (one consistent set), checked here because
-- providers may fetch them at run time.
-- Returns the header map, or nil and the name of the header whose value is unsafe.
function M.headers(parts, creds)
  local e, bad = creds_entry(creds)
  if not e then return nil, bad end
  local host, timestamp, region = parts.host, parts.timestamp, parts.region
  -- What stays the same from one call to the next is kept in the entry and rebuilt only when it changes: the list
  -- of headers the signature covers (per host; the C signer reads it during sign() and keeps no reference), the
  -- timestamp's digits (per second) and the Authorization value up to the signature (per scope, i.e. per day).
  if e.host ~= host then e.host, e.signed_list = host, { "content-type", CONTENT_TYPE, "host", host } end
  local signature, signed_headers, scope = creds.signing_key:sign(timestamp, SERVICE, "POST", "", e.signed_list,
    parts.body)
  if e.timestamp ~= timestamp then
    -- "%d", as the C signer writes it (sign() checked it): a float such as 1700000000.0 goes as the digits signed
    e.timestamp, e.timestamp_digits = timestamp, format("%d", timestamp)
  end
  if e.scope ~= scope or e.signed_headers ~= signed_headers then
    e.scope, e.signed_headers = scope, signed_headers
    e.authorization_start = e.prefix .. scope .. ", SignedHeaders=" .. signed_headers .. ", Signature="
  end
  local headers = {
    ["Authorization"] = e.authorization_start .. signature,
    ["Content-Type"] = CONTENT_TYPE,
    ["Host"] = host,
    ["X-TC-Action"] = parts.action,
    ["X-TC-Version"] = parts.version or VERSION,
    ["X-TC-Timestamp"] = e.timestamp_digits,
    ["X-TC-Language"] = parts.language,
    ["X-TC-RequestClient"] = parts.request_client,
  }
  if region and region ~= "" then headers["X-TC-Region"] = region end
  if e.send_token then headers["X-TC-Token"] = e.token end
  return headers
end

-- A copy of a header map fit for logs: the signature and the token are replaced.
function M.redact(headers)
  local out = {}
  for name, value in pairs(headers) do
    if name == "Authorization" then
      value = value:gsub("Signature=%x+", "Signature=<redacted>")
    elseif name == "X-TC-Token" then
      value = "<redacted>"
    end
    out[name] = value
  end
  return out
end

return M
