-- The suite runs where the runner says: tools/run-tests runs it under lua5.4, LuaJIT and PUC Lua 5.1, and
-- tools/check against the ASan build of the core. A configuration that quietly restarts busted under another
-- interpreter or with another core (.busted's `lua` without --ignore-lua did both) must fail here, not pass three
-- times under the same Lua.

describe("the interpreter and the core", function()
  it("are the ones the runner chose (ESSBASIC_LUA, LUA_CPATH)", function()
    local want = os.getenv("ESSBASIC_LUA")
    if want == "luajit" then
      assert.is_table(rawget(_G, "jit"), "ESSBASIC_LUA=luajit but this is " .. _VERSION)
    elseif want == "lua5.1" then
      assert.is_nil(rawget(_G, "jit"))
      assert.equal("Lua 5.1", _VERSION)
    elseif want == "lua5.4" then
      assert.equal("Lua 5.4", _VERSION)
    end
    -- the file `require("essbasic.core")` loads: the first pattern of package.cpath that names an existing file
    local function found(path)
      for pattern in path:gmatch("[^;]+") do
        local candidate = pattern:gsub("%?", "essbasic/core")
        local f = io.open(candidate, "rb")
        if f then f:close() return candidate end
      end
    end
    local cpath = os.getenv("LUA_CPATH")
    local want_core = cpath and found(cpath:gsub(";;", ""))
    if want_core then
      assert.equal(want_core, found(package.cpath), "the core comes from another place than LUA_CPATH says")
    end
  end)
end)
