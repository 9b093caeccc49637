-- fuzz_response: what the client does with every answer (lua/essbasic/envelope.lua over core.json_decode) never
-- raises: it returns the Response table, or nil and an essbasic error object that prints.
local fail = ...
local envelope = require("essbasic.envelope")
local errors = require("essbasic.errors")
local type, pcall, tostring, byte = type, pcall, tostring, string.byte

local STATUSES = { 200, 200, 200, 400, 404, 500, 502, 503 }

return function(data)
  -- The first byte picks a status (mostly 200), the whole input is the body.
  local status = #data > 0 and STATUSES[byte(data, 1) % #STATUSES + 1] or 200
  for _, st in ipairs({ 200, status }) do
    local ok, resp, err = pcall(envelope.decode, st, data)
    if not ok then fail("envelope.decode raised: " .. tostring(resp)) end
    if resp ~= nil then
      if type(resp) ~= "table" or err ~= nil then fail("success must be a lone table") end
      if st ~= 200 then fail("a success envelope under HTTP " .. st .. " must be an error") end
    else
      if not errors.is_error(err) then fail("failure without an error object") end
      local sok, text = pcall(tostring, err)
      if not sok or type(text) ~= "string" or not text:find("^essbasic: ") then
        fail("the error object does not print: " .. tostring(text))
      end
      if type(err.code) ~= "string" or err.code == "" then fail("error without a code") end
    end
  end
end
