-- essbasic batch against a real sandbox: the journal's states, reruns, refused journals, progress output, and a
-- 200-row batch killed with SIGKILL at random moments and rerun to the end without any group created twice.
local sandbox = require("helpers.sandbox")
local faults_server = require("helpers.fault_server")
local files = require("helpers.files")
local json = require("essbasic.json")
local luasql = require("luasql.sqlite3")

local ACTION = "ChannelCreateFlowGroupByFiles"
local cli_mod = require("helpers.cli")
local cli = cli_mod.new()
local TMP, q, exit_status = cli.dir, cli_mod.quote, cli_mod.exit_status

local function command(argv, env)
  return cli:command(argv, env)
end

local function run(argv, env)
  return cli:run(argv, { env = env })
end

-- The journal's rows as the database holds them: line → { state, sent, tries, ids, error_code }.
local function journal_rows(path)
  local env = luasql.sqlite3()
  local con = assert(env:connect(path))
  local cur = assert(con:execute("SELECT line, state, sent, tries, ids, error_code FROM rows ORDER BY line"))
  local out, row = {}, cur:fetch({}, "a")
  while row do
    out[tonumber(row.line)] = { state = row.state, sent = tonumber(row.sent), tries = tonumber(row.tries),
      ids = row.ids and json.decode(row.ids), error_code = row.error_code }
    row = cur:fetch({}, "a")
  end
  cur:close()
  local check = assert(con:execute("PRAGMA integrity_check"))
  local verdict = check:fetch({})[1]
  check:close()
  con:close()
  env:close()
  assert.equal("ok", verdict)
  return out
end

local function count_states(rows)
  local c = { pending = 0, sending = 0, done = 0, failed = 0, unknown = 0 }
  for _, r in pairs(rows) do c[r.state] = c[r.state] + 1 end
  return c
end

local function summary(out)
  local d, f, u = out:match("(%d+) done, (%d+) failed, (%d+) unknown[^\n]*\n$")
  assert(d, "no summary line in: " .. out)
  return tonumber(d), tonumber(f), tonumber(u)
end

describe("essbasic batch", function()
  local sb, env, file_ids
  setup(function()
    sb = sandbox.start{ rate_limit = 1000 }
    env = { TENCENTCLOUD_SECRET_ID = sb.secret_id, TENCENTCLOUD_SECRET_KEY = sb.secret_key,
      ESSBASIC_ENDPOINT = sb.endpoint, ESSBASIC_FILE_ENDPOINT = sb.endpoint }
    file_ids = { sb:upload(), sb:upload() }
  end)
  teardown(function()
    if sb then sb:stop() end
    cli:remove()
  end)

  -- n group requests, one per line, named prefix-i; bad.validation / bad.service: sets of rows that fail here
  -- (a mobile number the validator refuses) or at the API (a FileId the sandbox does not know).
  local function jsonl(path, n, prefix, bad)
    bad = bad or {}
    local lines = {}
    for i = 1, n do
      local ids = { file_ids[1], file_ids[2] }
      if bad.service and bad.service[i] then ids[1] = string.rep("f", 32) end
      local req = sb:group_request(ids, { name = prefix .. "-" .. i })
      if bad.validation and bad.validation[i] then req.FlowFileInfos[1].FlowApprovers[1].Mobile = "123" end
      lines[i] = json.encode(req)
    end
    files.write(path, table.concat(lines, "\n") .. "\n")
  end

  -- The sandbox's own record of the groups whose name starts with prefix: name → count.
  local function sandbox_groups(prefix)
    local state = json.decode(files.read(sb.data_dir .. "/state.json"))
    local names, n = {}, 0
    for _, g in pairs(state.groups) do
      if type(g.name) == "string" and g.name:sub(1, #prefix + 1) == prefix .. "-" then
        names[g.name] = (names[g.name] or 0) + 1
        n = n + 1
      end
    end
    return names, n
  end

  it("records every row, skips done rows on a rerun, and sends a failed row again only when it never arrived",
    function()
      local input, journal, output = TMP .. "/basic.jsonl", TMP .. "/basic.db", TMP .. "/basic.out"
      jsonl(input, 12, "basic", { validation = { [5] = true }, service = { [9] = true } })
      local before = sb:stats().requests[ACTION] or 0
      local argv = { "batch", "--action", ACTION, "--input", input, "--journal", journal, "--concurrency", "4",
        "--output", output, "--quiet" }
      local r = run(argv, env)
      assert.equal(8, r.status, r.err)
      assert.equal("10 done, 2 failed, 0 unknown\n", r.out)
      assert.equal(before + 11, sb:stats().requests[ACTION]) -- row 5 never left the machine
      local results = {}
      for line in files.read(output):gmatch("[^\n]+") do
        local v = json.decode(line)
        results[v.line] = v
      end
      assert.equal(12, #results)
      assert.equal("failed", results[5].state)
      assert.is_false(results[5].sent)
      assert.equal("validation", results[5].error.kind)
      assert.equal("failed", results[9].state)
      assert.is_true(results[9].sent)
      assert.equal("InvalidParameter.FlowFileIds", results[9].error.code)
      assert.equal("done", results[1].state)
      assert.is_string(results[1].response.FlowGroupId)
      local rows = journal_rows(journal)
      assert.equal(results[1].response.FlowGroupId, rows[1].ids.FlowGroupId)
      local names = sandbox_groups("basic")
      assert.equal(1, names["basic-1"])
      assert.is_nil(names["basic-9"])

      local again = run(argv, env)
      assert.equal(8, again.status, again.err)
      assert.equal("10 done, 2 failed, 0 unknown\n", again.out)
      assert.equal(before + 11, sb:stats().requests[ACTION], "nothing that reached the API was sent again")
      rows = journal_rows(journal)
      assert.equal(2, rows[5].tries) -- never sent, so tried again
      assert.equal(1, rows[9].tries)
      assert.equal(1, rows[1].tries)

      local retry = {}
      for i, a in ipairs(argv) do retry[i] = a end
      retry[#retry + 1] = "--retry-failed"
      local third = run(retry, env)
      assert.equal(8, third.status)
      assert.equal(before + 12, sb:stats().requests[ACTION])
      assert.equal(2, journal_rows(journal)[9].tries)
      for name, n in pairs(sandbox_groups("basic")) do assert.equal(1, n, name) end
    end)

  it("refuses a journal made for another input or action (exit 9), and one another run holds", function()
    local input, journal = TMP .. "/refuse.jsonl", TMP .. "/refuse.db"
    jsonl(input, 3, "refuse")
    local argv = { "batch", "--action", ACTION, "--input", input, "--journal", journal, "--quiet" }
    local first = run(argv, env)
    assert.equal(0, first.status, first.err)
    assert.equal("3 done, 0 failed, 0 unknown\n", first.out)
    local text = files.read(input)
    files.write(input, (text:gsub("refuse%-2", "refuse-X")))
    local changed = run(argv, env)
    assert.equal(9, changed.status)
    assert.equal("", changed.out)
    assert.equal("Journal.InputChanged", json.decode(changed.err).code)
    files.write(input, text)
    local other = run({ "batch", "--action", "ChannelCancelFlow", "--input", input, "--journal", journal }, env)
    assert.equal(9, other.status)
    assert.truthy(other.err:find("is for " .. ACTION, 1, true), other.err)

    -- A database of something else is not taken over.
    local foreign = TMP .. "/foreign.db"
    local fe = luasql.sqlite3()
    local fc = assert(fe:connect(foreign))
    assert(fc:execute("CREATE TABLE customers (id INTEGER)"))
    fc:close()
    fe:close()
    local taken = run({ "batch", "--action", ACTION, "--input", input, "--journal", foreign }, env)
    assert.equal(9, taken.status)
    assert.truthy(taken.err:find("not an essbasic batch journal", 1, true), taken.err)

    -- Another run holds the journal: the same exclusive lock the command takes.
    local e = luasql.sqlite3()
    local con = assert(e:connect(journal))
    assert(con:execute("PRAGMA locking_mode = EXCLUSIVE")):close()
    assert(con:execute("BEGIN EXCLUSIVE"))
    local busy = run(argv, env)
    con:execute("ROLLBACK")
    con:close()
    e:close()
    assert.equal(9, busy.status)
    assert.equal("Journal.InUse", json.decode(busy.err).code)
    local after = run(argv, env)
    assert.equal(0, after.status, after.err)
  end)

  it("stops at the first wave without credentials (exit 7), leaving the other rows pending", function()
    local input, journal = TMP .. "/nokeys.jsonl", TMP .. "/nokeys.db"
    jsonl(input, 9, "nokeys")
    local r = run({ "batch", "--action", ACTION, "--input", input, "--journal", journal, "--concurrency", "3",
      "--quiet" }, { ESSBASIC_ENDPOINT = sb.endpoint })
    assert.equal(7, r.status, r.err)
    assert.equal("0 done, 3 failed, 0 unknown, 6 not sent\n", r.out)
    assert.truthy(r.err:find("no usable credentials", 1, true))
    local rows = journal_rows(journal)
    assert.equal(0, rows[1].sent) -- never left: the next run with keys sends it
    local fixed = run({ "batch", "--action", ACTION, "--input", input, "--journal", journal, "--quiet" }, env)
    assert.equal(0, fixed.status, fixed.err)
    assert.equal("9 done, 0 failed, 0 unknown\n", fixed.out)
  end)

  it("keeps rows whose outcome is unknown from being sent again unless --retry-unknown", function()
    local faults = faults_server.start()
    finally(function() faults:stop() end)
    local tag = "unk" .. os.time()
    local input, journal = TMP .. "/unknown.jsonl", TMP .. "/unknown.db"
    files.write(input, table.concat({
      json.encode{ Scenario = tag .. "a", Steps = { "create_reset", "ok" } },
      json.encode{ Scenario = tag .. "b", Steps = { "ok" } },
      json.encode{ Scenario = tag .. "c", Steps = { "reset", "ok" } },
    }, "\n") .. "\n")
    local fenv = { TENCENTCLOUD_SECRET_ID = "AKIDbatch", TENCENTCLOUD_SECRET_KEY = "batch-key",
      ESSBASIC_ENDPOINT = faults.endpoint }
    local argv = { "batch", "--action", ACTION, "--input", input, "--journal", journal, "--no-validate", "--quiet" }
    local r = run(argv, fenv)
    assert.equal(6, r.status, r.err)
    assert.equal("1 done, 0 failed, 2 unknown\n", r.out)
    local again = run(argv, fenv)
    assert.equal(6, again.status)
    assert.same({ attempts = 1, created = 1 }, faults:stats(tag .. "a"))
    assert.same({ attempts = 1, created = 0 }, faults:stats(tag .. "c"))
    assert.same({ attempts = 1, created = 1 }, faults:stats(tag .. "b"))
    argv[#argv + 1] = "--retry-unknown"
    local retried = run(argv, fenv)
    assert.equal(0, retried.status, retried.err)
    assert.equal("3 done, 0 failed, 0 unknown\n", retried.out)
    assert.same({ attempts = 2, created = 2 }, faults:stats(tag .. "a")) -- what --retry-unknown risks
    assert.same({ attempts = 1, created = 1 }, faults:stats(tag .. "b"))
  end)

  it("takes CSV with a template that maps columns to members", function()
    local csv, template, journal = TMP .. "/hr.csv", TMP .. "/template.json", TMP .. "/csv.db"
    files.write(csv, 'name,mobile,deadline\r\n张三,13800138000,\r\n"李,四",13900139000,4102444800\r\n')
    local req = sb:group_request(file_ids, { name = "{{name}}入职签约" })
    req.FlowFileInfos[1].FlowApprovers[1].Name = "{{name}}"
    req.FlowFileInfos[1].FlowApprovers[1].Mobile = "{{mobile}}"
    req.FlowFileInfos[1].Deadline = "{{deadline:int}}"
    files.write(template, json.encode(req))
    local r = run({ "batch", "--action", ACTION, "--input", csv, "--template", "@" .. template, "--journal", journal,
      "--quiet" }, env)
    assert.equal(0, r.status, r.err)
    assert.equal("2 done, 0 failed, 0 unknown\n", r.out)
    local state = json.decode(files.read(sb.data_dir .. "/state.json"))
    local found = {}
    for _, g in pairs(state.groups) do found[g.name] = g end
    assert.truthy(found["李,四入职签约"])
    assert.truthy(found["张三入职签约"])
    local deadlines = {}
    for _, f in pairs(state.flows) do
      if f.group == found["李,四入职签约"].id then deadlines[#deadlines + 1] = f.deadline end
    end
    assert.truthy(deadlines[1] == 4102444800 or deadlines[2] == 4102444800)
    local rows = journal_rows(journal)
    assert.equal("done", rows[2].state) -- keyed by the line the record starts on
    assert.equal("done", rows[3].state)

    local missing = run({ "batch", "--action", ACTION, "--input", csv, "--journal", TMP .. "/csv2.db" }, env)
    assert.equal(2, missing.status)
    assert.truthy(missing.err:find("--template", 1, true))
  end)

  it("shows progress: plain lines off a terminal, JSON events with --json, nothing with --quiet, a bar on a TTY",
    function()
      local input = TMP .. "/progress.jsonl"
      jsonl(input, 6, "progress")
      local plain = run({ "batch", "--action", ACTION, "--input", input, "--journal", TMP .. "/p1.db",
        "--progress-interval", "0", "--concurrency", "2" }, env)
      assert.equal(0, plain.status, plain.err)
      assert.equal("6 done, 0 failed, 0 unknown\n", plain.out)
      assert.truthy(plain.err:find("essbasic batch: 6 rows, 0 done before, 6 to send now", 1, true), plain.err)
      assert.truthy(plain.err:find("essbasic batch: 6/6 done, 0 failed, 0 unknown; [%d.]+ rows/s"), plain.err)
      local lines = select(2, plain.err:gsub("\n", ""))
      assert.is_true(lines >= 4, plain.err)

      local j = run({ "batch", "--action", ACTION, "--input", input, "--journal", TMP .. "/p2.db", "--json" }, env)
      assert.equal(0, j.status, j.err)
      local events = {}
      for line in j.err:gmatch("[^\n]+") do events[#events + 1] = assert(json.decode(line), line) end
      assert.equal("start", events[1].event)
      assert.equal(6, events[1].to_send)
      assert.equal("end", events[#events].event)
      assert.equal(6, events[#events].done)
      local row_events = 0
      for _, e in ipairs(events) do if e.event == "row" then row_events = row_events + 1 end end
      assert.equal(6, row_events)

      local quiet = run({ "batch", "--action", ACTION, "--input", input, "--journal", TMP .. "/p3.db", "-q" }, env)
      assert.equal(0, quiet.status)
      assert.equal("", quiet.err)

      -- A terminal: script(1) gives the command a pseudo-terminal.
      local out = TMP .. "/tty.out"
      local cmd = command({ "batch", "--action", ACTION, "--input", input, "--journal", TMP .. "/p4.db" }, env)
      local status = exit_status(os.execute("COLUMNS=100 timeout 60 script -qec " .. q(cmd) .. " /dev/null >" .. q(out)
        .. " 2>&1 </dev/null"))
      local tty = files.read(out)
      assert.equal(0, status, tty)
      assert.truthy(tty:find("\r%[[#%.!]+%] 6/6"), tty)
      assert.truthy(tty:find("ETA", 1, true))
      assert.truthy(tty:find("6 done, 0 failed, 0 unknown", 1, true))
    end)

  -- A batch started in the background: its pid (the interpreter itself: env execs it), and a function that waits
  -- for its end and returns its exit status, stdout and stderr.
  local function start(argv, name)
    local out, err, st = TMP .. "/" .. name .. ".out", TMP .. "/" .. name .. ".err", TMP .. "/" .. name .. ".status"
    os.remove(st)
    -- The shell waits for the command and writes its status; $! of the inner command is the interpreter's pid.
    local p = assert(io.popen("(" .. command(argv, env) .. " </dev/null >" .. q(out) .. " 2>" .. q(err)
      .. " & echo $!; wait $!; echo $? >" .. q(st) .. ") &"))
    local pid = tonumber(p:read("*l"))
    p:close()
    local function finish()
      local status = sandbox.wait_for(function()
        local f = io.open(st, "rb")
        local text = f and f:read("*a")
        if f then f:close() end
        return text and tonumber(text:match("%d+"))
      end, 60)
      assert(status, name .. " did not end")
      return status, files.read(out), files.read(err)
    end
    return pid, finish
  end

  local function arrived() return sb:stats().requests[ACTION] or 0 end

  it("stops on SIGTERM and SIGINT at random moments: answers in flight journaled, summary, exit 143 / 130, "
    .. "the journal agrees with the sandbox, a rerun finishes without sending any row twice", function()
      local seed = os.time()
      math.randomseed(seed)
      local RUNS = tonumber(os.getenv("ESSBASIC_SIGNAL_RUNS") or "") or 3
      for _, sig in ipairs({ "TERM", "INT" }) do
        local N, prefix = 120, "sig" .. sig
        local input, journal = TMP .. "/" .. prefix .. ".jsonl", TMP .. "/" .. prefix .. ".db"
        jsonl(input, N, prefix)
        local argv = { "batch", "--action", ACTION, "--input", input, "--journal", journal, "--concurrency", "4",
          "--rate", "0", "--progress", "plain" }
        local stopped = 0
        for run_no = 1, RUNS do
          -- The sandbox counts a request after answering it: let the last run's count settle first.
          sandbox.wait_for(function()
            local a = arrived()
            require("essbasic.core").sleep(0.05)
            return arrived() == a
          end, 5)
          local target = arrived() + math.random(1, 12)
          local pid, finish = start(argv, prefix .. run_no)
          sandbox.wait_for(function() return arrived() >= target end, 20)
          os.execute("kill -" .. sig .. " " .. pid .. " 2>/dev/null")
          local status, out, err = finish()
          local c = count_states(journal_rows(journal))
          local _, groups = sandbox_groups(prefix)
          local where = ("seed %d, SIG%s run %d: %s"):format(seed, sig, run_no, err)
          if status ~= 0 then
            stopped = stopped + 1
            assert.equal(sig == "TERM" and 143 or 130, status, where)
            assert.truthy(err:find("stopped by SIG" .. sig, 1, true), where)
            local d, f, u = summary(out)
            assert.same({ c.done, c.failed, c.unknown }, { d, f, u }, where)
            if c.pending > 0 then assert.truthy(out:find(c.pending .. " not sent", 1, true), where) end
          end
          -- Every answer in flight was journaled: nothing left sending or unknown, one group per done row.
          assert.equal(0, c.sending, where)
          assert.equal(0, c.unknown, where)
          assert.equal(c.done, groups, where)
          if status == 0 then break end
        end
        assert.is_true(stopped >= 1, "seed " .. seed .. ": no run was stopped by SIG" .. sig)
        local final = run(argv, env)
        assert.equal(0, final.status, final.err)
        assert.equal(N .. " done, 0 failed, 0 unknown\n", final.out)
        local names, groups = sandbox_groups(prefix)
        assert.equal(N, groups)
        for name, n in pairs(names) do assert.equal(1, n, name .. " created twice, seed " .. seed) end
      end
    end)

  it("a second signal ends the run at once; the rows in flight become unknown on the next run", function()
    local N, prefix = 60, "twice"
    local input, journal = TMP .. "/twice.jsonl", TMP .. "/twice.db"
    jsonl(input, N, prefix)
    -- The first wave's three answers take 2 s each, so the second signal lands while it waits.
    local http = require("essbasic.core").http_session({ timeout = 10 })
    local status_set = http:request("POST", sb.endpoint .. "/sandbox/faults/" .. ACTION,
      { ["Content-Type"] = "application/json" }, json.encode{ latency = 2, times = 3 })
    assert.equal(200, status_set)
    local before = arrived()
    local pid, finish = start({ "batch", "--action", ACTION, "--input", input, "--journal", journal,
      "--concurrency", "3", "--rate", "0", "--quiet" }, "twice")
    assert(sandbox.wait_for(function() return arrived() >= before + 3 end, 20))
    os.execute("kill -TERM " .. pid .. "; sleep 0.2; kill -TERM " .. pid)
    local status, out = finish()
    assert.equal(143, status)
    assert.equal("", out) -- no summary: ended at once
    local c = count_states(journal_rows(journal))
    assert.equal(3, c.sending)
    -- The sandbox still carries out the three requests it holds (the client is gone, not the requests).
    assert(sandbox.wait_for(function() return select(2, sandbox_groups(prefix)) >= 3 end, 10))
    local again = run({ "batch", "--action", ACTION, "--input", input, "--journal", journal, "--rate", "0",
      "--quiet" }, env)
    assert.equal(6, again.status, again.err)
    assert.equal((N - 3) .. " done, 0 failed, 3 unknown\n", again.out)
    local names, groups = sandbox_groups(prefix)
    assert.equal(N, groups)
    for name, n in pairs(names) do assert.equal(1, n, name .. " created twice") end
  end)

  it("a copy of the journal file alone, taken after kill -9, resumes without sending a row twice", function()
    local N, prefix = 150, "copy"
    local input, journal, copy = TMP .. "/copy.jsonl", TMP .. "/copy.db", TMP .. "/copy-only.db"
    jsonl(input, N, prefix)
    local argv = { "batch", "--action", ACTION, "--input", input, "--journal", journal, "--concurrency", "4",
      "--rate", "0", "--quiet" }
    local target = arrived() + math.random(20, 60)
    local pid, finish = start(argv, "copy")
    sandbox.wait_for(function() return arrived() >= target end, 20)
    os.execute("kill -9 " .. pid)
    finish()
    os.execute("cp " .. q(journal) .. " " .. q(copy)) -- the file alone, as an operator copies it
    local c0 = count_states(journal_rows(copy))
    local _, groups_before = sandbox_groups(prefix)
    -- The copy holds every commit (a rollback journal): the groups made are its done rows and at most the rows it
    -- has sending (those become unknown, never sent again).
    assert.is_true(groups_before >= c0.done and groups_before <= c0.done + c0.sending)
    argv[7] = copy
    local r = run(argv, env)
    local d, f, u = summary(r.out)
    assert.equal(N, d + f + u)
    assert.equal(c0.sending, u, r.out)
    local names, groups = sandbox_groups(prefix)
    for name, n in pairs(names) do assert.equal(1, n, name .. " created twice") end
    assert.is_true(groups >= d and groups <= d + u)
  end)

  it("tells the truth when the journal's disk fills: answered rows counted as what they are, exit 1", function()
    local N, prefix = 150, "full"
    local input, journal = TMP .. "/full.jsonl", TMP .. "/full.db"
    jsonl(input, N, prefix)
    local argv = { "batch", "--action", ACTION, "--input", input, "--journal", journal, "--concurrency", "5",
      "--rate", "0" }
    -- A file-size limit of 40 KiB: the journal is made, then a commit fails after a few waves (SIGXFSZ ignored,
    -- so the write fails with EFBIG as on a full disk).
    local err_path = TMP .. "/full.err"
    local status = exit_status(os.execute("bash -c " .. q("trap '' XFSZ; ulimit -f 40; exec " .. command(argv, env))
      .. " </dev/null >" .. q(TMP .. "/full.out") .. " 2>" .. q(err_path)))
    local out, err = files.read(TMP .. "/full.out"), files.read(err_path)
    assert.equal(1, status, err)
    local d, f, u = summary(out)
    local not_sent = tonumber(out:match("(%d+) not sent"))
    local _, groups = sandbox_groups(prefix)
    assert.equal(groups, d, out .. err) -- every row the sandbox carried out is counted done, none "not sent"
    assert.same({ 0, 0 }, { f, u })
    assert.equal(N - d, not_sent)
    local c = count_states(journal_rows(journal))
    assert.is_true(c.sending > 0 and c.sending <= 5, err)
    assert.equal(d, c.done + c.sending)
    assert.truthy(err:find("could not store the outcome of line", 1, true))
    assert.truthy(err:find("free space for the journal", 1, true))
    -- With room again: the rows the journal could not store are unknown (never sent twice), the rest done.
    local again = run(argv, env)
    assert.equal(6, again.status, again.err)
    assert.equal((N - c.sending) .. " done, 0 failed, " .. c.sending .. " unknown\n", again.out)
    local names = sandbox_groups(prefix)
    for name, n in pairs(names) do assert.equal(1, n, name .. " created twice") end
  end)

  it("exits 1 for an unreadable input and an unwritable --output; journal and --output are private (0600)",
    function()
      local input, journal, output = TMP .. "/modes.jsonl", TMP .. "/modes.db", TMP .. "/modes.out"
      jsonl(input, 3, "modes")
      local missing = run({ "batch", "--action", ACTION, "--input", TMP .. "/no-such.jsonl", "--journal",
        TMP .. "/never.db" }, env)
      assert.equal(1, missing.status, missing.err)
      assert.truthy(missing.err:find("cannot read the input", 1, true), missing.err)
      assert.is_nil(io.open(TMP .. "/never.db", "rb"))

      local r = run({ "batch", "--action", ACTION, "--input", input, "--journal", journal, "--output", output,
        "--quiet" }, env)
      assert.equal(0, r.status, r.err)
      local function mode(path)
        local p = assert(io.popen("stat -c %a " .. q(path)))
        local m = p:read("*l")
        p:close()
        return m
      end
      assert.equal("600", mode(journal))
      assert.equal("600", mode(output))
      assert.is_nil(io.open(journal .. "-journal", "rb")) -- one file at rest
      assert.is_nil(io.open(journal .. "-wal", "rb"))

      local unwritable = run({ "batch", "--action", ACTION, "--input", input, "--journal", journal, "--output",
        TMP .. "/no-such-dir/out.jsonl", "--quiet" }, env)
      assert.equal(1, unwritable.status, unwritable.err)
      assert.equal("3 done, 0 failed, 0 unknown\n", unwritable.out)
      assert.truthy(unwritable.err:find("cannot write --output", 1, true), unwritable.err)
    end)

  it("refuses a JSON Lines row missing a template member, and never quotes a row's personal data", function()
    local template = TMP .. "/jl-template.json"
    local req = sb:group_request(file_ids, { name = "{{name}}入职" })
    req.FlowFileInfos[1].FlowApprovers[1].Name = "{{name}}"
    req.FlowFileInfos[1].FlowApprovers[1].Mobile = "{{mobile}}"
    files.write(template, json.encode(req))
    local input = TMP .. "/typo.jsonl"
    files.write(input, json.encode{ name = "王小明", mobile = "13800138000" } .. "\n"
      .. json.encode{ name = "赵小红", mobil = "13900139000" } .. "\n")
    local r = run({ "batch", "--action", ACTION, "--input", input, "--template", "@" .. template, "--journal",
      TMP .. "/typo.db" }, env)
    assert.equal(2, r.status, r.err)
    assert.truthy(r.err:find("typo.jsonl:2: has no member mobile", 1, true), r.err)
    assert.is_nil(io.open(TMP .. "/typo.db", "rb")) -- no journal for an input that cannot be used

    -- A CSV :json cell that does not parse: the message names the column, the value masked.
    req.FlowFileInfos[1].FlowApprovers[1].SignComponents = "{{components:json}}"
    files.write(template, json.encode(req))
    local csv = TMP .. "/badjson.csv"
    files.write(csv, 'name,mobile,components\n王小明,13800138000,"{""Name"":""王小明"",""Mobile"":""13800138000"",'
      .. '""IdCardNumber"":""110101199003077777"" x}"\n')
    local bad = run({ "batch", "--action", ACTION, "--input", csv, "--template", "@" .. template, "--journal",
      TMP .. "/badjson.db" }, env)
    assert.equal(2, bad.status, bad.err)
    assert.truthy(bad.err:find("components is not JSON", 1, true), bad.err)
    assert.is_nil(bad.err:find("13800138000", 1, true), bad.err)
    assert.is_nil(bad.err:find("110101199003077777", 1, true), bad.err)
    assert.is_nil(bad.err:find("王小明", 1, true), bad.err)
  end)

  it("keeps every one-second window at the server, aligned or sliding, within the default rate (20/s)", function()
    -- A fixed-answer nginx that logs when each request arrived ($msec): the server's own count.
    local nginx = require("tools.nginx")
    local log = TMP .. "/arrivals.log"
    local envelope = '{"Response":{"FlowGroupId":"g","FlowIds":["a","b"],"RequestId":"r"}}'
    local srv = nginx.start{ http = "log_format arrivals '$msec';\n"
      .. "server { listen 127.0.0.1:%PORT%; access_log " .. log .. " arrivals; "
      .. "location / { default_type application/json; return 200 '" .. envelope .. "'; } }" }
    finally(function() srv:stop() end)
    local N = 50
    local input = TMP .. "/limit.jsonl"
    jsonl(input, N, "limit")
    local r = run({ "batch", "--action", ACTION, "--input", input, "--journal", TMP .. "/limit.db", "--concurrency",
      "10", "--quiet" }, { TENCENTCLOUD_SECRET_ID = "AKIDlimit", TENCENTCLOUD_SECRET_KEY = "limit-key",
      ESSBASIC_ENDPOINT = "http://127.0.0.1:" .. srv.port })
    assert.equal(0, r.status, r.err)
    local at = {}
    for line in files.read(log):gmatch("[^\n]+") do at[#at + 1] = tonumber(line) end
    assert.equal(N, #at)
    table.sort(at)
    local aligned, most = {}, 0
    for i, t in ipairs(at) do
      local w = math.floor(t)
      aligned[w] = (aligned[w] or 0) + 1
      assert.is_true(aligned[w] <= 20, aligned[w] .. " requests in second " .. w)
      local j = i
      while j > 1 and at[j - 1] > t - 1 do j = j - 1 end
      if i - j + 1 > most then most = i - j + 1 end
    end
    assert.is_true(most <= 20, most .. " requests in one sliding second")
    assert.is_true(most >= 17, "the limiter is far below the rate: " .. most)
  end)

  it("draws no RequestLimitExceeded from a sandbox that allows 20 per second, at the default rate", function()
    local limited = sandbox.start{ rate_limit = 20 }
    finally(function() limited:stop() end)
    local ids = { limited:upload(), limited:upload() }
    local N = tonumber(os.getenv("ESSBASIC_LIMIT_ROWS") or "") or 60 -- the issue's figure: 400
    local lines = {}
    for i = 1, N do lines[i] = json.encode(limited:group_request(ids, { name = "limited-" .. i })) end
    local input = TMP .. "/limited.jsonl"
    files.write(input, table.concat(lines, "\n") .. "\n")
    local before = limited:stats()
    local r = run({ "batch", "--action", ACTION, "--input", input, "--journal", TMP .. "/limited.db", "--quiet" },
      { TENCENTCLOUD_SECRET_ID = limited.secret_id, TENCENTCLOUD_SECRET_KEY = limited.secret_key,
        ESSBASIC_ENDPOINT = limited.endpoint, ESSBASIC_FILE_ENDPOINT = limited.endpoint })
    assert.equal(0, r.status, r.err)
    assert.equal(N .. " done, 0 failed, 0 unknown\n", r.out)
    local after = limited:stats()
    assert.equal((before.refused or {}).RequestLimitExceeded or 0, (after.refused or {}).RequestLimitExceeded or 0)
    assert.equal(N, after.requests[ACTION] - (before.requests[ACTION] or 0))
  end)

  it("survives SIGKILL at random moments: rerun to the end, every row accounted for, no group made twice",
    function()
      local seed = os.time()
      math.randomseed(seed)
      local N, CONCURRENCY = 200, 8
      local input, journal, output = TMP .. "/kill.jsonl", TMP .. "/kill.db", TMP .. "/kill.out"
      local bad = { service = { [17] = true, [120] = true }, validation = { [33] = true } }
      jsonl(input, N, "kill", bad)
      local created_before = sb:stats().counters.groups_created
      local argv = { "batch", "--action", ACTION, "--input", input, "--journal", journal, "--concurrency",
        tostring(CONCURRENCY), "--rate", "0", "--quiet" }
      local function alive(pid)
        local f = io.open("/proc/" .. pid .. "/stat", "rb")
        if not f then return false end
        local stat = f:read("*a")
        f:close()
        return stat:match("%)%s+(%a)") ~= "Z"
      end
      -- A random moment of each run: after a random number of its requests (1 to 40) reached the sandbox, so
      -- the kill lands while requests are in flight and answers are being recorded, the moment a journal that
      -- committed too late would lose track of a created group.
      local kills, sending_at_kill, t0 = 0, 0, os.time()
      for _ = 1, 10 do
        if kills >= 4 then break end
        local target = arrived() + math.random(1, 40)
        local p = assert(io.popen(command(argv, env) .. " </dev/null >>" .. q(TMP .. "/kill.log") .. " 2>&1 & echo $!"))
        local pid = tonumber(p:read("*l"))
        p:close()
        local deadline = os.time() + 20
        while alive(pid) and arrived() < target and os.time() < deadline do end
        local was_running = alive(pid)
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
        while alive(pid) do os.execute("sleep 0.01") end
        if was_running then
          kills = kills + 1
          local c = count_states(journal_rows(journal))
          assert.is_true(c.sending <= CONCURRENCY, ("seed %d: %d rows sending after a kill"):format(seed, c.sending))
          sending_at_kill = sending_at_kill + c.sending
        end
      end
      assert.is_true(kills >= 3, "seed " .. seed .. ": the runs ended before they could be killed: "
        .. (files.read(TMP .. "/kill.log") or ""))
      local final = run({ "batch", "--action", ACTION, "--input", input, "--journal", journal, "--concurrency",
        tostring(CONCURRENCY), "--rate", "0", "--quiet", "--output", output }, env)
      local done, failed, unknown = summary(final.out)
      assert.equal(N, done + failed + unknown)
      assert.equal(sending_at_kill, unknown, "seed " .. seed)
      assert.is_true(unknown <= CONCURRENCY * kills)
      assert.equal(unknown > 0 and 6 or 8, final.status)
      assert.is_true(os.time() - t0 < 60, "the kill test took too long")

      local rows = journal_rows(journal)
      local c = count_states(rows)
      assert.same({ pending = 0, sending = 0, done = done, failed = failed, unknown = unknown }, c)
      assert.equal(N, select(2, files.read(output):gsub("\n", "")), "--output has every row")
      -- The three bad rows failed, unless a kill caught them in flight (then they are unknown like any other).
      local bad_failed = 0
      for line, r in pairs(rows) do
        local is_bad = bad.service[line] or bad.validation[line]
        if r.state == "failed" then
          assert.is_true(is_bad, "line " .. line .. " failed: " .. tostring(r.error_code))
          bad_failed = bad_failed + 1
          assert.equal(bad.validation[line] and 0 or 1, r.sent)
          if bad.service[line] then assert.equal("InvalidParameter.FlowFileIds", r.error_code) end
        elseif is_bad then
          assert.equal("unknown", r.state)
        end
      end
      assert.equal(failed, bad_failed)
      -- The sandbox's records: no group twice, one for every done row, at most one for every unknown row.
      local names, groups = sandbox_groups("kill")
      for name, n in pairs(names) do assert.equal(1, n, "seed " .. seed .. ": " .. name .. " created twice") end
      assert.is_true(groups >= done and groups <= done + unknown, ("seed %d: %d groups for %d done, %d unknown")
        :format(seed, groups, done, unknown))
      assert.equal(created_before + groups, sb:stats().counters.groups_created)
      local ids = {}
      for line, r in pairs(rows) do
        if r.state == "done" then
          local id = r.ids.FlowGroupId
          assert.is_nil(ids[id], "FlowGroupId twice in the journal")
          ids[id] = true
          assert.equal(1, names["kill-" .. line], "the group of line " .. line)
        end
      end
    end)
end)
