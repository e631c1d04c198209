# Rule 6: a zero-second Timeout only fires after the callback pass: the
# starts queued before it, and the sleep(0) resumes those greenlets queue,
# all run first; the timeout is raised at main's first block after that.
import gevent
from gevent import Timeout

def worker(name):
    print(name, "start")
    gevent.sleep(0)
    print(name, "resumed")

gevent.spawn(worker, "A")
t = Timeout.start_new(0)
gevent.spawn(worker, "B")
try:
    gevent.sleep(10)
    print("main not timed out")
except Timeout as e:
    print("main timed out:", e is t)
