std = "max"
max_line_length = 120
unused_args = false
not_globals = { "string.len", "table.getn" }
files["spec/**/*.lua"] = { std = "+busted" }
-- Code that runs only inside nginx sees the ngx API (ngx.header, ngx.status, ... are assignable there).
files["sandbox/**/*.lua"] = { std = "+ngx_lua" }
files["examples/openresty/**/*.lua"] = { std = "+ngx_lua" }
files["lua/essbasic/transport/ngx.lua"] = { std = "+ngx_lua" }
exclude_files = { "lua/essbasic/schema.lua", "spec/data/**" }
