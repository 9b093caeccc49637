--[==[ A real HTTP proxy on loopback for the proxy specs: Debian's tinyproxy (package tinyproxy-bin), which tunnels
https:// requests through CONNECT, forwards http:// ones given in absolute form, and logs each request line.

  local proxy = require("helpers.proxy").start()   -- opts.basic_auth = "user secret": 407 for requests without it
  proxy.url          -- "http://127.0.0.1:PORT"
  proxy:requests()   -- the request lines it has logged so far, in order: { "CONNECT 127.0.0.1:443 HTTP/1.1", ... }
  proxy:stop()       -- idempotent; call it in a teardown

Each proxy gets its own directory from `mktemp -d` (configuration, log); when it does not come up (its port
turned out to be taken), another port is tried, a bounded number of times.
]==]

local nginx = require("tools.nginx")
local files = require("helpers.files")

local format = string.format

local TINYPROXY = "/usr/bin/tinyproxy"
local START_ATTEMPTS = 8
local READY_SECONDS = 5

local M = {}

local Proxy = {}
Proxy.__index = Proxy

local capture = nginx.capture
local write_file = files.write

local function read_file(path)
  return nginx.read_file(path) or ""
end

local function config(dir, port, opts)
  return table.concat({
    "Port " .. port,
    "Listen 127.0.0.1",
    "Timeout 30",
    "Allow 127.0.0.1",
    'LogFile "' .. dir .. '/tinyproxy.log"',
    "LogLevel Connect", -- logs each connection and request line, nothing about the bytes tunnelled
    "MaxClients 64",
    -- no ConnectPort lines: CONNECT is allowed to any port (the test servers use random ones)
    opts.basic_auth and ("BasicAuth " .. opts.basic_auth) or "",
  }, "\n") .. "\n"
end

function M.start(opts)
  opts = opts or {}
  assert(io.open(TINYPROXY, "rb"), TINYPROXY .. " is missing (Debian package tinyproxy-bin)"):close()
  nginx.seed_random()
  local dir = capture("mktemp -d /tmp/essbasic-proxy.XXXXXX")
  assert(dir:match("^/tmp/essbasic%-proxy%."), "mktemp failed")
  local last_log = ""
  for _ = 1, START_ATTEMPTS do
    local port = nginx.pick_ports(1)[1]
    write_file(dir .. "/tinyproxy.conf", config(dir, port, opts))
    os.remove(dir .. "/tinyproxy.log")
    -- -d keeps it in the foreground, so its pid is the one started here
    local pid = tonumber(capture(format("%s -d -c %s/tinyproxy.conf >%s/out.log 2>&1 & echo $!", TINYPROXY, dir,
      dir)))
    local deadline = os.time() + READY_SECONDS
    while nginx.pid_alive(pid) and not nginx.accepts(port) and os.time() <= deadline do
      os.execute("sleep 0.05")
    end
    if nginx.pid_alive(pid) and nginx.accepts(port) then
      return setmetatable({ url = "http://127.0.0.1:" .. port, port = port, pid = pid, dir = dir }, Proxy)
    end
    os.execute(format("kill -KILL %d 2>/dev/null", pid))
    -- tinyproxy says only "Could not create listening sockets" when its port is taken (by a client socket that
    -- happens to use it as its local port, say): every failure gets another port, a bounded number of times
    last_log = read_file(dir .. "/out.log") .. read_file(dir .. "/tinyproxy.log")
  end
  os.execute("rm -rf '" .. dir .. "'")
  error("tinyproxy did not start:\n" .. last_log:sub(-1500), 2)
end

-- Runs fn(proxy1, proxy2, ...) with one proxy started per options table in `list` ({} for a plain one), then
-- stops them all, whether fn returned or raised (its error is raised again).
function M.with(list, fn)
  local started = {}
  local ok, err = pcall(function()
    for i, opts in ipairs(list) do started[i] = M.start(opts) end
    fn((table.unpack or unpack)(started)) -- unpack: LuaJIT / 5.1
  end)
  for _, p in ipairs(started) do p:stop() end
  if not ok then error(err, 0) end
end

function Proxy:requests()
  local lines = {}
  for line in read_file(self.dir .. "/tinyproxy.log"):gmatch("Request %(file descriptor %d+%): ([^\n]+)") do
    lines[#lines + 1] = line
  end
  return lines
end

function Proxy:stop()
  if self.stopped then return end
  self.stopped = true
  os.execute(format("kill -TERM %d 2>/dev/null", self.pid))
  local deadline = os.time() + 3
  while nginx.pid_alive(self.pid) and os.time() <= deadline do os.execute("sleep 0.05") end
  if nginx.pid_alive(self.pid) then os.execute(format("kill -KILL %d 2>/dev/null", self.pid)) end
  os.execute("rm -rf '" .. self.dir .. "'")
end

return M
