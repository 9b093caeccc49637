-- essbasic callback decrypt --key KEY --token TOKEN [--signature 'sha256=HEX' | --header 'Content-Signature: ...']
--                           [--body @file] [--allow-unsigned] [--compact]
--
-- Reads a callback request's body (standard input unless --body), checks its Content-Signature with the token,
-- decrypts it with the key and prints the message as JSON. KEY and TOKEN may also be @file (the file's content,
-- without a final newline) or come from ESSBASIC_CALLBACK_KEY / ESSBASIC_CALLBACK_TOKEN (better than the command
-- line, which other users of the machine can see). Without a token the message is refused unless
-- --allow-unsigned is given. Refused: the error as JSON on stderr, exit 10.
--
-- essbasic callback serve --store run.db --token TOKEN [--key KEY] --port N [--listen ADDR] [--nginx PATH]
-- A receiver recording flow callbacks into a SQLite store for client:resolve (essbasic.cli.callback_serve).

local callback = require("essbasic.callback")
local common = require("essbasic.cli.common")

local EXIT, fail = common.EXIT, common.fail
local ipairs, lower, match, sub = ipairs, string.lower, string.match, string.sub

local M = {}

M.OPTIONS = { key = { value = true }, token = { value = true }, signature = { value = true },
  header = { value = true, multi = true }, body = { value = true }, ["allow-unsigned"] = {}, compact = {},
  store = { value = true }, port = { value = true }, listen = { value = true }, nginx = { value = true } }

-- A secret option: the value, @file's content (one final newline dropped), or the environment variable.
local function secret(opts, name, env)
  local v = opts[name]
  if v == nil then
    v = os.getenv(env)
    if v == "" then v = nil end
    return v
  end
  if sub(v, 1, 1) == "@" then
    local data, why = common.read_file(sub(v, 2))
    if not data then fail(EXIT.usage, "cannot read --" .. name .. " " .. sub(v, 2) .. ": " .. tostring(why)) end
    return (data:gsub("\r?\n$", ""))
  end
  return v
end

function M.run(opts, words)
  if words[1] == "serve" then
    if words[2] then fail(EXIT.usage, "callback serve takes no arguments") end
    return require("essbasic.cli.callback_serve").run(opts, secret(opts, "key", "ESSBASIC_CALLBACK_KEY"),
      secret(opts, "token", "ESSBASIC_CALLBACK_TOKEN"))
  end
  if words[1] ~= "decrypt" then
    fail(EXIT.usage, "callback has two commands: essbasic callback decrypt --key KEY --token TOKEN < body, and "
      .. "essbasic callback serve --store run.db --token TOKEN --port N")
  end
  if words[2] then fail(EXIT.usage, "callback decrypt takes no arguments (the body comes on standard input)") end
  local key = secret(opts, "key", "ESSBASIC_CALLBACK_KEY")
  local token = secret(opts, "token", "ESSBASIC_CALLBACK_TOKEN")
  if not token and not opts["allow-unsigned"] then
    fail(EXIT.usage, "give the callback token (--token or ESSBASIC_CALLBACK_TOKEN) to check the signature, or "
      .. "--allow-unsigned to read a message without checking who sent it")
  end
  local signature = opts.signature
  for _, h in ipairs(opts.header or {}) do
    local name, value = match(h, "^%s*([^:]+):%s*(.-)%s*$")
    if not name then fail(EXIT.usage, "--header takes 'Name: value' (the value, a signature, is not shown)") end
    if lower(name) == "content-signature" then signature = value end
  end
  local body = common.read_source(opts.body or "-", "--body")
  local msg, err = callback.parse{ body = body, signature = signature, token = token, key = key,
    allow_unsigned = opts["allow-unsigned"] == true }
  if not msg then
    common.print_error(err, opts.compact)
    return EXIT.callback
  end
  common.stdout(common.to_json(msg, { order = { "MsgId", "MsgType", "MsgVersion", "MsgData" } }, opts.compact), "\n")
  return EXIT.ok
end

return M
