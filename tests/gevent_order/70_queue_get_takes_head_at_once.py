# Needs Queue. Rule 5: get() on a non-empty queue takes the head at once,
# without switching, even while A is blocked in get(): main put 1 (hand-off
# queued) and took 1 back before the hand-off ran, so A got nothing from
# it and still waits. The next put goes to A.
import gevent
from gevent.queue import Queue

q = Queue()

def getter():
    print("A gets")
    print("A got", q.get())

a = gevent.spawn(getter)
gevent.sleep(0)
gevent.spawn(lambda: print("X runs"))
q.put(1)
print("main put 1")
print("main get ->", q.get())
gevent.sleep(0)
print("main after sleep0, A dead", a.dead)
q.put(2)
print("main put 2")
a.join()
print("main joined, qsize", q.qsize())
