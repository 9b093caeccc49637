-- essbasic.errors is the register of the error kinds and the ClientError.* codes: every one a module writes is
-- there (read from the sources, so a new code cannot be used without being registered and documented).

local errors = require("essbasic.errors")
local read = require("helpers.files").read

local function sources()
  local p = assert(io.popen("git ls-files 'lua/*.lua' 'bin/*' 2>/dev/null"))
  local files = {}
  for f in p:lines() do
    if f ~= "lua/essbasic/schema.lua" then files[#files + 1] = f end
  end
  p:close()
  return files
end

describe("essbasic.errors", function()
  local registered = {}
  for _, v in pairs(errors) do
    if type(v) == "string" then registered[v] = true end
  end

  it("registers every ClientError code and every error kind the modules use", function()
    local files, codes, kinds = sources(), 0, 0
    assert.is_true(#files > 20)
    for _, f in ipairs(files) do
      local n = 0
      for line in (read(f) .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        for code in line:gmatch("ClientError%.[%w_]+") do
          codes = codes + 1
          assert.is_true(registered[code] == true, f .. ":" .. n .. ": " .. code .. " is not in essbasic.errors")
        end
        -- an error's kind: written beside its code
        local kind = line:find("code", 1, true) and line:match('kind = "([%w_]+)"')
        if kind then
          kinds = kinds + 1
          assert.is_true(errors.KINDS[kind] == true, f .. ":" .. n .. ": kind " .. kind .. " is not in errors.KINDS")
        end
      end
    end
    assert.is_true(codes > 0 and kinds > 10, codes .. " codes, " .. kinds .. " kinds")
  end)

  it("gives essbasic.file's failure a registered code", function()
    local _, err = require("essbasic").file("/nonexistent/essbasic-errors-spec")
    assert.are.equal(errors.FILE, err.code)
    assert.are.equal("client", err.kind)
  end)
end)
