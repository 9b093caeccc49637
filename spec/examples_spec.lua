-- The runnable examples against a real sandbox (nginx on loopback), run as a user runs them: a separate
-- interpreter, the environment the sandbox hands out. examples/demo.lua is what `make demo` runs; this covers the
-- others.

local sandbox = require("helpers.sandbox")

local LUA = os.getenv("ESSBASIC_LUA") or (rawget(_G, "jit") and "luajit" or "lua5.4")

local function run(sb, script, args)
  local root = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/spec/[^/]+$") or "."
  local abi = os.getenv("ESSBASIC_ABI") or (rawget(_G, "jit") and "5.1" or "5.4")
  local cmd = string.format("cd %s && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/%s/?.so;;' "
    .. "ESSBASIC_ENDPOINT=%s TENCENTCLOUD_SECRET_ID=%s TENCENTCLOUD_SECRET_KEY=%s ESSBASIC_APP_ID=%s %s %s %s 2>&1; "
    .. "echo \"exit=$?\"", root, abi, sb.endpoint, sb.secret_id, sb.secret_key, sb.app_id, LUA, script, args)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

describe("examples/batch_onboarding.lua", function()
  local sb
  setup(function() sb = sandbox.start() end)
  teardown(function() if sb then sb:stop() end end)

  it("creates every group through call_many, with one progress line per finished call", function()
    local before = sb:stats().counters.groups_created or 0
    local out, status = run(sb, "examples/batch_onboarding.lua", "12 5")
    assert.are.equal(0, status, out)
    local seen = {}
    local line = "%[%s*(%d+)/(%d+)%]%s+[%d.]+s%s+(%S+)%s+FlowGroupId (%w+) %(3 contracts%)"
    for n, total, name, group in out:gmatch(line) do
      assert.are.equal("12", total)
      seen[#seen + 1] = tonumber(n)
      assert.is_truthy(name:find("员工", 1, true))
      assert.is_true(#group > 0)
    end
    assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, seen)
    assert.is_truthy(out:find("12 created, 0 failed", 1, true), out)
    assert.are.equal(before + 12, sb:stats().counters.groups_created)
  end)

  it("stops with exit status 1 and the service's error code when the key is wrong", function()
    local bad = setmetatable({ secret_key = "not-the-key" }, { __index = sb })
    local out, status = run(bad, "examples/batch_onboarding.lua", "3 2")
    assert.are.equal(1, status, out)
    assert.is_truthy(out:find("UploadFiles labour_contract.pdf failed: .*AuthFailure"), out)
  end)
end)
