-- signer.headers keeps per-credentials work (header checks, the Authorization up to the signature, the signed-headers
-- list, the timestamp digits) between calls: what it sends must stay what a fresh computation gives, call after call.

local signer = require("essbasic.signer")
local credentials = require("essbasic.credentials")
local tc3 = require("helpers.tc3")

local BODY = '{"Agent":{"AppId":"app0001"}}'

local function parts(host, ts)
  return { action = "DescribeUsage", host = host, body = BODY, timestamp = ts, language = "zh-CN",
    request_client = "SDK_LUA_ESSBASIC_test" }
end

-- The Authorization of a request recomputed from the core's sha256/hmac only.
local function expected(secret_id, secret_key, host, ts)
  return tc3.authorization(secret_id, secret_key, host, ts, BODY)
end

describe("signer.headers", function()
  it("signs each call for its own host, timestamp and credentials", function()
    local a = credentials.new_creds("AKIDa", "key-a", "tok-a")
    local b = credentials.new_creds("AKIDb", "key-b")
    local cases = {
      { a, "h1.example", 1700000000 }, { b, "h2.example:8443", 1700000000 }, { a, "h2.example:8443", 1700000001 },
      { b, "h1.example", 1700086400 }, { a, "h1.example", 1700000000 },
    }
    for _, c in ipairs(cases) do
      local creds, host, ts = c[1], c[2], c[3]
      local h = assert(signer.headers(parts(host, ts), creds))
      local key = creds == a and "key-a" or "key-b"
      assert.equal(expected(creds.secret_id, key, host, ts), h.Authorization)
      assert.equal(host, h.Host)
      assert.equal(string.format("%d", ts), h["X-TC-Timestamp"])
      assert.equal(creds == a and "tok-a" or nil, h["X-TC-Token"])
    end
  end)

  it("sends the digits it signed for a float timestamp", function()
    local creds = credentials.new_creds("AKIDa", "key-a")
    assert(signer.headers(parts("h1.example", 1700000000), creds))
    local h = assert(signer.headers(parts("h1.example", 1700000000.0), creds))
    assert.equal("1700000000", h["X-TC-Timestamp"])
    h = assert(signer.headers(parts("h1.example", 1700000005.0), creds))
    assert.equal("1700000005", h["X-TC-Timestamp"])
    assert.equal(expected("AKIDa", "key-a", "h1.example", 1700000005), h.Authorization)
  end)

  it("checks a creds table again when its values change in place", function()
    local creds = credentials.new_creds("AKIDa", "key-a", "tok-a")
    assert(signer.headers(parts("h1.example", 1700000000), creds))
    creds.secret_id = "AKIDa\r\nX-Evil: 1"
    local h, bad = signer.headers(parts("h1.example", 1700000000), creds)
    assert.is_nil(h)
    assert.equal("Authorization", bad)
    creds.secret_id = "AKIDc"
    creds.token = "tok\nX-Evil: 1"
    h, bad = signer.headers(parts("h1.example", 1700000000), creds)
    assert.is_nil(h)
    assert.equal("X-TC-Token", bad)
    creds.token = ""
    h = assert(signer.headers(parts("h1.example", 1700000000), creds))
    assert.equal(expected("AKIDc", "key-a", "h1.example", 1700000000), h.Authorization)
    assert.is_nil(h["X-TC-Token"])
  end)

  it("refuses unsafe credentials every time, not only the first", function()
    local creds = credentials.new_creds("AKID\0x", "key-a")
    for _ = 1, 2 do
      local h, bad = signer.headers(parts("h1.example", 1700000000), creds)
      assert.is_nil(h)
      assert.equal("Authorization", bad)
    end
  end)

  it("leaves no credentials behind in its cache once they are dropped", function()
    local dropped = setmetatable({}, { __mode = "k" })
    do
      local creds = credentials.new_creds("AKIDgone", "key-gone", "tok-gone")
      assert(signer.headers(parts("h1.example", 1700000000), creds))
      dropped[creds] = true
    end
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(next(dropped))
  end)
end)
