-- The sandbox's state and its data folder.
--
-- All state lives in one table in the one nginx worker's Lua VM (the sandbox runs worker_processes 1, so there is
-- exactly one copy and no cross-process locking). Handlers change it only in code that does not yield: every
-- cosocket or ngx.sleep call happens before a change starts (reading the request body, reading a new contract's
-- uploads with the PDF tools) or after it ended (sending callbacks), so two requests can interleave only between
-- changes, never inside one.
--
-- After each change the whole state is written as JSON to a temporary file and renamed over state.json (blocking
-- io: nothing else runs meanwhile; rename is atomic), so a crash or a restart leaves either the old or the new
-- state. Uploaded files go to files/<FileId> the same way, before the state that names them.
--
-- The data folder holds people's names and mobiles: the launcher makes it private (sandbox/launch.lua), the worker
-- runs with umask 077 (M.restrict_umask: nginx's daemon mode sets umask 0), and every temporary file has a fresh
-- random name and is created with O_CREAT | O_EXCL (inside nginx, through LuaJIT's FFI), which never follows a
-- symlink planted at that name.

local json = require("essbasic.json")
local core = require("essbasic.core")

local io_open, os_rename, os_remove, type, pairs, tostring, tonumber, pcall, require = io.open, os.rename, os.remove,
  type, pairs, tostring, tonumber, pcall, require

local M = {}

local STATE_VERSION = 1

local function empty_state()
  return {
    version = STATE_VERSION,
    files = {},     -- FileId → { id, app, name, size, created, expires }
    groups = {},    -- FlowGroupId → { id, app, org_open_id, operator_open_id, name, created, flow_ids, signers }
    flows = {},     -- FlowId → { id, group, app, name, ..., status, approvers = { ... } }
    tokens = {},    -- sign token → { group = FlowGroupId, signer = signer key } or a batch link's { flows, ... }
    tasks = {},     -- cancel TaskId → { id, app, status, success, failures }
    orgs = {},      -- AppId/OrganizationOpenId → sub-company { name, status, active, operators, seals, ... }
    downloads = {}, -- download token → { flow | folders, expires, once, used }
    console_tokens = {}, -- console token → { org, operator, expires }
    counters = { groups_created = 0, flows_created = 0, files_uploaded = 0, signed = 0, rejected = 0,
      cancelled = 0, deadlines = 0 },
  }
end

local data_dir
M.state = empty_state()

-- LuaJIT's FFI (inside nginx), or nil (plain Lua, where the sandbox writes nothing but through the launcher).
local ffi = (function()
  local ok, f = pcall(require, "ffi")
  if not ok then return nil end
  local declared = pcall(f.cdef, [[
    int open(const char *path, int flags, ...);
    long write(int fd, const void *buf, unsigned long n);
    int close(int fd);
    unsigned int umask(unsigned int mask);
  ]])
  return declared and f or nil
end)()

-- The generic Linux values (x86, x86-64, ARM, arm64 alike).
local O_WRONLY, O_CREAT, O_EXCL, O_CLOEXEC = 1, 64, 128, 524288 -- 01, 0100, 0200, 02000000
local PRIVATE_FILE = 384 -- 0600

-- umask 077 for this process (an nginx worker: init_worker_by_lua, after nginx's daemon mode set umask 0).
function M.restrict_umask()
  if ffi then ffi.C.umask(63) end
end

-- Creates path (which must not exist: a symlink there is refused, not followed) with bytes in it, mode 0600.
local function write_new(path, bytes)
  if not ffi then -- plain Lua has no O_EXCL: the fresh random name in a private folder stands in for it
    local f, why = io_open(path, "wb")
    if not f then return nil, why end
    local ok, werr = f:write(bytes)
    local closed, cerr = f:close()
    if not ok or not closed then return nil, werr or cerr end
    return true
  end
  local fd = ffi.C.open(path, O_WRONLY + O_CREAT + O_EXCL + O_CLOEXEC, ffi.new("int", PRIVATE_FILE))
  if fd < 0 then return nil, "open failed (errno " .. ffi.errno() .. ")" end
  local at, n = 0, #bytes
  while at < n do
    local w = tonumber(ffi.C.write(fd, ffi.cast("const char *", bytes) + at, n - at))
    if w <= 0 then
      local errno = ffi.errno()
      ffi.C.close(fd)
      return nil, "write failed (errno " .. errno .. ")"
    end
    at = at + w
  end
  if ffi.C.close(fd) ~= 0 then return nil, "close failed (errno " .. ffi.errno() .. ")" end
  return true
end

local function write_atomic(path, bytes)
  local tmp = path .. ".tmp." .. core.hex(core.random_bytes(8))
  local written, why = write_new(tmp, bytes)
  if not written then
    os_remove(tmp)
    return nil, "cannot write " .. tmp .. ": " .. tostring(why)
  end
  local renamed, rerr = os_rename(tmp, path)
  if not renamed then return nil, "cannot rename " .. tmp .. ": " .. tostring(rerr) end
  return true
end

-- The whole file, or nil and why (a missing file is nil): the sandbox's one reader of files.
local function read_all(path)
  local f, why = io_open(path, "rb")
  if not f then return nil, why end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_all

-- Opens the data folder (created when missing) and loads state.json if there is one.
function M.open(dir)
  data_dir = dir
  os.execute("mkdir -p -m 700 '" .. dir:gsub("'", "'\\''") .. "/files'") -- the launcher made both already
  local text = read_all(dir .. "/state.json")
  if text then
    local loaded, why = json.decode(text)
    if type(loaded) ~= "table" or loaded.version ~= STATE_VERSION then
      return nil, "state.json in " .. dir .. " is unreadable (" .. tostring(why) .. "); move it away to start afresh"
    end
    local fresh = empty_state()
    for k, v in pairs(fresh) do
      if loaded[k] == nil then loaded[k] = v end
    end
    for k, v in pairs(fresh.counters) do
      if loaded.counters[k] == nil then loaded.counters[k] = v end
    end
    M.state = loaded
  else
    M.state = empty_state()
  end
  return true
end

-- Writes the state; called at the end of every change.
function M.save()
  local text, why = json.encode(M.state)
  if not text then return nil, "cannot encode the state: " .. tostring(why) end
  return write_atomic(data_dir .. "/state.json", text)
end

function M.put_file(id, bytes)
  return write_atomic(data_dir .. "/files/" .. id, bytes)
end

function M.get_file(id)
  if not id:match("^%x+$") then return nil end
  return read_all(data_dir .. "/files/" .. id)
end

function M.data_dir()
  return data_dir
end

return M
