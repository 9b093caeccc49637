-- client:call_many inside real nginx (light threads over cosockets), against the sandbox: an on_done that raises
-- leaves every call reported and the client clean; a transport object of the caller's runs on the light threads.
local json = require("essbasic.json")
local core = require("essbasic.core")
local sandbox = require("helpers.sandbox")
local nginx = require("tools.nginx")

local APP = [=[
server {
  listen 127.0.0.1:%PORT%;
  client_body_buffer_size 1m;
  location /raising {
    content_by_lua_block {
      local json = require("essbasic.json")
      ngx.req.read_body()
      local job = json.decode(ngx.req.get_body_data())
      local c = require("essbasic").new{ secret_id = job.secret_id, secret_key = job.secret_key,
        endpoint = job.endpoint, file_endpoint = job.endpoint, rate_limit = false }
      local reqs = {}
      for i = 1, 8 do reqs[i] = { "DescribeFlowDetailInfo", { Agent = job.agent, FlowGroupId = job.group } } end
      local seen = 0
      local ok, why = pcall(c.call_many, c, reqs, { concurrency = 4, on_done = function()
        seen = seen + 1
        if seen == 1 then error("boom in on_done") end
      end })
      local after = c:call_many(reqs, { concurrency = 4 })
      local good = 0
      for i = 1, #after do if after[i][1] and after[i][1].FlowGroupId == job.group then good = good + 1 end end
      ngx.print(json.encode{ ok = ok, why = tostring(why), seen = seen, after = good })
    }
  }
  location /custom {
    content_by_lua_block {
      local json = require("essbasic.json")
      local calls = 0
      local transport = { request = function(_, req)
        calls = calls + 1
        if calls == 2 then error("transport bug") end
        ngx.sleep(0.01)
        return { status = 200, body = '{"Response":{"RequestId":"r-' .. req.headers["X-TC-Action"] .. '"}}' }
      end }
      local c = require("essbasic").new{ secret_id = "AKIDx", secret_key = "k", transport = transport,
        rate_limit = false, retry = false, validate = false }
      local rs = c:call_many({ { "DescribeFlowDetailInfo", {} }, { "ChannelCreateFlowGroupByFiles", {} },
        { "DescribeFlowDetailInfo", {} } }, { concurrency = 3 })
      ngx.print(json.encode{ r1 = rs[1][1] and rs[1][1].RequestId, e2 = rs[2][2] and rs[2][2].code,
        r3 = rs[3][1] and rs[3][1].RequestId, calls = calls })
    }
  }
}
]=]

describe("client:call_many inside nginx", function()
  local sb, app, http, group
  setup(function()
    sb = sandbox.start{ rate_limit = 100000 }
    app = nginx.start{ http = APP }
    http = core.http_session({ timeout = 30 })
    local c = sb:client{}
    local id = sb:upload(c)
    group = assert(c:call("ChannelCreateFlowGroupByFiles", sb:group_request({ id, id }))).FlowGroupId
  end)
  teardown(function()
    if http then http:close() end
    if app then app:stop() end
    if sb then sb:stop() end
  end)

  local function get(path, doc)
    local status, _, body = http:request("POST", "http://127.0.0.1:" .. app.port .. path, {}, json.encode(doc or {}))
    assert.equal(200, status, tostring(body) .. app:error_log():sub(-1500))
    return json.decode(body)
  end

  it("survives an on_done that raises: all calls reported, the error raised after, the next batch clean", function()
    local r = get("/raising", { secret_id = sb.secret_id, secret_key = sb.secret_key, endpoint = sb.endpoint,
      agent = sb.agent, group = group })
    assert.is_false(r.ok)
    assert.truthy(r.why:find("boom in on_done", 1, true), r.why)
    assert.equal(8, r.seen)
    assert.equal(8, r.after)
  end)

  it("runs a transport object of the caller's on light threads; a raising one is an error for its call only", function()
    local r = get("/custom")
    assert.equal("r-DescribeFlowDetailInfo", r.r1)
    assert.equal("ClientError.OutcomeUnknown", r.e2)
    assert.equal("r-DescribeFlowDetailInfo", r.r3)
    assert.equal(3, r.calls)
  end)
end)
