# Rule 1: killing a greenlet that was created but never started does not
# yield; its links fire as one queue entry placed at the time of the kill,
# behind the start of A (queued earlier) and ahead of B (queued later).
import gevent
from gevent import Greenlet

g = Greenlet(lambda: print("G runs"))
g.link(lambda src: print("link G"))
gevent.spawn(lambda: print("A start"))
g.kill()
print("main after kill, G dead:", g.dead)
gevent.spawn(lambda: print("B start"))
gevent.sleep(0)
print("main after sleep0")
