rockspec_format = "3.0"
package = "essbasic"
version = "scm-1"
source = {
  url = "git+file:///work/main",
  branch = "main",
}
description = {
  summary = "Tencent Cloud e-signature API for partner platforms (essbasic 2021-05-26) for Lua and OpenResty",
  detailed = [[
    Create contract groups from uploaded PDFs (ChannelCreateFlowGroupByFiles) and everything around them:
    uploads, signing links, status, cancelling, callbacks. Requests are validated against the official schema
    before they leave the machine, signed with TC3-HMAC-SHA256 in C (OpenSSL 3), sent with libcurl in plain Lua
    and with cosockets inside nginx. Includes an offline sandbox of the flow-group workflow.
  ]],
  license = "MIT",
  labels = { "tencentcloud", "esign", "openresty" },
}
-- No lua-cjson: Debian's (upstream 2.1.0) cannot send empty arrays as [], rounds int64 to 14 digits and decodes
-- integers as floats on Lua 5.4; the C core carries its own strict codec (docs/internals.md).
-- Not listed, needed only with Redis (rate_limit.redis, callback_store.redis): a Redis client, Debian's lua-redis
-- (redis-lua, on LuaSocket) in plain Lua, lua-resty-redis (Debian's lua-nginx-redis) inside nginx.
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ["essbasic.core"] = {
      sources = { "src/core.c", "src/crypto.c", "src/json.c", "src/http.c", "src/clock.c", "src/check.c" },
      libraries = { "curl", "crypto" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      defines = { "OPENSSL_API_COMPAT=30000", "OPENSSL_NO_DEPRECATED" },
    },
    ["essbasic"] = "lua/essbasic/init.lua",
    ["essbasic.api"] = "lua/essbasic/api.lua",
    ["essbasic.callback"] = "lua/essbasic/callback.lua",
    ["essbasic.callback_store"] = "lua/essbasic/callback_store.lua",
    ["essbasic.client"] = "lua/essbasic/client.lua",
    ["essbasic.credentials"] = "lua/essbasic/credentials.lua",
    ["essbasic.envelope"] = "lua/essbasic/envelope.lua",
    ["essbasic.errors"] = "lua/essbasic/errors.lua",
    ["essbasic.flow"] = "lua/essbasic/flow.lua",
    ["essbasic.json"] = "lua/essbasic/json.lua",
    ["essbasic.ratelimit"] = "lua/essbasic/ratelimit.lua",
    ["essbasic.ratelimit.redis"] = "lua/essbasic/ratelimit/redis.lua",
    ["essbasic.redis"] = "lua/essbasic/redis.lua",
    ["essbasic.retry"] = "lua/essbasic/retry.lua",
    ["essbasic.rules"] = "lua/essbasic/rules.lua",
    ["essbasic.runtime"] = "lua/essbasic/runtime.lua",
    ["essbasic.schema"] = "lua/essbasic/schema.lua",
    ["essbasic.signer"] = "lua/essbasic/signer.lua",
    ["essbasic.transport"] = "lua/essbasic/transport/init.lua",
    ["essbasic.transport.curl"] = "lua/essbasic/transport/curl.lua",
    ["essbasic.transport.ngx"] = "lua/essbasic/transport/ngx.lua",
    ["essbasic.validate"] = "lua/essbasic/validate.lua",
  },
}
