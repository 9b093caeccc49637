-- Credentials in URLs (`scheme://user:password@host`, or a proxy written `user:password@host:port`) removed from
-- text that leaves the library: the one scrubber every error message goes through (errors.new calls it), and the
-- raise sites that quote a URL of the caller's (essbasic.new's endpoint, a Redis URL, the command line's --header).
-- libcurl quotes a malformed proxy URL whole, password included ("Unsupported proxy syntax in 'http://u:pw@h:99999'"),
-- and a URL that cannot be parsed may hold a space, a quote or a second @ in its password, so the rules err towards
-- removing too much:
--   1. after each "://", the text up to the next "/", "?", "#" or line end (at most 256 bytes) is the authority;
--      everything before its last "@" becomes "***";
--   2. a word (between blanks and quotes) without "://" whose part before the first "/" holds an "@" with a ":"
--      before it: everything before that last "@" becomes "***".
-- Both rules look at a bounded window per "://" or per word, so the time is linear in the text.

local find, sub, gsub = string.find, string.sub, string.gsub
local concat = table.concat

local M = {}

local WINDOW = 256
local HIDDEN = "***"

-- The last "@" in s, or nil.
local function last_at(s)
  local at, init = nil, 1
  while true do
    local i = find(s, "@", init, true)
    if not i then return at end
    at, init = i, i + 1
  end
end

-- Rule 1.
local function after_schemes(text)
  if not find(text, "://", 1, true) then return text end
  local parts, init, n = {}, 1, 0
  while true do
    local i = find(text, "://", init, true)
    if not i then break end
    local start = i + 3
    local window = sub(text, start, start + WINDOW - 1)
    local stop = find(window, "[/?#\r\n]")
    local authority = stop and sub(window, 1, stop - 1) or window
    local at = last_at(authority)
    n = n + 1
    if at then
      parts[n] = sub(text, init, start - 1) .. HIDDEN
      init = start + at - 1
    else
      parts[n] = sub(text, init, start - 1)
      init = start
    end
  end
  parts[n + 1] = sub(text, init)
  return concat(parts)
end

-- Rule 2, for one word.
local function schemeless(word)
  if not find(word, "@", 1, true) or find(word, "://", 1, true) then return nil end
  local slash = find(word, "/", 1, true)
  local authority = slash and sub(word, 1, slash - 1) or word
  local at = last_at(authority)
  if not at or not find(sub(authority, 1, at - 1), ":", 1, true) then return nil end
  return HIDDEN .. sub(word, at)
end

-- remove(text) → text without the credentials of any URL in it (text that is not a string is returned as is).
function M.remove(text)
  if type(text) ~= "string" or not find(text, "@", 1, true) then return text end
  text = after_schemes(text)
  return (gsub(text, "[^%s'\"<>`]+", schemeless))
end

return M
