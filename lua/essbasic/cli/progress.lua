-- Progress of a batch, on standard error:
--   bar    (a terminal) one line redrawn in place: a bar, done/total, rows per second, time left, failures
--   plain  (not a terminal) a line every `interval` seconds (5 by default) and at the end
--   json   one JSON object per line: start, row (each answer), progress (every interval), end
--   none   nothing (--quiet)
-- The counts are over the whole journal (rows done by earlier runs count as done); the rate and the time left
-- are this run's.

local core = require("essbasic.core")
local common = require("essbasic.cli.common")

local format, rep, floor, max, min = string.format, string.rep, math.floor, math.max, math.min

local M = {}

local Progress = {}
Progress.__index = Progress

local function duration(s)
  if not s or s ~= s or s == math.huge then return "?" end
  s = floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return format("%d:%02d", floor(s / 60), s % 60) end
  return format("%d:%02d:%02d", floor(s / 3600), floor(s / 60) % 60, s % 60)
end
M.duration = duration

local function terminal_width()
  local cols = tonumber(os.getenv("COLUMNS") or "")
  if cols and cols > 20 then return cols end
  local p = io.popen("tput cols 2>/dev/null")
  if p then
    cols = tonumber(p:read("*l") or "")
    p:close()
  end
  return (cols and cols > 20) and cols or 80
end

-- opts = { mode, total, to_send, counts = { done, failed, unknown }, interval, out (a file), name }
function M.new(opts)
  local self = setmetatable({
    mode = opts.mode or "plain",
    total = opts.total,
    to_send = opts.to_send,
    done = opts.counts.done, failed = opts.counts.failed, unknown = opts.counts.unknown,
    finished = 0, -- rows answered in this run
    interval = opts.interval or 5,
    out = opts.out or io.stderr,
    name = opts.name or "batch",
    started = core.monotonic(),
  }, Progress)
  self.last_print = self.started
  self.last_draw = 0
  if self.mode == "bar" then self.width = terminal_width() end
  return self
end

function Progress:write(s)
  self.out:write(s)
  self.out:flush()
end

function Progress:rate()
  local elapsed = core.monotonic() - self.started
  if elapsed <= 0 or self.finished == 0 then return nil end
  return self.finished / elapsed
end

function Progress:eta()
  local r = self:rate()
  if not r then return nil end
  return (self.to_send - self.finished) / r
end

function Progress:snapshot()
  return { total = self.total, done = self.done, failed = self.failed, unknown = self.unknown,
    sent_this_run = self.finished, to_send = self.to_send, rate = self:rate(), eta = self:eta(),
    elapsed = core.monotonic() - self.started }
end

local SNAPSHOT_ORDER = { order = { "event", "total", "done", "failed", "unknown", "to_send", "sent_this_run", "rate",
  "eta", "elapsed", "line", "state", "code", "message" } }

function Progress:json_event(event, extra)
  local t = self:snapshot()
  t.event = event
  for k, v in pairs(extra or {}) do t[k] = v end
  if t.rate then t.rate = floor(t.rate * 100 + 0.5) / 100 end
  if t.eta then t.eta = floor(t.eta * 10 + 0.5) / 10 end
  t.elapsed = floor(t.elapsed * 1000 + 0.5) / 1000
  self:write(common.to_json(t, SNAPSHOT_ORDER, true) .. "\n")
end

function Progress:plain_line()
  local r = self:rate()
  local line = format("essbasic %s: %d/%d done, %d failed, %d unknown", self.name, self.done, self.total, self.failed,
    self.unknown)
  if r then line = line .. format("; %.1f rows/s, about %s left", r, duration(self:eta())) end
  self:write(line .. "\n")
end

function Progress:draw()
  local r = self:rate()
  local right = format(" %d/%d  %s/s  ETA %s  %d failed  %d unknown", self.done, self.total,
    r and format("%.1f", r) or "-", duration(self:eta()), self.failed, self.unknown)
  local bar_width = max(10, min(40, self.width - #right - 4))
  local filled = self.total > 0 and floor(bar_width * self.done / self.total + 0.5) or bar_width
  local bad = self.total > 0 and floor(bar_width * (self.failed + self.unknown) / self.total + 0.5) or 0
  if filled + bad > bar_width then bad = bar_width - filled end
  local bar = rep("#", filled) .. rep("!", bad) .. rep(".", bar_width - filled - bad)
  self:write("\r[" .. bar .. "]" .. right .. "\27[K")
  self.last_draw = core.monotonic()
end

-- The start of a run: what there is to do. info = { recovered, skipped_unknown, skipped_failed }: rows an
-- earlier run left `sending` (now unknown), and rows this run does not send without --retry-unknown/-failed.
function Progress:start(info)
  info = info or {}
  if self.mode == "json" then
    self:json_event("start", info)
    return
  end
  if self.mode == "none" then return end
  if (info.recovered or 0) > 0 then
    self:write(format("essbasic %s: %d rows that an earlier run was sending when it stopped are now unknown "
      .. "(not sent again without --retry-unknown)\n", self.name, info.recovered))
  end
  local skipped = {}
  if (info.skipped_unknown or 0) > 0 then skipped[#skipped + 1] = info.skipped_unknown .. " unknown" end
  if (info.skipped_failed or 0) > 0 then skipped[#skipped + 1] = info.skipped_failed .. " failed" end
  self:write(format("essbasic %s: %d rows, %d done before, %d to send now%s\n", self.name, self.total, self.done,
    self.to_send, #skipped > 0 and (" (not sent: " .. table.concat(skipped, ", ") .. ")") or ""))
  if self.mode == "bar" then self:draw() end
end

-- Something a person should read (plain and bar: a line; json: a "notice" event; none: nothing unless
-- warning is set, which --quiet does not hide).
function Progress:notice(message, fields, warning)
  if self.mode == "json" then
    local t = { message = message }
    for k, v in pairs(fields or {}) do t[k] = v end
    self:json_event("notice", t)
  elseif self.mode ~= "none" or warning then
    if self.mode == "bar" then self:write("\r\27[K") end
    self:write("essbasic " .. self.name .. ": " .. message .. "\n")
    if self.mode == "bar" and not self.finished_drawing then self:draw() end
  end
end

-- A row answered in this run: its new state and the state it had before.
function Progress:row(line, state, before, code)
  self.finished = self.finished + 1
  if before ~= state then
    if self[before] then self[before] = self[before] - 1 end
    self[state] = self[state] + 1
  end
  if self.mode == "json" then
    self:json_event("row", { line = line, state = state, code = code })
  end
  self:tick()
end

function Progress:tick()
  local t = core.monotonic()
  if self.mode == "bar" then
    if t - self.last_draw >= 0.1 then self:draw() end
  elseif self.mode == "plain" or self.mode == "json" then
    if t - self.last_print >= self.interval then
      self.last_print = t
      if self.mode == "plain" then self:plain_line() else self:json_event("progress") end
    end
  end
end

-- The end of the run; counts (from the journal) replace the ones counted along the way, which cannot see rows
-- turned unknown by an interruption. extra goes into the json end event.
function Progress:finish(counts, extra)
  if counts then self.done, self.failed, self.unknown = counts.done, counts.failed, counts.unknown end
  self.finished_drawing = true
  if self.mode == "bar" then
    self:draw()
    self:write("\n")
  elseif self.mode == "plain" then
    self:plain_line()
  elseif self.mode == "json" then
    self:json_event("end", extra)
  end
end

return M
