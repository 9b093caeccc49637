--[==[ Throwaway nginx (+ lua-nginx-module, LuaJIT) servers on loopback, for specs, the sandbox and benchmarks.
It lives in tools/ (not spec/) because the sandbox runs on it too, and the sandbox loads nothing from spec/.
Callers put the repository root on package.path (tools/run-tests, sandbox/run and bench/benchlib.lua do).

  local nginx = require("tools.nginx")
  local srv = nginx.start{
    http = [[                       -- text for the http {} block; %PORT%, %PORT2%, ... %PREFIX% are substituted
      server {
        listen 127.0.0.1:%PORT%;
        location / { content_by_lua_block { ngx.say("hi") } }
      }
    ]],
    main = "...",                   -- optional text for the main context (env, thread pools, ...)
    lua_path = "/x/?.lua;/y/?.lua", -- optional extra lua_package_path entries (before the repo's)
    lua_cpath = "/x/?.so",          -- optional extra lua_package_cpath entries (before the repo's build/5.1)
    ports = 2,                      -- how many free loopback ports to pick (default 1)
    port = 8780,                    -- optional: a fixed first port (%PORT%) instead of a free one; no retry
    workers = 2,                    -- optional: worker_processes (default 1)
    spec_path = false,              -- optional: leave the repo's spec/ off lua_package_path (default: on it)
    setup = function(prefix) end,   -- optional: runs before nginx starts (write certs, data files into prefix)
  }
  srv.port, srv.ports[2], srv.prefix   -- first port, all ports, the server's private temp directory
  srv:error_log()                      -- the error log's text (level info)
  srv:stop()                           -- graceful quit, waits until the master is gone; idempotent

Each server gets a fresh prefix from `mktemp -d` holding its nginx.conf, pid file, logs and temp paths; nothing in
/etc/nginx is used. The Debian ndk and lua modules are loaded from /usr/share/nginx/modules; lua_package_path
covers the repo's lua/ and spec/ directories (opts.spec_path = false leaves spec/ out, as the sandbox does) and
lua_package_cpath its build/5.1 (nginx runs LuaJIT). As root the
workers run as root too (`user root;`), since the default "nobody" may not be able to read the repo.

Ports are picked at random in 20000-60000; when nginx cannot bind one ("Address already in use") new ones are
tried, a bounded number of times. start() returns once the first port accepts connections and raises (with the
error log's tail) when nginx does not come up within about 5 s. Call srv:stop() in a finally/teardown; a server
left running is stopped when its object is garbage-collected or the Lua state closes, as a safety net only.
]==]

local io_open, io_popen, os_execute = io.open, io.popen, os.execute
local string_format, table_concat = string.format, table.concat
local math_random = math.random

local NGINX = "/usr/sbin/nginx"
local MODULES = {
  "/usr/share/nginx/modules/ndk_http_module.so",
  "/usr/share/nginx/modules/ngx_http_lua_module.so",
}
local START_ATTEMPTS = 8
local READY_SECONDS = 5
local STOP_SECONDS = 5

local M = {}

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function run(cmd)
  local ok, how, code = os_execute(cmd)
  if type(ok) == "number" then return ok == 0 end -- Lua 5.1 / LuaJIT without 5.2 compat
  return ok == true and how == "exit" and code == 0
end

local function capture(cmd)
  local p = assert(io_popen(cmd))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function read_file(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, text)
  local f = assert(io_open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

local function short_pause()
  os_execute("sleep 0.05")
end

-- The repo root, from this file's own path (tools/nginx.lua), made absolute.
local function repo_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/tools/[^/]+$") or "."
  if dir:sub(1, 1) ~= "/" then
    dir = capture("cd " .. shell_quote(dir) .. " && pwd")
  end
  return dir
end

local seeded = false
local function seed_random()
  if seeded then return end
  seeded = true
  -- os.time alone repeats across processes started in the same second (both Lua suites, parallel runs).
  local stat = read_file("/proc/self/stat") or ""
  local pid = tonumber(stat:match("^(%d+)")) or 0
  math.randomseed(os.time() * 1000 + pid % 1000 + math.floor((os.clock() * 1e6) % 1000))
end

local function accepts(port)
  return run(string_format("timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null", port))
end

-- Skips ports something already listens on; nginx itself spends 2.5 s retrying a bind before it gives up.
local function pick_ports(n, fixed)
  local ports, seen = { fixed }, {}
  while #ports < n do
    local p = math_random(20000, 60000)
    if not seen[p] then
      seen[p] = true
      if not accepts(p) then ports[#ports + 1] = p end
    end
  end
  return ports
end

-- A zombie counts as gone: the daemonized master is reaped by pid 1, which in some containers takes a second or more.
local function pid_alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local state = stat:match(".*%)%s+(%a)")
  return state ~= nil and state ~= "Z"
end

local function substitute(text, ports, prefix)
  text = text:gsub("%%PORT(%d*)%%", function(i)
    local p = ports[tonumber(i) or 1]
    if not p then error("nginx helper: %PORT" .. i .. "% used but only " .. #ports .. " port(s) requested", 0) end
    return tostring(p)
  end)
  return (text:gsub("%%PREFIX%%", function() return prefix end))
end

local function build_conf(opts, ports, prefix, root, as_root)
  local lua_path = {}
  if opts.lua_path and opts.lua_path ~= "" then lua_path[#lua_path + 1] = opts.lua_path end
  lua_path[#lua_path + 1] = root .. "/lua/?.lua"
  lua_path[#lua_path + 1] = root .. "/lua/?/init.lua"
  if opts.spec_path ~= false then lua_path[#lua_path + 1] = root .. "/spec/?.lua" end
  local lines = {
    "daemon on;",
    "master_process on;",
    "worker_processes " .. math.floor(opts.workers or 1) .. ";",
    "pid " .. prefix .. "/nginx.pid;",
    "error_log " .. prefix .. "/error.log info;",
    as_root and "user root;" or "",
  }
  for _, m in ipairs(MODULES) do lines[#lines + 1] = "load_module " .. m .. ";" end
  lines[#lines + 1] = substitute(opts.main or "", ports, prefix)
  lines[#lines + 1] = "events { worker_connections 1024; }"
  lines[#lines + 1] = "http {"
  lines[#lines + 1] = "  access_log off;"
  for _, t in ipairs({ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" }) do
    lines[#lines + 1] = string_format("  %s_temp_path %s/%s_temp;", t, prefix, t)
  end
  lines[#lines + 1] = string_format('  lua_package_path "%s;;";', table_concat(lua_path, ";"))
  local cpath = (opts.lua_cpath and opts.lua_cpath ~= "") and (opts.lua_cpath .. ";") or ""
  lines[#lines + 1] = string_format('  lua_package_cpath "%s%s/build/5.1/?.so;;";', cpath, root)
  lines[#lines + 1] = substitute(opts.http or "", ports, prefix)
  lines[#lines + 1] = "}"
  return table_concat(lines, "\n") .. "\n"
end

local function tail(text, n)
  local lines = {}
  for line in (text or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
  return table_concat(lines, "\n", math.max(1, #lines - n + 1))
end

local Server = {}
Server.__index = Server

function Server:error_log()
  return read_file(self.prefix .. "/error.log") or self.saved_log or ""
end

local function wait_gone(pid, seconds)
  local deadline = os.time() + seconds
  while pid_alive(pid) do
    if os.time() > deadline then return false end
    short_pause()
  end
  return true
end

-- Graceful quit (in-flight requests finish), then TERM, then KILL, each bounded; only this server's master pid.
function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = self.pid
  if pid and pid_alive(pid) then
    run(string_format("%s -p %s -c %s -s quit -e %s 2>/dev/null", NGINX, shell_quote(self.prefix),
      shell_quote(self.prefix .. "/nginx.conf"), shell_quote(self.prefix .. "/error.log")))
    if not wait_gone(pid, STOP_SECONDS) then
      run(string_format("kill -TERM %d 2>/dev/null", pid))
      if not wait_gone(pid, 2) then run(string_format("kill -KILL %d 2>/dev/null", pid)) end
    end
  end
  self.saved_log = read_file(self.prefix .. "/error.log")
  if not os.getenv("ESSBASIC_KEEP_NGINX") then run("rm -rf " .. shell_quote(self.prefix)) end
end

-- Runs finalize() when obj (an instance of class) is collected: tables take __gc on 5.4, proxies on LuaJIT. Test
-- servers use it so that a forgotten one is stopped.
function M.on_collect(obj, class, finalize)
  if newproxy then -- luacheck: ignore 113 (LuaJIT / 5.1 only)
    local proxy = newproxy(true) -- luacheck: ignore 113
    getmetatable(proxy).__gc = finalize
    obj.finalizer = proxy
  else
    setmetatable(obj, { __index = class, __gc = finalize })
  end
end

local function attach_finalizer(srv)
  M.on_collect(srv, Server, function() srv:stop() end)
end

function M.start(opts)
  if type(opts) ~= "table" then error("nginx.start: opts must be a table", 2) end
  seed_random()
  local root = repo_root()
  local as_root = capture("id -u") == "0"
  local nports = opts.ports or 1
  local last_failure
  for _ = 1, START_ATTEMPTS do
    local ports = pick_ports(nports, opts.port)
    local prefix = capture("mktemp -d /tmp/essbasic-nginx.XXXXXX")
    assert(prefix:match("^/tmp/essbasic%-nginx%."), "mktemp failed")
    local conf = prefix .. "/nginx.conf"
    local prepared, why = pcall(function()
      if opts.setup then opts.setup(prefix) end
      write_file(conf, build_conf(opts, ports, prefix, root, as_root))
    end)
    if not prepared then
      run("rm -rf " .. shell_quote(prefix))
      error(why, 2)
    end
    local started = run(string_format("%s -p %s -c %s -e %s 2>%s", NGINX, shell_quote(prefix), shell_quote(conf),
      shell_quote(prefix .. "/error.log"), shell_quote(prefix .. "/start.log")))
    local log = (read_file(prefix .. "/start.log") or "") .. (read_file(prefix .. "/error.log") or "")
    if started then
      local srv = setmetatable({ port = ports[1], ports = ports, prefix = prefix }, Server)
      local deadline = os.time() + READY_SECONDS
      while not srv.pid and os.time() <= deadline do
        srv.pid = tonumber(read_file(prefix .. "/nginx.pid") or "")
        if not srv.pid then short_pause() end
      end
      attach_finalizer(srv)
      while srv.pid and not accepts(srv.port) and os.time() <= deadline do short_pause() end
      if srv.pid and accepts(srv.port) then return srv end
      local text = srv:error_log()
      srv:stop()
      error("nginx did not come up on port " .. srv.port .. ":\n" .. tail(text, 20), 2)
    end
    last_failure = log
    run("rm -rf " .. shell_quote(prefix))
    -- Retry only when one of our random ports was taken; a clash on a port of the caller's text is final.
    local busy = tonumber(log:match("bind%(%) to [^\n]-:(%d+) failed %(98: Address already in use%)"))
    local ours = false
    for i, p in ipairs(ports) do ours = ours or (p == busy and not (i == 1 and opts.port)) end
    if not ours then
      error("nginx failed to start:\n" .. tail(log, 20), 2)
    end
  end
  error("nginx: no free port after " .. START_ATTEMPTS .. " attempts:\n" .. tail(last_failure, 5), 2)
end

M.NGINX = NGINX
-- For the other loopback servers of the specs (helpers/proxy.lua): the same port picking and liveness checks.
M.pick_ports, M.accepts, M.pid_alive, M.seed_random = pick_ports, accepts, pid_alive, seed_random
M.capture, M.read_file = capture, read_file -- read_file: nil for a missing file
return M
