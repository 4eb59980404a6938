-- The default formatters: how luassert shows a value in a failure message
-- ("(number) 1", "(string) 'x'", tables one key a line, the path to a
-- difference marked with "*"), and luassert.formatters.binarystring.

local debug_lib, require_module = ...
local assert = require_module("assert")
local match = require_module("match")
local util = require_module("util")

local type, tostring, pairs, next, pcall, format, rep, floor, sort, concat, insert =
      type, tostring, pairs, next, pcall, string.format, string.rep, math.floor, table.sort,
      table.concat, table.insert
local getmetatable, setmetatable = getmetatable, setmetatable
local getinfo = debug_lib and debug_lib.getinfo
local math_type = math.type

local M = {}

-- tostring with numbers in full precision (floats keep a ".0").
local function number_text(v)
  if type(v) ~= "number" then return tostring(v) end
  if v ~= v then return "NaN" end
  if v == 1 / 0 then return "Inf" end
  if v == -1 / 0 then return "-Inf" end
  local text = format("%.20g", v)
  if math_type and math_type(v) == "float" and not text:find("[%.,]") then
    text = text:gsub("%d+", "%0.0", 1)
  end
  return text
end
M.tostr = number_text

local function fmt_string(v) if type(v) == "string" then return format("(string) '%s'", v) end end
local function fmt_number(v) if type(v) == "number" then return "(number) " .. number_text(v) end end
local function fmt_boolean(v) if type(v) == "boolean" then return "(boolean) " .. tostring(v) end end
local function fmt_nil(v) if v == nil then return "(nil)" end end

local priorities = { number = 1, boolean = 2, string = 3, table = 4, ["function"] = 5,
                     userdata = 6, thread = 7 }

local function sorted_keys(t)
  local keys, count, length = {}, 0, #t
  for k in pairs(t) do count = count + 1; keys[count] = k end
  local function rank(k)
    if type(k) == "number" and k >= 1 and k <= length and floor(k) == k then return 0 end
    return priorities[type(k)] or 8
  end
  sort(keys, function(a, b)
    local ra, rb = rank(a), rank(b)
    if ra ~= rb then return ra < rb end
    local ta = type(a)
    if ta == "string" or ta == "number" then return a < b end
    if ta == "boolean" then return a end
    return false
  end)
  return keys, count
end

-- ANSI colors by name, as luassert's TableErrorHighlightColor takes them
-- ("red", "bright.red", "none").
local ANSI = { reset = 0, clear = 0, bright = 1, dim = 2, underscore = 4, blink = 5,
               reverse = 7, hidden = 8, black = 30, red = 31, green = 32, yellow = 33,
               blue = 34, magenta = 35, cyan = 36, white = 37, onblack = 40, onred = 41,
               ongreen = 42, onyellow = 43, onblue = 44, onmagenta = 45, oncyan = 46,
               onwhite = 47 }

local function colored(color, text)
  if text == "" or color == "none" or color == nil then return text end
  for token in tostring(color):gmatch("[^%.]+") do
    if ANSI[token] then text = "\27[" .. ANSI[token] .. "m" .. text .. "\27[0m" end
  end
  return text
end

local function fmt_table(v, extra)
  if type(v) ~= "table" then return end
  local depth = assert:get_parameter("TableFormatLevel")
  local show_recursion = assert:get_parameter("TableFormatShowRecursion")
  local mark = assert:get_parameter("TableErrorHighlightCharacter") or ""
  local color = assert:get_parameter("TableErrorHighlightColor") or "none"
  local crumbs = extra and extra.crumbs or {}
  local active = {}
  local header
  local mt = getmetatable(v)
  if mt == nil then
    header = "(" .. tostring(v) .. ") "
  elseif not pcall(setmetatable, v, mt) then
    header = "(table) "
  else
    setmetatable(v, nil)
    header = "(" .. tostring(v) .. ") "
    setmetatable(v, mt)
  end
  local function show(t, level, on_path)
    if show_recursion and active[t] and active[t] > 0 then return "{ ... recursive }" end
    if next(t) == nil then return "{ }" end
    if level > depth and depth >= 0 then return "{ ... more }" end
    local parts = { "{" }
    local keys, count = sorted_keys(t)
    active[t] = (active[t] or 0) + 1
    local crumb = crumbs[#crumbs - level + 1]
    for i = 1, count do
      local k = keys[i]
      local value = t[k]
      local marked = on_path and k == crumb
      if type(value) == "table" then value = show(value, level + 1, marked)
      elseif type(value) == "string" then value = "'" .. value .. "'" end
      local ch = marked and mark or ""
      parts[#parts + 1] = format("\n%s%s[%s] = %s", rep(" ", level * 2 - #ch), colored(color, ch),
                                 number_text(k), number_text(value))
    end
    active[t] = active[t] - 1
    return concat(parts) .. " }"
  end
  return header .. show(v, 1, true)
end

local function fmt_function(v)
  if type(v) == "function" then
    local info = getinfo and getinfo(v) or {}
    return format("%s @ line %s in %s", tostring(v), tostring(info.linedefined),
                  tostring(info.source))
  end
end

local function fmt_userdata(v) if type(v) == "userdata" then return format("(userdata) '%s'", tostring(v)) end end
local function fmt_thread(v) if type(v) == "thread" then return format("(thread) '%s'", tostring(v)) end end

local function formatted_list(list)
  local parts = {}
  for i = 1, list.n do parts[#parts + 1] = assert:format({ list[i], n = 1 })[1] end
  return concat(parts, ", ")
end

local function fmt_matcher(v)
  if not match.is_matcher(v) then return end
  if rawequal(v, match._) then return "(matcher) _ *anything*" end
  return format("(matcher) %s%s(%s)", v.mod and "is." or "no.", tostring(v.name),
                formatted_list(v.arguments))
end

local function fmt_arglist(v)
  if not util.is_arglist(v) then return end
  return "(values list) (" .. formatted_list(v) .. ")"
end

for _, fmt in ipairs({ fmt_string, fmt_number, fmt_boolean, fmt_nil, fmt_table, fmt_function,
                       fmt_userdata, fmt_thread, fmt_matcher, fmt_arglist }) do
  assert:add_formatter(fmt)
end
assert:set_parameter("TableFormatLevel", 3)
assert:set_parameter("TableFormatShowRecursion", false)
assert:set_parameter("TableErrorHighlightCharacter", "*")
assert:set_parameter("TableErrorHighlightColor", "none")

-- luassert.formatters.binarystring: a hex dump, 16 bytes a line.
function M.binarystring(s)
  if type(s) ~= "string" then return nil end
  local lines = { "Binary string length; " .. #s .. " bytes\n" }
  for start = 1, #s, 16 do
    local hex, chars = {}, {}
    for i = start, math.min(start + 15, #s) do
      local byte = s:byte(i)
      hex[#hex + 1] = format("%2x ", byte)
      chars[#chars + 1] = byte < 32 and "." or string.char(byte)
    end
    local h = concat(hex) .. rep(" ", 48 - #hex * 3)
    local c = concat(chars) .. rep(" ", 16 - #chars)
    lines[#lines + 1] = h:sub(1, 24) .. "  " .. h:sub(25) .. " " .. c:sub(1, 8) .. " " .. c:sub(9) .. "\n"
  end
  return concat(lines)
end

return M
