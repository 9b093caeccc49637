-- The sandbox's admin endpoints (/sandbox/faults, /sandbox/stats) answer only requests a program on this machine
-- made on purpose: a loopback Host (a DNS-rebound name of a web page is refused, so a page in the developer's
-- browser cannot read them), no foreign Origin, and a JSON body (Content-Type application/json) for what changes
-- state: a cross-site form or a no-cors fetch can only send text/plain, form or multipart bodies, and a JSON one
-- from another origin needs a CORS preflight, which the sandbox never grants.
--
--   require("sandbox.admin_guard").refused(uri) → true after answering 403 / 415 itself (the caller returns), or
--   false (not an admin endpoint, or an allowed request)

local M = {}

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true, ["::1"] = true }

local function is_admin(uri)
  return uri == "/sandbox/stats" or uri == "/sandbox/faults" or uri:find("^/sandbox/faults/") ~= nil
end

-- "host[:port]" → host, lower case (an IPv6 address keeps its brackets).
local function host_of(authority)
  authority = authority:lower()
  return authority:match("^(%[[^%]]*%])") or authority:match("^([^:]*)")
end

local function answer(status, message)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print('{"ok":false,"error":"' .. message .. '"}')
  return true
end

-- Why the request is refused, or nil.
local function problem()
  if not LOOPBACK[host_of(ngx.var.http_host or "")] then return 403, "admin endpoints answer a loopback Host only" end
  local origin = ngx.var.http_origin
  if origin and not LOOPBACK[host_of(origin:match("^%a[%w+.-]*://(.*)$") or "")] then
    return 403, "admin endpoints answer no foreign Origin"
  end
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "HEAD" and method ~= "DELETE" then
    local ctype = (ngx.var.http_content_type or ""):lower()
    if not ctype:find("^application/json%s*;?") then
      return 415, "admin endpoints take application/json only"
    end
  end
  return nil
end

function M.refused(uri)
  if not is_admin(uri) then return false end
  local status, message = problem()
  if not status then return false end
  ngx.log(ngx.WARN, "essbasic sandbox: refused ", ngx.req.get_method(), " ", uri, ": ", message)
  return answer(status, message)
end

return M
