-- HR onboarding as one contract group: the labour contract (劳动合同), the confidentiality agreement (保密协议) and
-- the equipment receipt (设备领用确认书), each from an uploaded PDF. The new employee signs all three in one go
-- (one link, face verification), then the HR company seals them: either an HR employee of the initiating
-- sub-client company seals by hand, or the company seals automatically (company auto-sign, a whitelist feature).
-- Fields are placed by keyword, so the PDFs need these words as text (not inside images):
--   劳动合同, 保密协议: 乙方（签字） for the employee, 甲方（盖章） for the company seal
--   设备领用确认书:     领用人（签字） for the employee, 发放方（盖章） for the company seal
--
-- As a module:
--   local build_group = dofile("examples/hr_onboarding_group.lua")
--   local request = build_group{
--     file_ids = { labour_id, confidentiality_id, equipment_id },   -- FileIds from UploadFiles, in this order
--     agent = { app_id = "...", org_open_id = "...", operator_open_id = "..." },   -- or flow.agent{...}
--     company = "示例科技有限公司",     -- the HR company = the initiating sub-client (agent.org_open_id)
--     hr = { name = "李四", mobile = "13900139000", open_id = "hr_lisi" },  -- the HR employee who seals; or
--     -- seal_id = "...",              -- instead of hr: the company seals automatically with this seal
--     employee = { name = "张三", mobile = "13800138000" },   -- may add id_card_type, id_card_number
--     deadline = os.time() + 7 * 86400,   -- optional, Unix seconds; this is the default
--     reference = "ONB-2024-0117",        -- optional, your own id; comes back in callbacks (CustomerData)
--   }
--   local result, err = client:ChannelCreateFlowGroupByFiles(request)
-- build_group raises (naming the option) when an argument is wrong; the result is a plain request table.
--
-- As a script it prints the request as JSON:
--   LUA_PATH="lua/?.lua;;" LUA_CPATH="build/5.4/?.so;;" lua5.4 examples/hr_onboarding_group.lua [id1 id2 id3]
-- The Agent comes from ESSBASIC_APP_ID, ESSBASIC_ORG_OPEN_ID and ESSBASIC_OPERATOR_OPEN_ID, placeholders otherwise.

local flow = require("essbasic.flow")

local DOCUMENTS = {
  { title = "劳动合同", type = "劳动合同", employee_at = "乙方（签字）", company_at = "甲方（盖章）",
    read_seconds = 30 }, -- the long one: make sure it is at least scrolled through
  { title = "保密协议", type = "保密协议", employee_at = "乙方（签字）", company_at = "甲方（盖章）" },
  { title = "设备领用确认书", type = "设备领用", employee_at = "领用人（签字）", company_at = "发放方（盖章）" },
}

local WEEK = 7 * 24 * 3600
-- Field sizes in pt: a round company seal is about 42 mm across; a handwritten signature is wide and low.
local SEAL = { width = 120, height = 120 }
local SIGNATURE = { width = 120, height = 50 }

local function build_group(p)
  if type(p) ~= "table" then error("build_group expects a table", 2) end
  if type(p.file_ids) ~= "table" or #p.file_ids ~= #DOCUMENTS then
    error("build_group: file_ids must hold " .. #DOCUMENTS .. " FileIds (labour, confidentiality, equipment)", 2)
  end
  if (p.hr == nil) == (p.seal_id == nil) then
    error("build_group: give either hr (an HR employee seals) or seal_id (the company seals automatically)", 2)
  end
  local agent = type(p.agent) == "table" and p.agent.AppId and p.agent or flow.agent(p.agent)
  local org_open_id = agent.ProxyOrganizationOpenId
  local employee = p.employee

  local contracts = {}
  for i, doc in ipairs(DOCUMENTS) do
    local company
    if p.hr then
      company = flow.employee{
        name = p.hr.name, mobile = p.hr.mobile, open_id = p.hr.open_id,
        org_name = p.company, org_open_id = org_open_id,
        sign = flow.seal_at_keyword(doc.company_at, SEAL),
      }
    else
      company = flow.auto_sign{
        org_name = p.company, org_open_id = org_open_id,
        sign = flow.seal_at_keyword(doc.company_at,
          { seal_id = p.seal_id, width = SEAL.width, height = SEAL.height }),
      }
    end
    contracts[i] = flow.contract{
      file_id = p.file_ids[i],
      name = employee.name .. doc.title,
      type = doc.type,
      deadline = p.deadline or os.time() + WEEK,
      customer_data = p.reference,
      signers = {
        -- Ordered signing: the employee first, then the company seals what the employee signed.
        flow.person{
          name = employee.name, mobile = employee.mobile,
          id_card_type = employee.id_card_type, id_card_number = employee.id_card_number,
          sign = flow.signature_at_keyword(doc.employee_at, SIGNATURE),
          pre_read_time = doc.read_seconds,
          no_transfer = true, -- the employee signs in person, cannot forward it
        },
        company,
      },
    }
  end

  return flow.group{
    name = employee.name .. "入职签约",
    agent = agent,
    contracts = contracts,
    verify = "VerifyCheck", -- face verification before viewing (the API's default, stated for the reader)
    options = { others_sign_each = true }, -- the employee confirms each contract, not once for the group
  }
end

-- Run as a script (not loaded by dofile/require from another program): print the request as JSON.
if arg and arg[0] and arg[0]:match("hr_onboarding_group%.lua$") then
  local json = require("essbasic.json")
  local api = require("essbasic.api")
  local request = build_group{
    file_ids = { arg[1] or "FILE_ID_LABOUR_CONTRACT", arg[2] or "FILE_ID_CONFIDENTIALITY",
      arg[3] or "FILE_ID_EQUIPMENT_RECEIPT" },
    agent = {
      app_id = os.getenv("ESSBASIC_APP_ID") or "YOUR_APP_ID",
      org_open_id = os.getenv("ESSBASIC_ORG_OPEN_ID") or "YOUR_SUB_CLIENT_ORG_OPEN_ID",
      operator_open_id = os.getenv("ESSBASIC_OPERATOR_OPEN_ID") or "YOUR_OPERATOR_OPEN_ID",
    },
    company = "示例科技有限公司",
    hr = { name = "李四", mobile = "13900139000", open_id = "hr_lisi" },
    employee = { name = "张三", mobile = "13800138000" },
    reference = "ONB-2024-0117",
  }
  local body = assert(json.encode(request, api.request_hint("ChannelCreateFlowGroupByFiles")))
  io.write(body, "\n")
end

return build_group
