-- The client a command talks through, from the options every command shares and the environment:
--   endpoint       --endpoint, else the sandbox's (--sandbox), else ESSBASIC_ENDPOINT, else production
--   file endpoint  --file-endpoint, else the sandbox's, else ESSBASIC_FILE_ENDPOINT, else production
--   region         --region, else TENCENTCLOUD_REGION, else none
--   credentials    the sandbox's test keys with --sandbox; the profile file's [NAME] with --profile NAME;
--                  else the usual chain (TENCENTCLOUD_SECRET_ID/KEY, then ~/.tencentcloud/credentials [default])
--   --timeout S, --rate N (requests per second per action; 0 turns the client's limiter off); call and batch:
--   --no-validate (send requests as they are and let the API judge them)
-- --sandbox[=DIR] asks `sandbox/run env` of the source checkout for a running sandbox (its data folder DIR, else
-- ESSBASIC_SANDBOX_DATA, else the per-user default of sandbox/config.lua).

local common = require("essbasic.cli.common")
local args = require("essbasic.cli.args")

local EXIT, fail = common.EXIT, common.fail
local getenv = os.getenv

local M = {}

-- The options of every command.
M.OPTIONS = {
  profile = { value = true, arg = "NAME", help = "that section of the profile file" },
  endpoint = { value = true, arg = "URL", help = "the API's endpoint (ESSBASIC_ENDPOINT)" },
  ["file-endpoint"] = { value = true, arg = "URL", help = "the file endpoint (ESSBASIC_FILE_ENDPOINT)" },
  region = { value = true, arg = "R", help = "the region (TENCENTCLOUD_REGION)" },
  sandbox = { value = "optional", arg = "DIR", help = "a running local sandbox, with its test keys" },
  timeout = { value = true, arg = "SECONDS", help = "per request" },
  rate = { value = true, arg = "N", help = "requests per second per action (default 20; 0: no limit)" },
  help = { short = "h", help = "this help" },
}

local function nonempty(v)
  if v == nil or v == "" then return nil end
  return v
end

-- `export NAME='value'` lines (sandbox/launch.lua's client_env) → { NAME = value }.
function M.parse_exports(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local name, quoted = line:match("^export ([%w_]+)=(.*)$")
    if name then
      local value = quoted:match("^'(.*)'$")
      out[name] = value and value:gsub("'\\''", "'") or quoted
    end
  end
  return out
end

-- The running sandbox's endpoint and keys, from `essbasic sandbox env` (the checkout at root, or the installed rock).
function M.sandbox_env(root, dir)
  local cmd = require("essbasic.cli.sandbox").env_command(root, dir)
  if not cmd then
    fail(EXIT.credentials, "--sandbox needs the sandbox's files (a source checkout or the installed rock), "
      .. "or pass --endpoint and the keys yourself")
  end
  local p = io.popen(cmd .. " 2>&1")
  local text = p and p:read("*a") or ""
  if p then p:close() end
  local env = M.parse_exports(text)
  if not env.ESSBASIC_ENDPOINT then
    fail(EXIT.credentials, "no running sandbox" .. (type(dir) == "string" and (" with the data folder " .. dir) or "")
      .. " (start one with: essbasic sandbox start): " .. (text:gsub("%s+$", "")))
  end
  return env
end

-- The options of essbasic.new for opts (the parsed command line); ctx.root is the checkout, when there is one.
function M.client_options(opts, ctx)
  local o = {}
  local sb
  if opts.sandbox then sb = M.sandbox_env(ctx and ctx.root, opts.sandbox) end
  o.endpoint = nonempty(opts.endpoint) or (sb and sb.ESSBASIC_ENDPOINT) or nonempty(getenv("ESSBASIC_ENDPOINT"))
  o.file_endpoint = nonempty(opts["file-endpoint"]) or (sb and sb.ESSBASIC_FILE_ENDPOINT)
    or nonempty(getenv("ESSBASIC_FILE_ENDPOINT"))
  o.region = nonempty(opts.region) or nonempty(getenv("TENCENTCLOUD_REGION"))
  local credentials = require("essbasic.credentials")
  if sb then
    o.credentials = credentials.static{ secret_id = sb.TENCENTCLOUD_SECRET_ID, secret_key = sb.TENCENTCLOUD_SECRET_KEY }
  elseif opts.profile then
    o.credentials = credentials.profile{ profile = opts.profile }
  end
  if opts["no-validate"] then o.validate = false end
  local timeout, why = args.number(opts, "timeout", 0.001)
  if why then fail(EXIT.usage, why) end
  o.timeout = timeout
  local rate
  rate, why = args.number(opts, "rate", 0)
  if why then fail(EXIT.usage, why) end
  if rate == 0 then
    o.rate_limit = false
  elseif rate then
    o.rate_limit = { rate = rate }
  end
  return o
end

-- A client, or a usage failure naming the bad option (essbasic.new raises on malformed endpoints).
function M.client(opts, ctx)
  local o = M.client_options(opts, ctx)
  local ok, client = pcall(require("essbasic").new, o)
  if not ok then fail(EXIT.usage, (tostring(client):gsub("^[^:]*:%d+: ", ""))) end
  return client
end

return M
