# twistd -n web --resource-script examples/app.rpy (with examples/ on
# PYTHONPATH): a resource script's "resource" is served.  cache() makes
# twistd run this script once, not on every request.
from twistdweb import root

cache()  # noqa: F821 (twistd web provides it)
resource = root()
