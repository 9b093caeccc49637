-- essbasic sandbox start|stop|status|env [--port N] [--data DIR] [--config FILE]
-- Runs sandbox/run of the source checkout (the sandbox is nginx with this project's server code, which a rock
-- does not install) with the same words, and exits with its status.

local common = require("essbasic.cli.common")

local EXIT, fail = common.EXIT, common.fail
local ipairs, concat = ipairs, table.concat

local M = {}

M.COMMANDS = { start = true, stop = true, status = true, env = true }

-- words: the words after `sandbox`, options included (they belong to sandbox/run).
function M.run(words, ctx)
  local cmd = words[1]
  if not M.COMMANDS[cmd] then
    fail(EXIT.usage, "essbasic sandbox start|stop|status|env [--port N] [--data DIR] [--config FILE]")
  end
  local root = ctx and ctx.root
  if not root then
    fail(EXIT.failure, "the sandbox lives in the source checkout (sandbox/run): run essbasic from there")
  end
  local quoted = { common.shell_quote(root .. "/sandbox/run") }
  for _, w in ipairs(words) do quoted[#quoted + 1] = common.shell_quote(w) end
  io.stdout:flush()
  return common.execute(concat(quoted, " "))
end

return M
