"""The differences between luanet and Qt that are known, each with its
reason: "bug:" (to fix) or "differs:" (luanet's contract, API.md, differs
from Qt on purpose, or a Qt quirk not worth copying). Used by
tests/test_qt_diff.py (xfail strict per scenario) and by
`fuzz/qtdiff.py --skip-known` (known classes are counted, not shrunk).
"""

SYNC_LOOKUP = ("differs: Qt looks an IP literal (or a cached name) up inside connectToHost(): "
               "state_changed 1 and 2 and host_found run before the call returns; luanet looks up "
               "from the loop, so what close()/abort() right after connect() runs comes first")
APPEND_WRITES = ("differs: API.md says APPEND_MODE implies writing (Qt's QIODevice rule); Qt 6's "
                 "QTcpSocket opened with Append but without WriteOnly refuses to write")
ABORT_DROPS_POSTED = ("differs: abort() right after connect()/close(), before the loop runs, drops the "
                      "state_changed(HOST_LOOKUP) (and a busy connect()'s OPERATION_ERROR) already "
                      "due, where Qt has emitted them inside those calls: what keeps handlers that "
                      "reconnect and abort in a cycle from doubling their events (README)")
ABORT_CONNECT_NO_DISCONNECTED = (
    "differs: abort() of a connected socket then connect() in the same turn: Qt has run "
    "disconnected inside abort(); luanet drops it (API.md: nothing of an ended connection after "
    "a new connect())")
WRITE_BEFORE_CLOSE_NOTICED = (
    "differs: luanet hands written bytes to the kernel inside write(), Qt from its loop: bytes "
    "written just before an abort() (in the same handler) or before a peer's close is noticed "
    "reach the peer in luanet and not in Qt (API.md: what the script wrote is still sent after a "
    "remote close; abort() discards what is unsent, and these were sent)")

DISCONNECT_SYNC = ("differs: disconnect()/close() with nothing left to send end the connection inside "
                   "the call, as in Qt, but its disconnected is delivered from the loop: a connect() "
                   "right after drops it (API.md: nothing of an ended connection after a new "
                   "connect()); Qt has run it inside disconnect()")
REFUSED_WITH_WRITES = ("differs: a refused connect() with writes pending: Qt emits errorOccurred twice "
                       "(a Qt quirk); luanet reports the refusal once (both close the device)")
RESET_CLOSES_DEVICE = (
    "differs: a peer reset noticed by a failed send: Qt closes the device at once (about_to_close, no "
    "CLOSING state, unread bytes dropped); luanet reports it like a remote close (CLOSING, then "
    "UNCONNECTED; unread bytes stay readable until close(), API.md)")
QT_STALE_ERROR = ("differs (Qt bug): after a refused connect, a write() during the next connect's "
                  "lookup makes Qt fail that attempt at once with the old ConnectionRefused error; "
                  "luanet connects and sends")

# Scenarios whose difference shows only when Qt's own timing allows (its
# stale-error quirk needs its lookup to finish before the write): an XPASS
# there says nothing about luanet, so their xfail is not strict.
TIMING_DEPENDENT = frozenset({"write-while-looking-up-after-refused"})

# scenario -> reason its difference is still there
KNOWN = {
    "write-then-close-while-connecting": SYNC_LOOKUP,
    "abort-while-connecting": SYNC_LOOKUP,
    "abort-while-looking-up-by-name": ABORT_DROPS_POSTED,
    "reconnect-after-abort-with-old-unread-bytes": ABORT_CONNECT_NO_DISCONNECTED,
    "bytes-arriving-while-queued": ("differs: ready_read_handler runs after next_pending_connection() "
                                    "for bytes that were already readable when it returned (Qt emitted "
                                    "readyRead before anyone could listen), so a handler set right after "
                                    "taking the socket hears of them (README)"),
    "remote-close-while-queued": ("differs: API.md says next_pending_connection() gives a socket in "
                                  "CONNECTED_STATE, then the bytes and the close are reported in order; "
                                  "Qt hands out one the peer closed while queued already UNCONNECTED, "
                                  "with no events"),
    "write-before-remote-half-close-noticed": WRITE_BEFORE_CLOSE_NOTICED,
    "connect-right-after-disconnect": DISCONNECT_SYNC,
    "refused-with-pending-write": REFUSED_WITH_WRITES,
    "connect-right-after-close": DISCONNECT_SYNC,
    "data-then-reset-then-write": RESET_CLOSES_DEVICE,
    "write-disconnect-abort": WRITE_BEFORE_CLOSE_NOTICED,
    "write-while-looking-up-after-refused": QT_STALE_ERROR,
}
for _m in (4, 5, 12, 13):
    KNOWN["connect-open-mode-%d" % _m] = APPEND_WRITES

# Divergence classes of the random run (qtdiff.diff_classes) that are one of
# the known differences above: (substrings that all appear in the class, reason).
# The patterns leave out the "events after X:" context, which only says where
# in the sequence the difference showed.
KNOWN_CLASSES = [
    (("events after start: qt [state=1",), ABORT_DROPS_POSTED),
    (("qt [state=1", "luanet []"), ABORT_DROPS_POSTED),
    (("qt [error=19", "luanet []"), ABORT_DROPS_POSTED),
    (("qt [disconnected], luanet []",), ABORT_CONNECT_NO_DISCONNECTED),
    (("qt [], luanet [bytes_written]",), WRITE_BEFORE_CLOSE_NOTICED),
    (("qt [about_to_close state=5], luanet []",), ABORT_DROPS_POSTED),
    (("qt [state=1], luanet [state=0]",), ABORT_DROPS_POSTED),
    (("qt [], luanet [error=19",), DISCONNECT_SYNC),
    (("qt [], luanet [about_to_close]",), DISCONNECT_SYNC),
    (("qt [about_to_close], luanet []",), DISCONNECT_SYNC),
    (("after disconnected: qt [state=1",), DISCONNECT_SYNC),
    (("final error: qt 0, luanet 19",), DISCONNECT_SYNC),
    (("after error=0: qt [error=0",), REFUSED_WITH_WRITES),
    (("after error=0: qt [about_to_close]",), REFUSED_WITH_WRITES),
    (("qt [bytes_written], luanet [bytes_written]",), WRITE_BEFORE_CLOSE_NOTICED),
    (("peer bytes differ",), WRITE_BEFORE_CLOSE_NOTICED),
    # the bytes went to the kernel inside write(), so a disconnect() right
    # after had nothing left to send and ended the connection at once: an
    # abort() after it closes only the device
    (("qt [state=5 about_to_close state=0 disconnected]", "luanet [state=5 bytes_written"),
     WRITE_BEFORE_CLOSE_NOTICED),
    (("qt [state=5 about_to_close state=0 disconnected]",
      "luanet [state=5 state=0 disconnected about_to_close]"), WRITE_BEFORE_CLOSE_NOTICED),
    # ...and a connect() right after that close() works in luanet, where Qt,
    # still sending, refuses it with OPERATION_ERROR
    (("qt [error=19", "luanet [state="), WRITE_BEFORE_CLOSE_NOTICED),
    # (the same class also comes from Qt's stale refusal, QT_STALE_ERROR)
    (("final state: qt 0, luanet 3",), WRITE_BEFORE_CLOSE_NOTICED),
    (("final state: qt 3, luanet 0",), DISCONNECT_SYNC),
    (("result: qt write=1, luanet write=-1",), DISCONNECT_SYNC),
    (("final avail: qt", "luanet 0"), DISCONNECT_SYNC),
    (("luanet [state=2 host_found state=0]",), REFUSED_WITH_WRITES),
    (("qt [state=5], luanet []",), ABORT_DROPS_POSTED),
    (("qt [disconnected state=1",), ABORT_DROPS_POSTED),
    (("qt [about_to_close], luanet [state=5]",), RESET_CLOSES_DEVICE),
    (("qt [state=5 error=19], luanet []",), ABORT_DROPS_POSTED),
    (("qt [state=5], luanet [about_to_close]",), DISCONNECT_SYNC),
    (("result: qt write=10, luanet write=-1",), DISCONNECT_SYNC),
    (("qt [state=5 state=0 disconnected state=1], luanet []",), DISCONNECT_SYNC),
    (("final error: qt -1, luanet 19",), DISCONNECT_SYNC),
    (("after state=1: qt [error=0",), QT_STALE_ERROR),
    (("qt [error=0]",), QT_STALE_ERROR),
    (("qt [state=0], luanet []",), QT_STALE_ERROR),
    (("final error: qt 0, luanet 1",), QT_STALE_ERROR),
    (("qt [about_to_close state=0], luanet []",), QT_STALE_ERROR),
    # the long run of 11:15 (tree of 11:15), each checked by hand against its minimal sequence
    (("qt [error=0 about_to_close]",), QT_STALE_ERROR),
    (("qt [], luanet [disconnected]",), QT_STALE_ERROR),
    (("final avail: qt 0, luanet",), RESET_CLOSES_DEVICE),
    (("qt [about_to_close state=5 error=19], luanet []",), ABORT_DROPS_POSTED),
    (("qt [error=1 about_to_close], luanet [bytes_written]",), WRITE_BEFORE_CLOSE_NOTICED),
    (("qt [], luanet [error=1 about_to_close]",), WRITE_BEFORE_CLOSE_NOTICED),
    (("final error: qt 19, luanet 1",), WRITE_BEFORE_CLOSE_NOTICED),
    (("qt [state=0 disconnected state=1",), DISCONNECT_SYNC),
    (("qt [state=0 error=0 state=1 state=2 host_found], luanet []",), DISCONNECT_SYNC),
    (("result: qt read=0, luanet read=",), DISCONNECT_SYNC),
    (("qt [error=19 state=5], luanet [about_to_close]",), ABORT_DROPS_POSTED),
]


def qt_stale_error(qt_events) -> bool:
    """Qt's stale-error bug (QT_STALE_ERROR) in a run: Qt reports a refusal
    (error=0) while it never got past HOST_LOOKUP since the connect() began,
    which no real refusal can do. Qt's side of such a run stops being a
    reference from there on."""
    state = None
    for event in qt_events:
        if event.startswith("state="):
            state = event
        elif event == "error=0" and state == "state=1":
            return True
    return False


def known_class(cls: str, res=None) -> bool:
    """True when a divergence class of the random run is one of the known
    differences: its name matches a KNOWN_CLASSES entry, or the run
    (qtdiff.run_pair's result, when given) shows Qt's stale-error bug."""
    if any(all(p in cls for p in pats) for pats, _ in KNOWN_CLASSES):
        return True
    return res is not None and "qt" in res and qt_stale_error(res["qt"].get("events", []))
