-- Picks the transport: cosockets inside nginx (a blocking libcurl call there would stall the whole worker),
-- libcurl everywhere else. Every transport has request(req) → { status, headers, body } or nil, err where
-- req = { method, url, headers, body, timeout, connect_timeout, response_headers }. response_headers = false says
-- the caller reads only status and body (the client, on every call): a transport may then leave headers out.

local M = {}

-- True when this code runs inside nginx's Lua module (OpenResty or Debian's libnginx-mod-http-lua).
function M.in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.config) == "table" and ngx.config.ngx_lua_version ~= nil
end

function M.default(opts)
  if M.in_nginx() then return require("essbasic.transport.ngx").new(opts) end
  return require("essbasic.transport.curl").new(opts)
end

-- opts.transport may be "curl", "ngx", or an object with request(req).
function M.resolve(choice, opts)
  if choice == nil then return M.default(opts) end
  if choice == "curl" or choice == "ngx" then return require("essbasic.transport." .. choice).new(opts) end
  if type(choice) == "table" and type(choice.request) == "function" then return choice end
  error("transport must be 'curl', 'ngx' or an object with a request method", 3)
end

return M
