-- README.md as a user reads it: its quick start's call and its first call run against a real sandbox (nginx on
-- loopback) in a separate interpreter, and every link of README.md and docs/*.md to a file or a heading of the
-- repository leads somewhere.

local sandbox = require("helpers.sandbox")
local files = require("helpers.files")

local LUA = os.getenv("ESSBASIC_LUA") or (rawget(_G, "jit") and "luajit" or "lua5.4")
local ROOT = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/spec/[^/]+$") or "."
if ROOT:sub(1, 1) ~= "/" then ROOT = assert(os.getenv("PWD")) .. "/" .. ROOT end -- the snippets run elsewhere

local function read(path) return files.read(ROOT .. "/" .. path) end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The text of README's section under `## heading`, up to the next `## `.
local function section(readme, heading)
  local from = assert(readme:find("\n## " .. heading .. "\n", 1, true), "no section " .. heading)
  local to = readme:find("\n## ", from + 1, true) or #readme
  return readme:sub(from, to)
end

-- Runs Lua source in a separate interpreter in dir, with this checkout's modules and the sandbox's environment
-- (what `essbasic sandbox env` exports), and returns its output and exit status.
local function run_lua(sb, dir, source)
  local abi = os.getenv("ESSBASIC_ABI") or (rawget(_G, "jit") and "5.1" or "5.4")
  files.write(dir .. "/snippet.lua", source)
  local cmd = string.format("cd %s && LUA_PATH=%s LUA_CPATH=%s ESSBASIC_ENDPOINT=%s TENCENTCLOUD_SECRET_ID=%s "
    .. "TENCENTCLOUD_SECRET_KEY=%s ESSBASIC_APP_ID=%s %s snippet.lua 2>&1; echo \"exit=$?\"", quote(dir),
    quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"), quote(ROOT .. "/build/" .. abi .. "/?.so;;"),
    sb.endpoint, sb.secret_id, sb.secret_key, sb.app_id, LUA)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

local function temp_dir()
  local p = assert(io.popen("mktemp -d /tmp/essbasic-readme.XXXXXX"))
  local dir = p:read("*l")
  p:close()
  return dir
end

describe("README.md's code", function()
  local sb, dir
  local readme = read("README.md")
  setup(function()
    sb = sandbox.start()
    dir = temp_dir()
  end)
  teardown(function()
    if sb then sb:stop() end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  it("quick start: the shell steps and the call, as written, give a console link", function()
    local qs = section(readme, "Quick start")
    for _, step in ipairs({ "luarocks make --local", "essbasic sandbox start", "eval \"$(essbasic sandbox env)\"",
      "essbasic sandbox stop" }) do
      assert.is_truthy(qs:find(step, 1, true), step)
    end
    local source = assert(qs:match("\nlua5%.1 %-e '\n(.-)'"), "no lua5.1 -e '...' in the quick start")
    local out, status = run_lua(sb, dir, source)
    assert.are.equal(0, status, out)
    assert.is_truthy(out:find(sb.endpoint .. "/sandbox/console?token=", 1, true), out)
  end)

  it("a first call: the contract group, with the user's endpoint, AppId and PDFs", function()
    local source = assert(section(readme, "A first call"):match("```lua\n(.-)```"))
    local n_endpoint, n_app
    -- What a user puts in: where to send it, their AppId, their two PDFs (the examples' have the keywords).
    source, n_endpoint = source:gsub('"https://essbasic%.test%.ess%.tencent%.cn"', '"' .. sb.endpoint .. '"')
    source, n_app = source:gsub('"yourAppId"', '"' .. sb.app_id .. '"')
    assert.are.same({ 1, 1 }, { n_endpoint, n_app })
    local copied = os.execute("cp " .. quote(ROOT .. "/examples/pdf/labour_contract.pdf") .. " " ..
      quote(dir .. "/labour.pdf") .. " && cp " .. quote(ROOT .. "/examples/pdf/confidentiality_agreement.pdf") ..
      " " .. quote(dir .. "/nda.pdf"))
    assert.is_true(copied == true or copied == 0) -- 5.1 returns the status, 5.2+ true
    local before = sb:stats().counters.groups_created or 0
    local out, status = run_lua(sb, dir, source)
    assert.are.equal(0, status, out)
    assert.is_truthy(out:match("^%w+\t2\t[%w%-]+\n"), out)
    assert.are.equal(before + 1, sb:stats().counters.groups_created)
  end)
end)

describe("links in README.md and docs/", function()
  -- GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
  local function anchor(heading)
    heading = heading:gsub("`", ""):lower()
    heading = heading:gsub("[^%w%s%-_\128-\255]", "")
    return (heading:gsub("%s", "-"))
  end

  local function anchors_of(text)
    local set, fence = {}, false
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      if line:match("^```") then fence = not fence end
      local h = not fence and line:match("^#+%s+(.-)%s*$")
      if h then set[anchor(h)] = true end
    end
    return set
  end

  local documents = { "README.md" }
  local p = assert(io.popen("cd " .. quote(ROOT) .. " && ls docs/*.md"))
  for f in p:lines() do documents[#documents + 1] = f end
  p:close()

  for _, file in ipairs(documents) do
    it(file .. ": every relative link names a file and heading that exist", function()
      local text = read(file)
      local base = file:match("^(.*)/") or ""
      local checked = 0
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a+:") then
          local path, frag = target:match("^([^#]*)#?(.*)$")
          local full = path == "" and file or ((base ~= "" and base .. "/" or "") .. path)
          full = full:gsub("[^/]+/%.%./", "")
          local f = io.open(ROOT .. "/" .. full, "rb")
          assert.is_truthy(f, file .. " links to " .. target .. ": no file " .. full)
          f:close()
          if frag ~= "" and full:match("%.md$") then
            assert.is_true(anchors_of(read(full))[frag] == true, file .. " links to " .. target .. ": no heading")
          end
          checked = checked + 1
        end
      end
      if file == "README.md" then assert.is_true(checked > 20) end
    end)
  end
end)
