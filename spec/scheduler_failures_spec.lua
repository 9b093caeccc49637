-- The scheduler rule (essbasic.scheduler): one failure table (spec/helpers/failure_table.lua: a raising
-- credentials provider, a raising transport, a raising on_done) through every scheduler a transport can declare
-- (transport/contract.lua): serial and batch (libcurl's multi) here, light_threads inside real nginx; against the
-- sandbox over loopback. Each call gets its own result, nothing is lost, and the client is clean after.
local json = require("essbasic.json")
local core = require("essbasic.core")
local sandbox = require("helpers.sandbox")
local failure_table = require("helpers.failure_table")
local nginx = require("tools.nginx")

local APP = [=[
server {
  listen 127.0.0.1:%PORT%;
  location /table {
    content_by_lua_block {
      local json = require("essbasic.json")
      local failure_table = require("helpers.failure_table")
      ngx.req.read_body()
      local job = json.decode(ngx.req.get_body_data())
      local out = failure_table.run({
        new_client = function(opts)
          local wrapper = failure_table.wrapping(require("essbasic.transport.ngx").new{})
          opts.transport = wrapper
          local c = require("essbasic").new(opts)
          c.test_wrapper = wrapper
          return c
        end,
        break_transport = function(c, nth) c.test_wrapper.raise_on = nth end,
      }, job)
      out.model = require("essbasic.transport.contract").concurrency(require("essbasic").new{
        secret_id = "AKIDx", secret_key = "k", transport = failure_table.wrapping({}) }.transport)
      ngx.print(json.encode(out))
    }
  }
}
]=]

describe("the scheduler rule: one failure table through every scheduler", function()
  local sb, job
  setup(function()
    sb = sandbox.start{ rate_limit = 100000 }
    local c = sb:client{}
    local id = sb:upload(c)
    job = { secret_id = sb.secret_id, secret_key = sb.secret_key, endpoint = sb.endpoint, agent = sb.agent,
      group = assert(c:call("ChannelCreateFlowGroupByFiles", sb:group_request({ id, id }))).FlowGroupId }
  end)
  teardown(function()
    if sb then sb:stop() end
  end)

  it("serial: a transport object of the caller's, outside nginx", function()
    local out = failure_table.run({
      new_client = function(opts)
        local wrapper = failure_table.wrapping(require("essbasic.transport.curl").new{})
        opts.transport = wrapper
        local c = require("essbasic").new(opts)
        assert.equal("serial", require("essbasic.transport.contract").concurrency(c.transport))
        c.test_wrapper = wrapper
        return c
      end,
      break_transport = function(c, nth) c.test_wrapper.raise_on = nth end,
    }, job)
    failure_table.check(assert, "serial", out)
  end)

  it("batch: libcurl's multi interface", function()
    local out = failure_table.run({
      new_client = function(opts)
        local c = require("essbasic").new(opts)
        assert.equal("batch", require("essbasic.transport.contract").concurrency(c.transport))
        return c
      end,
      -- the nth transfer handed to the multi raises, as a broken transport would
      break_transport = function(c, nth)
        local t, seen = c.transport, 0
        local batch = t.batch
        t.batch = function(self)
          local b = batch(self)
          local add = b.add
          b.add = function(bb, id, req)
            seen = seen + 1
            if seen == nth then error("transport boom") end
            return add(bb, id, req)
          end
          return b
        end
      end,
    }, job)
    failure_table.check(assert, "batch", out)
  end)

  -- Every connection refused (port 1 on loopback): until the first retry of a refused call is sent, no call beyond
  -- the first wave starts (it would spend its first attempt on the same refusal).
  it("batch: a refused attempt that will be retried holds back new starts until that retry", function()
    local c = require("essbasic").new{ secret_id = "AKIDx", secret_key = "k", endpoint = "http://127.0.0.1:1",
      rate_limit = false, validate = false, retry = { max_attempts = 2, base_delay = 0.05 } }
    local t, sends = c.transport, {}
    local batch = t.batch
    t.batch = function(self)
      local b = batch(self)
      local add = b.add
      b.add = function(bb, id, req)
        sends[#sends + 1] = id.attempts
        return add(bb, id, req)
      end
      return b
    end
    local reqs = {}
    for i = 1, 40 do reqs[i] = { "DescribeFlowDetailInfo", { FlowIds = { "x" } } } end
    local results = c:call_many(reqs, { concurrency = 5 })
    assert.equal(40, #results)
    for i = 1, 40 do assert.equal(false, results[i][2].sent) end
    local first_retry
    for i = 1, #sends do if sends[i] == 2 then first_retry = first_retry or i end end
    assert.truthy(first_retry)
    assert.is_true(first_retry <= 6, "first attempts before the first retry: " .. (first_retry - 1))
    assert.equal(80, #sends)
  end)

  it("light_threads: inside nginx, over cosockets", function()
    local app = nginx.start{ http = APP }
    local http = core.http_session({ timeout = 30 })
    local ok, why = pcall(function()
      local status, _, body = http:request("POST", "http://127.0.0.1:" .. app.port .. "/table", {}, json.encode(job))
      assert.equal(200, status, tostring(body) .. app:error_log():sub(-1500))
      local out = json.decode(body)
      assert.equal("light_threads", out.model)
      failure_table.check(assert, "light_threads", out)
    end)
    http:close()
    app:stop()
    assert(ok, why)
  end)
end)
