# Rule 2: get() on a greenlet that fails: the waiter is woken at its place
# among the links and the error is raised in it there; later links fire
# when main blocks again.
import gevent

gevent.get_hub().exception_stream = None

def body():
    raise KeyError("k")

g = gevent.spawn(body)
g.link_exception(lambda src: print("link_exception 1"))

def h():
    print("H adds link 2")
    g.link(lambda src: print("link 2"))

gevent.spawn(h)
try:
    g.get()
except KeyError:
    print("main get raised KeyError")
gevent.sleep(0)
print("main after sleep0")
