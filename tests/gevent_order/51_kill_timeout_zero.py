# Rules 3, 6: kill with a zero timeout on a greenlet that catches the exit
# and keeps running: the throw happens, then the wait for its death gives
# up after the callback pass (in which G did its sleep(0) and blocked);
# G is still alive.
import gevent
from gevent import GreenletExit

def body():
    try:
        gevent.sleep(10)
    except GreenletExit:
        print("G caught exit")
    gevent.sleep(0)
    print("G resumed")
    gevent.sleep(10)

g = gevent.spawn(body)
gevent.sleep(0)
g.kill(timeout=0)
print("main after kill(timeout=0), G dead:", g.dead)
g.kill(block=False)
g.join()
print("main joined")
