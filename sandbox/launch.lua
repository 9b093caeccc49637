--[==[ Starting and stopping the sandbox (plain Lua 5.4 or LuaJIT; nginx itself runs the server code).

As a module (spec/helpers/sandbox.lua uses this):
  local launch = require("sandbox.launch")
  local sb = launch.start{ overrides = { file_ttl = 5 }, config_file = nil, env = false }
  sb.endpoint, sb.port, sb.data_dir, sb.config, sb.srv (the tools.nginx server), sb:stop()

As a command (sandbox/run wraps it; paths set up there):
  lua5.4 sandbox/launch.lua serve  [--port N] [--data DIR] [--config FILE]   runs until told to stop
  lua5.4 sandbox/launch.lua stop   [--data DIR] [--config FILE]
  lua5.4 sandbox/launch.lua status [--data DIR] [--config FILE]
  lua5.4 sandbox/launch.lua env    [--data DIR] [--config FILE]   export lines for a client (endpoint, test keys)
  lua5.4 sandbox/launch.lua data-dir [--data DIR] [--config FILE] the data folder, made private (or refused)

nginx is started through tools/nginx.lua (one writer of nginx configurations in the project), which runs
worker_processes 1: the sandbox keeps its state in that one worker's Lua VM. The resolved configuration is
written as JSON into the server's private prefix (mode 0700) and read by init_by_lua.

`serve` keeps a small supervisor process alive beside the nginx daemon: it writes <data>/sandbox.run.json
(endpoint, pids), waits for <data>/sandbox.stop to appear (written by `stop`), then stops nginx gracefully and
removes both files. Ctrl-C (SIGINT) in the foreground stops it the same way; `sandbox/run start` detaches it (setsid).
]==]

local nginx = require("tools.nginx")
local json = require("essbasic.json")
local core = require("essbasic.core")
local sandbox_config = require("sandbox.config")

local M = {}

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function repo_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/sandbox/[^/]+$") or "."
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("cd " .. shell_quote(dir) .. " && pwd")
    dir = p:read("*l")
    p:close()
  end
  return dir
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

local read_file = require("sandbox.store").read_file

local HTTP_BLOCK = [[
  client_max_body_size 100m;
  client_body_buffer_size 16m;
  init_by_lua_block { require("sandbox.server").init("%PREFIX%/sandbox-config.json") }
  init_worker_by_lua_block { require("sandbox.store").restrict_umask() require("sandbox.server").init_worker() }
  server {
    listen 127.0.0.1:%PORT%;
    location / { content_by_lua_block { require("sandbox.server").handle() } }
  }
]]

-- Installed from the rock (essbasic.cli.sandbox runs this file from <tree>/share/lua/<v>/essbasic/sandbox/, no lua/
-- beside it), nginx also needs this process's path (the tree) and the tree's Lua 5.1 build of essbasic.core, since
-- nginx runs LuaJIT; from a checkout, tools/nginx.lua adds its lua/ and build/5.1 itself.
local function installed_paths(root)
  if read_file(root .. "/lua/essbasic/init.lua") then return "", nil end
  local cpath = package.cpath:gsub("/5%.%d/", "/5.1/")
  local searchpath = package.searchpath or function() return true end -- PUC 5.1: nginx says it at start
  if not searchpath("essbasic.core", cpath) then
    error("nginx runs LuaJIT, which loads the Lua 5.1 build of essbasic.core, and this tree has none: install the " ..
      "rock for Lua 5.1 into it too (luarocks --lua-version=5.1 --tree TREE install essbasic-VERSION-1.src.rock)", 0)
  end
  return ";" .. package.path, cpath
end

-- The effective uid of this process.
local function own_uid()
  return tonumber((read_file("/proc/self/status") or ""):match("\nUid:%s*%d+%s+(%d+)"))
end

-- dir (and dir/files) made private: created 0700 when missing; refused when it is not a folder (a symlink is
-- refused, not followed), another user owns it, or others may write into it (they could plant a symlink where the
-- sandbox writes). → true, or nil and why.
function M.private_folder(dir)
  for _, d in ipairs({ dir, dir .. "/files" }) do
    os.execute("mkdir -p -m 700 " .. shell_quote(d) .. " 2>/dev/null")
    local p = io.popen("stat -c '%u %a %F' -- " .. shell_quote(d) .. " 2>/dev/null")
    local uid, mode, kind = (p:read("*l") or ""):match("^(%d+) (%d+) (.+)$")
    p:close()
    if kind ~= "directory" then
      return nil, "the data folder " .. d .. " is not a folder (" .. tostring(kind or "missing") .. "): refused"
    end
    if tonumber(uid) ~= own_uid() then
      return nil, "the data folder " .. d .. " belongs to another user (uid " .. uid .. "): refused; choose "
        .. "another with --data or ESSBASIC_SANDBOX_DATA"
    end
    local bits = tonumber(mode, 8)
    local group_writes, others_write = math.floor(bits / 16) % 2 == 1, math.floor(bits / 2) % 2 == 1
    if group_writes or others_write then
      return nil, "the data folder " .. d .. " is writable by others (mode " .. mode .. "): refused; chmod 700 it"
    end
  end
  return true
end

-- opts = { overrides = table, config_file = path, env = bool (default true) } → a running sandbox.
function M.start(opts)
  opts = opts or {}
  local config = sandbox_config.resolve({ file = opts.config_file, env = opts.env, overrides = opts.overrides })
  config.data_dir = absolute(config.data_dir)
  local tree_path, tree_cpath = installed_paths(repo_root())
  assert(M.private_folder(config.data_dir))
  local srv = nginx.start{
    http = HTTP_BLOCK,
    port = config.port and math.floor(config.port) or nil, -- a fixed port, or a free one
    lua_path = repo_root() .. "/?.lua" .. tree_path,
    lua_cpath = tree_cpath,
    spec_path = false, -- the sandbox loads nothing from spec/
    setup = function(prefix)
      write_file(prefix .. "/sandbox-config.json", assert(json.encode(config)))
    end,
  }
  local sb = { srv = srv, port = srv.port, endpoint = "http://127.0.0.1:" .. srv.port, data_dir = config.data_dir,
    config = config }
  function sb.stop() srv:stop() end
  function sb.error_log() return srv:error_log() end
  return sb
end

---------------------------------------------------------------------------------------------------------------
-- The command line
---------------------------------------------------------------------------------------------------------------

local function parse_args(argv)
  local o = { overrides = {} }
  local i = 2
  while i <= #argv do
    local a, v = argv[i], argv[i + 1]
    if a == "--port" then o.overrides.port = tonumber(v) or error("--port needs a number", 0)
    elseif a == "--data" then o.overrides.data_dir = v or error("--data needs a folder", 0)
    elseif a == "--config" then o.config_file = v or error("--config needs a file", 0)
    else error("unknown option " .. tostring(a) .. " (use --port N, --data DIR, --config FILE)", 0) end
    i = i + 2
  end
  return o
end

local function own_pid()
  return tonumber((read_file("/proc/self/stat") or ""):match("^(%d+)"))
end

local function alive(pid)
  local stat = pid and read_file("/proc/" .. math.floor(pid) .. "/stat")
  return stat ~= nil and stat:match(".*%)%s+(%a)") ~= "Z"
end

local function files_for(o)
  local c = sandbox_config.resolve({ file = o.config_file, overrides = o.overrides })
  local dir = absolute(c.data_dir)
  return dir .. "/sandbox.run.json", dir .. "/sandbox.stop", dir
end

local function running(run_file)
  local info = json.decode(read_file(run_file) or "")
  if type(info) == "table" and alive(info.supervisor) then return info end
  return nil
end

-- As root nginx would run the sandbox's workers as root (tools/nginx.lua: `user root;`, since "nobody" may not
-- read the repository): refused, unless ESSBASIC_SANDBOX_AS_ROOT=1 says this is a throwaway container.
local function refuse_root()
  if own_uid() == 0 and os.getenv("ESSBASIC_SANDBOX_AS_ROOT") ~= "1" then
    error("the sandbox does not run as root (its nginx workers would too); run it as your own user, or set "
      .. "ESSBASIC_SANDBOX_AS_ROOT=1 in a throwaway container", 0)
  end
end

local function serve(o)
  refuse_root()
  local run_file, stop_file, dir = files_for(o)
  if running(run_file) then error("a sandbox already runs with the data folder " .. dir, 0) end
  os.remove(stop_file)
  local sb = M.start(o)
  local info = { endpoint = sb.endpoint, file_endpoint = sb.endpoint, port = sb.port, data_dir = sb.data_dir,
    supervisor = own_pid(), nginx = sb.srv.pid, error_log = sb.srv.prefix .. "/error.log" }
  write_file(run_file, json.encode(info))
  io.stdout:write("essbasic sandbox listening on ", sb.endpoint, " (API and file endpoint), data in ",
    sb.data_dir, "\n")
  io.stdout:flush()
  local function wait_for_stop()
    while not read_file(stop_file) do
      if not alive(sb.srv.pid) then
        io.stderr:write("essbasic sandbox: nginx exited unexpectedly\n", sb.error_log(), "\n")
        return 1
      end
      core.sleep(0.2)
    end
    return 0
  end
  -- The lua5.4 interpreter turns Ctrl-C into an "interrupted!" error: catch it and still stop nginx.
  local waited, status = pcall(wait_for_stop)
  if not waited then status = 130 end
  sb.stop()
  os.remove(run_file)
  os.remove(stop_file)
  io.stdout:write("essbasic sandbox stopped\n")
  return status
end

local function stop(o)
  local run_file, stop_file = files_for(o)
  local info = running(run_file)
  if not info then
    io.stdout:write("essbasic sandbox: not running\n")
    return 0
  end
  write_file(stop_file, "stop\n")
  local deadline = core.monotonic() + 15
  while alive(info.supervisor) and core.monotonic() < deadline do core.sleep(0.1) end
  if alive(info.supervisor) then
    io.stderr:write("essbasic sandbox: the supervisor ", info.supervisor, " did not stop\n")
    return 1
  end
  return 0
end

-- The data folder, made private (or refused), printed for sandbox/run (its log goes there).
local function data_dir(o)
  refuse_root()
  local _, _, dir = files_for(o)
  assert(M.private_folder(dir))
  io.stdout:write(dir, "\n")
  return 0
end

local function status(o)
  local info = running((files_for(o)))
  if not info then
    io.stdout:write("essbasic sandbox: not running\n")
    return 3
  end
  io.stdout:write("essbasic sandbox running on ", info.endpoint, " (data ", info.data_dir, ", nginx pid ",
    tostring(info.nginx), ", log ", info.error_log, ")\n")
  return 0
end

-- Shell assignments for a client of the running sandbox (its endpoint, the first key pair and AppId), for eval.
local function client_env(o)
  local run_file = files_for(o)
  local info = running(run_file)
  if not info then
    io.stderr:write("essbasic sandbox: not running\n")
    return 3
  end
  local c = sandbox_config.resolve({ file = o.config_file, overrides = o.overrides })
  local cred = c.credentials[1]
  for _, kv in ipairs({ { "ESSBASIC_ENDPOINT", info.endpoint }, { "ESSBASIC_FILE_ENDPOINT", info.file_endpoint },
    { "TENCENTCLOUD_SECRET_ID", cred.secret_id }, { "TENCENTCLOUD_SECRET_KEY", cred.secret_key },
    { "ESSBASIC_APP_ID", cred.apps[1] } }) do
    io.stdout:write("export ", kv[1], "=", shell_quote(kv[2]), "\n")
  end
  return 0
end

local function main(argv)
  local cmd = argv[1]
  local ok, o = pcall(parse_args, argv)
  if not ok then
    io.stderr:write("sandbox: ", tostring(o), "\n")
    return 2
  end
  local commands = { serve = serve, stop = stop, status = status, env = client_env, ["data-dir"] = data_dir }
  local fn = commands[cmd]
  if not fn then
    io.stderr:write("usage: sandbox/run start|stop|status|foreground [--port N] [--data DIR] [--config FILE]\n")
    return 2
  end
  local done, code = pcall(fn, o)
  if not done then
    io.stderr:write("sandbox: ", tostring(code), "\n")
    return 1
  end
  return code
end

if arg and arg[0] and arg[0]:match("sandbox/launch%.lua$") then
  os.exit(main(arg))
end

return M
