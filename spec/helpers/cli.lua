--[==[ bin/essbasic as a user runs it, for the specs: a separate interpreter (the one under test, ESSBASIC_LUA)
from the repository root, with the caller's keys and endpoints taken out of the environment and HOME pointing at
an empty folder (no profile file).

  local cli = require("helpers.cli").new()
  local r = cli:run({ "call", "UploadFiles", "--input", "-" }, { env = { NAME = "value" }, stdin = "..." })
  r.status, r.out, r.err       -- the exit status (128 + n for signal n), stdout, stderr
  cli:command(argv, env)       -- the shell command alone (to start it in the background)
  cli.dir                      -- a temporary folder for the spec's files; cli:remove() deletes it
  helpers.cli.quote(s), helpers.cli.exit_status(os.execute(...))
]==]

local files = require("helpers.files")

local M = {}

M.LUA = os.getenv("ESSBASIC_LUA") or (rawget(_G, "jit") and "luajit" or "lua5.4")

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = M.quote

-- os.execute's answer under Lua 5.4 (true/nil, how, n) or LuaJIT (a wait status) → an exit status.
function M.exit_status(a, how, n)
  if type(a) == "number" then
    if a >= 256 or a == 0 then return math.floor(a / 256) end
    return 128 + a % 128
  end
  if how == "signal" then return 128 + n end
  return n
end

local Cli = {}
Cli.__index = Cli

function M.new()
  local p = assert(io.popen("mktemp -d /tmp/essbasic-cli-spec.XXXXXX"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir:match("^/tmp/essbasic%-cli%-spec%."), "mktemp failed")
  return setmetatable({ dir = dir }, Cli)
end

function Cli:command(argv, env)
  local words = {}
  for i, a in ipairs(argv) do words[i] = q(a) end
  local assigns = { "HOME=" .. q(self.dir), "TENCENTCLOUD_CREDENTIALS_FILE=" .. q(self.dir .. "/no-such-file") }
  for k, v in pairs(env or {}) do assigns[#assigns + 1] = k .. "=" .. q(v) end
  return "env -u TENCENTCLOUD_SECRET_ID -u TENCENTCLOUD_SECRET_KEY -u ESSBASIC_ENDPOINT -u ESSBASIC_FILE_ENDPOINT "
    .. "-u TENCENTCLOUD_REGION -u ESSBASIC_SANDBOX_DATA -u ESSBASIC_CALLBACK_KEY -u ESSBASIC_CALLBACK_TOKEN "
    .. table.concat(assigns, " ") .. " " .. M.LUA .. " bin/essbasic " .. table.concat(words, " ")
end

-- opts = { env = { NAME = value }, stdin = text }; the command is stopped after two minutes.
function Cli:run(argv, opts)
  opts = opts or {}
  local stdin, out, err = self.dir .. "/stdin", self.dir .. "/stdout", self.dir .. "/stderr"
  files.write(stdin, opts.stdin or "")
  local status = M.exit_status(os.execute("timeout 120 " .. self:command(argv, opts.env) .. " <" .. q(stdin) .. " >"
    .. q(out) .. " 2>" .. q(err)))
  return { status = status, out = files.read(out), err = files.read(err) }
end

function Cli:remove()
  os.execute("rm -rf " .. q(self.dir))
end

return M
