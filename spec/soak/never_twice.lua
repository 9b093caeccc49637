-- The never-twice soak as a script (issue 12): 1000 creations, 10% of the answers lost at random, concurrency 10.
--   lua5.4 spec/soak/never_twice.lua [N] [LOSS] [CONCURRENCY] [REFUSE_EVERY] [HOLD]
--     (LUA_PATH and LUA_CPATH as tools/run-tests sets them)
--   REFUSE_EVERY, HOLD (issue 22): the proxy's address refuses connections for HOLD seconds (default 0.15) after
--   every REFUSE_EVERY-th connection the proxy closed, e.g. 2000 0.1 10 20
-- prints the figures and exits 1 on any duplicate or mismatch.
local sandbox = require("helpers.sandbox")
local fault_proxy = require("helpers.fault_proxy")
local soak = require("helpers.soak")

local n, loss, concurrency = tonumber(arg[1]) or 1000, tonumber(arg[2]) or 0.1, tonumber(arg[3]) or 10
local refuse = tonumber(arg[4]) and { every = tonumber(arg[4]), hold = tonumber(arg[5]) or 0.15 } or nil
local sb = sandbox.start{ rate_limit = 100000 }
local fp = fault_proxy.start{ upstream = sb.endpoint }
local ok, f = pcall(soak.run, { sb = sb, fp = fp, n = n, loss = loss, concurrency = concurrency, seed = 11,
  refuse = refuse })
fp:stop()
sb:stop()
if not ok then error(f, 0) end
print(soak.format(f))
-- Every creation that reached the sandbox was carried out once and reported as a success or as unknown; every other
-- failure is one the client called not sent (with refusals, a creation whose every attempt was refused), and none
-- of those reached the sandbox (sent = successes + unknown).
local good = f.duplicates == 0 and f.groups == f.successes + f.unknown and f.sent == f.groups
  and f.other_failures == f.not_sent and (refuse or f.sent == n)
print(good and "never twice: held" or "never twice: BROKEN")
os.exit(good and 0 or 1)
