# Needs Queue. Rule 5: with maxsize=1 and the queue full, blocked putters
# are served FIFO, one slot each. get() on the full queue returns the head
# at once and queues the hand-off. Main's second get() blocks. The one
# hand-off callback then loops until nothing moves: it puts A's item and
# resumes A (to its next block), gives that item to main (which runs to
# its sleep(0)), then puts B's item and resumes B; C waits for a slot.
import gevent
from gevent.queue import Queue

q = Queue(maxsize=1)
q.put(0)

def putter(name, item):
    print(name, "puts", item)
    q.put(item)
    print(name, "put done, qsize", q.qsize())
    gevent.sleep(0)
    print(name, "resumed")

gs = [gevent.spawn(putter, n, i) for n, i in (("A", 1), ("B", 2), ("C", 3))]
gevent.sleep(0)
print("main get ->", q.get(), "qsize", q.qsize())
print("main get ->", q.get(), "qsize", q.qsize())
gevent.sleep(0)
print("main after sleep0, qsize", q.qsize())
for _ in range(2):
    print("main get ->", q.get())
gevent.joinall(gs)
print("main joined, qsize", q.qsize())
