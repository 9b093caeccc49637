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

local json = require("essbasic.json")

local type, tostring, tonumber, pairs, ipairs, error = type, tostring, tonumber, pairs, ipairs, error
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
-- JSON Lines
---------------------------------------------------------------------------------------------------------------

-- text → rows { { line, value } }, problems { { line, message } }
function M.jsonl(text)
  local rows, problems = {}, {}
  local line_no, pos, len = 0, 1, #text
  if sub(text, 1, 3) == "\239\187\191" then pos = 4 end -- a UTF-8 byte order mark
  while pos <= len do
    local nl = find(text, "\n", pos, true)
    local line = sub(text, pos, (nl or len + 1) - 1)
    line_no = line_no + 1
    pos = (nl or len) + 1
    if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
    if find(line, "%S") then
      local v, why = json.decode(line)
      if v == nil then
        problem(problems, line_no, "not JSON: " .. tostring(why))
      elseif type(v) ~= "table" or json.is_array(v) then
        problem(problems, line_no, "not a JSON object")
      else
        rows[#rows + 1] = { line = line_no, value = v }
      end
    end
  end
  return rows, problems
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

-- text → rows { { line, value = { column = text } } }, problems, columns
function M.csv(text, sep)
  local records, why = csv_records(text, sep or ",")
  if not records then return {}, { { line = 0, message = why } }, {} end
  local rows, problems = {}, {}
  local header = records[1]
  if not header then return rows, { { line = 1, message = "the CSV has no header line" } }, {} end
  local columns, seen = {}, {}
  for i, name in ipairs(header.fields) do
    name = gsub(gsub(name, "^%s+", ""), "%s+$", "")
    if name == "" then problem(problems, header.line, "column " .. i .. " has no name") end
    if seen[name] then problem(problems, header.line, "column " .. name .. " appears twice") end
    seen[name] = true
    columns[i] = name
  end
  for r = 2, #records do
    local rec = records[r]
    if #rec.fields ~= #columns then
      problem(problems, rec.line, "has " .. #rec.fields .. " fields, the header " .. #columns)
    else
      local value = {}
      for i, name in ipairs(columns) do value[name] = rec.fields[i] end
      rows[#rows + 1] = { line = rec.line, value = value }
    end
  end
  return rows, problems, columns
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
        if out == nil then why = why or (name .. " " .. bad .. ": " .. tostring(x)) end
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

-- The rows and requests of a batch input.
-- opts = { format = "jsonl"|"csv", template = table or nil, separator = "," }
-- → list of { line, params }, or nil and a list of problems { line, message }.
function M.load(text, opts)
  local rows, problems, columns
  if opts.format == "csv" then
    rows, problems, columns = M.csv(text, opts.separator)
    if not opts.template then
      return nil, { { line = 0, message = "a CSV input needs --template (a request with {{column}} placeholders)" } }
    end
  else
    rows, problems = M.jsonl(text)
  end
  if #problems > 0 then return nil, problems end
  local template = opts.template
  if template then
    local ok, names = pcall(M.placeholders, template)
    if not ok then return nil, { { line = 0, message = "template: " .. tostring(names) } } end
    if columns then
      local have = {}
      for _, c in ipairs(columns) do have[c] = true end
      for _, n in ipairs(names) do
        if not have[n] then problem(problems, 0, "the template's {{" .. n .. "}} names no CSV column") end
      end
      if #problems > 0 then return nil, problems end
    end
  end
  local out = {}
  for i, r in ipairs(rows) do
    if template then
      local params, why = M.fill(template, r.value)
      if not params then
        problem(problems, r.line, why)
      else
        out[i] = { line = r.line, params = params }
      end
    else
      out[i] = { line = r.line, params = r.value }
    end
  end
  if #problems > 0 then return nil, problems end
  if #out == 0 then return nil, { { line = 0, message = "the input has no rows" } } end
  return out
end

-- Problems as text lines (at most MAX_REPORTED, then a count).
function M.describe_problems(problems, name)
  local lines = {}
  for i, p in ipairs(problems) do
    if i > M.MAX_REPORTED then
      lines[#lines + 1] = "  ... and " .. (#problems - M.MAX_REPORTED) .. " more"
      break
    end
    lines[#lines + 1] = "  " .. (p.line > 0 and (name .. ":" .. p.line .. ": ") or "") .. p.message
  end
  return concat(lines, "\n")
end

return M
