-- How long personal.scrub (the masking of every error message, log line and tostring) takes on a 64 KB message:
-- an ordinary service message that quotes personal data in every form it catches, and the hostile shapes that
-- made the 0.2.0 scrub quadratic (a 40 KB message cost about 10 s), beside one linear pass over the same text
-- measured in the same run (core.json_encode of the string: what the debug log does to a body anyway). The scrub
-- makes no system call (pure string work), so wall-clock time is the figure. Medians of alternated rounds.
-- Not a test: nothing here fails on a figure (spec/personal_spec.lua checks the time is linear).
--   lua5.4 bench/personal_scrub.lua [rounds]     (from the repository root, after `make`; default 15)

local here = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require("benchlib")
local core = require("essbasic.core")
local personal = require("essbasic.personal")

local ROUNDS = tonumber(arg and arg[1]) or (os.getenv("BENCH_QUICK") == "1" and 5 or 15)
local SIZE = 65536

local function fill(unit)
  return (string.rep(unit, math.floor(SIZE / #unit) + 1)):sub(1, SIZE)
end

local MESSAGES = {
  { "ordinary message, every form", fill("签署人手机号13800138000（+86 138 0013 8000）与身份证号11010519491231002X、"
    .. "护照E12345678、通行证H1234567890、卡号6222 0212 3456 7890 123、邮箱zhangsan@example.com不一致; "
    .. "FlowId yDwFoUUckpsmiu7vUuO4bPRevHaxW8nm RequestId 0b6e4b1c-5c3a-4d2e-9f8a-123456789012. ") },
  { "letters only", fill("a") },
  { "a@ repeated", fill("a@") },
  { "'1 ' repeated (one run of groups)", fill("1 ") },
  { "grouped mobiles", fill("138 0013 8000, ") },
  { "'\"Name\": \"' repeated", fill('"Name": "') },
  { "CJK and @", fill("张三@") },
  { "passports", fill("E1234567 ") },
}

B.header("personal.scrub of a 64 KB message")
print(string.format("rounds: %d; a 64 KB message: %d bytes; personal.CAP = %d", ROUNDS, SIZE, personal.CAP))
for _, m in ipairs(MESSAGES) do
  local text = m[2]
  local med = B.alternate(ROUNDS, {
    { "baseline", function() local t = B.now(); core.json_encode(text); return B.now() - t end },
    { "scrub", function() local t = B.now(); personal.scrub(text); return B.now() - t end },
  })
  B.report("scrub: " .. m[1], med.scrub * 1000, "ms", string.format("%.0fx the baseline (%.2f ms)",
    med.scrub / med.baseline, med.baseline * 1000))
end
