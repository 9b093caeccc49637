-- The essbasic demo: onboarding a new employee with one contract group, from upload to the last signature.
--
--   make demo                      builds, starts the local sandbox, runs this, stops the sandbox
--   lua5.4 examples/demo.lua       against whatever the environment names (LUA_PATH/LUA_CPATH as in the Makefile)
--
-- Environment (the same names work against Tencent's test environment, essbasic.test.ess.tencent.cn):
--   ESSBASIC_ENDPOINT, ESSBASIC_FILE_ENDPOINT        e.g. https://essbasic.test.ess.tencent.cn and
--                                                    https://file.test.ess.tencent.cn
--   TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY  your API key pair (read by the client's credential chain)
--   ESSBASIC_APP_ID, ESSBASIC_ORG_OPEN_ID, ESSBASIC_OPERATOR_OPEN_ID   the app, the sub-client company, its operator
--   ESSBASIC_COMPANY                                 that company's registered name
--   ESSBASIC_HR_NAME, ESSBASIC_HR_MOBILE, ESSBASIC_HR_OPEN_ID         the HR employee who seals
--   ESSBASIC_EMPLOYEE_NAME, ESSBASIC_EMPLOYEE_MOBILE                  the new employee
--   ESSBASIC_DEMO_WAIT                               seconds to keep watching the statuses when nobody signs here
--   ESSBASIC_DEMO_OUT                                where the signed PDFs go (default: signed-contracts/ here;
--                                                    make demo: build/demo-signed/)
-- The only sandbox-specific step is the signing: the sandbox's signing links accept a POST that signs as that
-- person. Against Tencent the demo prints the links instead (open them on a phone) and watches for a while.

local essbasic = require("essbasic")
local core = require("essbasic.core")

local here = (arg and arg[0] or "examples/demo.lua"):match("^(.*)/[^/]+$") or "."
local build_group = dofile(here .. "/hr_onboarding_group.lua")
local settings = dofile(here .. "/settings.lua")

local ENDPOINT, FILE_ENDPOINT = settings.endpoint, settings.file_endpoint
local AGENT, COMPANY, HR, EMPLOYEE, WAIT = settings.agent, settings.company, settings.hr, settings.employee,
  settings.wait

local PDFS = {
  { title = "劳动合同 (labour contract)", file = settings.pdf_dir .. "/labour_contract.pdf" },
  { title = "保密协议 (confidentiality agreement)", file = settings.pdf_dir .. "/confidentiality_agreement.pdf" },
  { title = "设备领用确认书 (equipment receipt)", file = settings.pdf_dir .. "/equipment_receipt.pdf" },
}

local function say(fmt, ...) io.write(string.format(fmt, ...), "\n") io.flush() end

-- check("Action", client:Action{...}): the response, or the error printed and exit 1 (the call last in the list,
-- so that its err comes through).
local function check(what, resp, err)
  if not err then return resp end
  say("\n%s failed: %s", what, tostring(err))
  for _, p in ipairs(type(err) == "table" and err.problems or {}) do say("  %s: %s", p.path, p.message) end
  os.exit(1)
end

local client = settings.client()
local agent_table = settings.agent_table

say("essbasic demo: %s joins %s, and signs three contracts in one go.", EMPLOYEE.name, COMPANY)
say("API %s, files %s\n", ENDPOINT, FILE_ENDPOINT)

-- 1. Upload
say("1. HR uploads the three contracts as PDFs.")
local file_ids = {}
for i, doc in ipairs(PDFS) do
  -- a PDF essbasic.file cannot read is the call's error (ClientError.FileError)
  local resp = check("UploadFiles", client:UploadFiles{ Agent = agent_table, BusinessType = "DOCUMENT",
    FileInfos = { essbasic.file(doc.file) } })
  file_ids[i] = resp.FileIds[1]
  say("   %s → FileId %s (usable until %s UTC)", doc.title, file_ids[i], os.date("!%H:%M", resp.Deadline))
end

-- 2. Create the group with the builders
say("\n2. HR creates one contract group from them (examples/hr_onboarding_group.lua builds the request).")
-- The builders raise on a wrong argument (here: a bad value in the environment); say which and stop.
local built, request = pcall(build_group, { file_ids = file_ids, agent = AGENT, company = COMPANY, hr = HR,
  employee = EMPLOYEE, reference = "DEMO-" .. os.date("!%Y%m%d%H%M%S") })
if not built then
  say("\nThe request could not be built: %s", tostring(request))
  os.exit(1)
end
local created = check("ChannelCreateFlowGroupByFiles", client:ChannelCreateFlowGroupByFiles(request))
local group_id = created.FlowGroupId
say("   FlowGroupId %s with %d contracts; %s signs first, then %s seals for the company.", group_id,
  #created.FlowIds, EMPLOYEE.name, HR.name)

-- Statuses: print a line per contract whenever something changed since the last look.
local last = {}
local function look(label)
  local resp = check("DescribeFlowDetailInfo",
    client:DescribeFlowDetailInfo{ Agent = agent_table, FlowGroupId = group_id })
  local changed, all_done = false, true
  for _, flow in ipairs(resp.FlowInfo) do
    local who = {}
    for _, ap in ipairs(flow.FlowApproverInfos or {}) do
      who[#who + 1] = (ap.ApproveName or ap.ProxyOrganizationName or "?") .. " " .. tostring(ap.ApproveStatus)
    end
    local line = string.format("[%-5s] %s: %s", flow.FlowStatus, flow.FlowName, table.concat(who, ", "))
    if last[flow.FlowId] ~= line then changed = true end
    last[flow.FlowId] = line
    all_done = all_done and flow.FlowStatus == "ALL"
  end
  if changed then
    say("   %s", label)
    for _, flow in ipairs(resp.FlowInfo) do say("     %s", last[flow.FlowId]) end
  end
  return all_done, changed
end
look("Status:")

-- 3. Signing links
say("\n3. HR asks for the signing links (one per person for the whole group).")
local links = check("CreateSignUrls", client:CreateSignUrls{ Agent = agent_table, FlowGroupId = group_id })
local by_name = {}
for _, info in ipairs(links.SignUrlInfos) do
  by_name[info.Name or info.OrganizationName or "?"] = info.SignUrl
  say("   %s: %s", info.Name or info.OrganizationName or "?", info.SignUrl)
end

-- 4. Sign (sandbox only), watching the statuses move
local sandbox_sign = ENDPOINT:gsub("/$", "") .. "/sandbox/sign"
local function is_sandbox_link(url) return url and url:sub(1, #sandbox_sign) == sandbox_sign end

-- The signed documents: DescribeResourceUrlsByFlows gives a short-lived link per contract; save each PDF.
local function download_signed(step)
  local out = os.getenv("ESSBASIC_DEMO_OUT") or "signed-contracts"
  os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")
  say("\n%s HR downloads the signed PDFs (DescribeResourceUrlsByFlows) into %s/.", step, out)
  local resp = check("DescribeResourceUrlsByFlows",
    client:DescribeResourceUrlsByFlows{ Agent = agent_table, FlowIds = created.FlowIds })
  local http = core.http_session({ timeout = 30 })
  for i, info in ipairs(resp.FlowResourceUrlInfos) do
    for _, res in ipairs(info.ResourceUrlInfos or {}) do
      local status, _, body = http:request("GET", res.Url, {}, "")
      if status ~= 200 or body:sub(1, 5) ~= "%PDF-" then
        say("   %s: the download failed (HTTP %s)", tostring(res.Name), tostring(status))
        os.exit(1)
      end
      local path = string.format("%s/%d-%s.pdf", out, i, info.FlowId)
      local f = assert(io.open(path, "wb"))
      f:write(body)
      f:close()
      say("   %s → %s (%d bytes)", tostring(res.Name), path, #body)
    end
  end
  for i, m in ipairs(resp.ErrorMessages or {}) do
    if m ~= "" then say("   contract %d: %s", i, m) end
  end
  http:close()
end

local function watch_until_changed(label)
  local deadline = core.monotonic() + 10
  repeat
    local done, changed = look(label)
    if changed then return done end
    core.sleep(0.2)
  until core.monotonic() > deadline
  return false
end

if is_sandbox_link(by_name[EMPLOYEE.name]) then
  local http = core.http_session({ timeout = 10 })
  local function sign_as(name, why)
    say("\n%s", why)
    local status, _, body = http:request("POST", by_name[name], { ["Content-Type"] = "application/json" }, "{}")
    if status ~= 200 then
      say("   the sandbox refused: %s %s", tostring(status), tostring(body))
      os.exit(1)
    end
  end
  sign_as(EMPLOYEE.name, "4. " .. EMPLOYEE.name .. " opens the link, reads, and signs all three contracts.")
  watch_until_changed("Status after " .. EMPLOYEE.name .. " signed:")
  sign_as(HR.name, "5. " .. HR.name .. " seals them for " .. COMPANY .. ".")
  local done = watch_until_changed("Status after " .. HR.name .. " sealed:")
  http:close()
  if not done then
    say("\nSomething is off: not every contract reached ALL.")
    os.exit(1)
  end
  download_signed("6.")
  say("\nDone: every contract of the group is signed by both sides (ALL). %s starts on Monday.", EMPLOYEE.name)
else
  say("\n4. Open the links above on a phone to sign (identity checks happen there).")
  local deadline = core.monotonic() + WAIT
  while core.monotonic() < deadline do
    if look("Status changed:") then
      download_signed("5.")
      say("\nDone: every contract is signed.")
      break
    end
    core.sleep(5)
  end
  say("\nCheck again any time: DescribeFlowDetailInfo with FlowGroupId %s (or wait for the callbacks).", group_id)
end
client:close()
