--[==[ A TCP relay on loopback that misbehaves right after its upstream closes a connection: the moment a server
restarts, as a client's next connection attempt sees it (issue 22). Real sockets, in a process of its own (LuaSocket).

  local gate = require("helpers.gate").start{ upstream_port = 8443, mode = "refuse", hold = 0.1, times = 1,
    every = 1 }
  gate.port          -- where clients connect (127.0.0.1)
  gate:stop()        -- idempotent; call it in a teardown

Bytes are relayed both ways untouched (TLS goes through). After every `every`-th connection the upstream closes
(not the client), the gate, `times` times at most:
  mode = "refuse"  stops listening for `hold` seconds: a connection attempt in that time is refused (ECONNREFUSED)
  mode = "reset"   accepts the next connection and resets it at once (RST), before any byte
Run as a script: lua gate.lua UPSTREAM_PORT MODE HOLD TIMES EVERY; it prints its port on stdout, and stops when its
stdin closes (so it never outlives the spec that started it). GATE_DEBUG=1: it logs each refusal, and stop() shows
the log.
]==]

local M = {}

local function serve(upstream_port, mode, hold, times, every)
  local socket = require("socket")
  local function listen(port)
    local s, err = socket.bind("127.0.0.1", port or 0)
    if not s then
      io.stdout:write("gate: cannot listen: ", tostring(err), "\n")
      io.stdout:flush()
      return nil
    end
    s:settimeout(0)
    return s
  end
  local server = assert(listen())
  local _, port = server:getsockname()
  io.stdout:write(port, "\n")
  io.stdout:flush()
  local peer, is_upstream = {}, {}
  local reopen_at, reset_next, upstream_closes = nil, false, 0
  local function drop(s)
    local p = peer[s]
    peer[s], is_upstream[s] = nil, nil
    s:close()
    if p then
      peer[p], is_upstream[p] = nil, nil
      p:close()
    end
  end
  local stdin_closed = false
  while not stdin_closed do
    local watch = {}
    if server then watch[#watch + 1] = server end
    for s in pairs(peer) do watch[#watch + 1] = s end
    local readable = socket.select(watch, nil, 0.01)
    for _, s in ipairs(readable) do
      if s == server then
        local c = server:accept()
        if c and reset_next then
          reset_next = false
          c:setoption("linger", { on = true, timeout = 0 })
          c:close()
        elseif c then
          local u = socket.tcp()
          if u:connect("127.0.0.1", upstream_port) then
            c:settimeout(0)
            u:settimeout(0)
            peer[c], peer[u], is_upstream[u] = u, c, true
          else
            c:close()
          end
        end
      elseif peer[s] then
        local data, err, partial = s:receive(65536)
        data = data or partial
        if data and #data > 0 then
          local p = peer[s]
          p:settimeout(5)
          p:send(data)
          p:settimeout(0)
        end
        if err == "closed" then
          if is_upstream[s] then upstream_closes = upstream_closes + 1 end
          -- (a close during a refusal counts, but the refusal is not made longer)
          if is_upstream[s] and times > 0 and upstream_closes % every == 0 and (server or mode ~= "refuse") then
            times = times - 1
            if mode == "refuse" then
              server:close()
              server, reopen_at = nil, socket.gettime() + hold
              if os.getenv("GATE_DEBUG") then io.stdout:write("refuse ", socket.gettime(), "\n") end
            else
              reset_next = true
            end
          end
          drop(s)
        end
      end
    end
    if reopen_at and socket.gettime() >= reopen_at then
      server = listen(port)
      reopen_at = not server and socket.gettime() + 0.01 or nil -- try again shortly
      if os.getenv("GATE_DEBUG") then io.stdout:write("open ", socket.gettime(), "\n") io.stdout:flush() end
    end
    -- The parent holds the write end of our stdin: when it goes (spec done, or killed), so do we.
    local r = socket.select({ { getfd = function() return 0 end } }, nil, 0)
    if r[1] and io.stdin:read(0) == nil then stdin_closed = true end
  end
end

local Gate = {}
Gate.__index = Gate

-- opts: upstream_port, mode ("refuse" | "reset"), hold (seconds, refuse), times (default 1), every (default 1).
function M.start(opts)
  local here = debug.getinfo(1, "S").source:match("^@(.*)$")
  local lua = os.getenv("ESSBASIC_LUA") or "lua5.4"
  local fifo = os.tmpname()
  os.remove(fifo)
  assert(os.execute("mkfifo " .. fifo))
  -- stdin: a FIFO this process keeps open for writing; stdout: the port, read back through a file.
  local out = os.tmpname()
  local cmd = string.format("%s %s %d %s %s %d %d < %s > %s 2>&1 &", lua, here, opts.upstream_port,
    opts.mode or "refuse", tostring(opts.hold or 0.1), opts.times or 1, opts.every or 1, fifo, out)
  assert(os.execute(cmd))
  local keep = assert(io.open(fifo, "w")) -- opens once the gate opened its end
  local port
  for _ = 1, 500 do
    local f = io.open(out)
    local line = f and f:read("*l")
    if f then f:close() end
    port = tonumber(line)
    if port then break end
    require("socket").sleep(0.01)
  end
  assert(port, "the gate did not start")
  return setmetatable({ port = port, keep = keep, fifo = fifo, out = out }, Gate)
end

function Gate:stop()
  if self.keep then
    self.keep:close()
    self.keep = nil
    if os.getenv("GATE_DEBUG") then
      local f = io.open(self.out)
      if f then io.stderr:write("gate: ", f:read("*a"), "\n") f:close() end
    end
    os.remove(self.fifo)
    os.remove(self.out)
  end
end

if arg and arg[0] and arg[0]:match("gate%.lua$") then
  serve(tonumber(arg[1]), arg[2], tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]) or 1)
end

return M
