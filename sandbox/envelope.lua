-- The envelopes the sandbox answers with, as the API writes them (essbasic.envelope is the client's reader):
--   success  {"Response": {..., "RequestId": "…"}}
--   failure  {"Response": {"Error": {"Code": "…", "Message": "…"}, "RequestId": "…"}}

local json = require("essbasic.json")

local M = {}

function M.error_body(code, message, request_id)
  return json.encode({ Response = { Error = { Code = code, Message = message }, RequestId = request_id } })
end

-- response: the Response members; hint: the response struct's fields (lists stay lists when empty).
function M.success_body(response, request_id, hint)
  response.RequestId = request_id
  return json.encode({ Response = response }, hint and { Response = { fields = hint } })
end

return M
