--[==[ A throwaway redis-server on loopback, for the Redis specs and bench/ratelimit_redis.lua.

  local redis_server = require("tools.redis_server")
  local srv = redis_server.start{ password = "pw" }  -- a random free port, its own temp dir, no persistence
  srv.port, srv.url, srv.dir      -- srv.url = "redis://[:pw@]127.0.0.1:PORT/0"
  srv:cli("GET", "k")             -- redis-cli's answer (raw), through the server's port and password
  srv:stop()                      -- stops the server (TERM, then KILL); the port and dir are kept: srv:start()
  srv:start()                     -- starts it again on the same port (an outage that ends)
  srv:pause(), srv:resume()       -- SIGSTOP / SIGCONT: a server that accepts connections and never answers
  srv:close()                     -- stops it and removes the dir; idempotent, call it in teardown

Every server listens on 127.0.0.1 only. A server left running is stopped when its object is garbage-collected
or the Lua state closes, as a safety net only.
]==]

local nginx = require("tools.nginx")

local M = {}

local READY_SECONDS = 5

local function run(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end
  return ok == true and how == "exit" and code == 0
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local Server = {}
Server.__index = Server

local function wait(pred, seconds)
  local deadline = os.time() + seconds
  while not pred() do
    if os.time() > deadline then return false end
    os.execute("sleep 0.02")
  end
  return true
end

function Server:pid()
  return tonumber(nginx.read_file(self.dir .. "/redis.pid") or "")
end

function Server:start()
  assert(not self.closed, "this redis server was closed")
  if self.running then return self end
  local args = { "redis-server", "--bind", "127.0.0.1", "--port", tostring(self.port), "--dir", self.dir,
    "--save", "''", "--appendonly", "no", "--daemonize", "yes", "--pidfile", self.dir .. "/redis.pid",
    "--logfile", self.dir .. "/redis.log" }
  if self.password then
    args[#args + 1] = "--requirepass"
    args[#args + 1] = quote(self.password)
  end
  os.remove(self.dir .. "/redis.pid")
  assert(run(table.concat(args, " ") .. " >/dev/null 2>&1"), "redis-server did not start")
  local up = wait(function() return self:pid() and nginx.accepts(self.port) end, READY_SECONDS)
  if not up then
    error("redis-server did not come up on port " .. self.port .. ":\n" ..
      (nginx.read_file(self.dir .. "/redis.log") or ""), 2)
  end
  self.running = true
  return self
end

function Server:signal(sig)
  local pid = self:pid()
  if pid then run("kill -" .. sig .. " " .. pid .. " 2>/dev/null") end
end

function Server:stop()
  if not self.running then return end
  self.running = false
  local pid = self:pid()
  if not pid then return end
  run("kill -CONT " .. pid .. " 2>/dev/null")
  run("kill -TERM " .. pid .. " 2>/dev/null")
  if not wait(function() return not nginx.pid_alive(pid) end, 5) then
    run("kill -KILL " .. pid .. " 2>/dev/null")
    wait(function() return not nginx.pid_alive(pid) end, 2)
  end
  os.remove(self.dir .. "/redis.pid")
end

function Server:pause() self:signal("STOP") end
function Server:resume() self:signal("CONT") end

function Server:cli(...)
  local parts = { "redis-cli", "--raw", "-h", "127.0.0.1", "-p", tostring(self.port) }
  if self.password then
    parts[#parts + 1] = "--no-auth-warning -a " .. quote(self.password)
  end
  for _, a in ipairs({ ... }) do parts[#parts + 1] = quote(a) end
  return nginx.capture(table.concat(parts, " ") .. " 2>&1")
end

function Server:close()
  if self.closed then return end
  self:stop()
  self.closed = true
  run("rm -rf " .. quote(self.dir))
end

local function attach_finalizer(srv)
  nginx.on_collect(srv, Server, function() srv:close() end)
end

function M.start(opts)
  opts = opts or {}
  nginx.seed_random()
  local dir = nginx.capture("mktemp -d /tmp/essbasic-redis.XXXXXX")
  assert(dir:match("^/tmp/essbasic%-redis%."), "mktemp failed")
  local last
  for _ = 1, 5 do
    local port = nginx.pick_ports(1)[1]
    local srv = setmetatable({ port = port, dir = dir, password = opts.password }, Server)
    srv.url = "redis://" .. (opts.password and (":" .. opts.password .. "@") or "") .. "127.0.0.1:" .. port .. "/0"
    local ok, err = pcall(srv.start, srv)
    if ok then
      attach_finalizer(srv)
      return srv
    end
    last = err
  end
  run("rm -rf " .. quote(dir))
  error(last, 2)
end

return M
