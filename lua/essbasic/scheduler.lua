-- Running calls (essbasic.call) to their end: one at a time, or many at once for client:call_many.
--
--   scheduler.run(client, c)                       one call, attempt after attempt (client:call)
--   scheduler.many(client, calls, concurrency, on_done)
--     libcurl's multi interface when the transport has batch() (plain Lua), nginx light threads when running in
--     nginx, else one call after another (any transport object with request()).
--
-- Every scheduler drains what it started before it returns or raises, and protects itself from on_done: a
-- callback that raises does not stop the batch; once every call has finished, the first such error is raised
-- again (prefixed with the call's index when it is a string), so the caller sees it and the client is left clean.

local call = require("essbasic.call")
local runtime = require("essbasic.runtime")

local type, pcall, error, tostring, min, max = type, pcall, error, tostring, math.min, math.max
local remove = table.remove

local DONE, FAILED = call.DONE, call.FAILED

local M = {}

-- One call to its end → resp, meta or nil, err.
function M.run(client, c)
  while true do
    local wait, err = c:take_token()
    if not wait then
      c:fail(err)
      return c:result()
    end
    if wait > 0 then runtime.sleep(wait) end
    local req
    req, err = c:next_request()
    if not req then
      c:fail(err)
      return c:result()
    end
    local res
    res, err = client.transport:request(req)
    local outcome = c:conclude(res, err)
    if outcome == DONE or outcome == FAILED then return c:result() end
    runtime.sleep(c.retry_delay)
  end
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

-- One call run to its end and reported; a call that raised ends as its own error.
local function run_reported(client, c, r)
  local ok, why = pcall(M.run, client, c)
  if not ok then c:fail_raised(why) end
  r.finish(c)
end

local function sequential(client, calls, r)
  for i = 1, #calls do run_reported(client, calls[i], r) end
end

-- nginx: light threads over cosockets, each taking the next call when it is free.
local function threads(client, calls, concurrency, r, thread)
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

-- Plain Lua: libcurl's multi interface, the call objects themselves naming their transfers. Rate-limit waits are
-- kept in the queue (a reserved token and the time it may be used), never slept while transfers run.
local function multi(client, calls, concurrency, r)
  local batch = client.transport:batch()
  local queue, in_flight = {}, 0
  for i = 1, #calls do
    calls[i].ready_at = 0
    queue[i] = calls[i]
  end
  while #queue > 0 or in_flight > 0 do
    local now = runtime.now()
    local soonest
    local i = 1
    while i <= #queue and in_flight < concurrency do
      local c = queue[i]
      if c.ready_at > now then
        soonest = soonest and min(soonest, c.ready_at) or c.ready_at
        i = i + 1
      else
        remove(queue, i)
        local wait, err = 0, nil
        if not c.has_token then wait, err = c:take_token() end
        if not wait then
          c:fail(err)
          r.finish(c)
        elseif wait > 0 then
          c.has_token, c.ready_at = true, now + wait -- the token is reserved; send when its time comes
          queue[#queue + 1] = c
        else
          c.has_token = false
          local req
          req, err = c:next_request()
          if req then
            batch:add(c, req)
            in_flight = in_flight + 1
          else
            c:fail(err)
            r.finish(c)
          end
        end
      end
    end
    local poll_wait = 1
    if soonest then poll_wait = max(0, min(poll_wait, soonest - runtime.now())) end
    if in_flight == 0 then
      if soonest then runtime.sleep(poll_wait) end
    else
      local done = batch:poll(poll_wait)
      for d = 1, #done do
        local c = done[d].id
        in_flight = in_flight - 1
        local outcome = c:conclude(done[d].res, done[d].err)
        if outcome == DONE or outcome == FAILED then
          r.finish(c)
        else
          c.ready_at = runtime.now() + c.retry_delay
          queue[#queue + 1] = c
        end
      end
    end
  end
end

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
    local ngx = rawget(_G, "ngx")
    if type(transport.batch) == "function" then
      local ok, why = pcall(multi, client, pending, concurrency, r)
      if not ok then
        -- Nothing may stay behind in the shared multi for the next batch to trip over.
        transport:abandon_batch()
        error(why, 0)
      end
    elseif type(ngx) == "table" and type(ngx.thread) == "table" and type(ngx.get_phase) == "function" then
      threads(client, pending, concurrency, r, ngx.thread)
    else
      sequential(client, pending, r)
    end
  end
  return r.close()
end

return M
