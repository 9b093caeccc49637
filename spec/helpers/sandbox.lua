--[==[ The essbasic sandbox (sandbox/) as a test server: real nginx on loopback, the real checks, state on disk.

  local sandbox = require("helpers.sandbox")
  local sb = sandbox.start{ file_ttl = 2, rate_limit = 5, callback = { url = ..., key = ..., token = ... } }
                              -- any key of sandbox/config.lua; the environment is NOT read; data_dir defaults
                              -- to a fresh temporary folder that stop() removes (keep_data = true keeps it)
  sb.endpoint, sb.port        -- http://127.0.0.1:PORT serves both the API and the file endpoint
  sb.data_dir, sb.config      -- the data folder, the resolved configuration
  sb.secret_id, sb.secret_key, sb.app_id, sb.agent   -- the test key pair, its AppId, an Agent table for requests
  sb:client(extra_opts)       -- essbasic.new{...} for this sandbox (extra_opts override, e.g. retry = false)
  sb:upload(client)           -- uploads a tiny PDF, returns its FileId (asserts success)
  sb:group_request(file_ids, opts) -- a valid ChannelCreateFlowGroupByFiles request: one contract per FileId,
                              --    signers 张三 (person) then 李四 (employee); opts.deadline, opts.unordered
  sb:sign(url_or_token)       -- signs as the link's signer: returns HTTP status and the decoded answer
  sb:reject(url_or_token, message)
  sb:stats()                  -- GET /sandbox/stats: { groups, flows, files, counters = { groups_created, ... },
                              --    requests = { Action = n }, refused = { Code = n }, callbacks = { ... } }
  sandbox.wait_for(cond, s)   -- cond()'s first truthy value within s seconds (default 10), or nil
  sandbox.conforms_response(action, resp)   -- asserts the answer has exactly its response struct's members, typed
  sandbox.ok(client, action, params)        -- asserts the call succeeded and conforms; returns the response
  sandbox.refused(client, code, action, params) -- asserts the call was refused with code; returns the error
  sandbox.start_receiver(token, key)        -- a second nginx receiving callbacks (essbasic.callback checks them);
                              --    srv.received() → { { msg, body, signature, attempts }, ... }, srv:stop()
  sb:halt()                   -- stop nginx, keep the data folder (then restart())
  sb:restart()                -- stop and start again on the same data folder (a new port: read sb.endpoint again)
  sb:error_log(), sb:stop()   -- stop() is idempotent; call it in teardown
]==]

-- The sandbox's own modules live at the repository root (sandbox/*.lua); the test runner's path covers lua/ and spec/.
do
  local root = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/spec/helpers/[^/]+$")
  if root and not package.path:find(root .. "/?.lua;", 1, true) then
    package.path = root .. "/?.lua;" .. package.path
  end
end

local launch = require("sandbox.launch")
local sandbox_config = require("sandbox.config")
local core = require("essbasic.core")
local json = require("essbasic.json")

local nginx = require("tools.nginx")
local api = require("essbasic.api")
local luassert = require("luassert") -- the specs' assert lives in their environment, not in this module's

local M = {}

-- Waits for cond() to return a truthy value (bounded); returns that value or nil.
function M.wait_for(cond, seconds)
  local deadline = core.monotonic() + (seconds or 10)
  repeat
    local v = cond()
    if v then return v end
    core.sleep(0.05)
  until core.monotonic() > deadline
  return nil
end

local function is_integer(v)
  return type(v) == "number" and v == math.floor(v)
end

-- The answer has exactly the members of its structure in the schema (none missing, none extra), each with its
-- type; structures inside are checked the same way. The API sends every member of its output structures.
local function conforms(struct_name, t, path)
  local st = api.struct(struct_name)
  luassert.is_table(st, struct_name)
  luassert.is_table(t, path .. " is not an object")
  for k in pairs(t) do
    luassert.is_truthy(st.fields[k], path .. "." .. k .. " is not a member of " .. struct_name)
  end
  for k, f in pairs(st.fields) do
    local p = path .. "." .. k
    local v = t[k]
    if not (k == "RequestId" and path:find(".", 1, true)) then -- RequestId: only at the top, checked by the client
      luassert.is_true(v ~= nil, p .. " is missing (" .. struct_name .. " has it)")
    end
    local function one(x, q)
      if f.type == "string" or f.type == "date" then luassert.is_string(x, q)
      elseif f.type == "int64" or f.type == "uint64" then luassert.is_true(is_integer(x), q .. " not an integer")
      elseif f.type == "float" then luassert.is_number(x, q)
      elseif f.type == "bool" then luassert.is_boolean(x, q)
      else conforms(f.type, x, q) end
    end
    if v == nil then -- luacheck: ignore 542
    elseif f.list then
      luassert.is_table(v, p)
      for i, x in ipairs(v) do one(x, p .. "[" .. i .. "]") end
    else
      one(v, p)
    end
  end
end

M.checked = {} -- action → number of answers checked by conforms_response

function M.conforms_response(action, resp)
  conforms(api.action(action).output, resp, action)
  M.checked[action] = (M.checked[action] or 0) + 1
end

function M.ok(client, action, params)
  local resp, err = client:call(action, params)
  luassert.is_table(resp, action .. ": " .. tostring(err and (tostring(err.code) .. ": " .. tostring(err.message))))
  M.conforms_response(action, resp)
  return resp
end

function M.refused(client, code, action, params)
  local resp, err = client:call(action, params)
  luassert.is_nil(resp, action .. " should have been refused with " .. code)
  luassert.are.equal(code, err.code, action .. ": " .. tostring(err.message))
  return err
end

-- A second nginx that receives callbacks with essbasic.callback (signature check + decryption), records each
-- message with its raw body, and answers 500 to the next `fail` deliveries when told to.
local RECEIVER = [[
lua_shared_dict got 4m;
server {
  listen 127.0.0.1:%PORT%;
  location = /fail { content_by_lua_block {
    ngx.shared.got:set("fail", tonumber(ngx.var.arg_n)); ngx.say("ok") } }
  location = /got { content_by_lua_block {
    local d, out = ngx.shared.got, {}
    for i = 1, (d:get("n") or 0) do out[i] = d:get("msg" .. i) end
    ngx.say("[" .. table.concat(out, ",") .. "]") } }
  location = /cb { content_by_lua_block {
    local d = ngx.shared.got
    ngx.req.read_body()
    local body = ngx.req.get_body_data() or ""
    local json = require("essbasic.json")
    local callback = require("essbasic.callback")
    local msg = callback.parse{ body = body, signature = ngx.var.http_content_signature,
      token = "CALLBACK_TOKEN", key = "CALLBACK_KEY" }
    if msg then d:incr("attempts:" .. msg.MsgId, 1, 0) end
    if (d:get("fail") or 0) > 0 then
      d:incr("fail", -1)
      ngx.status = 500
      return ngx.say("try again")
    end
    callback.handle({ token = "CALLBACK_TOKEN", key = "CALLBACK_KEY" }, function(m)
      local n = d:incr("n", 1, 0)
      d:set("msg" .. n, json.encode({ msg = m, body = body, signature = ngx.var.http_content_signature,
        attempts = d:get("attempts:" .. m.MsgId) }))
      return true
    end)
  } }
}
]]

-- Starts the callback receiver for a token and key; srv:received() lists what it got, decoded.
function M.start_receiver(token, key)
  local text = RECEIVER:gsub("CALLBACK_TOKEN", token):gsub("CALLBACK_KEY", key)
  local srv = nginx.start{ http = text }
  function srv.received()
    local http = core.http_session({ timeout = 10 })
    local status, _, body = http:request("GET", "http://127.0.0.1:" .. srv.port .. "/got", {}, "")
    http:close()
    assert(status == 200, "the callback receiver did not answer")
    return json.decode(body)
  end
  return srv
end


local Sandbox = {}
Sandbox.__index = Sandbox

local function tmpdir()
  local p = assert(io.popen("mktemp -d /tmp/essbasic-sandbox-spec.XXXXXX"))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir:match("^/tmp/essbasic%-sandbox%-spec%."), "mktemp failed")
  return dir
end

local function boot(self)
  local sb = launch.start({ overrides = self.overrides, env = false })
  self.running, self.endpoint, self.port, self.config = sb, sb.endpoint, sb.port, sb.config
end

function M.start(overrides)
  local o = {}
  for k, v in pairs(overrides or {}) do o[k] = v end
  local keep = o.keep_data
  o.keep_data = nil
  local own_dir = o.data_dir == nil
  if own_dir then o.data_dir = tmpdir() end
  local self = setmetatable({ overrides = o, data_dir = o.data_dir, remove_data = own_dir and not keep,
    http = core.http_session({ timeout = 10 }) }, Sandbox)
  boot(self)
  local cred = self.config.credentials[1]
  self.secret_id, self.secret_key, self.app_id = cred.secret_id, cred.secret_key, cred.apps[1]
  self.agent = { AppId = self.app_id, ProxyOrganizationOpenId = "spec_org",
    ProxyOperator = { OpenId = "spec_operator" } }
  return self
end

M.DEFAULT_SECRET_ID = sandbox_config.DEFAULT_SECRET_ID

function Sandbox:client(extra)
  local opts = { secret_id = self.secret_id, secret_key = self.secret_key, endpoint = self.endpoint,
    file_endpoint = self.endpoint }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return require("essbasic").new(opts)
end

-- A one-page PDF, small and valid enough for UploadFiles' checks.
M.PDF = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\n"
  .. "endobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"

function Sandbox:upload(client)
  local resp, err = (client or self:client()):UploadFiles{ Agent = self.agent, BusinessType = "DOCUMENT",
    FileInfos = { { FileName = "contract.pdf", FileBody = core.base64_encode(M.PDF) } } }
  assert(resp, tostring(err))
  return resp.FileIds[1]
end

function Sandbox:group_request(file_ids, opts)
  opts = opts or {}
  local infos = {}
  for i, id in ipairs(file_ids) do
    infos[i] = {
      FileIds = { id }, FlowName = "合同" .. i, Deadline = opts.deadline, Unordered = opts.unordered,
      FlowApprovers = {
        { ApproverType = "PERSON", Name = "张三", Mobile = "13800138000" },
        { ApproverType = "ORGANIZATION", Name = "李四", Mobile = "13900139000", OpenId = "spec_hr",
          OrganizationName = "示例科技有限公司", OrganizationOpenId = "spec_org" },
      },
    }
  end
  return { Agent = self.agent, FlowGroupName = opts.name or "入职签约", FlowFileInfos = infos }
end

local function token_of(url_or_token)
  return url_or_token:match("[?&]token=(%x+)") or url_or_token
end

local function post(self, path, doc)
  local status, _, body = self.http:request("POST", self.endpoint .. path, { ["Content-Type"] = "application/json" },
    json.encode(doc))
  assert(status, "the sandbox did not answer " .. path)
  return status, json.decode(body)
end

function Sandbox:sign(url_or_token)
  return post(self, "/sandbox/sign", { token = token_of(url_or_token) })
end

function Sandbox:reject(url_or_token, message)
  return post(self, "/sandbox/reject", { token = token_of(url_or_token), message = message })
end

function Sandbox:stats()
  local status, _, body = self.http:request("GET", self.endpoint .. "/sandbox/stats", {}, "")
  assert(status == 200, "GET /sandbox/stats failed")
  return json.decode(body)
end

function Sandbox:error_log()
  return self.running and self.running.error_log() or ""
end

-- Stops nginx and keeps the data folder (edit state.json, then restart()).
function Sandbox:halt()
  if self.running then self.running.stop() end
  self.running = nil
end

function Sandbox:restart()
  self:halt()
  boot(self)
end

function Sandbox:stop()
  if self.stopped then return end
  self.stopped = true
  if self.running then self.running.stop() end
  self.http:close()
  if self.remove_data then os.execute("rm -rf '" .. self.data_dir .. "'") end
end

return M
