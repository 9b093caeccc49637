-- Counting instructions under callgrind (bench/prepare.lua runs it): after one setup and warm-up, runs each
-- "kind:stage:count" argument in turn in a window of its own (B.run_windows).
-- kind: seed (the seed request) or group50 (the 50x5 group); stage: prepare, correlated (prepare with
-- correlate = true), or one step of prepare: validate, encode
-- (json.encode with the hint), body (validate.request_body: both in one walk) or headers (signer.headers);
-- signurls:body is validate.request_body of a CreateSignUrls request (a one-of group).
-- Usage: lua5.4 bench/prepare_count.lua seed:prepare:200 seed:body:200 group50:prepare:20 ...

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")

local client = B.client({ endpoint = "http://127.0.0.1:8080" })
local popts = { timestamp = B.TIMESTAMP }
local popts_corr = { timestamp = B.TIMESTAMP, correlate = true }
local hint = require("essbasic.api").request_hint(B.ACTION)
local creds = assert(client.provider.get())
local validate, json, signer = require("essbasic.validate"), require("essbasic.json"), require("essbasic.signer")

local function steps_for(params)
  local req = assert(client:prepare(B.ACTION, params, popts))
  local parts = { action = B.ACTION, host = "127.0.0.1:8080", body = req.body, timestamp = B.TIMESTAMP,
    language = "zh-CN", request_client = client.request_client }
  return {
    prepare = function() return client:prepare(B.ACTION, params, popts) end,
    correlated = function() return client:prepare(B.ACTION, params, popts_corr) end,
    validate = function() return validate.request(B.ACTION, params) end,
    body = function() return validate.request_body(B.ACTION, params) end,
    encode = function() return json.encode(params, hint) end,
    headers = function() return signer.headers(parts, creds) end,
  }
end

local all = { seed = steps_for(B.seed_request()), group50 = steps_for(B.group_request(50, 5)) }
-- signurls:body: validate.request_body of a CreateSignUrls request, an action with a one-of group
local sign_urls = { Agent = { AppId = "yDwFoUUckpsmiu7v", ProxyOrganizationOpenId = "org",
  ProxyOperator = { OpenId = "op" } }, FlowIds = { "yDwhxUUckp3gl8j5UuFX33LSNozpRsbi" } }
all.signurls = { body = function() return validate.request_body("CreateSignUrls", sign_urls) end }
local runs = {}
for i = 1, #arg do
  local kind, stage, count = arg[i]:match("^(%w+):(%w+):(%d+)$")
  local fn = assert(kind and all[kind] and all[kind][stage], "bad argument " .. arg[i])
  for _ = 1, 5 do assert(fn()) end
  runs[#runs + 1] = { fn = fn, count = tonumber(count) }
end
B.run_windows(runs)
