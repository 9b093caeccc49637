-- The error object every essbasic failure comes back as: `nil, err`.
-- Fields: code, message, request_id, http_status, kind, attempts, and per kind: problems (validation),
-- network (transport), outcome_unknown (a creating call that may have reached the server); personal_data_shown
-- when the error shows personal data unmasked (debug_personal_data).
-- Kinds (M.KINDS): service, validation, network, http, parse, client (the ClientError.* codes below), journal (the
-- command line's batch journal: a row whose outcome a crash left unknown, code ClientError.OutcomeUnknown), and
-- callback: the Callback.* codes of essbasic.callback (SignatureMissing, SignatureMismatch, EmptyBody, BadJson,
-- NotEncrypted, BadBase64, DecryptFailed, BadMessage, TokenRequired, BadKey, KeyRequired; defined and mapped to
-- HTTP statuses in lua/essbasic/callback.lua, listed in docs/internals.md). Callback errors never hold decrypted
-- content. spec/errors_spec.lua holds every kind and ClientError code the modules write to these lists.
-- Nothing here may hold key material: messages are built by the callers from non-secret parts only.
-- Personal data: the callers mask the values they quote (essbasic.personal), and tostring scrubs the message once
-- more, so a service's message that echoes an ID number or a mobile prints masked too; the message itself is left
-- as it was made. `personal_data_shown = true` (an error made under debug_personal_data) turns the scrub off.
-- Credentials in URLs (a proxy's password that libcurl quotes in its own error text, a caller's URL) are removed
-- from every message here, in new and again in tostring (essbasic.url_credentials): one place that every error
-- passes, whoever built its message, so no transport or caller has to remember it.

local setmetatable, getmetatable, tostring, type = setmetatable, getmetatable, tostring, type
local concat = table.concat
local scrub = require("essbasic.personal").scrub
local remove_url_credentials = require("essbasic.url_credentials").remove

local M = {}

local Error = {}
Error.__index = Error
Error.__name = "essbasic.error"

function Error.__tostring(e)
  local message = remove_url_credentials(tostring(e.message))
  if not e.personal_data_shown then message = scrub(message) end
  local parts = { "essbasic: ", tostring(e.code), ": ", message }
  if e.request_id then parts[#parts + 1] = " [request_id=" .. tostring(e.request_id) .. "]" end
  if e.http_status then parts[#parts + 1] = " [http_status=" .. tostring(e.http_status) .. "]" end
  if e.attempts and e.attempts > 1 then parts[#parts + 1] = " [attempts=" .. tostring(e.attempts) .. "]" end
  return concat(parts)
end

-- "failed: " .. err and err .. "!" work as with a string: the same text as tostring (scrubbed likewise).
function Error.__concat(a, b)
  return tostring(a) .. tostring(b)
end

-- The client-side codes, in the official SDKs' ClientError.* style (see docs/internals.md).
M.NETWORK = "ClientError.NetworkError"
M.HTTP_STATUS = "ClientError.HttpStatusCodeError"
M.PARSE_JSON = "ClientError.ParseJsonError"
M.RESPONSE_TOO_LARGE = "ClientError.ResponseTooLarge"
M.REQUEST_TOO_LARGE = "ClientError.RequestTooLarge"
M.ENCODE = "ClientError.EncodeError"
M.CREDENTIAL = "ClientError.CredentialError"
M.OUTCOME_UNKNOWN = "ClientError.OutcomeUnknown"
M.RATE_LIMITED = "ClientError.RateLimited"
M.DEADLINE = "ClientError.DeadlineExceeded"
M.HEADER_VALUE = "ClientError.InvalidHeaderValue"
M.PHASE = "ClientError.BlockingCallNotAllowed"
M.UNEXPECTED = "ClientError.UnexpectedError" -- a call raised (a bug, or a caller's provider); see call.fail_raised
M.FILE = "ClientError.FileError"             -- essbasic.file could not read the file
M.STORE = "ClientError.CallbackStoreError"   -- client:resolve: the callback store did not answer, or disagrees

M.KINDS = { service = true, validation = true, network = true, http = true, parse = true, client = true,
  journal = true, callback = true }

-- fields: a table with at least code and message; it becomes the error object (no copy).
function M.new(fields)
  if type(fields) ~= "table" then error("errors.new expects a table", 2) end
  if type(fields.code) ~= "string" then error("errors.new: code must be a string", 2) end
  if not M.KINDS[fields.kind] then
    error("errors.new: kind must be one of errors.KINDS, not " .. tostring(fields.kind), 2)
  end
  if fields.message == nil then fields.message = fields.code end
  fields.message = remove_url_credentials(fields.message)
  return setmetatable(fields, Error)
end

function M.is_error(v)
  return getmetatable(v) == Error
end

return M
