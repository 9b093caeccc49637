--[==[ The never-twice soak: many creations through call_many (libcurl's multi), through the fault proxy, a share
of the answers lost at random after the sandbox did the work, and the sandbox's own count of groups at the end.

  local figures = require("helpers.soak").run{ sb = sb, fp = fp, n = 1000, loss = 0.1, concurrency = 10, seed = 7,
    refuse = { every = 20, hold = 0.15 } }   -- refuse: optional, see below
  figures.calls, .successes, .unknown, .other_failures, .lost (answers the proxy dropped), .sent (creations that
  reached the sandbox), .groups (groups the sandbox created), .duplicates (requests that reached the sandbox beyond
  one per success or unknown, and groups beyond those requests), .not_sent (failures the client
  called certainly not sent), .seconds
refuse: the client reaches the proxy through helpers/gate.lua, which stops accepting connections for `hold`
seconds after every `every`-th connection the proxy closed (a lost answer closes one): libcurl's own resend of the
creation after the lost answer is refused, as during a server restart. The client's retries then outlast a
refusal, so every creation is sent.
]==]

local core = require("essbasic.core")

local CREATE = "ChannelCreateFlowGroupByFiles"

local M = {}

function M.run(o)
  local sb, fp = o.sb, o.fp
  local endpoint, gate = fp.endpoint, nil
  if o.refuse then
    gate = require("helpers.gate").start{ upstream_port = tonumber(fp.endpoint:match(":(%d+)$")), mode = "refuse",
      hold = o.refuse.hold or 0.15, every = o.refuse.every or 20, times = 1e9 }
    endpoint = "http://127.0.0.1:" .. gate.port
  end
  local client = sb:client{ endpoint = endpoint, file_endpoint = endpoint, rate_limit = false,
    timeout = o.timeout or 5,
    retry = o.refuse and { max_attempts = 10, base_delay = 0.05, max_delay = 0.2 }
      or { base_delay = 0.01, max_delay = 0.05 } }
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
  if gate then gate:stop() end
  local f = { calls = o.n, successes = 0, unknown = 0, other_failures = 0, not_sent = 0, seconds = seconds }
  for i = 1, o.n do
    local resp, err = results[i][1], results[i][2]
    if resp then
      f.successes = f.successes + 1
    elseif err.code == "ClientError.OutcomeUnknown" then
      f.unknown = f.unknown + 1
    else
      f.other_failures = f.other_failures + 1
      if err.sent == false then f.not_sent = f.not_sent + 1 end
    end
  end
  local st = fp:stats()
  f.lost = st.faults.lose_answer or 0
  f.sent = st.by_action[CREATE] or 0
  f.groups = sb:stats().groups - before
  -- Each creation reported as a success or as unknown may have reached the sandbox once; any request beyond those
  -- (a creation sent twice, or one reported "not sent" that did reach it) and any group beyond the requests is a
  -- duplicate.
  f.duplicates = math.max(0, f.sent - (f.successes + f.unknown)) + math.max(0, f.groups - f.sent)
  return f
end

function M.format(f)
  return ("%d creations in %.1f s: %d successes, %d outcome unknown (%d answers lost by the proxy), %d other "
    .. "failures (%d called not sent); %d requests reached the sandbox, %d groups created, %d duplicates")
    :format(f.calls, f.seconds, f.successes, f.unknown, f.lost, f.other_failures, f.not_sent, f.sent, f.groups,
      f.duplicates)
end

return M
