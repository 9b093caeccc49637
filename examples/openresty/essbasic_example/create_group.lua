-- POST /flow-groups with a JSON body { FlowGroupName = "...", FlowFileInfos = { ... } } (the request of
-- ChannelCreateFlowGroupByFiles without the Agent, which comes from the configuration) creates the group and
-- answers { FlowGroupId, FlowIds, RequestId }. While the API works on it, this worker serves other requests:
-- the call waits on a cosocket, not in libcurl.

local json = require("essbasic.json")
local config = require("essbasic_example.config")
local client = require("essbasic_example.client")
local respond = require("essbasic_example.respond")

local M = {}

local function request_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local path = ngx.req.get_body_file() -- over client_body_buffer_size nginx keeps the body in a file
  if not path then return nil end
  local f = io.open(path, "rb")
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end

function M.handle()
  if ngx.req.get_method() ~= "POST" then return respond.json(405, { error = "use POST" }) end
  local params = json.decode(request_body() or "")
  if type(params) ~= "table" or json.is_array(params) then
    return respond.json(400, { error = "the body must be a JSON object" })
  end
  params.Agent = config.agent
  local resp, err = client.get():ChannelCreateFlowGroupByFiles(params)
  if not resp then return respond.error(err) end
  return respond.json(200, { FlowGroupId = resp.FlowGroupId, FlowIds = json.array(resp.FlowIds or {}),
    RequestId = resp.RequestId })
end

return M
