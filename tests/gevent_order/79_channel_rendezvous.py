# Needs Channel. Rule 8: a Channel holds nothing; put() blocks until a
# getter takes the item, get() until a putter offers one. Whichever side
# arrives second queues one hand-off callback and blocks too; the callback
# switches to the getter first (with the item; it runs to its next block),
# then resumes the putter in the same callback. So main's put to a waiting
# A returns right after A's first block (before A's sleep(0) resume);
# main's get from a waiting B returns before B's put does.
# put_nowait() with no getter waits for a zero timer: X runs before Full.
import gevent
from gevent.queue import Channel, Full

ch = Channel()

def getter(name):
    print(name, "gets")
    print(name, "got", ch.get())
    gevent.sleep(0)
    print(name, "resumed")

def putter(name, item):
    print(name, "puts", item)
    ch.put(item)
    print(name, "put returned")

a = gevent.spawn(getter, "A")
gevent.sleep(0)
print("main puts 1")
ch.put(1)
print("main put returned")
a.join()

b = gevent.spawn(putter, "B", 2)
gevent.sleep(0)
print("main gets")
print("main got", ch.get())
gevent.sleep(0)
print("main after sleep0")
b.join()

gevent.spawn(lambda: print("X runs"))
try:
    ch.put_nowait(3)
except Full:
    print("main put_nowait: Full")
print("main done, balance", ch.balance)
