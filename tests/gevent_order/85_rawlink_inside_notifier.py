# Needs Event. Rule 1/2 detail: main, woken from ev.wait() by the event's
# notifier, keeps running inside that notifier. A rawlink R it adds then
# is not part of this pass (the pass ends at the last link present when it
# started, C): R gets a fresh notifier queued at the tail once the pass is
# over, behind main's sleep(0) resume and Y's start. A second ev.wait()
# from inside the pass, on the still-set event, joins the pass instead: it
# returns right after C, before Y starts. (Unlike a greenlet's links entry,
# which runs links added while it fires in the same entry.)
import gevent
from gevent.event import Event

ev = Event()

def c():
    print("C waits")
    ev.wait()
    print("C woken")

def a():
    print("A sets")
    ev.set()

gevent.spawn(c)
gevent.spawn(a)
print("main waits")
ev.wait()
print("main woken")
ev.rawlink(lambda e: print("R fires"))
gevent.spawn(lambda: print("Y runs"))
print("main waits again")
print("main wait ->", ev.wait())
gevent.sleep(0)
print("main after sleep0")
gevent.sleep(0)
print("main after second sleep0")
