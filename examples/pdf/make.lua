-- Writes the three one-page PDFs the demo uploads (labour contract, confidentiality agreement, equipment receipt).
-- Each carries its title and the signing keywords of examples/hr_onboarding_group.lua as real text, in the
-- standard Chinese font STSong-Light (not embedded: every PDF reader supplies it), so keyword-placed fields can find
-- them. Run from the repository root: lua5.4 examples/pdf/make.lua   (the PDFs are committed; this remakes them)

local DOCS = {
  { file = "labour_contract.pdf", title = "Labour Contract", lines = { "劳动合同", "甲方（盖章）", "乙方（签字）" } },
  { file = "confidentiality_agreement.pdf", title = "Confidentiality Agreement",
    lines = { "保密协议", "甲方（盖章）", "乙方（签字）" } },
  { file = "equipment_receipt.pdf", title = "Equipment Receipt",
    lines = { "设备领用确认书", "发放方（盖章）", "领用人（签字）" } },
}

-- UTF-8 text as a PDF hex string of UCS-2 big-endian codes (the UniGB-UCS2-H encoding).
local function ucs2_hex(s)
  local out = {}
  for _, cp in utf8.codes(s) do out[#out + 1] = string.format("%04X", cp) end
  return "<" .. table.concat(out) .. ">"
end

local function pdf(doc)
  local content = { "BT /F1 18 Tf 72 770 Td (" .. doc.title .. ") Tj ET" }
  local y = 720
  for i, line in ipairs(doc.lines) do
    content[#content + 1] = string.format("BT /F2 %d Tf 72 %d Td %s Tj ET", i == 1 and 16 or 12, y, ucs2_hex(line))
    y = y - (i == 1 and 60 or 160)
  end
  local stream = table.concat(content, "\n")
  local objects = {
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
      .. "/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>",
    "<< /Length " .. #stream .. " >>\nstream\n" .. stream .. "\nendstream",
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [7 0 R] >>",
    "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
      .. "/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 8 0 R >>",
    "<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] /ItalicAngle 0 "
      .. "/Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>",
  }
  local parts, offsets = { "%PDF-1.4\n%\226\227\207\211\n" }, {}
  local size = #parts[1]
  for i, body in ipairs(objects) do
    offsets[i] = size
    local obj = i .. " 0 obj\n" .. body .. "\nendobj\n"
    parts[#parts + 1] = obj
    size = size + #obj
  end
  local xref = { "xref\n0 " .. (#objects + 1) .. "\n0000000000 65535 f \n" }
  for i = 1, #objects do xref[#xref + 1] = string.format("%010d 00000 n \n", offsets[i]) end
  parts[#parts + 1] = table.concat(xref)
  parts[#parts + 1] = "trailer\n<< /Size " .. (#objects + 1) .. " /Root 1 0 R >>\nstartxref\n" .. size .. "\n%%EOF\n"
  return table.concat(parts)
end

local dir = (arg and arg[0] or ""):match("^(.*)/[^/]+$") or "."
for _, doc in ipairs(DOCS) do
  local f = assert(io.open(dir .. "/" .. doc.file, "wb"))
  f:write(pdf(doc))
  f:close()
  print("wrote " .. dir .. "/" .. doc.file)
end
