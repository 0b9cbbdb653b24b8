"""
The C{twistd txsessions} plugin; everything else is in L{txsessions.tap}.
"""

from twisted.application.service import ServiceMaker

txsessionsDemo = ServiceMaker(
    "txsessions",
    "txsessions.tap",
    "Serve a Klein app (or the Iris demo) with txsessions sessions.",
    "txsessions",
)
