-- Command-line parsing for bin/essbasic: options anywhere among the words, `--name value` or `--name=value`,
-- `--` ends the options. A spec maps each long option name to
--   { value = true }          takes a value (the next word, or after '=')
--   { value = "optional" }    a value only after '=' (`--sandbox` or `--sandbox=DIR`)
--   { multi = true }          may be given more than once (the values come back as a list)
--   { short = "q" }           also spelled -q (flags only)
--   {}                        a flag
-- and, for `COMMAND --help`, arg = "N" (the value's name) and help = "what it does".
-- parse(words, spec) → options (name → value, true or list), positional words | nil, message.

local type, pairs, ipairs, sort, concat = type, pairs, ipairs, table.sort, table.concat
local sub, find, match = string.sub, string.find, string.match

local M = {}

-- The known name closest to a misspelt one, for the error message: the validator's (case first, then edit
-- distance), so the command line and the API's own names suggest alike.
M.closest = require("essbasic.validate").suggest

local function names(spec)
  local list = {}
  for name in pairs(spec) do list[#list + 1] = name end
  sort(list)
  return list
end

local function unknown(word, spec)
  local guess = M.closest(word, names(spec))
  return "unknown option --" .. word .. (guess and (" (did you mean --" .. guess .. "?)") or "")
end

function M.parse(words, spec)
  local opts, positional = {}, {}
  local shorts = {}
  for name, s in pairs(spec) do
    if s.short then shorts[s.short] = name end
  end
  local function set(name, value)
    local s = spec[name]
    if s.multi then
      local list = opts[name] or {}
      list[#list + 1] = value
      opts[name] = list
    elseif opts[name] ~= nil and opts[name] ~= value then
      return "--" .. name .. " given twice"
    else
      opts[name] = value
    end
  end
  local i, n = 1, #words
  while i <= n do
    local w = words[i]
    if w == "--" then
      for k = i + 1, n do positional[#positional + 1] = words[k] end
      break
    elseif sub(w, 1, 2) == "--" then
      local name, value = match(w, "^%-%-([^=]+)=(.*)$")
      name = name or sub(w, 3)
      local s = spec[name]
      if not s then return nil, unknown(name, spec) end
      if s.value == true then
        if value == nil then
          i = i + 1
          value = words[i]
          if value == nil then return nil, "--" .. name .. " needs a value" end
        end
      elseif s.value == "optional" then
        if value == nil then value = true end
      elseif value ~= nil then
        return nil, "--" .. name .. " takes no value"
      else
        value = true
      end
      local why = set(name, value)
      if why then return nil, why end
    elseif sub(w, 1, 1) == "-" and #w > 1 and w ~= "-" then
      -- -q, or several flags at once: -qv
      for k = 2, #w do
        local c = sub(w, k, k)
        local name = shorts[c]
        if not name then return nil, "unknown option -" .. c end
        local why = set(name, true)
        if why then return nil, why end
      end
    else
      positional[#positional + 1] = w
    end
    i = i + 1
  end
  return opts, positional
end

-- The first positional word of words under spec (the command name), without judging the other options.
function M.first_word(words, spec)
  local i = 1
  while i <= #words do
    local w = words[i]
    if w == "--" then return words[i + 1], i + 1 end
    if sub(w, 1, 2) == "--" then
      local name = match(w, "^%-%-([^=]+)")
      local s = spec[name]
      if s and s.value == true and not find(w, "=", 1, true) then i = i + 1 end
    elseif not (sub(w, 1, 1) == "-" and #w > 1) then
      return w, i
    end
    i = i + 1
  end
  return nil
end

-- A number option: nil when absent, the number, or nil and a message.
function M.number(opts, name, min)
  local v = opts[name]
  if v == nil then return nil end
  local x = type(v) == "string" and tonumber(v) or nil
  if not x or (min and x < min) then
    return nil, "--" .. name .. " needs a number" .. (min and (" of at least " .. min) or "") .. ", got '"
      .. tostring(v) .. "'"
  end
  return x
end

function M.merge(...)
  local out = {}
  for _, spec in ipairs({ ... }) do
    for k, v in pairs(spec) do out[k] = v end
  end
  return out
end

M.names = function(spec) return concat(names(spec), " ") end

-- The help of a command: its synopsis, then every option of spec (sorted) and of shared, one per line.
function M.help(synopsis, spec, shared)
  local lines = { "usage: " .. synopsis, "" }
  local function list(title, sp)
    lines[#lines + 1] = title
    for _, name in ipairs(names(sp)) do
      local s = sp[name]
      local left = "  --" .. name .. (s.value == true and (" " .. (s.arg or "VALUE")) or "")
        .. (s.value == "optional" and ("[=" .. (s.arg or "VALUE") .. "]") or "")
        .. (s.short and (", -" .. s.short) or "")
      if s.help then left = left .. string.rep(" ", math.max(1, 30 - #left)) .. s.help end
      lines[#lines + 1] = left
    end
  end
  list("options:", spec)
  if shared then
    lines[#lines + 1] = ""
    list("options of every command:", shared)
  end
  return concat(lines, "\n") .. "\n"
end

return M
