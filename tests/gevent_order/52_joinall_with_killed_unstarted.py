# joinall over a greenlet killed before starting and a running one: the
# killed one's links entry is queued at the kill, ahead of B's finish.
import gevent
from gevent import Greenlet

a = Greenlet(lambda: print("A runs"))
b = gevent.spawn(lambda: print("B runs"))
a.link(lambda src: print("link A"))
b.link(lambda src: print("link B"))
a.kill()
gevent.joinall([a, b])
print("main after joinall")
gevent.sleep(0)
print("main after sleep0")
