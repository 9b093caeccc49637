-- The CVM role provider against a fake metadata service in real nginx: refreshes before expiry, keeps the old
-- credentials while a refresh fails and they are still valid, and always hands out id, key and token of the
-- same refresh.
local credentials = require("essbasic.credentials")
local essbasic = require("essbasic")
local nginx = require("tools.nginx")
local core = require("essbasic.core")
local unpack = table.unpack or unpack

-- Generation g of the role's credentials: id AKIDtmp<g>, key key<g>, token token<g>, expiring at 10000 * g.
local METADATA = [[
lua_shared_dict meta 1m;
server {
  listen 127.0.0.1:%PORT%;
  location = /meta/ { content_by_lua_block { ngx.print("spec-role\n") } }
  location = /meta/spec-role {
    content_by_lua_block {
      local d = ngx.shared.meta
      if d:get("fail") then ngx.status = 500; return ngx.print("down") end
      local g = d:incr("gen", 1, 0)
      ngx.print(require("essbasic.json").encode({ Code = "Success", TmpSecretId = "AKIDtmp" .. g,
        TmpSecretKey = "key" .. g, Token = "token" .. g, ExpiredTime = 10000 * g }))
    }
  }
  location = /admin {
    content_by_lua_block {
      local d = ngx.shared.meta
      if ngx.var.arg_fail then d:set("fail", ngx.var.arg_fail == "1") end
      ngx.print(d:get("gen") or 0)
    }
  }
}
]]

describe("credentials.cvm_role", function()
  local srv, admin
  setup(function()
    srv = nginx.start{ http = METADATA }
    admin = core.http_session({ timeout = 2 })
  end)
  teardown(function()
    admin:close()
    srv:stop()
  end)

  local function server(query)
    local status, _, body = admin:request("GET", "http://127.0.0.1:" .. srv.port .. "/admin" .. (query or ""), {}, "")
    assert.equal(200, status)
    return tonumber(body)
  end

  -- The signature creds give must be the one of the key of the same generation as its id.
  local function consistent(creds)
    local g = creds.secret_id:match("^AKIDtmp(%d+)$")
    assert.truthy(g, creds.secret_id)
    assert.equal("token" .. g, creds.token)
    local args = { 1764300000, "essbasic", "POST", "", { "content-type", "application/json", "host", "h" }, "{}" }
    local expected = core.tc3_signer("key" .. g):sign(unpack(args))
    assert.equal(expected, (creds.signing_key:sign(unpack(args))))
    return tonumber(g)
  end

  it("fetches the role, refreshes before expiry and keeps old credentials while refreshes fail", function()
    local base = server()
    local t = 0
    local p = credentials.cvm_role{ endpoint = "http://127.0.0.1:" .. srv.port .. "/meta/",
      now = function() return t end, refresh_before = 300 }
    local c1 = assert(p.get())
    local g1 = consistent(c1)
    assert.equal(base + 1, g1)
    t = 10000 * g1 - 301 -- still fresh: no new fetch
    assert.equal(c1, p.get())
    assert.equal(g1, server())
    t = 10000 * g1 - 100 -- inside the refresh window
    local c2 = assert(p.get())
    assert.equal(g1 + 1, consistent(c2))
    server("?fail=1")
    t = 10000 * (g1 + 1) - 100 -- should refresh, but the service is down: the old ones are still valid
    assert.equal(c2, p.get())
    t = 10000 * (g1 + 1) + 1 -- now they have expired and nothing replaces them
    local none, err = p.get()
    assert.is_nil(none)
    assert.equal("ClientError.CredentialError", err.code)
    server("?fail=0")
    assert.equal(g1 + 2, consistent(assert(p.get())))
  end)

  it("gives the client the token as X-TC-Token, and a metadata outage as a credential error", function()
    local p = credentials.cvm_role{ endpoint = "http://127.0.0.1:" .. srv.port .. "/meta/",
      now = function() return 0 end }
    local c = essbasic.new{ credentials = p, endpoint = "http://127.0.0.1:9" }
    local req = assert(c:prepare("DescribeUsage", {}, { timestamp = 1764300000, validate = false }))
    local g = req.headers.Authorization:match("Credential=AKIDtmp(%d+)/")
    assert.truthy(g)
    assert.equal("token" .. g, req.headers["X-TC-Token"])
    local dead = credentials.cvm_role{ endpoint = "http://127.0.0.1:9/meta/" }
    local resp, err = essbasic.new{ credentials = dead, endpoint = "http://127.0.0.1:9" }:call("DescribeUsage", {},
      { validate = false })
    assert.is_nil(resp)
    assert.equal("ClientError.CredentialError", err.code)
    assert.truthy(err.message:find("CVM metadata", 1, true))
    assert.equal("connect", err.cause.network)
  end)
end)
