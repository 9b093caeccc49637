-- fuzz_callback: the callback path (core.base64_decode, core.aes256cbc_decrypt with a fixed 32-byte key, HMAC-SHA256
-- and ct_equal for Content-Signature, and lua/essbasic/callback.lua's parse over them) never crashes, round-trips
-- what it accepts, and never lets the key or the token into an error message.
--
-- The input is used four ways: as base64 text, as raw ciphertext, as a whole callback body (signed and unsigned),
-- and as the plaintext of a well-formed encrypted body, which must then decrypt to exactly the input.
local fail = ...
local core = require("essbasic.core")
local callback = require("essbasic.callback")
local errors = require("essbasic.errors")
local json = require("essbasic.json")
local b64d, b64e = core.base64_decode, core.base64_encode
local decrypt, encrypt = core.aes256cbc_decrypt, core.aes256cbc_encrypt
local hmac, hex, ct_equal = core.hmac_sha256, core.hex, core.ct_equal
local pcall, type, tostring, find, sub = pcall, type, tostring, string.find, string.sub

local KEY = "fuzz-callback-key-0123456789abcd" -- 32 bytes
local IV = sub(KEY, 1, 16)
local TOKEN = "fuzz-callback-token-secret"
assert(#KEY == 32)

local function check_error(err, what)
  if not errors.is_error(err) then fail(what .. ": failure without an error object") end
  local text = tostring(err)
  if find(text, KEY, 1, true) or find(text, TOKEN, 1, true) then fail(what .. ": the error shows a secret") end
  if callback.HTTP_STATUS[err.code] == nil then fail(what .. ": unknown error code " .. tostring(err.code)) end
end

local function parse(opts, what)
  local ok, msg, err = pcall(callback.parse, opts)
  if not ok then fail(what .. ": callback.parse raised: " .. tostring(msg)) end
  if msg == nil then check_error(err, what) return nil, err end
  if type(msg) ~= "table" or type(msg.MsgType) ~= "string" then fail(what .. ": a message without MsgType") end
  return msg
end

return function(data)
  -- base64: whatever decodes re-encodes to text that decodes to the same bytes; any bytes round-trip.
  local raw, why = b64d(data)
  if raw then
    local again = b64d(b64e(raw))
    if again ~= raw then fail("base64 round trip of decoded bytes") end
    if #b64e(raw) ~= #data then fail("base64 length") end
  elseif type(why) ~= "string" then
    fail("base64_decode failed without a message")
  end
  if b64d(b64e(data)) ~= data then fail("base64 round trip of the input") end

  -- AES-256-CBC: a ciphertext that decrypts re-encrypts to itself (same key and IV).
  for _, ct in ipairs({ data, raw }) do
    local plain, derr = decrypt(KEY, IV, ct)
    if plain then
      if encrypt(KEY, IV, plain) ~= ct then fail("aes decrypt/encrypt round trip") end
    elseif type(derr) ~= "string" or find(derr, KEY, 1, true) then
      fail("aes failure message")
    end
  end
  local sealed = encrypt(KEY, IV, data)
  if decrypt(KEY, IV, sealed) ~= data then fail("aes encrypt/decrypt round trip") end

  -- Content-Signature: the right one verifies in constant-time comparison, a damaged one does not.
  local mac = hex(hmac(TOKEN, data))
  if not ct_equal(mac, hex(hmac(TOKEN, data))) then fail("ct_equal on equal MACs") end
  local damaged = (sub(mac, 1, 1) == "0" and "1" or "0") .. sub(mac, 2)
  if ct_equal(mac, damaged) then fail("ct_equal on different MACs") end
  if ct_equal(data, data .. "x") then fail("ct_equal on different lengths") end

  -- The input as a whole body: unsigned with a key, and signed with the token.
  parse({ body = data, key = KEY, allow_unsigned = true }, "raw body")
  local _, err = parse({ body = data, token = TOKEN, signature = "sha256=" .. mac, key = KEY }, "signed body")
  if err and (err.code == callback.SIGNATURE_MISMATCH or err.code == callback.SIGNATURE_MISSING) then
    fail("a correct Content-Signature was refused")
  end
  local _, err2 = parse({ body = data, token = TOKEN, signature = "sha256=" .. damaged }, "damaged signature")
  if data ~= "" and (not err2 or err2.code ~= callback.SIGNATURE_MISMATCH) then
    fail("a damaged Content-Signature was accepted")
  end

  -- The input as the plaintext of a well-formed encrypted body.
  local body = json.encode({ encrypt = b64e(sealed) })
  local plain = callback.decrypt(body, KEY)
  if plain ~= data then fail("callback.decrypt does not give back the plaintext") end
  local msg, perr = parse({ body = body, key = KEY, allow_unsigned = true }, "encrypted body")
  if not msg and perr.code ~= callback.BAD_JSON and perr.code ~= callback.BAD_MESSAGE then
    fail("a well-formed encrypted body failed with " .. tostring(perr.code))
  end
end
