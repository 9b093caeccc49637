-- Picks the transport: cosockets inside nginx (a blocking libcurl call there would stall the whole worker),
-- libcurl everywhere else, or the caller's own object. What a transport takes and gives back, and when it may
-- send a request twice, is the contract in transport/contract.lua.

local contract = require("essbasic.transport.contract")
local runtime = require("essbasic.runtime")

local M = {}

function M.default(opts)
  if runtime.in_nginx() then return require("essbasic.transport.ngx").new(opts) end
  return require("essbasic.transport.curl").new(opts)
end

-- opts.transport may be "curl", "ngx", or an object with request(req), which is held to the contract (a raise or
-- a malformed result becomes an error object).
function M.resolve(choice, opts)
  if choice == nil then return M.default(opts) end
  if choice == "curl" or choice == "ngx" then return require("essbasic.transport." .. choice).new(opts) end
  if type(choice) == "table" and type(choice.request) == "function" then return contract.checked(choice) end
  error("transport must be 'curl', 'ngx' or an object with a request method", 3)
end

return M
