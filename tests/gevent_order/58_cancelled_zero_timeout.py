# Rule 6: a zero Timeout cancelled within the same pass never fires, even
# when main later blocks on a timer.
import gevent
from gevent import Timeout

t = Timeout.start_new(0)
gevent.sleep(0)
t.cancel()
print("main cancelled timeout, pending:", t.pending)
try:
    gevent.sleep(0.001)
    print("main slept without timeout")
except Timeout:
    print("main timed out")
