"""
The C{twistd txsessions} plugin; everything else is in L{txsessions.tap}.
"""

from twisted.application.service import ServiceMaker

txsessionsServer = ServiceMaker(
    "txsessions",
    "txsessions.tap",
    "Serve a Klein app (or the Iris demo) with txsessions sessions.",
    "txsessions",
)
