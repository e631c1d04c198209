# Rules 2, 3: the blocking kill's waiter resumes main right after the throw;
# since G caught the exit and is still alive, main then waits in a join,
# which is a link: it is woken after link 1 (registered before it) and
# before link 2 (which H registers while main waits).
import gevent
from gevent import GreenletExit

def body():
    try:
        gevent.sleep(10)
    except GreenletExit:
        print("G caught exit")
    gevent.sleep(0)
    print("G end")

def h():
    gevent.sleep(0)
    print("H adds link 2")
    g.link(lambda src: print("link 2"))

g = gevent.spawn(body)
g.link(lambda src: print("link 1"))
gevent.sleep(0)
gevent.spawn(h)
g.kill()
print("main after kill")
gevent.sleep(0)
print("main after sleep0")
