-- Callback requests from essbasic: check the signature, decrypt, decode.
--
-- essbasic POSTs a JSON message to the app's callback URL. With a callback token configured it adds
-- `Content-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body, keyed by the token); with a callback key the
-- body is `{"encrypt": "<base64>"}`, AES-256-CBC with the 32-byte key, the IV being the key's first 16 bytes,
-- PKCS#7 padding. The plaintext is the message {MsgId, MsgType, MsgVersion, MsgData}.
--
-- verify_signature, decrypt and parse work in plain Lua and in nginx; handle() is the nginx receiver.
-- Failures are `nil, err` with err.code one of M.CODES; messages never hold the key, the token or a signature.

local core = require("essbasic.core")
local errors = require("essbasic.errors")
local json = require("essbasic.json")

local type, tostring, pcall, error, rawget = type, tostring, pcall, error, rawget
local lower, match, sub = string.lower, string.match, string.sub
local hmac_sha256, hex, ct_equal = core.hmac_sha256, core.hex, core.ct_equal
local base64_decode, aes256cbc_decrypt = core.base64_decode, core.aes256cbc_decrypt

local M = {}

M.KEY_BYTES = 32

M.SIGNATURE_MISSING = "Callback.SignatureMissing"
M.SIGNATURE_MISMATCH = "Callback.SignatureMismatch"
M.BAD_KEY = "Callback.BadKey"
M.KEY_REQUIRED = "Callback.KeyRequired"
M.BAD_BASE64 = "Callback.BadBase64"
M.DECRYPT_FAILED = "Callback.DecryptFailed"
M.BAD_JSON = "Callback.BadJson"
M.EMPTY_BODY = "Callback.EmptyBody"
M.BAD_MESSAGE = "Callback.BadMessage"

-- The HTTP status handle() answers for each failure. A wrong key length or a missing key is the receiver's
-- configuration, not the sender's fault: 500, so essbasic sends the message again once it is fixed.
M.HTTP_STATUS = {
  [M.SIGNATURE_MISSING] = 401, [M.SIGNATURE_MISMATCH] = 401,
  [M.BAD_BASE64] = 400, [M.DECRYPT_FAILED] = 400, [M.BAD_JSON] = 400, [M.EMPTY_BODY] = 400,
  [M.BAD_MESSAGE] = 400,
  [M.BAD_KEY] = 500, [M.KEY_REQUIRED] = 500,
}

local function fail(code, message)
  return nil, errors.new{ code = code, kind = "callback", message = message }
end

local function need_string(v, name, level)
  if type(v) ~= "string" then error("callback: " .. name .. " must be a string, got " .. type(v), level + 1) end
end

-- true, or nil and SignatureMissing / SignatureMismatch. header_value is the Content-Signature header (or nil).
function M.verify_signature(body, header_value, token)
  need_string(body, "body", 2)
  need_string(token, "token", 2)
  if token == "" then error("callback: token must not be empty", 2) end
  if header_value == nil or header_value == "" then
    return fail(M.SIGNATURE_MISSING, "the request has no Content-Signature header")
  end
  need_string(header_value, "header_value", 2)
  local given = match(header_value, "^%s*[Ss][Hh][Aa]256=(%x+)%s*$")
  if not given or #given ~= 64 then
    return fail(M.SIGNATURE_MISSING, "the Content-Signature header is not 'sha256=' and 64 hex digits")
  end
  if not ct_equal(hex(hmac_sha256(token, body)), lower(given)) then
    return fail(M.SIGNATURE_MISMATCH, "the Content-Signature does not match the body and the configured token")
  end
  return true
end

-- The ciphertext's base64 text from a raw body ({"encrypt": "..."}) or the text itself.
local function encrypt_field(s)
  if sub(s, 1, 1) ~= "{" then return s end
  local obj, why = json.decode(s)
  if type(obj) ~= "table" then return nil, M.BAD_JSON, "the body is not JSON: " .. tostring(why) end
  if type(obj.encrypt) ~= "string" then return nil, M.BAD_MESSAGE, "the body has no string 'encrypt' field" end
  return obj.encrypt
end

-- The plaintext (the message's JSON text), or nil and BadKey / BadBase64 / DecryptFailed / BadJson.
-- input: the raw body {"encrypt": "..."} or the value of its encrypt field.
function M.decrypt(input, key)
  need_string(input, "input", 2)
  need_string(key, "key", 2)
  if #key ~= M.KEY_BYTES then
    return fail(M.BAD_KEY, "the callback key must be exactly 32 bytes, got " .. #key)
  end
  local b64, code, why = encrypt_field(input)
  if not b64 then return fail(code, why) end
  if b64 == "" then return fail(M.BAD_BASE64, "the encrypted field is empty") end
  local ciphertext, berr = base64_decode(b64)
  if not ciphertext then return fail(M.BAD_BASE64, "the encrypted field is not valid base64 (" .. berr .. ")") end
  local plaintext, derr = aes256cbc_decrypt(key, sub(key, 1, 16), ciphertext)
  if not plaintext then
    return fail(M.DECRYPT_FAILED, "the message cannot be decrypted with the configured key (" .. derr .. ")")
  end
  return plaintext
end

local function is_object(v)
  return type(v) == "table" and not json.is_array(v)
end

-- opts = { body = raw body, signature = Content-Signature header, token = callback token, key = callback key }
-- → the message table (MsgId, MsgType, MsgVersion, MsgData, …), or nil, err. The signature is checked when a
-- token is given; the body is decrypted when a key is given and the body is {"encrypt": ...}.
function M.parse(opts)
  if type(opts) ~= "table" then error("callback.parse expects a table", 2) end
  local body, token, key = opts.body, opts.token, opts.key
  need_string(body, "body", 2)
  if token ~= nil then need_string(token, "token", 2) end
  if key ~= nil then need_string(key, "key", 2) end
  if opts.signature ~= nil then need_string(opts.signature, "signature", 2) end
  if body == "" then return fail(M.EMPTY_BODY, "the callback request has an empty body") end
  if token then
    local ok, err = M.verify_signature(body, opts.signature, token)
    if not ok then return nil, err end
  end
  local msg, why = json.decode(body)
  if not is_object(msg) then
    return fail(M.BAD_JSON, "the body is not a JSON object" .. (why and (": " .. why) or ""))
  end
  if msg.encrypt ~= nil then
    if not key then return fail(M.KEY_REQUIRED, "the message is encrypted but no callback key is configured") end
    if type(msg.encrypt) ~= "string" then return fail(M.BAD_MESSAGE, "the 'encrypt' field is not a string") end
    local plaintext, err = M.decrypt(msg.encrypt, key)
    if not plaintext then return nil, err end
    msg, why = json.decode(plaintext)
    if not is_object(msg) then
      return fail(M.BAD_JSON, "the decrypted message is not a JSON object" .. (why and (": " .. why) or ""))
    end
  end
  if type(msg.MsgType) ~= "string" then return fail(M.BAD_MESSAGE, "the message has no MsgType") end
  return msg
end

-- The raw request body in nginx: in memory, or from the temporary file nginx wrote a large body to.
local function read_request_body(ngx)
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local f, why = io.open(path, "rb")
  if not f then return nil, "cannot open the request body file: " .. tostring(why) end
  body = f:read("*a")
  f:close()
  if not body then return nil, "cannot read the request body file" end
  return body
end

local function answer(ngx, status, code)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(code and ('{"ok":false,"error":"' .. code .. '"}') or '{"ok":true}')
  return status
end

-- The nginx receiver, for a content handler:
--   content_by_lua_block { require("essbasic.callback").handle({ key = K, token = T }, function(msg) ... end) }
-- Reads the body, checks and decrypts it, and calls on_message(msg, ngx_request_info). The answer is 200 only
-- when on_message returned true (essbasic sends the message again otherwise): 401 for a missing or wrong
-- signature, 400 for a body that cannot be decrypted or decoded, 500 when on_message failed or did not return
-- true. Returns the status and the message (or the error).
function M.handle(opts, on_message)
  if type(opts) ~= "table" then error("callback.handle expects a table of options", 2) end
  if type(on_message) ~= "function" then error("callback.handle expects a function for the messages", 2) end
  if opts.store then on_message = require("essbasic.callback_store").wrap(opts.store, on_message) end -- once/MsgId
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.req) ~= "table" then
    error("callback.handle runs in an nginx content handler", 2)
  end
  if ngx.req.get_method() ~= "POST" then return answer(ngx, 405, "Callback.MethodNotAllowed") end
  local body, why = read_request_body(ngx)
  if not body then
    ngx.log(ngx.ERR, "essbasic callback: ", why)
    return answer(ngx, 500, "Callback.BodyUnreadable")
  end
  local msg, err = M.parse{ body = body, signature = ngx.var.http_content_signature, token = opts.token,
    key = opts.key }
  if not msg then
    ngx.log(ngx.WARN, "essbasic callback refused: ", tostring(err))
    return answer(ngx, M.HTTP_STATUS[err.code] or 400, err.code), err
  end
  local ok, handled = pcall(on_message, msg)
  if not ok then
    ngx.log(ngx.ERR, "essbasic callback: the message handler raised: ", tostring(handled))
    return answer(ngx, 500, "Callback.HandlerFailed"), msg
  end
  if handled ~= true then return answer(ngx, 500, "Callback.NotHandled"), msg end
  return answer(ngx, 200), msg
end

return M
