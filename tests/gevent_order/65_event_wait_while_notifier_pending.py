# Needs Event. Rule 2: wait() on a set event with no notifier pending
# returns True at once, without switching (X, spawned before, has not run).
# A wait() that arrives while the notifier is pending queues behind the
# waiters that blocked earlier, in arrival order: main (which waits right
# after its set) and then D (spawned before the set, so it starts before
# the notifier runs) are woken after A and B by the same notifier.
import gevent
from gevent.event import Event

ev0 = Event()
ev0.set()
gevent.spawn(lambda: print("X runs"))
print("main wait on set event ->", ev0.wait())
gevent.sleep(0)

ev = Event()

def waiter(name):
    print(name, "waits")
    r = ev.wait()
    print(name, "woken ->", r)

gs = [gevent.spawn(waiter, n) for n in "AB"]
gevent.sleep(0)
gs.append(gevent.spawn(waiter, "D"))
ev.set()
print("main set")
print("main waits on set event")
print("main wait ->", ev.wait())
gevent.joinall(gs)
print("main wait after notifier ->", ev.wait())
print("main done")
