-- Many onboarding groups from one plain Lua script: client:call_many sends them through libcurl's multi interface
-- (no threads, no OpenResty), several at once within the client's rate limit, and prints a progress line as each
-- call finishes. Every group has its own result; one that fails does not stop the others.
--
--   sandbox/run start; eval "$(sandbox/run env)"      a local sandbox and its environment (sandbox/README.md)
--   lua5.4 examples/batch_onboarding.lua [count] [concurrency]      default 20 groups, 10 at a time
--
-- The environment is that of examples/demo.lua (ESSBASIC_ENDPOINT, ESSBASIC_FILE_ENDPOINT, TENCENTCLOUD_SECRET_ID,
-- TENCENTCLOUD_SECRET_KEY, ESSBASIC_APP_ID, ESSBASIC_ORG_OPEN_ID, ESSBASIC_OPERATOR_OPEN_ID, ESSBASIC_COMPANY,
-- ESSBASIC_HR_NAME, ESSBASIC_HR_MOBILE, ESSBASIC_HR_OPEN_ID). The three PDFs are uploaded once; every group uses
-- them for a different new employee (generated names and mobiles: replace them with your own list).
-- Exit status 0 when every group was created, 1 otherwise.

local essbasic = require("essbasic")
local core = require("essbasic.core")

local here = (arg and arg[0] or "examples/batch_onboarding.lua"):match("^(.*)/[^/]+$") or "."
local build_group = dofile(here .. "/hr_onboarding_group.lua")
local settings = dofile(here .. "/settings.lua")

local COUNT = math.tointeger and math.tointeger(tonumber(arg[1] or "20")) or tonumber(arg[1] or "20")
local CONCURRENCY = tonumber(arg[2] or "10")
assert(COUNT and COUNT >= 1 and CONCURRENCY and CONCURRENCY >= 1, "usage: batch_onboarding.lua [count] [concurrency]")
local PDFS = { "labour_contract.pdf", "confidentiality_agreement.pdf", "equipment_receipt.pdf" }

local function say(fmt, ...) io.write(string.format(fmt, ...), "\n") io.flush() end

local client = settings.client()
local agent_table = settings.agent_table

-- 1. The three PDFs, uploaded once.
local file_ids = {}
for i, name in ipairs(PDFS) do
  -- a PDF essbasic.file cannot read is the call's error (ClientError.FileError)
  local resp, err = client:UploadFiles{ Agent = agent_table, BusinessType = "DOCUMENT",
    FileInfos = { essbasic.file(settings.pdf_dir .. "/" .. name) } }
  if err then
    say("UploadFiles %s failed: %s", name, tostring(err))
    os.exit(1)
  end
  file_ids[i] = resp.FileIds[1]
end

-- 2. One request per new employee (built and checked here: a bad row raises before anything is sent).
local SURNAMES = { "张", "王", "李", "赵", "陈", "刘", "杨", "黄" }
local requests, employees = {}, {}
for i = 1, COUNT do
  employees[i] = { name = SURNAMES[(i - 1) % #SURNAMES + 1] .. "员工" .. i, mobile = string.format("137%08d", i) }
  requests[i] = { "ChannelCreateFlowGroupByFiles", build_group{ file_ids = file_ids, agent = settings.agent,
    company = settings.company, hr = settings.hr, employee = employees[i],
    reference = string.format("BATCH-%05d", i) } }
end

-- 3. All of them, CONCURRENCY at a time, a line as each finishes.
say("Creating %d onboarding groups, %d at a time, against %s", COUNT, CONCURRENCY, settings.endpoint)
local started, finished, failed = core.monotonic(), 0, 0
local results = client:call_many(requests, { concurrency = CONCURRENCY, on_done = function(i, resp, err)
  finished = finished + 1
  local head = string.format("[%3d/%d] %5.2fs  %-10s", finished, COUNT, core.monotonic() - started,
    employees[i].name)
  if resp then
    say("%s FlowGroupId %s (%d contracts)", head, resp.FlowGroupId, #resp.FlowIds)
  else
    failed = failed + 1
    say("%s failed: %s", head, tostring(err))
  end
end })
assert(#results == COUNT)
say("%d created, %d failed in %.2f s", COUNT - failed, failed, core.monotonic() - started)
client:close()
os.exit(failed == 0 and 0 or 1)
