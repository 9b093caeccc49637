-- How long essbasic.callback.handle takes to refuse each kind of bad message, inside real nginx (one worker,
-- LuaJIT), beside the time of an accepted message measured in the same run. Two receivers: key + token (signed,
-- the default) and key + allow_unsigned (the configuration without a token, where decryption runs on
-- unauthenticated bytes). The bad-padding and bad-JSON bodies are two of the 256 flips of the last byte of the
-- captured message's second-to-last ciphertext block (the padding-oracle probe): same length, same everything but
-- one byte. Every kind is checked first to get the expected answer (status, the one refusal body, the reason
-- handle() returned).
--
-- Two clocks, medians over rounds that send every kind once each, in a fresh random order (drift hits all
-- alike, and no kind always follows the same one):
--   round trip   what the sender sees: POST to answer over one kept-alive loopback connection (libcurl)
--   in handle()  core.monotonic around callback.handle inside the worker (read body, parse, log, answer)
-- Not a test: nothing here fails on a figure.
--   lua5.4 bench/callback_refusals.lua [rounds]     (from the repository root, after `make`; default 2000)

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")
local core = require("essbasic.core")
local json = require("essbasic.json")
local nginx = require("tools.nginx")
local sender = require("tools.callback_sender")
local callback = require("essbasic.callback")

local quick = os.getenv("BENCH_QUICK") == "1"
local ROUNDS = tonumber(arg and arg[1]) or (quick and 300 or 2000)
local WARMUP = quick and 50 or 200
local KEY, TOKEN, MESSAGE = sender.KEY, sender.TOKEN, sender.MESSAGE

local CONF = [=[
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  init_by_lua_block {
    local callback = require("essbasic.callback")
    local now = require("essbasic.core").monotonic
    local samples, codes = {}, {}
    local function keep() return true end
    bench = {}
    function bench.run(opts)
      local kind = ngx.var.arg_kind
      local t0 = now()
      local status, res = callback.handle(opts, keep)
      local dt = now() - t0
      local s = samples[kind]
      if not s then s = {} samples[kind] = s end
      s[#s + 1] = dt
      codes[kind] = (status == 200) and "accepted" or tostring(res and res.code)
    end
    function bench.reset() samples = {} end
    function bench.results()
      local out = {}
      for kind, s in pairs(samples) do
        table.sort(s)
        local n = #s
        local med = n % 2 == 1 and s[(n + 1) / 2] or (s[n / 2] + s[n / 2 + 1]) / 2
        out[kind] = { median = med, n = n, code = codes[kind] }
      end
      ngx.print(require("essbasic.json").encode(out))
    end
  }
  server {
    listen 127.0.0.1:%PORT%;
    client_body_buffer_size 1m;
    location = /signed { content_by_lua_block { bench.run({ key = "@KEY@", token = "@TOKEN@" }) } }
    location = /unsigned { content_by_lua_block { bench.run({ key = "@KEY@", allow_unsigned = true }) } }
    location = /reset { content_by_lua_block { bench.reset() ngx.print("ok") } }
    location = /results { content_by_lua_block { bench.results() } }
  }
]=]

-- The two flips of the captured message that fail at the padding and at the JSON (found with callback.parse in
-- this process; the server is not asked).
local function probes()
  local bad_padding, bad_json
  for _, ct in ipairs((sender.flips(sender.encrypt_raw(MESSAGE)))) do
    local body = sender.body(core.base64_encode(ct))
    local _, err = callback.parse{ body = body, key = KEY, token = TOKEN,
      signature = "sha256=" .. core.hex(core.hmac_sha256(TOKEN, body)) }
    if err and err.code == callback.DECRYPT_FAILED and not bad_padding then bad_padding = ct end
    if err and err.code == callback.BAD_JSON and not bad_json then bad_json = ct end
  end
  assert(bad_padding and bad_json, "no flip with a bad padding or a bad plaintext")
  return sender.body(core.base64_encode(bad_padding)), sender.body(core.base64_encode(bad_json))
end

local function kinds()
  local encrypted = sender.encrypted_body(MESSAGE)
  local bad_padding, bad_json = probes()
  local no_type = sender.encrypted_body((MESSAGE:gsub('"MsgType"', '"MsgKind"')))
  local bad_base64 = sender.body(sender.encrypt(MESSAGE):sub(1, -2))
  local sig = function(body) return sender.signature(body, TOKEN) end
  local R = callback
  return {
    { "key + token", "accepted (signed, encrypted)", "/signed", encrypted, sig(encrypted), 200, "accepted" },
    { "key + token", "bad signature (wrong token)", "/signed", encrypted, sender.signature(encrypted, "guess"),
      401, R.SIGNATURE_MISMATCH },
    { "key + token", "no signature", "/signed", encrypted, nil, 401, R.SIGNATURE_MISSING },
    { "key + token", "bad padding, signed", "/signed", bad_padding, sig(bad_padding), 400, R.DECRYPT_FAILED },
    { "key + token", "bad JSON after decryption, signed", "/signed", bad_json, sig(bad_json), 400, R.BAD_JSON },
    { "key + token", "plaintext refused, signed", "/signed", MESSAGE, sig(MESSAGE), 400, R.NOT_ENCRYPTED },
    { "key + token", "bad base64, signed", "/signed", bad_base64, sig(bad_base64), 400, R.BAD_BASE64 },
    { "key, allow_unsigned", "accepted (encrypted)", "/unsigned", encrypted, nil, 200, "accepted" },
    { "key, allow_unsigned", "bad padding", "/unsigned", bad_padding, nil, 400, R.DECRYPT_FAILED },
    { "key, allow_unsigned", "bad JSON after decryption", "/unsigned", bad_json, nil, 400, R.BAD_JSON },
    { "key, allow_unsigned", "no MsgType after decryption", "/unsigned", no_type, nil, 400, R.BAD_MESSAGE },
    { "key, allow_unsigned", "plaintext refused", "/unsigned", MESSAGE, nil, 400, R.NOT_ENCRYPTED },
    { "key, allow_unsigned", "bad base64", "/unsigned", bad_base64, nil, 400, R.BAD_BASE64 },
  }
end

local srv = nginx.start{ http = CONF:gsub("@KEY@", KEY):gsub("@TOKEN@", TOKEN) }
local http = core.http_session{ timeout = 10 }
local ok, err = pcall(function()
  local base = "http://127.0.0.1:" .. srv.port
  local list = kinds()
  local function send(k, i)
    local status, headers, body = http:request("POST", base .. k[3] .. "?kind=" .. i,
      { ["Content-Type"] = "application/json", ["Content-Signature"] = k[5] }, k[4])
    assert(status, headers)
    return status, body
  end
  -- Each kind gets the answer it should, before anything is measured.
  for i, k in ipairs(list) do
    local status, body = send(k, i)
    assert(status == k[6], k[2] .. ": HTTP " .. tostring(status) .. " " .. tostring(body))
    if status ~= 200 then
      assert(body == '{"ok":false,"error":"Callback.Refused"}', k[2] .. ": " .. body)
    end
  end
  for _ = 1, WARMUP do
    for i, k in ipairs(list) do send(k, i) end
  end
  http:request("GET", base .. "/reset", {}, "")
  local samples = {}
  for i = 1, #list do samples[i] = {} end
  -- Each round sends every kind once, in a fresh random order: no kind always follows the same one (the
  -- garbage an accepted message leaves is collected during whichever request comes next).
  math.randomseed(18)
  local order = {}
  for i = 1, #list do order[i] = i end
  for _ = 1, ROUNDS do
    for j = #order, 2, -1 do
      local r = math.random(j)
      order[j], order[r] = order[r], order[j]
    end
    for _, i in ipairs(order) do
      local t0 = B.now()
      send(list[i], i)
      local s = samples[i]
      s[#s + 1] = B.now() - t0
    end
  end
  local _, _, text = http:request("GET", base .. "/results", {}, "")
  local inside = assert(json.decode(text))

  print(("== callback refusals (bench/callback_refusals.lua): nginx (%s, 1 worker, LuaJIT), driver %s over one "
    .. "kept-alive connection; medians of %d rounds (every kind once per round, in random order) after %d "
    .. "warm-up rounds; times in µs"):format(
    (io.popen("/usr/sbin/nginx -v 2>&1"):read("*l") or ""):gsub("^.*: ", ""), B.interpreter(), ROUNDS, WARMUP))
  print("")
  print("| receiver | message | answer | reason (log / return value) | round trip | / accepted | in handle() "
    .. "| / accepted |")
  print("|---|---|---|---|---|---|---|---|")
  local accepted_rt, accepted_in = {}, {}
  for i, k in ipairs(list) do
    local row = inside[tostring(i)]
    assert(row and row.n == ROUNDS, k[2] .. ": the server counted " .. tostring(row and row.n))
    assert(row.code == k[7], k[2] .. ": handle() returned " .. tostring(row.code) .. ", not " .. k[7])
    local rt, ins = B.median(samples[i]), row.median
    if k[7] == "accepted" then accepted_rt[k[1]], accepted_in[k[1]] = rt, ins end
    print(("| %s | %s | %d | %s | %.1f | %.2fx | %.1f | %.2fx |"):format(k[1], k[2], k[6],
      k[7] == "accepted" and "-" or k[7], rt * 1e6, rt / accepted_rt[k[1]], ins * 1e6, ins / accepted_in[k[1]]))
  end
  print("")
  print("Every refusal answers {\"ok\":false,\"error\":\"Callback.Refused\"}; the reason is only in nginx's log "
    .. "(one warn line per refusal, written in these figures: the helper's error_log level is info).")
end)
http:close()
srv:stop()
if not ok then error(err, 0) end
