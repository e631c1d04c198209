# Start order is the order of start()/spawn() calls, not of creation: G is
# created first but started last.
import gevent
from gevent import Greenlet

g = Greenlet(lambda: print("G start"))
gevent.spawn(lambda: print("A start"))
h = Greenlet(lambda: print("H start"))
h.start()
g.start()
g.start()
gevent.spawn(lambda: print("B start"))
gevent.sleep(0)
print("main after sleep0")
