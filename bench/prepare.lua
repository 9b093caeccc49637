-- Benchmark 1: client:prepare (validate, encode, sign, build headers) against the bare work underneath it.
-- Usage: lua5.4|luajit bench/prepare.lua [rounds] [seconds-per-sample]   (env BENCH_NO_CALLGRIND=1 skips callgrind)
--
-- Bare work = core.json_encode of the same table + core.sha256_hex of the bytes + the 4 HMACs of the TC3 chain
-- (what no client can avoid). cjson.encode is printed for reference when Debian's lua-cjson is installed.

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")

local core = require("essbasic.core")
local json = require("essbasic.json")
local api = require("essbasic.api")
local validate = require("essbasic.validate")
local signer = require("essbasic.signer")

local format = string.format

local ROUNDS = tonumber(arg[1]) or 5
local SAMPLE_SECONDS = tonumber(arg[2]) or 0.08

local has_cjson, cjson = pcall(require, "cjson")
local cjson_encode = has_cjson and cjson.new().encode or nil

local client = B.client({ endpoint = "http://127.0.0.1:8080" })
local hint = api.request_hint(B.ACTION)
local creds = assert(client.provider.get())
local secret = B.SECRET_KEY

-- The TC3 chain on plain primitives: hash the body, derive the key (3 HMACs), sign the string (1 HMAC).
local function bare_sign(body)
  local hashed = core.sha256_hex(body)
  local k_date = core.hmac_sha256("TC3" .. secret, "2023-11-14")
  local k_service = core.hmac_sha256(k_date, "essbasic")
  local k_signing = core.hmac_sha256(k_service, "tc3_request")
  return core.hex(core.hmac_sha256(k_signing, "TC3-HMAC-SHA256\n1700000000\n2023-11-14/essbasic/tc3_request\n"
    .. hashed))
end

local function measure(label, params)
  local popts = { timestamp = B.TIMESTAMP }
  local popts_nv = { timestamp = B.TIMESTAMP, validate = false }
  local popts_corr = { timestamp = B.TIMESTAMP, correlate = true }
  local req = assert(client:prepare(B.ACTION, params, popts))
  local body = req.body
  local parts = { action = B.ACTION, host = "127.0.0.1:8080", body = body, timestamp = B.TIMESTAMP,
    language = "zh-CN", request_client = client.request_client }
  local fns = {
    { "prepare (validate on)", function() return client:prepare(B.ACTION, params, popts) end },
    { "prepare (validate=false)", function() return client:prepare(B.ACTION, params, popts_nv) end },
    -- a key of 16 random bytes in each flow's CustomerData, the flows copied (essbasic.correlate)
    { "prepare (validate on, correlate = true)", function() return client:prepare(B.ACTION, params, popts_corr) end },
    { "  validate.request alone", function() return validate.request(B.ACTION, params) end },
    { "  json.encode (with hint) alone", function() return json.encode(params, hint) end },
    { "  validate.request_body (both, one walk) alone", function() return validate.request_body(B.ACTION, params) end },
    { "  signer.headers (sign + header map) alone", function() return signer.headers(parts, creds) end },
    { "  tc3 signer:sign alone", function()
      return creds.signing_key:sign(B.TIMESTAMP, "essbasic", "POST", "", { "content-type", "application/json",
        "host", "127.0.0.1:8080" }, body)
    end },
    { "bare: core.json_encode + sha256 + 4 hmac", function() return bare_sign(core.json_encode(params)) end },
    { "  core.json_encode alone (no hint)", function() return core.json_encode(params) end },
    { "  sha256_hex + 4 hmac alone", function() return bare_sign(body) end },
  }
  if cjson_encode then
    fns[#fns + 1] = { "  ref: cjson.encode (Debian lua-cjson)", function() return cjson_encode(params) end }
  end
  local variants = {}
  for i, v in ipairs(fns) do
    local fn = v[2]
    local iters = B.iterations_for(fn, SAMPLE_SECONDS)
    variants[i] = { v[1], function() return B.per_call(fn, iters) end }
  end
  local med = B.alternate(ROUNDS, variants)
  print(format("-- %s: body %d bytes; medians of %d alternated rounds", label, #body, ROUNDS))
  for _, v in ipairs(fns) do B.report(v[1], med[v[1]] * 1e6, "us/call") end
  local bare = med["bare: core.json_encode + sha256 + 4 hmac"]
  B.report("ratio prepare (validate on) / bare", med["prepare (validate on)"] / bare, "x")
  B.report("ratio prepare (validate=false) / bare", med["prepare (validate=false)"] / bare, "x")
  B.report("ratio prepare correlate = true / without", med["prepare (validate on, correlate = true)"]
    / med["prepare (validate on)"], "x")
  if cjson_encode then
    local cj_bare = med["  ref: cjson.encode (Debian lua-cjson)"] + med["  sha256_hex + 4 hmac alone"]
    B.report("ratio prepare (validate on) / (cjson + hashing)", med["prepare (validate on)"] / cj_bare, "x")
  end
end

B.header("benchmark 1: prepare")
measure("seed request (3 contracts, spec/data/ChannelCreateFlowGroupByFiles.request.json)", B.seed_request())
measure("50 contracts x 5 signers", B.group_request(50, 5))

if B.callgrind_enabled() then
  print("-- instructions per prepare under callgrind (one run, a window per row; N prepares divided by N)")
  -- prepare = body (validate.request_body: check and encode in one walk) + headers (signing); validate and encode
  -- alone are printed for comparison, they are not on prepare's path
  local ROWS = {
    { "seed", "prepare", 200, "instructions per prepare (seed)" },
    { "seed", "correlated", 200, "  prepare with correlate = true" },
    { "seed", "body", 200, "  of which body (check + encode, one walk)" },
    { "seed", "headers", 200, "  of which headers (signing)" },
    { "seed", "validate", 200, "  for comparison: validate.request alone" },
    { "seed", "encode", 200, "  for comparison: json.encode alone" },
    { "group50", "prepare", 20, "instructions per prepare (group50)" },
  }
  local args = {}
  for i, r in ipairs(ROWS) do args[i] = r[1] .. ":" .. r[2] .. ":" .. r[3] end
  local windows, err = B.callgrind_windows(format("%s %s/prepare_count.lua %s", arg[-1] or "lua5.4", here,
    B.join(args)))
  if windows and #windows ~= #ROWS then windows, err = nil, "expected " .. #ROWS .. " windows, got " .. #windows end
  if not windows then
    print("callgrind: " .. err)
  else
    local seed = windows[1] / ROWS[1][3]
    for i, r in ipairs(ROWS) do
      local ir = windows[i] / r[3]
      B.report(r[4], ir, "Ir", r[2] ~= "prepare" and format("%.0f%%", 100 * ir / seed) or nil)
    end
  end
end
