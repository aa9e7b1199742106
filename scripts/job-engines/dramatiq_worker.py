"""What ``dramatiq dramatiq_worker`` imports: the broker and the actor of compare.py."""

import compare

compare.dramatiq_actor()
