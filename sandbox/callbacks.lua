-- Callback delivery, as essbasic does it: one message per flow whose status changed, and the other events the
-- sandbox emulates (sandbox/README.md, "Callbacks"; built by M.event), POSTed to the configured URL,
-- encrypted ({"encrypt": base64(AES-256-CBC(key, iv = key[1..16], PKCS#7))}) when a key is set and signed
-- (Content-Signature: sha256=<hex HMAC-SHA256(token, raw body)>) when a token is set. Sent from ngx.timer
-- callbacks through the project's cosocket transport, retried with exponential backoff until the receiver answers
-- 200 or max_attempts is reached. Messages are built when the change happens (a snapshot), so later changes never
-- alter a message already queued. Pending deliveries are not kept across a restart.

local core = require("essbasic.core")
local json = require("essbasic.json")
local ngx_transport = require("essbasic.transport.ngx")

local ngx = ngx
local tostring, min, ipairs = tostring, math.min, ipairs
local hex, hmac_sha256, base64_encode, aes256cbc_encrypt = core.hex, core.hmac_sha256, core.base64_encode,
  core.aes256cbc_encrypt

local M = {}

-- The FlowCallbackStatus numbers of the partner callback pages.
M.STATUS_NUMBER = { INIT = 1, PART = 2, REJECT = 3, ALL = 4, DEADLINE = 5, CANCEL = 6, INVALID = 16, RELIEVED = 21 }

M.stats = { queued = 0, attempts = 0, delivered = 0, failed_attempts = 0, given_up = 0, pending = 0 }

local config, transport

function M.init(cfg)
  config = cfg.callback
  transport = ngx_transport.new({ timeout = config.timeout, connect_timeout = config.timeout })
end

function M.enabled()
  return config ~= nil and config.url ~= nil
end

-- The FlowStatusChange-style message for a flow's current state (fields named as in the partner callbacks).
function M.message(flow, group, now)
  local grouped = group ~= nil and not group.hidden -- single contracts have a hidden one-flow group
  local approvers = json.array()
  for i, ap in ipairs(flow.approvers) do
    approvers[i] = { ApproverType = ap.type, OrganizationName = ap.org_name, OrganizationOpenId = ap.org_open_id,
      OpenId = ap.open_id, ApproverName = ap.name, ApproverMobile = ap.mobile, ApproveStatus = ap.status,
      ApproveMessage = ap.message, ApproveTime = ap.time or 0, SignId = ap.sign_id, RecipientId = ap.recipient_id,
      SignOrder = ap.order - 1 }
  end
  return {
    MsgId = core.hex(core.random_bytes(16)),
    MsgType = "FlowStatusChange",
    MsgVersion = "ThirdPartyApp",
    MsgData = {
      ApplicationId = flow.app, ProxyOrganizationOpenId = flow.org_open_id, ProxyOperatorOpenId =
        flow.operator_open_id, FlowId = flow.id, FlowGroupId = grouped and flow.group or nil,
      FlowGroupName = grouped and group.name or nil,
      FlowName = flow.name, FlowType = flow.type, FlowStatus = flow.status,
      FlowCallbackStatus = M.STATUS_NUMBER[flow.status], FlowMessage = flow.message,
      CustomerData = flow.customer_data, CreateOn = flow.created, Deadline = flow.deadline, OccurTime = now,
      FlowApproverInfos = approvers,
    },
  }
end

-- Any other message type: MsgData as given (sandbox/orgs.lua builds it with the documented member names).
function M.event(msg_type, data)
  return { MsgId = core.hex(core.random_bytes(16)), MsgType = msg_type, MsgVersion = "ThirdPartyApp", MsgData = data }
end

-- The body and headers essbasic would send for a message.
function M.wire(message)
  local plaintext = json.encode(message)
  local body = plaintext
  if config.key then
    body = json.encode({ encrypt = base64_encode(aes256cbc_encrypt(config.key, config.key:sub(1, 16), plaintext)) })
  end
  local headers = { ["Content-Type"] = "application/json" }
  if config.token then headers["Content-Signature"] = "sha256=" .. hex(hmac_sha256(config.token, body)) end
  return body, headers
end

local attempt

local function schedule(job, delay)
  local ok, err = ngx.timer.at(delay, attempt, job)
  if not ok then
    ngx.log(ngx.ERR, "sandbox callback: cannot schedule a delivery: ", err)
    M.stats.pending = M.stats.pending - 1
    M.stats.given_up = M.stats.given_up + 1
  end
end

function attempt(premature, job)
  if premature then return end
  job.attempts = job.attempts + 1
  M.stats.attempts = M.stats.attempts + 1
  local res, err = transport:request({ method = "POST", url = config.url, headers = job.headers, body = job.body,
    timeout = config.timeout })
  if res and res.status == 200 then
    M.stats.delivered = M.stats.delivered + 1
    M.stats.pending = M.stats.pending - 1
    return
  end
  M.stats.failed_attempts = M.stats.failed_attempts + 1
  local why = res and ("HTTP " .. tostring(res.status)) or tostring(err and err.code)
  if job.attempts >= config.max_attempts then
    ngx.log(ngx.WARN, "sandbox callback ", job.id, " given up after ", job.attempts, " attempts (", why, ")")
    M.stats.pending = M.stats.pending - 1
    M.stats.given_up = M.stats.given_up + 1
    return
  end
  local delay = min(config.base_delay * 2 ^ (job.attempts - 1), config.max_delay)
  ngx.log(ngx.INFO, "sandbox callback ", job.id, " attempt ", job.attempts, " failed (", why, "); retry in ", delay)
  schedule(job, delay)
end

-- Queues a message; delivery starts right after the current request (timer with delay 0).
function M.send(message)
  if not M.enabled() then return end
  local body, headers = M.wire(message)
  M.stats.queued = M.stats.queued + 1
  M.stats.pending = M.stats.pending + 1
  schedule({ id = message.MsgId, body = body, headers = headers, attempts = 0 }, 0)
end

return M
