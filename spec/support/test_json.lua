-- A small JSON reader for test data files only (the test vectors); the library itself uses the C codec.
-- Strict enough for files we control: raises on anything it does not understand.
local byte, sub, find, char, tonumber, error = string.byte, string.sub, string.find, string.char, tonumber, error
local floor = math.floor

local M = {}

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

local function skip(s, i)
  return (find(s, "[^ \t\r\n]", i)) or #s + 1
end

local parse_value

local function parse_string(s, i) -- i at the opening quote
  local out, n = {}, 0
  i = i + 1
  while true do
    local j = find(s, '["\\]', i)
    if not j then error("unterminated string at " .. i) end
    n = n + 1; out[n] = sub(s, i, j - 1)
    if byte(s, j) == 34 then return table.concat(out), j + 1 end
    local e = sub(s, j + 1, j + 1)
    if e == "u" then
      local cp = tonumber(sub(s, j + 2, j + 5), 16)
      i = j + 6
      if cp >= 0xD800 and cp < 0xDC00 and sub(s, i, i + 1) == "\\u" then
        local lo = tonumber(sub(s, i + 2, i + 5), 16)
        cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
        i = i + 6
      end
      n = n + 1; out[n] = utf8_char(cp)
    elseif escapes[e] then
      n = n + 1; out[n] = escapes[e]
      i = j + 2
    else
      error("bad escape at " .. j)
    end
  end
end

local function parse_list(s, i, close, item)
  i = skip(s, i + 1)
  if sub(s, i, i) == close then return i + 1 end
  while true do
    i = skip(s, item(s, i))
    local c = sub(s, i, i)
    if c == close then return i + 1 end
    if c ~= "," then error("expected ',' or '" .. close .. "' at " .. i) end
    i = skip(s, i + 1)
  end
end

function parse_value(s, i)
  i = skip(s, i)
  local c = sub(s, i, i)
  if c == "{" then
    local obj = {}
    local after = parse_list(s, i, "}", function(_, k)
      if sub(s, k, k) ~= '"' then error("expected a key at " .. k) end
      local key, j = parse_string(s, k)
      j = skip(s, j)
      if sub(s, j, j) ~= ":" then error("expected ':' at " .. j) end
      local v
      v, j = parse_value(s, j + 1)
      obj[key] = v
      return j
    end)
    return obj, after
  elseif c == "[" then
    local arr = {}
    local after = parse_list(s, i, "]", function(_, k)
      local v, j = parse_value(s, k)
      arr[#arr + 1] = v
      return j
    end)
    return arr, after
  elseif c == '"' then
    return parse_string(s, i)
  elseif sub(s, i, i + 3) == "true" then
    return true, i + 4
  elseif sub(s, i, i + 4) == "false" then
    return false, i + 5
  elseif sub(s, i, i + 3) == "null" then
    return nil, i + 4
  end
  local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
  if not num or num == "" then error("unexpected character at " .. i) end
  return tonumber(num), i + #num
end

function M.decode(s)
  local v, i = parse_value(s, 1)
  if skip(s, i) <= #s then error("trailing bytes at " .. i) end
  return v
end

function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return M.decode(s)
end

return M
