# Needs Queue. Rule 5: put() with getters waiting appends the item and
# queues one hand-off callback; the putter does not switch. The callback
# wakes the blocked getters FIFO, one item each, each running to its next
# block before the next is served; C, with no item left, stays blocked.
# Main's sleep(0), queued after the callback, resumes after them.
import gevent
from gevent.queue import Queue

q = Queue()

def getter(name):
    print(name, "gets")
    item = q.get()
    print(name, "got", item)
    gevent.sleep(0)
    print(name, "resumed")

gs = [gevent.spawn(getter, n) for n in "ABC"]
gevent.sleep(0)
q.put(1)
print("main put 1")
q.put(2)
print("main put 2, qsize", q.qsize())
gevent.sleep(0)
print("main after sleep0, qsize", q.qsize())
q.put(3)
print("main put 3")
gevent.joinall(gs)
print("main joined")
