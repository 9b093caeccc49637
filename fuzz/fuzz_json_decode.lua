-- fuzz_json_decode: core.json_decode on arbitrary bytes never crashes, and whatever it accepts survives
-- encode → decode unchanged (a differential check of the two halves of the codec against each other).
local fail = ...
local core = require("essbasic.core")
local decode, encode, array_mt = core.json_decode, core.json_encode, core.json_array_mt
local type, pairs, getmetatable, tostring = type, pairs, getmetatable, tostring

-- Key order is lua_next order, which may differ between two equal tables, so the values are compared, not the
-- texts; numbers compare by value (an integral float is encoded as an integer on purpose).
local function same(a, b, depth)
  if type(a) ~= type(b) then return false, "type " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if a ~= b then return false, tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  if type(a) ~= "table" then
    if a ~= b then return false, "value " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  if (getmetatable(a) == array_mt) ~= (getmetatable(b) == array_mt) then return false, "array mark" end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], depth + 1)
    if not ok then return false, tostring(k) .. ": " .. why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, "extra key " .. tostring(k) end
  end
  return true
end

local function depth_of(v)
  if type(v) ~= "table" then return 0 end
  local d = 0
  for _, x in pairs(v) do
    local dx = depth_of(x)
    if dx > d then d = dx end
  end
  return d + 1
end

return function(data)
  local v, err = decode(data)
  if v == nil then
    if type(err) ~= "string" or not err:find("at byte %d+") then
      fail("decode failed without an offset: " .. tostring(err))
    end
    return
  end
  if err ~= nil then fail("decode returned a second value on success") end
  local text, eerr = encode(v)
  if not text then
    -- The decoder nests to 200, the encoder to 100: only that gap may refuse a decoded value.
    if depth_of(v) > 100 and eerr:find("nested too deep", 1, true) then return end
    fail("a decoded value does not encode: " .. tostring(eerr))
  end
  local v2, derr = decode(text)
  if v2 == nil then
    fail("our own encoding does not decode: " .. tostring(derr) .. " in " .. text:sub(1, 200))
  end
  local ok, why = same(v, v2, 0)
  if not ok then fail("decode(encode(v)) differs from v: " .. why) end
  local text2 = encode(v2)
  if text2 == nil or #text2 ~= #text then
    fail("the second encoding differs in length: " .. text .. " / " .. tostring(text2))
  end
  if text2 ~= text and depth_of(v) <= 1 and type(v) == "table" and getmetatable(v) == array_mt then
    fail("a flat array encodes differently twice: " .. text .. " / " .. text2) -- arrays have no key order
  end
end
