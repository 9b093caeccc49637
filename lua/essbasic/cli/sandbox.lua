-- essbasic sandbox start|stop|status|env|demo [--port N] [--data DIR] [--config FILE]
-- From a source checkout: its sandbox/run with the same words. From an installed rock: the same launcher, which
-- the rockspec installs under its own names in <tree>/share/lua/<v>/essbasic/ (sandbox/launch.lua, sandbox/*.lua,
-- tools/nginx.lua), run by this interpreter with that folder first on the path, so that its require("sandbox.x")
-- and require("tools.nginx") resolve there. nginx and the PDF tools are system packages: named when missing.

local common = require("essbasic.cli.common")

local EXIT, fail = common.EXIT, common.fail
local ipairs, concat = ipairs, table.concat

local M = {}

M.COMMANDS = { start = true, stop = true, status = true, env = true, demo = true }
local USAGE = "essbasic sandbox start|stop|status|env|demo [--port N] [--data DIR] [--config FILE]"

-- What the sandbox runs on, and the Debian package that has it.
local SYSTEM = {
  { "/usr/sbin/nginx", "nginx" },
  { "/usr/share/nginx/modules/ngx_http_lua_module.so", "libnginx-mod-http-lua" },
  { "qpdf", "qpdf" },
  { "pdfinfo", "poppler-utils" },
  { "pdftotext", "poppler-utils" },
}

local exists = common.exists

local function missing_packages()
  local missing, seen = {}, {}
  for _, s in ipairs(SYSTEM) do
    local found = s[1]:sub(1, 1) == "/" and exists(s[1]) or
      (s[1]:sub(1, 1) ~= "/" and common.execute("command -v " .. s[1] .. " >/dev/null 2>&1") == 0)
    if not found and not seen[s[2]] then
      seen[s[2]] = true
      missing[#missing + 1] = s[2]
    end
  end
  return missing
end

-- The installed sandbox's folder, <share>/essbasic (this file is <share>/essbasic/cli/sandbox.lua), or nil.
local function installed_root()
  local here = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = here:match("^(.*)/cli/sandbox%.lua$")
  if not dir or not exists(dir .. "/sandbox/launch.lua") then return nil end
  if dir:sub(1, 1) ~= "/" then dir = (os.getenv("PWD") or ".") .. "/" .. dir end
  return dir
end

-- The interpreter running this command: the lowest arg index (LuaRocks' wrapper puts -e options after it).
local function interpreter()
  local i = 0
  while arg and arg[i - 1] do i = i - 1 end
  return arg and i < 0 and arg[i] or "lua"
end

-- The shell words that run a Lua script of the installed sandbox: its folder first on the path, then this
-- process's path (the tree LuaRocks' wrapper set), under both LUA_PATH and the versioned name Lua 5.2+ reads first.
local function lua_command(root)
  local env = {}
  local versioned = not rawget(_G, "jit") and _VERSION:match("^Lua 5%.([2-9])$")
  for _, v in ipairs({ { "LUA_PATH", root .. "/?.lua;" .. package.path }, { "LUA_CPATH", package.cpath } }) do
    env[#env + 1] = v[1] .. "=" .. common.shell_quote(v[2])
    if versioned then
      env[#env + 1] = v[1] .. "_5_" .. versioned .. "=" .. common.shell_quote(v[2])
    end
  end
  return "env " .. concat(env, " ") .. " " .. common.shell_quote(interpreter()) .. " "
end

local function launcher(root, cmd)
  return lua_command(root) .. common.shell_quote(root .. "/sandbox/launch.lua") .. " " .. cmd
end

local function quote_words(words, from)
  local quoted = {}
  for i = from, #words do quoted[#quoted + 1] = common.shell_quote(words[i]) end
  return concat(quoted, " ")
end

-- The data folder the launcher will use (its --data, ESSBASIC_SANDBOX_DATA, or the default), for the log.
local function data_dir(words)
  local d = os.getenv("ESSBASIC_SANDBOX_DATA") or "/tmp/essbasic-sandbox"
  for i = 2, #words do
    if words[i] == "--data" and words[i + 1] then d = words[i + 1] end
  end
  if d:sub(1, 1) ~= "/" then d = (os.getenv("PWD") or ".") .. "/" .. d end
  return d
end

local function sleep(seconds) require("essbasic.core").sleep(seconds) end

-- start: the launcher's `serve` detached (its own session, so a later Ctrl-C of the caller's never reaches it),
-- then wait until it reports itself running.
local function start_installed(root, words)
  local args = quote_words(words, 2)
  if common.execute(launcher(root, "status") .. " " .. args .. " >/dev/null 2>&1") == 0 then
    common.execute(launcher(root, "status") .. " " .. args)
    return EXIT.failure
  end
  local dir = data_dir(words)
  local log = dir .. "/sandbox.log"
  common.execute("mkdir -p " .. common.shell_quote(dir))
  common.execute("setsid nohup " .. launcher(root, "serve") .. " " .. args .. " >" .. common.shell_quote(log) ..
    " 2>&1 </dev/null &")
  for _ = 1, 150 do
    if common.execute(launcher(root, "status") .. " " .. args .. " >/dev/null 2>&1") == 0 then
      return common.execute(launcher(root, "status") .. " " .. args)
    end
    sleep(0.1)
  end
  local f = io.open(log, "rb")
  fail(EXIT.failure, "the sandbox did not start:\n" .. (f and f:read("*a") or ""))
end

-- demo: a fresh sandbox on a temporary data folder, the installed examples/demo.lua against it, the sandbox stopped.
local function demo_installed(root, words)
  local tree, abi = root:match("^(.*)/share/lua/([^/]+)/essbasic$")
  local p = tree and io.popen("ls -d " .. common.shell_quote(tree) .. "/lib/luarocks/rocks-" .. abi ..
    "/essbasic/" .. require("essbasic").VERSION .. "-*/examples/demo.lua 2>/dev/null")
  local demo = p and p:read("*l")
  if p then p:close() end
  if not demo then fail(EXIT.failure, "no examples/demo.lua in the rock's folder under " .. tostring(tree)) end
  local p2 = io.popen("mktemp -d /tmp/essbasic-demo.XXXXXX")
  local dir = p2:read("*l")
  p2:close()
  local args = quote_words(words, 2)
  local sw = { "start", "--data", dir }
  for i = 2, #words do sw[#sw + 1] = words[i] end
  local ok, started = pcall(start_installed, root, sw)
  local status = EXIT.failure
  if ok and started == 0 then
    local env = launcher(root, "env") .. " --data " .. common.shell_quote(dir) .. " " .. args
    local out = os.getenv("ESSBASIC_DEMO_OUT") or "signed-contracts"
    status = common.execute("eval \"$(" .. env .. ")\" && ESSBASIC_DEMO_OUT=" .. common.shell_quote(out) .. " " ..
      lua_command(root) .. common.shell_quote(demo))
  end
  common.execute(launcher(root, "stop") .. " --data " .. common.shell_quote(dir) .. " >/dev/null 2>&1")
  common.execute("rm -rf " .. common.shell_quote(dir))
  if not ok then error(started, 0) end
  return status
end

-- The shell command that prints the export lines of a running sandbox (`essbasic sandbox env [--data DIR]`), from
-- a checkout (root) or the installed rock; nil when there is neither.
function M.env_command(root, dir)
  local cmd
  if root then
    cmd = common.shell_quote(root .. "/sandbox/run") .. " env"
  else
    local installed = installed_root()
    if not installed then return nil end
    cmd = launcher(installed, "env")
  end
  if type(dir) == "string" then cmd = cmd .. " --data " .. common.shell_quote(dir) end
  return cmd
end

-- words: the words after `sandbox`, options included (they belong to the launcher).
function M.run(words, ctx)
  local cmd = words[1]
  if not M.COMMANDS[cmd] then fail(EXIT.usage, USAGE) end
  io.stdout:flush()
  local root = ctx and ctx.root
  if root then
    return common.execute(common.shell_quote(root .. "/sandbox/run") .. " " .. quote_words(words, 1))
  end
  local installed = installed_root()
  if not installed then
    fail(EXIT.failure, "the sandbox's files are not installed beside this essbasic (reinstall the rock, or run " ..
      "essbasic from a source checkout)")
  end
  if cmd == "start" or cmd == "demo" then
    local missing = missing_packages()
    if #missing > 0 then
      fail(EXIT.failure, "the sandbox runs on nginx with its Lua module and the PDF tools: install " ..
        concat(missing, " ") .. " (Debian, Ubuntu: apt-get install " .. concat(missing, " ") .. ")")
    end
  end
  if cmd == "start" then return start_installed(installed, words) end
  if cmd == "demo" then return demo_installed(installed, words) end
  return common.execute(launcher(installed, cmd) .. " " .. quote_words(words, 2))
end

return M
