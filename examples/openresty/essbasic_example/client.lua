-- One essbasic client per nginx worker, made on first use in a request (not in init_by_lua: the master's
-- copy would be forked into every worker, and nothing needs to run before the first request).
-- Inside nginx the client picks the cosocket transport by itself; the rate limit is shared by all workers
-- through `lua_shared_dict essbasic_ratelimit`, which the limiter finds by that name.

local essbasic = require("essbasic")
local config = require("essbasic_example.config")

local M = {}

local client

function M.get()
  if not client then
    client = essbasic.new{
      endpoint = config.endpoint,
      file_endpoint = config.file_endpoint,
      timeout = config.timeout,
      rate_limit = { rate = config.rate_limit },
    }
  end
  return client
end

return M
