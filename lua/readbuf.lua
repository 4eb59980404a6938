-- A socket's read buffer, kept in its record: bytes arrive with READY_READ
-- and reads are answered here, without crossing to Python. Run by the bridge
-- as chunk(native, M); sets M.readbuf.
--
-- Unread bytes are rec.chunks[rec.head .. rec.tail], the first consumed up
-- to rec.off; rec.rlen counts them. A chunk that arrives in an empty buffer
-- waits as rec.one instead, whole and alone (rec.rlen is then 0 or absent):
-- the usual case costs no table and at most one key of the record (an echo
-- connection's record stays within 8 slots), and read_all_string hands the
-- chunk over as it is. spread() moves it into the list when a second one
-- arrives or a partial read, a peek or a line search needs the list. Chunk indices only grow while bytes stay
-- unread, so a line search can remember where it stopped (rec.scan_i,
-- rec.scan_at) and look only at bytes that arrived since: can_read_line
-- costs what arrived, never a rescan of the whole buffer.
--
-- read_buffer_size: when the unread bytes reach it, Python is told to stop
-- reading the connection (native.hold_reading), and told again once reads
-- bring them under it.

local native, M = ...
local readbuf = {}
M.readbuf = readbuf

local concat, find, sub, byte, char, type, floor =
      table.concat, string.find, string.sub, string.byte, string.char, type, math.floor
local unpack = table.unpack or unpack

local function reset(rec)
  rec.one = nil
  local chunks = rec.chunks
  if chunks then
    for i = rec.head, rec.tail do chunks[i] = nil end
    rec.head, rec.tail, rec.off, rec.rlen, rec.scan_i = 1, 0, 0, 0, nil
  end
end
readbuf.reset = reset

--- Unread bytes.
local function length(rec)
  local one = rec.one
  if one then return #one end
  return rec.rlen or 0
end
readbuf.length = length

-- rec.one into the chunk list (which is empty whenever rec.one is set)
local function spread(rec)
  local chunks = rec.chunks
  if not chunks then
    chunks = {}
    rec.chunks = chunks
  end
  local one = rec.one
  chunks[1] = one
  rec.one, rec.head, rec.tail, rec.off, rec.rlen = nil, 1, 1, 0, #one
end

local function check_hold(rec)
  local limit = rec.rbs
  if limit and limit > 0 then
    local full = length(rec) >= limit
    if full ~= (rec.held == true) then
      rec.held = full or nil
      native.hold_reading(rec.id, full)
    end
  elseif rec.held then
    rec.held = nil
    native.hold_reading(rec.id, false)
  end
end
readbuf.check_hold = check_hold

function readbuf.append(rec, data)
  local one, rlen = rec.one, rec.rlen
  if not one and (rlen == nil or rlen == 0) then
    rec.one = data
  else
    if one then spread(rec) end
    local t = rec.tail + 1
    rec.chunks[t] = data
    rec.tail = t
    rec.rlen = rec.rlen + #data
  end
  if rec.rbs then check_hold(rec) end
end

-- The first n unread bytes (n <= rlen), without consuming them.
local function peek(rec, n)
  if n <= 0 then return "" end
  local chunks, h, off = rec.chunks, rec.head, rec.off
  local first = chunks[h]
  if #first - off >= n then
    if off == 0 and #first == n then return first end
    return sub(first, off + 1, off + n)
  end
  local parts, got, i = { sub(first, off + 1) }, #first - off, h
  while got < n do
    i = i + 1
    local c = chunks[i]
    if got + #c > n then c = sub(c, 1, n - got) end
    parts[#parts + 1] = c
    got = got + #c
  end
  return concat(parts)
end

-- Drop the first n unread bytes (n <= rlen).
local function consume(rec, n)
  local rlen = rec.rlen - n
  if rlen == 0 then
    reset(rec)
  else
    local chunks, h, off = rec.chunks, rec.head, rec.off + n
    while off >= #chunks[h] do
      off = off - #chunks[h]
      chunks[h] = nil
      h = h + 1
    end
    rec.head, rec.off, rec.rlen = h, off, rlen
    local si = rec.scan_i
    if si then
      if si < h or (si == h and rec.scan_at <= off) then
        rec.scan_i = nil
      else
        rec.scan_before = rec.scan_before - n
      end
    end
  end
  if rec.held then check_hold(rec) end
end

--- Up to n bytes (all when n is nil), consumed.
function readbuf.take(rec, n)
  local one = rec.one
  if one then
    if n == nil or n >= #one then  -- all of a single chunk: as it is
      rec.one = nil
      if rec.held then check_hold(rec) end
      return one
    end
    spread(rec)
  end
  local rlen = rec.rlen
  if not rlen or rlen == 0 then return "" end
  if n == nil or n > rlen then n = rlen end
  local s = peek(rec, n)
  consume(rec, n)
  return s
end

--- Up to n bytes (all when n is nil), left in place.
function readbuf.peek(rec, n)
  if rec.one then spread(rec) end
  local rlen = rec.rlen
  if not rlen or rlen == 0 then return "" end
  if n == nil or n > rlen then n = rlen end
  return peek(rec, n)
end

--- Bytes up to and including the first "\n", or nil when no line is complete.
function readbuf.line_length(rec)
  if rec.one then spread(rec) end
  local rlen = rec.rlen
  if not rlen or rlen == 0 then return nil end
  local chunks, h, tail = rec.chunks, rec.head, rec.tail
  -- resume where the last search stopped; `before` counts the unread bytes
  -- in front of chunk i, so the answer is a position in the unread bytes
  local i, at, before = rec.scan_i, rec.scan_at, rec.scan_before
  if not i then i, at, before = h, rec.off + 1, -rec.off end
  while i <= tail do
    local c = chunks[i]
    local e = find(c, "\n", at, true)
    if e then
      rec.scan_i, rec.scan_at, rec.scan_before = i, e, before
      return before + e
    end
    before = before + #c
    i, at = i + 1, 1
  end
  rec.scan_i, rec.scan_at, rec.scan_before = tail + 1, 1, before
  return nil
end

--- One line, or at most max bytes of it; everything when no line is complete.
function readbuf.take_line(rec, max)
  local n = readbuf.line_length(rec) or rec.rlen or 0
  if max and max < n then n = max end
  return readbuf.take(rec, n)
end

function readbuf.to_bytes(s)
  local t, n = {}, #s
  for i = 1, n, 4096 do
    local j = i + 4095
    if j > n then j = n end
    local part = { byte(s, i, j) }
    for k = 1, #part do t[i + k - 1] = part[k] end
  end
  return t
end

--- The string of a table of byte values, or nil and the index of a bad entry.
function readbuf.from_bytes(t)
  local n = rawlen and rawlen(t) or #t
  for i = 1, n do
    local v = t[i]
    if type(v) ~= "number" or v < 0 or v > 255 or floor(v) ~= v then return nil, i, v end
  end
  local parts = {}
  for i = 1, n, 4096 do
    local j = i + 4095
    if j > n then j = n end
    parts[#parts + 1] = char(unpack(t, i, j))
  end
  return concat(parts)
end

return readbuf
