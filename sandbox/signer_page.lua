-- The small HTML pages of the sandbox: the signer's page behind a SignUrl (what the signer would see on their
-- phone, reduced to the contracts, a link to each contract's PDF, their statuses and two buttons; the buttons post
-- forms to /sandbox/sign and /sandbox/reject) and the sub-company console behind CreateConsoleLoginUrl.
-- Elements carry ids and classes (#sign, #reject, .flow-status, .signer-status, .document) for browser tests.

local gsub, format, concat, ipairs, tostring = string.gsub, string.format, table.concat, ipairs, tostring

local M = {}

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function esc(s)
  return (gsub(tostring(s or ""), "[&<>\"']", ESCAPES))
end

local function uri(s)
  return (gsub(tostring(s or ""), "[^%w%-_.~]", function(c) return format("%%%02X", c:byte()) end))
end

local HEAD = [[<!doctype html><html><head><meta charset="utf-8"><title>essbasic sandbox signer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:44em;margin:2em auto}td,th{padding:.3em .8em;text-align:left}
.note{color:#666}</style></head><body>]]

function M.render(token, summary, done)
  local rows = {}
  local waiting = false
  for _, f in ipairs(summary.Flows) do
    rows[#rows + 1] = format('<tr data-flow="%s"><td>%s</td><td><a class="document" href="/sandbox/sign/document?'
      .. 'token=%s&amp;flow=%s">PDF</a></td><td class="flow-status">%s</td><td class="signer-status">%s</td></tr>',
      esc(f.FlowId), esc(f.FlowName), uri(token), uri(f.FlowId), esc(f.FlowStatus), esc(f.SignerStatus))
    waiting = waiting or f.SignerStatus == "PENDING"
  end
  local buttons = ""
  if waiting then
    buttons = format([[<form method="post" action="/sandbox/sign" style="display:inline">
<input type="hidden" name="token" value="%s"><button id="sign">Sign all</button></form>
<form method="post" action="/sandbox/reject" style="display:inline">
<input type="hidden" name="token" value="%s"><input id="reason" name="message" placeholder="reason">
<button id="reject">Reject</button></form>]], esc(token), esc(token))
  end
  return concat({
    HEAD,
    "<h1>", esc(summary.FlowGroupName), "</h1>",
    "<p>Signing as <b>", esc(summary.Signer), "</b>",
    done and (' (<span id="done">' .. esc(done) .. "</span> done)") or "", "</p>",
    "<table><tr><th>Contract</th><th>Document</th><th>Flow</th><th>You</th></tr>", concat(rows), "</table>",
    buttons,
    '<p class="note">essbasic sandbox: no identity check; the PDF shows a visible mark per signature, no digital '
      .. 'signature.</p></body></html>',
  })
end

function M.not_found(why)
  return HEAD .. "<h1>" .. esc(why or "This signing link is not valid") .. "</h1></body></html>"
end

function M.console(token, org)
  local verify = ""
  if org.status ~= "VERIFIED" then
    verify = format([[<form method="post" action="/sandbox/console"><input type="hidden" name="token" value="%s">
<button id="verify">Complete verification</button></form>]], esc(token))
  end
  return concat({
    HEAD, "<h1>", esc(org.name or org.open_id), "</h1>",
    "<p>OrganizationOpenId ", esc(org.open_id), ", status <b id=\"org-status\">", esc(org.status), "</b>, ",
    org.active and "active" or "not active", "</p>", verify,
    '<p class="note">essbasic sandbox console: no identity check.</p></body></html>',
  })
end

function M.console_not_found()
  return HEAD .. "<h1>This console link is not valid or has expired</h1></body></html>"
end

return M
