-- The callback sender moved to tools/callback_sender.lua (the benchmarks use it and load nothing from spec/);
-- this name stays for the callback specs until they require tools.callback_sender themselves.
return require("tools.callback_sender")
