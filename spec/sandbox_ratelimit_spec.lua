-- The sandbox's rate limit (sandbox/ratelimit.lua): at most N accepted requests per app and action in any one
-- second, a sliding half-open window (t - 1, t]; refusals do not count. Checked on the module with chosen times,
-- against every window of a random arrival pattern, and over HTTP on a real sandbox.
local sandbox = require("helpers.sandbox")
local core = require("essbasic.core")
local ratelimit = require("sandbox.ratelimit")

describe("sandbox rate limit", function()
  it("refuses the request that would make N + 1 in the preceding second, and only that", function()
    local rl = ratelimit.new()
    for i = 0, 19 do assert.is_true(rl:take("app\0A", 20, i * 0.05)) end -- 20 in [0, 0.95]
    assert.is_false(rl:take("app\0A", 20, 0.99))
    assert.is_true(rl:take("app\0B", 20, 0.99))    -- per action
    assert.is_true(rl:take("other\0A", 20, 0.99))  -- per app
    assert.is_false(rl:take("app\0A", 20, 0.9999)) -- the one at 0 is still inside (t - 1, t]
    assert.is_true(rl:take("app\0A", 20, 1.0))     -- at t = 1 the request of time 0 has left the window
    assert.is_false(rl:take("app\0A", 20, 1.01))   -- refusals never counted: 20 accepted in (0.01, 1.01]
    assert.is_true(rl:take("app\0A", 20, 1.05))
  end)

  it("never lets more than N through in any one-second window of a random arrival pattern", function()
    local rl = ratelimit.new()
    math.randomseed(23)
    local t, accepted, refused = 0, {}, 0
    for _ = 1, 5000 do
      t = t + math.random() * 0.08 -- about 25 a second on average, in bursts and gaps
      if rl:take("k", 20, t) then accepted[#accepted + 1] = t else refused = refused + 1 end
    end
    assert.is_true(refused > 0 and #accepted > 0)
    local j = 1
    for i = 1, #accepted do -- every window (accepted[i] - 1, accepted[i]] ending at an accepted request
      while accepted[j] <= accepted[i] - 1 do j = j + 1 end
      assert.is_true(i - j + 1 <= 20, "window ending at " .. accepted[i])
    end
    -- and a paced client (N evenly spaced per second, exactly 1/N apart: times exact in binary) is never refused
    local paced = ratelimit.new()
    for i = 0, 199 do assert.is_true(paced:take("k", 16, i / 16), tostring(i)) end
  end)

  it("over HTTP: N pass, the next is refused, and one second after the first another passes", function()
    local sb = sandbox.start{ rate_limit = 5 }
    finally(function() sb:stop() end)
    local client = sb:client({ retry = false, rate_limit = false })
    local params = { Agent = sb.agent, FlowGroupId = "x" }
    -- start late in a clock second, so that the next request falls in the next one: a limit counted per clock
    -- second would let it through, the sliding second must not
    assert.truthy(sandbox.wait_for(function() local f = core.time() % 1 return f >= 0.7 and f < 0.75 end, 3))
    local second = math.floor(core.time())
    local first = core.monotonic()
    for i = 1, 5 do
      local _, err = client:DescribeFlowDetailInfo(params)
      assert.are.equal("ResourceNotFound.FlowGroup", err.code, "request " .. i)
    end
    assert.are.equal(second, math.floor(core.time()), "the five requests took too long for this check")
    assert.truthy(sandbox.wait_for(function() return math.floor(core.time()) > second end, 2))
    local _, err = client:DescribeFlowDetailInfo(params)
    assert.are.equal("RequestLimitExceeded", err.code)
    local again = sandbox.wait_for(function()
      local _, e = client:DescribeFlowDetailInfo(params)
      return e.code ~= "RequestLimitExceeded" and core.monotonic()
    end, 5)
    assert.truthy(again)
    assert.is_true(again - first >= 1.0, tostring(again - first))
  end)
end)
