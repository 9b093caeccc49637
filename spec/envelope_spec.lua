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
