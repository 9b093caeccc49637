-- prepare A/B: the validator's cost in the work tree against a git revision, measured in one run.
-- Usage (from the project root): lua5.4 bench/prepare_ab.lua [BASE_REF] [rounds] [seconds-per-sample]
-- BASE_REF defaults to HEAD~1. The base's tree is extracted with `git archive` into a temporary directory and its
-- core built there; then each round runs one child process per tree (alternating, so drift hits both alike) that
-- times client:prepare of the seed request and of the 50x5 group, and validate.request_body of a CreateSignUrls
-- request (an action with a one-of group); medians and the ratio work tree / base are printed. With valgrind,
-- instructions per call (callgrind windows, bench/prepare_count.lua; CG_ROUNDS runs each, default 5) of both
-- trees and their ratio too.
-- (The child mode, `--child SECONDS`, prints one line of ns per call; it is what the parent runs.)

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local format = string.format

local function child(seconds)
  local B = require("benchlib")
  local validate = require("essbasic.validate")
  local client = B.client({ endpoint = "http://127.0.0.1:8080" })
  local popts = { timestamp = B.TIMESTAMP }
  local seed, group = B.seed_request(), B.group_request(50, 5)
  local sign_urls = { Agent = { AppId = "yDwFoUUckpsmiu7v", ProxyOrganizationOpenId = "org",
    ProxyOperator = { OpenId = "op" } }, FlowIds = { "yDwhxUUckp3gl8j5UuFX33LSNozpRsbi" } } -- as prepare_count
  local fns = {
    function() return client:prepare(B.ACTION, seed, popts) end,
    function() return client:prepare(B.ACTION, group, popts) end,
    function() return validate.request_body("CreateSignUrls", sign_urls) end,
  }
  local out = {}
  for i, fn in ipairs(fns) do
    assert(fn())
    out[i] = format("%.0f", 1e9 * B.per_call(fn, B.iterations_for(fn, seconds)))
  end
  print(table.concat(out, " "))
end

if arg[1] == "--child" then return child(tonumber(arg[2])) end

local base = arg[1] or "HEAD~1"
local ROUNDS, SECONDS = tonumber(arg[2]) or 7, tonumber(arg[3]) or 0.15
local CG_ROUNDS = tonumber(os.getenv("CG_ROUNDS") or "") or 5
local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  local ok = p:close()
  return ok and out or nil, out
end
local tmp = assert(sh("mktemp -d")):gsub("%s+$", "")
local function cleanup() os.execute("rm -rf '" .. tmp .. "'") end
if not sh(format("git archive %s | tar -x -C '%s' && make -s -C '%s' build/5.4/essbasic/core.so >/dev/null 2>&1",
  base, tmp, tmp)) then
  cleanup()
  error("cannot extract and build " .. base)
end
assert(sh("make -s build/5.4/essbasic/core.so >/dev/null 2>&1"), "work-tree build failed")

local trees = { { name = base, dir = tmp }, { name = "work tree", dir = "." } }
local function env(dir)
  return format("env LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s/build/5.4/?.so;;'", dir, dir, dir)
end
local ROWS = { "prepare (seed, 3 contracts)", "prepare (50 contracts x 5 signers)",
  "validate.request_body (CreateSignUrls, one-of)" }
local samples = { {}, {} }
for _ = 1, ROUNDS do
  for t, tree in ipairs(trees) do
    local line = assert(sh(format("%s lua5.4 %s/prepare_ab.lua --child %s", env(tree.dir), here, SECONDS)))
    local row = {}
    for n in line:gmatch("%d+") do row[#row + 1] = tonumber(n) end
    samples[t][#samples[t] + 1] = row
  end
end
local function median(t, col)
  local xs = {}
  for i, row in ipairs(t) do xs[i] = row[col] end
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) / 2] or (xs[n / 2] + xs[n / 2 + 1]) / 2
end
print(format("-- wall clock, ns per call, medians of %d alternated rounds: base %s vs the work tree", ROUNDS, base))
for col, label in ipairs(ROWS) do
  local a, b = median(samples[1], col), median(samples[2], col)
  print(format("%-48s %10.0f %10.0f   ratio %.3f", label, a, b, b / a))
end

if os.execute("command -v valgrind >/dev/null 2>&1") then
  local B = require("benchlib")
  local args = "seed:prepare:200 group50:prepare:20 seed:body:200 signurls:body:200"
  -- Lua seeds its string hashes from the clock and addresses, so counts move by a few percent between runs: rounds
  -- alternate the trees and the medians are printed
  local CG_ROWS = { { "prepare (seed)", 200 }, { "prepare (group50)", 20 }, { "validate.request_body (seed)", 200 },
    { "validate.request_body (CreateSignUrls)", 200 } }
  local counts = { {}, {} }
  for _ = 1, CG_ROUNDS do
    for t, tree in ipairs(trees) do
      -- the paths set by -e, not by env(1): callgrind would count env and not follow its exec
      local paths = format("package.path='%s/lua/?.lua;%s/lua/?/init.lua;'..package.path "
        .. "package.cpath='%s/build/5.4/?.so;'..package.cpath", tree.dir, tree.dir, tree.dir)
      counts[t][#counts[t] + 1] = assert(B.callgrind_windows(format('lua5.4 -e "%s" %s/prepare_count.lua %s', paths,
        here, args)))
    end
  end
  print(format("-- instructions per call under callgrind, medians of %d alternated runs", CG_ROUNDS))
  for i, row in ipairs(CG_ROWS) do
    local a, b = median(counts[1], i) / row[2], median(counts[2], i) / row[2]
    print(format("%-48s %10.0f %10.0f   ratio %.4f", row[1], a, b, b / a))
  end
end
cleanup()
