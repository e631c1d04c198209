# Rule 4: kill(block=False) of the running greenlet only queues the throw:
# it goes on, what was queued before runs, and the exit is raised at the
# blocking call it is in when the throw's turn comes.
import gevent
from gevent import GreenletExit, getcurrent

def other():
    print("other runs")

def w():
    gevent.spawn(other)
    getcurrent().kill(block=False)
    print("w after kill_nowait")
    try:
        gevent.sleep(0)
        print("w not killed")
    except GreenletExit:
        print("w exit")

g = gevent.spawn(w)
g.join()
print("main joined", g.successful())
