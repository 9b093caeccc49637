-- The rockspec installs every module of the tree: a module added under lua/ but missing here would install a
-- library that fails at require time.
describe("essbasic-scm-1.rockspec", function()
  local function load_rockspec()
    local f = assert(io.open("essbasic-scm-1.rockspec"))
    local text = f:read("*a")
    f:close()
    local env = {}
    local chunk
    if rawget(_G, "setfenv") then -- LuaJIT (5.1)
      chunk = assert(loadstring(text, "rockspec"))
      setfenv(chunk, env)
    else
      chunk = assert(load(text, "rockspec", "t", env))
    end
    chunk()
    return env
  end

  it("lists every Lua module under lua/ with its path, and the C core", function()
    local spec = load_rockspec()
    local listed = {}
    for name, src in pairs(spec.build.modules) do listed[name] = src end
    assert.is_table(listed["essbasic.core"])
    local p = assert(io.popen("find lua -name '*.lua' | sort"))
    local count = 0
    for path in p:lines() do
      local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal(path, listed[name], name .. " is missing from the rockspec")
      count = count + 1
    end
    p:close()
    local n = 0
    for _ in pairs(listed) do n = n + 1 end
    assert.equal(count + 1, n, "the rockspec lists modules that do not exist")
  end)

  it("compiles the same C sources as the Makefile", function()
    local spec = load_rockspec()
    local f = assert(io.open("Makefile"))
    local makefile = f:read("*a")
    f:close()
    local srcs = makefile:match("\nSRCS = ([^\n]+)")
    assert.equal(srcs, table.concat(spec.build.modules["essbasic.core"].sources, " "))
  end)
end)
