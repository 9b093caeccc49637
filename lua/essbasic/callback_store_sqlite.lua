-- The callback store on a SQLite file (lua-sql-sqlite3), made by callback_store.sqlite(path, opts): the same
-- claim / finish / release / remember / recall as the other stores, for one machine without nginx's shared
-- memory or Redis (`essbasic callback serve`, batch jobs), shared by every process that opens the file.
-- Expiries are wall-clock seconds (os.time), since the file outlives the process. Each step is one statement
-- or one IMMEDIATE transaction, so two processes never both claim a message. SQLite blocks while it writes a
-- few rows to a local file: fine for the command line's receiver, not for a busy gateway (use shared_dict or
-- redis there).

local type, tostring, setmetatable, pcall, format = type, tostring, setmetatable, pcall, string.format
local os_time = os.time

local M = {}

M.BUSY_TIMEOUT_MS = 5000 -- how long a statement waits for another process's write to end

local SCHEMA = {
  "PRAGMA journal_mode = WAL",
  "CREATE TABLE IF NOT EXISTS essbasic_done (id TEXT PRIMARY KEY, expires INTEGER NOT NULL)",
  "CREATE TABLE IF NOT EXISTS essbasic_locks (id TEXT PRIMARY KEY, token TEXT NOT NULL, expires INTEGER NOT NULL)",
  "CREATE TABLE IF NOT EXISTS essbasic_records (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires INTEGER NOT NULL)",
}

local Store = { __name = "essbasic.callback_store.sqlite" }
Store.__index = Store

local function quote(s)
  return "'" .. s:gsub("'", "''") .. "'"
end

-- Runs one statement → rows affected (or a cursor's first column of the first row, for a SELECT), or nil, err.
function Store:exec(sql)
  local ok, res, err = pcall(self.con.execute, self.con, sql)
  if not ok then return nil, "sqlite " .. self.path .. ": " .. tostring(res) end
  if res == nil then return nil, "sqlite " .. self.path .. ": " .. tostring(err) end
  if type(res) == "number" then return res end
  local v = res:fetch()
  res:close()
  if v == nil then return false end
  return v
end

-- Runs statements in one IMMEDIATE transaction; the last one's result.
function Store:transaction(list)
  local _, err = self:exec("BEGIN IMMEDIATE")
  if err then return nil, err end
  local res
  for i = 1, #list do
    res, err = self:exec(list[i])
    if res == nil then
      self:exec("ROLLBACK")
      return nil, err
    end
  end
  _, err = self:exec("COMMIT")
  if err then
    self:exec("ROLLBACK")
    return nil, err
  end
  return res
end

function Store:claim(id, token)
  local now, qid = os_time(), quote(id)
  local res, err = self:transaction{
    format("DELETE FROM essbasic_done WHERE id = %s AND expires <= %d", qid, now),
    format("DELETE FROM essbasic_locks WHERE id = %s AND expires <= %d", qid, now),
    format("INSERT OR IGNORE INTO essbasic_locks (id, token, expires) SELECT %s, %s, %d "
      .. "WHERE NOT EXISTS (SELECT 1 FROM essbasic_done WHERE id = %s)", qid, quote(token), now + self.lock_ttl, qid),
    format("SELECT CASE WHEN EXISTS (SELECT 1 FROM essbasic_done WHERE id = %s) THEN 'done' "
      .. "WHEN (SELECT token FROM essbasic_locks WHERE id = %s) = %s THEN 'new' ELSE 'busy' END", qid, qid,
      quote(token)),
  }
  if not res then return nil, err end
  return res
end

function Store:finish(id, token)
  local res, err = self:transaction{
    format("INSERT OR REPLACE INTO essbasic_done (id, expires) VALUES (%s, %d)", quote(id), os_time() + self.ttl),
    format("DELETE FROM essbasic_locks WHERE id = %s AND token = %s", quote(id), quote(token)),
  }
  if res == nil then return nil, err end
  return true
end

function Store:release(id, token)
  local res, err = self:exec(format("DELETE FROM essbasic_locks WHERE id = %s AND token = %s", quote(id),
    quote(token)))
  if res == nil then return nil, err end
  return true
end

function Store:remember(key, value)
  local now, qkey = os_time(), quote(key)
  local res, err = self:transaction{
    format("DELETE FROM essbasic_records WHERE key = %s AND expires <= %d", qkey, now),
    format("INSERT OR IGNORE INTO essbasic_records (key, value, expires) VALUES (%s, %s, %d)", qkey, quote(value),
      now + self.ttl),
  }
  if res == nil then return nil, err end
  return true
end

function Store:recall(key)
  local res, err = self:exec(format("SELECT value FROM essbasic_records WHERE key = %s AND expires > %d",
    quote(key), os_time()))
  if res == nil then return nil, err end
  return res
end

function Store:close()
  if self.con then
    self.con:close()
    self.env:close()
    self.con = nil
  end
end

-- o: the checked options of callback_store (ttl, lock_ttl, unavailable; prefix unused: the tables are named).
function M.open(path, o)
  local ok, driver = pcall(require, "luasql.sqlite3")
  if not ok then
    error("callback_store.sqlite needs lua-sql-sqlite3 (Debian: apt-get install lua-sql-sqlite3)", 3)
  end
  local env = driver.sqlite3()
  local con, err = env:connect(path)
  if not con then
    env:close()
    error("callback_store.sqlite: cannot open " .. path .. ": " .. tostring(err), 3)
  end
  con:setautocommit(true)
  local self = setmetatable({ env = env, con = con, path = path, ttl = o.ttl, lock_ttl = o.lock_ttl,
    unavailable = o.unavailable }, Store)
  self:exec("PRAGMA busy_timeout = " .. M.BUSY_TIMEOUT_MS)
  for i = 1, #SCHEMA do
    local res, why = self:exec(SCHEMA[i])
    if res == nil then
      self:close()
      error("callback_store.sqlite: " .. why, 3)
    end
  end
  return self
end

return M
