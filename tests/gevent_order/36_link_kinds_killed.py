# A killed greenlet counts as successful (its value is the GreenletExit):
# link_value fires, link_exception does not, and get() returns the
# GreenletExit instead of raising.
import gevent
from gevent import GreenletExit

g = gevent.spawn(gevent.sleep, 10)
g.link_value(lambda src: print("link_value"))
g.link_exception(lambda src: print("link_exception"))
gevent.sleep(0)
g.kill()
print("main after kill, successful:", g.successful())
print("main get returned GreenletExit:", isinstance(g.get(), GreenletExit))
gevent.sleep(0)
print("main after sleep0")
