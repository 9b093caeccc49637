-- essbasic.callback in plain Lua: messages encrypted and signed by the openssl command line are accepted and
-- decrypted exactly; a token is required unless allow_unsigned; the signature is checked before any decryption;
-- every kind of damage gives its own error code (for the program and the log), with no secret and no byte of
-- the decrypted message in it; bad padding and bad plaintext take the same steps. callback.handle in real nginx
-- is in spec/callback_nginx_spec.lua.
local callback = require("essbasic.callback")
local core = require("essbasic.core")
local json = require("essbasic.json")
local sender = require("tools.callback_sender")

local KEY, TOKEN, MESSAGE = sender.KEY, sender.TOKEN, sender.MESSAGE
local openssl_encrypt, openssl_signature = sender.encrypt, sender.signature
local encrypted_body, badly_padded = sender.encrypted_body, sender.badly_padded

local function no_secret_in(err)
  local text = tostring(err) .. " " .. tostring(err.message)
  assert.is_nil(text:find(KEY, 1, true), "the key leaked")
  assert.is_nil(text:find(TOKEN, 1, true), "the token leaked")
  assert.is_nil(text:find(core.hex(KEY), 1, true), "the key leaked (hex)")
  for _, piece in ipairs(sender.PERSONAL) do
    assert.is_nil(text:find(piece, 1, true), "message content leaked: " .. piece)
  end
end

local function with(opts, extra)
  local t = {}
  for k, v in pairs(opts) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end

local function refused_as(code, opts)
  local msg, err = callback.parse(opts)
  assert.is_nil(msg)
  assert.equal(code, err.code)
  assert.equal("callback", err.kind)
  no_secret_in(err)
  return err
end

-- parse refuses opts with `code`. Without a token in opts, three ways: unsigned with allow_unsigned, signed with
-- the token (the openssl signature of the body: the same code once the signature passed), and neither
-- (TokenRequired, whatever the body).
local function refused(code, opts)
  if opts.token ~= nil then return refused_as(code, opts) end
  refused_as(callback.TOKEN_REQUIRED, opts)
  refused_as(code, with(opts, { token = TOKEN, signature = openssl_signature(opts.body, TOKEN) }))
  return refused_as(code, with(opts, { allow_unsigned = true }))
end

-- A fresh copy of essbasic.callback (its once-per-process state reset), built over core functions replaced by
-- the given wrappers; the real ones are back when this returns.
local function fresh_callback(wrappers)
  local saved = {}
  for name, wrap in pairs(wrappers or {}) do
    saved[name] = core[name]
    core[name] = wrap(core[name])
  end
  package.loaded["essbasic.callback"] = nil
  local ok, fresh = pcall(require, "essbasic.callback")
  package.loaded["essbasic.callback"] = callback
  for name, f in pairs(saved) do core[name] = f end
  assert(ok, fresh)
  return fresh
end

-- Runs fn with io.stderr replaced by a recorder; returns what was written.
local function stderr_of(fn)
  local written = {}
  local real = io.stderr
  io.stderr = { write = function(self, ...) -- luacheck: ignore 122 (setting a field of io on purpose)
    for i = 1, select("#", ...) do written[#written + 1] = tostring((select(i, ...))) end
    return self
  end }
  local ok, why = pcall(fn)
  io.stderr = real -- luacheck: ignore 122
  assert(ok, why)
  return table.concat(written)
end

-- Runs fn(cb, take) with cb a fresh essbasic.callback whose crypto and JSON calls are recorded (name:argument
-- count); take() returns the steps recorded since the last take(). json.decode is back when this returns.
local function traced(fn)
  local steps = {}
  local function record(name)
    return function(f)
      return function(...)
        steps[#steps + 1] = name .. ":" .. select("#", ...)
        return f(...)
      end
    end
  end
  local function take()
    local taken = steps
    steps = {}
    return taken
  end
  local cb = fresh_callback{ aes256cbc_decrypt = record("decrypt"), aes256cbc_encrypt = record("encrypt"),
    base64_decode = record("base64") }
  local real_decode = json.decode
  json.decode = record("json")(real_decode)
  local ok, why = pcall(fn, cb, take)
  json.decode = real_decode
  assert(ok, why)
end

describe("callback (plain Lua, openssl as the sender)", function()
  setup(function()
    -- this process's one allow_unsigned warning, kept out of the test output (checked on a fresh copy below)
    stderr_of(function() callback.parse{ body = MESSAGE, allow_unsigned = true } end)
  end)

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

  it("accepts upper-case hex in the signature header and plain (unencrypted) messages when no key is set",
    function()
    local sig = openssl_signature(MESSAGE, TOKEN)
    assert.is_true(callback.verify_signature(MESSAGE, "sha256=" .. sig:sub(8):upper(), TOKEN))
    local msg = assert(callback.parse{ body = MESSAGE, signature = sig, token = TOKEN })
    assert.equal("m-1001", msg.MsgId)
    assert.equal("FlowStatusChange", assert(callback.parse{ body = MESSAGE, allow_unsigned = true }).MsgType)
  end)

  it("refuses a plaintext message when a key is configured, signed or not", function()
    local sig = openssl_signature(MESSAGE, TOKEN)
    refused(callback.NOT_ENCRYPTED, { body = MESSAGE, signature = sig, token = TOKEN, key = KEY })
    refused(callback.NOT_ENCRYPTED, { body = MESSAGE, key = KEY })
    -- an encrypted body's other fields are never the message
    local body = '{"MsgType":"FlowStatusChange","MsgId":"forged","encrypt":"' .. openssl_encrypt(MESSAGE, KEY) .. '"}'
    local msg = assert(callback.parse{ body = body, key = KEY, token = TOKEN, signature = openssl_signature(body) })
    assert.equal("m-1001", msg.MsgId)
  end)

  it("requires a token unless allow_unsigned = true, before looking at the body", function()
    for _, body in ipairs({ MESSAGE, encrypted_body(MESSAGE), "", "garbage", '{"encrypt":"!!"}' }) do
      for _, key in ipairs({ KEY, false }) do
        local err = refused_as(callback.TOKEN_REQUIRED, { body = body, key = key or nil })
        assert.truthy(err.message:find("allow_unsigned", 1, true))
        refused_as(callback.TOKEN_REQUIRED, { body = body, key = key or nil, allow_unsigned = false })
      end
    end
    assert.equal(500, callback.HTTP_STATUS[callback.TOKEN_REQUIRED])
  end)

  it("warns once per process when messages are taken unsigned, and not when a token is set", function()
    local fresh = fresh_callback()
    local first = stderr_of(function()
      assert.is_table(fresh.parse{ body = MESSAGE, allow_unsigned = true })
    end)
    assert.truthy(first:find("allow_unsigned = true and no token", 1, true), first)
    local later = stderr_of(function()
      for _ = 1, 3 do
        assert.is_table(fresh.parse{ body = MESSAGE, allow_unsigned = true })
        fresh.parse{ body = encrypted_body(MESSAGE), key = KEY, allow_unsigned = true }
      end
    end)
    assert.equal("", later)
    local signed = stderr_of(function()
      local again = fresh_callback()
      again.parse{ body = MESSAGE, token = TOKEN, signature = openssl_signature(MESSAGE), allow_unsigned = true }
      again.parse{ body = MESSAGE, token = TOKEN }
    end)
    assert.equal("", signed)
  end)

  it("refuses an unsigned or wrongly signed request before any decryption or decoding", function()
    traced(function(cb, take)
      local body = encrypted_body(MESSAGE)
      for _, sig in ipairs({ false, "", "sha1=00", openssl_signature(body, "other-token"),
        openssl_signature(body .. " ", TOKEN) }) do
        take()
        local msg, err = cb.parse{ body = body, signature = sig or nil, token = TOKEN, key = KEY }
        assert.is_nil(msg)
        assert.truthy(err.code == callback.SIGNATURE_MISSING or err.code == callback.SIGNATURE_MISMATCH)
        -- with allow_unsigned too: a token set is always checked
        msg = cb.parse{ body = body, signature = sig or nil, token = TOKEN, key = KEY, allow_unsigned = true }
        assert.is_nil(msg)
        assert.same({}, take())
      end
    end)
  end)

  it("decrypts messages of every length around the block size", function()
    for n = 0, 40 do
      local plaintext = '{"MsgType":"T","P":"' .. string.rep("x", n) .. '"}'
      assert.equal(plaintext, callback.decrypt(openssl_encrypt(plaintext, KEY), KEY))
    end
  end)

  it("agrees with openssl's padding check on all 256 flips of a captured message's second-to-last block",
    function()
    local ct = sender.encrypt_raw(MESSAGE)
    local agree, openssl_ok = 0, 0
    for _, variant in ipairs(sender.flips(ct)) do
      local theirs = sender.decrypt_raw(variant)
      local ours, err = callback.decrypt(core.base64_encode(variant), KEY)
      if theirs then
        openssl_ok = openssl_ok + 1
        assert.equal(theirs, ours)
      else
        assert.equal(callback.DECRYPT_FAILED, err.code)
      end
      agree = agree + 1
    end
    assert.equal(256, agree)
    assert.is_true(openssl_ok >= 2, openssl_ok) -- the original byte, and the one giving a 0x01 padding byte
  end)

  it("gives bad padding and bad plaintext the same steps when unsigned (the codes differ only in the log)",
    function()
    local steps, codes = {}, {}
    traced(function(cb, take)
      stderr_of(function() cb.parse{ body = MESSAGE, allow_unsigned = true } end) -- the warning, once
      for _, variant in ipairs(sender.flips(sender.encrypt_raw(MESSAGE))) do
        take()
        local msg, err = cb.parse{ body = sender.body(core.base64_encode(variant)), key = KEY, allow_unsigned = true }
        local code = msg and "accepted" or err.code
        codes[code] = (codes[code] or 0) + 1
        if not msg then steps[table.concat(take(), " ")] = true end
      end
    end)
    assert.equal(1, codes.accepted)
    assert.truthy(codes[callback.DECRYPT_FAILED] and codes[callback.BAD_JSON], "both kinds were tried")
    local distinct = {}
    for s in pairs(steps) do distinct[#distinct + 1] = s end
    assert.equal(1, #distinct, table.concat(distinct, "\n"))
    assert.equal("json:1 base64:1 encrypt:3 decrypt:3 json:1", distinct[1])
  end)

  it("refuses a tampered ciphertext", function()
    local enc = openssl_encrypt(MESSAGE, KEY)
    local raw = core.base64_decode(enc)
    -- flip a bit in the last block: the padding check fails (or, rarely, the JSON does)
    local i = #raw - 3
    local tampered = raw:sub(1, i - 1) .. string.char((raw:byte(i) + 1) % 256) .. raw:sub(i + 1)
    local body = '{"encrypt":"' .. core.base64_encode(tampered) .. '"}'
    for _, opts in ipairs({ { body = body, key = KEY, allow_unsigned = true },
      { body = body, key = KEY, token = TOKEN, signature = openssl_signature(body) } }) do
      local err = select(2, callback.parse(opts))
      assert.is_true(err.code == callback.DECRYPT_FAILED or err.code == callback.BAD_JSON, err.code)
      no_secret_in(err)
    end
  end)

  it("refuses a body changed after signing, even with the original signature header", function()
    local body = encrypted_body(MESSAGE)
    local sig = openssl_signature(body, TOKEN)
    local changed = body:gsub('"}$', 'A"}')
    refused(callback.SIGNATURE_MISMATCH, { body = changed, signature = sig, token = TOKEN, key = KEY })
    refused(callback.SIGNATURE_MISMATCH, { body = changed, signature = sig, token = TOKEN, key = KEY,
      allow_unsigned = true })
  end)

  it("refuses a wrong, malformed or missing signature", function()
    local body = encrypted_body(MESSAGE)
    local other = openssl_signature(body, TOKEN .. "x")
    local err = refused(callback.SIGNATURE_MISMATCH, { body = body, signature = other, token = TOKEN, key = KEY })
    assert.is_nil(err.message:find(openssl_signature(body, TOKEN):sub(8), 1, true), "expected signature leaked")
    refused(callback.SIGNATURE_MISSING, { body = body, signature = "sha1=abcd", token = TOKEN })
    refused(callback.SIGNATURE_MISSING, { body = body, signature = "sha256=" .. string.rep("a", 63), token = TOKEN })
    refused(callback.SIGNATURE_MISSING, { body = body, token = TOKEN })
    refused(callback.SIGNATURE_MISSING, { body = "", token = TOKEN })
    refused(callback.SIGNATURE_MISMATCH, { body = "", token = TOKEN, signature = openssl_signature("x") })
  end)

  it("refuses a key of the wrong length, without naming it", function()
    local body = encrypted_body(MESSAGE)
    for _, key in ipairs({ KEY:sub(1, 31), KEY .. "W", KEY:sub(1, 16), "" }) do
      local msg, err = callback.decrypt(body, key)
      assert.is_nil(msg)
      assert.equal(callback.BAD_KEY, err.code)
      if #key > 0 then assert.is_nil(tostring(err):find(key, 1, true)) end
      -- parse: a configuration error, found before the signature or the body is looked at
      msg, err = callback.parse{ body = "junk", key = key, token = TOKEN }
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
    local err = select(2, callback.parse{ body = encrypted_body(MESSAGE), key = other, allow_unsigned = true })
    assert.is_true(err.code == callback.DECRYPT_FAILED or err.code == callback.BAD_JSON, err.code)
    no_secret_in(err)
  end)

  it("refuses an empty body, non-JSON bodies and non-JSON plaintexts", function()
    refused(callback.EMPTY_BODY, { body = "", key = KEY, token = TOKEN, signature = openssl_signature("", TOKEN) })
    refused(callback.EMPTY_BODY, { body = "", key = KEY })
    refused(callback.BAD_JSON, { body = "encrypt=abc", key = KEY })
    refused(callback.BAD_JSON, { body = "[1,2]" })
    refused(callback.BAD_JSON, { body = encrypted_body("not json at all"), key = KEY })
    refused(callback.BAD_JSON, { body = encrypted_body('["MsgType"]'), key = KEY })
    refused(callback.BAD_MESSAGE, { body = encrypted_body('{"MsgId":"x"}'), key = KEY })
    refused(callback.BAD_MESSAGE, { body = '{"encrypt":42}', key = KEY })
    refused(callback.KEY_REQUIRED, { body = encrypted_body(MESSAGE) })
  end)

  it("never puts a byte of a decrypted message in an error", function()
    local broken = MESSAGE:gsub('"Approvers":%[%]', '"Approvers":[13912345678 张晓梅]')
    local no_type = MESSAGE:gsub('"MsgType"', '"MsgKind"')
    local truncated = MESSAGE:sub(1, 120)
    for _, plaintext in ipairs({ broken, no_type, truncated }) do
      local err = refused(plaintext == no_type and callback.BAD_MESSAGE or callback.BAD_JSON,
        { body = encrypted_body(plaintext), key = KEY })
      assert.is_nil(err.message:find("'", 1, true), err.message) -- no "unexpected 'x'" from the decoder
      assert.is_nil(err.message:find("byte", 1, true), err.message) -- nor where it stopped
    end
    -- a plaintext body (no key): only where the decoder stopped, never what it found there
    local err = refused(callback.BAD_JSON, { body = broken })
    assert.truthy(err.message:find("at byte %d+"), err.message)
    assert.is_nil(err.message:find("'", 1, true), err.message)
  end)

  it("survives random damage without raising", function()
    local body = encrypted_body(MESSAGE)
    local original = openssl_signature(body)
    math.randomseed(7)
    for _ = 1, 300 do
      local i = math.random(1, #body)
      local damaged = body:sub(1, i - 1) .. string.char(math.random(0, 255)) .. body:sub(i + 1)
      local resigned = "sha256=" .. core.hex(core.hmac_sha256(TOKEN, damaged))
      for _, opts in ipairs({ { body = damaged, key = KEY, allow_unsigned = true },
        { body = damaged, key = KEY, token = TOKEN, signature = resigned },
        { body = damaged, key = KEY, token = TOKEN, signature = original } }) do
        local ok, msg, err = pcall(callback.parse, opts)
        assert.is_true(ok, msg)
        assert.is_true(msg ~= nil or err.code:match("^Callback%.") ~= nil)
        if err then
          no_secret_in(err)
          assert.is_not_nil(callback.HTTP_STATUS[err.code], err.code)
        end
      end
    end
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() callback.parse("body") end)
    assert.has_error(function() callback.parse{ body = 1 } end)
    assert.has_error(function() callback.parse{ body = "x", allow_unsigned = "yes" } end)
    assert.has_error(function() callback.parse{ body = "x", token = "" } end)
    assert.has_error(function() callback.decrypt("x", 5) end)
    assert.has_error(function() callback.verify_signature("x", "sha256=00", "") end)
  end)
end)
