-- The essbasic command (bin/essbasic): main(argv, ctx) → exit status. ctx.root is the source checkout when the
-- command runs from one (the sandbox commands need it). The commands live beside this file:
--   call, actions, describe   essbasic.cli.call          batch      essbasic.cli.batch (journal, rows, progress)
--   callback decrypt          essbasic.cli.callback      sandbox    essbasic.cli.sandbox
-- Shared options (config.OPTIONS) go anywhere on the line; the exit codes are common.EXIT (docs/cli.md).

local args = require("essbasic.cli.args")
local common = require("essbasic.cli.common")
local config = require("essbasic.cli.config")

local EXIT = common.EXIT
local ipairs, pairs, tostring, type, pcall = ipairs, pairs, tostring, type, pcall

local M = {}

M.USAGE = [[
usage: essbasic COMMAND [options]

  call ACTION [--input '{json}' | --input @file.json | --input -] [--dry-run] [--compact]
                      send one request; the Response as JSON on stdout
  actions [--json]    every action of the API
  describe NAME [--all] [--json]
                      an action's request and response members (or a structure's)
  batch --action ACTION --input rows.jsonl --journal run.db [--concurrency N] [--output results.jsonl]
        [--template T] [--format jsonl|csv] [--retry-failed] [--retry-unknown] [--quiet | --json] ...
        [--callbacks STORE] [--resend-unknown-after DURATION]
                      one request per row, safe to kill and run again with the same journal
  batch reconcile --journal run.db --callbacks STORE [--output results.jsonl]
                      unknown rows whose callbacks came (callback serve's store) become done
  callback decrypt --key KEY --token TOKEN [--signature V | --header 'Content-Signature: V'] < body
                      check, decrypt and print a callback message
  callback serve --store run.db --token TOKEN [--key KEY] --port N [--listen ADDR]
                      receive callbacks (nginx) and record their flows for resolving unknown creations
  sandbox start|stop|status|env|demo [--port N] [--data DIR]
                      the local sandbox (from the installed rock or a source checkout)

options of every command:
  --endpoint URL  --file-endpoint URL  --region R  --profile NAME  --sandbox[=DIR]
  --timeout SECONDS  --rate N (requests per second per action; 0: no limit)  --help

exit status: 0 ok, 1 failure, 2 usage, 3 validation (not sent), 4 service error, 5 network/HTTP error,
  6 outcome unknown, 7 credentials, 8 batch incomplete, 9 journal refused, 10 callback refused, 130 interrupted,
  143 batch stopped by SIGTERM
essbasic COMMAND --help lists every option of a command.
]]

local function command(name)
  if name == "call" or name == "actions" or name == "describe" then
    local call = require("essbasic.cli.call")
    local spec = ({ call = call.CALL_OPTIONS, actions = call.ACTIONS_OPTIONS, describe = call.DESCRIBE_OPTIONS })[name]
    local synopsis = ({ call = call.CALL_SYNOPSIS, actions = call.ACTIONS_SYNOPSIS,
      describe = call.DESCRIBE_SYNOPSIS })[name]
    return spec, call[name], synopsis
  elseif name == "batch" then
    local batch = require("essbasic.cli.batch")
    return batch.OPTIONS, batch.run, batch.SYNOPSIS
  elseif name == "callback" then
    local cb = require("essbasic.cli.callback")
    return cb.OPTIONS, cb.run, cb.SYNOPSIS or "essbasic callback decrypt [options] < body"
  end
  return nil
end

local COMMANDS = { "call", "actions", "describe", "batch", "callback", "sandbox", "help", "version" }

-- Every option any command knows, to find the command word wherever the shared options are.
local function all_options()
  local all = args.merge(config.OPTIONS, { version = {} })
  for _, name in ipairs({ "call", "actions", "describe", "batch", "callback" }) do
    local spec = command(name)
    for k, v in pairs(spec) do all[k] = v end
  end
  return all
end

local function report(v)
  if common.is_fail(v) then
    if v.message then common.stderr("essbasic: ", v.message, "\n") end
    return v.exit
  end
  if type(v) == "string" and v:find("interrupted", 1, true) then
    common.stderr("essbasic: interrupted\n")
    return EXIT.interrupted
  end
  common.stderr("essbasic: internal error: ", tostring(v), "\n")
  return EXIT.failure
end

function M.main(argv, ctx)
  ctx = ctx or {}
  local all = all_options()
  local name, at = args.first_word(argv, all)
  if not name then
    local opts, why = args.parse(argv, all)
    if not opts then
      -- the bad option named (with a guess), not the whole usage
      common.stderr("essbasic: ", why, "\n(essbasic help lists the commands; essbasic COMMAND --help their options)\n")
      return EXIT.usage
    end
    if opts.version then
      common.stdout("essbasic ", require("essbasic").VERSION, " (API ", require("essbasic").API_VERSION, ")\n")
      return EXIT.ok
    end
    if opts.help then common.stdout(M.USAGE) return EXIT.ok end
    common.stderr(M.USAGE)
    return EXIT.usage
  end
  if name == "help" then common.stdout(M.USAGE) return EXIT.ok end
  if name == "version" then
    common.stdout("essbasic ", require("essbasic").VERSION, " (API ", require("essbasic").API_VERSION, ")\n")
    return EXIT.ok
  end
  local rest = {}
  for i, w in ipairs(argv) do
    if i ~= at then rest[#rest + 1] = w end
  end
  if name == "sandbox" then
    -- Everything after `sandbox` belongs to sandbox/run.
    local words = {}
    for i = at + 1, #argv do words[#words + 1] = argv[i] end
    local ok, code = pcall(require("essbasic.cli.sandbox").run, words, ctx)
    if ok then return code end
    return report(code)
  end
  local spec, run, synopsis = command(name)
  if not spec then
    local guess = args.closest(name, COMMANDS)
    common.stderr("essbasic: no command ", name, guess and (" (did you mean " .. guess .. "?)") or "", "\n\n", M.USAGE)
    return EXIT.usage
  end
  local opts, words = args.parse(rest, args.merge(config.OPTIONS, spec))
  if not opts then
    common.stderr("essbasic ", name, ": ", words, "\n")
    return EXIT.usage
  end
  if opts.help then common.stdout(args.help(synopsis, spec, config.OPTIONS)) return EXIT.ok end
  local ok, code = pcall(run, opts, words, ctx)
  if ok then return code end
  return report(code)
end

return M
