-- Runs `count` prepares of the seed request ("seed") or the 50x5 group ("group50") after the same setup and
-- warm-up every time, for counting instructions under callgrind (bench/prepare.lua subtracts a run with 0).
-- `stage` runs one step of prepare instead: validate, encode (json.encode with the hint), body
-- (validate.request_body: both in one walk) or headers (signer.headers).
-- Usage: lua5.4 bench/prepare_count.lua seed|group50 count [prepare|validate|encode|body|headers]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")

local kind, count, stage = arg[1], tonumber(arg[2]), arg[3] or "prepare"
assert((kind == "seed" or kind == "group50") and count, "usage: prepare_count.lua seed|group50 count [stage]")

local params = kind == "seed" and B.seed_request() or B.group_request(50, 5)
local client = B.client({ endpoint = "http://127.0.0.1:8080" })
local popts = { timestamp = B.TIMESTAMP }
local req = assert(client:prepare(B.ACTION, params, popts))
local hint = require("essbasic.api").request_hint(B.ACTION)
local creds = assert(client.provider.get())
local parts = { action = B.ACTION, host = "127.0.0.1:8080", body = req.body, timestamp = B.TIMESTAMP,
  language = "zh-CN", request_client = client.request_client }
local validate, json, signer = require("essbasic.validate"), require("essbasic.json"), require("essbasic.signer")
local steps = {
  prepare = function() return client:prepare(B.ACTION, params, popts) end,
  validate = function() return validate.request(B.ACTION, params) end,
  body = function() return validate.request_body(B.ACTION, params) end,
  encode = function() return json.encode(params, hint) end,
  headers = function() return signer.headers(parts, creds) end,
}
local fn = assert(steps[stage], "unknown stage " .. stage)
for _ = 1, 5 do assert(fn()) end
-- A full collection before counting so the 0 run and the N run start from the same heap.
collectgarbage("collect")
for _ = 1, count do fn() end
