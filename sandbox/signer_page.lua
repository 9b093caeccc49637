-- The tiny HTML page behind a sandbox SignUrl: what the signer would see on their phone, reduced to the contracts,
-- their statuses and two buttons. The buttons post forms to /sandbox/sign and /sandbox/reject.

local gsub, format, concat, ipairs, tostring = string.gsub, string.format, table.concat, ipairs, tostring

local M = {}

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function esc(s)
  return (gsub(tostring(s or ""), "[&<>\"']", ESCAPES))
end

local HEAD = [[<!doctype html><html><head><meta charset="utf-8"><title>essbasic sandbox signer</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}td,th{padding:.3em .8em;text-align:left}
.note{color:#666}</style></head><body>]]

function M.render(token, summary, done)
  local rows = {}
  local waiting = false
  for _, f in ipairs(summary.Flows) do
    rows[#rows + 1] = format("<tr><td>%s</td><td>%s</td><td>%s</td></tr>", esc(f.FlowName), esc(f.FlowStatus),
      esc(f.SignerStatus))
    waiting = waiting or f.SignerStatus == "PENDING"
  end
  local buttons = ""
  if waiting then
    buttons = format([[<form method="post" action="/sandbox/sign" style="display:inline">
<input type="hidden" name="token" value="%s"><button>Sign all</button></form>
<form method="post" action="/sandbox/reject" style="display:inline">
<input type="hidden" name="token" value="%s"><input name="message" placeholder="reason">
<button>Reject</button></form>]], esc(token), esc(token))
  end
  return concat({
    HEAD,
    "<h1>", esc(summary.FlowGroupName), "</h1>",
    "<p>Signing as <b>", esc(summary.Signer), "</b>", done and (" (" .. esc(done) .. " done)") or "", "</p>",
    "<table><tr><th>Contract</th><th>Flow</th><th>You</th></tr>", concat(rows), "</table>",
    buttons,
    '<p class="note">essbasic sandbox: no identity check, no real signature.</p></body></html>',
  })
end

function M.not_found()
  return HEAD .. "<h1>This signing link is not valid</h1></body></html>"
end

return M
