# Rule 4: a blocking kill of oneself queues the throw too, then waits: what
# was queued before it runs first, then the exit is raised in the kill call.
import gevent
from gevent import GreenletExit, getcurrent

def other():
    print("other runs")

def w():
    gevent.spawn(other)
    try:
        getcurrent().kill()
        print("w after kill")
    except GreenletExit:
        print("w exit in kill")
        raise

g = gevent.spawn(w)
g.join()
print("main joined", g.successful())
