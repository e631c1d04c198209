# Needs Event and AsyncResult. Rule 11: iwait over an Event, a greenlet
# and an AsyncResult yields them in the order their notifications run:
# A's set() queues the event's notifier in A's start; G finishes after its
# sleep(0) and queues its links entry; B sets the result after two
# sleep(0)s. The consumer runs, to its next block, at each notification.
# Objects already ready when iwait starts are not yielded at once: each
# rawlink queues a notification, so they come in list order, after X
# (spawned before).
import gevent
from gevent.event import Event, AsyncResult

ev = Event()
ar = AsyncResult()

def g_body():
    print("G runs")
    gevent.sleep(0)
    print("G returns")
    return "g"

def a():
    print("A sets ev")
    ev.set()

def b():
    gevent.sleep(0)
    gevent.sleep(0)
    print("B sets ar")
    ar.set("r")

g = gevent.spawn(g_body)
gevent.spawn(a)
gevent.spawn(b)
names = {id(ev): "ev", id(g): "g", id(ar): "ar"}
for obj in gevent.iwait([ar, g, ev]):
    print("main got", names[id(obj)])
print("main iwait over")

ev2 = Event()
ev2.set()
ar2 = AsyncResult()
ar2.set_exception(ValueError("ignored by iwait"))
g2 = gevent.spawn(lambda: None)
g2.join()
gevent.sleep(0)  # leave g2's links entry (a link added inside it would fire in it)
names.update({id(ev2): "ev2", id(g2): "g2", id(ar2): "ar2"})
gevent.spawn(lambda: print("X runs"))
for obj in gevent.iwait([ar2, g2, ev2]):
    print("main got ready", names[id(obj)])
print("main done")
