-- The contracts' documents: DescribeResourceUrlsByFlows and GetDownloadFlowUrl hand out expiring links, and
-- the GET handlers behind them serve the signed PDF (sandbox/pdf.lua stamps each completed signature on the
-- uploaded document). The actions follow workflow.lua's contract (no yields); signed_pdf yields while the PDF
-- tools run and works on a snapshot of the marks taken before that.
--
-- Download links: GET /sandbox/download/<token>. A DescribeResourceUrlsByFlows token names one flow and expires
-- after `download_ttl` seconds (the API says 5 minutes). A GetDownloadFlowUrl token names folders of flows, serves
-- an HTML page with one fresh PDF link per contract, expires after `download_ttl` and serves once.

local json = require("essbasic.json")
local core = require("essbasic.core")
local store = require("sandbox.store")
local wf = require("sandbox.workflow")
local pdf = require("sandbox.pdf")
local personal = require("essbasic.personal")

local type, ipairs, pairs, tostring, format, concat = type, ipairs, pairs, tostring, string.format, table.concat
local array, fail, FINAL = json.array, wf.fail, wf.FINAL

local M = {}

local function state() return store.state end

local function downloads()
  return state().downloads
end

-- Drops expired links (at most a few hundred live at once in a sandbox), then adds one.
local function new_link(entry, now)
  local all = downloads()
  for k, d in pairs(all) do
    if d.expires <= now then all[k] = nil end
  end
  local token = wf.new_id() .. wf.new_id()
  all[token] = entry
  return token
end

-- Signed, being signed, or waiting: the document exists. Flows that ended without signatures have nothing to sign.
local function downloadable(flow)
  if flow.status == "ALL" or not FINAL[flow.status] then return true end
  return false, "the flow is " .. flow.status .. ": only contracts being signed or signed can be downloaded"
end

local function pdf_name(flow)
  return (flow.name or flow.id) .. ".pdf"
end

function M.DescribeResourceUrlsByFlows(params, ctx)
  local ids = params.FlowIds
  if type(ids) ~= "table" or #ids == 0 then return fail("MissingParameter.FlowId", "FlowIds must name a flow") end
  if #ids > 50 then return fail("InvalidParameter.ParamError", "at most 50 FlowIds") end
  local infos, errors = array(), array()
  local expires = ctx.now + ctx.config.download_ttl
  for i, id in ipairs(ids) do
    local flow = state().flows[id]
    local ok, why
    if not flow or flow.app ~= ctx.app then
      why = "the flow " .. tostring(id) .. " does not exist for this application"
    else
      ok, why = downloadable(flow)
    end
    if ok then
      local token = new_link({ flow = id, expires = expires }, ctx.now)
      infos[i] = { FlowId = id, ResourceUrlInfos = { { Url = ctx.base_url .. "/sandbox/download/" .. token,
        Name = pdf_name(flow), Type = "PDF" } } }
      errors[i] = ""
    else -- ErrorMessages: "对应序号" — both lists line up with FlowIds, a failed flow keeps its place
      infos[i] = { FlowId = tostring(id), ResourceUrlInfos = array() }
      errors[i] = why
    end
  end
  return { FlowResourceUrlInfos = infos, ErrorMessages = errors }
end

function M.GetDownloadFlowUrl(params, ctx)
  local a = type(params.Agent) == "table" and params.Agent or {}
  local org = a.ProxyOrganizationOpenId
  if not org or org == "" then
    return fail("MissingParameter.OrgOpenId", "Agent.ProxyOrganizationOpenId is required")
  end
  local folders = params.DownLoadFlows
  if type(folders) ~= "table" or #folders == 0 then
    return fail("MissingParameter.FlowInfo", "DownLoadFlows must list at least one folder")
  end
  local total, out = 0, {}
  for i, folder in ipairs(folders) do
    local list = folder.FlowIdList
    if #list == 0 then return fail("MissingParameter.FlowInfo", "DownLoadFlows[" .. i .. "].FlowIdList is empty") end
    if #list > 20 then
      return fail("FailedOperation.FlowNumExceed", "DownLoadFlows[" .. i .. "] holds more than 20 contracts")
    end
    total = total + #list
    if total > 50 then return fail("FailedOperation.FlowNumExceed", "more than 50 contracts in all folders") end
    for _, id in ipairs(list) do
      local flow = state().flows[id]
      if not flow or flow.app ~= ctx.app then
        return fail("ResourceNotFound.Flow", "the flow " .. tostring(id) .. " does not exist for this application")
      end
      if flow.org_open_id ~= org then
        return fail("UnauthorizedOperation.UnauthorizedOperationOrganization", "the flow " .. id
          .. " was not started by the sub-company " .. org)
      end
    end
    out[i] = { name = folder.FileName, flows = list }
  end
  local token = new_link({ folders = out, expires = ctx.now + ctx.config.download_ttl, once = true, app = ctx.app },
    ctx.now)
  return { DownLoadUrl = ctx.base_url .. "/sandbox/download/" .. token }
end

---------------------------------------------------------------------------------------------------------------
-- What a new contract's components are checked against
---------------------------------------------------------------------------------------------------------------

local inspected = {} -- FileId → { pages = n, words = {...} }: an upload never changes, so once per file

-- The uploads a ChannelCreateFlowByFiles / ChannelCreateFlowGroupByFiles request names that exist for this
-- application, read with pdfinfo and pdftotext: FileId → { pages, words }. Yields while the tools run, so the
-- server calls it before the handler (which then runs without yielding); nil for other actions.
function M.inspect(action, params, app)
  local ids = {}
  if action == "ChannelCreateFlowByFiles" and type(params.FileIds) == "table" then
    ids[1] = params.FileIds[1]
  elseif action == "ChannelCreateFlowGroupByFiles" and type(params.FlowFileInfos) == "table" then
    for _, info in ipairs(params.FlowFileInfos) do
      if type(info) == "table" and type(info.FileIds) == "table" then ids[#ids + 1] = info.FileIds[1] end
    end
  else
    return nil
  end
  local out = {}
  local dir = store.data_dir()
  for _, id in ipairs(ids) do
    local f = type(id) == "string" and state().files[id]
    if f and f.app == app and not out[id] then
      if not inspected[id] then
        local path = dir .. "/files/" .. id
        local sizes = pdf.page_sizes(path, dir)
        inspected[id] = { pages = #sizes, words = #sizes > 0 and pdf.words(path, dir) or {} }
      end
      out[id] = inspected[id]
    end
  end
  return out
end

---------------------------------------------------------------------------------------------------------------
-- Serving
---------------------------------------------------------------------------------------------------------------

-- The mobile as the API's own signed documents and receipts print it: 3 digits, ****, the last 4 (138****0000);
-- anything else masked by essbasic.personal. A signed PDF travels far; a full mobile number has no place in it.
local function masked_mobile(m)
  if type(m) ~= "string" or m == "" then return m end
  if m:match("^%d%d%d%d%d%d%d%d%d%d%d$") then return m:sub(1, 3) .. "****" .. m:sub(-4) end
  return personal.mask(m)
end
M.masked_mobile = masked_mobile

-- What is stamped: each accepted signer at each of its places (or on the signature page when it has none).
local function marks_of(flow)
  local marks = {}
  for _, ap in ipairs(flow.approvers) do
    if ap.status == "ACCEPT" then
      local base = { name = ap.name or ap.org_name or "", mobile = masked_mobile(ap.mobile), time = ap.time or 0 }
      local places = ap.places or {}
      if #places == 0 then places = { {} } end
      for _, p in ipairs(places) do
        local m = { page = p.page, x = p.x, y = p.y, w = p.w, h = p.h, keyword = p.keyword, offset_x = p.offset_x,
          offset_y = p.offset_y, relative = p.relative }
        for k, v in pairs(base) do m[k] = v end
        marks[#marks + 1] = m
      end
    end
  end
  return marks
end

local rendering = {} -- cache key → true while one request renders it (others wait for the file)

-- The flow's document with its signatures: bytes, or nil, message. Yields while the tools run.
function M.signed_pdf(flow)
  local dir = store.data_dir()
  local source = dir .. "/files/" .. tostring(flow.file_id)
  local marks = marks_of(flow) -- the snapshot: the flow may change while this yields
  if #marks == 0 then return store.get_file(flow.file_id) or nil, "the document is missing" end
  local key = flow.id .. "-" .. core.sha256_hex(json.encode(marks)):sub(1, 16)
  local path = dir .. "/signed/" .. key .. ".pdf"
  local function cached() return pdf.read_file(path) end
  local bytes = cached()
  if bytes then return bytes end
  if rendering[key] then
    local deadline = ngx.now() + pdf.TIMEOUT
    while rendering[key] and ngx.now() < deadline do ngx.sleep(0.01) end
    return cached() or nil, "the signed document could not be made"
  end
  rendering[key] = true
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "/signed'")
  local ok, why = pdf.stamp(source, marks, path, dir .. "/signed")
  rendering[key] = nil
  if not ok then return nil, why end
  return cached() or nil, "the signed document disappeared"
end

local previewing = {} -- cache key → true while one request renders it

-- The first page of the flow's document as it stands, as a PNG (pdftoppm, 60 dpi): the signer page shows it
-- inline. Bytes, or nil, message (a document poppler cannot read has no page to show). Yields while tools run.
function M.preview_png(flow)
  local bytes, why = M.signed_pdf(flow)
  if not bytes then return nil, why end
  local dir = store.data_dir() .. "/signed"
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  local key = core.sha256_hex(bytes):sub(1, 24)
  local png = dir .. "/" .. key .. "-p1.png"
  local cached = pdf.read_file(png)
  if cached then return cached end
  local deadline = ngx.now() + pdf.TIMEOUT
  while previewing[key] and ngx.now() < deadline do ngx.sleep(0.01) end
  cached = pdf.read_file(png)
  if cached then return cached end
  previewing[key] = true
  local src = dir .. "/" .. key .. "-src.pdf"
  local f = io.open(src, "wb")
  if f then f:write(bytes) f:close() end
  local rc = pdf.run({ "pdftoppm", "-q", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", src,
    dir .. "/" .. key .. "-p1" }, dir)
  os.remove(src)
  previewing[key] = nil
  if rc ~= 0 then return nil, "the document has no page to show" end
  return pdf.read_file(png) or nil, "the preview disappeared"
end

local function esc(s)
  return (tostring(s or ""):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
    ["'"] = "&#39;" }))
end

-- GET /sandbox/download/<token> → status, content type, body, extra headers. May change the state (a used
-- GetDownloadFlowUrl link, the fresh links of its page): the caller saves.
function M.serve(token, now, base_url, config)
  local d = downloads()[token]
  if not d then return 404, "text/plain; charset=utf-8", "no such download link\n" end
  if d.expires <= now then
    downloads()[token] = nil
    return 410, "text/plain; charset=utf-8", "this download link has expired\n", nil, true
  end
  if d.folders then
    if d.used then return 410, "text/plain; charset=utf-8", "this download link was already used\n" end
    d.used = now
    local parts = { "<!doctype html><html><head><meta charset=\"utf-8\"><title>essbasic sandbox download</title>"
      .. "</head><body><h1>Contracts to download</h1>" }
    for _, folder in ipairs(d.folders) do
      parts[#parts + 1] = "<h2>" .. esc(folder.name) .. "</h2><ul>"
      for _, id in ipairs(folder.flows) do
        local flow = state().flows[id]
        local link = new_link({ flow = id, expires = now + config.download_ttl }, now)
        parts[#parts + 1] = format('<li><a class="contract" href="%s/sandbox/download/%s">%s</a> (%s)</li>',
          esc(base_url), link, esc(pdf_name(flow)), esc(flow.status))
      end
      parts[#parts + 1] = "</ul>"
    end
    parts[#parts + 1] = "</body></html>"
    return 200, "text/html; charset=utf-8", concat(parts), nil, true
  end
  local flow = state().flows[d.flow]
  local bytes, why = M.signed_pdf(flow)
  if not bytes then return 500, "text/plain; charset=utf-8", "the sandbox could not make the document: "
    .. tostring(why) .. "\n" end
  local name = pdf_name(flow)
  return 200, "application/pdf", bytes, {
    ["Content-Disposition"] = "attachment; filename=\"" .. flow.id .. ".pdf\"; filename*=UTF-8''"
      .. ngx.escape_uri(name),
    ["Expires"] = ngx.http_time(d.expires),
  }
end

return M
