-- Counting instructions under callgrind (bench/sequential.lua runs it): against the server at `url`, after one
-- setup and warm-up, runs each "stage:count" argument in turn in a window of its own (B.run_windows).
-- Stages: call (client:call, validated: the whole path), prepare (validate, encode, sign), transport (the client's
-- transport sending one pre-signed request again: libcurl and the C session around it), decode (envelope.decode
-- of the server's answer). What call costs beyond the other three is the client's own glue.
-- Usage: lua5.4 bench/call_count.lua <url> call:200 prepare:200 transport:200 decode:200

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")
local envelope = require("essbasic.envelope")

local client = B.client({ endpoint = assert(arg[1], "usage: call_count.lua <url> stage:count ...") })
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
local runs = {}
for i = 2, #arg do
  local stage, count = arg[i]:match("^(%w+):(%d+)$")
  local fn = assert(stage and stages[stage], "bad argument " .. arg[i])
  for _ = 1, 20 do assert(fn()) end
  runs[#runs + 1] = { fn = fn, count = tonumber(count) }
end
B.run_windows(runs)
client:close()
