# Needs Queue. Rule 6 (kills): a kill queued before the item's hand-off
# wins: getter A dies in get() and the item stays in the queue. A kill
# queued after the hand-off loses: getter B gets its item, then dies at
# its next block. Likewise for a blocked putter on a full queue: C, killed
# before the hand-off, adds nothing; D, killed after, has put its item.
import gevent
from gevent import GreenletExit
from gevent.queue import Queue

q = Queue()

def getter(name):
    print(name, "gets")
    try:
        item = q.get()
        print(name, "got", item)
        gevent.sleep(0)
        print(name, "not killed")
    except GreenletExit:
        print(name, "exit")

a = gevent.spawn(getter, "A")
gevent.sleep(0)
a.kill(block=False)
q.put(1)
print("main killed A, put 1")
a.join()
print("main joined A, qsize", q.qsize())
print("main get ->", q.get())

b = gevent.spawn(getter, "B")
gevent.sleep(0)
q.put(2)
b.kill(block=False)
print("main put 2, killed B")
b.join()
print("main joined B, qsize", q.qsize())

full = Queue(maxsize=1)
full.put("old")

def putter(name, item):
    print(name, "puts", item)
    try:
        full.put(item)
        print(name, "put done")
        gevent.sleep(0)
        print(name, "not killed")
    except GreenletExit:
        print(name, "exit")

c = gevent.spawn(putter, "C", "c")
gevent.sleep(0)
c.kill(block=False)
print("main killed C, get ->", full.get())
c.join()
print("main joined C, qsize", full.qsize())

full.put("old")
d = gevent.spawn(putter, "D", "d")
gevent.sleep(0)
print("main get ->", full.get())
d.kill(block=False)
print("main killed D")
d.join()
print("main joined D, qsize", full.qsize(), "get ->", full.get())
