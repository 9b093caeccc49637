-- The essbasic response envelope, both ways:
--   success  {"Response": {..., "RequestId": "…"}}
--   failure  {"Response": {"Error": {"Code": "…", "Message": "…"}, "RequestId": "…"}}
--   legacy   {"code": <non-zero>, "message": "…", "codeDesc": "…"}
-- decode() is what the client does with every answer (the sandbox writes its answers with sandbox/envelope.lua).

local json = require("essbasic.json")
local errors = require("essbasic.errors")

local type, tostring, sub, gsub = type, tostring, string.sub, string.gsub

local M = {}

-- A short, printable excerpt of a body that is not an envelope (an HTML 502 page, say) for the message.
local function excerpt(body)
  local s = gsub(sub(body or "", 1, 160), "[%c]", " ")
  if #(body or "") > 160 then s = s .. "…" end
  return s
end

-- status, body → Response table, or nil and an error object.
function M.decode(status, body)
  local doc = json.decode(body)
  local resp = type(doc) == "table" and doc.Response
  if type(resp) == "table" then
    local e = resp.Error
    if e ~= nil then
      -- an Error member always means failure; without a usable Code the envelope is malformed (found by fuzzing:
      -- an empty Code gave an error object with an empty code, and an Error without Code passed as success)
      local code = type(e) == "table" and e.Code
      if (type(code) == "string" and code ~= "") or type(code) == "number" then
        return nil, errors.new{ kind = "service", code = tostring(code), message = tostring(e.Message or code),
          request_id = resp.RequestId, http_status = status }
      end
      return nil, errors.new{ kind = "parse", code = errors.PARSE_JSON, request_id = resp.RequestId,
        http_status = status, message = "the response's Error has no Code: " .. excerpt(body) }
    end
    if status ~= 200 then
      return nil, errors.new{ kind = "http", code = errors.HTTP_STATUS, http_status = status,
        request_id = resp.RequestId, message = "HTTP " .. tostring(status) .. " with a success envelope" }
    end
    return resp
  end
  if type(doc) == "table" and doc.code ~= nil and doc.code ~= 0 then
    return nil, errors.new{ kind = "service", code = tostring(doc.codeDesc or doc.code),
      message = tostring(doc.message or doc.codeDesc), http_status = status }
  end
  if status ~= 200 then
    return nil, errors.new{ kind = "http", code = errors.HTTP_STATUS, http_status = status,
      message = "HTTP " .. tostring(status) .. ": " .. excerpt(body) }
  end
  return nil, errors.new{ kind = "parse", code = errors.PARSE_JSON, http_status = status,
    message = (doc == nil and "the body is not JSON: " or "the JSON has no Response object: ") .. excerpt(body) }
end

return M
