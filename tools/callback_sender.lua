-- The sender's side of essbasic callbacks, made with the openssl command line (never with the code under test):
-- AES-256-CBC with the key's first 16 bytes as IV (`openssl enc -aes-256-cbc -K .. -iv ..`), the Content-Signature
-- HMAC-SHA256 (`openssl dgst -sha256 -hmac`), and the byte flips an attacker tries on a captured message.
-- Used by spec/callback_spec.lua, spec/callback_nginx_spec.lua and bench/callback_refusals.lua (a test tool, not
-- part of the library: tools/, like tools/nginx.lua).
local core = require("essbasic.core")

local M = {}

M.KEY = "0123456789abcdefGHIJKLMNOPQRSTUV" -- 32 bytes, the form essbasic's console gives
M.TOKEN = "callback-token-Xy7"
-- A message with personal data in it: none of it may ever show in an error or a log line.
M.MESSAGE = '{"MsgId":"m-1001","MsgType":"FlowStatusChange","MsgVersion":"ThirdPartyApp",'
  .. '"MsgData":{"FlowId":"yDwFoUUckpsmiu7vUuO4bPRevHaxW8nm","FlowStatus":"ALL","Note":"签署完成 \\u00e9",'
  .. '"ApproverName":"张晓梅","ApproverMobile":"13912345678","Approvers":[]}}'
-- Pieces of MESSAGE that must never appear in an error message or in nginx's log.
M.PERSONAL = { "张晓梅", "13912345678", "yDwFoUUckpsmiu7vUuO4bPRevHaxW8nm", "签署完成" }

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs `openssl <args>` on input bytes (through a file: binary safe); returns its stdout and whether it exited 0.
function M.openssl(args, input)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(input)
  f:close()
  local p = assert(io.popen("openssl " .. args .. " < " .. path .. " 2>/dev/null; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  local body, rc = out:match("^(.-)rc=(%d+)%s*$")
  return body, rc == "0"
end

local function key_args(key)
  return "-K " .. core.hex(key) .. " -iv " .. core.hex(key:sub(1, 16))
end

-- base64 of the ciphertext, as essbasic puts it in {"encrypt": ...}.
function M.encrypt(plaintext, key)
  local out, ok = M.openssl("enc -aes-256-cbc " .. key_args(key or M.KEY) .. " -base64 -A", plaintext)
  assert(ok and out ~= "", "openssl enc failed")
  return out
end

-- The raw ciphertext.
function M.encrypt_raw(plaintext, key)
  return assert(core.base64_decode(M.encrypt(plaintext, key)))
end

-- openssl's own decryption of raw ciphertext bytes: the plaintext, or nil when openssl refuses the padding.
function M.decrypt_raw(ciphertext, key)
  local out, ok = M.openssl("enc -d -aes-256-cbc " .. key_args(key or M.KEY), ciphertext)
  if not ok then return nil end
  return out
end

function M.signature(body, token)
  local out = M.openssl("dgst -sha256 -hmac " .. shell_quote(token or M.TOKEN) .. " -r", body)
  local hex = out:match("^(%x+)")
  assert(hex and #hex == 64, "openssl dgst failed")
  return "sha256=" .. hex
end

function M.body(b64)
  return '{"encrypt":"' .. b64 .. '"}'
end

function M.encrypted_body(plaintext, key)
  return M.body(M.encrypt(plaintext, key))
end

-- The ciphertext (base64) of `plaintext` with a PKCS#7 padding that openssl would never write (via -nopad).
function M.badly_padded(plaintext, key)
  local padded = plaintext .. string.rep("\5", 16 - #plaintext % 16 - 1) .. "\9"
  local out, ok = M.openssl("enc -aes-256-cbc -nopad " .. key_args(key or M.KEY) .. " -base64 -A", padded)
  assert(ok and out ~= "", "openssl enc -nopad failed")
  return out
end

-- The 256 variants of a ciphertext with the last byte of its second-to-last block set to 0..255, the padding
-- oracle attacker's probe (it drives the last plaintext byte through every value). Variant v+1 has byte v.
function M.flips(ciphertext)
  assert(#ciphertext >= 32 and #ciphertext % 16 == 0)
  local i = #ciphertext - 16
  local out = {}
  for v = 0, 255 do
    out[v + 1] = ciphertext:sub(1, i - 1) .. string.char(v) .. ciphertext:sub(i + 1)
  end
  return out, ciphertext:byte(i)
end

return M
