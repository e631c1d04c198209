# Rule 1: a late link on a finished greenlet takes its place in the FIFO:
# A, spawned before the link was added, starts before the link runs; B,
# spawned after, starts after it.
import gevent

g = gevent.spawn(lambda: print("G runs"))
gevent.sleep(0)
print("main after first sleep0")
gevent.spawn(lambda: print("A start"))
g.link(lambda src: print("link G"))
gevent.spawn(lambda: print("B start"))
gevent.sleep(0)
print("main after second sleep0")
