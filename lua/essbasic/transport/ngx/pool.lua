-- nginx's per-worker connection pool as the ngx transport uses it: the key a connection is kept under, whether a
-- pooled connection that failed may be replaced by a fresh one (the stale-connection rule), and handing a
-- connection back.
--
-- The stale-connection rule (within the transport contract, transport/contract.lua):
--   * a pooled connection whose write fails (not a timeout) is replaced: at most part of the request left, and no
--     server acts on a request whose body it is still waiting for;
--   * a pooled connection that closes (or is reset) before a byte of the answer is replaced only for a repeatable
--     request: an idle close and a lost answer look the same from here;
--   * a connection is pooled only when its response was read whole: never with unread bytes. lua-nginx-module's
--     setkeepalive refuses a socket with bytes left in its buffer ("unread data in buffer") or readable in the
--     kernel ("connection in dubious state"), and closes a pooled connection on which anything arrives while it
--     sits idle (ngx_http_lua_socket_keepalive_close_handler); release() closes it when setkeepalive refuses.

local contract = require("essbasic.transport.contract")

local tostring, format, gsub = tostring, string.format, string.gsub

local M = {}

-- How many stale pooled connections one request may meet before it gives up. Each is closed as it is found, so
-- the pool empties in a few rounds.
M.STALE_ROUNDS = 4

M.DEFAULT_KEEPALIVE_MS = 60000

-- '|' and '%' escaped, so no slot's value can pass for another slot.
local function slot(v)
  return (gsub(tostring(v), "[|%%]", function(c) return format("%%%02X", c:byte()) end))
end

-- The key of the pool a connection to u is kept in: every setting that changes what the connection is (where it
-- goes, how TLS was checked, which proxy tunnel with which credentials) plus the caller's pool name, so that
-- different settings never share one. The TLS name (SNI and certificate check) is u's host, so host covers it.
function M.key(u, opts)
  local proxy = opts.proxy
  return format("essbasic|name=%s|scheme=%s|host=%s|port=%d|verify=%s|proxy=%s|proxy_auth=%s",
    slot(opts.pool), u.scheme, slot(u.host), u.port, tostring(opts.ssl_verify),
    proxy and slot(proxy.authority) or "-", proxy and proxy.auth_id or "-")
end

-- May this pooled connection, whose write just failed with err, be replaced? (A timeout may have left it all.)
function M.replace_after_write_failure(opts, reused, err)
  return reused and opts.retry_stale and err ~= "timeout"
end

-- May this pooled connection, closed before a byte of the answer to req, be replaced?
function M.replace_unanswered(opts, reused, req)
  return reused and opts.retry_stale and contract.may_resend(req)
end

-- Back to the pool when keep (the response was read whole and the connection may carry another), else closed.
function M.release(sock, keep, opts)
  if keep then
    local ok = sock:setkeepalive(opts.keepalive_ms, opts.pool_size)
    if not ok then sock:close() end
  else
    sock:close()
  end
end

return M
