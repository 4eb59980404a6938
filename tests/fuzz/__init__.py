"""luanet's own fuzzers (issue 9 item 3, issue 11 item 3).

stateful.py  seeded random walks over net.TcpServer / net.TcpSocket with raw
             Python peers, invariants checked per connection, shrunk on failure.
qtdiff.py    the same kind of scenarios run on PyQt6 and on luanet, compared.
"""
