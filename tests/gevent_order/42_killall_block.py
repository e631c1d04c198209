# killall(block=True): never-started greenlets are killed on the spot (no
# switch, links queued now); the started ones get their exit in one queued
# callback, in list order; killall returns right after, before their links.
import gevent
from gevent import Greenlet

def sleeper(name):
    try:
        gevent.sleep(10)
    finally:
        print(name, "exits")

a = gevent.spawn(sleeper, "A")
b = gevent.spawn(sleeper, "B")
gevent.sleep(0)
c = gevent.spawn(sleeper, "C")
d = Greenlet(sleeper, "D")
for g, n in ((a, "A"), (b, "B"), (c, "C"), (d, "D")):
    g.link(lambda src, n=n: print("link", n))
gevent.killall([b, c, a, d])
print("main after killall")
gevent.sleep(0)
print("main after sleep0")
