-- Turns an encoded request into its signed headers (TC3-HMAC-SHA256, the way the official SDKs sign:
-- only content-type and host). The hashing and HMACs happen in the C signer held by the credentials; this file
-- only decides which headers exist and what they say.

local type, tostring, pairs, find = type, tostring, pairs, string.find

local M = {}

M.VERSION = "2021-05-26"
M.SERVICE = "essbasic"
M.CONTENT_TYPE = "application/json"
M.ALGORITHM = "TC3-HMAC-SHA256"

-- CR, LF or NUL in a header value would let a value forge headers of its own.
function M.header_safe(value)
  return type(value) == "string" and not find(value, "[\r\n%z]")
end

-- parts: { action, host, body, timestamp, region, language, request_client, version }; the client checked the
-- static values (host, region, language, request client) once and the action on every call.
-- creds: { secret_id, signer, token } from a credentials provider (one consistent set), checked here because
-- providers may fetch them at run time.
-- Returns the header map, or nil and the name of the header whose value is unsafe.
function M.headers(parts, creds)
  if not M.header_safe(creds.secret_id) then return nil, "Authorization" end
  if creds.token ~= nil and not M.header_safe(creds.token) then return nil, "X-TC-Token" end
  local signature, signed_headers, scope = creds.signer:sign(parts.timestamp, M.SERVICE, "POST", "",
    { "content-type", M.CONTENT_TYPE, "host", parts.host }, parts.body)
  local headers = {
    ["Authorization"] = M.ALGORITHM .. " Credential=" .. creds.secret_id .. "/" .. scope
      .. ", SignedHeaders=" .. signed_headers .. ", Signature=" .. signature,
    ["Content-Type"] = M.CONTENT_TYPE,
    ["Host"] = parts.host,
    ["X-TC-Action"] = parts.action,
    ["X-TC-Version"] = parts.version or M.VERSION,
    ["X-TC-Timestamp"] = tostring(parts.timestamp),
    ["X-TC-Language"] = parts.language,
    ["X-TC-RequestClient"] = parts.request_client,
  }
  if parts.region and parts.region ~= "" then headers["X-TC-Region"] = parts.region end
  if creds.token and creds.token ~= "" then headers["X-TC-Token"] = creds.token end
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
