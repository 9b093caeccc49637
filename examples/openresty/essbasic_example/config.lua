-- The example's settings, read from the environment once per nginx (in init_by_lua, where os.getenv sees the
-- variables that nginx.conf lists with `env NAME;`; nginx hides all others from Lua).
--
--   TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY   credentials (read by essbasic's default chain)
--   ESSBASIC_ENDPOINT, ESSBASIC_FILE_ENDPOINT         e.g. http://127.0.0.1:8780 for make sandbox
--   ESSBASIC_APP_ID, ESSBASIC_ORG_OPEN_ID, ESSBASIC_OPERATOR_OPEN_ID   the Agent of every call
--   ESSBASIC_CALLBACK_KEY, ESSBASIC_CALLBACK_TOKEN    the app's callback key (32 bytes) and token, both from the
--                                                     console (no callback is taken without the token)
--   ESSBASIC_RATE_LIMIT                               requests per second per action, all workers together (20)
--   ESSBASIC_TIMEOUT                                  seconds for one API call (30)

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

local function number(name, default)
  local v = env(name)
  if v == nil then return default end
  local n = tonumber(v)
  if not n or n <= 0 then error(name .. " must be a positive number, got '" .. v .. "'", 0) end
  return n
end

return {
  endpoint = env("ESSBASIC_ENDPOINT"),
  file_endpoint = env("ESSBASIC_FILE_ENDPOINT"),
  agent = {
    AppId = env("ESSBASIC_APP_ID"),
    ProxyOrganizationOpenId = env("ESSBASIC_ORG_OPEN_ID"),
    ProxyOperator = { OpenId = env("ESSBASIC_OPERATOR_OPEN_ID") },
  },
  callback_key = env("ESSBASIC_CALLBACK_KEY"),
  callback_token = env("ESSBASIC_CALLBACK_TOKEN"),
  rate_limit = number("ESSBASIC_RATE_LIMIT", 20),
  timeout = number("ESSBASIC_TIMEOUT", 30),
}
