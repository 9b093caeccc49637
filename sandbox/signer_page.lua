-- The small HTML pages of the sandbox: the signer's page behind a SignUrl and the sub-company console behind
-- CreateConsoleLoginUrl.
--
-- The signer's page is what a person would sign on, on a phone: in Chinese (the API's own pages are; ?lang=en
-- switches to English), each contract of the group (or of a batch link) shown inline (its first page as an image,
-- with the PDF as it stands one tap away), the statuses in words, and the two decisions. Signing asks for a
-- confirmation first (a box to tick, checked again by the server); when it is not yet this signer's turn in an
-- ordered contract the page says so and whom it waits for, and a refused decision comes back as what it is, never
-- as "done". Elements carry ids, classes and data attributes for the browser test: .flow[data-flow,
-- data-flow-status, data-signer-status], .flow-status, .signer-status, a.document, img.preview, #sign, #agree,
-- #reject, #reason, #notice[data-kind], #not-your-turn, #lang.

local gsub, format, concat, ipairs, tostring = string.gsub, string.format, table.concat, ipairs, tostring

local M = {}

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
local function esc(s)
  return (gsub(tostring(s or ""), "[&<>\"']", ESCAPES))
end

local function uri(s)
  return (gsub(tostring(s or ""), "[^%w%-_.~]", function(c) return format("%%%02X", c:byte()) end))
end

-- The page's words, per language. Statuses follow the API's status names (FlowStatus, ApproveStatus).
local TEXT = {
  zh = {
    lang = "zh-CN", title = "合同签署", signing_as = "签署人：", switch = "English", switch_to = "en",
    contract = "合同", open_pdf = "查看完整 PDF", preview_alt = "合同第一页",
    flow_status = "合同状态：", your_status = "您的状态：",
    agree = "我已阅读以上全部合同，确认签署", sign = "签署全部合同", reject = "拒签",
    reason = "拒签原因", not_your_turn = "还未轮到您签署", waiting_for = "请等待 %s 先签署。",
    nothing_left = "没有需要您处理的合同。", preview = "发起方预览：此页面仅供查看，不能签署。",
    notice = {
      sign = "签署成功：您已签署全部待签合同。", reject = "已拒签。",
      turn = "未签署：还未轮到您签署。", agree = "未签署：请先勾选确认。",
      nothing = "没有需要您处理的合同。", invalid = "此签署链接无效。",
    },
    status = { INIT = "待签署", PART = "签署中", ALL = "已完成", REJECT = "已拒签", CANCEL = "已撤销",
      DEADLINE = "已过期", INVALID = "已失效", RELIEVED = "已解除", PENDING = "待签署", ACCEPT = "已签署",
      STOP = "已终止" },
    note = "essbasic 沙箱：不核验身份；PDF 上的签名是可见标记，不是数字签名。",
    console_note = "essbasic 沙箱控制台：不核验身份。", verify = "完成认证",
    link_invalid = "此签署链接无效或已过期", console_invalid = "此控制台链接无效或已过期",
  },
  en = {
    lang = "en", title = "Sign contracts", signing_as = "Signing as ", switch = "中文", switch_to = "zh",
    contract = "Contract", open_pdf = "Open the full PDF", preview_alt = "First page of the contract",
    flow_status = "Contract: ", your_status = "You: ",
    agree = "I have read all the contracts above and sign them", sign = "Sign all", reject = "Reject",
    reason = "Reason for rejecting", not_your_turn = "It is not your turn to sign yet",
    waiting_for = "Waiting for %s to sign first.", nothing_left = "Nothing is waiting for you.",
    preview = "Promoter's preview: this page is for reading only.",
    notice = {
      sign = "Signed: you have signed every contract that waited for you.", reject = "Rejected.",
      turn = "Not signed: it is not your turn yet.", agree = "Not signed: tick the confirmation first.",
      nothing = "Nothing is waiting for you.", invalid = "This signing link is not valid.",
    },
    status = { INIT = "waiting", PART = "partly signed", ALL = "signed by all", REJECT = "rejected",
      CANCEL = "cancelled", DEADLINE = "expired", INVALID = "invalid", RELIEVED = "relieved", PENDING = "to sign",
      ACCEPT = "signed", STOP = "stopped" },
    note = "essbasic sandbox: no identity check; the PDF shows a visible mark per signature, no digital signature.",
    console_note = "essbasic sandbox console: no identity check.", verify = "Complete verification",
    link_invalid = "This signing link is not valid or has expired",
    console_invalid = "This console link is not valid or has expired",
  },
}

function M.text(lang)
  return TEXT[lang == "en" and "en" or "zh"]
end

local STYLE = [[
*{box-sizing:border-box}
body{font-family:system-ui,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;font-size:16px;
line-height:1.5;margin:0 auto;max-width:44em;padding:1em;color:#222;overflow-wrap:anywhere}
h1{font-size:1.4em;margin:.2em 0}
.top{display:flex;justify-content:space-between;align-items:baseline;gap:1em;flex-wrap:wrap}
.flow{border:1px solid #ccc;border-radius:8px;padding:.8em;margin:1em 0}
.flow h2{font-size:1.1em;margin:0 0 .4em}
.statuses{display:flex;flex-wrap:wrap;gap:.3em 1.2em}
.preview{display:block;width:100%;max-width:100%;height:auto;border:1px solid #ddd;margin:.6em 0;background:#fafafa}
.turn{color:#a15c00}
#notice{padding:.6em .8em;border-radius:6px;background:#e8f4ea}
#notice[data-kind=turn],#notice[data-kind=agree],#notice[data-kind=nothing],#notice[data-kind=invalid]{
background:#fdecea}
form{margin:.8em 0}
button{font-size:1em;padding:.6em 1.2em;border-radius:6px;border:1px solid #888;background:#fff}
#sign{background:#1f6feb;color:#fff;border-color:#1f6feb}
#sign:disabled{background:#aaa;border-color:#aaa}
input[type=text]{font-size:1em;padding:.5em;width:100%;max-width:20em}
label{display:block;margin:.4em 0}
.note{color:#666;font-size:.9em}
]]

local function head(t, title)
  return concat({ '<!doctype html><html lang="', t.lang, '"><head><meta charset="utf-8"><title>', esc(title),
    '</title><meta name="viewport" content="width=device-width, initial-scale=1"><style>', STYLE,
    "</style></head><body>" })
end

local function status_word(t, s)
  return esc(t.status[s or ""] or s or "")
end

-- opts = { lang = "zh"|"en", done = "sign"|"reject"|nil, error = "turn"|"agree"|"nothing"|nil }
function M.render(token, summary, opts)
  opts = opts or {}
  local t = M.text(opts.lang)
  local q = "token=" .. uri(token)
  local cards, pending, blocked = {}, false, nil
  for _, f in ipairs(summary.Flows) do
    local doc = "/sandbox/sign/document?" .. q .. "&amp;flow=" .. uri(f.FlowId)
    local turn = ""
    if f.SignerStatus == "PENDING" and f.FlowStatus ~= "CANCEL" then pending = true end
    if f.MyTurn == false then
      blocked = blocked or f.WaitingFor
      turn = format('<p class="turn">%s: %s</p>', esc(t.not_your_turn), esc(format(t.waiting_for, f.WaitingFor)))
    end
    cards[#cards + 1] = concat({
      '<section class="flow" data-flow="', esc(f.FlowId), '" data-flow-status="', esc(f.FlowStatus),
      '" data-signer-status="', esc(f.SignerStatus), '"><h2>', esc(f.FlowName), "</h2>",
      '<div class="statuses"><span>', esc(t.flow_status), '<b class="flow-status">', status_word(t, f.FlowStatus),
      "</b></span>",
      f.SignerStatus and ('<span>' .. esc(t.your_status) .. '<b class="signer-status">'
        .. status_word(t, f.SignerStatus) .. "</b></span>") or "",
      "</div>", turn,
      '<img class="preview" alt="', esc(t.preview_alt), '" src="/sandbox/sign/preview?', q, "&amp;flow=",
      uri(f.FlowId), '">',
      '<a class="document" href="', doc, '">', esc(t.open_pdf), "</a></section>",
    })
  end
  local notice = ""
  local kind = opts.error or opts.done
  if kind and t.notice[kind] then
    notice = format('<p id="notice" data-kind="%s">%s</p>', esc(kind), esc(t.notice[kind]))
  end
  local actions
  if summary.Preview then
    actions = '<p class="note" id="preview">' .. esc(t.preview) .. "</p>"
  elseif not pending then
    actions = '<p id="nothing">' .. esc(t.nothing_left) .. "</p>"
  else
    local lang_field = format('<input type="hidden" name="lang" value="%s">', opts.lang == "en" and "en" or "zh")
    local turn_note = ""
    if blocked then
      turn_note = format('<p id="not-your-turn" class="turn"><b>%s</b>. %s</p>', esc(t.not_your_turn),
        esc(format(t.waiting_for, blocked)))
    end
    actions = concat({ turn_note,
      '<form method="post" action="/sandbox/sign"><input type="hidden" name="token" value="', esc(token), '">',
      lang_field, '<label><input type="checkbox" id="agree" name="agree" value="1" required', blocked and " disabled"
        or "", "> ", esc(t.agree), "</label>",
      '<button id="sign"', blocked and " disabled" or "", ">", esc(t.sign), "</button></form>",
      '<form method="post" action="/sandbox/reject"><input type="hidden" name="token" value="', esc(token), '">',
      lang_field, '<label>', esc(t.reason), ' <input type="text" id="reason" name="message"></label>',
      '<button id="reject">', esc(t.reject), "</button></form>" })
  end
  return concat({
    head(t, t.title .. " · " .. tostring(summary.FlowGroupName or "")),
    '<div class="top"><h1>', esc(summary.FlowGroupName), '</h1><a id="lang" href="/sandbox/sign?', q, "&amp;lang=",
    t.switch_to, '">', esc(t.switch), "</a></div>",
    "<p>", esc(t.signing_as), "<b>", esc(summary.Signer), "</b></p>", notice, concat(cards), actions,
    '<p class="note">', esc(t.note), "</p></body></html>",
  })
end

function M.not_found(why, lang)
  local t = M.text(lang)
  return head(t, t.title) .. "<h1>" .. esc(t.link_invalid) .. '</h1><p class="note">' .. esc(why or "")
    .. "</p></body></html>"
end

function M.console(token, org)
  local t = M.text("zh")
  local verify = ""
  if org.status ~= "VERIFIED" then
    verify = format([[<form method="post" action="/sandbox/console"><input type="hidden" name="token" value="%s">
<button id="verify">%s</button></form>]], esc(token), esc(t.verify))
  end
  return concat({
    head(t, "essbasic sandbox console"), "<h1>", esc(org.name or org.open_id), "</h1>",
    "<p>OrganizationOpenId ", esc(org.open_id), ", status <b id=\"org-status\">", esc(org.status), "</b>, ",
    org.active and "active" or "not active", "</p>", verify,
    '<p class="note">', esc(t.console_note), "</p></body></html>",
  })
end

function M.console_not_found()
  local t = M.text("zh")
  return head(t, t.console_invalid) .. "<h1>" .. esc(t.console_invalid) .. "</h1></body></html>"
end

return M
