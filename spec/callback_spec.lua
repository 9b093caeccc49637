-- essbasic.callback: messages encrypted and signed by the openssl command line are accepted and decrypted
-- exactly; every kind of damage gives its own error and no secret in it; callback.handle in real nginx.
local callback = require("essbasic.callback")
local core = require("essbasic.core")
local json = require("essbasic.json")
local nginx = require("tools.nginx")

local KEY = "0123456789abcdefGHIJKLMNOPQRSTUV" -- 32 bytes, the form essbasic's console gives
local TOKEN = "callback-token-Xy7"
local MESSAGE = '{"MsgId":"m-1001","MsgType":"FlowStatusChange","MsgVersion":"ThirdPartyApp",'
  .. '"MsgData":{"FlowId":"yDwFoUUckpsmiu7vUuO4bPRevHaxW8nm","FlowStatus":"ALL","Note":"签署完成 \\u00e9",'
  .. '"Approvers":[]}}'

-- Runs `openssl <args>` on input bytes (through a file: binary safe); returns its stdout.
local function openssl(args, input)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(input)
  f:close()
  local p = assert(io.popen("openssl " .. args .. " < " .. path .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return out
end

local function openssl_encrypt(plaintext, key)
  local out = openssl("enc -aes-256-cbc -K " .. core.hex(key) .. " -iv " .. core.hex(key:sub(1, 16))
    .. " -base64 -A", plaintext)
  assert(out ~= "", "openssl enc failed")
  return out
end

local function openssl_signature(body, token)
  local hex = openssl("dgst -sha256 -hmac '" .. token .. "' -r", body):match("^(%x+)")
  assert(hex and #hex == 64, "openssl dgst failed")
  return "sha256=" .. hex
end

local function encrypted_body(plaintext, key)
  return '{"encrypt":"' .. openssl_encrypt(plaintext, key or KEY) .. '"}'
end

-- The ciphertext of `plaintext` with a PKCS#7 padding that openssl would never write (checked via -nopad).
local function badly_padded(plaintext)
  local padded = plaintext .. string.rep("\5", 16 - #plaintext % 16 - 1) .. "\9"
  return openssl("enc -aes-256-cbc -nopad -K " .. core.hex(KEY) .. " -iv " .. core.hex(KEY:sub(1, 16))
    .. " -base64 -A", padded)
end

local function no_secret_in(err)
  local text = tostring(err) .. " " .. tostring(err.message)
  assert.is_nil(text:find(KEY, 1, true), "the key leaked")
  assert.is_nil(text:find(TOKEN, 1, true), "the token leaked")
  assert.is_nil(text:find(core.hex(KEY), 1, true), "the key leaked (hex)")
end

local function refused(code, opts)
  local msg, err = callback.parse(opts)
  assert.is_nil(msg)
  assert.equal(code, err.code)
  assert.equal("callback", err.kind)
  no_secret_in(err)
  return err
end

describe("callback (plain Lua, openssl as the sender)", function()
  it("decrypts an openssl-encrypted message exactly and checks its openssl signature", function()
    local body = encrypted_body(MESSAGE)
    local sig = openssl_signature(body, TOKEN)
    assert.is_true(callback.verify_signature(body, sig, TOKEN))
    assert.equal(MESSAGE, callback.decrypt(body, KEY))
    assert.equal(MESSAGE, callback.decrypt(json.decode(body).encrypt, KEY))
    local msg = assert(callback.parse{ body = body, signature = sig, token = TOKEN, key = KEY })
    assert.same(json.decode(MESSAGE), msg)
    assert.equal("签署完成 é", msg.MsgData.Note)
    assert.is_true(json.is_array(msg.MsgData.Approvers))
  end)

  it("accepts upper-case hex in the signature header and plain (unencrypted) messages", function()
    local sig = openssl_signature(MESSAGE, TOKEN)
    assert.is_true(callback.verify_signature(MESSAGE, "sha256=" .. sig:sub(8):upper(), TOKEN))
    local msg = assert(callback.parse{ body = MESSAGE, signature = sig, token = TOKEN, key = KEY })
    assert.equal("m-1001", msg.MsgId)
    assert.equal("FlowStatusChange", assert(callback.parse{ body = MESSAGE }).MsgType)
  end)

  it("decrypts messages of every length around the block size", function()
    for n = 0, 40 do
      local plaintext = '{"MsgType":"T","P":"' .. string.rep("x", n) .. '"}'
      assert.equal(plaintext, callback.decrypt(openssl_encrypt(plaintext, KEY), KEY))
    end
  end)

  it("refuses a tampered ciphertext", function()
    local enc = openssl_encrypt(MESSAGE, KEY)
    local raw = core.base64_decode(enc)
    -- flip a bit in the last block: the padding check fails (or, rarely, the JSON does)
    local i = #raw - 3
    local tampered = raw:sub(1, i - 1) .. string.char((raw:byte(i) + 1) % 256) .. raw:sub(i + 1)
    local body = '{"encrypt":"' .. core.base64_encode(tampered) .. '"}'
    local err = select(2, callback.parse{ body = body, key = KEY })
    assert.is_true(err.code == callback.DECRYPT_FAILED or err.code == callback.BAD_JSON, err.code)
    no_secret_in(err)
  end)

  it("refuses a body changed after signing, even with the original signature header", function()
    local body = encrypted_body(MESSAGE)
    local sig = openssl_signature(body, TOKEN)
    local changed = body:gsub('"}$', 'A"}')
    refused(callback.SIGNATURE_MISMATCH, { body = changed, signature = sig, token = TOKEN, key = KEY })
  end)

  it("refuses a wrong, malformed or missing signature", function()
    local body = encrypted_body(MESSAGE)
    local other = openssl_signature(body, TOKEN .. "x")
    local err = refused(callback.SIGNATURE_MISMATCH, { body = body, signature = other, token = TOKEN, key = KEY })
    assert.is_nil(err.message:find(openssl_signature(body, TOKEN):sub(8), 1, true), "expected signature leaked")
    refused(callback.SIGNATURE_MISSING, { body = body, signature = "sha1=abcd", token = TOKEN })
    refused(callback.SIGNATURE_MISSING, { body = body, signature = "sha256=" .. string.rep("a", 63), token = TOKEN })
    refused(callback.SIGNATURE_MISSING, { body = body, token = TOKEN })
  end)

  it("refuses a key of the wrong length, without naming it", function()
    local body = encrypted_body(MESSAGE)
    for _, key in ipairs({ KEY:sub(1, 31), KEY .. "W", KEY:sub(1, 16), "" }) do
      local msg, err = callback.decrypt(body, key)
      assert.is_nil(msg)
      assert.equal(callback.BAD_KEY, err.code)
      if #key > 0 then assert.is_nil(tostring(err):find(key, 1, true)) end
    end
  end)

  it("refuses truncated and non-base64 input", function()
    local enc = openssl_encrypt(MESSAGE, KEY)
    refused(callback.BAD_BASE64, { body = '{"encrypt":"' .. enc:sub(1, -2) .. '"}', key = KEY })
    refused(callback.BAD_BASE64, { body = '{"encrypt":"' .. enc:sub(1, 20) .. '!!!!"}', key = KEY })
    refused(callback.BAD_BASE64, { body = '{"encrypt":"' .. enc:sub(1, 20) .. '\\n' .. enc:sub(21) .. '"}', key = KEY })
    refused(callback.BAD_BASE64, { body = '{"encrypt":""}', key = KEY })
    -- whole blocks cut off: valid base64, but the last block's padding is gone
    local cut = core.base64_encode(core.base64_decode(enc):sub(1, 16))
    refused(callback.DECRYPT_FAILED, { body = '{"encrypt":"' .. cut .. '"}', key = KEY })
    -- a length that is not a whole number of blocks
    refused(callback.DECRYPT_FAILED, { body = '{"encrypt":"' .. core.base64_encode("0123456789") .. '"}', key = KEY })
  end)

  it("refuses bad padding and a wrong key", function()
    local enc = badly_padded('{"MsgType":"T"}')
    refused(callback.DECRYPT_FAILED, { body = '{"encrypt":"' .. enc .. '"}', key = KEY })
    local other = string.rep("z", 32)
    local err = select(2, callback.parse{ body = encrypted_body(MESSAGE), key = other })
    assert.is_true(err.code == callback.DECRYPT_FAILED or err.code == callback.BAD_JSON, err.code)
    no_secret_in(err)
  end)

  it("refuses an empty body, non-JSON bodies and non-JSON plaintexts", function()
    refused(callback.EMPTY_BODY, { body = "", key = KEY, token = TOKEN })
    refused(callback.BAD_JSON, { body = "encrypt=abc", key = KEY })
    refused(callback.BAD_JSON, { body = "[1,2]" })
    refused(callback.BAD_JSON, { body = encrypted_body("not json at all"), key = KEY })
    refused(callback.BAD_JSON, { body = encrypted_body('["MsgType"]'), key = KEY })
    refused(callback.BAD_MESSAGE, { body = encrypted_body('{"MsgId":"x"}'), key = KEY })
    refused(callback.BAD_MESSAGE, { body = '{"encrypt":42}', key = KEY })
    refused(callback.KEY_REQUIRED, { body = encrypted_body(MESSAGE) })
  end)

  it("survives random damage without raising", function()
    local body = encrypted_body(MESSAGE)
    math.randomseed(7)
    for _ = 1, 300 do
      local i = math.random(1, #body)
      local damaged = body:sub(1, i - 1) .. string.char(math.random(0, 255)) .. body:sub(i + 1)
      local ok, msg, err = pcall(callback.parse, { body = damaged, key = KEY })
      assert.is_true(ok, msg)
      assert.is_true(msg ~= nil or err.code:match("^Callback%.") ~= nil)
      if err then no_secret_in(err) end
    end
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() callback.parse("body") end)
    assert.has_error(function() callback.parse{ body = 1 } end)
    assert.has_error(function() callback.decrypt("x", 5) end)
    assert.has_error(function() callback.verify_signature("x", "sha256=00", "") end)
  end)
end)

-- callback.handle behind real nginx: one location per kind of user code.
local NGINX_CONF = [=[
  lua_shared_dict seen 1m;
  server {
    listen 127.0.0.1:%PORT%;
    location /handled {
      content_by_lua_block {
        require("essbasic.callback").handle({ key = "@KEY@", token = "@TOKEN@" }, function(msg)
          ngx.shared.seen:set(msg.MsgId, require("essbasic.json").encode(msg))
          return true
        end)
      }
    }
    location /declined {
      content_by_lua_block {
        require("essbasic.callback").handle({ key = "@KEY@", token = "@TOKEN@" }, function() return false end)
      }
    }
    location /raises {
      content_by_lua_block {
        require("essbasic.callback").handle({ key = "@KEY@" }, function() error("database down") end)
      }
    }
    location /seen {
      content_by_lua_block { ngx.print(ngx.shared.seen:get(ngx.var.arg_id) or "") }
    }
  }
]=]

describe("callback.handle in nginx", function()
  local srv, http

  setup(function()
    srv = nginx.start{ http = NGINX_CONF:gsub("@KEY@", KEY):gsub("@TOKEN@", TOKEN) }
    http = core.http_session{ timeout = 5 }
  end)

  teardown(function()
    if http then http:close() end
    if srv then srv:stop() end
  end)

  local function post(path, body, signature)
    local status, headers, resp = http:request("POST", "http://127.0.0.1:" .. srv.port .. path,
      { ["Content-Type"] = "application/json", ["Content-Signature"] = signature }, body)
    assert(status, headers)
    return status, resp
  end

  it("answers 200 once the handler kept the message, which arrives decrypted", function()
    local body = encrypted_body(MESSAGE)
    local status = post("/handled", body, openssl_signature(body, TOKEN))
    assert.equal(200, status)
    local _, _, kept = http:request("GET", "http://127.0.0.1:" .. srv.port .. "/seen?id=m-1001", {}, "")
    assert.same(json.decode(MESSAGE), json.decode(kept))
  end)

  it("answers 401 for a wrong or missing signature and 400 for what cannot be decrypted", function()
    local body = encrypted_body(MESSAGE)
    local status, resp = post("/handled", body, openssl_signature(body, "not-the-token"))
    assert.equal(401, status)
    assert.equal(callback.SIGNATURE_MISMATCH, json.decode(resp).error)
    assert.equal(401, (post("/handled", body, nil)))
    local junk = '{"encrypt":"' .. core.base64_encode(string.rep("j", 32)) .. '"}'
    status, resp = post("/handled", junk, openssl_signature(junk, TOKEN))
    assert.equal(400, status)
    assert.equal(callback.DECRYPT_FAILED, json.decode(resp).error)
    assert.equal(400, (post("/handled", "", openssl_signature("", TOKEN))))
    assert.is_nil(srv:error_log():find(KEY, 1, true))
    assert.is_nil(srv:error_log():find(TOKEN, 1, true))
  end)

  it("answers 500 when the handler declines or raises, so essbasic sends the message again", function()
    local body = encrypted_body(MESSAGE)
    assert.equal(500, (post("/declined", body, openssl_signature(body, TOKEN))))
    local status, resp = post("/raises", body)
    assert.equal(500, status)
    assert.equal("Callback.HandlerFailed", json.decode(resp).error)
    assert.truthy(srv:error_log():find("database down", 1, true))
  end)
end)
