-- essbasic batch --action ACTION --input rows.jsonl --journal run.db [--concurrency N] [--output results.jsonl]
--                [--template T] [--format jsonl|csv] [--separator C] [--retry-failed] [--retry-unknown]
--                [--quiet | --json | --progress bar|plain|json|none] [--progress-interval S]
--                [--callbacks STORE [--resend-unknown-after DURATION]]
-- essbasic batch reconcile --journal run.db --callbacks STORE [--output results.jsonl]
--
-- One request per input row, sent in waves of N: the wave's rows are marked `sending` in one committed
-- statement, sent with client:call_many, and each answer is committed as it arrives (on_done). A run killed at any
-- moment leaves at most N rows `sending`; the next run with the same journal turns those into `unknown` and never
-- sends them again unless --retry-unknown is given. Rows done are skipped; failed rows whose request certainly
-- never reached the API are sent again; the other failed rows only with --retry-failed. The journal remembers
-- the input's hash and refuses another input. The run ends with the line "N done, N failed, N unknown" on stdout
-- and exits 0 only when every row is done (common.EXIT: 6 when some are unknown, 8 when some failed).
--
-- The rows of a creating action carry correlation keys in their flows' CustomerData (essbasic.correlate), journaled
-- with the `sending` mark; --callbacks and `batch reconcile` settle unknown rows from the callbacks
-- (essbasic.cli.reconcile); --resend-unknown-after sends an unsettled one again with new keys.
--
-- Memory stays flat whatever the input's size: the input is read as a stream (twice for a new journal: once to
-- check every row and list it in the journal, once to send), the journal is read a chunk at a time, and only one
-- wave of rows is held. SIGINT and SIGTERM stop the run between waves: the wave in flight is answered and
-- journaled, the summary printed, and the exit code is 130 or 143; a second signal ends the process at once.

local core = require("essbasic.core")
local json = require("essbasic.json")
local errors = require("essbasic.errors")
local retry = require("essbasic.retry")
local personal = require("essbasic.personal")
local common = require("essbasic.cli.common")
local args = require("essbasic.cli.args")
local config = require("essbasic.cli.config")
local call = require("essbasic.cli.call")
local rows_mod = require("essbasic.cli.rows")
local journal_mod = require("essbasic.cli.journal")
local progress_mod = require("essbasic.cli.progress")
local reconcile = require("essbasic.cli.reconcile")
local correlate = require("essbasic.correlate")

local EXIT, fail = common.EXIT, common.fail
local type, tostring, ipairs, pcall, concat = type, tostring, ipairs, pcall, table.concat
local format = string.format

local M = {}

M.DEFAULT_CONCURRENCY = 10
M.MAX_CONCURRENCY = 200

M.OPTIONS = {
  action = { value = true, arg = "ACTION", help = "the action of every row" },
  input = { value = true, arg = "FILE", help = "the rows: JSON Lines, or CSV with --template" },
  journal = { value = true, arg = "FILE", help = "the SQLite journal (made on the first run; give it again to go on)" },
  concurrency = { value = true, arg = "N", help = "rows in flight at once (default 10, at most 200)" },
  output = { value = true, arg = "FILE", help = "every row's answer or error, JSON Lines in line order" },
  template = { value = true, arg = "T", help = "a request with {{column}} placeholders: '{json}' or @file" },
  format = { value = true, arg = "jsonl|csv", help = "the input's format (default: from its name)" },
  separator = { value = true, arg = "C", help = "the CSV separator (default ,)" },
  ["retry-failed"] = { help = "also send failed rows that reached the API" },
  ["retry-unknown"] = { help = "also send rows whose outcome is unknown (check them first)" },
  quiet = { short = "q", help = "no progress" },
  json = { help = "progress as JSON events" },
  progress = { value = true, arg = "MODE", help = "bar, plain, json or none (default: bar on a terminal)" },
  ["progress-interval"] = { value = true, arg = "S", help = "seconds between plain or JSON progress lines (5)" },
  ["no-validate"] = { help = "send rows as they are, without the API's rules" },
  callbacks = { value = true, arg = "STORE", help = "the SQLite file of `essbasic callback serve --store`: unknown "
    .. "rows whose callbacks came become done (before anything is sent)" },
  ["resend-unknown-after"] = { value = true, arg = "DURATION", help = "send again an unknown row whose last send "
    .. "is older than DURATION (90s, 30m, 2h, 1d) and whose callbacks never came: RISK of a contract made twice "
    .. "(needs --callbacks)" },
}

M.SYNOPSIS = "essbasic batch --action ACTION --input rows.jsonl --journal run.db [options]\n"
  .. "essbasic batch reconcile --journal run.db --callbacks STORE [--output FILE]\n\n"
  .. "One request per row, safe to stop (Ctrl-C, SIGTERM) or kill and run again with the same journal.\n"
  .. "Exit: 0 every row done, 6 some unknown, 8 some failed, 9 journal refused, 130 SIGINT, 143 SIGTERM."

-- Whether a failed call certainly did not reach the API (or the API refused it unread): such a row may be sent
-- again by the next run without --retry-failed.
function M.not_sent(err)
  if type(err) ~= "table" then return false end
  if err.code == errors.OUTCOME_UNKNOWN then return false end
  if err.sent == false then return true end
  if err.kind == "validation" then return true end
  if err.attempts == 0 then return true end
  -- refused unread (RequestLimitExceeded, a request that never left): decided once, by the retry rules
  return retry.classify(err) == "refused"
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
-- only its own), written a chunk of rows at a time into a file beside it and renamed over it. → true, or nil and why.
local function write_output(path, j)
  local tmp = path .. ".tmp"
  local f, why = io.open(tmp, "wb")
  if not f then return nil, why end
  local ok, werr = pcall(j.each_row, j, nil, function(r)
    local parts = { '{"line":', format("%d", r.line), ',"state":', json.encode(r.state) }
    if r.tries then parts[#parts + 1] = ',"tries":' .. format("%d", r.tries) end
    if r.state == "failed" then parts[#parts + 1] = ',"sent":' .. (r.sent == 0 and "false" or "true") end
    if r.response then parts[#parts + 1] = ',"response":' .. r.response end
    if r.error then parts[#parts + 1] = ',"error":' .. r.error end
    if r.resolved then parts[#parts + 1] = ',"resolved":' .. r.resolved end
    parts[#parts + 1] = "}\n"
    local written, err = f:write(concat(parts))
    if not written then error(err, 0) end
  end)
  if ok then ok, werr = f:flush() end
  f:close()
  if ok then ok, werr = os.rename(tmp, path) end
  if not ok then
    os.remove(tmp)
    return nil, type(werr) == "table" and (werr.sqlite or tostring(werr)) or werr
  end
  return true
end

local function line_list(list, max)
  local out = {}
  for i, line in ipairs(list) do
    if i > (max or 20) then out[#out + 1] = "…" break end
    out[#out + 1] = format("%d", line)
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

-- The input's fingerprint: sha256 of the settings and the file's bytes, the file read a block at a time (the
-- same value essbasic 0.2 computed from the whole text, so its journals resume).
local function fingerprint(path, fmt, separator, template_text)
  return function()
    return core.sha256_file_hex(concat({ "essbasic-batch-1", fmt, separator, template_text or "", "" }, "\0"), path)
  end
end

-- A failure of a row, as the table shown to people: its stored error's code and message, masked and cut short.
local function failure_line(r)
  local e = r.error and json.decode(r.error)
  local message = type(e) == "table" and type(e.message) == "string" and e.message or ""
  if #message > 160 then message = message:sub(1, 160) .. "…" end
  return format("  %-8d %-40s %s", r.line, tostring(r.error_code or "?"), personal.scrub((message:gsub("\n", " "))))
end

M.ROW_UNUSABLE = "Batch.RowUnusable" -- a row of an old journal that the input no longer yields as a request
M.FAILURES_SHOWN = 20 -- rows of the failure table before "… and N more"

-- The exit code of a run stopped by a signal (README, "Command line").
M.SIGNAL_EXIT = { SIGINT = EXIT.interrupted, SIGTERM = EXIT.terminated }

-- --resend-unknown-after: "90", "90s", "30m", "2h", "1d" → seconds.
local UNIT = { s = 1, m = 60, h = 3600, d = 86400 }
function M.duration(text)
  local n, unit = tostring(text):match("^(%d+%.?%d*)([smhd]?)$")
  if not n then return nil end
  return tonumber(n) * UNIT[unit ~= "" and unit or "s"]
end

-- `essbasic batch reconcile --journal run.db --callbacks STORE [--output FILE]`: the unknown rows whose callbacks
-- came become done; nothing is sent. The exit code is the batch's (0 every row done, 6 some unknown, 8 some
-- failed or not sent).
local function run_reconcile(opts, ctx)
  local journal_path = need(opts, "journal")
  local store = reconcile.open_store(need(opts, "callbacks"))
  -- A client only for DescribeFlowDetailInfo, when a callback lacked the group's id (none configured: no lookups).
  local made, client = pcall(config.client, opts, ctx)
  if not made then client = nil end
  core.private_umask()
  local j, jerr = journal_mod.open(journal_path, { any_input = true, options = json.encode{ reconcile = true } })
  if not j then
    store:close()
    if client then client:close() end
    common.print_error({ code = jerr.code, message = jerr.message }, false, opts.json)
    return (jerr.code == journal_mod.MISMATCH or jerr.code == journal_mod.IN_USE) and EXIT.journal or EXIT.failure
  end
  local result, serr = reconcile.settle(j, client, store)
  store:close()
  if client then client:close() end
  if not result then
    j:close()
    fail(EXIT.failure, "the callback store did not answer: " .. tostring(serr))
  end
  local said = reconcile.describe(result, line_list)
  if said then common.stderr(said, "\n") end
  local c = j:counts()
  local summary = format("%d done, %d failed, %d unknown", c.done, c.failed, c.unknown)
  if c.pending > 0 then summary = summary .. format(", %d not sent", c.pending) end
  pcall(j.finish, j, "reconcile: " .. summary)
  local output_failed
  if opts.output then
    local ok, werr = write_output(opts.output, j)
    if not ok then
      output_failed = true
      common.stderr("essbasic: cannot write --output ", opts.output, ": ", tostring(werr), "\n")
    end
  end
  j:close()
  common.stdout(summary, "\n")
  if output_failed then return EXIT.failure end
  if c.done == c.total then return EXIT.ok end
  if c.unknown > 0 then return EXIT.unknown end
  return EXIT.incomplete
end

function M.run(opts, words, ctx)
  if words[1] == "reconcile" and not words[2] then return run_reconcile(opts, ctx) end
  if words[1] then fail(EXIT.usage, "batch takes no arguments (--action, --input and --journal say what to do; "
    .. "`batch reconcile` settles unknown rows from --callbacks)") end
  local resend_after
  if opts["resend-unknown-after"] then
    resend_after = M.duration(opts["resend-unknown-after"])
    if not resend_after then
      fail(EXIT.usage, "--resend-unknown-after takes a duration: 90s, 30m, 2h, 1d")
    end
    if not opts.callbacks then
      fail(EXIT.usage, "--resend-unknown-after needs --callbacks: a row is sent again only when its callbacks were "
        .. "looked for and never came")
    end
  end
  local callbacks = opts.callbacks and reconcile.open_store(opts.callbacks) or nil
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

  local probe, rerr = io.open(input_path, "rb")
  if not probe then fail(EXIT.failure, "cannot read the input " .. input_path .. ": " .. tostring(rerr)) end
  probe:close()
  local template_text = opts.template and common.read_source(opts.template, "--template") or nil
  local template
  if template_text then
    local t, jerr = json.decode(template_text)
    if type(t) ~= "table" or json.is_array(t) then
      fail(EXIT.usage, "--template must be a JSON object: " .. tostring(jerr or "found another JSON value"))
    end
    template = t
  end
  local input_opts = { format = fmt, template = template, separator = separator }

  -- The client first: a malformed endpoint is refused before any journal is made.
  local client = config.client(opts, ctx)

  -- From here a signal stops the run in order, and what the run creates (the journal, --output) is private: they
  -- hold people's names and mobiles.
  core.private_umask()
  core.catch_signals()

  local j, jerr = journal_mod.open(journal_path, { action = action.name, input_name = input_path,
    input_hash = fingerprint(input_path, fmt, separator, template_text),
    rows = function(add)
      local reader, problems = rows_mod.open(input_path, input_opts)
      if not reader then return problems end
      local _, found = rows_mod.check(reader, add)
      reader.close()
      if found.count > 0 then return found end
      return nil
    end,
    options = json.encode{ concurrency = concurrency, retry_failed = opts["retry-failed"] == true,
      retry_unknown = opts["retry-unknown"] == true } })
  if not j then
    client:close()
    if jerr.problems then
      fail(EXIT.usage, "the input " .. input_path .. " cannot be used:\n" .. rows_mod.describe_problems(jerr.problems,
        input_path))
    end
    local code = (jerr.code == journal_mod.MISMATCH or jerr.code == journal_mod.IN_USE) and EXIT.journal
      or EXIT.failure
    common.print_error({ code = jerr.code, message = jerr.message }, false, opts.json)
    return code
  end

  -- The callbacks first: an unknown row they prove created is done, before anything is sent (or resent).
  local settled
  if callbacks then
    local serr
    settled, serr = reconcile.settle(j, client, callbacks)
    callbacks:close()
    if not settled then
      j:close()
      client:close()
      fail(EXIT.failure, "the callback store did not answer (nothing was sent): " .. tostring(serr))
    end
  end

  local flags = { retry_failed = opts["retry-failed"] == true, retry_unknown = opts["retry-unknown"] == true,
    resend_before = resend_after and (os.time() - resend_after) or nil }
  local counts = j:counts()
  local to_send = j:count_eligible(flags)
  local progress = progress_mod.new{ mode = mode, total = counts.total, to_send = to_send, counts = counts,
    interval = interval, name = "batch" }
  progress:start{ recovered = j.recovered,
    skipped_unknown = not flags.retry_unknown and counts.unknown
      - (flags.resend_before and j:count_resend(flags.resend_before) or 0) or 0,
    skipped_failed = not flags.retry_failed and (counts.failed - counts.failed_unsent) or 0 }
  local said = settled and reconcile.describe(settled, line_list)
  if said then progress:notice(said, { resolved = settled.resolved, duplicates = #settled.duplicates }, true) end

  -- Answers the journal could not store (a full disk): line → state. They stay `sending` in the journal (the next
  -- run makes them unknown); the summary counts them as what they are.
  local unstored, storage_error = {}, nil
  local config_failure

  -- One row's outcome: resp (done) or err (failed or unknown), as the journal stores it. → { line, state, code,
  -- resp, err_json, sent }
  local function outcome(line, resp, err)
    if resp then return { line = line, state = "done", resp = resp } end
    local t, err_json = encode_error(err)
    -- The client says when a creating call may have been carried out (OUTCOME_UNKNOWN, from err.sent).
    local state = (type(err) == "table" and err.code == errors.OUTCOME_UNKNOWN) and "unknown" or "failed"
    local sent = nil
    if state == "failed" then sent = not M.not_sent(err) end
    return { line = line, state = state, code = t.code, err_json = err_json, sent = sent }
  end

  -- Outcomes written to the journal in one transaction (one commit, on disk before this returns). When the
  -- journal cannot take them (disk full?), nothing of them is stored: each is told on stderr (masked) and counted
  -- as what it is; the rows stay `sending` (the next run makes them unknown) and the run stops. → true or false.
  local function store(list)
    if #list == 0 then return true end
    local ok, err = pcall(function()
      j:exec("BEGIN IMMEDIATE")
      for _, o in ipairs(list) do
        if o.state == "done" then j:done(o.line, o.resp) else j:failed(o.line, o.state, o.code, o.err_json, o.sent) end
      end
      j:exec("COMMIT")
    end)
    if ok then return true end
    pcall(j.exec, j, "ROLLBACK")
    storage_error = storage_error or err
    for _, o in ipairs(list) do
      unstored[o.line] = o.state
      local shown = o.resp and personal.scrub(json.encode(o.resp) or "", o.resp) or o.code
      progress:notice(format("the journal could not store the outcome of line %d (%s): %s", o.line, o.state,
        tostring(shown)), { line = o.line, state = o.state, stored = false }, true)
    end
    return false
  end

  -- A wave: its rows marked `sending` (committed), sent with call_many, their outcomes shown as they come and
  -- stored together when the wave ends (a kill before that leaves them `sending`: unknown, never sent twice).
  local function send_wave(wave)
    local lines = {}
    -- Correlation keys in every flow (CustomerData: a fresh key, or the row's own value), on disk with the
    -- `sending` mark before the request goes out: the callbacks can then settle a lost answer.
    local list, keys = {}, {}
    for i, r in ipairs(wave) do
      lines[i] = r.line
      local params, c = correlate.apply(action.name, r.params)
      list[i] = { action.name, params }
      keys[i] = c and json.encode{ action = c.action, keys = json.array(c.keys), agent = c.agent } or nil
    end
    j:mark_sending(lines, keys)
    local outcomes = {}
    local config_errors = 0
    client:call_many(list, { concurrency = concurrency, on_done = function(i, resp, err)
      local o = outcome(wave[i].line, resp, err)
      outcomes[#outcomes + 1] = o
      progress:row(o.line, o.state, wave[i].state, o.code)
      if o.code == errors.CREDENTIAL or o.code == errors.HEADER_VALUE then config_errors = config_errors + 1 end
    end })
    store(outcomes)
    -- Calls refused for want of credentials: every later call of this client would be too.
    if config_errors > 0 then config_failure = true end
  end

  -- The rows to send, a wave at a time: the journal's eligible lines (a chunk at a time) matched with the input
  -- read as a stream (both in line order). A row the input no longer yields as a request fails unsent.
  local reader, after, chunk, ci = nil, 0, {}, 1
  local held -- the input's row read past the line wanted: { line, params, bad }
  local function input_row(want_line)
    reader = reader or assert(rows_mod.open(input_path, input_opts))
    while true do
      if not held then
        local line, params, bad = reader.next()
        if not line then return nil, "not found" end
        held = { line = line, params = params, bad = bad }
      end
      if held.line > want_line then return nil, "not found" end
      local r = held
      held = nil
      if r.line == want_line then return r.params, r.bad end
    end
  end
  local function next_wave()
    local wave = {}
    while #wave < concurrency do
      if ci > #chunk then
        chunk, ci = j:eligible(flags, after, 1000), 1
        if #chunk == 0 then break end
        after = chunk[#chunk].line
      end
      local want = chunk[ci]
      ci = ci + 1
      local params, bad = input_row(want.line)
      if params then
        wave[#wave + 1] = { line = want.line, params = params, state = want.state }
      else
        local o = outcome(want.line, nil, errors.new{ code = M.ROW_UNUSABLE, kind = "validation", sent = false,
          message = "the input's line " .. want.line .. " is no request now: " .. tostring(bad) })
        progress:row(o.line, o.state, want.state, o.code)
        store({ o })
      end
    end
    return wave
  end

  local stopped_by
  local ran, run_err = pcall(function()
    while not config_failure and not storage_error do
      stopped_by = core.signal_caught()
      if stopped_by then break end
      local wave = next_wave()
      if #wave == 0 then break end
      send_wave(wave)
      progress:tick()
    end
  end)
  if reader then reader.close() end
  stopped_by = stopped_by or core.signal_caught()
  local exit_override
  if not ran or storage_error then
    local e = run_err or storage_error
    local message = tostring(type(e) == "table" and (e.sqlite or e.message) or e)
    -- A journal that cannot store (disk full) is left as it is: its `sending` rows become unknown on the next run.
    local n = 0
    if not storage_error then
      local ok_abandon, abandoned = pcall(j.abandon, j, "the run failed while this row was being sent: " .. message)
      n = ok_abandon and abandoned or 0
    end
    progress:notice("stopped: " .. personal.scrub(message)
      .. (n > 0 and format(" (%d rows being sent are now unknown)", n) or "")
      .. (storage_error and "; free space for the journal and run the same command again (the rows it could not "
        .. "store become unknown: check them before --retry-unknown)" or ""), { abandoned = n }, true)
    exit_override = EXIT.failure
  end
  if stopped_by then
    progress:notice(format("stopped by %s: the rows in flight were answered and journaled; run the same command "
      .. "again to go on", stopped_by), { signal = stopped_by }, true)
    exit_override = exit_override or M.SIGNAL_EXIT[stopped_by]
  end
  client:close()

  local c = j:counts()
  -- Answers the journal could not store count as what they are; rows still `sending` count as unknown (the next
  -- run makes them so); "not sent" is only what certainly was not.
  for _, state in pairs(unstored) do
    c.sending = c.sending - 1
    c[state] = c[state] + 1
  end
  c.unknown = c.unknown + math.max(c.sending, 0)
  local unknown_lines, failed_lines, failed_rows = json.array(), json.array(), {}
  pcall(j.each_row, j, "state IN ('unknown', 'failed', 'sending')", function(r)
    local state = unstored[r.line] or (r.state == "sending" and "unknown") or r.state
    if state == "unknown" then unknown_lines[#unknown_lines + 1] = r.line end
    if state == "failed" then
      failed_lines[#failed_lines + 1] = r.line
      if #failed_rows <= M.FAILURES_SHOWN then failed_rows[#failed_rows + 1] = r end
    end
  end)
  progress:finish(c, { unknown_lines = unknown_lines, failed_lines = failed_lines })
  local summary = format("%d done, %d failed, %d unknown", c.done, c.failed, c.unknown)
  if c.pending > 0 then summary = summary .. format(", %d not sent", c.pending) end
  pcall(j.finish, j, summary)
  local output_failed
  if opts.output then
    local ok, werr = write_output(opts.output, j)
    if not ok then
      output_failed = true
      progress:notice("cannot write --output " .. opts.output .. ": " .. tostring(werr), { output = false }, true)
    end
  end
  if mode ~= "json" then
    if c.unknown > 0 then
      progress:notice("outcome unknown for lines " .. line_list(unknown_lines) .. ": their callbacks settle them ("
        .. "--callbacks, or `essbasic batch reconcile`); never send them again before checking")
    end
    if c.failed > 0 then
      local shown = {}
      for i, r in ipairs(failed_rows) do
        if i > M.FAILURES_SHOWN then break end
        shown[i] = failure_line(r)
      end
      if c.failed > M.FAILURES_SHOWN then shown[#shown + 1] = format("  … and %d more", c.failed - M.FAILURES_SHOWN) end
      progress:notice(format("%d failed rows:\n  %-8s %-40s %s\n", c.failed, "line", "code", "message")
        .. concat(shown, "\n")
        .. (opts.output and "" or "\n(--output writes every row's answer or error)")
        .. (c.failed_unsent > 0 and format("\n%d never reached the API and go again on the next run",
          c.failed_unsent) or "") .. (c.failed > c.failed_unsent and "; the others only with --retry-failed" or ""))
    end
  end
  j:close()
  if config_failure then
    progress:notice("stopped: the calls have no usable credentials or configuration", { credentials = false }, true)
  end
  common.stdout(summary, "\n")
  if exit_override then return exit_override end
  if config_failure then return EXIT.credentials end
  if output_failed then return EXIT.failure end
  if c.done == c.total then return EXIT.ok end
  if c.unknown > 0 then return EXIT.unknown end
  return EXIT.incomplete
end

return M
