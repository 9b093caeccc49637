-- The failure table of the scheduler rule (essbasic.scheduler): every failure a caller's code can raise in a
-- batch (its credentials provider, its transport, its on_done), run through one scheduler. The same table runs
-- in plain Lua (serial, batch) and inside nginx (light_threads): spec/scheduler_failures_spec.lua.
--
--   failure_table.run(sched, job) → { [case name] = summary }
-- sched: { new_client = function(opts) → client, break_transport = function(client, nth) } (from the next
-- request on, the nth raises); job: { secret_id, secret_key, endpoint, agent, group }.
-- A summary: { results = #results, ok = calls answered, errors = { message of each failed call }, reported =
-- on_done calls, raised = what call_many raised or nil, after = calls answered by a second batch on the client }.

local credentials = require("essbasic.credentials")

local M = {}

M.CALLS = 6

-- A caller's transport object around a real one; raise_on = n makes its nth request raise.
function M.wrapping(inner)
  local seen = 0
  local obj = {}
  function obj.request(_, req)
    seen = seen + 1
    if seen == obj.raise_on then error("transport boom") end
    return inner:request(req)
  end
  return obj
end

local function summary(client, job, on_done_raises, reqs)
  local s = { errors = {}, reported = 0, ok = 0 }
  local ok, results = pcall(client.call_many, client, reqs, { concurrency = 3, on_done = function()
    s.reported = s.reported + 1
    if on_done_raises and s.reported == 1 then error("on_done boom") end
  end })
  if not ok then
    s.raised = tostring(results)
  else
    s.results = #results
    for i = 1, #results do
      local resp, err = results[i][1], results[i][2]
      if resp and resp.FlowGroupId == job.group then s.ok = s.ok + 1 end
      if err then s.errors[#s.errors + 1] = tostring(err.code) .. ": " .. tostring(err.message) end
    end
  end
  local after = client:call_many(reqs, { concurrency = 3 })
  s.after = 0
  for i = 1, #after do if after[i][1] and after[i][1].FlowGroupId == job.group then s.after = s.after + 1 end end
  return s
end

function M.run(sched, job)
  local reqs = {}
  for i = 1, M.CALLS do reqs[i] = { "DescribeFlowDetailInfo", { Agent = job.agent, FlowGroupId = job.group } } end
  local base = { endpoint = job.endpoint, file_endpoint = job.endpoint, rate_limit = false, retry = false }
  local function opts(extra)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(extra) do o[k] = v end
    return o
  end
  local out = {}

  -- a credentials provider that raises on its second use, then works again
  local static = credentials.static{ secret_id = job.secret_id, secret_key = job.secret_key }
  local get, uses = static.get, 0
  static.get = function()
    uses = uses + 1
    if uses == 2 then error("provider boom") end
    return get()
  end
  out.provider = summary(sched.new_client(opts{ credentials = static }), job, false, reqs)

  local keys = { secret_id = job.secret_id, secret_key = job.secret_key }
  local client = sched.new_client(opts(keys))
  sched.break_transport(client, 2)
  out.transport = summary(client, job, false, reqs)

  out.on_done = summary(sched.new_client(opts(keys)), job, true, reqs)
  return out
end

-- What every scheduler must give for the table (busted's assert, in the spec).
function M.check(assert, name, out)
  for _, case in ipairs{ { "provider", "provider boom" }, { "transport", "transport boom" } } do
    local s, what = out[case[1]], name .. ": " .. case[1] .. ": "
    assert.equal(M.CALLS, s.results, what .. "a result per call")
    assert.equal(M.CALLS - 1, s.ok, what .. "the other calls answered")
    assert.equal(1, #s.errors, what .. "one error")
    assert.truthy(s.errors[1]:find(case[2], 1, true), s.errors[1])
    assert.equal(M.CALLS, s.reported, what .. "every call reported")
    assert.equal(M.CALLS, s.after, what .. "the client clean after")
  end
  local d = out.on_done
  assert.truthy(d.raised and d.raised:find("on_done boom", 1, true), name .. ": on_done: raised after the batch")
  assert.equal(M.CALLS, d.reported, name .. ": on_done: every call reported")
  assert.equal(M.CALLS, d.after, name .. ": on_done: the client clean after")
end

return M
