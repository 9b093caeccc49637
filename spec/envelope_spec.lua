-- The response envelope as the client reads it (lua/essbasic/envelope.lua): success, the API's errors, the legacy
-- form, and malformed envelopes, which must fail with a code of their own rather than pass or fail without one.

local envelope = require("essbasic.envelope")
local errors = require("essbasic.errors")

describe("envelope.decode", function()
  it("gives the Response of a success", function()
    local resp, err = envelope.decode(200, '{"Response":{"FlowIds":["f1"],"RequestId":"r-1"}}')
    assert.is_nil(err)
    assert.equal("r-1", resp.RequestId)
    assert.equal("f1", resp.FlowIds[1])
  end)

  it("gives the API's code, message and request id for an error envelope, whatever the HTTP status", function()
    for _, status in ipairs({ 200, 400, 500 }) do
      local resp, err = envelope.decode(status,
        '{"Response":{"Error":{"Code":"InvalidParameter.FlowName","Message":"bad name"},"RequestId":"r-2"}}')
      assert.is_nil(resp)
      assert.equal("service", err.kind)
      assert.equal("InvalidParameter.FlowName", err.code)
      assert.equal("bad name", err.message)
      assert.equal("r-2", err.request_id)
      assert.equal(status, err.http_status)
    end
  end)

  it("refuses an Error without a usable Code as malformed, never as success or with an empty code", function()
    for _, e in ipairs({ '{"Code":""}', '{"Message":"x"}', '{}', '"text"', '[1]', '{"Code":true}', '{"Code":{}}' }) do
      local body = '{"Response":{"Error":' .. e .. ',"RequestId":"r-3"}}'
      local resp, err = envelope.decode(200, body)
      assert.is_nil(resp, body)
      assert.is_true(errors.is_error(err))
      assert.equal(errors.PARSE_JSON, err.code, body)
      assert.equal("parse", err.kind)
      assert.equal("r-3", err.request_id)
    end
  end)

  it("reads a numeric Code as its text, and the legacy envelope", function()
    local _, err = envelope.decode(200, '{"Response":{"Error":{"Code":4001,"Message":"m"},"RequestId":"r"}}')
    assert.equal("4001", err.code)
    _, err = envelope.decode(200, '{"code":4000,"message":"legacy","codeDesc":"InvalidParameter"}')
    assert.equal("InvalidParameter", err.code)
    assert.equal("legacy", err.message)
  end)
end)

describe("envelope.decode on the legacy envelope", function()
  it("falls back to the numeric code when codeDesc is empty or not text (the fuzzer's find of issue 29)", function()
    for body, want in pairs{
      ['{"code":4000,"message":"legacy","codeDesc":""}'] = "4000",
      ['{"code":4000,"codeDesc":{}}'] = "4000",
      ['{"code":"E1","codeDesc":false}'] = "E1",
      ['{"code":4000,"message":{},"codeDesc":""}'] = "4000",
    } do
      local resp, err = envelope.decode(200, body)
      assert.is_nil(resp, body)
      assert.equal("service", err.kind)
      assert.equal(want, err.code, body)
      assert.equal("string", type(err.message))
    end
  end)

  it("refuses a legacy envelope whose code and codeDesc are both unusable as malformed", function()
    for _, body in ipairs({ '{"code":"","codeDesc":""}', '{"code":{},"codeDesc":""}', '{"code":true}' }) do
      local resp, err = envelope.decode(200, body)
      assert.is_nil(resp, body)
      assert.equal(errors.PARSE_JSON, err.code, body)
      assert.equal("parse", err.kind)
    end
  end)
end)

-- Every input the fuzzer ever found for the response path (fuzz/regressions/fuzz_response/, committed with its fix)
-- is a unit test here too, so the plain suite holds them without clang or libFuzzer.
describe("envelope.decode on the committed fuzz regressions", function()
  local dir = "fuzz/regressions/fuzz_response/"
  local names = {}
  local p = io.popen('ls "' .. dir .. '" 2>/dev/null')
  for name in p:lines() do names[#names + 1] = name end
  p:close()

  it("has inputs to replay", function() assert.is_true(#names >= 2) end)

  for _, name in ipairs(names) do
    it("gives a table or an error with a non-empty code for " .. name, function()
      local f = assert(io.open(dir .. name, "rb"))
      local body = f:read("*a")
      f:close()
      for _, status in ipairs({ 200, 400, 502 }) do
        local resp, err = envelope.decode(status, body)
        if resp == nil then
          assert.is_true(errors.is_error(err))
          assert.equal("string", type(err.code))
          assert.is_true(#err.code > 0, name)
          assert.truthy(tostring(err):find("^essbasic: "))
        else
          assert.equal(200, status)
          assert.equal("table", type(resp))
        end
      end
    end)
  end
end)
