-- Runs `count` prepares of the seed request ("seed") or the 50x5 group ("group50") after the same setup and
-- warm-up every time, for counting instructions under callgrind (bench/prepare.lua subtracts a run with 0).
-- Usage: lua5.4 bench/prepare_count.lua seed|group50 count

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")

local kind, count = arg[1], tonumber(arg[2])
assert((kind == "seed" or kind == "group50") and count, "usage: prepare_count.lua seed|group50 count")

local params = kind == "seed" and B.seed_request() or B.group_request(50, 5)
local client = B.client({ endpoint = "http://127.0.0.1:8080" })
local popts = { timestamp = B.TIMESTAMP }
for _ = 1, 5 do assert(client:prepare(B.ACTION, params, popts)) end
-- A full collection before counting so the 0 run and the N run start from the same heap.
collectgarbage("collect")
for _ = 1, count do client:prepare(B.ACTION, params, popts) end
