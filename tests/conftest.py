"""Settings shared by every test tier."""

import os

# jsii prints a Node 20 end-of-life banner on every run; it is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
