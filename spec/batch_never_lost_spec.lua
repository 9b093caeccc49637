-- `essbasic batch` never lost, from outside: group creations through the fault proxy with a quarter of the answers
-- lost, the SANDBOX itself delivering its flow callbacks (signed with the token, encrypted with the key) to a
-- running `essbasic callback serve --store`, then `essbasic batch reconcile`: every row done with the FlowGroupId
-- the sandbox holds for that row's name, no creation carried out twice (the sandbox's count), nothing resent (the
-- proxy's count). A forged callback (no token, or the wrong one) never resolves a row; a row whose callbacks
-- never came stays unknown, and is sent again only with --resend-unknown-after (new keys; a late callback of the
-- first send is reported as a contract made twice). A batch killed with SIGKILL mid-wave is settled from the keys
-- it journaled before sending; a format-1 journal is upgraded.
local json = require("essbasic.json")
local core = require("essbasic.core")
local luasql = require("luasql.sqlite3")
local sandbox = require("helpers.sandbox")
local fault_proxy = require("helpers.fault_proxy")
local cli_helper = require("helpers.cli")
local callback_serve = require("helpers.callback_serve")
local files = require("helpers.files")
local nginx = require("tools.nginx")
local sender = require("tools.callback_sender")

local CREATE = "ChannelCreateFlowGroupByFiles"
local KEY, TOKEN = sender.KEY, sender.TOKEN
-- Rows per batch (a multiple of 4: the proxy loses every 4th answer); ESSBASIC_NEVER_LOST_ROWS for a larger run
-- by hand.
local N = tonumber(os.getenv("ESSBASIC_NEVER_LOST_ROWS")) or 8
assert(N % 4 == 0, "ESSBASIC_NEVER_LOST_ROWS is a multiple of 4")

-- The journal's rows: line → { state, response, resolved } and line → { correlation of each send }.
local function journal(path)
  local env = luasql.sqlite3()
  local con = assert(env:connect(path))
  local rows, attempts = {}, {}
  local cur = assert(con:execute("SELECT line, state, response, resolved FROM rows"))
  local r = cur:fetch({}, "a")
  while r do
    rows[tonumber(r.line)] = { state = r.state, response = r.response and json.decode(r.response),
      resolved = r.resolved and json.decode(r.resolved) }
    r = cur:fetch({}, "a")
  end
  cur:close()
  cur = assert(con:execute("SELECT line, try, correlation FROM attempts ORDER BY line, try"))
  r = cur:fetch({}, "a")
  while r do
    local line = tonumber(r.line)
    attempts[line] = attempts[line] or {}
    attempts[line][#attempts[line] + 1] = json.decode(r.correlation)
    r = cur:fetch({}, "a")
  end
  cur:close()
  con:close()
  env:close()
  return rows, attempts
end

describe("essbasic batch, never lost", function()
  local sb, fp, cbp, cli, http, receiver, port, env, file_id

  setup(function()
    cli = cli_helper.new()
    files.write(cli.dir .. "/key", KEY)
    files.write(cli.dir .. "/token", TOKEN .. "\n")
    receiver = callback_serve.start(cli, { key = cli.dir .. "/key", token = cli.dir .. "/token",
      store = cli.dir .. "/cb.db" })
    port = receiver.port
    -- The sandbox delivers its callbacks through a second fault proxy to the receiver, three attempts within about
    -- 0.15 s: while that proxy resets every request, a callback is lost for good (the rows whose callbacks never
    -- came).
    cbp = fault_proxy.start{ upstream = "http://127.0.0.1:" .. port }
    sb = sandbox.start{ rate_limit = 100000, callback = { url = cbp.endpoint .. "/", key = KEY,
      token = TOKEN, base_delay = 0.05, max_delay = 0.1, max_attempts = 3 } }
    fp = fault_proxy.start{ upstream = sb.endpoint }
    http = core.http_session({ timeout = 10 })
    file_id = sb:upload()
    env = { TENCENTCLOUD_SECRET_ID = sb.secret_id, TENCENTCLOUD_SECRET_KEY = sb.secret_key,
      ESSBASIC_ENDPOINT = fp.endpoint, ESSBASIC_FILE_ENDPOINT = fp.endpoint }
  end)
  teardown(function()
    if receiver then receiver:stop() end
    if http then http:close() end
    if fp then fp:stop() end
    if sb then sb:stop() end
    if cbp then cbp:stop() end
    if cli then cli:remove() end
  end)

  local function input(tag)
    local lines = {}
    for i = 1, N do lines[i] = json.encode(sb:group_request({ file_id, file_id }, { name = tag .. i })) end
    local path = cli.dir .. "/" .. tag .. ".jsonl"
    files.write(path, table.concat(lines, "\n") .. "\n")
    return path
  end

  local function batch(tag, extra)
    local argv = { "batch", "--action", CREATE, "--input", cli.dir .. "/" .. tag .. ".jsonl", "--journal",
      cli.dir .. "/" .. tag .. ".db", "--concurrency", "2", "--quiet" }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    return cli:run(argv, { env = env })
  end

  local function reconcile(tag)
    return cli:run({ "batch", "reconcile", "--journal", cli.dir .. "/" .. tag .. ".db", "--callbacks",
      cli.dir .. "/cb.db", "--output", cli.dir .. "/" .. tag .. ".out" }, { env = env })
  end

  -- The sandbox's own truth: group name → group id (the names starting with prefix, each made once), and how many
  -- groups it created.
  local function truth(prefix)
    local state = json.decode(assert(files.read(sb.data_dir .. "/state.json")))
    local by_name = {}
    for id, g in pairs(state.groups) do
      if not g.hidden and prefix and g.name:sub(1, #prefix) == prefix then
        assert.is_nil(by_name[g.name], "the group " .. g.name .. " was created twice")
        by_name[g.name] = id
      end
    end
    return by_name, state.counters.groups_created
  end

  local function unknown_lines(rows)
    local out = {}
    for line, r in pairs(rows) do if r.state == "unknown" then out[#out + 1] = line end end
    table.sort(out)
    return out
  end

  -- A FlowStatusChange (MsgData: its flow's members over the defaults), encrypted with the key and signed with
  -- `token` (false: unsigned), POSTed to the receiver → its HTTP status.
  local function deliver(data, token)
    local msg_data = { ApplicationId = sb.app_id, FlowStatus = "INIT", FlowCallbackStatus = 1,
      OccurTime = os.time() }
    for k, v in pairs(data) do msg_data[k] = v end
    local body = sender.encrypted_body(json.encode{ MsgId = core.hex(core.random_bytes(16)),
      MsgType = "FlowStatusChange", MsgVersion = "ThirdPartyApp", MsgData = msg_data }, KEY)
    local headers = { ["Content-Type"] = "application/json" }
    if token then headers["Content-Signature"] = sender.signature(body, token) end
    return (http:request("POST", "http://127.0.0.1:" .. port .. "/", headers, body))
  end

  local function forge(key, token)
    return deliver({ FlowId = "forged" .. core.hex(core.random_bytes(8)), FlowGroupId = "forged-group",
      CustomerData = key }, token)
  end

  it("resolves every lost answer from the sandbox's own callbacks; silence and forgeries resolve nothing",
    function()
      local _, groups0 = truth()
      -- 1. The way to the receiver is cut: the callbacks of this batch are lost for good.
      cbp:plan{ { fault = "reset_before" } }
      input("silent-")
      fp:reset()
      fp:plan{ { fault = "lose_answer", action = CREATE, every = 4 } }
      local r = batch("silent-")
      assert.equal(6, r.status, r.err)
      assert.equal(string.format("%d done, 0 failed, %d unknown\n", N - N / 4, N / 4), r.out)
      local silent_rows, silent_keys = journal(cli.dir .. "/silent-.db")
      local silent_unknown = unknown_lines(silent_rows)
      assert.equal(N / 4, #silent_unknown)
      for line = 1, N do
        assert.equal(1, #silent_keys[line], "one send, its keys journaled")
        assert.equal(2, #silent_keys[line][1].keys)
        assert.matches("^ess1:[%w_-]+$", silent_keys[line][1].keys[1])
      end
      assert.is_truthy(sandbox.wait_for(function()
        local cb = sb:stats().callbacks
        return cb.pending == 0 and cb.given_up >= 2 * N
      end, 10), "the sandbox gave up the callbacks sent to no one")

      -- 2. The way is open: this batch's callbacks arrive from the sandbox.
      cbp:plan{}
      input("heard-")
      fp:reset()
      fp:plan{ { fault = "lose_answer", action = CREATE, every = 4 } }
      r = batch("heard-")
      assert.equal(6, r.status, r.err)
      assert.equal(string.format("%d done, 0 failed, %d unknown\n", N - N / 4, N / 4), r.out)
      assert.equal(N, fp:stats().by_action[CREATE])
      local _, heard_keys = journal(cli.dir .. "/heard-.db")
      -- Wait for the sandbox to have delivered every flow's INIT callback (2 flows per row).
      assert.is_truthy(sandbox.wait_for(function()
        local cb = sb:stats().callbacks
        return cb.pending == 0 and cb.delivered >= 2 * N
      end, 15 + N / 10), "the sandbox delivered the callbacks")

      -- Forged callbacks for the silent batch's unknown rows: refused by the receiver, and they resolve nothing.
      for _, line in ipairs(silent_unknown) do
        assert.equal(401, forge(silent_keys[line][1].keys[1], false))
        assert.equal(401, forge(silent_keys[line][1].keys[1], "not-the-token"))
      end
      r = reconcile("silent-")
      assert.equal(6, r.status, r.err)
      assert.equal(string.format("%d done, 0 failed, %d unknown\n", N - N / 4, N / 4), r.out,
        "no callback came for them: they stay unknown")

      -- One silent row's callback comes late after all (as the API would send it: signed, its flow's id, here
      -- without the group's id). Without credentials the group cannot be looked up: the row is done all the same
      -- (created, never sent again) with resolved.complete = false; a later reconcile with them fills the ids in.
      local late = silent_unknown[#silent_unknown]
      local state = json.decode(assert(files.read(sb.data_dir .. "/state.json")))
      local late_flows = {}
      for id, f in pairs(state.flows) do late_flows[f.customer_data or ""] = id end
      local late_keys = silent_keys[late][1].keys
      assert.equal(200, deliver({ FlowId = late_flows[late_keys[1]], CustomerData = late_keys[1] }, TOKEN))
      r = cli:run({ "batch", "reconcile", "--journal", cli.dir .. "/silent-.db", "--callbacks", cli.dir .. "/cb.db" })
      assert.equal(6, r.status, r.err)
      local rows = journal(cli.dir .. "/silent-.db")
      assert.equal("done", rows[late].state)
      assert.is_false(rows[late].resolved.complete)
      assert.is_nil(rows[late].response.FlowGroupId)
      r = reconcile("silent-")
      rows = journal(cli.dir .. "/silent-.db")
      assert.is_nil(rows[late].resolved.complete, r.err)
      assert.equal(truth("silent-")["silent-" .. late], rows[late].response.FlowGroupId)
      assert.are.same({ late_flows[late_keys[1]], late_flows[late_keys[2]] }, rows[late].response.FlowIds)
      silent_unknown[#silent_unknown] = nil

      r = reconcile("heard-")
      assert.equal(0, r.status, r.err)
      assert.equal(string.format("%d done, 0 failed, 0 unknown\n", N), r.out)
      assert.matches(string.format("%d unknown rows are done", N / 4), r.err)
      local by_name, groups = truth("heard-")
      assert.equal(2 * N, groups - groups0, "each creation carried out once")
      assert.equal(N, fp:stats().by_action[CREATE], "reconcile sent nothing")
      local out = {}
      for l in assert(files.read(cli.dir .. "/heard-.out")):gmatch("[^\n]+") do out[#out + 1] = json.decode(l) end
      assert.equal(N, #out)
      local resolved = 0
      for i, o in ipairs(out) do
        assert.equal("done", o.state)
        assert.equal(by_name["heard-" .. i], o.response.FlowGroupId, "line " .. i .. ": the sandbox's group")
        assert.equal(2, #o.response.FlowIds)
        if o.resolved then
          resolved = resolved + 1
          assert.equal("callbacks", o.resolved.from)
          assert.is_nil(o.resolved.duplicates)
        end
        assert.equal(1, #heard_keys[i])
      end
      assert.equal(N / 4, resolved)

      -- 3. A rerun with --callbacks sends nothing; the silent batch's rows are sent again only with
      -- --resend-unknown-after, each with new keys (both sends recorded).
      r = batch("heard-", { "--callbacks", cli.dir .. "/cb.db" })
      assert.equal(0, r.status, r.err)
      r = batch("silent-", { "--callbacks", cli.dir .. "/cb.db" })
      assert.equal(6, r.status, r.err)
      assert.equal(N, fp:stats().by_action[CREATE], "unknown rows are never sent again by default")
      fp:reset()
      r = batch("silent-", { "--callbacks", cli.dir .. "/cb.db", "--resend-unknown-after", "0s" })
      assert.equal(0, r.status, r.err)
      assert.equal(#silent_unknown, fp:stats().by_action[CREATE], "the unknown rows only")
      local _, resent_keys = journal(cli.dir .. "/silent-.db")
      for _, line in ipairs(silent_unknown) do
        assert.equal(2, #resent_keys[line])
        assert.are_not.equal(resent_keys[line][1].keys[1], resent_keys[line][2].keys[1], "a new key")
      end
      -- The first send's callback arriving after all (signed): both creations exist, said plainly.
      local line = silent_unknown[1]
      assert.equal(200, deliver({ FlowId = "late-flow", FlowGroupId = "late-group",
        CustomerData = resent_keys[line][1].keys[1] }, TOKEN))
      r = reconcile("silent-")
      assert.equal(0, r.status, r.err)
      assert.matches("CREATED TWICE", r.err)
      rows = journal(cli.dir .. "/silent-.db")
      assert.equal("late-group", rows[line].resolved.duplicates[1].FlowGroupId)
    end)

  it("a journal of format 1 (no keys) is upgraded in place and goes on; a newer format is refused", function()
    input("old-")
    env.ESSBASIC_ENDPOINT, env.ESSBASIC_FILE_ENDPOINT = sb.endpoint, sb.endpoint
    finally(function() env.ESSBASIC_ENDPOINT, env.ESSBASIC_FILE_ENDPOINT = fp.endpoint, fp.endpoint end)
    local db = cli.dir .. "/old-.db"
    -- A format-1 journal: made by the first run, then stripped of what format 2 added, one row left pending.
    local function sql(list)
      local e = luasql.sqlite3()
      local con = assert(e:connect(db))
      for _, s in ipairs(list) do assert(con:execute(s)) end
      con:close()
      e:close()
    end
    local r = batch("old-")
    assert.equal(0, r.status, r.err)
    sql{ "DROP TABLE attempts", "ALTER TABLE rows DROP COLUMN resolved", "UPDATE meta SET value = '1' WHERE key = "
      .. "'format'", "UPDATE rows SET state = 'pending', tries = 0 WHERE line = " .. N }
    r = batch("old-", { "--callbacks", cli.dir .. "/cb.db" })
    assert.equal(0, r.status, r.err)
    assert.equal(string.format("%d done, 0 failed, 0 unknown\n", N), r.out)
    local _, keys = journal(db)
    assert.equal(1, #keys[N], "the row sent after the upgrade carries keys")
    sql{ "UPDATE meta SET value = '3' WHERE key = 'format'" }
    r = batch("old-")
    assert.equal(9, r.status)
    assert.matches("has format 3; this essbasic writes format 2", r.err)
  end)

  it("a run killed with SIGKILL mid-wave: its keys were on disk, so reconcile settles the rows it left sending",
    function()
      input("killed-")
      fp:reset()
      fp:plan{ { fault = "slow_answer", action = CREATE, delay = 3 } }
      local _, groups0 = truth()
      local delivered0 = sb:stats().callbacks.delivered
      local pid_file = cli.dir .. "/killed.pid"
      local cmd = cli:command({ "batch", "--action", CREATE, "--input", cli.dir .. "/killed-.jsonl", "--journal",
        cli.dir .. "/killed-.db", "--concurrency", "4", "--quiet" }, env)
      os.execute("sh -c " .. cli_helper.quote("echo $$ >" .. pid_file
        .. "; exec " .. cmd) .. " </dev/null >/dev/null 2>&1 &")
      local pid = assert(sandbox.wait_for(function() return tonumber(nginx.read_file(pid_file) or "") end, 10))
      -- The first wave reached the sandbox (and was carried out); its answers are held back: kill now.
      assert.is_truthy(sandbox.wait_for(function() return fp:stats().forwarded >= 4 end, 20))
      os.execute("kill -KILL " .. pid)
      assert.is_truthy(sandbox.wait_for(function() return not nginx.pid_alive(pid) end, 10))
      assert.is_truthy(sandbox.wait_for(function()
        local cb = sb:stats().callbacks
        return cb.pending == 0 and cb.delivered >= delivered0 + 2 * 4
      end, 15), "the sandbox delivered the first wave's callbacks")
      local r = reconcile("killed-")
      assert.equal(8, r.status, r.err) -- 4 done from the callbacks, the rest not sent yet
      assert.equal(string.format("4 done, 0 failed, 0 unknown, %d not sent\n", N - 4), r.out)
      fp:reset()
      r = batch("killed-", { "--callbacks", cli.dir .. "/cb.db", "--output", cli.dir .. "/killed-.out" })
      assert.equal(0, r.status, r.err)
      assert.equal(N - 4, fp:stats().by_action[CREATE], "only the rows never sent")
      local by_name, groups = truth("killed-")
      assert.equal(N, groups - groups0, "none created twice")
      local i = 0
      for l in assert(files.read(cli.dir .. "/killed-.out")):gmatch("[^\n]+") do
        i = i + 1
        local o = json.decode(l)
        assert.equal("done", o.state)
        assert.equal(by_name["killed-" .. i], o.response.FlowGroupId)
      end
      assert.equal(N, i)
    end)
end)
