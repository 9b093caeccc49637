-- Loaded by busted before every spec file: makes sure the specs never reach a real Tencent host.
for _, name in ipairs({ "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY" }) do
  if os.getenv(name) then
    io.stderr:write("note: ", name, " is set in the environment; specs pass credentials explicitly\n")
  end
end
