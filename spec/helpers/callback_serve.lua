--[==[ `essbasic callback serve` for the specs, started as a user starts it (bin/essbasic through helpers.cli), in a
session of its own whose id (its first shell's pid, written to a file: setsid may fork) names the process group
stopped at the end; holding none of busted's pipes. A port taken between the pick and nginx's bind (other servers
start on this machine too): another port.

  local receiver = require("helpers.callback_serve").start(cli, { key = path, token = path, store = path })
  receiver.port, receiver.url   -- http://127.0.0.1:PORT/
  receiver:stop()               -- SIGTERM to the session; true once nginx is gone and the port closed
]==]

local sandbox = require("helpers.sandbox")
local cli_helper = require("helpers.cli")
local nginx = require("tools.nginx")

local M = {}

-- The repository's root: the working directory, as for every command helpers.cli runs (bin/essbasic).
local function root()
  local p = assert(io.popen("pwd"))
  local dir = p:read("*l")
  p:close()
  return dir
end

local Receiver = {}
Receiver.__index = Receiver

function M.start(cli, o)
  local dir = cli.dir
  for attempt = 1, 5 do
    local port = nginx.pick_ports(1)[1]
    local cmd = cli:command({ "callback", "serve", "--key", "@" .. o.key, "--token", "@" .. o.token, "--store",
      o.store, "--port", tostring(port) }, { ESSBASIC_NGINX_LUA_CPATH = root() .. "/build/5.1/?.so;;" })
    local sid_file = dir .. "/sid" .. attempt
    os.execute("setsid sh -c " .. cli_helper.quote("echo $$ >" .. sid_file .. "; exec " .. cmd .. " >" .. dir
      .. "/serve.out 2>" .. dir .. "/serve.err") .. " </dev/null >/dev/null 2>&1 &")
    local sid = assert(sandbox.wait_for(function() return tonumber(nginx.read_file(sid_file) or "") end, 10))
    local up = sandbox.wait_for(function()
      if not nginx.pid_alive(sid) then return "exited" end
      return nginx.accepts(port) and "up"
    end, 10)
    if up == "up" then
      return setmetatable({ sid = sid, port = port, url = "http://127.0.0.1:" .. port .. "/" }, Receiver)
    end
    local log = tostring(nginx.read_file(dir .. "/serve.err"))
    assert(log:find("Address already in use", 1, true), "the receiver did not come up: " .. log)
  end
  error("no free port for the receiver")
end

function Receiver:stop()
  os.execute("kill -TERM -" .. self.sid .. " 2>/dev/null") -- the session's group: essbasic, sh, nginx
  local sid, port = self.sid, self.port
  return sandbox.wait_for(function() return not nginx.pid_alive(sid) end, 10) ~= nil
    and sandbox.wait_for(function() return not nginx.accepts(port) end, 10) ~= nil
end

return M
