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
  it("gives burst tokens at once, then spaces callers 1/rate apart", function()
    local t = 100
    local lim = ratelimit.new{ rate = 20, now = function() return t end }
    for _ = 1, 20 do assert.equal(0, lim:take("A")) end
    local w1 = lim:take("A")
    local w2 = lim:take("A")
    assert.near(0.05, w1, 1e-9)
    assert.near(0.10, w2, 1e-9)
    -- another action has its own bucket
    assert.equal(0, lim:take("B"))
    t = t + 1 -- a second later the reserved tokens are paid back and 18 are left
    for _ = 1, 18 do assert.equal(0, lim:take("A")) end
    assert.is_true(lim:take("A") > 0)
  end)

  it("fails fast when asked not to wait, without consuming a token", function()
    local t = 0
    local lim = ratelimit.new{ rate = 2, wait = false, now = function() return t end }
    assert.equal(0, lim:take("A"))
    assert.equal(0, lim:take("A"))
    assert.is_nil(lim:take("A"))
    t = 0.5
    assert.equal(0, lim:take("A"))
  end)

  it("takes per-action rates", function()
    local lim = ratelimit.new{ rate = 20, per_action = { UploadFiles = 1 }, now = function() return 0 end }
    assert.equal(0, lim:take("UploadFiles"))
    assert.near(1, lim:take("UploadFiles"), 1e-9)
  end)
end)
