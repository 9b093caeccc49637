-- essbasic callback serve --store run.db [--key KEY] [--token TOKEN] [--port N] [--listen ADDR] [--nginx PATH]
--
-- A callback receiver for a batch user without OpenResty: nginx (the Debian package with its Lua module, as the
-- sandbox runs on) in the foreground, one worker, answering every POST with essbasic.callback.handle and the
-- SQLite store (callback_store.sqlite) of --store: each message is checked (token: the signature; key: the
-- decryption), deduplicated by MsgId, and a flow message's CustomerData → FlowId, FlowGroupId recorded, which is
-- what client:resolve and `essbasic batch --callbacks` read. Ctrl-C (or SIGTERM) stops it.
--
-- Put it behind your TLS terminator (essbasic delivers to an https URL) and keep --listen on loopback unless the
-- terminator is on another machine. The key and token go to nginx through a file of a private directory (0700),
-- never on nginx's command line or in its configuration. nginx runs LuaJIT: the C core must be built for the
-- Lua 5.1 ABI (`make` builds build/5.1; a rock: `luarocks --lua-version=5.1 install ...`). ESSBASIC_NGINX_MODULES
-- (space-separated .so files) overrides the modules loaded (none for OpenResty); ESSBASIC_NGINX_LUA_PATH and
-- ESSBASIC_NGINX_LUA_CPATH the search paths nginx uses (by default this process's, for Lua 5.1).

local common = require("essbasic.cli.common")
local json = require("essbasic.json")

local EXIT, fail = common.EXIT, common.fail
local format, concat, gsub = string.format, table.concat, string.gsub

local M = {}

M.NGINX = "/usr/sbin/nginx"
M.MODULES = { "/usr/share/nginx/modules/ndk_http_module.so", "/usr/share/nginx/modules/ngx_http_lua_module.so" }

local exists = common.exists

local function modules()
  local env = os.getenv("ESSBASIC_NGINX_MODULES")
  local list = {}
  if env then
    for m in env:gmatch("%S+") do list[#list + 1] = m end
    return list
  end
  for _, m in ipairs(M.MODULES) do if exists(m) then list[#list + 1] = m end end
  return list
end

-- A search path of this process for nginx's LuaJIT: Lua 5.3/5.4 directories swapped for their 5.1 twins, and
-- nginx's own defaults after it (";;": lua-resty-core and the other modules the Lua module needs live there).
local function for_luajit(path)
  return (gsub(gsub(path, "/5%.[34]/", "/5.1/"), "lua5%.[34]", "lua5.1")) .. ";;"
end

local function conf(o)
  local lines = {
    "daemon off;", "master_process on;", "worker_processes 1;",
    "pid " .. o.prefix .. "/nginx.pid;", "error_log stderr warn;",
    -- as root, nginx's workers would run as nobody, who cannot write the caller's store
    o.root and "user root;" or "",
  }
  for _, m in ipairs(modules()) do lines[#lines + 1] = "load_module " .. m .. ";" end
  lines[#lines + 1] = "events { worker_connections 256; }"
  lines[#lines + 1] = "http {"
  lines[#lines + 1] = "  access_log off;"
  for _, t in ipairs({ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" }) do
    lines[#lines + 1] = format("  %s_temp_path %s/%s_temp;", t, o.prefix, t)
  end
  lines[#lines + 1] = "  client_max_body_size 1m;"
  lines[#lines + 1] = "  client_body_buffer_size 1m;"
  lines[#lines + 1] = format('  lua_package_path "%s";', os.getenv("ESSBASIC_NGINX_LUA_PATH")
    or for_luajit(package.path))
  lines[#lines + 1] = format('  lua_package_cpath "%s";', os.getenv("ESSBASIC_NGINX_LUA_CPATH")
    or for_luajit(package.cpath))
  lines[#lines + 1] = format('  init_by_lua_block { require("essbasic.cli.callback_serve").init(%q) }',
    o.prefix .. "/receiver.json")
  lines[#lines + 1] = '  init_worker_by_lua_block { require("essbasic.cli.callback_serve").init_worker() }'
  lines[#lines + 1] = "  server {"
  lines[#lines + 1] = format("    listen %s:%d;", o.listen, o.port)
  lines[#lines + 1] = '    location / { content_by_lua_block { require("essbasic.cli.callback_serve").handle() } }'
  lines[#lines + 1] = "  }"
  lines[#lines + 1] = "}"
  return concat(lines, "\n") .. "\n"
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

-- The command: opts from essbasic.cli.callback (key and token already read).
function M.run(opts, key, token)
  local store = opts.store
  if type(store) ~= "string" or store == "" then fail(EXIT.usage, "callback serve needs --store FILE (SQLite)") end
  if not token then
    fail(EXIT.usage, "callback serve needs the callback token (--token or ESSBASIC_CALLBACK_TOKEN): without it "
      .. "anyone could make it record flows")
  end
  local port = tonumber(opts.port)
  if not port or port ~= math.floor(port) or port < 1 or port > 65535 then
    fail(EXIT.usage, "callback serve needs --port N (1-65535)")
  end
  local nginx = opts.nginx or M.NGINX
  if opts.listen and not opts.listen:match("^[%w%.:%[%]%-]+$") then
    fail(EXIT.usage, "--listen takes an address (127.0.0.1, 0.0.0.0, [::1], a host name)")
  end
  -- The store is opened once here, so that a missing lua-sql-sqlite3 or an unwritable file is said at once.
  local ok, why = pcall(function() require("essbasic.callback_store").sqlite(absolute(store)):close() end)
  if not ok then fail(EXIT.failure, tostring(why)) end
  local p = io.popen("umask 077 && mktemp -d /tmp/essbasic-callback.XXXXXX")
  local prefix = p and p:read("*l")
  if p then p:close() end
  if not prefix or prefix == "" then fail(EXIT.failure, "cannot make a private directory for nginx") end
  local id = io.popen("id -u")
  local o = { prefix = prefix, listen = opts.listen or "127.0.0.1", port = port, root = id and id:read("*l") == "0" }
  if id then id:close() end
  local wrote = common.write_file(prefix .. "/receiver.json", json.encode({ key = key, token = token,
    store = absolute(store) }))
  local wrote_conf = wrote and common.write_file(prefix .. "/nginx.conf", conf(o))
  if not wrote_conf then
    common.execute("rm -rf " .. common.shell_quote(prefix))
    fail(EXIT.failure, "cannot write nginx's configuration into " .. prefix)
  end
  common.stdout("essbasic callback receiver on http://", o.listen, ":", tostring(port), "/ recording into ",
    absolute(store), " (Ctrl-C stops it)\n")
  -- The shell ignores Ctrl-C and SIGTERM (nginx sets its own handlers), so that it still removes the directory
  -- once nginx has stopped, even when the signal went to the whole process group, this process included.
  local qprefix = common.shell_quote(prefix)
  local status = common.execute(format("trap '' INT TERM; %s -p %s -c %s -e stderr; s=$?; rm -rf %s; exit $s",
    common.shell_quote(nginx), qprefix, common.shell_quote(prefix .. "/nginx.conf"), qprefix))
  if status == 130 or status == 143 or status == 0 then return EXIT.ok end
  common.stderr("essbasic: nginx exited with status ", tostring(status), "\n")
  return EXIT.failure
end

-- Inside nginx ------------------------------------------------------------------------------------------------

local receiver -- { key, token, store }

-- init_by_lua (the master, before the workers fork): the key and token, and the file that held them removed.
function M.init(path)
  local cfg = assert(json.decode(assert(common.read_file(path))))
  os.remove(path)
  receiver = { key = cfg.key, token = cfg.token, store_path = cfg.store }
end

-- init_worker_by_lua: each worker its own SQLite connection.
function M.init_worker()
  receiver.store = require("essbasic.callback_store").sqlite(receiver.store_path)
end

local function accept()
  return true -- the record is kept by the store (callback_store.process) before this runs
end

function M.handle()
  require("essbasic.callback").handle(receiver, accept)
end

return M
