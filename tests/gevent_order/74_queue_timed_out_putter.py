# Needs Queue. Rule 6 (timeouts, putter side): on a full maxsize=1 queue,
# A's put(timeout=0) and B's Timeout(0) are zero timers fired in the same
# batch, A's first: A gets Full and leaves the putters at once, so when B
# takes the head in the same loop turn, no hand-off puts A's item: the
# queue ends empty, A added nothing.
import gevent
from gevent.queue import Queue, Full
from gevent.event import Event

q = Queue(maxsize=1)
q.put("old")
never = Event()

def a():
    print("A puts with timeout=0")
    try:
        q.put("a", timeout=0)
        print("A put done")
    except Full:
        print("A timed out")

def b():
    print("B waits with Timeout(0)")
    with gevent.Timeout(0, False):
        never.wait()
    print("B timed out, get ->", q.get())
    gevent.sleep(0)
    print("B after sleep0, qsize", q.qsize())

ga = gevent.spawn(a)
gb = gevent.spawn(b)
gevent.joinall([ga, gb])
print("main joined, qsize", q.qsize())
