-- What the examples read from the environment, in one place (examples/demo.lua lists the variables). Defaults fit
-- the local sandbox (sandbox/run start; eval "$(sandbox/run env)").
--   local settings = dofile("examples/settings.lua")
--   settings.client()      essbasic.new{...} for the endpoints and keys of the environment
--   settings.agent         { app_id, org_open_id, operator_open_id } (the builders' form)
--   settings.agent_table   the same as the API's Agent structure
--   settings.endpoint, settings.company, settings.hr, settings.employee, settings.wait, settings.pdf_dir

local essbasic = require("essbasic")

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]+$") or "."

local S = {
  endpoint = env("ESSBASIC_ENDPOINT", "http://127.0.0.1:8780"),
  agent = {
    app_id = env("ESSBASIC_APP_ID", "yDsandboxApp0000000000000000000001"),
    org_open_id = env("ESSBASIC_ORG_OPEN_ID", "demo_org_hr_company"),
    operator_open_id = env("ESSBASIC_OPERATOR_OPEN_ID", "demo_operator_wangwu"),
  },
  company = env("ESSBASIC_COMPANY", "示例科技有限公司"),
  hr = { name = env("ESSBASIC_HR_NAME", "李四"), mobile = env("ESSBASIC_HR_MOBILE", "13900139000"),
    open_id = env("ESSBASIC_HR_OPEN_ID", "demo_hr_lisi") },
  employee = { name = env("ESSBASIC_EMPLOYEE_NAME", "张三"), mobile = env("ESSBASIC_EMPLOYEE_MOBILE", "13800138000") },
  wait = tonumber(env("ESSBASIC_DEMO_WAIT", "0")) or 0,
  pdf_dir = here .. "/pdf",
}
S.file_endpoint = env("ESSBASIC_FILE_ENDPOINT", S.endpoint)
S.agent_table = { AppId = S.agent.app_id, ProxyOrganizationOpenId = S.agent.org_open_id,
  ProxyOperator = { OpenId = S.agent.operator_open_id } }

function S.client()
  return essbasic.new{ endpoint = S.endpoint, file_endpoint = S.file_endpoint,
    secret_id = os.getenv("TENCENTCLOUD_SECRET_ID"), secret_key = os.getenv("TENCENTCLOUD_SECRET_KEY") }
end

return S
