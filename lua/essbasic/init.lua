-- essbasic: Tencent Cloud e-signature API for partner platforms (essbasic 2021-05-26) from Lua and OpenResty.
--   local essbasic = require("essbasic")
--   local client = essbasic.new{ secret_id = "...", secret_key = "..." }
--   local resp, err = client:ChannelCreateFlowGroupByFiles{ ... }
-- Nothing here does I/O at require time. What a call needs loads here, at require: the C core (libcurl,
-- OpenSSL), the schema and the validator compiled from it (its C checker built once), about 20 ms in all on the
-- benchmark machine; under OpenResty, require it in init_by_lua so the workers inherit it. Only the modules a
-- call does not need (flow, callback, ...) load on first use, through M's __index below.

local client = require("essbasic.client")

local M = {
  VERSION = client.VERSION,
  API_VERSION = require("essbasic.api").schema.version, -- written once: the generated schema
}

function M.new(opts)
  local c = client.new(opts) -- not a tail call: the option errors (level 4) name the caller's line
  return c
end

-- An UploadFile table (FileName, FileBody in base64) from a file on disk, for UploadFiles.
-- When the file cannot be read: err, err (a ClientError.FileError), so `local f, err = essbasic.file(p)` sees the
-- error, and so does a call given FileInfos = { essbasic.file("a.pdf"), essbasic.file("b.pdf") } (a table
-- constructor keeps only the first value): the call returns nil and that error.
function M.file(path, name)
  if type(path) ~= "string" then error("essbasic.file expects a path", 2) end
  local f, why = io.open(path, "rb")
  if not f then
    local errors = require("essbasic.errors")
    local err = errors.new{ kind = "client", code = errors.FILE, message = tostring(why) }
    return err, err
  end
  local bytes = f:read("*a")
  f:close()
  return { FileName = name or path:match("([^/]+)$"), FileBody = require("essbasic.core").base64_encode(bytes) }
end

-- essbasic.json, essbasic.errors, essbasic.flow, essbasic.callback, essbasic.credentials, … as fields of M.
local LAZY = { json = true, errors = true, flow = true, callback = true, credentials = true, api = true,
  validate = true }

return setmetatable(M, {
  __index = function(t, k)
    if LAZY[k] then
      local mod = require("essbasic." .. k)
      rawset(t, k, mod)
      return mod
    end
    return nil
  end,
})
