-- What the essbasic commands share: the exit codes, errors as JSON, JSON for people (indented, keys in the
-- schema's order), reading `--input '{json}' | @file | -`, and small process helpers that behave alike under
-- Lua 5.4 and LuaJIT.

local json = require("essbasic.json")
local errors = require("essbasic.errors")

local type, pairs, ipairs, tostring, getmetatable, setmetatable = type, pairs, ipairs, tostring, getmetatable,
  setmetatable
local sort, concat = table.sort, table.concat
local rep, sub, gsub = string.rep, string.sub, string.gsub

local M = {}

-- The documented exit codes (docs/cli.md).
M.EXIT = {
  ok = 0,
  failure = 1,        -- anything else: a file that cannot be read, a journal that cannot be written, ...
  usage = 2,          -- wrong options or arguments, input that is not JSON, unknown action
  validation = 3,     -- the request breaks the API's rules: refused here, never sent
  service = 4,        -- the API answered with an error
  network = 5,        -- no usable answer (network failure, HTTP error, unreadable answer) and nothing was changed
  unknown = 6,        -- a creating call that may or may not have been carried out (batch: some rows unknown)
  credentials = 7,    -- no usable credentials or configuration
  incomplete = 8,     -- batch: some rows failed (none unknown)
  journal = 9,        -- batch: the journal belongs to another input or action, or another run is using it
  callback = 10,      -- callback decrypt: signature, decryption or message refused
  interrupted = 130,  -- Ctrl-C (SIGINT)
  terminated = 143,   -- batch: SIGTERM (systemd, Kubernetes, timeout)
}
local EXIT = M.EXIT

-- A usage or command failure raised inside a command: main() catches it and exits with its code.
local Fail = {}
Fail.__index = Fail
function M.fail(code, message)
  error(setmetatable({ exit = code, message = message }, Fail), 0)
end
function M.is_fail(v) return getmetatable(v) == Fail end

-- The exit code of a failed call.
function M.exit_for(err)
  if type(err) ~= "table" then return EXIT.failure end
  local code, kind = err.code, err.kind
  if code == errors.OUTCOME_UNKNOWN then return EXIT.unknown end
  if kind == "validation" or code == errors.ENCODE or code == errors.REQUEST_TOO_LARGE then return EXIT.validation end
  if code == errors.CREDENTIAL or code == errors.HEADER_VALUE then return EXIT.credentials end
  if kind == "service" then return EXIT.service end
  if kind == "network" or kind == "http" or kind == "parse" or code == errors.DEADLINE then return EXIT.network end
  return EXIT.failure
end

-- An error object as plain data for JSON: every field but functions, the cause and problems included.
function M.error_table(err, depth)
  depth = depth or 0
  if type(err) ~= "table" then return { code = errors.UNEXPECTED, message = tostring(err) } end
  local out = {}
  for k, v in pairs(err) do
    if type(k) == "string" then
      local t = type(v)
      if t == "string" or t == "number" or t == "boolean" then
        out[k] = v
      elseif t == "table" and depth < 4 then
        if k == "cause" then
          out[k] = M.error_table(v, depth + 1)
        else
          local copy = M.plain(v, depth + 1)
          if copy ~= nil then out[k] = copy end
        end
      end
    end
  end
  if type(out.code) ~= "string" then out.code = errors.UNEXPECTED end
  if out.message == nil then out.message = tostring(err) end
  if err.problems then out.problems = json.array(M.plain(err.problems, depth + 1) or {}) end
  if err.history then out.history = json.array(M.plain(err.history, depth + 1) or {}) end
  return out
end

M.ERROR_ORDER = { order = { "code", "message", "kind", "request_id", "http_status", "network", "sent", "attempts",
  "problems", "history", "cause" } }
M.ERROR_ORDER.fields = { cause = { struct = M.ERROR_ORDER },
  problems = { struct = { order = { "path", "code", "expected", "found", "message" } } } }

-- What to do about a failure, by its exit code (the one-line form on a terminal).
M.FIX = {
  [EXIT.validation] = "fix the request (essbasic describe ACTION lists its members and limits)",
  [EXIT.service] = "see the API's error code; the request reached the API",
  [EXIT.network] = "check --endpoint and the network; nothing was changed",
  [EXIT.unknown] = "check the result with a Describe action before sending it again",
  [EXIT.credentials] = "set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, or --profile NAME",
}

-- Prints a failed call's error: one line (code, message, what to do) when stderr is a terminal and as_json is not
-- set, else the error object as JSON (for programs); → the exit code for it.
function M.print_error(err, compact, as_json)
  local code = M.exit_for(err)
  if not as_json and M.isatty(2) then
    local t = M.error_table(err)
    local first = type(t.problems) == "table" and t.problems[1]
    M.stderr("essbasic: ", tostring(t.code), ": ", (gsub(tostring(t.message), "%s*\n%s*", " ")),
      first and first.path and (" (at " .. tostring(first.path) .. ")") or "",
      t.request_id and (" [RequestId " .. tostring(t.request_id) .. "]") or "",
      M.FIX[code] and (" — " .. M.FIX[code]) or "", "\n")
    return code
  end
  M.stderr(M.to_json(M.error_table(err), M.ERROR_ORDER, compact), "\n")
  return code
end

-- A copy of plain data (strings, numbers, booleans, tables of them); nil for what JSON cannot hold.
function M.plain(v, depth)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return v end
  if t ~= "table" or (depth or 0) > 20 then return nil end
  if v == json.null then return v end
  local out, n = {}, 0
  for k, x in pairs(v) do
    local c = M.plain(x, (depth or 0) + 1)
    if c ~= nil and (type(k) == "string" or type(k) == "number") then out[k] = c; n = n + 1 end
  end
  if json.is_array(v) or (n > 0 and #out == n) then return json.array(out) end
  return out
end

---------------------------------------------------------------------------------------------------------------
-- JSON for people: two-space indent, object keys in the structure's order (schema `order`), then sorted.
---------------------------------------------------------------------------------------------------------------

local function scalar(v)
  local s, why = json.encode(v)
  if not s then error("cannot write JSON: " .. tostring(why), 0) end
  return s
end

local function is_list(v)
  if json.is_array(v) then return true end
  local n = #v
  if n == 0 then return false end
  local count = 0
  for _ in pairs(v) do count = count + 1 end
  return count == n
end

local function key_order(t, struct)
  local keys, seen = {}, {}
  if struct and struct.order then
    for _, k in ipairs(struct.order) do
      if t[k] ~= nil then keys[#keys + 1] = k; seen[k] = true end
    end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local function write_value(out, v, struct, indent, compact)
  if type(v) ~= "table" or v == json.null then
    out[#out + 1] = scalar(v)
    return
  end
  local nl = compact and "" or "\n"
  local pad = compact and "" or rep("  ", indent + 1)
  local close_pad = compact and "" or rep("  ", indent)
  if is_list(v) then
    if #v == 0 then out[#out + 1] = "[]" return end
    out[#out + 1] = "[" .. nl
    for i = 1, #v do
      out[#out + 1] = pad
      write_value(out, v[i], struct, indent + 1, compact)
      out[#out + 1] = (i < #v and "," or "") .. nl
    end
    out[#out + 1] = close_pad .. "]"
    return
  end
  local keys = key_order(v, struct)
  if #keys == 0 then out[#out + 1] = "{}" return end
  out[#out + 1] = "{" .. nl
  local sep = compact and ":" or ": "
  for i, k in ipairs(keys) do
    local field = struct and struct.fields and struct.fields[k]
    out[#out + 1] = pad .. scalar(tostring(k)) .. sep
    write_value(out, v[k], field and field.struct, indent + 1, compact)
    out[#out + 1] = (i < #keys and "," or "") .. nl
  end
  out[#out + 1] = close_pad .. "}"
end

-- value → JSON text; struct (an api.struct entry) orders the keys; compact → one line.
function M.to_json(value, struct, compact)
  local out = {}
  write_value(out, value, struct, 0, compact)
  return concat(out)
end

---------------------------------------------------------------------------------------------------------------
-- Files and input
---------------------------------------------------------------------------------------------------------------

-- Whether path names a file this process can open.
function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.read_file(path)
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  local data = f:read("*a")
  f:close()
  if not data then return nil, "cannot read " .. path end
  return data
end

-- Writes a file whole: into a temporary file beside it, then renamed over it.
function M.write_file(path, data)
  local tmp = path .. ".tmp"
  local f, why = io.open(tmp, "wb")
  if not f then return nil, why end
  local ok, werr = f:write(data)
  f:close()
  if not ok then os.remove(tmp) return nil, werr end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then os.remove(tmp) return nil, rerr end
  return true
end

-- The text of `--input`-style sources: "-" is standard input, "@path" a file, anything else the text itself.
function M.read_source(spec, what)
  if spec == "-" then
    local data = io.stdin:read("*a")
    return data or ""
  end
  if sub(spec, 1, 1) == "@" then
    local data, why = M.read_file(sub(spec, 2))
    if not data then M.fail(EXIT.usage, "cannot read " .. what .. " " .. sub(spec, 2) .. ": " .. tostring(why)) end
    return data
  end
  return spec
end

-- A JSON object from a source (see read_source); nil source → {}.
function M.read_object(spec, what)
  if spec == nil or spec == true then return {} end
  local text = M.read_source(spec, what)
  if text:match("^%s*$") then return {} end
  local v, why = json.decode(text)
  if v == nil then
    -- A file's name given without its @: say so rather than quote the parser.
    local f = sub(spec, 1, 1) ~= "@" and spec ~= "-" and not spec:find("^%s*[{%[]") and io.open(spec, "rb")
    if f then
      f:close()
      M.fail(EXIT.usage, what .. " " .. spec .. " is a file: write " .. what .. " @" .. spec .. " to read it")
    end
    M.fail(EXIT.usage, what .. " is not JSON: " .. tostring(why))
  end
  if type(v) ~= "table" or json.is_array(v) then M.fail(EXIT.usage, what .. " must be a JSON object") end
  return v
end

---------------------------------------------------------------------------------------------------------------
-- Processes
---------------------------------------------------------------------------------------------------------------

function M.shell_quote(s)
  return "'" .. gsub(s, "'", "'\\''") .. "'"
end

-- os.execute → exit status (128 + n for a signal), the same under Lua 5.4 (true/nil, how, n) and LuaJIT
-- (a wait status).
function M.execute(cmd)
  local a, how, n = os.execute(cmd)
  if type(a) == "number" then
    if a >= 256 or a == 0 then return math.floor(a / 256) end
    return 128 + a % 128
  end
  if how == "signal" then return 128 + (n or 0) end
  return n or (a and 0 or 1)
end

-- Whether file descriptor fd (1 stdout, 2 stderr) is a terminal.
function M.isatty(fd)
  return M.execute("[ -t " .. math.floor(fd) .. " ]") == 0
end

function M.stderr(...)
  io.stderr:write(...)
  io.stderr:flush()
end

function M.stdout(...)
  io.stdout:write(...)
  io.stdout:flush()
end

return M
