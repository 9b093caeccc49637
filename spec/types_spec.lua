-- library/essbasic.lua, the LuaCATS annotations tools/gen_schema.lua --types writes from the same API description
-- as the schema: well-formed Lua, a class for every structure (requests and responses included), a method of
-- essbasic.Client for every action with its request and response types, and every option of essbasic.new.

local read = require("helpers.files").read
local schema = require("essbasic.schema")
local client = require("essbasic.client")

local PATH = "library/essbasic.lua"

describe("the LuaCATS annotations (" .. PATH .. ")", function()
  local text = read(PATH)

  it("parse as Lua", function()
    assert(loadfile(PATH))
  end)

  it("annotate every structure, request and response of the schema, each member with its type", function()
    local n = 0
    for name, st in pairs(schema.structs) do
      local class = text:match("\n%-%-%-@class essbasic%." .. name .. "\n(.-)\n\n")
      assert(class, name .. " has no class")
      for _, member in ipairs(st.order) do
        assert.truthy(class:find("---@field " .. member .. " ", 1, true), name .. "." .. member)
      end
      n = n + 1
    end
    assert.is_true(n > 300, n)
  end)

  it("type each action's method with its request and response", function()
    local n = 0
    for name, a in pairs(schema.actions) do
      local block = text:match("(%-%-%-@param params [^\n]*\n.-)\nfunction Client:" .. name .. "%(params, opts%) end\n")
      assert(block, name .. " has no method")
      assert.truthy(block:find("---@param params essbasic." .. a.input .. "\n", 1, true), name)
      assert.truthy(block:find("---@return essbasic." .. a.output .. "? resp\n", 1, true), name)
      n = n + 1
    end
    assert.equal(100, n)
  end)

  it("list every option of essbasic.new, and every option of its http table", function()
    for class_name, options in pairs{ Options = client.OPTIONS, HttpOptions = client.HTTP_OPTIONS } do
      local class = assert(text:match("\n%-%-%-@class essbasic%." .. class_name .. "\n(.-)\n\n"))
      for name in pairs(options) do
        assert.truthy(class:find("---@field " .. name .. " ", 1, true), class_name .. "." .. name)
      end
    end
  end)

  it("mark required request members and always-present response members as not optional", function()
    local class = assert(text:match("\n%-%-%-@class essbasic%.UploadFilesRequest\n(.-)\n\n"))
    assert.truthy(class:find("---@field BusinessType string ", 1, true), class)
    assert.truthy(class:find("---@field FileInfos essbasic.UploadFile[]? ", 1, true), class)
  end)
end)
