-- nginx-side code of spec/ratelimit_redis_nginx_spec.lua and spec/callback_dedup_spec.lua (loaded inside the
-- test nginx through its lua_package_path, which covers spec/).
-- luacheck: read globals ngx
local M = {}

-- POST /run with a JSON body { endpoint, secret_id, secret_key, agent, calls, start_at (wall clock), concurrency,
-- rate_limit (the client's option; absent: the default, which finds lua_shared_dict essbasic_ratelimit),
-- retry_interval }: waits for start_at, sends `calls` read-only calls through call_many (light threads over
-- cosockets) and answers { elapsed, codes, attempts, calls, pid }.
function M.run()
  local essbasic = require("essbasic")
  local json = require("essbasic.json")
  ngx.req.read_body()
  local cfg = json.decode(ngx.req.get_body_data())
  if cfg.retry_interval then require("essbasic.ratelimit.redis").RETRY_INTERVAL = cfg.retry_interval end
  local client = essbasic.new{ secret_id = cfg.secret_id, secret_key = cfg.secret_key, endpoint = cfg.endpoint,
    file_endpoint = cfg.endpoint, rate_limit = cfg.rate_limit, timeout = 10 }
  ngx.update_time()
  if cfg.start_at > ngx.now() then ngx.sleep(cfg.start_at - ngx.now()) end
  ngx.update_time()
  local t0 = ngx.now()
  local requests = {}
  for i = 1, cfg.calls do
    requests[i] = { "DescribeFlowDetailInfo", { Agent = cfg.agent, FlowGroupId = "fleet-" .. i } }
  end
  local codes, attempts = {}, 0
  local results = client:call_many(requests, { concurrency = cfg.concurrency or 4, on_done = function(_, resp, second)
    local code = resp and "ok" or second.code
    if code == "ResourceNotFound.FlowGroup" then code = "ok" end
    codes[code] = (codes[code] or 0) + 1
    attempts = attempts + (second.attempts or 1)
  end })
  ngx.update_time()
  ngx.say(json.encode{ elapsed = ngx.now() - t0, codes = codes, attempts = attempts, calls = #results,
    pid = ngx.worker.pid() })
end

-- The callback receiver: callback.handle with a store (Redis when the location sets $redis_url, else the
-- lua_shared_dict "callbacks"), and a handler that takes `ngx.var.arg_sleep` seconds, counts its runs in the
-- shared dict "runs" (by MsgId) and fails (returns false) when the request has ?fail=1.
function M.receive(token)
  local callback = require("essbasic.callback")
  local callback_store = require("essbasic.callback_store")
  local store
  if ngx.var.redis_url and ngx.var.redis_url ~= "" then
    M.redis_store = M.redis_store or callback_store.redis(ngx.var.redis_url, { lock_ttl = 5 })
    store = M.redis_store
  else
    store = callback_store.shared_dict("callbacks", { lock_ttl = 5 })
  end
  callback.handle({ token = token, store = store }, function(msg)
    ngx.shared.runs:incr(msg.MsgId, 1, 0)
    local pause = tonumber(ngx.var.arg_sleep or "")
    if pause then ngx.sleep(pause) end
    return ngx.var.arg_fail ~= "1"
  end)
end

return M
