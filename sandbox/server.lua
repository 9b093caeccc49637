-- The sandbox's nginx entry points: init (config, data folder), init_worker (the deadline timer) and handle (every
-- request). Runs in one nginx worker (worker_processes 1): the state is a Lua table owned by that worker's VM, so
-- there is one truth without shared-memory serialisation, and concurrency comes only from requests interleaving
-- at yields (see store.lua for why that cannot corrupt anything).
--
-- Routes:
--   POST /                      the essbasic API (and the file domain: UploadFiles is served here too)
--   GET  /sandbox/sign?token=T  the signer's page (the SignUrl); forms POST to /sandbox/sign and /sandbox/reject
--   POST /sandbox/sign          {"token": T} → sign; POST /sandbox/reject {"token": T, "message": "..."} → reject
--   GET  /sandbox/files/<id>    an uploaded file (the FileUrls of UploadFiles)
--   GET  /sandbox/sign/document?token=T&flow=F   a contract of the signer's group, with the signatures so far
--   GET  /sandbox/sign/preview?token=T&flow=F    its first page as a PNG (shown on the signer's page)
--   GET  /sandbox/download/<t>  a document link of DescribeResourceUrlsByFlows / GetDownloadFlowUrl
--   GET  /sandbox/console?token=T   the sub-company console behind CreateConsoleLoginUrl (POST: verify)
--   GET|POST|DELETE /sandbox/faults[/<Action>]   the faults in force (sandbox/faults.lua)
--   GET  /sandbox/stats         counts: groups, flows, files, requests per action, refusals per code, callbacks

local json = require("essbasic.json")
local api = require("essbasic.api")
local validate = require("essbasic.validate")
local envelope = require("sandbox.envelope")
local core = require("essbasic.core")
local auth = require("sandbox.auth")
local store = require("sandbox.store")
local workflow = require("sandbox.workflow")
local callbacks = require("sandbox.callbacks")
local signer_page = require("sandbox.signer_page")
local flows = require("sandbox.flows")
local orgs = require("sandbox.orgs")
local templates = require("sandbox.templates")
local documents = require("sandbox.documents")
local faults = require("sandbox.faults")
local schema = require("essbasic.schema")
local error_texts = require("sandbox.error_texts")

local ngx = ngx
local type, pairs, ipairs, tostring, floor, format = type, pairs, ipairs, tostring, math.floor, string.format
local hex, random_bytes = core.hex, core.random_bytes

local M = {}

local config, ring
-- Action name → its handler, from the modules that emulate them.
local EMULATED = {}
local NAMES = {}
for _, mod in ipairs({ workflow, flows, orgs, templates, documents }) do
  for name, fn in pairs(mod) do
    if type(fn) == "function" and schema.actions[name] then
      EMULATED[name] = fn
      NAMES[#NAMES + 1] = name
    end
  end
end
table.sort(NAMES)
M.EMULATED = EMULATED
local EMULATED_LIST = table.concat(NAMES, ", ")

-- requests and refusals per action and code; by_action: refusals per action and code (what the specs compare
-- with each action's documented error codes)
local stats = { requests = {}, refused = {}, by_action = {} }
local limiter = require("sandbox.ratelimit").new()
local daily = { day = -1, counts = {} }

local function read_config(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return assert(json.decode(text))
end

-- init_by_lua: the resolved config written by the launcher, then the data folder.
function M.init(config_path)
  config = read_config(config_path)
  ring = auth.keyring(config.credentials)
  local ok, why = store.open(config.data_dir)
  if not ok then error("essbasic sandbox: " .. why) end
  callbacks.init(config)
  templates.init(config)
  faults.set_all(config.faults)
end

local function now()
  ngx.update_time()
  return ngx.time()
end

-- Sends a request's callbacks in the order they happened: flow snapshots ({ flow = ... }: a state left within the
-- request, such as INIT), changed flow ids (the flow as it is now, once per flow), then the outbox's other
-- events (seals, sub-companies).
local function notify(changes, t)
  local events = workflow.take_events()
  if not callbacks.enabled() then return end
  local seen = {}
  for _, c in ipairs(changes) do
    if type(c) == "table" then
      callbacks.send(callbacks.message(c.flow, store.state.groups[c.flow.group], t))
    elseif not seen[c] then
      seen[c] = true
      local flow = store.state.flows[c]
      callbacks.send(callbacks.message(flow, store.state.groups[flow.group], t))
    end
  end
  for _, e in ipairs(events) do callbacks.send(callbacks.event(e.type, e.data)) end
end

-- Deadline checks: lazily before each request's work, and from this timer so callbacks go out on time.
local function sweep(premature)
  if premature then return end
  local changes = {}
  local t = now()
  if workflow.expire(t, changes) > 0 then
    local ok, why = store.save()
    if not ok then ngx.log(ngx.ERR, "essbasic sandbox: ", why) end
    notify(changes, t)
  end
end

function M.init_worker()
  local ok, err = ngx.timer.every(config.sweep_interval, sweep)
  if not ok then ngx.log(ngx.ERR, "essbasic sandbox: no deadline timer: ", err) end
end

-- A request id in the API's UUID form.
local function request_id()
  local h = hex(random_bytes(16))
  return format("%s-%s-4%s-a%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(14, 16), h:sub(18, 20), h:sub(21, 32))
end

local function send(status, content_type, body)
  ngx.status = status
  ngx.header["Content-Type"] = content_type
  ngx.print(body)
end

-- The code an action's own refusal carries: one its documented list has (the error lists of
-- essbasic-2021-05-26.action-errors.json, in the schema), else the nearest it documents — the code's family
-- ("MissingParameter.X" → "MissingParameter"), then the general codes below in this order.
local NEAREST = { "InvalidParameter.ParamError", "InvalidParameter", "InvalidParameterValue", "MissingParameter",
  "FailedOperation", "OperationDenied" }
local function documented_code(action, code)
  local set = api.action(action).error_set
  if set[code] then return code end
  local family = code:match("^([^.]+)%.")
  if family and set[family] then return family end
  for _, c in ipairs(NEAREST) do
    if set[c] then return c end
  end
  return code
end

-- The message in the request's language (X-TC-Language: zh-CN, the API's default, or en-US): in zh-CN the
-- code's documented description, then the sandbox's detail.
local function localized(code, message)
  if ngx.var.http_x_tc_language == "en-US" then return message end
  local text = error_texts[code] or error_texts[code:match("^[^.]+")]
  return text and (text .. "（" .. message .. "）") or message
end

-- common: a code any action may answer that comes before its own rules (the rate limit, an action not
-- emulated), kept as it is, or "fault" (a fault's code and message, as configured); every other refusal of an
-- action uses a code it documents.
local function refuse(code, message, rid, action, common)
  if action and not common then code = documented_code(action, code) end
  if common ~= "fault" then message = localized(code, message) end
  stats.refused[code] = (stats.refused[code] or 0) + 1
  if action then
    local per = stats.by_action[action] or {}
    stats.by_action[action] = per
    per[code] = (per[code] or 0) + 1
  end
  ngx.log(ngx.INFO, "essbasic sandbox refused: ", code, ": ", message)
  return send(200, "application/json", envelope.error_body(code, message, rid))
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local f = io.open(path, "rb")
  if not f then return "" end
  body = f:read("*a")
  f:close()
  return body
end

local function base_url()
  return config.public_url or ("http://" .. (ngx.var.http_host or (config.host .. ":" .. ngx.var.server_port)))
end

-- The per-app, per-action limit of requests per second (a sliding second: sandbox/ratelimit.lua).
local function over_limit(app, action, t)
  return not limiter:take(app .. "\0" .. action, config.rate_limits[action] or config.rate_limit, t)
end

-- The per-app, per-action limit of requests per UTC day (daily_limits; DescribeUsage: 50).
local function over_daily(app, action, t)
  local limit = config.daily_limits[action]
  if not limit then return false end
  local day = floor(t / 86400)
  if daily.day ~= day then daily.day, daily.counts = day, {} end
  local key = app .. "\0" .. action
  daily.counts[key] = (daily.counts[key] or 0) + 1
  return daily.counts[key] > limit, limit
end

-- The answer's body in ten pieces over `seconds` (the slow_body fault).
local function send_slowly(body, seconds)
  ngx.status = 200
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #body
  local pieces = 10
  local size = math.ceil(#body / pieces)
  for i = 1, pieces do
    ngx.print(body:sub((i - 1) * size + 1, i * size))
    ngx.flush(true)
    if i < pieces then ngx.sleep(seconds / (pieces - 1)) end
  end
end

local function handle_api()
  local rid = request_id()
  local body = read_body() -- the only yield before the state is touched
  local t = now()
  local ctx, code, message = auth.check({ method = ngx.req.get_method(), headers = ngx.req.get_headers(200),
    body = body, now = t }, ring, config)
  if not ctx then return refuse(code, message, rid) end
  local action = ctx.action
  stats.requests[action] = (stats.requests[action] or 0) + 1
  local params = json.decode(body)
  if type(params) ~= "table" or json.is_array(params) then
    return refuse("InvalidParameter", "the request body must be a JSON object", rid, action)
  end
  local agent = type(params.Agent) == "table" and params.Agent or {}
  local app = agent.AppId
  if app ~= nil and not ctx.apps[app] then
    return refuse("ResourceNotFound.Application", "the AppId " .. tostring(app) .. " does not belong to this "
      .. "SecretId", rid, action)
  end
  local fault = faults.take(action)
  if fault and fault.latency then -- before the state is touched; the request is handled as of after the wait
    ngx.sleep(fault.latency)
    t = now()
  end
  if fault and fault.error then
    return refuse(fault.error, fault.message or ("fault injected by the essbasic sandbox for " .. action), rid,
      action, "fault")
  end
  ngx.update_time()
  if over_limit(app or ctx.secret_id, action, ngx.now()) then
    return refuse("RequestLimitExceeded", "more than " .. (config.rate_limits[action] or config.rate_limit)
      .. " " .. action .. " requests in one second for this application", rid, action, true)
  end
  if not EMULATED[action] then
    return refuse("UnsupportedOperation", action .. " is not emulated by the essbasic sandbox (it emulates "
      .. EMULATED_LIST .. ")", rid, action, true)
  end
  local ok, verr = validate.request(action, params)
  if not ok then return refuse(verr.code, verr.message, rid, action) end
  if not app then return refuse("MissingParameter", "Agent.AppId is required", rid, action) end
  local over, limit = over_daily(app, action, t)
  if over then
    local limit_code = api.action(action).error_set["LimitExceeded.CallTimes"] and "LimitExceeded.CallTimes"
      or "RequestLimitExceeded"
    return refuse(limit_code, "more than " .. limit .. " " .. action .. " requests today for this application", rid,
      action)
  end
  -- the uploads a new contract names, read before the handler (the PDF tools yield; the handler must not)
  local docs = documents.inspect(action, params, app)
  if docs then t = now() end
  local wctx = { app = app, now = t, config = config, base_url = base_url(), changes = {}, params = params,
    documents = docs }
  workflow.expire(t, wctx.changes)
  local readonly = api.is_readonly(action)
  if not readonly and action ~= "CreateConsoleLoginUrl" then -- a sub-company becomes known when named
    orgs.touch(app, agent.ProxyOrganizationOpenId ~= "" and agent.ProxyOrganizationOpenId or nil, t, config)
  end
  local resp
  resp, code, message = EMULATED[action](params, wctx)
  if not readonly or #wctx.changes > 0 then
    local saved, why = store.save()
    if not saved then
      ngx.log(ngx.ERR, "essbasic sandbox: ", why)
      return refuse("InternalError", "the sandbox could not save its state", rid, action)
    end
  end
  notify(wctx.changes, t)
  if not resp then return refuse(code, message, rid, action) end
  if fault and fault.lose_answer then
    ngx.log(ngx.INFO, "essbasic sandbox: fault lose_answer: ", action, " done, connection closed unanswered")
    return ngx.exit(444)
  end
  local answer = envelope.success_body(action, resp, rid)
  if fault and fault.slow_body then return send_slowly(answer, fault.slow_body) end
  return send(200, "application/json", answer)
end

-- The signer's actions: JSON in, JSON out; or a form from the signer page, answered (303) with the page again,
-- saying what happened: done=sign|reject, or error=turn|agree|nothing|invalid when nothing was done. The form's
-- signing needs its confirmation box ticked (agree), checked here as well as in the browser.
local function handle_signer(decision)
  local body = read_body()
  local form = (ngx.var.http_content_type or ""):find("application/x-www-form-urlencoded", 1, true)
  local args = form and ngx.req.get_post_args() or json.decode(body ~= "" and body or "{}") or {}
  local token = args.token or ngx.var.arg_token
  local t = now()
  local wctx = { now = t, changes = {} }
  workflow.expire(t, wctx.changes)
  local summary, why, kind
  if form and decision == "sign" and args.agree ~= "1" then
    why, kind = "the confirmation was not ticked", "agree"
  else
    summary, why, kind = workflow.act(token, decision, args.message, wctx)
  end
  if #wctx.changes > 0 then
    local saved, serr = store.save()
    if not saved then ngx.log(ngx.ERR, "essbasic sandbox: ", serr) end
  end
  notify(wctx.changes, t)
  if form then
    local outcome = summary and ("&done=" .. decision) or ("&error=" .. (kind or "invalid"))
    local lang = args.lang == "en" and "&lang=en" or ""
    return ngx.redirect("/sandbox/sign?token=" .. ngx.escape_uri(tostring(token)) .. outcome .. lang, 303)
  end
  if not summary then
    local status = workflow.lookup_token(token, t) and 409 or 404
    return send(status, "application/json", json.encode({ ok = false, error = why }))
  end
  summary.ok = true
  return send(200, "application/json", json.encode(summary))
end

local function handle_page()
  local t = now()
  local changes = {}
  if workflow.expire(t, changes) > 0 then
    store.save()
    notify(changes, t)
  end
  local lang = ngx.var.arg_lang == "en" and "en" or "zh"
  local g, signer = workflow.lookup_token(ngx.var.arg_token, t)
  if not g then return send(404, "text/html; charset=utf-8", signer_page.not_found(signer, lang)) end
  return send(200, "text/html; charset=utf-8", signer_page.render(ngx.var.arg_token, workflow.summary(g, signer),
    { lang = lang, done = ngx.var.arg_done, error = ngx.var.arg_error }))
end

-- The first page of a contract of the signer's group as an image (signer_page shows it inline).
local function handle_signer_preview()
  local g = workflow.lookup_token(ngx.var.arg_token, now())
  local fid = ngx.var.arg_flow
  local mine = false
  for _, id in ipairs(g and g.flow_ids or {}) do mine = mine or id == fid end
  if not mine then return send(404, "text/plain", "no such contract behind this link\n") end
  local png, why = documents.preview_png(store.state.flows[fid])
  if not png then return send(404, "text/plain", tostring(why) .. "\n") end
  ngx.header["Cache-Control"] = "no-store"
  return send(200, "image/png", png)
end

-- A contract of the signer's group (or batch), as it stands: the upload with the signatures made so far.
local function handle_signer_document()
  local t = now()
  local g = workflow.lookup_token(ngx.var.arg_token, t)
  if not g then return send(404, "text/plain", "this signing link is not valid\n") end
  local fid = ngx.var.arg_flow
  local mine = false
  for _, id in ipairs(g.flow_ids) do mine = mine or id == fid end
  if not mine then return send(404, "text/plain", "no such contract behind this link\n") end
  local bytes, why = documents.signed_pdf(store.state.flows[fid])
  if not bytes then return send(500, "text/plain", "the sandbox could not make the document: " .. tostring(why)) end
  ngx.header["Content-Disposition"] = 'inline; filename="' .. fid .. '.pdf"'
  return send(200, "application/pdf", bytes)
end

local function handle_download(token)
  local t = now()
  local status, ctype, body, headers, changed = documents.serve(token, t, base_url(), config)
  if changed then
    local saved, why = store.save()
    if not saved then ngx.log(ngx.ERR, "essbasic sandbox: ", why) end
  end
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  return send(status, ctype, body)
end

-- GET: the faults in force; POST: replace them all ({Action: spec}) or, at /sandbox/faults/<Action>, one;
-- DELETE: clear them all or one.
local function handle_faults(name)
  local method = ngx.req.get_method()
  if method == "POST" or method == "PUT" then
    local doc = json.decode(read_body())
    local problem
    if name then
      problem = faults.check_spec(doc, name)
    else
      problem = faults.check(doc)
    end
    if problem then return send(400, "application/json", json.encode({ ok = false, error = problem })) end
    if name then faults.set(name, doc) else faults.set_all(doc) end
  elseif method == "DELETE" then
    if name then faults.set(name, nil) else faults.set_all({}) end
  elseif method ~= "GET" then
    return send(405, "application/json", json.encode({ ok = false, error = "GET, POST or DELETE" }))
  end
  return send(200, "application/json", json.encode({ ok = true, faults = faults.list() }))
end

-- The sub-company console of CreateConsoleLoginUrl: who it is, and (auto_verify = false) a verify button.
local function handle_console()
  local t = now()
  local post = ngx.req.get_method() == "POST"
  local args = {}
  if post then
    ngx.req.read_body()
    args = ngx.req.get_post_args()
  end
  local token = ngx.var.arg_token or args.token
  local entry = store.state.console_tokens[token or ""]
  if not entry or entry.expires <= t then
    return send(404, "text/html; charset=utf-8", signer_page.console_not_found())
  end
  local org = store.state.orgs[entry.org]
  if post then
    orgs.verify(org, t)
    local saved, why = store.save()
    if not saved then ngx.log(ngx.ERR, "essbasic sandbox: ", why) end
    notify({}, t)
  end
  return send(200, "text/html; charset=utf-8", signer_page.console(token, org))
end

local function handle_stats()
  local s = store.state
  local function count(t) local n = 0 for _ in pairs(t or {}) do n = n + 1 end return n end
  local groups = 0
  for _, g in pairs(s.groups) do
    if not g.hidden then groups = groups + 1 end
  end
  local flows_by_status = {}
  for _, f in pairs(s.flows) do flows_by_status[f.status] = (flows_by_status[f.status] or 0) + 1 end
  return send(200, "application/json", json.encode({
    groups = groups, flows = count(s.flows), files = count(s.files), tasks = count(s.tasks),
    flows_by_status = flows_by_status, counters = s.counters, requests = stats.requests, refused = stats.refused,
    callbacks = callbacks.stats, refused_by_action = stats.by_action, faults = faults.counts,
    organizations = count(s.orgs), emulated = #NAMES,
  }))
end

local function handle_file(id)
  local f = store.state.files[id]
  local bytes = store.get_file(id)
  if not bytes or (not f and not templates.is_document(id)) then return send(404, "text/plain", "no such file\n") end
  local name = f and f.name or (id .. ".pdf")
  ngx.header["Content-Disposition"] = 'inline; filename="' .. name:gsub('["\r\n]', "_") .. '"'
  return send(200, name:lower():match("%.pdf$") and "application/pdf" or "application/octet-stream", bytes)
end

function M.handle()
  local uri, method = ngx.var.uri, ngx.req.get_method()
  if uri == "/" then return handle_api() end
  if uri == "/sandbox/sign" then
    if method == "GET" then return handle_page() end
    return handle_signer("sign")
  end
  if uri == "/sandbox/reject" and method == "POST" then return handle_signer("reject") end
  if uri == "/sandbox/sign/document" then return handle_signer_document() end
  if uri == "/sandbox/sign/preview" then return handle_signer_preview() end
  if require("sandbox.admin_guard").refused(uri) then return end -- loopback Host, JSON only (issue 27)
  if uri == "/sandbox/stats" then return handle_stats() end
  if uri == "/sandbox/console" then return handle_console() end
  if uri == "/sandbox/faults" then return handle_faults(nil) end
  local fault_name = uri:match("^/sandbox/faults/([%w*]+)$")
  if fault_name then return handle_faults(fault_name) end
  local token = uri:match("^/sandbox/download/(%x+)$")
  if token then return handle_download(token) end
  local file_id = uri:match("^/sandbox/files/(%x+)$")
  if file_id then return handle_file(file_id) end
  return send(404, "application/json", json.encode({ ok = false, error = "no such sandbox page: " .. uri }))
end

return M
