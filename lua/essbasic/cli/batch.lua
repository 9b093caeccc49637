-- essbasic batch --action ACTION --input rows.jsonl --journal run.db [--concurrency N] [--output results.jsonl]
--                [--template T] [--format jsonl|csv] [--separator C] [--retry-failed] [--retry-unknown]
--                [--quiet | --json | --progress bar|plain|json|none] [--progress-interval S]
--
-- One request per input row, sent in waves of N: the wave's rows are marked `sending` in one committed
-- statement, sent with client:call_many, and each answer is committed as it arrives (on_done). A run killed at any
-- moment leaves at most N rows `sending`; the next run with the same journal turns those into `unknown` and never
-- sends them again unless --retry-unknown is given. Rows done are skipped; failed rows whose request certainly
-- never reached the API are sent again; the other failed rows only with --retry-failed. The journal remembers
-- the input's hash and refuses another input. The run ends with the line "N done, N failed, N unknown" on stdout
-- and exits 0 only when every row is done (common.EXIT: 6 when some are unknown, 8 when some failed).

local core = require("essbasic.core")
local json = require("essbasic.json")
local errors = require("essbasic.errors")
local common = require("essbasic.cli.common")
local args = require("essbasic.cli.args")
local config = require("essbasic.cli.config")
local call = require("essbasic.cli.call")
local rows_mod = require("essbasic.cli.rows")
local journal_mod = require("essbasic.cli.journal")
local progress_mod = require("essbasic.cli.progress")

local EXIT, fail = common.EXIT, common.fail
local type, tostring, ipairs, pcall, concat = type, tostring, ipairs, pcall, table.concat
local format, find = string.format, string.find

local M = {}

M.DEFAULT_CONCURRENCY = 10
M.MAX_CONCURRENCY = 200

M.OPTIONS = {
  action = { value = true }, input = { value = true }, journal = { value = true }, concurrency = { value = true },
  output = { value = true }, template = { value = true }, format = { value = true }, separator = { value = true },
  ["retry-failed"] = {}, ["retry-unknown"] = {}, quiet = { short = "q" }, json = {}, progress = { value = true },
  ["progress-interval"] = { value = true }, ["no-validate"] = {},
}

-- Whether a failed call certainly did not reach the API (or the API refused it unread): such a row may be sent
-- again by the next run without --retry-failed.
function M.not_sent(err)
  if type(err) ~= "table" then return false end
  if err.code == errors.OUTCOME_UNKNOWN then return false end
  if err.sent == false then return true end
  if err.kind == "validation" then return true end
  if err.attempts == 0 then return true end
  -- RequestLimitExceeded: the API's documented "refused, not processed" (the client retries it for any action).
  if err.kind == "service" and type(err.code) == "string"
      and (err.code == "RequestLimitExceeded" or find(err.code, "^RequestLimitExceeded%.")) then
    return true
  end
  return false
end

local function progress_mode(opts)
  local mode = opts.progress
  if opts.quiet then
    mode = "none"
  elseif opts.json then
    mode = "json"
  end
  if mode == nil then mode = common.isatty(2) and "bar" or "plain" end
  if mode ~= "bar" and mode ~= "plain" and mode ~= "json" and mode ~= "none" then
    fail(EXIT.usage, "--progress is bar, plain, json or none, not " .. tostring(mode))
  end
  return mode
end

local function input_format(opts, path)
  local f = opts.format
  if f == nil then f = path:lower():match("%.csv$") and "csv" or "jsonl" end
  if f == "json" or f == "ndjson" then f = "jsonl" end
  if f ~= "jsonl" and f ~= "csv" then fail(EXIT.usage, "--format is jsonl or csv, not " .. tostring(f)) end
  return f
end

local function need(opts, name)
  local v = opts[name]
  if type(v) ~= "string" or v == "" then fail(EXIT.usage, "batch needs --" .. name) end
  return v
end

-- The results file: one JSON object per row in line order, from the journal (so a rerun writes every row, not
-- only its own).
local function write_output(path, j)
  local lines = {}
  for _, r in ipairs(j:rows()) do
    local parts = { '{"line":', format("%d", r.line), ',"state":', json.encode(r.state) }
    if r.tries then parts[#parts + 1] = ',"tries":' .. format("%d", r.tries) end
    if r.state == "failed" then parts[#parts + 1] = ',"sent":' .. (r.sent == 0 and "false" or "true") end
    if r.response then parts[#parts + 1] = ',"response":' .. r.response end
    if r.error then parts[#parts + 1] = ',"error":' .. r.error end
    parts[#parts + 1] = "}"
    lines[#lines + 1] = concat(parts)
  end
  local ok, why = common.write_file(path, concat(lines, "\n") .. (#lines > 0 and "\n" or ""))
  if not ok then common.stderr("essbasic batch: cannot write ", path, ": ", tostring(why), "\n") end
  return ok
end

local function line_list(list, max)
  local out = {}
  for i, r in ipairs(list) do
    if i > (max or 20) then out[#out + 1] = "…" break end
    out[#out + 1] = format("%d", r.line)
  end
  return concat(out, ", ")
end

local function encode_error(err)
  local t = common.error_table(err)
  local s = json.encode(t)
  if s then return t, s end
  t = { code = t.code, message = t.message, kind = t.kind }
  return t, json.encode(t) or json.encode{ code = errors.UNEXPECTED }
end

function M.run(opts, words, ctx)
  if words[1] then fail(EXIT.usage, "batch takes no arguments (--action, --input and --journal say what to do)") end
  local action = call.action_named(need(opts, "action"))
  local input_path = need(opts, "input"):gsub("^@", "")
  local journal_path = need(opts, "journal")
  if input_path == "-" then fail(EXIT.usage, "batch reads its input from a file (a rerun needs the same input)") end
  local concurrency, why = args.number(opts, "concurrency", 1)
  if why then fail(EXIT.usage, why) end
  concurrency = math.floor(concurrency or M.DEFAULT_CONCURRENCY)
  if concurrency > M.MAX_CONCURRENCY then fail(EXIT.usage, "--concurrency is at most " .. M.MAX_CONCURRENCY) end
  local interval
  interval, why = args.number(opts, "progress-interval", 0)
  if why then fail(EXIT.usage, why) end
  local mode = progress_mode(opts)
  local fmt = input_format(opts, input_path)
  local separator = opts.separator or ","
  if #separator ~= 1 then fail(EXIT.usage, "--separator is one character") end

  local text, rerr = common.read_file(input_path)
  if not text then fail(EXIT.usage, "cannot read the input " .. input_path .. ": " .. tostring(rerr)) end
  local template_text = opts.template and common.read_source(opts.template, "--template") or nil
  local template
  if template_text then
    local t, jerr = json.decode(template_text)
    if type(t) ~= "table" or json.is_array(t) then
      fail(EXIT.usage, "--template must be a JSON object: " .. tostring(jerr or "found another JSON value"))
    end
    template = t
  end
  local rows, problems = rows_mod.load(text, { format = fmt, template = template, separator = separator })
  if not rows then
    fail(EXIT.usage, "the input " .. input_path .. " cannot be used:\n" .. rows_mod.describe_problems(problems,
      input_path))
  end
  local params_of, lines = {}, {}
  for i, r in ipairs(rows) do
    params_of[r.line] = r.params
    lines[i] = r.line
  end
  local input_hash = core.sha256_hex(concat({ "essbasic-batch-1", fmt, separator, template_text or "", text }, "\0"))

  -- The client first: a malformed endpoint is refused before any journal is made.
  local client = config.client(opts, ctx)

  local j, jerr = journal_mod.open(journal_path, { action = action.name, input_hash = input_hash,
    input_name = input_path, lines = lines,
    options = json.encode{ concurrency = concurrency, retry_failed = opts["retry-failed"] == true,
      retry_unknown = opts["retry-unknown"] == true } })
  if not j then
    local code = (jerr.code == journal_mod.MISMATCH or jerr.code == journal_mod.IN_USE) and EXIT.journal
      or EXIT.failure
    common.stderr(common.to_json({ code = jerr.code, message = jerr.message }, { order = { "code", "message" } },
      true), "\n")
    return code
  end

  local flags = { retry_failed = opts["retry-failed"] == true, retry_unknown = opts["retry-unknown"] == true }
  local eligible = j:eligible(flags)
  local before = {}
  local counts = j:counts()
  if #eligible > 0 then
    for _, r in ipairs(j:rows("state IN ('pending', 'failed', 'unknown')")) do before[r.line] = r.state end
  end
  local progress = progress_mod.new{ mode = mode, total = counts.total, to_send = #eligible, counts = counts,
    interval = interval, name = "batch" }
  progress:start{ recovered = j.recovered,
    skipped_unknown = not flags.retry_unknown and counts.unknown or 0,
    skipped_failed = not flags.retry_failed and (counts.failed - counts.failed_unsent) or 0 }

  local config_failure
  local function record(line, resp, second)
    local state, code
    if resp then
      local stored, store_err = pcall(j.done, j, line, resp)
      if not stored then
        -- The journal cannot take it (disk full?): the answer goes to stderr rather than nowhere, and the row stays
        -- `sending`, so the next run counts it unknown.
        common.stderr('{"line":', format("%d", line), ',"state":"done","response":', json.encode(resp) or "null",
          "}\n")
        error(store_err, 0)
      end
      state = "done"
    else
      local t, text_err = encode_error(second)
      code = t.code
      if second and second.code == errors.OUTCOME_UNKNOWN then
        state = "unknown"
        j:failed(line, "unknown", code, text_err, nil)
      else
        state = "failed"
        j:failed(line, "failed", code, text_err, not M.not_sent(second))
      end
    end
    progress:row(line, state, before[line], code)
    return state, code
  end

  local function send_wave(wave)
    j:mark_sending(wave)
    local list = {}
    for i, line in ipairs(wave) do list[i] = { action.name, params_of[line] } end
    local config_errors = 0
    client:call_many(list, { concurrency = concurrency, on_done = function(i, resp, err)
      local _, code = record(wave[i], resp, err)
      if code == errors.CREDENTIAL or code == errors.HEADER_VALUE then config_errors = config_errors + 1 end
    end })
    -- Calls refused for want of credentials: every later call of this client would be too.
    if config_errors > 0 then config_failure = true end
  end

  local ran, run_err = pcall(function()
    local i = 1
    while i <= #eligible and not config_failure do
      local wave = {}
      for k = i, math.min(i + concurrency - 1, #eligible) do wave[#wave + 1] = eligible[k] end
      i = i + #wave
      send_wave(wave)
      progress:tick()
    end
  end)
  local exit_override
  if not ran then
    local message = tostring(type(run_err) == "table" and (run_err.sqlite or run_err.message) or run_err)
    local interrupted = find(message, "interrupted", 1, true) ~= nil
    local ok_abandon, n = pcall(j.abandon, j, interrupted and "the run was interrupted while this row was being sent"
      or ("the run failed while this row was being sent: " .. message))
    n = ok_abandon and n or 0
    progress:notice((interrupted and "interrupted" or ("stopped: " .. message))
      .. (n > 0 and format(" (%d rows being sent are now unknown)", n) or ""),
      { interrupted = interrupted, abandoned = n }, true)
    exit_override = interrupted and EXIT.interrupted or EXIT.failure
  end
  client:close()
  local c = j:counts()
  local unknown_rows = c.unknown > 0 and j:rows("state = 'unknown'") or {}
  local failed_rows = c.failed > 0 and j:rows("state = 'failed'") or {}
  local function lines_of(list)
    local out = json.array()
    for i, r in ipairs(list) do out[i] = r.line end
    return out
  end
  progress:finish(c, { unknown_lines = lines_of(unknown_rows), failed_lines = lines_of(failed_rows) })
  local summary = format("%d done, %d failed, %d unknown", c.done, c.failed, c.unknown)
  if c.pending + c.sending > 0 then summary = summary .. format(", %d not sent", c.pending + c.sending) end
  pcall(j.finish, j, summary)
  if opts.output then write_output(opts.output, j) end
  if mode ~= "json" then
    if c.unknown > 0 then
      progress:notice("outcome unknown for lines " .. line_list(unknown_rows) .. ": check them (a group: "
        .. "DescribeFlowDetailInfo, or the callbacks) before --retry-unknown")
    end
    if c.failed > 0 then
      progress:notice("failed lines " .. line_list(failed_rows)
        .. (opts.output and "" or " (--output writes every row's answer or error)")
        .. (c.failed_unsent > 0 and format("; %d never reached the API and go again on the next run", c.failed_unsent)
          or "") .. (c.failed > c.failed_unsent and "; the others only with --retry-failed" or ""))
    end
  end
  j:close()
  if config_failure then
    progress:notice("stopped: the calls have no usable credentials or configuration", { credentials = false }, true)
  end
  common.stdout(summary, "\n")
  if exit_override then return exit_override end
  if config_failure then return EXIT.credentials end
  if c.done == c.total then return EXIT.ok end
  if c.unknown > 0 then return EXIT.unknown end
  return EXIT.incomplete
end

return M
