rockspec_format = "3.0"
package = "essbasic"
version = "scm-1"
-- Where a user fetches the project: its public git repository. The owner "essbasic" is a placeholder for the
-- organisation that publishes it (replace it in source.url and homepage when the repository is published).
source = {
  url = "git+https://github.com/essbasic/essbasic.git",
  branch = "main",
}
description = {
  summary = "Tencent Cloud e-signature API for partner platforms (essbasic 2021-05-26) for Lua and OpenResty",
  detailed = [[
    Create contract groups from uploaded PDFs (ChannelCreateFlowGroupByFiles) and everything around them:
    uploads, signing links, status, cancelling, callbacks. Requests are validated against the official schema
    before they leave the machine, signed with TC3-HMAC-SHA256 in C (OpenSSL 3), sent with libcurl in plain Lua
    and with cosockets inside nginx. Includes an offline sandbox of the partner-platform lifecycle.
  ]],
  homepage = "https://github.com/essbasic/essbasic",
  license = "MIT",
  labels = { "tencentcloud", "esign", "openresty" },
}
-- Supported: Lua 5.4, 5.3, 5.1 and LuaJIT 2.1 (OpenResty's; LuaRocks sees it as 5.1). Lua 5.2 is refused when
-- the C core compiles (src/compat.h). A core built against PUC 5.1's headers loads in LuaJIT too.
-- No lua-cjson: Debian's (upstream 2.1.0) cannot send empty arrays as [], rounds int64 to 14 digits and decodes
-- integers as floats on Lua 5.4; the C core carries its own strict codec (docs/internals.md). Tables that cjson
-- decoded are taken as they are (cjson.null, OpenResty's array markers).
-- Not listed, needed only with Redis (rate_limit.redis, callback_store.redis): a Redis client, Debian's lua-redis
-- (redis-lua, on LuaSocket) in plain Lua, lua-resty-redis (Debian's lua-nginx-redis) inside nginx. Needed only
-- with callback_store.sqlite (and `essbasic callback serve`): lua-sql-sqlite3, as for `essbasic batch`'s journal.
dependencies = {
  "lua >= 5.1, < 5.5",
}
-- Declared without files to look for: LuaRocks then defines CURL_DIR/_INCDIR/_LIBDIR and OPENSSL_* (overridable on
-- the command line: Homebrew, a custom prefix) but does not search, because its header search ignores the
-- multiarch directory where Debian and Ubuntu keep curl/curl.h (/usr/include/x86_64-linux-gnu,
-- /usr/include/aarch64-linux-gnu). The compiler and the linker search there themselves, and when a header is
-- missing src/http.c and src/crypto.c stop with the name of the package to install.
external_dependencies = {
  CURL = {},
  OPENSSL = {},
}
build = {
  type = "builtin",
  modules = {
    ["essbasic.core"] = {
      sources = { "src/core.c", "src/crypto.c", "src/json.c", "src/http.c", "src/clock.c", "src/check.c", "src/files.c", "src/process.c" },
      libraries = { "curl", "crypto" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      defines = { "OPENSSL_API_COMPAT=30000", "OPENSSL_NO_DEPRECATED" },
    },
    ["essbasic"] = "lua/essbasic/init.lua",
    ["essbasic.api"] = "lua/essbasic/api.lua",
    ["essbasic.call"] = "lua/essbasic/call.lua",
    ["essbasic.callback"] = "lua/essbasic/callback.lua",
    ["essbasic.cli"] = "lua/essbasic/cli/init.lua",
    ["essbasic.cli.args"] = "lua/essbasic/cli/args.lua",
    ["essbasic.cli.batch"] = "lua/essbasic/cli/batch.lua",
    ["essbasic.cli.call"] = "lua/essbasic/cli/call.lua",
    ["essbasic.cli.callback"] = "lua/essbasic/cli/callback.lua",
    ["essbasic.cli.callback_serve"] = "lua/essbasic/cli/callback_serve.lua",
    ["essbasic.cli.reconcile"] = "lua/essbasic/cli/reconcile.lua",
    ["essbasic.cli.common"] = "lua/essbasic/cli/common.lua",
    ["essbasic.cli.config"] = "lua/essbasic/cli/config.lua",
    ["essbasic.cli.journal"] = "lua/essbasic/cli/journal.lua",
    ["essbasic.cli.progress"] = "lua/essbasic/cli/progress.lua",
    ["essbasic.cli.rows"] = "lua/essbasic/cli/rows.lua",
    ["essbasic.cli.sandbox"] = "lua/essbasic/cli/sandbox.lua",
    ["essbasic.callback_store"] = "lua/essbasic/callback_store.lua",
    ["essbasic.callback_store_sqlite"] = "lua/essbasic/callback_store_sqlite.lua",
    ["essbasic.client"] = "lua/essbasic/client.lua",
    ["essbasic.correlate"] = "lua/essbasic/correlate.lua",
    ["essbasic.credentials"] = "lua/essbasic/credentials.lua",
    ["essbasic.envelope"] = "lua/essbasic/envelope.lua",
    ["essbasic.errors"] = "lua/essbasic/errors.lua",
    ["essbasic.flow"] = "lua/essbasic/flow.lua",
    ["essbasic.json"] = "lua/essbasic/json.lua",
    ["essbasic.personal"] = "lua/essbasic/personal.lua",
    ["essbasic.url_credentials"] = "lua/essbasic/url_credentials.lua",
    ["essbasic.ratelimit"] = "lua/essbasic/ratelimit.lua",
    ["essbasic.ratelimit.redis"] = "lua/essbasic/ratelimit/redis.lua",
    ["essbasic.redis"] = "lua/essbasic/redis.lua",
    ["essbasic.resolve"] = "lua/essbasic/resolve.lua",
    ["essbasic.retry"] = "lua/essbasic/retry.lua",
    ["essbasic.rules"] = "lua/essbasic/rules.lua",
    ["essbasic.runtime"] = "lua/essbasic/runtime.lua",
    ["essbasic.scheduler"] = "lua/essbasic/scheduler.lua",
    ["essbasic.schema"] = "lua/essbasic/schema.lua",
    ["essbasic.signer"] = "lua/essbasic/signer.lua",
    ["essbasic.tables"] = "lua/essbasic/tables.lua",
    ["essbasic.transport"] = "lua/essbasic/transport/init.lua",
    ["essbasic.transport.contract"] = "lua/essbasic/transport/contract.lua",
    ["essbasic.transport.curl"] = "lua/essbasic/transport/curl.lua",
    ["essbasic.transport.ngx"] = "lua/essbasic/transport/ngx.lua",
    ["essbasic.transport.ngx.connect"] = "lua/essbasic/transport/ngx/connect.lua",
    ["essbasic.transport.ngx.http1"] = "lua/essbasic/transport/ngx/http1.lua",
    ["essbasic.transport.ngx.pool"] = "lua/essbasic/transport/ngx/pool.lua",
    ["essbasic.validate"] = "lua/essbasic/validate.lua",
    ["essbasic.validate.walk"] = "lua/essbasic/validate/walk.lua",
    ["essbasic.validate.checker"] = "lua/essbasic/validate/checker.lua",
    ["essbasic.version"] = "lua/essbasic/version.lua",
    -- The sandbox (essbasic sandbox start|stop|status|env|demo from an installed tree): its files keep their
    -- names under essbasic/, where essbasic.cli.sandbox puts them on the path as sandbox.* and tools.nginx.
    ["essbasic.sandbox.admin_guard"] = "sandbox/admin_guard.lua",
    ["essbasic.sandbox.auth"] = "sandbox/auth.lua",
    ["essbasic.sandbox.callbacks"] = "sandbox/callbacks.lua",
    ["essbasic.sandbox.config"] = "sandbox/config.lua",
    ["essbasic.sandbox.documents"] = "sandbox/documents.lua",
    ["essbasic.sandbox.envelope"] = "sandbox/envelope.lua",
    ["essbasic.sandbox.error_texts"] = "sandbox/error_texts.lua",
    ["essbasic.sandbox.faults"] = "sandbox/faults.lua",
    ["essbasic.sandbox.flows"] = "sandbox/flows.lua",
    ["essbasic.sandbox.launch"] = "sandbox/launch.lua",
    ["essbasic.sandbox.orgs"] = "sandbox/orgs.lua",
    ["essbasic.sandbox.pdf"] = "sandbox/pdf.lua",
    ["essbasic.sandbox.ratelimit"] = "sandbox/ratelimit.lua",
    ["essbasic.sandbox.server"] = "sandbox/server.lua",
    ["essbasic.sandbox.signer_page"] = "sandbox/signer_page.lua",
    ["essbasic.sandbox.store"] = "sandbox/store.lua",
    ["essbasic.sandbox.templates"] = "sandbox/templates.lua",
    ["essbasic.sandbox.workflow"] = "sandbox/workflow.lua",
    ["essbasic.tools.nginx"] = "tools/nginx.lua",
  },
  install = {
    bin = { essbasic = "bin/essbasic" },
    -- into the rock's folder (luarocks show essbasic): <tree>/lib/luarocks/rocks-<lua>/essbasic/<version>/conf/
    conf = { "LICENSE", "NOTICE" },
  },
  -- into the rock's folder too: the documentation, the examples (essbasic sandbox demo runs examples/demo.lua)
  -- and the LuaCATS annotations for lua-language-server (library/, README's "Editor support").
  copy_directories = { "docs", "examples", "library" },
}
-- `luarocks test` runs the whole suite as `make test` does, without installing packages: luacheck, then busted
-- under Lua 5.4 and LuaJIT against the freshly built core (it needs the test packages of the README).
test = {
  type = "command",
  command = "make --no-print-directory all && tools/run-tests",
}
