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

-- A code as the envelope gives it: a non-empty string or a number, else nil (an empty `codeDesc`, a code that is a
-- table: every error the client returns has a code of its own, so these fall through to the next candidate).
local function code_of(v)
  if type(v) == "number" or (type(v) == "string" and v ~= "") then return tostring(v) end
  return nil
end

-- A message as the envelope gives it: a string or a number, else the fallback.
local function text_of(v, fallback)
  if type(v) == "string" or type(v) == "number" then return tostring(v) end
  return fallback
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
      local code = type(e) == "table" and code_of(e.Code)
      if code then
        return nil, errors.new{ kind = "service", code = code, message = text_of(e.Message, code),
          request_id = text_of(resp.RequestId), http_status = status }
      end
      return nil, errors.new{ kind = "parse", code = errors.PARSE_JSON, request_id = text_of(resp.RequestId),
        http_status = status, message = "the response's Error has no Code: " .. excerpt(body) }
    end
    if status ~= 200 then
      return nil, errors.new{ kind = "http", code = errors.HTTP_STATUS, http_status = status,
        request_id = text_of(resp.RequestId), message = "HTTP " .. tostring(status) .. " with a success envelope" }
    end
    return resp
  end
  -- The legacy envelope: its codeDesc names the error ("InvalidParameter"), its code is a number; an empty
  -- codeDesc (found by fuzzing, fuzz/regressions/fuzz_response/) falls back to the code.
  if type(doc) == "table" and doc.code ~= nil and doc.code ~= 0 and doc.code ~= "0" then
    local code = code_of(doc.codeDesc) or code_of(doc.code)
    if code then
      return nil, errors.new{ kind = "service", code = code, message = text_of(doc.message, code),
        http_status = status }
    end
    return nil, errors.new{ kind = "parse", code = errors.PARSE_JSON, http_status = status,
      message = "the legacy envelope has no usable code: " .. excerpt(body) }
  end
  if status ~= 200 then
    return nil, errors.new{ kind = "http", code = errors.HTTP_STATUS, http_status = status,
      message = "HTTP " .. tostring(status) .. ": " .. excerpt(body) }
  end
  return nil, errors.new{ kind = "parse", code = errors.PARSE_JSON, http_status = status,
    message = (doc == nil and "the body is not JSON: " or "the JSON has no Response object: ") .. excerpt(body) }
end

return M
