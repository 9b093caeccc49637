-- Running calls (essbasic.call) to their end: one at a time, or many at once for client:call_many.
--
--   scheduler.run(client, c)                       one call, attempt after attempt (client:call)
--   scheduler.many(client, calls, concurrency, on_done)
--     by the concurrency the transport declares (transport/contract.lua): "batch" (libcurl's multi interface),
--     "light_threads" (nginx), "serial" (one call after another).
--
-- The one rule, the same in every scheduler: each step of a call (take_token, next_request, the transport,
-- conclude) runs protected; a step that raises (a caller's credentials provider or transport, or a bug) ends that
-- call alone, as an UnexpectedError (OutcomeUnknown once an attempt of a creating action may have been sent), and
-- the other calls go on. Every scheduler drains what it started before it returns, and protects itself from
-- on_done: a callback that raises does not stop the batch; once every call has finished, the first such error is
-- raised again (prefixed with the call's index when it is a string), so the caller sees it and the client is
-- left clean.

local call = require("essbasic.call")
local retry = require("essbasic.retry")
local runtime = require("essbasic.runtime")
local contract = require("essbasic.transport.contract")

local type, pcall, error, tostring, pairs, min, max = type, pcall, error, tostring, pairs, math.min, math.max
local remove = table.remove

local DONE, FAILED = call.DONE, call.FAILED

local M = {}

-- One step of call c, protected: → true and the step's two values, or false once a raise ended the call.
local function step(c, fn, a, b, d)
  local ok, x, y = pcall(fn, a, b, d)
  if ok then return true, x, y end
  c:fail_raised(x)
  return false
end

-- One call's attempts until DONE or FAILED (unprotected: run and the serial schedulers protect it as a whole).
local function attempts(client, c)
  while true do
    local wait, err = c:take_token()
    if not wait then return c:fail(err) end
    if wait > 0 then runtime.sleep(wait) end
    local req
    req, err = c:next_request()
    if not req then return c:fail(err) end
    local res
    res, err = client.transport:request(req)
    local outcome = c:conclude(res, err)
    if outcome == DONE or outcome == FAILED then return outcome end
    runtime.sleep(c.retry_delay)
  end
end

-- One call to its end → resp, nil, meta or nil, err. A step that raises ends the call as step() does (one pcall
-- around the attempts: the same rule at the cost of one protected call, not four per attempt).
function M.run(client, c)
  local ok, why = pcall(attempts, client, c)
  if not ok then c:fail_raised(why) end
  return c:result()
end

-- The results table and the protected on_done of one batch.
local function reporter(results, on_done)
  local r = { results = results }
  function r.finish(c)
    local resp, err, meta = c:result()
    results[c.index] = { resp, err, meta }
    if not on_done then return end
    local ok, why = pcall(on_done, c.index, resp, err, meta)
    if not ok and r.raised == nil then r.raised, r.raised_index = why, c.index end
  end
  function r.close()
    if r.raised == nil then return results end
    local why = r.raised
    if type(why) == "string" then
      why = "essbasic: call_many's on_done raised for call " .. r.raised_index .. ": " .. why
    end
    error(why, 0)
  end
  return r
end

local function run_reported(client, c, r)
  M.run(client, c)
  r.finish(c)
end

local function serial(client, calls, _, r)
  for i = 1, #calls do run_reported(client, calls[i], r) end
end

-- nginx: light threads over cosockets, each taking the next call when it is free.
local function light_threads(client, calls, concurrency, r)
  local thread = runtime.light_threads
  local next_index = 0
  local function worker()
    while next_index < #calls do
      next_index = next_index + 1
      run_reported(client, calls[next_index], r)
    end
  end
  local spawned = {}
  for t = 1, min(concurrency, #calls) do spawned[t] = thread.spawn(worker) end
  local failure
  for t = 1, #spawned do
    local ok, why = thread.wait(spawned[t])
    if not ok then failure = failure or why end
  end
  -- A thread that died (nginx killed it, or a bug) leaves no call without a result.
  for i = 1, #calls do
    local c = calls[i]
    if r.results[c.index] == nil then
      c:fail_raised("its light thread ended early: " .. tostring(failure))
      r.finish(c)
    end
  end
end

-- libcurl's multi interface, the call objects themselves naming their transfers. Rate-limit waits are kept in
-- the queue (a reserved token and the time it may be used), never slept while transfers run. A batch whose poll
-- raised is abandoned (nothing of it may finish inside the next one): the calls it held end as raised, the rest
-- go on in a new batch.
--
-- A refusal (a connection refused, a request that never left, RequestLimitExceeded) that will be retried holds
-- back the calls not yet started until that retry: the server said "not now", and starting the queue meanwhile
-- would spend every call's first attempt on the same refusal (issue 22's soak: a 0.15 s refusal cost hundreds).
local function batch(client, calls, concurrency, r)
  local transport = client.transport
  local current = transport:batch()
  local queue, flying, in_flight = {}, {}, 0
  local hold_until = 0 -- new starts wait until then (a refused attempt's retry)
  for i = 1, #calls do
    calls[i].ready_at = 0
    queue[i] = calls[i]
  end
  local function start(c, now)
    local ok, wait, err = true, 0, nil
    if not c.has_token then ok, wait, err = step(c, c.take_token, c) end
    if not ok then return r.finish(c) end
    if not wait then
      c:fail(err)
      return r.finish(c)
    end
    if wait > 0 then
      c.has_token, c.ready_at = true, now + wait -- the token is reserved; send when its time comes
      queue[#queue + 1] = c
      return
    end
    c.has_token = false
    local req
    ok, req, err = step(c, c.next_request, c)
    if not ok then return r.finish(c) end
    if not req then
      c:fail(err)
      return r.finish(c)
    end
    if not step(c, current.add, current, c, req) then return r.finish(c) end
    flying[c], in_flight = true, in_flight + 1
  end
  while #queue > 0 or in_flight > 0 do
    local now = runtime.interval_clock()
    local soonest
    local i = 1
    while i <= #queue and in_flight < concurrency do
      local c = queue[i]
      local ready_at = c.attempts == 0 and max(c.ready_at, hold_until) or c.ready_at
      if ready_at > now then
        soonest = soonest and min(soonest, ready_at) or ready_at
        i = i + 1
      else
        remove(queue, i)
        start(c, now)
      end
    end
    local poll_wait = 1
    if soonest then poll_wait = max(0, min(poll_wait, soonest - runtime.interval_clock())) end
    if in_flight == 0 then
      if soonest then runtime.sleep(poll_wait) end
    else
      local ok, done = pcall(current.poll, current, poll_wait)
      if not ok then
        transport:abandon_batch()
        for c in pairs(flying) do
          c:fail_raised(done)
          r.finish(c)
        end
        flying, in_flight = {}, 0
        current = transport:batch()
      else
        for d = 1, #done do
          local c = done[d].id
          flying[c], in_flight = nil, in_flight - 1
          local concluded, outcome = step(c, c.conclude, c, done[d].res, done[d].err)
          if not concluded or outcome == DONE or outcome == FAILED then
            r.finish(c)
          else
            c.ready_at = runtime.interval_clock() + c.retry_delay
            if retry.classify(c.last_error) == "refused" then hold_until = max(hold_until, c.ready_at) end
            queue[#queue + 1] = c
          end
        end
      end
    end
  end
end

local SCHEDULERS = { serial = serial, light_threads = light_threads }

-- calls: begun call objects, each with its index in the results; finished ones (invalid requests) are reported
-- first. → the results list, in input order.
function M.many(client, calls, concurrency, on_done, results)
  local r = reporter(results, on_done)
  local pending = {}
  for i = 1, #calls do
    local c = calls[i]
    if c.err then r.finish(c) else pending[#pending + 1] = c end
  end
  if #pending > 0 then
    local transport = client.transport
    local model = contract.concurrency(transport)
    if model == "batch" then
      local ok, why = pcall(batch, client, pending, concurrency, r)
      if not ok then
        -- A bug in the scheduler itself: nothing may stay behind in the shared multi for the next batch.
        transport:abandon_batch()
        error(why, 0)
      end
    else
      SCHEDULERS[model](client, pending, concurrency, r)
    end
  end
  return r.close()
end

return M
