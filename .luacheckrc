std = "max"
max_line_length = 120
unused_args = false
not_globals = { "string.len", "table.getn" }
files["spec/**/*.lua"] = { std = "+busted" }
files["sandbox/**/*.lua"] = { read_globals = { "ngx" } }
files["examples/openresty/**/*.lua"] = { read_globals = { "ngx" } }
files["lua/essbasic/transport/ngx.lua"] = { read_globals = { "ngx" } }
exclude_files = { "lua/essbasic/schema.lua", "spec/data/**" }
