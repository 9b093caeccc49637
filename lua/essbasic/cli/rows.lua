-- The rows of a batch: one request per row, from JSON Lines or CSV.
--
--   JSON Lines  one JSON object per line (blank lines are skipped): the request itself, or with --template the
--               values the template's placeholders take (top-level members).
--   CSV         RFC 4180 (quoted fields, "" inside quotes, CRLF or LF, line breaks inside quotes); the first
--               record names the columns; needs --template.
--
-- A template is a JSON request whose strings may hold placeholders:
--   "{{col}}"           the whole string: the column's value (CSV: a string; JSON Lines: the member as it is);
--                       an empty or missing value leaves the member (or list element) out
--   "{{col:int}}"       the value as an integer; also :number, :bool (true/false/1/0/yes/no), :json (parsed)
--   "text {{col}} text" inside a longer string: the value as text
-- Each row keeps its line in the input file (for CSV the line its record starts on): the journal's row key.
-- JSON Lines with a template: every member the template names must be in the row (null or "" leave it out).
-- Files are read as a stream (M.open, a row at a time): memory does not grow with the input.
-- Messages about a row never quote its values unmasked (they hold names and mobiles).

local json = require("essbasic.json")
local personal = require("essbasic.personal")

local type, tostring, tonumber, pairs, ipairs, error, pcall, select = type, tostring, tonumber, pairs, ipairs, error,
  pcall, select
local floor = math.floor
local sub, find, gsub, match, byte, lower = string.sub, string.find, string.gsub, string.match, string.byte,
  string.lower
local concat = table.concat

local M = {}

M.MAX_REPORTED = 20 -- problems listed before "... and N more"

local function problem(list, line, message)
  list[#list + 1] = { line = line, message = message }
end

---------------------------------------------------------------------------------------------------------------
-- CSV
---------------------------------------------------------------------------------------------------------------

-- text → records { { line, fields = { ... } } }, or nil and a message (an unterminated quote).
local function csv_records(text, sep)
  local records = {}
  local pos, len, line = 1, #text, 1
  if sub(text, 1, 3) == "\239\187\191" then pos = 4 end
  local SEP, QUOTE, CR, LF = byte(sep), 34, 13, 10
  while pos <= len do
    local fields, start_line = {}, line
    local field_done = false
    while true do
      local c = byte(text, pos)
      if c == QUOTE then
        local parts = {}
        pos = pos + 1
        while true do
          local q = find(text, '"', pos, true)
          if not q then return nil, "line " .. start_line .. ": a quoted field is never closed" end
          local chunk = sub(text, pos, q - 1)
          for _ in chunk:gmatch("\n") do line = line + 1 end
          parts[#parts + 1] = chunk
          if byte(text, q + 1) == QUOTE then
            parts[#parts + 1] = '"'
            pos = q + 2
          else
            pos = q + 1
            break
          end
        end
        fields[#fields + 1] = concat(parts)
        c = byte(text, pos)
        if c ~= nil and c ~= SEP and c ~= CR and c ~= LF then
          return nil, "line " .. line .. ": text after a closing quote"
        end
      else
        local stop = pos
        while true do
          local b = byte(text, stop)
          if b == nil or b == SEP or b == CR or b == LF then break end
          stop = stop + 1
        end
        fields[#fields + 1] = sub(text, pos, stop - 1)
        pos = stop
        c = byte(text, pos)
      end
      if c == SEP then
        pos = pos + 1
      else
        if c == CR then pos = pos + 1; c = byte(text, pos) end
        if c == LF then pos = pos + 1 end
        line = line + 1
        field_done = true
      end
      if field_done then break end
    end
    -- A line with nothing on it is no record.
    if not (#fields == 1 and fields[1] == "") then
      records[#records + 1] = { line = start_line, fields = fields }
    end
  end
  return records
end

---------------------------------------------------------------------------------------------------------------
-- Templates
---------------------------------------------------------------------------------------------------------------

local CONVERT = {}

function CONVERT.text(v)
  if type(v) == "string" then return v end
  if type(v) == "number" then
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return string.format("%d", v) end
    return tostring(v)
  end
  if type(v) == "boolean" then return tostring(v) end
  return nil, "is not text"
end

function CONVERT.int(v)
  local n = type(v) == "number" and v or tonumber(type(v) == "string" and (gsub(v, "^%s*(.-)%s*$", "%1")) or nil)
  if not n or n ~= floor(n) then return nil, "is not an integer" end
  if math.tointeger then n = math.tointeger(n) or n end
  return n
end

function CONVERT.number(v)
  local n = type(v) == "number" and v or tonumber(type(v) == "string" and v or nil)
  if not n then return nil, "is not a number" end
  return n
end

local BOOLS = { ["true"] = true, ["1"] = true, yes = true, ["false"] = false, ["0"] = false, no = false }
function CONVERT.bool(v)
  if type(v) == "boolean" then return v end
  local b = BOOLS[lower(tostring(v))]
  if b == nil then return nil, "is not true or false" end
  return b
end

function CONVERT.json(v)
  if type(v) ~= "string" then return v end
  local x, why = json.decode(v)
  if x == nil then return nil, "is not JSON (" .. tostring(why) .. ")" end
  return x
end

local WHOLE = "^{{%s*([^{}:%s]+)%s*:?%s*(%a*)%s*}}$"
local INSIDE = "{{%s*([^{}:%s]+)%s*}}"

local function empty(v)
  return v == nil or v == "" or v == json.null
end

-- Every placeholder name in the template (to check them against the columns before any row is sent).
function M.placeholders(template)
  local names, order = {}, {}
  local function walk(v)
    if type(v) == "string" then
      local name, kind = match(v, WHOLE)
      if name then
        if kind ~= "" and not CONVERT[kind] then error("unknown conversion :" .. kind .. " in " .. v, 0) end
        if not names[name] then names[name] = true; order[#order + 1] = name end
      else
        for n in v:gmatch(INSIDE) do
          if not names[n] then names[n] = true; order[#order + 1] = n end
        end
      end
    elseif type(v) == "table" then
      for _, x in pairs(v) do walk(x) end
    end
  end
  walk(template)
  return order
end

-- The request of one row: the template with the row's values. → request, or nil and a message.
function M.fill(template, values)
  local why
  local function fill(v)
    if type(v) == "string" then
      local name, kind = match(v, WHOLE)
      if name then
        local x = values[name]
        if empty(x) then return nil end
        if kind == "" then return x end
        local out, bad = CONVERT[kind](x)
        if out == nil then why = why or (name .. " " .. bad .. ": " .. personal.mask(tostring(x))) end
        return out
      end
      return (gsub(v, INSIDE, function(n)
        local x = values[n]
        if empty(x) then return "" end
        local text, bad = CONVERT.text(x)
        if not text then why = why or (n .. " " .. bad) return "" end
        return text
      end))
    elseif type(v) == "table" then
      if v == json.null then return v end
      local out
      if json.is_array(v) or (#v > 0) then
        out = json.array()
        for i = 1, #v do
          local x = fill(v[i])
          if x ~= nil then out[#out + 1] = x end
        end
      else
        out = {}
        for k, x in pairs(v) do out[k] = fill(x) end
      end
      return out
    end
    return v
  end
  local req = fill(template)
  if why then return nil, why end
  return req
end

---------------------------------------------------------------------------------------------------------------
-- Reading an input file as a stream: one row at a time, in bounded memory
---------------------------------------------------------------------------------------------------------------

-- The physical lines of a file without their line ends: → an iterator giving (line number, text), the first
-- line without a UTF-8 byte order mark.
local function lines_of(f)
  local n = 0
  return function()
    local line = f:read("*l")
    if line == nil then return nil end
    n = n + 1
    if n == 1 and sub(line, 1, 3) == "\239\187\191" then line = sub(line, 4) end
    if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
    return n, line
  end
end

-- CSV records over physical lines: a record goes on while it has an odd number of quotes (a quoted field holds
-- a line break; "" inside quotes keeps the count even). → iterator giving (first line, fields) or (line, nil,
-- problem); blank lines are no record.
local function csv_iter(next_line, sep)
  return function()
    while true do
      local n, text = next_line()
      if not n then return nil end
      local start, quotes = n, select(2, gsub(text, '"', ""))
      while quotes % 2 == 1 do
        local more
        n, more = next_line()
        if not n then return start, nil, "a quoted field is never closed" end
        text = text .. "\n" .. more
        quotes = quotes + select(2, gsub(more, '"', ""))
      end
      if text ~= "" then
        local records, why = csv_records(text, sep)
        if not records then return start, nil, (gsub(why, "^line %d+: ", "")) end
        return start, records[1].fields
      end
    end
  end
end

-- The request of one row's values (with or without a template). → params, or nil and a problem.
local function request_of(reader, value)
  local template = reader.template
  if not template then return value end
  if reader.format == "jsonl" then
    -- A member the template names must be there (null or "" leave it out, as an empty CSV cell does): a typo'd
    -- member is refused, not sent without it.
    for _, name in ipairs(reader.names) do
      if value[name] == nil then return nil, "has no member " .. name .. " (the template's {{" .. name .. "}})" end
    end
  end
  return M.fill(template, value)
end

-- Opens an input: opts = { format = "jsonl"|"csv", template = table or nil, separator = "," }.
-- → reader, or nil and a list of problems { line, message } (the file, the template, the CSV header).
-- reader:next() → line, params (a row), or line, nil, message (a row that cannot be used), or nil (the end).
function M.open(path, opts)
  local f, why = io.open(path, "rb")
  if not f then return nil, { { line = 0, message = "cannot read it: " .. tostring(why) } } end
  local reader = { f = f, format = opts.format, template = opts.template, names = {} }
  if opts.template then
    local ok, names = pcall(M.placeholders, opts.template)
    if not ok then
      f:close()
      return nil, { { line = 0, message = "template: " .. tostring(names) } }
    end
    reader.names = names
  end
  local next_line = lines_of(f)
  if opts.format == "csv" then
    if not opts.template then
      f:close()
      return nil, { { line = 0, message = "a CSV input needs --template (a request with {{column}} placeholders)" } }
    end
    local records = csv_iter(next_line, opts.separator or ",")
    local hline, header, herr = records()
    local problems = {}
    if not hline then problem(problems, 1, "the CSV has no header line")
    elseif not header then problem(problems, hline, herr) end
    local columns, have = {}, {}
    for i, name in ipairs(header or {}) do
      name = gsub(gsub(name, "^%s+", ""), "%s+$", "")
      if name == "" then problem(problems, hline, "column " .. i .. " has no name") end
      if have[name] then problem(problems, hline, "column " .. name .. " appears twice") end
      have[name] = true
      columns[i] = name
    end
    if header then
      for _, n in ipairs(reader.names) do
        if not have[n] then problem(problems, 0, "the template's {{" .. n .. "}} names no CSV column") end
      end
    end
    if #problems > 0 then
      f:close()
      return nil, problems
    end
    function reader.next()
      local line, fields, bad = records()
      if not line then return nil end
      if not fields then return line, nil, bad end
      if #fields ~= #columns then return line, nil, "has " .. #fields .. " fields, the header " .. #columns end
      local value = {}
      for i, name in ipairs(columns) do value[name] = fields[i] end
      local params, perr = request_of(reader, value)
      return line, params, perr
    end
  else
    function reader.next()
      while true do
        local line, text = next_line()
        if not line then return nil end
        if find(text, "%S") then
          local v, jerr = json.decode(text)
          if v == nil then return line, nil, "not JSON: " .. tostring(jerr) end
          if type(v) ~= "table" or json.is_array(v) then return line, nil, "not a JSON object" end
          local params, perr = request_of(reader, v)
          return line, params, perr
        end
      end
    end
  end
  function reader.close()
    if reader.f then reader.f:close() reader.f = nil end
  end
  return reader
end

-- Every row of an input checked, none kept (constant memory): → the number of rows, the problems (at most
-- MAX_REPORTED + 1 of them kept, with the count of all), each_row(line) called for every good row.
function M.check(reader, each_row)
  local n, problems, count = 0, {}, 0
  while true do
    local line, params, why = reader.next()
    if not line then break end
    if params then
      n = n + 1
      if each_row then each_row(line) end
    else
      count = count + 1
      if #problems <= M.MAX_REPORTED then problem(problems, line, why) end
    end
  end
  if count == 0 and n == 0 then problem(problems, 0, "the input has no rows"); count = 1 end
  problems.count = count
  return n, problems
end

-- Problems as text lines (at most MAX_REPORTED, then a count).
function M.describe_problems(problems, name)
  local lines = {}
  for i, p in ipairs(problems) do
    if i > M.MAX_REPORTED then
      lines[#lines + 1] = "  ... and " .. ((problems.count or #problems) - M.MAX_REPORTED) .. " more"
      break
    end
    lines[#lines + 1] = "  " .. (p.line > 0 and (name .. ":" .. p.line .. ": ") or "") .. p.message
  end
  return concat(lines, "\n")
end

return M
