# Needs Event and AsyncResult. Rule 11: gevent.wait(objects) returns the
# objects in the order they became ready, after all are; with count=1 it
# returns the first only (here the result B sets before A's event, though
# listed last); with timeout=0 it returns what got ready in the callback
# pass and leaves out the rest.
import gevent
from gevent.event import Event, AsyncResult

names = {}

def name(o):
    return names[id(o)]

ev = Event()
ar = AsyncResult()
g = gevent.spawn(lambda: gevent.sleep(0))
names.update({id(ev): "ev", id(ar): "ar", id(g): "g"})

def a():
    gevent.sleep(0)
    gevent.sleep(0)
    print("A sets ev")
    ev.set()

def b():
    print("B sets ar")
    ar.set(1)

gevent.spawn(a)
gevent.spawn(b)
print("main wait(count=1) ->", [name(o) for o in gevent.wait([ev, g, ar], count=1)])
print("main wait ->", [name(o) for o in gevent.wait([ev, g, ar])])

ev2 = Event()
ar2 = AsyncResult()
names.update({id(ev2): "ev2", id(ar2): "ar2"})
gevent.spawn(ar2.set, 2)
print("main wait(timeout=0) ->", [name(o) for o in gevent.wait([ev2, ar2], timeout=0)])
