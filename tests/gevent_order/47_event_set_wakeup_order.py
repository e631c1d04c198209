# Needs Event. Event.set() does not switch: the waiters are woken from one
# queued callback, in the order they started waiting; each runs to its next
# blocking point before the next is woken; main's sleep(0), queued after
# the set, resumes after all of them.
import gevent
from gevent.event import Event

ev = Event()

def waiter(name):
    print(name, "waits")
    ev.wait()
    print(name, "woken")
    gevent.sleep(0)
    print(name, "resumed")

gs = [gevent.spawn(waiter, n) for n in "ABC"]
gevent.sleep(0)
ev.set()
print("main set the event")
gevent.sleep(0)
print("main after sleep0")
gevent.joinall(gs)
print("main joined")
