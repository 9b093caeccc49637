-- Signed documents: the contract as uploaded, with a visible mark for each completed signature at its component's
-- page and position. Runs inside the nginx worker, so it never blocks it on a child process.
--
-- Tools (Debian packages, chosen for being the reference implementations a user would check with anyway):
--   pdfinfo (poppler-utils) reads the page count and sizes of the uploaded PDF;
--   the marks themselves are a PDF written here (text and a frame per signature, one page per page of the
--   original, same sizes), so nothing has to edit the user's page content streams;
--   qpdf lays that PDF over the original (--overlay, page n on page n) and appends a signature page for marks
--   that have no page to go on (no component, a page number past the end, or a document without pages). qpdf
--   rewrites the whole file with fresh cross-references, so the result passes `qpdf --check` even when the
--   upload was a sloppy PDF that needed repair.
--
-- Why not io.popen: it blocks the nginx worker (every other request of the sandbox) for the tool's whole run, and
-- ngx.pipe is not usable with Debian's nginx (it needs OpenResty's socket-cloexec patch; it answers "pipe API is
-- not supported"). So each tool runs in the background from a shell (os.execute returns once the shell has
-- forked it, about a millisecond) writing its output and exit status to files, and the request polls for the
-- status file with ngx.sleep, which yields: other requests go on meanwhile.

local ngx = ngx
local format, concat, ipairs, pairs, tonumber, tostring, floor = string.format, table.concat, ipairs, pairs,
  tonumber, tostring, math.floor

local M = {}

M.TIMEOUT = 30 -- seconds a tool may run before the download answers an error

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local read_all = require("sandbox.store").read_file
M.read_file = read_all -- nil for a missing file

local function write_all(path, bytes)
  local f, why = io.open(path, "wb")
  if not f then return nil, why end
  f:write(bytes)
  f:close()
  return true
end

local seq = 0
-- Runs argv in the background; yields until it exits. Returns exit code (number), stdout, stderr.
function M.run(argv, work_dir)
  seq = seq + 1
  local base = format("%s/job-%d-%d", work_dir, ngx.worker.pid(), seq)
  local words = {}
  for i, a in ipairs(argv) do words[i] = shell_quote(a) end
  local rc_file = base .. ".rc"
  local script = format("%s >%s 2>%s </dev/null; echo $? >%s.tmp; mv %s.tmp %s", concat(words, " "),
    shell_quote(base .. ".out"), shell_quote(base .. ".err"), shell_quote(rc_file), shell_quote(rc_file),
    shell_quote(rc_file))
  os.execute("(" .. script .. ") >/dev/null 2>&1 &")
  local deadline = ngx.now() + M.TIMEOUT
  local pause = 0.002
  local rc
  while true do
    rc = read_all(rc_file)
    if rc and rc ~= "" then break end
    if ngx.now() > deadline then return nil, "", argv[1] .. " did not finish within " .. M.TIMEOUT .. " s" end
    ngx.sleep(pause)
    if pause < 0.05 then pause = pause * 2 end
  end
  local out, err = read_all(base .. ".out") or "", read_all(base .. ".err") or ""
  os.remove(rc_file)
  os.remove(base .. ".out")
  os.remove(base .. ".err")
  return tonumber(rc), out, err
end

-- Page sizes in points, from pdfinfo; {} for a PDF without pages (or one poppler cannot read).
function M.page_sizes(path, work_dir)
  local rc, out = M.run({ "pdfinfo", "-f", "1", "-l", "100000", path }, work_dir)
  local sizes = {}
  if rc ~= 0 then return sizes end
  for n, w, h in out:gmatch("Page%s+(%d+) size:%s+([%d.]+) x ([%d.]+) pts") do
    sizes[tonumber(n)] = { tonumber(w), tonumber(h) }
  end
  return sizes
end

-- UTF-8 → code points (LuaJIT has no utf8.codes).
local function codepoints(s)
  local cps, i = {}, 1
  while i <= #s do
    local c = s:byte(i)
    local n, cp = 1, c
    if c >= 0xF0 then n, cp = 4, c % 0x08 elseif c >= 0xE0 then n, cp = 3, c % 0x10
    elseif c >= 0xC0 then n, cp = 2, c % 0x20 end
    for k = 1, n - 1 do cp = cp * 64 + ((s:byte(i + k) or 0x80) % 0x40) end
    cps[#cps + 1] = cp
    i = i + n
  end
  return cps
end

M.codepoints = codepoints

-- Text for the Type0 font (UniGB-UCS2-H: two-byte UCS-2 codes); characters outside the BMP become '?'.
function M.ucs2_hex(s)
  local out = {}
  for _, cp in ipairs(codepoints(s)) do out[#out + 1] = format("%04X", cp <= 0xFFFF and cp or 0x3F) end
  return "<" .. concat(out) .. ">"
end

local function num(x)
  return format("%.2f", x)
end

-- One signature mark: a red frame, the signer's name (any script), mobile and time (ASCII).
local function mark_ops(m, page_h)
  local w, h = m.w or 120, m.h or 48
  local x = m.x or 0
  local y = page_h - (m.y or 0) - h -- the API's positions are from the page's top-left corner
  local ops = {
    format("q 0.8 0 0 RG 1 w %s %s %s %s re S Q", num(x), num(y), num(w), num(h)),
    format("BT 0.8 0 0 rg /F2 10 Tf %s %s Td %s Tj ET", num(x + 4), num(y + h - 14), M.ucs2_hex(m.name or "")),
  }
  local line2 = m.mobile and m.mobile ~= "" and m.mobile or ""
  ops[#ops + 1] = format("BT 0.8 0 0 rg /F1 8 Tf %s %s Td (%s) Tj ET", num(x + 4), num(y + h - 26),
    (("Signed " .. line2):gsub("[()\\]", "")))
  ops[#ops + 1] = format("BT 0.8 0 0 rg /F1 8 Tf %s %s Td (%s) Tj ET", num(x + 4), num(y + h - 38),
    os.date("!%Y-%m-%d %H:%M:%S UTC", floor(m.time or 0)))
  return concat(ops, "\n")
end

-- Identity ToUnicode map: the font's codes are UCS-2, so pdftotext reads the names without a language pack.
local TO_UNICODE = [[/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <FFFF>
endcodespacerange
1 beginbfrange
<0000> <FFFF> <0000>
endbfrange
endcmap
CMapName currentdict /CIDInit /ProcSet findresource pop end
end]]

-- A PDF with one page per entry of pages = { { w, h, ops = "content" } }, fonts F1 (Helvetica) and F2 (CJK).
function M.build(pages)
  local objects = {}
  local function add(body)
    objects[#objects + 1] = body
    return #objects
  end
  local catalog = add(false)
  local tree = add(false)
  local f1 = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
  local descriptor = add("<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] "
    .. "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>")
  local cid = add("<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry "
    .. "(Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor " .. descriptor .. " 0 R >>")
  local tounicode = add("<< /Length " .. #TO_UNICODE .. " >>\nstream\n" .. TO_UNICODE .. "\nendstream")
  local f2 = add("<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts ["
    .. cid .. " 0 R] /ToUnicode " .. tounicode .. " 0 R >>")
  local kids = {}
  for _, p in ipairs(pages) do
    local stream = p.ops or ""
    local content = add("<< /Length " .. #stream .. " >>\nstream\n" .. stream .. "\nendstream")
    kids[#kids + 1] = add(format("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Contents %d 0 R "
      .. "/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>", tree, num(p[1]), num(p[2]), content, f1, f2))
  end
  local refs = {}
  for i, k in ipairs(kids) do refs[i] = k .. " 0 R" end
  objects[catalog] = "<< /Type /Catalog /Pages " .. tree .. " 0 R >>"
  objects[tree] = "<< /Type /Pages /Kids [" .. concat(refs, " ") .. "] /Count " .. #kids .. " >>"
  local parts, offsets = { "%PDF-1.4\n%\226\227\207\211\n" }, {}
  local size = #parts[1]
  for i, body in ipairs(objects) do
    offsets[i] = size
    local obj = i .. " 0 obj\n" .. body .. "\nendobj\n"
    parts[#parts + 1] = obj
    size = size + #obj
  end
  local xref = { "xref\n0 " .. (#objects + 1) .. "\n0000000000 65535 f \n" }
  for i = 1, #objects do xref[#xref + 1] = format("%010d 00000 n \n", offsets[i]) end
  parts[#parts + 1] = concat(xref)
  parts[#parts + 1] = "trailer\n<< /Size " .. (#objects + 1) .. " /Root " .. catalog .. " 0 R >>\nstartxref\n"
    .. size .. "\n%%EOF\n"
  return concat(parts)
end

local A4 = { 595.28, 841.89 }

-- The marks laid out: one overlay page per original page, plus the signature page when a mark has no page.
local function layout(sizes, marks)
  local pages, appendix = {}, {}
  for i = 1, #sizes do pages[i] = { sizes[i][1], sizes[i][2], ops = {} } end
  for _, m in ipairs(marks) do
    local p = m.page and pages[m.page < 0 and #sizes + m.page + 1 or m.page] -- -1: the last page
    if p and m.x and m.y then
      p.ops[#p.ops + 1] = mark_ops(m, p[2])
    else
      appendix[#appendix + 1] = m
    end
  end
  local extra
  if #appendix > 0 then
    local ops = { format("BT /F1 14 Tf 60 %s Td (Signatures) Tj ET", num(A4[2] - 70)) }
    for i, m in ipairs(appendix) do
      local placed = {}
      for k, v in pairs(m) do placed[k] = v end
      placed.x, placed.y, placed.w, placed.h = 60, 90 + (i - 1) * 60, 240, 48
      ops[#ops + 1] = mark_ops(placed, A4[2])
    end
    extra = { A4[1], A4[2], ops = concat(ops, "\n") }
  end
  for _, p in ipairs(pages) do p.ops = concat(p.ops, "\n") end
  return pages, extra
end

local function unescape_xml(s)
  return (s:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&apos;", "'"):gsub("&amp;", "&"))
end

-- Words with their boxes (points from the page's top-left corner), from pdftotext -bbox.
function M.words(path, work_dir)
  local rc, out = M.run({ "pdftotext", "-q", "-bbox", path, "-" }, work_dir)
  local words, page = {}, 0
  if rc ~= 0 then return words end
  for line in out:gmatch("[^\n]+") do
    if line:find("<page ", 1, true) then
      page = page + 1
    else
      local x0, y0, x1, y1, text = line:match('<word xMin="([%d.]+)" yMin="([%d.]+)" xMax="([%d.]+)" '
        .. 'yMax="([%d.]+)">(.-)</word>')
      if x0 then
        words[#words + 1] = { page = page, x0 = tonumber(x0), y0 = tonumber(y0), x1 = tonumber(x1),
          y1 = tonumber(y1), text = unescape_xml(text) }
      end
    end
  end
  return words
end

local function squeeze(s) return (s:gsub("%s+", "")) end

-- Where a keyword (Component.ComponentId with GenerateMode KEYWORD) is: every occurrence, as the API's text
-- says ("PDF文件中每个出现关键字的位置…都会执行相应操作"), on KeywordPage only when given; "^word^" asks for the whole
-- word ("前后不能有其他字符"). A keyword may span several words of pdftotext's (a phrase with spaces, or text
-- split in runs): consecutive words of a page are read together, white space ignored. Returns a list of boxes
-- { page, x0, y0, x1, y1 } (empty when the keyword is not in the document).
local MAX_RUN = 16
function M.find_keyword(words, keyword, page)
  local whole = keyword:match("^%^(.*)%^$")
  local key = squeeze(whole or keyword)
  local hits = {}
  if key == "" then return hits end
  local i = 1
  while i <= #words do
    local first = words[i]
    local found
    if not page or first.page == page then
      local text, box = "", { page = first.page, x0 = first.x0, y0 = first.y0, x1 = first.x1, y1 = first.y1 }
      local lead = #squeeze(first.text)
      for j = i, math.min(#words, i + MAX_RUN - 1) do
        local w = words[j]
        if w.page ~= first.page then break end
        text = text .. squeeze(w.text)
        box.x0, box.y0 = math.min(box.x0, w.x0), math.min(box.y0, w.y0)
        box.x1, box.y1 = math.max(box.x1, w.x1), math.max(box.y1, w.y1)
        if whole then
          if text == key then found = j end
          if #text >= #key then break end
        else
          local at = text:find(key, 1, true)
          if at and at <= lead then found = j end
          if at or #text >= #key + lead then break end
        end
        if found then break end
      end
      if found then hits[#hits + 1] = box end
    end
    i = found and found + 1 or i + 1
  end
  return hits
end

-- A keyword mark placed by the box it belongs to, aligned by RelativeLocation (Middle by default: centre on
-- centre) and moved by OffsetX/OffsetY.
local function place_at(m, box)
  local w, h = m.w or 120, m.h or 48
  local x, y
  local rel = m.relative or "Middle"
  if rel == "Right" then x, y = box.x1, (box.y0 + box.y1 - h) / 2
  elseif rel == "Below" then x, y = (box.x0 + box.x1 - w) / 2, box.y1
  elseif rel == "LowerRight" then x, y = box.x1, box.y1
  elseif rel == "UpperRight" then x, y = box.x1, box.y0 - h
  else x, y = (box.x0 + box.x1 - w) / 2, (box.y0 + box.y1 - h) / 2 end
  m.page, m.x, m.y = box.page, x + (m.offset_x or 0), y + (m.offset_y or 0)
end

-- Writes out_path: source with the marks. marks = { { page, x, y, w, h, name, mobile, time }, ... } (page/x/y
-- optional). Returns true or nil, message. work_dir holds the temporary files.
function M.stamp(source, marks, out_path, work_dir)
  local sizes = M.page_sizes(source, work_dir)
  local words
  local placed = {}
  for _, m in ipairs(marks) do
    if m.keyword then -- one mark per occurrence; unfound (a document changed since): the signature page
      words = words or M.words(source, work_dir)
      local hits = M.find_keyword(words, m.keyword, m.page)
      m.page = nil
      if #hits == 0 then placed[#placed + 1] = m end
      for _, box in ipairs(hits) do
        local copy = {}
        for k, v in pairs(m) do copy[k] = v end
        place_at(copy, box)
        placed[#placed + 1] = copy
      end
    else
      placed[#placed + 1] = m
    end
  end
  marks = placed
  local pages, extra = layout(sizes, marks)
  local overlay_pages = {}
  for i, p in ipairs(pages) do overlay_pages[i] = p end
  if extra then overlay_pages[#overlay_pages + 1] = extra end
  local tmp = out_path .. ".part"
  local overlay = out_path .. ".marks.pdf"
  if #overlay_pages == 0 then overlay_pages[1] = { A4[1], A4[2], ops = "" } end
  local ok, why = write_all(overlay, M.build(overlay_pages))
  if not ok then return nil, "cannot write the marks: " .. tostring(why) end
  local n = #sizes
  -- A document without pages (or one poppler cannot read) starts from --empty: qpdf would otherwise carry its
  -- broken trailer over (qpdf 11.3 then writes no /Size), and there is no page of it to keep anyway.
  local argv = { "qpdf", "--warning-exit-0", n > 0 and source or "--empty" }
  if extra then -- the original's pages, then the signature page
    local sel = n > 0 and { "--pages", ".", "1-" .. n } or { "--pages" }
    for _, a in ipairs(sel) do argv[#argv + 1] = a end
    for _, a in ipairs({ overlay, tostring(#overlay_pages), "--" }) do argv[#argv + 1] = a end
  end
  if n > 0 then
    for _, a in ipairs({ "--overlay", overlay, "--from=1-" .. n, "--to=1-" .. n, "--" }) do argv[#argv + 1] = a end
  end
  argv[#argv + 1] = tmp
  local rc, _, err = M.run(argv, work_dir)
  os.remove(overlay)
  if rc ~= 0 then
    os.remove(tmp)
    return nil, "qpdf failed (" .. tostring(rc) .. "): " .. (err or ""):sub(1, 300)
  end
  local renamed, rerr = os.rename(tmp, out_path)
  if not renamed then return nil, tostring(rerr) end
  return true
end

return M
