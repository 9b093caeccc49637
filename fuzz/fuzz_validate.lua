-- fuzz_validate: the validator's two halves agree on any request. The input is "<action>\n<JSON params>"; for
-- whatever table the JSON gives, validate.request_body (the C checker, src/check.c, with the JSON it writes) and
-- validate._internal.reference_request (the Lua walk) must give the same verdict, and a body must be exactly
-- json.encode's bytes with the request's hint. Neither may raise.
local fail = ...
local validate = require("essbasic.validate")
local json = require("essbasic.json")
local api = require("essbasic.api")
local type, pcall, tostring, find, sub = type, pcall, tostring, string.find, string.sub

local actions = api.actions()

return function(data)
  local nl = find(data, "\n", 1, true)
  if not nl then return end
  local action = sub(data, 1, nl - 1)
  if not api.action(action) then
    -- an unknown name picks an action by its length, so every input exercises some schema
    action = actions[#action % #actions + 1]
  end
  local params = json.decode(sub(data, nl + 1))
  if type(params) ~= "table" then return end
  local ok, body, err = pcall(validate.request_body, action, params)
  if not ok then fail("request_body raised: " .. tostring(body)) end
  local rok, ref_ok = pcall(validate._internal.reference_request, action, params)
  if not rok then fail("reference_request raised: " .. tostring(ref_ok)) end
  if (body ~= nil) ~= (ref_ok == true) then
    fail(action .. ": request_body " .. (body and "passes" or "refuses") .. " what the Lua walk "
      .. (ref_ok and "passes" or "refuses") .. (err and (": " .. err.message) or ""))
  end
  if body ~= nil then
    local want = json.encode(params, api.request_hint(action))
    if body ~= want then fail(action .. ": request_body bytes differ from json.encode's") end
  elseif type(err) ~= "table" or type(err.message) ~= "string" then
    fail("a refusal without an error message")
  end
end
