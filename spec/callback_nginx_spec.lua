-- essbasic.callback.handle in real nginx, tried as an attacker would: the 256 flips of one byte of a captured
-- message's second-to-last ciphertext block give answers that cannot be told apart (same status, same body bytes,
-- same headers but Date) in every configuration; a forged plaintext is refused unless the receiver opted into
-- allow_unsigned; the reasons of refusals go to nginx's log only, which never holds the key, the token or a byte
-- of a message. The sender is the openssl command line (tools/callback_sender.lua). Also: the OpenResty
-- example's receiver (examples/openresty), signed by default.
local callback = require("essbasic.callback")
local core = require("essbasic.core")
local json = require("essbasic.json")
local nginx = require("tools.nginx")
local sender = require("tools.callback_sender")
local read_file = require("helpers.files").read

local KEY, TOKEN, MESSAGE = sender.KEY, sender.TOKEN, sender.MESSAGE
local REFUSED_BODY = '{"ok":false,"error":"Callback.Refused"}'
local FORGED = '{"MsgId":"forged-1","MsgType":"FlowStatusChange","MsgVersion":"ThirdPartyApp",'
  .. '"MsgData":{"FlowId":"yDwFoUUckpsmiu7vUuO4bPRevHaxW8nm","FlowStatus":"ALL"}}'

-- One location per configuration and per kind of user code. keep() stores each message and counts deliveries
-- per location.
local NGINX_CONF = [=[
  lua_shared_dict seen 1m;
  init_by_lua_block {
    keep = function(msg)
      local d = ngx.shared.seen
      d:incr("delivered:" .. ngx.var.uri, 1, 0)
      d:set(msg.MsgId, require("essbasic.json").encode(msg))
      return true
    end
  }
  server {
    listen 127.0.0.1:%PORT%;
    # nginx says "Connection: close" on a connection's last allowed request; keep that out of the comparison
    keepalive_requests 100000;
    location /handled {
      content_by_lua_block { require("essbasic.callback").handle({ key = "@KEY@", token = "@TOKEN@" }, keep) }
    }
    location /declined {
      content_by_lua_block {
        require("essbasic.callback").handle({ key = "@KEY@", token = "@TOKEN@" }, function() return false end)
      }
    }
    location /raises {
      content_by_lua_block {
        require("essbasic.callback").handle({ key = "@KEY@", token = "@TOKEN@" }, function() error("database down") end)
      }
    }
    location /token-only {
      content_by_lua_block { require("essbasic.callback").handle({ token = "@TOKEN@" }, keep) }
    }
    location /no-token {
      content_by_lua_block { require("essbasic.callback").handle({ key = "@KEY@" }, keep) }
    }
    location /unsigned {
      content_by_lua_block {
        require("essbasic.callback").handle({ key = "@KEY@", allow_unsigned = true }, keep)
      }
    }
    location /unsigned-plain {
      content_by_lua_block { require("essbasic.callback").handle({ allow_unsigned = true }, keep) }
    }
    location /seen {
      content_by_lua_block { ngx.print(ngx.shared.seen:get(ngx.var.arg_id) or "") }
    }
    location /delivered {
      content_by_lua_block { ngx.print(ngx.shared.seen:get("delivered:" .. ngx.var.arg_path) or 0) }
    }
  }
]=]

local function count(text, needle)
  local n, from = 0, 1
  while true do
    local i = text:find(needle, from, true)
    if not i then return n end
    n, from = n + 1, i + #needle
  end
end

-- The log holds no secret and no piece of a message.
local function clean_log(srv)
  local log = srv:error_log()
  assert.is_nil(log:find(KEY, 1, true), "the key is in the log")
  assert.is_nil(log:find(core.hex(KEY), 1, true), "the key is in the log (hex)")
  assert.is_nil(log:find(TOKEN, 1, true), "the token is in the log")
  for _, piece in ipairs(sender.PERSONAL) do
    assert.is_nil(log:find(piece, 1, true), "message content in the log: " .. piece)
  end
  return log
end

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

  local function url(path)
    return "http://127.0.0.1:" .. srv.port .. path
  end

  local function post(path, body, signature)
    local status, headers, resp = http:request("POST", url(path),
      { ["Content-Type"] = "application/json", ["Content-Signature"] = signature }, body)
    assert(status, headers)
    return status, resp, headers
  end

  local function delivered(path)
    local _, _, n = http:request("GET", url("/delivered?path=" .. path), {}, "")
    return tonumber(n)
  end

  -- What tells one answer from another: the status, the body bytes and every header but Date.
  local function fingerprint(status, body, headers)
    local names = {}
    for name in pairs(headers) do
      if name ~= "date" then names[#names + 1] = name end
    end
    table.sort(names)
    local parts = { tostring(status), body }
    for _, name in ipairs(names) do
      local v = headers[name]
      parts[#parts + 1] = name .. ": " .. (type(v) == "table" and table.concat(v, ", ") or tostring(v))
    end
    return table.concat(parts, "\n")
  end

  -- POSTs every variant; returns the distinct answers as { fingerprint = , status = , body = , n = , variants = }
  -- (most frequent first) and a one-line summary.
  local function answers(path, variants, sign)
    local by, list = {}, {}
    for v, ct in ipairs(variants) do
      local body = sender.body(core.base64_encode(ct))
      local status, resp, headers = post(path, body, sign(body))
      local fp = fingerprint(status, resp, headers)
      local a = by[fp]
      if not a then
        a = { fingerprint = fp, status = status, body = resp, n = 0, variants = {} }
        by[fp] = a
        list[#list + 1] = a
      end
      a.n = a.n + 1
      a.variants[#a.variants + 1] = v - 1
    end
    table.sort(list, function(x, y) return x.n > y.n end)
    local words = {}
    for _, a in ipairs(list) do
      words[#words + 1] = a.n .. " x HTTP " .. a.status .. " " .. a.body
    end
    return list, #variants .. " variants: " .. table.concat(words, ", ")
  end

  it("answers 200 once the handler kept the message, which arrives decrypted", function()
    local body = sender.encrypted_body(MESSAGE)
    local status, resp = post("/handled", body, sender.signature(body, TOKEN))
    assert.equal(200, status)
    assert.equal('{"ok":true}', resp)
    local _, _, kept = http:request("GET", url("/seen?id=m-1001"), {}, "")
    assert.same(json.decode(MESSAGE), json.decode(kept))
  end)

  it("answers 401 for a wrong or missing signature and 400 for what cannot be decrypted, one body for all, "
    .. "the reasons in the log", function()
    local body = sender.encrypted_body(MESSAGE)
    local status, resp = post("/handled", body, sender.signature(body, "not-the-token"))
    assert.equal(401, status)
    assert.equal(REFUSED_BODY, resp)
    assert.equal(callback.REFUSED, json.decode(resp).error)
    status, resp = post("/handled", body, nil)
    assert.equal(401, status)
    assert.equal(REFUSED_BODY, resp)
    local junk = '{"encrypt":"' .. core.base64_encode(string.rep("j", 32)) .. '"}'
    status, resp = post("/handled", junk, sender.signature(junk, TOKEN))
    assert.equal(400, status)
    assert.equal(REFUSED_BODY, resp)
    status, resp = post("/handled", "", sender.signature("", TOKEN))
    assert.equal(400, status)
    assert.equal(REFUSED_BODY, resp)
    local log = clean_log(srv)
    for _, code in ipairs({ callback.SIGNATURE_MISMATCH, callback.SIGNATURE_MISSING, callback.DECRYPT_FAILED,
      callback.EMPTY_BODY }) do
      assert.truthy(log:find("essbasic callback refused: essbasic: " .. code, 1, true), code .. " not logged")
    end
  end)

  it("answers 500 when the handler declines or raises, so essbasic sends the message again", function()
    local body = sender.encrypted_body(MESSAGE)
    local sig = sender.signature(body, TOKEN)
    local status, resp = post("/declined", body, sig)
    assert.equal(500, status)
    assert.equal("Callback.NotHandled", json.decode(resp).error)
    status, resp = post("/raises", body, sig)
    assert.equal(500, status)
    assert.equal("Callback.HandlerFailed", json.decode(resp).error)
    assert.truthy(srv:error_log():find("database down", 1, true))
  end)

  it("answers a request that is not a POST with 405 and the refusal body", function()
    local status, headers, resp = http:request("GET", url("/handled"), {}, "")
    assert(status, headers)
    assert.equal(405, status)
    assert.equal(REFUSED_BODY, resp)
  end)

  describe("the 256 flips of the last byte of a captured message's second-to-last ciphertext block", function()
    local variants, original

    setup(function()
      local ct = sender.encrypt_raw(MESSAGE)
      variants, original = sender.flips(ct)
    end)

    -- The unmodified message (variant `original`) is a replay of a genuine one and accepted; every other
    -- variant gets the one refusal.
    local function one_refusal_and_the_original(list, status)
      assert.equal(2, #list, "the answers differ:\n" .. (list[3] and list[3].fingerprint or ""))
      assert.equal(255, list[1].n)
      assert.equal(status, list[1].status)
      assert.equal(REFUSED_BODY, list[1].body)
      assert.equal(1, list[2].n)
      assert.equal(200, list[2].status)
      assert.same({ original }, list[2].variants)
    end

    it("key, allow_unsigned: 255 identical 400s (bad padding and bad JSON alike) and the original", function()
      local before = srv:error_log()
      local list, summary = answers("/unsigned", variants, function() return nil end)
      print("\n  key + allow_unsigned, no signature: " .. summary)
      one_refusal_and_the_original(list, 400)
      -- the reasons differ, in the log only
      local log = clean_log(srv):sub(#before + 1)
      local padding, plaintext = count(log, callback.DECRYPT_FAILED), count(log, callback.BAD_JSON)
      print(("  (in the log: %d x %s, %d x %s)"):format(padding, callback.DECRYPT_FAILED, plaintext,
        callback.BAD_JSON))
      assert.is_true(padding >= 200 and plaintext >= 1 and padding + plaintext == 255, padding .. " " .. plaintext)
    end)

    it("key + token, the captured signature: 255 identical 401s, before any decryption", function()
      local before = srv:error_log()
      local body = sender.body(core.base64_encode(variants[original + 1]))
      local captured = sender.signature(body, TOKEN)
      local list, summary = answers("/handled", variants, function() return captured end)
      print("\n  key + token, the captured signature: " .. summary)
      one_refusal_and_the_original(list, 401)
      local log = clean_log(srv):sub(#before + 1)
      assert.equal(255, count(log, callback.SIGNATURE_MISMATCH))
      assert.equal(0, count(log, callback.DECRYPT_FAILED) + count(log, callback.BAD_JSON))
    end)

    it("key + token, each variant signed with the token: 255 identical 400s", function()
      local list, summary = answers("/handled", variants, function(body) return sender.signature(body, TOKEN) end)
      print("\n  key + token, each variant signed: " .. summary)
      one_refusal_and_the_original(list, 400)
    end)

    it("key without a token nor allow_unsigned: 256 identical 500s, nothing decrypted", function()
      local before = srv:error_log()
      local list, summary = answers("/no-token", variants, function() return nil end)
      print("\n  key, no token, no allow_unsigned: " .. summary)
      assert.equal(1, #list, list[2] and (list[1].fingerprint .. "\n--\n" .. list[2].fingerprint))
      assert.equal(256, list[1].n)
      assert.equal(500, list[1].status)
      assert.equal(callback.TOKEN_REQUIRED, json.decode(list[1].body).error)
      local log = clean_log(srv):sub(#before + 1)
      assert.equal(256, count(log, callback.TOKEN_REQUIRED))
      assert.equal(0, count(log, callback.DECRYPT_FAILED) + count(log, callback.BAD_JSON))
      assert.equal(0, delivered("/no-token"))
    end)
  end)

  describe("a forged plaintext message", function()
    it("is refused without a token, and when a key is configured", function()
      local paths = { "/handled", "/token-only", "/unsigned", "/no-token" }
      local before = {}
      for _, path in ipairs(paths) do before[path] = delivered(path) end
      local cases = {
        { "/handled", nil, 401 }, { "/handled", "sha256=" .. string.rep("0", 64), 401 },
        { "/token-only", nil, 401 }, { "/token-only", sender.signature(FORGED, "guessed-token"), 401 },
        { "/unsigned", nil, 400 },
      }
      for _, case in ipairs(cases) do
        local status, resp = post(case[1], FORGED, case[2])
        assert.equal(case[3], status, case[1])
        assert.equal(REFUSED_BODY, resp, case[1])
      end
      local status, resp = post("/no-token", FORGED)
      assert.equal(500, status)
      assert.equal(callback.TOKEN_REQUIRED, json.decode(resp).error)
      for _, path in ipairs(paths) do assert.equal(before[path], delivered(path), path) end
      local _, _, kept = http:request("GET", url("/seen?id=forged-1"), {}, "")
      assert.equal("", kept)
      assert.truthy(srv:error_log():find(callback.NOT_ENCRYPTED, 1, true))
    end)

    it("is accepted only by a receiver that opted into allow_unsigned and has no key", function()
      local before = delivered("/unsigned-plain")
      local status = post("/unsigned-plain", FORGED)
      assert.equal(200, status)
      assert.equal(before + 1, delivered("/unsigned-plain"))
      -- a genuine signed plaintext message (a token, no key) is accepted too
      before = delivered("/token-only")
      status = post("/token-only", MESSAGE, sender.signature(MESSAGE, TOKEN))
      assert.equal(200, status)
      assert.equal(before + 1, delivered("/token-only"))
    end)
  end)

  it("warned once (one worker) that messages are taken unsigned, and logged nothing secret", function()
    local log = clean_log(srv)
    assert.equal(1, count(log, "allow_unsigned = true and no token"))
  end)
end)

describe("the OpenResty example's callback receiver", function()
  local EXAMPLE_DIR = nginx.capture("pwd") .. "/examples/openresty"
  local http = core.http_session{ timeout = 5 }

  local function start(env)
    local conf, n = read_file(EXAMPLE_DIR .. "/essbasic.conf")
      :gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:%%PORT%%;")
    assert(n == 1, "examples/openresty/essbasic.conf no longer listens on 127.0.0.1:8080")
    local main = {}
    for name, value in pairs(env) do main[#main + 1] = "env " .. name .. "=" .. value .. ";" end
    return nginx.start{ http = conf, main = table.concat(main, "\n"), lua_path = EXAMPLE_DIR .. "/?.lua" }
  end

  local function post(srv, body, signature)
    local status, headers, resp = http:request("POST", "http://127.0.0.1:" .. srv.port .. "/essbasic/callback",
      { ["Content-Type"] = "application/json", ["Content-Signature"] = signature }, body)
    assert(status, headers)
    return status, resp
  end

  it("keeps a signed, encrypted message and refuses a forged one, with key and token set", function()
    local srv = start{ ESSBASIC_CALLBACK_KEY = KEY, ESSBASIC_CALLBACK_TOKEN = TOKEN }
    local ok, why = pcall(function()
      local body = sender.encrypted_body(MESSAGE)
      assert.equal(200, (post(srv, body, sender.signature(body, TOKEN))))
      local _, _, kept = http:request("GET", "http://127.0.0.1:" .. srv.port .. "/essbasic/callbacks?id=m-1001", {}, "")
      assert.same(json.decode(MESSAGE), json.decode(kept))
      local status, resp = post(srv, FORGED)
      assert.equal(401, status)
      assert.equal(REFUSED_BODY, resp)
      status, resp = post(srv, FORGED, sender.signature(FORGED, TOKEN)) -- signed, but not encrypted
      assert.equal(400, status)
      assert.equal(REFUSED_BODY, resp)
      clean_log(srv)
    end)
    srv:stop()
    assert(ok, why)
  end)

  it("takes no message at all when the token is not set (signed by default)", function()
    local srv = start{ ESSBASIC_CALLBACK_KEY = KEY }
    local ok, why = pcall(function()
      local body = sender.encrypted_body(MESSAGE)
      local status, resp = post(srv, body, sender.signature(body, TOKEN))
      assert.equal(500, status)
      assert.equal(callback.TOKEN_REQUIRED, json.decode(resp).error)
      assert.truthy(srv:error_log():find("no callback token is configured", 1, true))
    end)
    srv:stop()
    http:close()
    assert(ok, why)
  end)
end)

-- Issue 27, finding 7: handle's own body limit (max_body), answered with the one refusal body before the body is
-- read, even where nginx's client_max_body_size is off (0); the worker's resident size does not grow with a
-- 100 MB body, sent with a Content-Length or chunked.
describe("callback.handle's body limit in nginx", function()
  local srv
  local LIMITS = [=[
    server {
      listen 127.0.0.1:%PORT%;
      client_max_body_size 0;
      location /default {
        content_by_lua_block { require("essbasic.callback").handle({ token = "@TOKEN@" }, function() return true end) }
      }
      location /small {
        content_by_lua_block {
          require("essbasic.callback").handle({ token = "@TOKEN@", max_body = 1000 }, function() return true end)
        }
      }
    }
  ]=]

  setup(function()
    srv = nginx.start{ http = LIMITS:gsub("@TOKEN@", TOKEN) }
  end)
  teardown(function()
    if srv then srv:stop() end
    os.remove(srv and srv.prefix .. "/big" or "")
  end)

  local function worker_rss_kb()
    local master = assert(read_file(srv.prefix .. "/nginx.pid")):match("%d+")
    local p = assert(io.popen("env -u LD_PRELOAD ps -o pid= --ppid " .. master))
    local worker = assert(p:read("*l"):match("%d+"))
    p:close()
    return tonumber(assert(read_file("/proc/" .. worker .. "/status")):match("VmRSS:%s*(%d+)"))
  end

  -- curl sends the body from a file (-T: streamed, with its Content-Length) or from a pipe, chunked.
  local function curl(path, source)
    local p = assert(io.popen("env -u LD_PRELOAD curl -s -X POST -H 'Content-Type: application/json' " .. source
      .. " -w '\\n%{http_code}' http://127.0.0.1:" .. srv.port .. path .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    local body, status = out:match("^(.*)\n(%d+)$")
    return tonumber(status), body
  end

  it("refuses a body over max_body with the one refusal body, and keeps the full-size message working", function()
    local signed = sender.body(core.base64_encode("x"))
    local status, body = curl("/small", "-H 'Content-Signature: sha256=" .. core.hex(core.hmac_sha256(TOKEN,
      signed .. string.rep(" ", 1001 - #signed))) .. "' --data-binary '" .. signed .. string.rep(" ", 1001 - #signed)
      .. "'")
    assert.equal(413, status)
    assert.equal(REFUSED_BODY, body)
    status, body = curl("/small", "--data-binary '" .. signed .. "'")
    assert.equal(401, status) -- within the limit: read and checked (no signature)
    assert.equal(REFUSED_BODY, body)
    assert.truthy(srv:error_log():find("larger than max_body (1000 bytes)", 1, true))
  end)

  it("answers a 100 MB body at once, and the worker does not grow", function()
    assert.equal(401, (curl("/default", "--data-binary '{}'"))) -- the modules are loaded: the baseline
    local before = worker_rss_kb()
    local big = srv.prefix .. "/big"
    assert(os.execute("truncate -s 100M " .. big))
    local status, body = curl("/default", "-T " .. big)
    assert.equal(413, status)
    assert.equal(REFUSED_BODY, body)
    status, body = curl("/default", "-H 'Transfer-Encoding: chunked' -T - < " .. big)
    assert.equal(413, status)
    assert.equal(REFUSED_BODY, body)
    local grown = worker_rss_kb() - before
    assert.is_true(grown < 20 * 1024, "the worker grew by " .. grown .. " KB")
  end)
end)
