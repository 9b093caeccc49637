-- The batch journal: one SQLite database per batch run, through LuaSQL (Debian's lua-sql-sqlite3, which has
-- builds for Lua 5.1, the ABI of LuaJIT, and 5.4). Why LuaSQL and not LuaDBI (lua-dbi-sqlite3): under both
-- interpreters LuaDBI 0.7.2 reads INTEGER columns through a C int (9007199254740993 comes back as 1) and binds Lua
-- 5.4 integers as floats; LuaSQL reads 64-bit integers exactly under 5.4. LuaSQL has no bound parameters, so
-- every text value goes through conn:escape (SQLite's %q) and may not hold a NUL byte; the values written are
-- JSON from essbasic.json (which escapes control characters), state names, codes and numbers.
--
-- Tables:
--   meta (key, value)   format, action, input_hash (sha256 of the input and the template), input_name, rows, created
--   rows                one per input row: line (its line in the input file), state, sent, tries, run, updated,
--                       request_id, ids (the Response's *Id and *Ids members, JSON), response (JSON),
--                       error_code, error (the error object, JSON)
--   runs                one per run: id, pid, started, ended, recovered (sending → unknown at its start), summary
--   attempts            one per send of a row whose flows carry correlation keys (format 2): line, try (the row's
--                       tries when it was sent), sent (time), correlation ({ action, keys, agent }, JSON), written
--                       in the transaction that marks the row `sending`, so a key is on disk before it goes out
--   rows.resolved       (format 2) how an `unknown` row became `done` from the callbacks: { from = "callbacks",
--                       try, duplicates = [ ids of another try's creation ... ] } (JSON)
--
-- A row goes pending → sending → done | failed | unknown. `sending` is committed before the request is sent and
-- the answer after it arrives, so a run that is killed leaves exactly the rows it may have sent in `sending`; the
-- next run turns them into `unknown` (recover). A failed row has sent = 0 when its request certainly never
-- reached the API (refused here, or never left the machine) and sent = 1 otherwise.
--
-- The connection holds the database with locking_mode = EXCLUSIVE from open to close: a second run on the same
-- journal is refused (M.IN_USE) instead of interleaving, and the lock goes with the process however it ends.
-- journal_mode = DELETE (a rollback journal: at rest the database file alone holds everything) and
-- synchronous = FULL: every commit is on disk, in run.db itself, before the call it describes goes out.

local json = require("essbasic.json")
local errors = require("essbasic.errors")

local type, tostring, tonumber, pairs, ipairs, next, error = type, tostring, tonumber, pairs, ipairs, next, error
local format, find, concat = string.format, string.find, table.concat

local M = {}

M.FORMAT = "2"
-- Format 1 (essbasic 0.2 and 0.3 before correlation keys) is upgraded in place on open: the attempts table and
-- rows.resolved are added; its rows have no keys, so the callbacks cannot resolve them (they stay as they are).
M.UPGRADABLE = { ["1"] = true }
M.STATES = { "pending", "sending", "done", "failed", "unknown" }

-- Error codes of open().
M.NO_BINDING = "Journal.NoSqliteBinding"
M.IN_USE = "Journal.InUse"
M.MISMATCH = "Journal.InputChanged"
M.SQLITE = "Journal.SqliteError"
M.BAD_INPUT = "Journal.InputUnusable"

M.JOURNAL_MODE = "DELETE"

local Journal = {}
Journal.__index = Journal

local function jerr(code, message)
  return { code = code, message = message }
end

local luasql_ok, luasql = pcall(require, "luasql.sqlite3")

function M.available()
  if luasql_ok then return true end
  return nil, jerr(M.NO_BINDING, "the batch journal needs SQLite for Lua: apt-get install lua-sql-sqlite3 ("
    .. tostring(luasql) .. ")")
end

local function now()
  return os.time()
end

local function int(n)
  return format("%d", n)
end

-- A SQL string literal; raises on NUL (conn:escape would cut the text there).
function Journal:q(s)
  if s == nil then return "NULL" end
  s = tostring(s)
  if find(s, "\0", 1, true) then error("journal: a NUL byte in a value", 2) end
  return "'" .. self.con:escape(s) .. "'"
end

-- Runs one statement: → its result (rows changed, or a cursor), or raises with SQLite's message.
function Journal:exec(sql)
  local res, why = self.con:execute(sql)
  if res == nil then error(setmetatable({ sqlite = tostring(why), sql = sql }, {
    __tostring = function(e) return "journal: " .. e.sqlite end }), 2) end
  return res
end

-- Every row of a query as tables keyed by column name.
function Journal:select(sql)
  local cur = self:exec(sql)
  local out = {}
  local row = cur:fetch({}, "a")
  while row do
    out[#out + 1] = row
    row = cur:fetch({}, "a")
  end
  cur:close()
  return out
end

-- A statement whose result is a single row that must be read (PRAGMA ...): read and closed, so no statement stays
-- open (an open statement keeps a read transaction).
function Journal:pragma(sql)
  local res = self:exec(sql)
  if type(res) == "userdata" then
    local row = res:fetch({}, "n")
    res:close()
    return row and row[1]
  end
  return res
end

local function locked(message)
  return find(tostring(message), "locked", 1, true) or find(tostring(message), "busy", 1, true)
end

local SCHEMA = {
  [[CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)]],
  [[CREATE TABLE rows (
      line INTEGER PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'done', 'failed', 'unknown')),
      sent INTEGER,
      tries INTEGER NOT NULL DEFAULT 0,
      run INTEGER,
      updated INTEGER,
      request_id TEXT,
      ids TEXT,
      response TEXT,
      error_code TEXT,
      error TEXT)]],
  [[CREATE INDEX rows_state ON rows (state)]],
  [[CREATE TABLE runs (id INTEGER PRIMARY KEY, pid INTEGER, started INTEGER, ended INTEGER, recovered INTEGER,
      options TEXT, summary TEXT)]],
}

-- What format 2 adds to format 1 (a new journal gets it too).
local SCHEMA_2 = {
  [[ALTER TABLE rows ADD COLUMN resolved TEXT]],
  [[CREATE TABLE attempts (line INTEGER NOT NULL, try INTEGER NOT NULL, sent INTEGER NOT NULL,
      correlation TEXT NOT NULL, PRIMARY KEY (line, try))]],
}

local function own_pid()
  local f = io.open("/proc/self/stat", "rb")
  if not f then return nil end
  local stat = f:read("*a")
  f:close()
  return tonumber(stat:match("^(%d+)"))
end

-- Opens (or creates) the journal at path and starts a run; the lock comes first, so a journal in use is refused
-- before anything is read. want = { action, input_name, options = JSON text,
--   input_hash = function() → hex or nil, why: the input's fingerprint (called once the lock is held),
--   rows = function(add) → nil or problems: for a new journal only, calls add(line) for every row of the input
--     (problems: the input cannot be used; the new file is removed),
--   any_input = true: an existing journal of any action and input (reconcile: it sends nothing) }.
-- Recovers the rows an earlier run left in `sending`.
-- → journal, or nil and { code, message [, problems] } (NO_BINDING, IN_USE, MISMATCH, SQLITE, BAD_INPUT).
function M.open(path, want)
  local ok, why = M.available()
  if not ok then return nil, why end
  local existed = io.open(path, "rb")
  if existed then existed:close() end
  local env = luasql.sqlite3()
  local con, cerr = env:connect(path)
  if not con then
    env:close()
    return nil, jerr(M.SQLITE, "cannot open the journal " .. path .. ": " .. tostring(cerr))
  end
  local self = setmetatable({ env = env, con = con, path = path }, Journal)
  local done, result = pcall(function()
    self:pragma("PRAGMA busy_timeout = 1000")
    self:pragma("PRAGMA locking_mode = EXCLUSIVE")
    self:pragma("PRAGMA synchronous = FULL")
    self:exec("BEGIN EXCLUSIVE")
    local mismatch = self:prepare(want)
    if mismatch then
      self:exec("ROLLBACK")
      return mismatch
    end
    self:exec(format("INSERT INTO runs (pid, started, options) VALUES (%s, %s, %s)", own_pid() and int(own_pid())
      or "NULL", int(now()), self:q(want.options)))
    self.run = tonumber(self:select("SELECT max(id) AS id FROM runs")[1].id)
    self.recovered = self:mark_unknown("the run that sent this row stopped before its answer was recorded: it may "
      .. "or may not have been carried out", "")
    self:exec(format("UPDATE runs SET recovered = %s WHERE id = %s", int(self.recovered), int(self.run)))
    self:exec("COMMIT")
    -- A rollback journal, not WAL: every commit is in the database file itself, so the file alone is the whole
    -- journal whenever no transaction is open (a copy of run.db taken after a crash resumes without resending).
    -- Set on the journal's own file only (never on a database that turned out to be something else); a journal
    -- of essbasic 0.2 (WAL) is turned into this mode here.
    self:pragma("PRAGMA journal_mode = " .. M.JOURNAL_MODE)
  end)
  if not done then
    local message = type(result) == "table" and result.sqlite or tostring(result)
    self:close()
    if locked(message) then
      return nil, jerr(M.IN_USE, "the journal " .. path .. " is in use by another run (" .. message .. ")")
    end
    if not existed then self:remove_files() end
    return nil, jerr(M.SQLITE, "journal " .. path .. ": " .. message)
  end
  if result then
    self:close()
    if not existed then self:remove_files() end
    return nil, result
  end
  return self
end

-- The files of a journal this run made and then gave up (an input that cannot be used).
function Journal:remove_files()
  for _, suffix in ipairs({ "", "-journal", "-wal", "-shm" }) do os.remove(self.path .. suffix) end
end

M.INSERT_CHUNK = 500 -- rows per INSERT statement when a journal is made

-- Inside open's transaction: creates the tables and rows of a new journal, or checks that an existing one was
-- made for this input and action. → nil, or the mismatch error.
function Journal:prepare(want)
  local tables = {}
  for _, r in ipairs(self:select("SELECT name FROM sqlite_master WHERE type = 'table'")) do tables[r.name] = true end
  if next(tables) and not (tables.meta and tables.rows and tables.runs) then
    return jerr(M.MISMATCH, self.path .. " is a database but not an essbasic batch journal: name a new file")
  end
  if not tables.meta and want.any_input then
    return jerr(M.MISMATCH, self.path .. " is no batch journal (reconcile reads the journal of an earlier run)")
  end
  if not tables.meta then
    for _, sql in ipairs(SCHEMA) do self:exec(sql) end
    for _, sql in ipairs(SCHEMA_2) do self:exec(sql) end
    local values, n = {}, 0
    local function flush()
      if #values > 0 then
        self:exec("INSERT INTO rows (line, state) VALUES " .. concat(values, ","))
        values = {}
      end
    end
    local problems = want.rows(function(line)
      n = n + 1
      values[#values + 1] = "(" .. int(line) .. ",'pending')"
      if #values >= M.INSERT_CHUNK then flush() end
    end)
    if problems then
      local e = jerr(M.BAD_INPUT, "the input cannot be used")
      e.problems = problems
      return e
    end
    flush()
    local hash, herr = want.input_hash()
    if not hash then return jerr(M.BAD_INPUT, "cannot read the input: " .. tostring(herr)) end
    local meta = { format = M.FORMAT, action = want.action, input_hash = hash,
      input_name = want.input_name or "", rows = int(n), created = int(now()) }
    for k, v in pairs(meta) do
      self:exec(format("INSERT INTO meta (key, value) VALUES (%s, %s)", self:q(k), self:q(v)))
    end
    self.created = true
    return nil
  end
  local meta = self:meta()
  if M.UPGRADABLE[meta.format] then
    for _, sql in ipairs(SCHEMA_2) do self:exec(sql) end
    self:exec(format("UPDATE meta SET value = %s WHERE key = 'format'", self:q(M.FORMAT)))
    meta.format = M.FORMAT
  end
  if meta.format ~= M.FORMAT then
    return jerr(M.MISMATCH, "the journal " .. self.path .. " has format " .. tostring(meta.format)
      .. "; this essbasic writes format " .. M.FORMAT)
  end
  if want.any_input then return nil end -- reconcile: reads the journal, sends nothing
  if meta.action ~= want.action then
    return jerr(M.MISMATCH, "the journal " .. self.path .. " is for " .. tostring(meta.action) .. ", not "
      .. tostring(want.action) .. ": use another journal")
  end
  local hash, herr = want.input_hash()
  if not hash then return jerr(M.BAD_INPUT, "cannot read the input: " .. tostring(herr)) end
  if meta.input_hash ~= hash then
    return jerr(M.MISMATCH, "the journal " .. self.path .. " was made for another input (" .. tostring(meta.input_name)
      .. ", sha256 " .. tostring(meta.input_hash):sub(1, 16) .. "…); this input (" .. tostring(want.input_name)
      .. ", sha256 " .. hash:sub(1, 16) .. "…) differs. Rerun with the very input it was made for (the rows it "
      .. "has done are not sent again); a new journal would send every row again")
  end
  return nil
end

function Journal:meta()
  local out = {}
  for _, r in ipairs(self:select("SELECT key, value FROM meta")) do out[r.key] = r.value end
  return out
end

-- The condition of an unknown row that --resend-unknown-after DURATION sends again: its last send carried keys
-- (an attempt) and went out at least flags.resend_before (a time) ago. (Its callbacks were looked for first.)
local function resend_condition(before)
  return "(state = 'unknown' AND EXISTS (SELECT 1 FROM attempts a WHERE a.line = rows.line AND a.try = rows.tries "
    .. "AND a.sent <= " .. int(before) .. "))"
end

local function eligible_where(flags)
  local where = { "state = 'pending'", "(state = 'failed' AND sent = 0)" }
  if flags.retry_failed then where[#where + 1] = "state = 'failed'" end
  if flags.retry_unknown then where[#where + 1] = "state = 'unknown'" end
  if flags.resend_before then where[#where + 1] = resend_condition(flags.resend_before) end
  return concat(where, " OR ")
end

-- The rows this run may send, in line order, at most `limit` of them after line `after`: pending ones, failed
-- ones that never reached the API, and with the flags the other failed ones and the unknown ones (all of them:
-- retry_unknown; those resend_condition names: resend_before).
-- → list of { line, state } (read a chunk at a time: memory does not grow with the journal).
function Journal:eligible(flags, after, limit)
  local out = {}
  -- NOT INDEXED: walk the rows in line order from `after` (the state index would sort every match per chunk).
  for i, r in ipairs(self:select("SELECT line, state FROM rows NOT INDEXED WHERE line > " .. int(after or 0) .. " AND ("
      .. eligible_where(flags) .. ") ORDER BY line LIMIT " .. int(limit or 1000))) do
    out[i] = { line = tonumber(r.line), state = r.state }
  end
  return out
end

-- How many rows this run may send (eligible's rows, counted).
function Journal:count_eligible(flags)
  local c = self:counts()
  local n = c.pending + c.failed_unsent
  if flags.retry_failed then n = n + c.failed - c.failed_unsent end
  if flags.retry_unknown then
    n = n + c.unknown
  elseif flags.resend_before then
    n = n + self:count_resend(flags.resend_before)
  end
  return n
end

-- How many unknown rows --resend-unknown-after sends again (resend_condition).
function Journal:count_resend(before)
  return tonumber(self:select("SELECT count(*) AS n FROM rows WHERE " .. resend_condition(before))[1].n)
end

-- Marks rows `sending` in one transaction, before any of them is sent; correlations[i] (JSON text, or nil) is
-- the correlation of lines[i]'s request, recorded as that row's attempt in the same transaction.
function Journal:mark_sending(lines, correlations)
  local list, keyed = {}, false
  for i, line in ipairs(lines) do
    list[i] = int(line)
    if correlations and correlations[i] then keyed = true end
  end
  local sql = format("UPDATE rows SET state = 'sending', run = %s, tries = tries + 1, updated = %s, sent = NULL "
    .. "WHERE line IN (%s)", int(self.run), int(now()), concat(list, ","))
  if not keyed then
    self:exec(sql)
    return
  end
  local values = {}
  for i, line in ipairs(lines) do
    if correlations[i] then
      values[#values + 1] = format("(%s, (SELECT tries FROM rows WHERE line = %s), %s, %s)", int(line), int(line),
        int(now()), self:q(correlations[i]))
    end
  end
  self:exec("BEGIN IMMEDIATE")
  local ok, err = pcall(function()
    self:exec(sql)
    self:exec("INSERT OR REPLACE INTO attempts (line, try, sent, correlation) VALUES " .. concat(values, ","))
    self:exec("COMMIT")
  end)
  if not ok then
    pcall(self.exec, self, "ROLLBACK")
    error(err, 0)
  end
end

-- The attempts of a row, oldest first: { try, sent, correlation (decoded) }.
function Journal:attempts(line)
  local out = {}
  for i, r in ipairs(self:select("SELECT try, sent, correlation FROM attempts WHERE line = " .. int(line)
      .. " ORDER BY try")) do
    out[i] = { try = tonumber(r.try), sent = tonumber(r.sent), correlation = json.decode(r.correlation) }
  end
  return out
end

-- Calls fn(row) for the rows the callbacks may settle, in line order, a chunk at a time: unknown rows with keys,
-- done rows sent more than once with keys (an earlier send may have been carried out as well), and done rows
-- settled with an id missing (resolved.complete = false: a lookup may succeed now).
function Journal:each_correlated(fn)
  self:each_row("line IN (SELECT line FROM attempts) AND (state = 'unknown' OR (state = 'done' AND "
    .. "((SELECT count(*) FROM attempts a WHERE a.line = rows.line) > 1 OR resolved LIKE '%\"complete\":false%')))",
    fn)
end

-- An unknown row the callbacks proved created: done with the ids (a response-like object: FlowGroupId,
-- FlowIds, FlowId), and how (resolved: a table, stored as JSON).
function Journal:resolved(line, ids, resolved)
  self:exec(format("UPDATE rows SET state = 'done', updated = %s, ids = %s, response = %s, resolved = %s, "
    .. "error_code = NULL, error = NULL WHERE line = %s", int(now()), self:q(json.encode(ids)),
    self:q(json.encode(ids)), self:q(json.encode(resolved)), int(line)))
end

-- A done row whose other send was carried out too (resolved: the row's resolved table with its duplicates).
function Journal:duplicated(line, resolved)
  self:exec(format("UPDATE rows SET resolved = %s WHERE line = %s", self:q(json.encode(resolved)), int(line)))
end

-- The members of a Response that identify what it made or found: *Id and *Ids at the top (RequestId aside).
local function ids_of(resp)
  local ids = {}
  for k, v in pairs(resp) do
    if type(k) == "string" and k ~= "RequestId" and (k:match("Id$") or k:match("Ids$"))
        and (type(v) == "string" or type(v) == "number" or json.is_array(v)) then
      ids[k] = v
    end
  end
  return ids
end
M.ids_of = ids_of

function Journal:done(line, resp)
  local body = json.encode(resp)
  local ids = json.encode(ids_of(resp))
  self:exec(format("UPDATE rows SET state = 'done', sent = 1, updated = %s, request_id = %s, ids = %s, "
    .. "response = %s, error_code = NULL, error = NULL WHERE line = %s", int(now()), self:q(resp.RequestId),
    self:q(ids), self:q(body), int(line)))
end

-- state: "failed" or "unknown"; err_json: the error object as JSON; sent: true, false (failed only).
function Journal:failed(line, state, code, err_json, sent)
  self:exec(format("UPDATE rows SET state = %s, sent = %s, updated = %s, error_code = %s, error = %s, "
    .. "request_id = NULL, ids = NULL, response = NULL WHERE line = %s", self:q(state),
    sent == nil and "NULL" or (sent and "1" or "0"), int(now()), self:q(code), self:q(err_json), int(line)))
end

-- Rows still `sending` (and matching the SQL condition `also`) become unknown, with a journal error saying
-- message → how many.
function Journal:mark_unknown(message, also)
  local lost = json.encode{ code = errors.OUTCOME_UNKNOWN, kind = "journal", message = message }
  return self:exec(format("UPDATE rows SET state = 'unknown', error_code = %s, error = %s, updated = %s "
    .. "WHERE state = 'sending'%s", self:q(errors.OUTCOME_UNKNOWN), self:q(lost), int(now()), also))
end

-- Rows this run left `sending` (an interrupted run): unknown, as the next run would make them.
function Journal:abandon(message)
  return self:mark_unknown(message, " AND run = " .. int(self.run))
end

-- { pending, sending, done, failed, failed_unsent, unknown, total }
function Journal:counts()
  local c = { pending = 0, sending = 0, done = 0, failed = 0, failed_unsent = 0, unknown = 0, total = 0 }
  for _, r in ipairs(self:select("SELECT state, sent, count(*) AS n FROM rows GROUP BY state, sent")) do
    local n = tonumber(r.n)
    c[r.state] = c[r.state] + n
    if r.state == "failed" and tonumber(r.sent) == 0 then c.failed_unsent = c.failed_unsent + n end
    c.total = c.total + n
  end
  return c
end

-- Rows in line order (matching the SQL condition `where`, at most `limit`): { line, state, sent, tries,
-- request_id, ids, response, error_code, error, resolved } (JSON text left as text).
function Journal:rows(where, limit, after)
  local cond = "line > " .. int(after or 0) .. (where and (" AND (" .. where .. ")") or "")
  local out = self:select("SELECT line, state, sent, tries, request_id, ids, response, error_code, error, resolved "
    .. "FROM rows"
    .. " WHERE " .. cond .. " ORDER BY line" .. (limit and (" LIMIT " .. int(limit)) or ""))
  for _, r in ipairs(out) do
    r.line, r.tries, r.sent = tonumber(r.line), tonumber(r.tries), tonumber(r.sent)
  end
  return out
end

-- Calls fn(row) for every row in line order (matching `where`), a chunk at a time.
function Journal:each_row(where, fn)
  local after = 0
  while true do
    local chunk = self:rows(where, 1000, after)
    for _, r in ipairs(chunk) do fn(r) end
    if #chunk < 1000 then return end
    after = chunk[#chunk].line
  end
end

function Journal:finish(summary)
  self:exec(format("UPDATE runs SET ended = %s, summary = %s WHERE id = %s", int(now()), self:q(summary),
    int(self.run)))
end

function Journal:close()
  if self.con then self.con:close() self.con = nil end
  if self.env then self.env:close() self.env = nil end
end

return M
