-- What the specs recompute independently of the client: the TC3-HMAC-SHA256 Authorization of a request, from the
-- core's sha256/hmac primitives only (the signing the official SDKs do: content-type and host signed), and the
-- Agent the client specs send.
local core = require("essbasic.core")

local M = {}

-- The Authorization for body sent to host at Unix time ts with content type content_type (default
-- application/json).
function M.authorization(secret_id, secret_key, host, ts, body, content_type)
  local date = os.date("!%Y-%m-%d", ts)
  local canonical = table.concat({ "POST", "/", "", "content-type:" .. (content_type or "application/json"),
    "host:" .. host, "", "content-type;host", core.sha256_hex(body) }, "\n")
  local scope = date .. "/essbasic/tc3_request"
  local sts = table.concat({ "TC3-HMAC-SHA256", string.format("%d", ts), scope, core.sha256_hex(canonical) }, "\n")
  local k = core.hmac_sha256("TC3" .. secret_key, date)
  k = core.hmac_sha256(k, "essbasic")
  k = core.hmac_sha256(k, "tc3_request")
  return "TC3-HMAC-SHA256 Credential=" .. secret_id .. "/" .. scope
    .. ", SignedHeaders=content-type;host, Signature=" .. core.hex(core.hmac_sha256(k, sts))
end

-- An Agent structure with fixed test ids.
function M.agent()
  return { AppId = "app0001", ProxyOrganizationOpenId = "org0001", ProxyOperator = { OpenId = "op0001" } }
end

return M
