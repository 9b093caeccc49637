-- Callback deduplication: essbasic delivers a callback again and again until one delivery is answered 200, to
-- whichever gateway its load balancer picks, and may deliver one message twice at once. A store remembers, by
-- MsgId, which messages were handled, so that each message's handler runs once:
--   * a message handled before is answered 200 at once, without calling the handler again;
--   * the "handled" mark is set only after the handler returned true: a message whose handler failed, raised or
--     timed out is never marked, and its next delivery runs the handler again;
--   * concurrent deliveries of one message: the first takes a short lock (lock_ttl, 30 s by default) and runs
--     the handler; the others are answered non-200 at once (no waiting: the worker and Tencent's connection are
--     freed), so essbasic delivers again later, and that later delivery finds the mark and gets 200. The lock
--     expires by itself, so a gateway that died while handling does not block the message for longer;
--   * a store that does not answer (Redis down): the delivery is refused non-200 and comes again (the default,
--     unavailable = "refuse"), or, with unavailable = "handle", the handler runs without deduplication.
--
-- Stores: shared_dict (the workers of one nginx), redis (a fleet of gateways), memory (one plain-Lua process).
-- In nginx:   callback.handle({ key = K, token = T, store = callback_store.redis("redis://...") }, on_message)
-- Plain Lua:  local outcome, detail = callback_store.process(store, msg, on_message)
--             -- answer callback_store.HTTP_STATUS[outcome] (200 for "handled" and "duplicate")
--
-- A store has claim(id, token) → "new" | "done" | "busy" | nil, err; finish(id, token) (the mark, the lock given
-- back) and release(id, token) (the lock given back, no mark) → true | nil, err. The lock holds a random token, so
-- a delivery gives back only its own lock.

local core = require("essbasic.core")
local redis = require("essbasic.redis")
local json = require("essbasic.json")
local callback = require("essbasic.callback")

local type, tostring, pcall, error, pairs, setmetatable = type, tostring, pcall, error, pairs,
  setmetatable
local floor = math.floor
local byte, sub = string.byte, string.sub

local M = {}

M.DEFAULT_TTL = 7 * 24 * 3600 -- seconds a "handled" mark is kept: longer than essbasic goes on delivering
M.DEFAULT_LOCK_TTL = 30        -- seconds a delivery may run the handler before another delivery may run it
M.DEFAULT_PREFIX = "essbasic:cb:"
M.DEFAULT_REDIS_TIMEOUT = 0.25 -- seconds; a callback can wait a little longer than an API call's limiter

-- What to answer for each outcome of process(): 200 only when the message is handled (now or before).
M.HTTP_STATUS = { handled = 200, duplicate = 200, busy = 503, unavailable = 503, not_handled = 500, failed = 500 }

local OPTIONS = { ttl = "number", lock_ttl = "number", prefix = "string", unavailable = "string" }

local function options(opts, where)
  opts = opts or {}
  if type(opts) ~= "table" then error(where .. ": options must be a table", 3) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then error(where .. ": unknown option '" .. tostring(k) .. "'", 3) end
    if type(v) ~= want then error(where .. ": " .. k .. " must be a " .. want .. ", got " .. type(v), 3) end
  end
  local o = {
    ttl = opts.ttl or M.DEFAULT_TTL,
    lock_ttl = opts.lock_ttl or M.DEFAULT_LOCK_TTL,
    prefix = opts.prefix,
    unavailable = opts.unavailable or "refuse",
  }
  if o.ttl <= 0 or o.lock_ttl <= 0 then error(where .. ": ttl and lock_ttl must be positive (seconds)", 3) end
  if o.unavailable ~= "refuse" and o.unavailable ~= "handle" then
    error(where .. ": unavailable must be \"refuse\" or \"handle\"", 3)
  end
  return o
end

-- ---------------------------------------------------------------------------------------------------------------
-- One nginx: a lua_shared_dict (its operations are atomic across workers and never yield). The dict evicts the
-- least recently used entries when full: size it for a week of MsgIds (about 150 bytes each, 1m ≈ 6,000).

local Dict = { __name = "essbasic.callback_store.shared_dict" }
Dict.__index = Dict

function Dict:claim(id, token)
  local dict, done, lock = self.dict, self.prefix .. "done:" .. id, self.prefix .. "lock:" .. id
  if dict:get(done) then return "done" end
  local ok, err = dict:add(lock, token, self.lock_ttl)
  if ok then
    -- A delivery that finished between the get and the add has marked it: nothing to run.
    if dict:get(done) then
      dict:delete(lock)
      return "done"
    end
    return "new"
  end
  if err == "exists" then return dict:get(lock) == token and "new" or "busy" end
  return nil, "shared dict: " .. tostring(err)
end

-- The lock is left to expire: the mark, checked first, answers every later delivery, and no compare-and-delete
-- exists across workers.
function Dict:finish(id)
  local ok, err = self.dict:set(self.prefix .. "done:" .. id, true, self.ttl)
  if not ok then return nil, "shared dict: " .. tostring(err) end
  return true
end

function Dict:release(id, token)
  local lock = self.prefix .. "lock:" .. id
  if self.dict:get(lock) == token then self.dict:delete(lock) end
  return true
end

-- dict: a lua_shared_dict or its name. opts: ttl, lock_ttl, prefix (default "essbasic:cb:"), unavailable.
function M.shared_dict(dict, opts)
  local o = options(opts, "callback_store.shared_dict")
  if type(dict) == "string" then
    local d = require("essbasic.runtime").shared_dict(dict)
    if not d then error("callback_store.shared_dict: nginx has no lua_shared_dict '" .. dict .. "'", 2) end
    dict = d
  end
  if type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("callback_store.shared_dict expects a lua_shared_dict or its name", 2)
  end
  return setmetatable({ dict = dict, prefix = o.prefix or M.DEFAULT_PREFIX, ttl = o.ttl, lock_ttl = o.lock_ttl,
    unavailable = o.unavailable }, Dict)
end

-- ---------------------------------------------------------------------------------------------------------------
-- A fleet: Redis, one atomic script per step. Keys <prefix>done:{MsgId} and <prefix>lock:{MsgId} (the braces keep
-- both in one Redis Cluster slot).

local CLAIM = redis.script([[
if redis.call('EXISTS', KEYS[1]) == 1 then return 'done' end
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then return 'new' end
if holder then return 'busy' end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 'new'
]])

local FINISH = redis.script([[
redis.call('SET', KEYS[1], '1', 'EX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
]])

local RELEASE = redis.script([[
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
]])

local Redis = { __name = "essbasic.callback_store.redis" }
Redis.__index = Redis

local function redis_keys(self, id)
  return { self.prefix .. "done:{" .. id .. "}", self.prefix .. "lock:{" .. id .. "}" }
end

function Redis:claim(id, token)
  local res, err = self.conn:run(CLAIM, redis_keys(self, id), { token, floor(self.lock_ttl * 1000) })
  if res == "new" or res == "done" or res == "busy" then return res end
  return nil, err or ("redis " .. self.cfg.id .. ": unexpected answer " .. tostring(res))
end

function Redis:finish(id, token)
  local res, err = self.conn:run(FINISH, redis_keys(self, id), { token, floor(self.ttl) })
  if res ~= 1 then return nil, err or "unexpected answer" end
  return true
end

function Redis:release(id, token)
  local res, err = self.conn:run(RELEASE, redis_keys(self, id), { token })
  if res ~= 1 then return nil, err or "unexpected answer" end
  return true
end

function Redis:close()
  self.conn:close()
end

-- spec: "redis://[:password@]host:port/db" or a table (host, port, db, username, password, prefix, timeout; as the
-- rate limit's). opts: ttl, lock_ttl, prefix, unavailable.
function M.redis(spec, opts)
  local o = options(opts, "callback_store.redis")
  local cfg = redis.parse(spec, "callback_store.redis",
    { prefix = M.DEFAULT_PREFIX, timeout = M.DEFAULT_REDIS_TIMEOUT }, 2)
  return setmetatable({ conn = redis.connect(cfg, "callback_store.redis", 2), cfg = cfg,
    prefix = o.prefix or cfg.prefix, ttl = o.ttl, lock_ttl = o.lock_ttl, unavailable = o.unavailable }, Redis)
end

-- ---------------------------------------------------------------------------------------------------------------
-- One plain-Lua process (and tests): a table, with the same expiries.

local Memory = { __name = "essbasic.callback_store.memory" }
Memory.__index = Memory

local function live(self, t, key)
  local e = t[key]
  if e and e.expires <= self.now() then
    t[key] = nil
    return nil
  end
  return e
end

function Memory:claim(id, token)
  if live(self, self.done, id) then return "done" end
  local l = live(self, self.locks, id)
  if l then return l.token == token and "new" or "busy" end
  self.locks[id] = { token = token, expires = self.now() + self.lock_ttl }
  return "new"
end

function Memory:finish(id, token)
  self.done[id] = { expires = self.now() + self.ttl }
  self:release(id, token)
  return true
end

function Memory:release(id, token)
  local l = self.locks[id]
  if l and l.token == token then self.locks[id] = nil end
  return true
end

-- opts: ttl, lock_ttl, unavailable (unused: a table always answers), and now (a clock, for tests).
function M.memory(opts)
  opts = opts or {}
  local now = opts.now
  local rest = {}
  for k, v in pairs(opts) do if k ~= "now" then rest[k] = v end end
  local o = options(rest, "callback_store.memory")
  return setmetatable({ done = {}, locks = {}, records = {}, ttl = o.ttl, lock_ttl = o.lock_ttl,
    unavailable = o.unavailable, now = now or core.monotonic }, Memory)
end

-- ---------------------------------------------------------------------------------------------------------------
-- What the callbacks saw (essbasic.correlate, essbasic.resolve): a flow's CustomerData (its correlation key) →
-- { FlowId, FlowGroupId, FlowStatus, MsgType } of the first authenticated callback that carried it, kept for the
-- store's ttl. remember(key, value) sets only when absent (the first callback wins); recall(key) → value, false
-- (nothing recorded), or nil, err. Keys are stored as <prefix>rec:<sha256 hex of the CustomerData>. A full shared
-- dict evicts its oldest records too: resolve then answers not_yet_known (never a wrong id); size it for them.

local REMEMBER = redis.script([[
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
return 1
]])

local RECALL = redis.script([[
return redis.call('GET', KEYS[1])
]])

local function record_key(self, key)
  return self.prefix .. "rec:" .. core.sha256_hex(key)
end

function Dict:remember(key, value)
  local ok, err = self.dict:add(record_key(self, key), value, self.ttl)
  if ok or err == "exists" then return true end
  return nil, "shared dict: " .. tostring(err)
end

function Dict:recall(key)
  return self.dict:get(record_key(self, key)) or false
end

function Redis:remember(key, value)
  local res, err = self.conn:run(REMEMBER, { record_key(self, key) }, { value, floor(self.ttl) })
  if res ~= 1 then return nil, err or "unexpected answer" end
  return true
end

function Redis:recall(key)
  local res, err = self.conn:run(RECALL, { record_key(self, key) }, {})
  if err then return nil, err end
  return type(res) == "string" and res or false
end

function Memory:remember(key, value)
  if not live(self, self.records, key) then self.records[key] = { value = value, expires = self.now() + self.ttl } end
  return true
end

function Memory:recall(key)
  local e = live(self, self.records, key)
  return e and e.value or false
end

-- One machine without nginx's shared memory or Redis (the command line's `essbasic callback serve`, a batch):
-- a SQLite file (lua-sql-sqlite3), shared by the processes that open it. opts as for the others.
function M.sqlite(path, opts)
  if type(path) ~= "string" or path == "" then error("callback_store.sqlite expects a file name", 2) end
  return require("essbasic.callback_store_sqlite").open(path, options(opts, "callback_store.sqlite"))
end

-- ---------------------------------------------------------------------------------------------------------------

local function is_store(s)
  return type(s) == "table" and type(s.claim) == "function" and type(s.finish) == "function"
    and type(s.release) == "function"
end
M.is_store = is_store

local function text(v)
  return type(v) == "string" and v ~= "" and v or nil
end

-- Records what an authenticated flow message says about the flow that carries its CustomerData → true (recorded,
-- recorded before, or nothing to record) or nil, err (the store did not answer). A message parse() did not check
-- with a token, or a store without remember, records nothing.
function M.record(store, msg)
  if type(store.remember) ~= "function" or not callback.authenticated(msg) then return true end
  local data = msg.MsgData
  if type(data) ~= "table" then return true end
  -- The partner API documents a flow's CustomerData as echoed back in its callbacks; Tencent's own callback
  -- dispatcher (tsign-callback-dispatcher) reads contract messages' MsgData.UserData. Either names the key.
  local key, flow_id = text(data.CustomerData) or text(data.UserData), text(data.FlowId)
  if not key or not flow_id then return true end
  return store:remember(key, json.encode({ FlowId = flow_id, FlowGroupId = text(data.FlowGroupId),
    FlowStatus = text(data.FlowStatus), MsgType = text(msg.MsgType) }))
end

-- What the callbacks recorded for a correlation key: { FlowId, FlowGroupId?, FlowStatus?, MsgType? }, false
-- (nothing yet), or nil, err.
function M.recall(store, key)
  if not is_store(store) or type(store.recall) ~= "function" then
    error("callback_store.recall expects a store that keeps records (memory, shared_dict, redis, sqlite)", 2)
  end
  if type(key) ~= "string" then error("callback_store.recall expects a key string", 2) end
  local value, err = store:recall(key)
  if value == nil then return nil, err end
  if value == false then return false end
  local rec = json.decode(value)
  if type(rec) ~= "table" or type(rec.FlowId) ~= "string" then return nil, "a record is damaged" end
  return rec
end

local function new_token()
  return core.hex(core.random_bytes(16))
end

-- The key a message is marked under: its MsgId, a string as it is; a number is marked apart from the string of
-- its digits (7 and "7" are two messages); an id over 200 bytes, or one starting with NUL, by its SHA-256 (a
-- lua_shared_dict key holds at most 65535 bytes, and a Redis key that long is waste). Strings of ordinary ids keep
-- the key of 0.2.0, so marks set before an upgrade are still found.
local LONG_ID = 200

local function mark_key(id)
  if type(id) == "number" then return "\0n:" .. tostring(id) end
  if #id > LONG_ID or byte(id, 1) == 0 then return "\0h:" .. core.sha256_hex(id) end
  return id
end

-- A MsgId as log lines show it: decrypted content, so only the start of its SHA-256.
local function id_for_log(msg)
  local id = type(msg) == "table" and msg.MsgId or nil
  if id == nil then return "(no MsgId)" end
  return "#" .. sub(core.sha256_hex(type(id) .. ":" .. tostring(id)), 1, 12)
end
M.id_for_log = id_for_log

local function run_handler(handler, msg, ...)
  local ok, res = pcall(handler, msg, ...)
  if not ok then return "failed", res end
  if res == true then return "handled" end
  return "not_handled"
end

-- Runs handler(msg, ...) at most once per MsgId across everything that shares the store.
-- → outcome, detail: "handled" (the handler returned true, now), "duplicate" (handled before; not called),
-- "busy" (another delivery is running it now; not called), "not_handled" (it returned something other than
-- true), "failed" (it raised; detail = the error), "unavailable" (the store did not answer; detail = why; not
-- called, unless the store says unavailable = "handle"). A message without a MsgId cannot be deduplicated: the
-- handler runs, and detail says so. Answer HTTP_STATUS[outcome].
function M.process(store, msg, handler, ...)
  if not is_store(store) then error("callback_store.process expects a store", 2) end
  if type(handler) ~= "function" then error("callback_store.process expects a handler function", 2) end
  local id = type(msg) == "table" and msg.MsgId or nil
  if (type(id) ~= "string" and type(id) ~= "number") or id == "" then
    local recorded, rerr = M.record(store, msg)
    if not recorded then return "unavailable", rerr end
    local outcome, detail = run_handler(handler, msg, ...)
    return outcome, detail or "the message has no MsgId: not deduplicated"
  end
  id = mark_key(id)
  local token = new_token()
  local state, err = store:claim(id, token)
  if not state then
    if store.unavailable == "handle" then
      local outcome, detail = run_handler(handler, msg, ...)
      return outcome, detail or ("not deduplicated: " .. tostring(err))
    end
    return "unavailable", err
  end
  if state == "done" then return "duplicate" end
  if state == "busy" then return "busy" end
  local recorded, rerr = M.record(store, msg) -- before the handler: a record is kept even if the handler fails
  if not recorded then
    store:release(id, token)
    return "unavailable", rerr
  end
  local outcome, detail = run_handler(handler, msg, ...)
  if outcome == "handled" then
    local marked, merr = store:finish(id, token)
    if not marked then return "handled", "handled, but the mark could not be set: " .. tostring(merr) end
    return "handled"
  end
  store:release(id, token)
  return outcome, detail
end

-- The handler for callback.handle: true for "handled" and "duplicate" (handle answers 200), false otherwise
-- (non-200: essbasic delivers again), and the outcome (handle answers HTTP_STATUS[outcome]); a handler that
-- raised raises again, after its lock was given back. Log lines name the message by id_for_log, never its MsgId;
-- they go to logger (function(level, message), callback.handle passes its own), else the default runtime.logger.
function M.wrap(store, handler, logger)
  if not is_store(store) then error("callback_store.wrap expects a store", 2) end
  if type(handler) ~= "function" then error("callback_store.wrap expects a handler function", 2) end
  if logger ~= nil and type(logger) ~= "function" then error("callback_store.wrap: logger must be a function", 2) end
  return function(msg, ...)
    local log = logger or require("essbasic.runtime").logger
    local outcome, detail = M.process(store, msg, handler, ...)
    local id = id_for_log(msg)
    if outcome == "failed" then error(detail, 0) end
    if outcome == "duplicate" then
      log("info", "essbasic callback: message " .. id .. " was handled before; answered without calling the handler")
    elseif outcome == "busy" then
      log("warn", "essbasic callback: message " .. id .. " is being handled by another delivery; refused, so that "
        .. "it comes again")
    elseif outcome == "unavailable" then
      log("error", "essbasic callback: message " .. id .. " refused, the deduplication store did not answer: "
        .. tostring(detail))
    elseif detail then
      log("warn", "essbasic callback: message " .. id .. ": " .. tostring(detail))
    end
    return outcome == "handled" or outcome == "duplicate", outcome
  end
end

return M
