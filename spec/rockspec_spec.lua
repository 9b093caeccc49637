-- The rockspecs install every module of the tree (a module added under lua/ but missing there would install a
-- library that fails at require time), build what the Makefile builds, name where a user fetches the project,
-- and agree with essbasic.VERSION, the X-TC-RequestClient header and CHANGELOG.md on one version number.

local read = require("helpers.files").read

local function load_rockspec(path)
  local text = read(path)
  local env = {}
  local chunk
  if rawget(_G, "setfenv") then -- LuaJIT (5.1)
    chunk = assert(loadstring(text, path))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, path, "t", env))
  end
  chunk()
  return env
end

local function rockspec_files()
  local p = assert(io.popen("ls *.rockspec"))
  local list = {}
  for name in p:lines() do list[#list + 1] = name end
  p:close()
  return list
end

local version = require("essbasic.version")

describe("the rockspecs", function()
  it("are the scm one and the one of the current version", function()
    assert.are.same({ "essbasic-" .. version .. "-1.rockspec", "essbasic-scm-1.rockspec" }, rockspec_files())
  end)

  for _, file in ipairs(rockspec_files()) do
    describe(file, function()
      local spec = load_rockspec(file)

      it("carries the version of its file name", function()
        assert.are.equal(file, "essbasic-" .. spec.version .. ".rockspec")
      end)

      it("lists every Lua module under lua/ with its path, the sandbox's files and the C core", function()
        local listed = {}
        for name, src in pairs(spec.build.modules) do listed[name] = src end
        assert.is_table(listed["essbasic.core"])
        -- the sandbox's files keep their names under essbasic/ (essbasic.cli.sandbox runs them from there)
        local p = assert(io.popen("find lua -name '*.lua'; ls sandbox/*.lua; echo tools/nginx.lua"))
        local count = 0
        for path in p:lines() do
          local name = path:gsub("^lua/", ""):gsub("^sandbox/", "essbasic/sandbox/"):gsub("^tools/", "essbasic/tools/")
            :gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
          assert.equal(path, listed[name], name .. " is missing from the rockspec")
          count = count + 1
        end
        p:close()
        local n = 0
        for _ in pairs(listed) do n = n + 1 end
        assert.equal(count + 1, n, "the rockspec lists modules that do not exist")
      end)

      it("compiles the same C sources as the Makefile", function()
        -- what make would run to build the core (-B: even when it is up to date), its src/*.c words in order
        local p = assert(io.popen("make -Bn build/5.4/essbasic/core.so 2>&1"))
        local out = p:read("*a")
        p:close()
        local srcs = {}
        for word in out:gmatch("src/[%w_]+%.c") do srcs[#srcs + 1] = word end
        assert.are.same(spec.build.modules["essbasic.core"].sources, srcs)
      end)

      it("names a public git repository as its source, never a path of a machine", function()
        local url = spec.source.url
        assert.is_truthy(url:match("^git%+https://[%w.-]+/[%w._-]+/[%w._-]+$"), url)
        if spec.version == "scm-1" then
          assert.are.equal("main", spec.source.branch)
        else
          assert.are.equal("v" .. version, spec.source.tag)
        end
      end)

      it("lets LuaRocks search for no header (the multiarch curl.h is the compiler's to find)", function()
        for name, files in pairs(spec.external_dependencies) do
          assert.is_nil(files.header, name)
          assert.is_nil(files.library, name)
        end
        assert.are.same({ "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" }, spec.build.modules["essbasic.core"].incdirs)
      end)

      it("admits the Lua versions LuaRocks may see for the supported ones (LuaJIT is 5.1)", function()
        assert.are.same({ "lua >= 5.1, < 5.5" }, spec.dependencies)
      end)

      it("installs LICENSE and NOTICE, the docs, the examples and the annotations", function()
        assert.are.same({ "LICENSE", "NOTICE" }, spec.build.install.conf)
        assert.are.same({ "docs", "examples", "library" }, spec.build.copy_directories)
        for _, f in ipairs({ "LICENSE", "NOTICE", "examples/demo.lua", "library/essbasic.lua" }) do
          assert.is_truthy(read(f), f)
        end
        assert.is_truthy(read("LICENSE"):find("Copyright (c) 2026 the essbasic authors", 1, true))
        assert.are.equal("MIT", spec.description.license)
      end)

      it("runs the suite on `luarocks test`", function()
        assert.are.equal("command", spec.test.type)
        assert.is_truthy(spec.test.command:find("tools/run-tests", 1, true))
      end)
    end)
  end

  it("are the same but for the version and the source's tag or branch", function()
    local a = read("essbasic-scm-1.rockspec")
    local b = read("essbasic-" .. version .. "-1.rockspec")
    a = a:gsub('version = "scm%-1"', "V"):gsub('branch = "main"', "REF")
    b = b:gsub('version = "' .. version:gsub("%.", "%%.") .. '%-1"', "V"):gsub('tag = "v' ..
      version:gsub("%.", "%%.") .. '"', "REF")
    assert.are.equal(a, b)
  end)
end)

describe("the version number", function()
  it("is one: version.lua, essbasic.VERSION, X-TC-RequestClient and CHANGELOG.md's newest section", function()
    assert.is_truthy(version:match("^%d+%.%d+%.%d+$"), version)
    local essbasic = require("essbasic")
    assert.are.equal(version, essbasic.VERSION)
    local client = essbasic.new{ secret_id = "AKIDexample", secret_key = "key" }
    local req = assert(client:prepare("DescribeFlowDetailInfo", { Agent = { AppId = "a",
      ProxyOrganizationOpenId = "o", ProxyOperator = { OpenId = "p" } }, FlowGroupId = "g" }, { timestamp = 1 }))
    assert.are.equal("SDK_LUA_ESSBASIC_" .. version, req.headers["X-TC-RequestClient"])
    -- "## 0.3.0 - date" once released, "## Unreleased (0.3.0)" while it is being built
    local heading = read("CHANGELOG.md"):match("\n## ([^\n]+)")
    local newest = heading:match("^Unreleased %((%S+)%)$") or heading:match("^(%S+)")
    assert.are.equal(version, newest)
    -- and the C core carries no second copy
    assert.is_nil(require("essbasic.core").version)
  end)
end)
