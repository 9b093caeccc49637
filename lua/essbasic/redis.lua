-- A Redis connection for the fleet-wide rate limit and the callback store, through a real client: inside nginx
-- lua-resty-redis over cosockets (Debian's lua-nginx-redis, `nginx.redis`; OpenResty's `resty.redis`), in plain
-- Lua Debian's lua-redis (redis-lua over LuaSocket). No RESP parsing here. Both are used for one thing only: run a
-- server-side Lua script by its SHA1 (EVALSHA), sending the source (EVAL) when the server does not know it, with
-- short timeouts. Every failure is `nil, err` with a one-line message that names the server but never the
-- password; nothing here raises after M.parse.
--
-- Why lua-redis and not hiredis through the C core in plain Lua: hiredis would make libhiredis a build and link
-- dependency of every user of essbasic, most of whom never use Redis; lua-redis is pure Lua on LuaSocket,
-- installed only by those who want a fleet, and its cost (a few µs per round trip, see bench/) is far below one
-- API call.

local type, tostring, tonumber, error, pairs, ipairs, pcall, rawget, setmetatable = type, tostring, tonumber,
  error, pairs, ipairs, pcall, rawget, setmetatable
local match, find, gsub, format, char = string.match, string.find, string.gsub, string.format, string.char
local unpack = table.unpack or unpack -- luacheck: ignore 113 (unpack: Lua 5.1 / LuaJIT)
local remove_url_credentials = require("essbasic.url_credentials").remove
local runtime = require("essbasic.runtime")

local M = {}

M.DEFAULT_PORT = 6379
M.DEFAULT_TIMEOUT = 0.1 -- seconds, for connecting, sending and reading each: a limiter must not hold a call up
M.KEEPALIVE_IDLE = 60000 -- nginx: ms a pooled connection may stay idle
M.KEEPALIVE_POOL = 64    -- nginx: pooled connections per worker and server

-- Table form of a server: every key it may have (the URL form gives the same).
M.KEYS = { url = "string", host = "string", port = "number", db = "number", username = "string",
  password = "string", prefix = "string", timeout = "number" }

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- "redis://[[user]:password@]host[:port][/db][?timeout=s&prefix=p]" → fields, or raises (a configuration error).
local function parse_url(url, where, level)
  local rest = match(url, "^redis://(.+)$")
  if not rest then error(where .. ": a Redis URL looks like redis://[:password@]host:port/db, got '"
    .. remove_url_credentials(url) .. "'",
    level + 1) end
  local out = {}
  local query
  rest, query = match(rest, "^([^?]*)%??(.*)$")
  local userinfo, hostpart = match(rest, "^(.*)@([^@]*)$")
  if userinfo then
    local user, pass = match(userinfo, "^([^:]*):(.*)$")
    if user then
      if user ~= "" then out.username = unescape(user) end
      out.password = unescape(pass)
    else
      out.password = unescape(userinfo)
    end
    rest = hostpart
  end
  local host, port, db = match(rest, "^([^:/]+):?(%d*)/?(%d*)$")
  if not host then
    host, port, db = match(rest, "^%[([%x:]+)%]:?(%d*)/?(%d*)$") -- [::1]:6379
  end
  if not host then error(where .. ": cannot read host, port and db from the Redis URL", level + 1) end
  out.host = host
  if port ~= "" then out.port = tonumber(port) end
  if db ~= "" then out.db = tonumber(db) end
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    if k == "timeout" then
      out.timeout = tonumber(v)
      if not out.timeout then error(where .. ": the URL's timeout must be a number of seconds", level + 1) end
    elseif k == "prefix" then
      out.prefix = unescape(v)
    else
      error(where .. ": unknown Redis URL parameter '" .. k .. "'", level + 1)
    end
  end
  return out
end

-- A server description (URL or table) → { host, port, db, username, password, prefix, timeout, id }, or raises.
-- id (host:port/db) names the server in logs and keys the outage state; it never holds the password.
-- defaults: { prefix =, timeout = } for what neither form sets.
function M.parse(spec, where, defaults, level)
  level = (level or 1) + 1
  defaults = defaults or {}
  local fields
  if type(spec) == "string" then
    fields = parse_url(spec, where, level)
  elseif type(spec) == "table" then
    fields = {}
    for k, v in pairs(spec) do
      local want = M.KEYS[k]
      if not want then error(where .. ": unknown key '" .. tostring(k) .. "'", level) end
      if type(v) ~= want then error(where .. "." .. k .. " must be a " .. want .. ", got " .. type(v), level) end
      fields[k] = v
    end
    if fields.url then
      local from_url = parse_url(fields.url, where, level)
      fields.url = nil
      for k, v in pairs(from_url) do
        if fields[k] == nil then fields[k] = v end
      end
    end
  else
    error(where .. " must be a redis:// URL or a table", level)
  end
  local cfg = {
    host = fields.host or "127.0.0.1",
    port = fields.port or M.DEFAULT_PORT,
    db = fields.db or 0,
    username = fields.username,
    password = fields.password,
    prefix = fields.prefix or defaults.prefix or "essbasic:",
    timeout = fields.timeout or defaults.timeout or M.DEFAULT_TIMEOUT,
  }
  if cfg.port < 1 or cfg.port > 65535 or cfg.port % 1 ~= 0 then error(where .. ": bad Redis port", level) end
  if cfg.db < 0 or cfg.db % 1 ~= 0 then error(where .. ": the Redis db must be a whole number", level) end
  if cfg.timeout <= 0 then error(where .. ": the Redis timeout must be positive (seconds)", level) end
  cfg.id = (find(cfg.host, ":", 1, true) and ("[" .. cfg.host .. "]") or cfg.host) .. ":" .. cfg.port .. "/" .. cfg.db
  return cfg
end

-- A script: its source, and its SHA1 once known (nginx computes it; plain Lua asks the server once, SCRIPT LOAD).
function M.script(source)
  return { source = source }
end

local function hex(bin)
  return (gsub(bin, ".", function(c) return format("%02x", c:byte()) end))
end

-- Every argument goes as a string: redis-lua sends tostring(x), which on Lua 5.1 writes 1.7e+15 for a number.
local function argv(script_args, out, from)
  for i = 1, #script_args do out[from + i] = tostring(script_args[i]) end
  return out
end

-- AUTH and SELECT on a new connection; call(name, ...) sends one command → true, or nil and why.
local function login(cfg, call)
  local ok, err
  if cfg.password then
    if cfg.username then
      ok, err = call("auth", cfg.username, cfg.password)
    else
      ok, err = call("auth", cfg.password)
    end
    if not ok then return nil, "redis " .. cfg.id .. ": AUTH failed: " .. tostring(err) end
  end
  if cfg.db ~= 0 then
    ok, err = call("select", tostring(cfg.db))
    if not ok then return nil, "redis " .. cfg.id .. ": SELECT failed: " .. tostring(err) end
  end
  return true
end

-- ---------------------------------------------------------------------------------------------------------------
-- nginx: lua-resty-redis. One connection per use, taken from and given back to the cosocket pool; the pool's
-- name holds the db and a hash of the credentials, since a pooled connection keeps its SELECT and AUTH.

local Ngx = {}
Ngx.__index = Ngx

local resty_redis
local function load_resty()
  if resty_redis then return resty_redis end
  for _, name in ipairs({ "resty.redis", "nginx.redis" }) do
    local ok, mod = pcall(require, name)
    if ok and type(mod) == "table" and mod.new then
      resty_redis = mod
      return mod
    end
  end
  return nil
end

-- A reply that is an error from the server (`false, err` in resty.redis) leaves the connection usable; a network
-- failure (`nil, err`) does not.
local function ngx_attempt(self, script, keys, args)
  local red, err = resty_redis:new()
  if not red then return nil, "redis " .. self.cfg.id .. ": " .. tostring(err) end
  red:set_timeout(self.timeout_ms)
  local ok
  ok, err = red:connect(self.cfg.host, self.cfg.port, { pool = self.pool })
  if not ok then return nil, "redis " .. self.cfg.id .. ": connect: " .. tostring(err) end
  local reused = (red:get_reused_times() or 0) > 0
  if not reused then
    ok, err = login(self.cfg, function(name, ...) return red[name](red, ...) end)
    if not ok then
      red:close()
      return nil, err
    end
  end
  local n = #keys
  local cmd = { script.sha, n }
  for i = 1, n do cmd[2 + i] = keys[i] end
  argv(args, cmd, 2 + n)
  local res
  res, err = red:evalsha(unpack(cmd))
  if res == false and find(err or "", "NOSCRIPT", 1, true) then
    cmd[1] = script.source
    res, err = red:eval(unpack(cmd))
  end
  if res == nil then
    red:close()
    return nil, "redis " .. self.cfg.id .. ": " .. tostring(err), reused and err ~= "timeout"
  end
  red:set_keepalive(M.KEEPALIVE_IDLE, M.KEEPALIVE_POOL)
  if res == false then return nil, "redis " .. self.cfg.id .. ": " .. tostring(err) end
  if res == rawget(_G, "ngx").null then res = nil end
  return res
end

-- A pooled connection may have been closed by the server since (a restart, its idle timeout): one more try on
-- a new connection before the failure counts; not after a timeout (a slow server would cost two).
function Ngx:run(script, keys, args)
  if not script.sha then script.sha = hex(rawget(_G, "ngx").sha1_bin(script.source)) end
  local res, err, stale = ngx_attempt(self, script, keys, args)
  if stale then res, err = ngx_attempt(self, script, keys, args) end
  return res, err
end

function Ngx:close() end

-- ---------------------------------------------------------------------------------------------------------------
-- Plain Lua: redis-lua over LuaSocket, one connection per object, kept open, dropped at the first network failure
-- and opened again on the next use. redis-lua raises; every call goes through pcall.

local Plain = {}
Plain.__index = Plain

local redis_lua
local function load_redis_lua()
  if redis_lua then return redis_lua end
  local ok, mod = pcall(require, "redis")
  if not (ok and type(mod) == "table" and mod.connect) then
    -- Debian's lua-redis installs redis.lua for Lua 5.1 to 5.3 only; the same plain-Lua file runs on 5.4.
    local path = package.searchpath and package.searchpath("redis", "/usr/share/lua/5.3/?.lua")
    local chunk = path and loadfile(path)
    ok, mod = false, nil
    if chunk then ok, mod = pcall(chunk, "redis") end
    if not (ok and type(mod) == "table" and mod.connect) then return nil end
    package.loaded.redis = mod
  end
  redis_lua = mod
  return mod
end

-- redis-lua's messages start with its file and line ("/usr/share/lua/5.1/redis.lua:420: redis error: ...").
local function clean(e)
  e = tostring(e)
  return (gsub(e, "^[^:\n]*redis%.lua:%d+: ", ""))
end

function Plain:drop()
  local c = self.client
  self.client = nil
  if c and c.network and c.network.socket then pcall(c.network.socket.close, c.network.socket) end
end

function Plain:connect()
  if self.client then return self.client end
  local cfg = self.cfg
  local ok, c = pcall(redis_lua.connect, { host = cfg.host, port = cfg.port, timeout = cfg.timeout })
  if not ok then return nil, "redis " .. cfg.id .. ": connect: " .. gsub(clean(c), " to [^ ]+ %[", " [") end
  self.client = c
  local err
  ok, err = login(cfg, function(name, ...)
    local done, why = pcall(c[name], c, ...)
    if done then return true end
    return nil, clean(why)
  end)
  if not ok then
    self:drop()
    return nil, err
  end
  return c
end

local function server_error(e)
  return find(tostring(e), "redis error: ", 1, true) ~= nil
end

function Plain:call(c, name, ...)
  local ok, res = pcall(c[name], c, ...)
  if ok then return res, nil end
  if not server_error(res) then self:drop() end
  return nil, clean(res)
end

local function plain_attempt(self, script, keys, args)
  local c, err = self:connect()
  if not c then return nil, err end
  local res
  if not script.sha then
    res, err = self:call(c, "script", "load", script.source)
    if not res then return nil, "redis " .. self.cfg.id .. ": " .. err end
    script.sha = res
  end
  local n = #keys
  local cmd = { script.sha, tostring(n) }
  for i = 1, n do cmd[2 + i] = keys[i] end
  argv(args, cmd, 2 + n)
  res, err = self:call(c, "evalsha", unpack(cmd))
  if err and find(err, "NOSCRIPT", 1, true) then
    cmd[1] = script.source
    res, err = self:call(c, "eval", unpack(cmd))
  end
  if err then return nil, "redis " .. self.cfg.id .. ": " .. err end
  return res
end

-- A kept connection may have been closed by the server since (a restart, its idle timeout): one more try on a
-- new connection before the failure counts; not after a timeout (a slow server would cost two).
function Plain:run(script, keys, args)
  local kept = self.client ~= nil
  local res, err = plain_attempt(self, script, keys, args)
  if err and kept and not self.client and not find(err, "timeout", 1, true) then
    res, err = plain_attempt(self, script, keys, args)
  end
  return res, err
end

function Plain:close()
  self:drop()
end

-- ---------------------------------------------------------------------------------------------------------------

-- A connection for cfg (from M.parse), or raises when no Redis client library is installed (a configuration
-- error, reported when the limiter or store is made, not at the first call).
function M.connect(cfg, where, level)
  level = (level or 1) + 1
  if runtime.in_nginx() then
    if not load_resty() then
      error(where .. " needs lua-resty-redis inside nginx (Debian: apt-get install lua-nginx-redis)", level)
    end
    local ngx = rawget(_G, "ngx")
    local cred = (cfg.username or "") .. ":" .. (cfg.password or "")
    return setmetatable({ cfg = cfg, timeout_ms = math.max(1, math.floor(cfg.timeout * 1000 + 0.5)),
      pool = "essbasic:" .. cfg.host .. ":" .. cfg.port .. ":" .. cfg.db .. ":" .. ngx.md5(cred) }, Ngx)
  end
  if not load_redis_lua() then
    error(where .. " needs a Redis client for plain Lua (Debian: apt-get install lua-redis)", level)
  end
  return setmetatable({ cfg = cfg }, Plain)
end

return M
