-- JSON answers for the example's handlers.
local json = require("essbasic.json")

local M = {}

function M.json(status, doc)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(json.encode(doc))
  return status
end

-- The HTTP status for an essbasic error: the caller's fault (400), ours (500), the API's or the network's (502).
local STATUS_BY_KIND = { validation = 400, client = 500, service = 502, network = 502, http = 502, parse = 502 }

function M.error(err)
  local status = STATUS_BY_KIND[err.kind] or 500
  return M.json(status, { error = err.code, message = err.message, request_id = err.request_id,
    problems = err.problems })
end

return M
