-- Runs `count` iterations of one stage of a call against the server at `url`, after the same setup and warm-up of
-- every stage each time, for counting instructions under callgrind (bench/sequential.lua subtracts a run with 0).
-- Stages: call (client:call, validated: the whole path), prepare (validate, encode, sign), transport (the client's
-- transport sending one pre-signed request again: libcurl and the C session around it), decode (envelope.decode
-- of the server's answer). What call costs beyond the other three is the client's own glue.
-- Usage: lua5.4 bench/call_count.lua <url> <count> call|prepare|transport|decode

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")
local envelope = require("essbasic.envelope")

local url, count, stage = arg[1], tonumber(arg[2]), arg[3]
assert(url and count and stage, "usage: call_count.lua <url> <count> call|prepare|transport|decode")

local client = B.client({ endpoint = url })
local params = B.seed_request()
local req = assert(client:prepare(B.ACTION, params))
-- as client:call sends it: the client's timeout, no response header map
req.timeout, req.response_headers = client.timeout, false
local answer = assert(client.transport:request(req))
local stages = {
  call = function() return client:call(B.ACTION, params) end,
  prepare = function() return client:prepare(B.ACTION, params) end,
  transport = function() return client.transport:request(req) end,
  decode = function() return envelope.decode(answer.status, answer.body) end,
}
local fn = assert(stages[stage], "unknown stage " .. stage)
-- Every stage warms up in every run, so the run with 0 is the same for all of them.
for _ = 1, 20 do
  for _, name in ipairs({ "call", "prepare", "transport", "decode" }) do assert(stages[name]()) end
end
collectgarbage("collect")
for _ = 1, count do assert(fn()) end
client:close()
