-- fuzz_sign: core.tc3_signer(key):sign(...) with arbitrary pieces never crashes; invalid arguments raise (fine),
-- and every signature it does produce equals the TC3 derivation recomputed from the core's hash primitives, on a
-- fresh derivation and on the cached one (the same signer signs twice, with another service in between).
--
-- Input layout: fields separated by byte 0x1f:
--   secret_key, service, method, canonical_query, headers, payload, timestamp, flags
-- headers: name 0x1e value 0x1e name 0x1e value ...; timestamp: decimal text (else derived from the bytes);
-- flags: first byte bit 0 = trace, bit 1 = timestamp as a float.
local fail = ...
local core = require("essbasic.core")
local hmac, sha256_hex, hex = core.hmac_sha256, core.sha256_hex, core.hex
local pcall, type, tostring, tonumber, byte, concat, find, gsub, lower =
  pcall, type, tostring, tonumber, string.byte, table.concat, string.find, string.gsub, string.lower

local function split(s, sep)
  local out, i = {}, 1
  while true do
    local j = find(s, sep, i, true)
    if not j then out[#out + 1] = s:sub(i); return out end
    out[#out + 1] = s:sub(i, j - 1)
    i = j + 1
  end
end

local function trim_lower(v)
  return lower((gsub(gsub(v, "^[ \t\n\v\f\r]+", ""), "[ \t\n\v\f\r]+$", "")))
end

-- The whole TC3 computation, independently of the signer's buffers and cache.
local function expected(key, ts, service, method, query, headers, payload)
  local canon, names = {}, {}
  for i = 1, #headers, 2 do
    canon[#canon + 1] = headers[i] .. ":" .. trim_lower(headers[i + 1]) .. "\n"
    names[#names + 1] = headers[i]
  end
  local signed = concat(names, ";")
  local request = concat({ method, "/", query, concat(canon), signed, sha256_hex(payload) }, "\n")
  local date = os.date("!%Y-%m-%d", ts)
  local scope = date .. "/" .. service .. "/tc3_request"
  local sts = concat({ "TC3-HMAC-SHA256", ("%d"):format(ts), scope, sha256_hex(request) }, "\n")
  local k = hmac(hmac(hmac("TC3" .. key, date), service), "tc3_request")
  return hex(hmac(k, sts)), signed, scope, request, sts
end

return function(data)
  local f = split(data, "\31")
  -- The key carries a prefix no message can hold, so finding it in an error means the key itself leaked.
  local key = f[1] ~= "" and "\1\2key:" .. f[1] or ""
  local service, method, query = f[2] or "essbasic", f[3] or "POST", f[4] or ""
  local headers = {}
  if f[5] and f[5] ~= "" then headers = split(f[5], "\30") end
  local payload = f[6] or ""
  local flags = f[8] and byte(f[8], 1) or 0
  local ts = tonumber(f[7] or "")
  if ts == nil then
    ts = 0
    for i = 1, #(f[7] or "") do ts = (ts * 256 + byte(f[7], i)) % 253402300800 end
  end
  if flags & 2 ~= 0 then ts = ts + 0.0 end

  local ok, signer, why = pcall(core.tc3_signer, key)
  if not ok then return end -- wrong argument type cannot happen with strings, but the message is fine either way
  if signer == nil then
    if key ~= "" then fail("tc3_signer refused a non-empty key: " .. tostring(why)) end
    return
  end
  if tostring(signer) ~= "essbasic.tc3_signer (secret hidden)" then fail("tostring(signer) changed") end
  local trace = flags & 1 ~= 0
  local sok, sig, signed, scope, tr = pcall(signer.sign, signer, ts, service, method, query, headers, payload, trace)
  if not sok then
    if type(sig) ~= "string" then fail("sign raised a non-string") end
    if key ~= "" and find(sig, key, 1, true) then fail("an error message shows the key") end
    signer:close()
    return
  end
  local want, want_signed, want_scope, request, sts = expected(key, ts, service, method, query, headers, payload)
  if sig ~= want then fail("signature differs from the recomputed one") end
  if signed ~= want_signed then fail("signed headers differ: " .. signed .. " / " .. want_signed) end
  if scope ~= want_scope then fail("scope differs: " .. scope .. " / " .. want_scope) end
  if trace then
    if type(tr) ~= "table" or tr.canonical_request ~= request or tr.string_to_sign ~= sts then
      fail("the trace does not match the recomputed canonical request or string to sign")
    end
  end
  -- The derived key is cached per (date, service): the same call again, and after another scope, must agree.
  if signer:sign(ts, service, method, query, headers, payload) ~= want then fail("cached signature differs") end
  local other = service .. "x"
  local sig2 = signer:sign(ts, other, method, query, headers, payload)
  if sig2 ~= (expected(key, ts, other, method, query, headers, payload)) then fail("signature after a scope change") end
  if signer:sign(ts, service, method, query, headers, payload) ~= want then fail("signature after switching back") end
  signer:close()
  signer:close()
  if pcall(signer.sign, signer, ts, service, method, query, headers, payload) then fail("a closed signer signed") end
end
