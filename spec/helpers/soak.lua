--[==[ The never-twice soak: many creations through call_many (libcurl's multi), through the fault proxy, a share
of the answers lost at random after the sandbox did the work, and the sandbox's own count of groups at the end.

  local figures = require("helpers.soak").run{ sb = sb, fp = fp, n = 1000, loss = 0.1, concurrency = 10, seed = 7 }
  figures.calls, .successes, .unknown, .other_failures, .lost (answers the proxy dropped), .sent (creations that
  reached the sandbox), .groups (groups the sandbox created), .duplicates (creations carried out more than once:
  sent - n when positive; and groups beyond successes + unknown-that-reached), .seconds
]==]

local core = require("essbasic.core")

local CREATE = "ChannelCreateFlowGroupByFiles"

local M = {}

function M.run(o)
  local sb, fp = o.sb, o.fp
  local client = sb:client{ endpoint = fp.endpoint, file_endpoint = fp.endpoint, rate_limit = false,
    timeout = o.timeout or 5, retry = { base_delay = 0.01, max_delay = 0.05 } }
  local file_id = sb:upload(client)
  local requests = {}
  for i = 1, o.n do
    requests[i] = { CREATE, sb:group_request({ file_id, file_id }, { name = "soak-" .. (o.tag or "") .. i }) }
  end
  fp:reset()
  fp:plan{ { fault = "lose_answer", action = CREATE, rate = o.loss, seed = o.seed or 7 } }
  local before = sb:stats().groups
  local t0 = core.monotonic()
  local results = client:call_many(requests, { concurrency = o.concurrency or 10 })
  local seconds = core.monotonic() - t0
  client:close()
  local f = { calls = o.n, successes = 0, unknown = 0, other_failures = 0, seconds = seconds }
  for i = 1, o.n do
    local resp, err = results[i][1], results[i][2]
    if resp then
      f.successes = f.successes + 1
    elseif err.code == "ClientError.OutcomeUnknown" then
      f.unknown = f.unknown + 1
    else
      f.other_failures = f.other_failures + 1
    end
  end
  local st = fp:stats()
  f.lost = st.faults.lose_answer or 0
  f.sent = st.by_action[CREATE] or 0
  f.groups = sb:stats().groups - before
  -- every lost answer belongs to a creation that reached the sandbox: those are the unknown ones that reached it
  f.duplicates = math.max(0, f.sent - o.n) + math.max(0, f.groups - (f.successes + f.lost))
  return f
end

function M.format(f)
  return ("%d creations in %.1f s: %d successes, %d outcome unknown (%d answers lost by the proxy), %d other "
    .. "failures; %d requests reached the sandbox, %d groups created, %d duplicates"):format(f.calls, f.seconds,
    f.successes, f.unknown, f.lost, f.other_failures, f.sent, f.groups, f.duplicates)
end

return M
