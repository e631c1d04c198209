# A greenlet spawned by a running greenlet goes to the tail of the queue:
# B, spawned by main before A ran, starts before C, spawned by A.
import gevent

def a():
    print("A start, spawns C")
    gevent.spawn(lambda: print("C start"))

gevent.spawn(a)
gevent.spawn(lambda: print("B start"))
gevent.sleep(0)
print("main after sleep0")
gevent.sleep(0)
print("main after second sleep0")
