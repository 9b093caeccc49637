-- Callback requests from essbasic: check the signature, decrypt, decode.
--
-- essbasic POSTs a JSON message to the app's callback URL. With a callback token configured it adds
-- `Content-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body, keyed by the token); with a callback key the
-- body is `{"encrypt": "<base64>"}`, AES-256-CBC with the 32-byte key, the IV being the key's first 16 bytes,
-- PKCS#7 padding. The plaintext is the message {MsgId, MsgType, MsgVersion, MsgData}.
--
-- The callback URL is public, so everything here is written for a sender who may be an attacker:
-- * Signed by default. parse() and handle() need the token unless the caller passes allow_unsigned = true (a
--   warning is logged once per process / nginx worker). With a token the HMAC over the raw body is checked
--   before anything else: the ciphertext is authenticated before it is decrypted (encrypt-then-MAC), so a
--   damaged or forged body never reaches the decryption, and no padding oracle exists.
-- * With a key configured the body must be encrypted; a plaintext message is refused (encryption cannot be
--   bypassed by sending plaintext), and nothing of such a body but its "encrypt" field is looked at.
-- * Without a token (allow_unsigned) decryption runs on unauthenticated bytes. Then every refusal does the same
--   work: the ciphertext is decrypted without OpenSSL's early-exit padding check (see unseal), the padding is
--   checked over all 16 bytes, and the plaintext is JSON-decoded whether or not the padding was right.
-- * handle() answers every refused message with one status and one body (401 for a signature failure, 400
--   otherwise, always {"ok":false,"error":"Callback.Refused"}); the reason goes to nginx's error log and to the
--   return values. Error messages never hold the key, the token, a signature, or a byte of decrypted content.
--
-- verify_signature, decrypt and parse work in plain Lua and in nginx; handle() is the nginx receiver.
-- Failures are `nil, err` (err.kind "callback", err.code one of M.HTTP_STATUS's keys); wrong argument types raise.

local core = require("essbasic.core")
local errors = require("essbasic.errors")
local json = require("essbasic.json")
local personal = require("essbasic.personal")
local runtime = require("essbasic.runtime")

local type, tostring, pcall, error, rawget, setmetatable = type, tostring, pcall, error, rawget, setmetatable
local lower, match, sub, byte, rep = string.lower, string.match, string.sub, string.byte, string.rep
local hmac_sha256, hex, ct_equal = core.hmac_sha256, core.hex, core.ct_equal
local base64_decode, aes256cbc_encrypt, aes256cbc_decrypt =
  core.base64_decode, core.aes256cbc_encrypt, core.aes256cbc_decrypt

local M = {}

M.KEY_BYTES = 32

M.SIGNATURE_MISSING = "Callback.SignatureMissing"
M.SIGNATURE_MISMATCH = "Callback.SignatureMismatch"
M.BAD_KEY = "Callback.BadKey"
M.KEY_REQUIRED = "Callback.KeyRequired"
M.TOKEN_REQUIRED = "Callback.TokenRequired"
M.BAD_BASE64 = "Callback.BadBase64"
M.DECRYPT_FAILED = "Callback.DecryptFailed"
M.BAD_JSON = "Callback.BadJson"
M.EMPTY_BODY = "Callback.EmptyBody"
M.BAD_MESSAGE = "Callback.BadMessage"
M.NOT_ENCRYPTED = "Callback.NotEncrypted"

-- What handle() puts in the body of every refused message, whatever the reason.
M.REFUSED = "Callback.Refused"

-- The HTTP status handle() answers for each failure. 401 and 400 are refusals of the message (same body for
-- all); 500 is the receiver's configuration, not the sender's fault, so essbasic sends the message again once
-- it is fixed: a key of the wrong length, no key for an encrypted message, no token without allow_unsigned.
M.HTTP_STATUS = {
  [M.SIGNATURE_MISSING] = 401, [M.SIGNATURE_MISMATCH] = 401,
  [M.BAD_BASE64] = 400, [M.DECRYPT_FAILED] = 400, [M.BAD_JSON] = 400, [M.EMPTY_BODY] = 400,
  [M.BAD_MESSAGE] = 400, [M.NOT_ENCRYPTED] = 400,
  [M.BAD_KEY] = 500, [M.KEY_REQUIRED] = 500, [M.TOKEN_REQUIRED] = 500,
}

local function fail(code, message)
  return nil, errors.new{ code = code, kind = "callback", message = message }
end

local function need_string(v, name, level)
  if type(v) ~= "string" then error("callback: " .. name .. " must be a string, got " .. type(v), level + 1) end
end

-- true, or nil and SignatureMissing / SignatureMismatch. header_value is the Content-Signature header (or nil).
-- The HMAC is computed first, whatever the header holds: the time depends on the body's length only.
function M.verify_signature(body, header_value, token)
  need_string(body, "body", 2)
  need_string(token, "token", 2)
  if token == "" then error("callback: token must not be empty", 2) end
  if header_value ~= nil then need_string(header_value, "header_value", 2) end
  local expected = hex(hmac_sha256(token, body))
  if header_value == nil or header_value == "" then
    return fail(M.SIGNATURE_MISSING, "the request has no Content-Signature header")
  end
  local given = match(header_value, "^%s*[Ss][Hh][Aa]256=(%x+)%s*$")
  if not given or #given ~= 64 then
    return fail(M.SIGNATURE_MISSING, "the Content-Signature header is not 'sha256=' and 64 hex digits")
  end
  if not ct_equal(expected, lower(given)) then
    return fail(M.SIGNATURE_MISMATCH, "the Content-Signature does not match the body and the configured token")
  end
  return true
end

local PAD_BLOCK = rep("\16", 16) -- a whole block of PKCS#7 padding

-- The raw CBC decryption of the base64 text b64 and whether its PKCS#7 padding is right: plaintext (padding
-- removed when right, the whole raw plaintext otherwise), pad_ok. Or nil, code, why when there is nothing to
-- decrypt (BadBase64, or DecryptFailed for a length that is not whole blocks: both about bytes the sender chose).
--
-- OpenSSL checks the padding with early exits and answers only "bad padding". Instead one more block X is
-- appended, made so that it decrypts to a whole padding block (X = E(PAD xor last block), from one encryption):
-- OpenSSL's check then always passes and hands back the raw plaintext, whose padding is checked here over all
-- 16 bytes with no early exit. Both outcomes return the same way, so the caller can do the same work after.
local function unseal(b64, key)
  if b64 == "" then return nil, M.BAD_BASE64, "the encrypted field is empty" end
  local ciphertext, berr = base64_decode(b64)
  if not ciphertext then
    return nil, M.BAD_BASE64, "the encrypted field is not valid base64 (" .. tostring(berr) .. ")"
  end
  local n = #ciphertext
  if n == 0 or n % 16 ~= 0 then
    return nil, M.DECRYPT_FAILED, "the ciphertext is not a whole number of 16-byte blocks (" .. n .. " bytes)"
  end
  local closing = sub(aes256cbc_encrypt(key, sub(ciphertext, -16), PAD_BLOCK), 1, 16)
  local raw = aes256cbc_decrypt(key, sub(key, 1, 16), ciphertext .. closing)
  if type(raw) ~= "string" or #raw ~= n then -- cannot happen with a 32-byte key; refuse all the same
    return nil, M.DECRYPT_FAILED, "the message cannot be decrypted with the configured key"
  end
  local pad = byte(raw, n)
  local wrong = (pad >= 1 and pad <= 16) and 0 or 1
  for i = 1, 16 do
    local b = byte(raw, n - i + 1)
    wrong = wrong + ((i <= pad and b ~= pad) and 1 or 0)
  end
  if wrong == 0 then return sub(raw, 1, n - pad), true end
  return raw, false
end

-- The ciphertext's base64 text from a raw body ({"encrypt": "..."}) or the text itself.
local function encrypt_field(s)
  if sub(s, 1, 1) ~= "{" then return s end
  local obj = json.decode(s)
  if type(obj) ~= "table" then return nil, M.BAD_JSON, "the body is not JSON" end
  if type(obj.encrypt) ~= "string" then return nil, M.BAD_MESSAGE, "the body has no string 'encrypt' field" end
  return obj.encrypt
end

-- The plaintext (the message's JSON text), or nil and BadKey / BadBase64 / DecryptFailed / BadJson / BadMessage.
-- input: the raw body {"encrypt": "..."} or the value of its encrypt field. A low-level tool: it checks no
-- signature, and its codes say why decryption failed; never answer them to the sender (parse and handle don't).
function M.decrypt(input, key)
  need_string(input, "input", 2)
  need_string(key, "key", 2)
  if #key ~= M.KEY_BYTES then
    return fail(M.BAD_KEY, "the callback key must be exactly 32 bytes, got " .. #key)
  end
  local b64, code, why = encrypt_field(input)
  if not b64 then return fail(code, why) end
  local plaintext, pad_ok
  plaintext, pad_ok, why = unseal(b64, key)
  if not plaintext then return fail(pad_ok, why) end
  if not pad_ok then
    return fail(M.DECRYPT_FAILED, "the message cannot be decrypted with the configured key (bad padding: wrong key "
      .. "or damaged data)")
  end
  return plaintext
end

local function is_object(v)
  return type(v) == "table" and not json.is_array(v)
end

-- Where the decoder stopped in a body the sender wrote (never its bytes: they may be a plaintext message).
local function at_byte(why)
  local at = why and match(why, "at byte (%d+)")
  return at and (" (at byte " .. at .. ")") or ""
end

local unsigned_warned = false -- once per Lua state: per process in plain Lua, per worker in nginx

local function warn_unsigned()
  if unsigned_warned then return end
  unsigned_warned = true
  local text = "essbasic callback: allow_unsigned = true and no token: messages are not authenticated, anyone who "
    .. "can reach the callback URL can send one; set a callback token in the essbasic console and pass it as "
    .. "`token`"
  runtime.warn(text) -- the one default logger: nginx's error log, or stderr
end

-- The messages parse() returned after checking their signature with a token (weak keys). Only these may record
-- what they say (callback_store.record): a table made by hand or an unsigned message never resolves a creation.
local authenticated = setmetatable({}, { __mode = "k" })

function M.authenticated(msg)
  return authenticated[msg] == true
end

-- opts = { body = raw body, signature = Content-Signature header, token = callback token, key = callback key,
--          allow_unsigned = true to accept messages without a token (not recommended) }
-- → the message table (MsgId, MsgType, MsgVersion, MsgData, …), or nil, err. In this order: the configuration
-- (TokenRequired, BadKey), the signature over the raw body (when a token is given: always, then), the body.
-- With a key the body must be {"encrypt": "..."} (NotEncrypted otherwise) and the message is its decryption,
-- nothing else of the body; without a key an encrypted body is KeyRequired and a plain one is the message.
function M.parse(opts)
  if type(opts) ~= "table" then error("callback.parse expects a table", 2) end
  local body, token, key = opts.body, opts.token, opts.key
  need_string(body, "body", 2)
  if token ~= nil then need_string(token, "token", 2) end
  if key ~= nil then need_string(key, "key", 2) end
  if opts.signature ~= nil then need_string(opts.signature, "signature", 2) end
  local allow_unsigned = opts.allow_unsigned
  if allow_unsigned ~= nil and type(allow_unsigned) ~= "boolean" then
    error("callback: allow_unsigned must be a boolean, got " .. type(allow_unsigned), 2)
  end
  if token == nil then
    if allow_unsigned ~= true then
      return fail(M.TOKEN_REQUIRED, "no callback token is configured: set the token from the essbasic console "
        .. "(or allow_unsigned = true to accept unauthenticated messages)")
    end
    warn_unsigned()
  end
  if key ~= nil and #key ~= M.KEY_BYTES then
    return fail(M.BAD_KEY, "the callback key must be exactly 32 bytes, got " .. #key)
  end
  if token ~= nil then
    local ok, err = M.verify_signature(body, opts.signature, token)
    if not ok then return nil, err end
  end
  if body == "" then return fail(M.EMPTY_BODY, "the callback request has an empty body") end
  local outer, why = json.decode(body)
  if not is_object(outer) then return fail(M.BAD_JSON, "the body is not a JSON object" .. at_byte(why)) end
  local msg
  if key ~= nil then
    local b64 = outer.encrypt
    if b64 == nil then
      return fail(M.NOT_ENCRYPTED, "a callback key is configured but the body is not encrypted")
    end
    if type(b64) ~= "string" then return fail(M.BAD_MESSAGE, "the 'encrypt' field is not a string") end
    local plaintext, pad_ok, uwhy = unseal(b64, key)
    if not plaintext then return fail(pad_ok, uwhy) end
    -- Decoded whatever the padding, so that a bad padding and a bad plaintext cost the same.
    msg = json.decode(plaintext)
    if not pad_ok then
      return fail(M.DECRYPT_FAILED, "the message cannot be decrypted with the configured key (bad padding)")
    end
    if not is_object(msg) then return fail(M.BAD_JSON, "the decrypted message is not a JSON object") end
  else
    if outer.encrypt ~= nil then
      return fail(M.KEY_REQUIRED, "the message is encrypted but no callback key is configured")
    end
    msg = outer
  end
  if type(msg.MsgType) ~= "string" then return fail(M.BAD_MESSAGE, "the message has no MsgType") end
  if token ~= nil then authenticated[msg] = true end
  return msg
end

-- The largest body handle() reads, by default: a callback message is a few kilobytes; a megabyte leaves room
-- for any of them and bounds what a sender can make a worker hold.
M.DEFAULT_MAX_BODY = 1024 * 1024

-- A body without Content-Length (chunked) read through the request socket, at most max_body + 1 bytes: the body,
-- or nil and "too_large", or nil, nil when the socket cannot be had (nginx then reads it to its client_body_temp
-- folder, bounded by client_max_body_size only). lua-nginx-module 0.10.23 (Debian 12) refuses the socket for a
-- chunked body ("chunked request bodies not supported yet", ngx_http_lua_req_socket); a later one may not.
local function read_unsized_body(ngx, max_body)
  local ok, sock = pcall(ngx.req.socket)
  if not ok or not sock then return nil, nil end
  local parts, n = {}, 0
  while true do
    local data, err, partial = sock:receive(65536)
    data = data or partial
    if data and #data > 0 then
      n = n + #data
      if n > max_body then return nil, "too_large" end
      parts[#parts + 1] = data
    end
    if err == "closed" or (not err and data == nil) then break end
    if err then return nil, err end
  end
  return table.concat(parts)
end

-- The raw request body in nginx, at most max_body bytes: a Content-Length above it is refused before a byte of
-- the body is read (nginx then discards the body through a small buffer), a body without one is read through the
-- request socket and refused as soon as it passes the limit. → body, or nil and "too_large" or why it failed.
local function read_request_body(ngx, max_body)
  local length = ngx.var.http_content_length
  if length ~= nil then
    length = tonumber(length)
    if not length or length > max_body then return nil, "too_large" end
  elseif ngx.var.http_transfer_encoding then
    local body, why = read_unsized_body(ngx, max_body)
    if body or why then return body, why end
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then
    if #body > max_body then return nil, "too_large" end
    return body
  end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local f, why = io.open(path, "rb")
  if not f then return nil, "cannot open the request body file: " .. tostring(why) end
  body = f:read(max_body + 1)
  f:close()
  if not body then return "" end
  if #body > max_body then return nil, "too_large" end
  return body
end

local ACCEPTED_BODY = '{"ok":true}'
local REFUSED_BODY = '{"ok":false,"error":"' .. M.REFUSED .. '"}'

local function answer(ngx, status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
  return status
end

local function failure_body(code)
  return '{"ok":false,"error":"' .. code .. '"}'
end

-- A message parse() did not accept: 401 / 400 with the one refusal body (the reason to the log only), or 500
-- naming the receiver's configuration problem (which no message can change).
local function refuse(ngx, log, err)
  local status = M.HTTP_STATUS[err.code] or 400
  if status == 500 then
    log("error", "essbasic callback: cannot take messages: " .. tostring(err))
    return answer(ngx, 500, failure_body(err.code))
  end
  log("warn", "essbasic callback refused: " .. tostring(err))
  return answer(ngx, status, REFUSED_BODY)
end

-- The answer for a message a store did not let run (callback_store.HTTP_STATUS gives the status): one body code
-- per outcome.
local NOT_DELIVERED = { busy = "Callback.Busy", unavailable = "Callback.StoreUnavailable" }

-- An accepted message to the application: 200 only when deliver(msg) returned true. A store's deliver also
-- returns its outcome, answered with the store's status for it.
local function deliver_to(ngx, log, deliver, msg)
  local ok, handled, outcome = pcall(deliver, msg)
  if not ok then
    -- the handler's text may quote the message: its names, mobiles and ID numbers are masked
    log("error", "essbasic callback: the message handler raised: " .. personal.scrub(tostring(handled), msg))
    return answer(ngx, 500, failure_body("Callback.HandlerFailed"))
  end
  if handled ~= true then
    local status = outcome and require("essbasic.callback_store").HTTP_STATUS[outcome] or 500
    return answer(ngx, status, failure_body(NOT_DELIVERED[outcome] or "Callback.NotHandled"))
  end
  return answer(ngx, 200, ACCEPTED_BODY)
end

-- The nginx receiver, for a content handler:
--   content_by_lua_block { require("essbasic.callback").handle({ key = K, token = T }, function(msg) ... end) }
-- opts: token (required unless allow_unsigned = true), key, allow_unsigned; as for parse(); max_body (bytes,
-- DEFAULT_MAX_BODY): a larger body is refused with 413 and the refusal body, before it is read when it has a
-- Content-Length; store (essbasic.callback_store): a message it does not let run gets its HTTP_STATUS; logger
-- (function(level, message), as a client's; default: runtime.logger, nginx's error log).
-- Reads the body, checks, decrypts and decodes it (parse), and calls on_message(msg). The answer is 200 only
-- when on_message returned true (essbasic sends the message again otherwise). Every refused message gets the
-- body {"ok":false,"error":"Callback.Refused"}, with 401 for a missing or wrong signature and 400 for anything
-- else (a request that is not a POST: 405); why goes to the error log. 500 when on_message raised or did not
-- return true, or the receiver is misconfigured (no token, a bad key). Returns the status and the message (or
-- the error).
function M.handle(opts, on_message)
  if type(opts) ~= "table" then error("callback.handle expects a table of options", 2) end
  if type(on_message) ~= "function" then error("callback.handle expects a function for the messages", 2) end
  local max_body = opts.max_body or M.DEFAULT_MAX_BODY
  if type(max_body) ~= "number" or max_body < 1 then
    error("callback.handle: max_body must be a positive number of bytes", 2)
  end
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.req) ~= "table" then
    error("callback.handle runs in an nginx content handler", 2)
  end
  if opts.logger ~= nil and type(opts.logger) ~= "function" then
    error("callback.handle: logger must be a function(level, message)", 2)
  end
  local log = opts.logger or runtime.logger
  -- Each accepted message goes to deliver: on_message itself, or behind the store that runs it once per MsgId.
  local deliver = on_message
  if opts.store then deliver = require("essbasic.callback_store").wrap(opts.store, on_message, log) end
  if ngx.req.get_method() ~= "POST" then
    log("warn", "essbasic callback refused: the request is a " .. tostring(ngx.req.get_method()) .. ", not a POST")
    return answer(ngx, 405, REFUSED_BODY)
  end
  local body, why = read_request_body(ngx, max_body)
  if why == "too_large" then
    log("warn", "essbasic callback refused: the body is larger than max_body (" .. max_body .. " bytes)")
    return answer(ngx, 413, REFUSED_BODY)
  end
  if not body then
    log("error", "essbasic callback: " .. tostring(why))
    return answer(ngx, 500, failure_body("Callback.BodyUnreadable"))
  end
  local msg, err = M.parse{ body = body, signature = ngx.var.http_content_signature, token = opts.token,
    key = opts.key, allow_unsigned = opts.allow_unsigned }
  if not msg then return refuse(ngx, log, err), err end
  return deliver_to(ngx, log, deliver, msg), msg
end

return M
