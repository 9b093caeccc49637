-- essbasic.new{ http = { ... } }: the HTTP options as one table that the transport gets and checks (client.lua's
-- HTTP_OPTIONS); 0.2's flat options still taken; the libcurl transport refuses what it cannot honour. Against
-- the sandbox over loopback.
local essbasic = require("essbasic")
local sandbox = require("helpers.sandbox")

describe("essbasic.new{ http = ... }", function()
  local sb
  setup(function() sb = sandbox.start{} end)
  teardown(function() if sb then sb:stop() end end)

  local function describe_call(c)
    return c:call("DescribeFlowDetailInfo", { Agent = sb.agent, FlowIds = { "yDwFoUUckp3tilhqUuO4zjEk9b6MRoRJ" } })
  end

  it("reaches the transport: http.max_response_bytes caps the answer", function()
    local c = sb:client{ http = { max_response_bytes = 16, timeout = 5 }, retry = false }
    assert.equal(5, c.timeout)
    local resp, err = describe_call(c)
    assert.is_nil(resp)
    assert.equal("ClientError.ResponseTooLarge", err.code)
    local ok = sb:client{ http = { max_response_bytes = 1e6 } }
    local _, err2 = describe_call(ok)
    assert.is_not_equal("ClientError.ResponseTooLarge", err2 and err2.code)
  end)

  it("takes 0.2's flat options as the same options, and refuses a name given both ways", function()
    local c = sb:client{ max_response_bytes = 16, retry = false }
    local _, err = describe_call(c)
    assert.equal("ClientError.ResponseTooLarge", err.code)
    assert.has_error(function() essbasic.new{ secret_id = "AKIDx", secret_key = "k", timeout = 5,
      http = { timeout = 6 } } end, "essbasic.new: 'timeout' is given both flat and in http; give it in http only")
  end)

  it("checks the names and types of http", function()
    local ok, why = pcall(essbasic.new, { secret_id = "AKIDx", secret_key = "k", http = { timout = 5 } })
    assert.is_false(ok)
    assert.truthy(why:find("unknown option http.'timout' (did you mean timeout?)", 1, true), why)
    ok, why = pcall(essbasic.new, { secret_id = "AKIDx", secret_key = "k", http = { ssl_verify = "no" } })
    assert.is_false(ok)
    assert.truthy(why:find("http.'ssl_verify' must be a boolean", 1, true), why)
  end)

  it("the libcurl transport refuses what it cannot honour, saying what to do instead", function()
    for _, name in ipairs{ "keepalive_timeout", "pool_size", "pool" } do
      local ok, why = pcall(essbasic.new, { secret_id = "AKIDx", secret_key = "k", transport = "curl",
        http = { [name] = name == "pool" and "a" or 5 } })
      assert.is_false(ok)
      assert.truthy(why:find("the libcurl transport cannot honour http." .. name .. " (", 1, true), why)
    end
  end)
end)
