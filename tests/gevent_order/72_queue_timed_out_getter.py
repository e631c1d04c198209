# Needs Queue. Rule 6 (timeouts): A's get(timeout=0) and B's Timeout(0)
# are zero timers started in that order, so they fire in the same timer
# batch, A's first. A's Empty is thrown into it from its timer, and A
# leaves the getters at once; B's timer then makes B put an item in the
# same loop turn, which nobody takes: A consumed nothing.
# A getter whose timer has expired while the thread was busy, but whose
# item is handed over in the callback pass before the timer phase, gets
# the item and its timeout never fires (C).
import time
import gevent
from gevent.queue import Queue, Empty
from gevent.event import Event

q = Queue()
never = Event()

def a():
    print("A gets with timeout=0")
    try:
        print("A got", q.get(timeout=0))
    except Empty:
        print("A timed out")

def b():
    print("B waits with Timeout(0)")
    with gevent.Timeout(0, False):
        never.wait()
    print("B timed out, puts x")
    q.put("x")
    print("B put x, qsize", q.qsize())

ga = gevent.spawn(a)
gb = gevent.spawn(b)
gevent.joinall([ga, gb])
print("main joined, qsize", q.qsize())
print("main get ->", q.get())

def c():
    print("C gets with timeout=0.001")
    try:
        print("C got", q.get(timeout=0.001))
    except Empty:
        print("C timed out")

gc = gevent.spawn(c)
gevent.sleep(0)
time.sleep(0.02)
q.put("y")
print("main put y")
gc.join()
print("main joined C, qsize", q.qsize())
