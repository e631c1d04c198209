# Rule 6: a body that only does a few sleep(0)s completes inside a zero
# Timeout: every resume is a callback of the same pass, so the timer never
# gets its turn before the body leaves the timeout block.
import gevent
from gevent import Timeout

try:
    with Timeout(0):
        for i in range(5):
            print("main step", i)
            gevent.sleep(0)
        print("main body done")
except Timeout:
    print("main timed out")
gevent.sleep(0)
print("main after block")
