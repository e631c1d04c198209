# get() on a greenlet killed before it started returns the GreenletExit
# (a kill is a successful finish) and does not yield, even though the
# links entry is still queued.
import gevent
from gevent import Greenlet, GreenletExit

g = Greenlet(lambda: print("G runs"))
g.link(lambda src: print("link G"))
g.kill()
r = g.get()
print("main get returned GreenletExit:", isinstance(r, GreenletExit))
print("main ready:", g.ready(), "successful:", g.successful())
gevent.sleep(0)
print("main after sleep0")
