-- POST /essbasic/callback: the app's callback URL. essbasic.callback.handle checks the Content-Signature (the
-- callback token is required: without it every message is refused, see README.md), decrypts the body (with the
-- callback key a plaintext body is refused) and hands the message to on_message; the answer is 200 only when
-- on_message returned true, so essbasic sends any message we did not keep again. A refused message gets the one
-- answer {"ok":false,"error":"Callback.Refused"} (401 or 400) whatever the reason; the reason goes to the log.
--
-- This example keeps each message in `lua_shared_dict essbasic_callbacks` under its MsgId (a message sent
-- twice is stored once) and shows it at GET /essbasic/callbacks?id=<MsgId>. A real application would write it
-- to its database here; the handler may use cosockets (it runs in the content phase).

local callback = require("essbasic.callback")
local json = require("essbasic.json")
local config = require("essbasic_example.config")
local respond = require("essbasic_example.respond")

local M = {}

local KEEP_SECONDS = 24 * 3600

local function store(msg)
  local dict = ngx.shared.essbasic_callbacks
  local id = tostring(msg.MsgId)
  local text = json.encode(msg)
  if not text then return false end
  local ok, err = dict:add("msg:" .. id, text, KEEP_SECONDS)
  -- "exists": a message sent again; it is already kept, so it counts as handled.
  return ok == true or err == "exists"
end

function M.handle()
  callback.handle({ key = config.callback_key, token = config.callback_token }, store)
end

function M.show()
  local id = ngx.var.arg_id
  local text = id and ngx.shared.essbasic_callbacks:get("msg:" .. id)
  if not text then return respond.json(404, { error = "no message with that MsgId" }) end
  ngx.header["Content-Type"] = "application/json"
  ngx.print(text)
end

return M
