-- The retry rules and the limiter, decided from data: which failures may be repeated for which kind of action.
local retry = require("essbasic.retry")
local ratelimit = require("essbasic.ratelimit")
local errors = require("essbasic.errors")

local function err(fields)
  fields.code = fields.code or "X"
  return errors.new(fields)
end

describe("retry.decide", function()
  local p = retry.policy{ max_attempts = 3 }

  local cases = {
    -- error, readonly?, expected decision, expected class
    { err{ kind = "service", code = "RequestLimitExceeded" }, false, "retry", "refused" },
    { err{ kind = "service", code = "RequestLimitExceeded.UinLimitExceeded" }, false, "retry", "refused" },
    { err{ kind = "network", network = "connect", sent = false }, false, "retry", "refused" },
    { err{ kind = "network", network = "dns", sent = false }, false, "retry", "refused" },
    { err{ kind = "network", network = "timeout", sent = true }, false, "stop", "unknown" },
    { err{ kind = "network", network = "timeout", sent = true }, true, "retry", "unknown" },
    { err{ kind = "network", network = "other", sent = true }, false, "stop", "unknown" },
    { err{ kind = "service", code = "InternalError" }, true, "retry", "unknown" },
    { err{ kind = "service", code = "InternalError.Db" }, false, "stop", "unknown" },
    { err{ kind = "http", code = errors.HTTP_STATUS, http_status = 502 }, true, "retry", "unknown" },
    { err{ kind = "http", code = errors.HTTP_STATUS, http_status = 502 }, false, "stop", "unknown" },
    { err{ kind = "http", code = errors.HTTP_STATUS, http_status = 404 }, true, "stop", "final" },
    { err{ kind = "service", code = "InvalidParameter.FlowName" }, true, "stop", "final" },
    { err{ kind = "service", code = "AuthFailure.SignatureFailure" }, true, "stop", "final" },
    { err{ kind = "network", network = "too_large", sent = true }, true, "stop", "unread" },
  }
  for i, c in ipairs(cases) do
    it(("case %d: %s (%s, %s)"):format(i, c[1].code, c[1].network or c[1].kind, c[2] and "read-only" or "creating"),
      function()
        local decision, class = retry.decide(p, c[1], c[2], 1)
        assert.equal(c[3], decision)
        assert.equal(c[4], class)
      end)
  end

  it("stops after max_attempts even for retryable failures", function()
    assert.equal("stop", (retry.decide(p, err{ kind = "service", code = "RequestLimitExceeded" }, true, 3)))
  end)

  it("retries creating calls after an unknown outcome only when the caller opts in", function()
    local unsafe = retry.policy{ unsafe = true }
    assert.equal("retry", (retry.decide(unsafe, err{ kind = "network", network = "timeout", sent = true }, false, 1)))
  end)

  it("backs off exponentially with jitter, capped", function()
    local q = retry.policy{ base_delay = 0.1, max_delay = 0.5 }
    for n = 1, 8 do
      local d = retry.delay(q, n)
      local cap = math.min(0.5, 0.1 * 2 ^ (n - 1))
      assert.is_true(d >= cap / 2 and d <= cap, ("retry %d waited %f"):format(n, d))
    end
  end)

  it("raises on unknown retry options", function()
    assert.has_error(function() retry.policy{ max_attempt = 3 } end)
  end)
end)

describe("ratelimit", function()
  it("spaces every request (1 + JITTER) / rate apart, so no one-second window holds more than rate", function()
    local t = 100
    local lim = ratelimit.new{ rate = 20, now = function() return t end }
    local interval = (1 + ratelimit.JITTER) / 20
    local at = {}
    for i = 1, 60 do at[i] = t + lim:take("A") end
    for i = 2, 60 do assert.near(interval, at[i] - at[i - 1], 1e-9) end
    -- any window [at[i], at[i] + 1) holds at most 20 of them
    for i = 1, 60 - 20 do assert.is_true(at[i + 20] >= at[i] + 1, "21 requests within one second") end
    -- another action has its own spacing
    assert.equal(0, lim:take("B"))
    -- after a pause the next one goes at once, then the spacing again
    t = at[60] + 5
    assert.equal(0, lim:take("A"))
    assert.near(interval, lim:take("A"), 1e-9)
  end)

  it("with burst = n lets n go at once after a pause (and a window may then hold more than rate)", function()
    local lim = ratelimit.new{ rate = 10, burst = 3, now = function() return 0 end }
    assert.same({ 0, 0, 0 }, { lim:take("A"), lim:take("A"), lim:take("A") })
    assert.near(0.105, lim:take("A"), 1e-9)
  end)

  it("fails fast when asked not to wait, without consuming a token", function()
    local t = 0
    local lim = ratelimit.new{ rate = 2, wait = false, now = function() return t end }
    assert.equal(0, lim:take("A"))
    assert.is_nil(lim:take("A"))
    assert.is_nil(lim:take("A"))
    t = 0.525
    assert.equal(0, lim:take("A"))
  end)

  it("takes per-action rates", function()
    local lim = ratelimit.new{ rate = 20, per_action = { UploadFiles = 1 }, now = function() return 0 end }
    assert.equal(0, lim:take("UploadFiles"))
    assert.near(1.05, lim:take("UploadFiles"), 1e-9)
  end)
end)
